#pragma once
// Neutron's RBAC policies as the other kinds consult them: who an object
// (network, security group, address scope, subnet pool) is shared with,
// which projects may use a network as external, and the wildcard policies
// that "shared": true and "router:external": true stand for.
//
// A network's stored "shared" and "router:external" stay in step with its
// policies (a '*' access_as_shared policy; any access_as_external one), so
// that the southbound and the agents read them as before; a network stored
// before policies existed counts its "shared" flag as a '*' policy.
//
// Thread-safety: functions of one request's Tables or Transaction.

#include <string>
#include <string_view>
#include <vector>

#include "api/kind.h"

namespace canopy::api::detail {

inline constexpr std::string_view kAccessShared = "access_as_shared";
inline constexpr std::string_view kAccessExternal = "access_as_external";
inline constexpr std::string_view kEveryProject = "*";

// The policies on an object (any type and action).
std::vector<const Json*> rbacPolicies(const state::Tables& tables, std::string_view object_id);
// Whether a policy grants `action` on the object to `project` or to every
// project (`project` "*": only a policy for every project counts).
bool rbacGrants(const state::Tables& tables, std::string_view object_id, std::string_view action,
                std::string_view project);

// The caller owns the object, is admin, or it is shared with the caller's
// project.
bool ownedOrShared(const Json& doc, const Caller& caller, const state::Tables& tables);
// Whether it is shared with `project` (Neutron's "shared" as that project
// sees it: a policy for it or for everyone).
bool sharedWith(const Json& doc, const std::string& project, const state::Tables& tables);
// Whether `project` may use this network as an external one.
bool externalTo(const Json& network, const std::string& project, const state::Tables& tables);

// Adds the policy giving `action` on the object to every project (owned by
// the object's project), unless there is one; removes it.
void addWildcardPolicy(Transaction& ctx, std::string_view object_type, const Json& object,
                       std::string_view action);
void removeWildcardPolicy(Transaction& ctx, const Json& object, std::string_view action);
// The policies go with their object.
void removePolicies(Transaction& ctx, std::string_view object_id);
void removePolicy(Transaction& ctx, const Json& policy);
// The claim that keeps one policy per object, action and target.
std::string rbacClaim(std::string_view object_id, std::string_view action, std::string_view target);

}  // namespace canopy::api::detail
