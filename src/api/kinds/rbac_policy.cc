// RBAC policies (Neutron's rbac-policies): a network, security group,
// address scope or subnet pool shared with one project or every project,
// or a network made external to them. What a policy grants is read by the
// other kinds (detail/rbac.h); here: who may write one, which may go while
// other projects depend on it, and the "shared" and "router:external"
// flags kept in step with them.

#include <algorithm>
#include <set>

#include "api/detail/rbac.h"
#include "api/kind.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using detail::kAccessExternal;
using detail::kAccessShared;
using detail::kEveryProject;
using model::AttrSpec;
using model::AttrType;

constexpr Extension kRbacExtensions[] = {
    {"rbac-policies", "RBAC Policies",
     "Allows creation and modification of policies that control tenant access to resources."},
    {"rbac-security-groups", "Add security_group type to network RBAC",
     "Add security_group type to network RBAC"},
};

const model::ResourceSpec& rbacPolicySpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "rbac-policies",
                          .member = "rbac_policy",
                          .plural = "rbac_policies",
                          .type_name = "RbacPolicy"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "project_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "tenant_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "object_type", .allow_post = true});
    a.push_back({.name = "object_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "target_tenant", .allow_post = true, .allow_put = true});
    a.push_back({.name = "action", .allow_post = true});
    return s;
  }();
  return spec;
}

// What each object type is stored as and may be given.
struct ObjectType {
  std::string_view name;
  std::string_view collection;
  std::string_view actions;  // as Neutron lists them
  bool external;             // access_as_external allowed
};
constexpr ObjectType kObjectTypes[] = {
    {"network", "networks", "('access_as_shared', 'access_as_external')", true},
    {"security_group", "security-groups", "('access_as_shared',)", false},
    {"address_scope", "address-scopes", "('access_as_shared',)", false},
    {"subnetpool", "subnetpools", "('access_as_shared',)", false},
    {"address_group", "address-groups", "('access_as_shared',)", false},
    {"qos_policy", "qos-policies", "('access_as_shared',)", false},
};

