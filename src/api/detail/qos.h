#pragma once
// QoS policies as other kinds and the router use them (kinds/qos.cc).
//
// Thread-safety: functions of one request's Transaction, or stateless.

#include <string>
#include <vector>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api::detail {

// A network's or port's qos_policy_id as a create or update (`before`)
// sets it: the policy exists and the caller may use it (404
// QosPolicyNotFound), and the one it replaces is one the caller may take
// off (403 PolicyRemoveAuthorizationError). A network made without one
// gets its project's default policy (qos-default).
Result<void> checkQosPolicy(Json& doc, const Json* before, Transaction& ctx, bool network);

// /v2.0/qos/rule-types[/<type>] (parts as routed: v2.0, rule-types[, type]).
HttpResponse serveQosRuleTypes(const std::vector<std::string>& parts, const HttpRequest& req,
                               const Caller& caller);
// /v2.0/qos/policies/<id>/<type>_rules[/<rule>] (parts: v2.0, qos-policies,
// id, <type>_rules[, rule]).
HttpResponse serveQosRules(const ApiWriter& w, const ResourceKind& policies,
                           const std::vector<std::string>& parts, const HttpRequest& req,
                           const Caller& caller);

}  // namespace canopy::api::detail
