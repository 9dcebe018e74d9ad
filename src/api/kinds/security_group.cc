// Security groups: a project's default group made on first use, rules
// shown with their group.

#include "model/security_group.h"

#include <algorithm>
#include <cctype>

#include "api/detail/logs.h"
#include "api/detail/rbac.h"
#include "api/kind.h"

namespace canopy::api {
namespace {

using model::badRequest;

// The rules a new group starts with (ids, project and stamps added).
void addRules(Transaction& ctx, const std::string& project, const std::vector<Json>& rules) {
  for (const Json& r : rules) {
    Json doc = stamped(ctx, project);
    doc.update(r);
    std::string id = doc["id"];
    ctx.guardAbsent("security-group-rules", id);
    ctx.put("security-group-rules", id, doc);
  }
}

std::string defaultGroupKey(const std::string& project) {
  return std::string(state::kPrefix) + "claims/default-security-group/" + project;
}

constexpr Extension kSecurityGroupExtensions[] = {
    {"security-group", "security-group", "The security groups extension."},
    {"security-groups-shared-filtering", "Security group filtering on the shared field",
     "Support filtering security groups on the shared field"},
    {"stateful-security-group", "Stateful security group",
     "Indicates if the security group is stateful or not"},
};

class SecurityGroupKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kSecurityGroupExtensions; }
  const model::ResourceSpec& spec() const override { return model::securityGroupSpec(); }

  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables);
  }

  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& caller) const override {
    view["shared"] = detail::sharedWith(doc, caller.project_id, tables);
    Json rules = Json::array();
    for (const auto& id : tables.lookup("security-group-rules.group", doc.value("id", ""))) {
      if (const state::Document* d = tables.find("security-group-rules", id)) {
        rules.push_back(model::visibleView(model::securityGroupRuleSpec(), d->doc,
                                           Caller{.project_id = {}, .is_admin = true}));
      }
    }
    view["security_group_rules"] = std::move(rules);
  }
  bool derivesViews() const override { return true; }

  bool missingDefaults(const state::Tables& tables, const Caller& caller) const override {
    return tables.lookup("security-groups.default", caller.project_id).empty();
  }

  Result<void> createDefaults(Transaction& ctx) const override {
    auto r = ensureDefaultGroup(ctx, ctx.caller().project_id);
    if (!r) return std::move(r).error();
    return ok();
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string project = doc.value("project_id", "");
    // "default" is the name of the group Canopy makes; no other may take it.
    if (namedDefault(doc)) return defaultExists();
    if (auto r = ensureDefaultGroup(ctx, project); !r) return std::move(r).error();
    // Every new group may send anything; nothing may come in until a rule says so.
    auto rules = model::defaultGroupRules(doc["id"]);
    rules.resize(2);  // the two egress rules
    if (auto q = checkQuota("security-group-rules", project, 2, ctx); !q) return q;
    addRules(ctx, project, rules);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    // Ports' connections would change their tracking mid-way: only a group
    // no port uses turns stateless or back.
    if (doc.value("stateful", true) != before.value("stateful", true) &&
        !ctx.indexed("ports.security_group", "ports", doc.value("id", "")).empty()) {
      return Error(Errc::Conflict, "Security Group " + doc.value("id", "") + " in use.",
                   "SecurityGroupInUse");
    }
    if (before.value("canopy:default", false) && doc["name"] != model::memberAt(before, "name")) {
      return Error(Errc::Conflict, "Updating default security group not allowed.",
                   "SecurityGroupCannotUpdateDefault");
    }
    if (doc["name"] != model::memberAt(before, "name") && namedDefault(doc)) return defaultExists();
    return ok();
  }

 private:
  static bool namedDefault(const Json& doc) {
    std::string name = doc.value("name", "");
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return name == "default";
  }
  static Error defaultExists() {
    return Error(Errc::Conflict, "Default security group already exists.",
                 "SecurityGroupDefaultAlreadyExists");
  }

 public:
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.indexed("ports.security_group", "ports", id).empty()) {
      return Error(Errc::Conflict, "Security Group " + id + " in use.", "SecurityGroupInUse");
    }
    if (doc.value("canopy:default", false)) {
      if (!ctx.caller().is_admin) {
        return Error(Errc::Conflict, "Insufficient rights for removing default security group.",
                     "SecurityGroupCannotRemoveDefault");
      }
      ctx.release(defaultGroupKey(doc.value("project_id", "")));
    }
    detail::removePolicies(ctx, id);
    detail::removeLogsOf("logs.resource", id, ctx);
    // Its rules go with it, and so do other groups' rules that name it as remote.
    for (const char* index : {"security-group-rules.group", "security-group-rules.remote_group"}) {
      for (const auto& rid : ctx.tables().lookup(index, id)) {
        const state::Document* d = ctx.find("security-group-rules", rid);
        if (d == nullptr) continue;
        ctx.guard("security-group-rules", rid, d->mod_revision);
        ctx.remove("security-group-rules", rid);
        if (d->doc.value("security_group_id", "") != id) {
          ctx.touch("security-groups", d->doc.value("security_group_id", ""));
        }
      }
    }
    return ok();
  }
};

}  // namespace

// The project's default security group, created (with Neutron's default
// rules) on first use.
Result<std::string> ensureDefaultGroup(Transaction& ctx, const std::string& project) {
  auto existing = ctx.indexed("security-groups.default", "security-groups", project);
  if (!existing.empty()) return existing.front()->value("id", "");
  Json group = stamped(ctx, project);
  group["name"] = "default";
  group["description"] = "Default security group";
  group["tags"] = Json::array();
  group["canopy:default"] = true;
  std::string id = group["id"];
  ctx.claim(defaultGroupKey(project), id);
  ctx.guardAbsent("security-groups", id);
  ctx.put("security-groups", id, group);
  addRules(ctx, project, model::defaultGroupRules(id));
  return id;
}

std::unique_ptr<ResourceKind> makeSecurityGroupKind(const model::NetworkConfig&) {
  return std::make_unique<SecurityGroupKind>();
}

}  // namespace canopy::api
