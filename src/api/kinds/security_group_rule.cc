// Security group rules: checked against their group and each other.

#include "api/detail/rbac.h"
#include "api/kind.h"
#include "model/security_group.h"

namespace canopy::api {
namespace {

using model::badRequest;

class SecurityGroupRuleKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::securityGroupRuleSpec(); }

  // As Neutron: the caller's own rules, and every rule of the caller's
  // groups (an admin may add one to them).
  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    if (ResourceKind::visible(doc, caller, tables)) return true;
    const state::Document* group =
        tables.find("security-groups", doc.value("security_group_id", ""));
    return group != nullptr && (group->doc.value("project_id", "") == caller.project_id ||
                                detail::sharedWith(group->doc, caller.project_id, tables));
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (auto r = model::checkRule(doc); !r) return r;
    auto groupVisible = [&](const std::string& gid) {
      const state::Document* g = ctx.find("security-groups", gid);
      return g != nullptr && detail::ownedOrShared(g->doc, ctx.caller(), ctx.tables());
    };
    std::string group_id = doc.value("security_group_id", "");
    if (!groupVisible(group_id)) return notFound(model::securityGroupSpec(), group_id);
    if (doc["remote_group_id"].is_string() && !groupVisible(doc["remote_group_id"])) {
      return notFound(model::securityGroupSpec(), doc["remote_group_id"].get<std::string>());
    }
    if (doc["remote_address_group_id"].is_string()) {
      std::string ag = doc["remote_address_group_id"];
      const Json* group = ctx.current("address-groups", ag);
      if (group == nullptr || !detail::ownedOrShared(*group, ctx.caller(), ctx.tables())) {
        return Error(Errc::NotFound, "Address group " + ag + " could not be found.",
                     "AddressGroupNotFound");
      }
    }
    std::string identity = model::ruleIdentity(doc);
    for (const Json* other :
         ctx.indexed("security-group-rules.group", "security-group-rules", group_id)) {
      if (model::ruleIdentity(*other) == identity) {
        return Error(
            Errc::Conflict,
            "Security group rule already exists. Rule id is " + other->value("id", "") + ".",
            "SecurityGroupRuleExists");
      }
    }
    ctx.touch("security-groups", group_id);
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    ctx.touch("security-groups", doc.value("security_group_id", ""));
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeSecurityGroupRuleKind(const model::NetworkConfig&) {
  return std::make_unique<SecurityGroupRuleKind>();
}

}  // namespace canopy::api