const ObjectType* objectType(std::string_view name) {
  for (const auto& t : kObjectTypes) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

Error invalidInput(const std::string& message) {
  return model::badRequest("Invalid input for operation: " + message);
}

Error inUse(const Json& policy, const std::string& details) {
  return Error(Errc::Conflict,
               "RBAC policy on object " + policy.value("object_id", "") +
                   " cannot be removed because other objects depend on it.\nDetails: " + details,
               "RbacPolicyInUse");
}

class RbacPolicyKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return rbacPolicySpec(); }
  std::span<const Extension> extensions() const override { return kRbacExtensions; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string given = doc["object_type"].is_string() ? doc["object_type"].get<std::string>() : "";
    std::string name = given;
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    std::transform(name.begin(), name.end(), name.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    const ObjectType* type = objectType(name);
    if (type == nullptr) {
      return invalidInput("'" + given + "' is not a valid RBAC object type.");
    }
    doc["object_type"] = name;
    if (!doc["target_tenant"].is_string()) {
      return model::invalidInput("target_tenant", "'None' is not a valid string.");
    }
    std::string target = doc["target_tenant"];
    if (target == kEveryProject && !ctx.caller().is_admin) {
      return model::policyRefused(
          "(rule:create_rbac_policy and rule:create_rbac_policy:target_tenant) is disallowed by "
          "policy");
    }
    std::string object_id = doc.value("object_id", "");
    const Json* object = ctx.current(type->collection, object_id);
    bool network = type->name == "network";
    if (object == nullptr ||
        (network && !detail::ownedOrShared(*object, ctx.caller(), ctx.tables()) &&
         !detail::externalTo(*object, ctx.caller().project_id, ctx.tables()))) {
      if (network) return invalidInput("Network " + object_id + " could not be found.");
      return invalidInput("Object " + object_id + " of type " + name + " could not be found.");
    }
    if (!ctx.caller().is_admin && object->value("project_id", "") != ctx.caller().project_id) {
      return invalidInput(std::string("Only admins can manipulate policies on ") +
                          (network ? "networks" : "objects") + " they do not own.");
    }
    std::string action = doc["action"].is_string() ? doc["action"].get<std::string>() : "";
    if (action != kAccessShared && !(type->external && action == kAccessExternal)) {
      return Error(Errc::InvalidArgument,
                   "Invalid action '" + action + "' for object type '" + name +
                       "'. Valid actions: " + std::string(type->actions),
                   "InvalidActionForType");
    }
    if (type->name == "subnetpool" && model::memberAt(*object, "address_scope_id").is_string() &&
        !detail::rbacGrants(ctx.tables(), model::stringAt(*object, "address_scope_id"),
                            kAccessShared, target)) {
      return invalidInput("Failed to create RBAC policy on object " + object_id +
                          " because target project doesn't have access to associated address "
                          "scope.");
    }
    if (auto d = checkDuplicate(object_id, action, target, ctx); !d) return d;
    ctx.claim(detail::rbacClaim(object_id, action, target), doc.value("id", ""));
    for (const char* k : {"tags", "created_at", "updated_at", "revision_number"}) doc.erase(k);
    syncFlags(ctx, *type, *object, nullptr, &doc);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    std::string target = doc.value("target_tenant", "");
    if (target == kEveryProject && !ctx.caller().is_admin) {
      return model::policyRefused(
          "(rule:update_rbac_policy and rule:update_rbac_policy:target_tenant) is disallowed by "
          "policy");
    }
    const ObjectType* type = objectType(before.value("object_type", ""));
    const Json* object =
        type ? ctx.current(type->collection, before.value("object_id", "")) : nullptr;
    if (type == nullptr || object == nullptr) return ok();
    if (target != kEveryProject) {
      if (auto r = checkInUse(*type, *object, before, target, ctx); !r) return r;
    }
    std::string object_id = before.value("object_id", "");
    std::string action = before.value("action", "");
    if (auto d = checkDuplicate(object_id, action, target, ctx); !d) return d;
    ctx.release(detail::rbacClaim(object_id, action, before.value("target_tenant", "")));
    ctx.claim(detail::rbacClaim(object_id, action, target), doc.value("id", ""));
    for (const char* k : {"tags", "created_at", "updated_at", "revision_number"}) doc.erase(k);
    syncFlags(ctx, *type, *object, &before, &doc);
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    const ObjectType* type = objectType(doc.value("object_type", ""));
    const Json* object = type ? ctx.current(type->collection, doc.value("object_id", "")) : nullptr;
    ctx.release(detail::rbacClaim(doc.value("object_id", ""), doc.value("action", ""),
                                  doc.value("target_tenant", "")));
    if (type == nullptr || object == nullptr) return ok();
    if (auto r = checkInUse(*type, *object, doc, "", ctx); !r) return r;
    syncFlags(ctx, *type, *object, &doc, nullptr);
    return ok();
  }

 private:
  static Result<void> checkDuplicate(const std::string& object_id, const std::string& action,
                                     const std::string& target, const Transaction& ctx) {
    for (const Json* p : detail::rbacPolicies(ctx.tables(), object_id)) {
      if (p->value("action", "") == action && p->value("target_tenant", "") == target) {
        return Error(Errc::Conflict, "An RBAC policy already exists with those values.",
                     "DuplicateRbacPolicy");
      }
    }
    return ok();
  }

  // Whether `policy` may go (or move to `replacement`): no project may be
  // left using the object that only this policy lets in.
  static Result<void> checkInUse(const ObjectType& type, const Json& object, const Json& policy,
                                 const std::string& replacement, const Transaction& ctx) {
    std::string target = policy.value("target_tenant", "");
    std::string action = policy.value("action", "");
    std::string object_id = object.value("id", "");
    std::string owner = object.value("project_id", "");
    // The projects the other policies of this action let in, and whether
    // one lets in everyone.
    std::set<std::string> allowed;
    bool everyone = false;
    for (const Json* p : detail::rbacPolicies(ctx.tables(), object_id)) {
      if (p->value("id", "") == policy.value("id", "") || p->value("action", "") != action) {
        continue;
      }
      std::string t = p->value("target_tenant", "");
      if (t == kEveryProject) everyone = true;
      allowed.insert(t);
    }
    // A network's policy moved to another project counts for it; other
    // objects' is checked as if it went (Neutron's NeutronRbacObject).
    if (!replacement.empty() && type.name == "network") allowed.insert(replacement);
    if (everyone) return ok();
    // The projects that use the object.
    std::vector<std::string> users;
    std::string details;
    if (type.name == "network" && action == kAccessExternal && target == kEveryProject &&
        object.value("is_default", false)) {
      return inUse(policy, "Default external networks must be shared to everyone.");
    }
    if (type.name == "network" && action == kAccessExternal) {
      for (const Json* port : ctx.indexed("ports.network", "ports", object_id)) {
        if (port->value("device_owner", "") != model::kOwnerRouterGateway) continue;
        if (const Json* router = ctx.current("routers", port->value("device_id", ""))) {
          users.push_back(router->value("project_id", ""));
        }
      }
      details = "There are routers attached to this network that depend on this policy for access.";
    } else {
      if (target == owner) return ok();
      if (type.name == "network") {
        for (const Json* port : ctx.indexed("ports.network", "ports", object_id)) {
          users.push_back(port->value("project_id", ""));
        }
        details = "Unable to reconfigure sharing settings for network " + object_id +
                  ". Multiple tenants are using it.";
      } else if (type.name == "security_group") {
        for (const Json* port : ctx.indexed("ports.security_group", "ports", object_id)) {
          users.push_back(port->value("project_id", ""));
        }
      } else if (type.name == "address_scope") {
        for (const Json* pool :
             ctx.indexed("subnetpools.address_scope", "subnetpools", object_id)) {
          users.push_back(pool->value("project_id", ""));
        }
      } else if (type.name == "address_group") {
        for (const Json* r : ctx.indexed("security-group-rules.remote_address_group",
                                         "security-group-rules", object_id)) {
          users.push_back(r->value("project_id", ""));
        }
      } else if (type.name == "qos_policy") {
        for (const Json* n : ctx.indexed("networks.qos_policy", "networks", object_id)) {
          users.push_back(n->value("project_id", ""));
        }
        for (const Json* p : ctx.indexed("ports.qos_policy", "ports", object_id)) {
          users.push_back(p->value("project_id", ""));
        }
      } else if (type.name == "subnetpool") {
        for (const Json* s : ctx.indexed("subnets.subnetpool", "subnets", object_id)) {
          users.push_back(s->value("project_id", ""));
        }
      }
      if (type.name == "network") allowed.insert(owner);
      if (details.empty()) details = "project_id=" + target;
    }
    for (const std::string& user : users) {
      bool depends = target == kEveryProject ? !allowed.contains(user) : user == target;
      if (depends) return inUse(policy, details);
    }
    return ok();
  }

  // The object's "shared" (and a network's "router:external") after
  // `removed` goes and `added` comes.
  static void syncFlags(Transaction& ctx, const ObjectType& type, const Json& object,
                        const Json* removed, const Json* added) {
    // A network stored before policies existed has its flags without them.
    std::string id = object.value("id", "");
    bool wildcard_shared = object.value("shared", false) &&
                           !detail::rbacGrants(ctx.tables(), id, kAccessShared, kEveryProject);
    auto policies = detail::rbacPolicies(ctx.tables(), id);
    bool external = object.value("router:external", false) &&
                    std::none_of(policies.begin(), policies.end(), [](const Json* p) {
                      return p->value("action", "") == kAccessExternal;
                    });
    auto count = [&](const Json& p) {
      if (p.value("action", "") == kAccessExternal) external = true;
      if (p.value("action", "") == kAccessShared && p.value("target_tenant", "") == kEveryProject) {
        wildcard_shared = true;
      }
    };
    for (const Json* p : policies) {
      if (removed == nullptr || p->value("id", "") != removed->value("id", "")) count(*p);
    }
    if (added != nullptr) count(*added);
    Json doc = object;
    doc["shared"] = wildcard_shared;
    if (type.external) doc["router:external"] = external;
    if (doc == object && type.name != "network") return;
    // A network's revision moves with each of its policies.
    if (doc.contains("revision_number")) {
      doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
      doc["updated_at"] = ctx.now();
    }
    std::string collection(type.collection);
    if (const state::Document* d = ctx.find(collection, id)) {
      ctx.guard(collection, id, d->mod_revision);
    }
    ctx.put(collection, id, doc);
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeRbacPolicyKind(const model::NetworkConfig&) {
  return std::make_unique<RbacPolicyKind>();
}

}  // namespace canopy::api
