// What the kinds consult of RBAC policies (detail/rbac.h).

#include "api/detail/rbac.h"

namespace canopy::api::detail {

std::vector<const Json*> rbacPolicies(const state::Tables& tables, std::string_view object_id) {
  std::vector<const Json*> out;
  for (const auto& id : tables.lookup("rbac-policies.object", object_id)) {
    if (const state::Document* d = tables.find("rbac-policies", id)) out.push_back(&d->doc);
  }
  return out;
}

bool rbacGrants(const state::Tables& tables, std::string_view object_id, std::string_view action,
                std::string_view project) {
  for (const Json* p : rbacPolicies(tables, object_id)) {
    if (p->value("action", "") != action) continue;
    std::string target = p->value("target_tenant", "");
    if (target == kEveryProject || target == project) return true;
  }
  return false;
}

bool sharedWith(const Json& doc, const std::string& project, const state::Tables& tables) {
  return doc.value("shared", false) ||
         rbacGrants(tables, doc.value("id", ""), kAccessShared, project);
}

bool ownedOrShared(const Json& doc, const Caller& caller, const state::Tables& tables) {
  return caller.is_admin || doc.value("project_id", "") == caller.project_id ||
         sharedWith(doc, caller.project_id, tables);
}

bool externalTo(const Json& network, const std::string& project, const state::Tables& tables) {
  if (!network.value("router:external", false)) return false;
  std::string id = network.value("id", "");
  bool any = false;
  for (const Json* p : rbacPolicies(tables, id)) {
    if (p->value("action", "") != kAccessExternal) continue;
    any = true;
    std::string target = p->value("target_tenant", "");
    if (target == kEveryProject || target == project) return true;
  }
  // An external network stored before policies existed is everyone's.
  return !any;
}

void addWildcardPolicy(Transaction& ctx, std::string_view object_type, const Json& object,
                       std::string_view action) {
  std::string object_id = object.value("id", "");
  if (rbacGrants(ctx.tables(), object_id, action, kEveryProject)) return;
  Json policy = stamped(ctx, object.value("project_id", ""));
  policy.erase("tags");
  policy.erase("created_at");
  policy.erase("updated_at");
  policy.erase("revision_number");
  policy["object_type"] = object_type;
  policy["object_id"] = object_id;
  policy["action"] = action;
  policy["target_tenant"] = kEveryProject;
  std::string id = policy["id"];
  ctx.claim(rbacClaim(object_id, action, kEveryProject), id);
  ctx.guardAbsent("rbac-policies", id);
  ctx.put("rbac-policies", id, policy);
}

void removeWildcardPolicy(Transaction& ctx, const Json& object, std::string_view action) {
  std::string object_id = object.value("id", "");
  for (const Json* p : rbacPolicies(ctx.tables(), object_id)) {
    if (p->value("action", "") != action || p->value("target_tenant", "") != kEveryProject) {
      continue;
    }
    removePolicy(ctx, *p);
  }
}

void removePolicies(Transaction& ctx, std::string_view object_id) {
  for (const Json* p : rbacPolicies(ctx.tables(), object_id)) removePolicy(ctx, *p);
}

std::string rbacClaim(std::string_view object_id, std::string_view action,
                      std::string_view target) {
  return std::string(state::kPrefix) + "claims/rbac/" + std::string(object_id) + "/" +
         std::string(action) + "/" + std::string(target);
}

void removePolicy(Transaction& ctx, const Json& policy) {
  std::string id = policy.value("id", "");
  ctx.release(rbacClaim(policy.value("object_id", ""), policy.value("action", ""),
                        policy.value("target_tenant", "")));
  if (const state::Document* d = ctx.find("rbac-policies", id)) {
    ctx.guard("rbac-policies", id, d->mod_revision);
  }
  ctx.remove("rbac-policies", id);
}

}  // namespace canopy::api::detail
