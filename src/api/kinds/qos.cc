// Quality of service (Neutron's qos and the extensions below): policies at
// /v2.0/qos/policies, their rules at /v2.0/qos/policies/<id>/<type>_rules
// and the rule types at /v2.0/qos/rule-types.
//
// A policy's rules live in its document ("rules", each with its id, type
// and qos_policy_id, as the policy's view shows them), so that one write
// changes a rule and the policy's revision, and the southbound reads the
// policy whole. A port takes the policy set on it or, if it is a VM's port,
// its network's (objects.cc); the datapath limits its bandwidth with a
// token bucket per direction and marks DSCP on what it sends
// (docs/DATAPATH.md, "QoS"). Minimum bandwidth and packet rate rules are
// stored as Neutron stores them, for placement; the datapath reserves
// nothing for them.
//
// Policy as Neutron's: admins create, change and delete policies and
// rules; a project sees its own policies and those shared with it (the
// "shared" flag is a '*' RBAC policy, object type qos_policy) and may
// attach them to its networks and ports.

#include "api/detail/qos.h"

#include <algorithm>
#include <set>

#include "api/detail/endpoint.h"
#include "api/detail/rbac.h"
#include "api/kind.h"

namespace canopy::api {
namespace {

constexpr int64_t kIntMax = 2147483647;  // Neutron's DB_INTEGER_MAX_VALUE
// Neutron's VALID_DSCP_MARKS.
constexpr int kDscpMarks[] = {0,  8,  10, 12, 14, 16, 18, 20, 22, 24, 26,
                              28, 30, 32, 34, 36, 38, 40, 46, 48, 56};

constexpr Extension kQosExtensions[] = {
    {"qos", "Quality of Service",
     "The Quality of Service extension (Canopy: bandwidth limits and DSCP marking in the "
     "datapath)."},
    {"qos-bw-limit-direction", "Direction for QoS bandwidth limit rule",
     "Allow to configure QoS bandwidth limit rule with specific direction: ingress or egress"},
    {"qos-default", "QoS default policy", "Expose the QoS default policy per project"},
    {"qos-rule-type-details", "QoS rule type details",
     "Expose details about QoS rule types supported by loaded backend drivers"},
    {"qos-bw-minimum-ingress", "QoS minimum bandwidth rule for ingress direction",
     "Allow to configure QoS minumum bandwidth rule with ingress direction."},
};

// One rule parameter: an integer in [0, kIntMax], a direction among
// `choices`, or a DSCP mark.
struct Param {
  std::string_view name;
  enum Kind : uint8_t { Int, Direction, Dscp } kind = Int;
  std::optional<Json> default_value{};  // none: required on create
  std::vector<std::string_view> choices{};
};

struct RuleType {
  std::string_view type;    // "bandwidth_limit"
  std::string_view member;  // "bandwidth_limit_rule"
  std::string_view path;    // "bandwidth_limit_rules"
  std::string_view object;  // Neutron's object name, for its errors
  std::vector<Param> params;
};

const std::vector<RuleType>& ruleTypes() {
  static const std::vector<RuleType> types = {
      {"bandwidth_limit",
       "bandwidth_limit_rule",
       "bandwidth_limit_rules",
       "QosBandwidthLimitRule",
       {{"max_kbps", Param::Int},
        {"max_burst_kbps", Param::Int, Json(0)},
        {"direction", Param::Direction, Json("egress"), {"egress", "ingress"}}}},
      {"dscp_marking",
       "dscp_marking_rule",
       "dscp_marking_rules",
       "QosDscpMarkingRule",
       {{"dscp_mark", Param::Dscp}}},
      {"minimum_bandwidth",
       "minimum_bandwidth_rule",
       "minimum_bandwidth_rules",
       "QosMinimumBandwidthRule",
       {{"min_kbps", Param::Int},
        {"direction", Param::Direction, Json("egress"), {"egress", "ingress"}}}},
      {"minimum_packet_rate",
       "minimum_packet_rate_rule",
       "minimum_packet_rate_rules",
       "QosMinimumPacketRateRule",
       {{"min_kpps", Param::Int},
        {"direction", Param::Direction, Json("egress"), {"any", "egress", "ingress"}}}},
  };
  return types;
}

const RuleType* ruleTypeByPath(std::string_view path) {
  for (const auto& t : ruleTypes()) {
    if (t.path == path) return &t;
  }
  return nullptr;
}

const RuleType* ruleTypeByName(std::string_view name) {
  for (const auto& t : ruleTypes()) {
    if (t.type == name) return &t;
  }
  return nullptr;
}

std::string textOf(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// convert_to_int: an integer, or a string of one.
std::optional<int64_t> integerOf(const Json& v) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return std::nullopt;
  const std::string& s = v.get_ref<const std::string&>();
  size_t i = s.starts_with("-") ? 1 : 0;
  if (s.size() <= i || s.size() > 12 ||
      !std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(),
                   [](unsigned char c) { return std::isdigit(c); })) {
    return std::nullopt;
  }
  return std::stoll(s);
}

Result<Json> checkedParam(const Param& p, const Json& v) {
  const std::string name(p.name);
  switch (p.kind) {
    case Param::Int: {
      auto n = integerOf(v);
      if (!n) return model::invalidInput(name, "'" + textOf(v) + "' is not an integer");
      if (*n < 0) {
        return model::invalidInput(name, "'" + textOf(v) + "' is too small - must be at least '0'");
      }
      if (*n > kIntMax) {
        return model::invalidInput(name, "'" + textOf(v) +
                                             "' is too large - must be no more than '" +
                                             std::to_string(kIntMax) + "'");
      }
      return Json(*n);
    }
    case Param::Direction: {
      std::string list;
      for (auto c : p.choices)
        list += std::string(list.empty() ? "" : ", ") + "'" + std::string(c) + "'";
      if (v.is_string() && std::find(p.choices.begin(), p.choices.end(),
                                     v.get_ref<const std::string&>()) != p.choices.end()) {
        return v;
      }
      return model::invalidInput(name, "'" + textOf(v) + "' is not in [" + list + "]");
    }
    case Param::Dscp: {
      auto n = integerOf(v);
      if (n &&
          std::find(std::begin(kDscpMarks), std::end(kDscpMarks), *n) != std::end(kDscpMarks)) {
        return Json(*n);
      }
      std::string list;
      for (int m : kDscpMarks) list += (list.empty() ? "" : ", ") + std::to_string(m);
      return model::invalidInput(name, "'" + textOf(v) + "' is not in [" + list + "]");
    }
  }
  return model::badRequest("unknown parameter");
}

// The body's rule, checked; `base` holds what it leaves out (an update's
// current values; on create, the defaults fill in).
Result<Json> checkedRule(const RuleType& type, const HttpRequest& req, const Json& base,
                         bool create) {
  auto body = model::parseJson(req.body);
  if (!body) return model::badRequest(body.error().message());
  const Json& given = model::memberAt(*body, type.member);
  if (!given.is_object()) return model::badRequest("Resource body required");
  Json out = base;
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string& key = it.key();
    auto param = std::find_if(type.params.begin(), type.params.end(),
                              [&](const Param& p) { return p.name == key; });
    if (param != type.params.end()) {
      auto v = checkedParam(*param, it.value());
      if (!v) return std::move(v).error();
      out[key] = std::move(*v);
    } else if (auto other =
                   detail::checkOtherAttribute(key, it.value(), create, {"qos_policy_id", "type"});
               !other) {
      return std::move(other).error();
    }
  }
  for (const auto& p : type.params) {
    if (out.contains(p.name)) continue;
    if (!p.default_value) {
      return model::badRequest("Failed to parse request. Required attribute '" +
                               std::string(p.name) + "' not specified");
    }
    out[std::string(p.name)] = *p.default_value;
  }
  return out;
}

Error policyNotFound(const std::string& id) {
  return Error(Errc::NotFound, "QoS policy " + id + " could not be found.", "QosPolicyNotFound");
}

Error ruleNotFound(const std::string& rule, const std::string& policy) {
  return Error(Errc::NotFound,
               "QoS rule " + rule + " for policy " + policy + " could not be found.",
               "QosRuleNotFound");
}

// Whether `rule` may join the policy's `rules` (replacing the one with its
// id): one rule of a type per direction (minimum packet rate's "any" takes
// every direction), and no minimum above a limit of its direction.
Result<void> checkRuleConflicts(const RuleType& type, const Json& rules, const Json& rule,
                                const std::string& policy_id) {
  const std::string id = rule.value("id", "");
  const std::string direction = rule.value("direction", "");
  for (const auto& other : rules) {
    if (other.value("id", "") == id) continue;
    const std::string other_type = other.value("type", "");
    const std::string other_direction = other.value("direction", "");
    if (other_type == type.type) {
      if (type.type == "minimum_packet_rate" && direction != other_direction &&
          (direction == "any" || other_direction == "any")) {
        return Error(Errc::Conflict,
                     "Rule " + std::string(type.type) + " conflicts with rule " +
                         other.value("id", "") + " which already exists in QoS Policy " +
                         policy_id + ".",
                     "QoSRulesConflict");
      }
      if (direction == other_direction) {
        std::string fields =
            "['qos_policy_id'" + std::string(direction.empty() ? "" : ", 'direction'") + "]";
        std::string values = policy_id + (direction.empty() ? "" : "-" + direction);
        return Error(Errc::Conflict,
                     "Failed to create a duplicate " + std::string(type.object) +
                         ": for attribute(s) " + fields + " with value(s) " + values,
                     "NeutronDbObjectDuplicateEntry");
      }
    }
    // A minimum bandwidth above the limit of its direction can never be met.
    const Json* limit = nullptr;
    const Json* minimum = nullptr;
    if (type.type == "minimum_bandwidth" && other_type == "bandwidth_limit") {
      limit = &other, minimum = &rule;
    } else if (type.type == "bandwidth_limit" && other_type == "minimum_bandwidth") {
      limit = &rule, minimum = &other;
    }
    if (limit != nullptr && direction == other_direction &&
        minimum->value("min_kbps", int64_t{0}) > limit->value("max_kbps", int64_t{0})) {
      const bool adding_minimum = minimum == &rule;
      return Error(Errc::Conflict,
                   "Unable to add the rule with value " +
                       std::to_string(adding_minimum ? minimum->value("min_kbps", int64_t{0})
                                                     : limit->value("max_kbps", int64_t{0})) +
                       " to the policy " + policy_id + " as the existing rule of type " +
                       (adding_minimum ? "bandwidth_limit" : "minimum_bandwidth") +
                       " restricts the bandwidth to " +
                       std::to_string(adding_minimum ? limit->value("max_kbps", int64_t{0})
                                                     : minimum->value("min_kbps", int64_t{0})) +
                       ".",
                   "QoSRuleParameterConflict");
    }
  }
  return ok();
}

// A rule as its own endpoints show it: its id and parameters.
Json ruleView(const RuleType& type, const Json& rule, const HttpRequest& req) {
  Json view = {{"id", rule.value("id", "")}};
  for (const auto& p : type.params) view[std::string(p.name)] = model::memberAt(rule, p.name);
  return detail::selectFields(view, req);
}

bool matchesFilters(const Json& rule, const HttpRequest& req) {
  for (const auto& [k, v] : req.query) {
    if (k == "fields" || k == "sort_key" || k == "sort_dir" || k == "limit" || k == "marker" ||
        k == "page_reverse") {
      continue;
    }
    if (!rule.contains(k)) continue;
    if (textOf(rule[k]) != v) return false;
  }
  return true;
}

const model::ResourceSpec& policySpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "qos-policies",
                          .member = "policy",
                          .plural = "policies",
                          .type_name = "QosPolicy"};
    model::addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "shared",
                 .type = model::AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false)});
    a.push_back({.name = "is_default",
                 .type = model::AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(false)});
    a.push_back({.name = "rules", .type = model::AttrType::List, .default_value = Json::array()});
    return s;
  }();
  return spec;
}

// The key that keeps one default policy per project.
std::string defaultClaim(const std::string& project) {
  return std::string(state::kPrefix) + "claims/qos-default/" + project;
}

// The projects whose networks and ports use the policy (Neutron's bound
// project ids).
std::set<std::string> boundProjects(const Transaction& ctx, const std::string& policy) {
  std::set<std::string> out;
  for (const Json* n : ctx.indexed("networks.qos_policy", "networks", policy)) {
    out.insert(n->value("project_id", ""));
  }
  for (const Json* p : ctx.indexed("ports.qos_policy", "ports", policy)) {
    out.insert(p->value("project_id", ""));
  }
  return out;
}

class QosPolicyKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return policySpec(); }
  std::span<const Extension> extensions() const override { return kQosExtensions; }

  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables);
  }
  // Admins change and delete policies; those who see one may tag it (as
  // Neutron lets a project tag a policy shared with it).
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view verb) const override {
    return caller.is_admin || verb == "tag" ? Access::Allowed : Access::Refused;
  }

  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& caller) const override {
    view["shared"] = detail::sharedWith(doc, caller.project_id, tables);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_policy) is disallowed by policy");
    }
    doc["rules"] = Json::array();
    if (doc.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "qos_policy", doc, detail::kAccessShared);
    }
    if (doc.value("is_default", false)) {
      if (auto r = claimDefault(doc, ctx); !r) return r;
    }
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    doc["rules"] = model::memberAt(before, "rules");
    const std::string id = doc.value("id", "");
    if (doc.value("shared", false) && !before.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "qos_policy", doc, detail::kAccessShared);
    } else if (!doc.value("shared", false) && before.value("shared", false)) {
      // Every project that uses it must keep access by a policy of its own.
      std::set<std::string> allowed;
      for (const Json* p : detail::rbacPolicies(ctx.tables(), id)) {
        if (p->value("action", "") == detail::kAccessShared) {
          allowed.insert(p->value("target_tenant", ""));
        }
      }
      for (const auto& project : boundProjects(ctx, id)) {
        if (!allowed.contains(project)) {
          return Error(Errc::Conflict,
                       "RBAC policy on object " + id +
                           " cannot be removed because other objects depend on it.\nDetails: "
                           "tenant_id=*",
                       "RbacPolicyInUse");
        }
      }
      detail::removeWildcardPolicy(ctx, doc, detail::kAccessShared);
    }
    const bool now_default = doc.value("is_default", false);
    if (now_default && !before.value("is_default", false)) {
      if (auto r = claimDefault(doc, ctx); !r) return r;
    } else if (!now_default && before.value("is_default", false)) {
      ctx.release(defaultClaim(doc.value("project_id", "")));
    }
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    const std::string id = doc.value("id", "");
    auto inUse = [&](const char* what, const Json& user) {
      return Error(Errc::Conflict,
                   "QoS Policy " + id + " is used by " + what + " " + user.value("id", "") + ".",
                   "QosPolicyInUse");
    };
    for (const Json* n : ctx.indexed("networks.qos_policy", "networks", id)) {
      return inUse("network", *n);
    }
    for (const Json* p : ctx.indexed("ports.qos_policy", "ports", id)) return inUse("port", *p);
    if (doc.value("is_default", false)) ctx.release(defaultClaim(doc.value("project_id", "")));
    detail::removePolicies(ctx, id);
    return ok();
  }

 private:
  static Result<void> claimDefault(const Json& doc, Transaction& ctx) {
    const std::string project = doc.value("project_id", "");
    for (const Json* other : ctx.indexed("qos-policies.default", "qos-policies", project)) {
      if (other->value("id", "") != doc.value("id", "")) {
        return Error(Errc::Conflict, "A default QoS policy exists for project " + project + ".",
                     "QoSPolicyDefaultAlreadyExists");
      }
    }
    ctx.claim(defaultClaim(project), doc.value("id", ""));
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeQosPolicyKind(const model::NetworkConfig&) {
  return std::make_unique<QosPolicyKind>();
}

namespace detail {

Result<void> checkQosPolicy(Json& doc, const Json* before, Transaction& ctx, bool network) {
  Json& wanted = doc["qos_policy_id"];
  const Json old = before == nullptr ? Json() : model::memberAt(*before, "qos_policy_id");
  if (before == nullptr && network && wanted.is_null()) {
    // qos-default: a network made without a policy gets its project's default.
    for (const Json* p :
         ctx.indexed("qos-policies.default", "qos-policies", doc.value("project_id", ""))) {
      wanted = p->value("id", "");
    }
    return ok();
  }
  if (wanted == old) return ok();
  if (old.is_string()) {
    // Only a policy the caller may use may be taken off
    // (Neutron's PolicyRemoveAuthorizationError).
    const Json* current = ctx.current("qos-policies", old.get<std::string>());
    if (current != nullptr && !ownedOrShared(*current, ctx.caller(), ctx.tables())) {
      return Error(Errc::PermissionDenied,
                   "Failed to remove provided policy " + old.get<std::string>() +
                       " because you are not authorized.",
                   "PolicyRemoveAuthorizationError");
    }
  }
  if (wanted.is_string()) {
    const std::string id = wanted.get<std::string>();
    const Json* policy = ctx.current("qos-policies", id);
    if (policy == nullptr || !ownedOrShared(*policy, ctx.caller(), ctx.tables())) {
      return policyNotFound(id);
    }
  }
  return ok();
}

HttpResponse serveQosRuleTypes(const std::vector<std::string>& parts, const HttpRequest& req,
                               const Caller& caller) {
  if (req.method != "GET") return methodNotAllowed();
  // The types the datapath enforces or that are stored for placement.
  if (parts.size() == 2) {
    Json list = Json::array();
    for (const auto& t : ruleTypes()) list.push_back({{"type", t.type}});
    return json(200, {{"rule_types", list}});
  }
  if (!caller.is_admin) {
    return errorResponse(model::policyRefused("(rule:get_rule_type) is disallowed by policy"));
  }
  const RuleType* type = ruleTypeByName(parts[2]);
  if (type == nullptr) {
    return errorResponse(Error(Errc::NotFound, "Rule type " + parts[2] + " could not be found.",
                               "QosRuleTypeNotFound"));
  }
  Json params = Json::array();
  for (const auto& p : type->params) {
    if (p.kind == Param::Int) {
      params.push_back({{"parameter_name", p.name},
                        {"parameter_type", "range"},
                        {"parameter_values", {{"start", 0}, {"end", kIntMax}}}});
    } else if (p.kind == Param::Direction) {
      params.push_back({{"parameter_name", p.name},
                        {"parameter_type", "choices"},
                        {"parameter_values", p.choices}});
    } else {
      params.push_back({{"parameter_name", p.name},
                        {"parameter_type", "choices"},
                        {"parameter_values", kDscpMarks}});
    }
  }
  return json(200, {{"rule_type",
                     {{"type", type->type},
                      {"drivers", {{{"name", "canopy"}, {"supported_parameters", params}}}}}}});
}

HttpResponse serveQosRules(const ApiWriter& w, const ResourceKind& policies,
                           const std::vector<std::string>& parts, const HttpRequest& req,
                           const Caller& caller) {
  const RuleType* type = ruleTypeByPath(parts[3]);
  if (type == nullptr) return unknownPath(req);
  const std::string& policy_id = parts[2];
  const std::string* rule_id = parts.size() == 5 ? &parts[4] : nullptr;
  if (req.method == "GET") {
    std::optional<Json> out = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
      const state::Document* p = t.find("qos-policies", policy_id);
      if (p == nullptr || !policies.visible(p->doc, caller, t)) return std::nullopt;
      Json list = Json::array();
      for (const auto& r : p->doc.value("rules", Json::array())) {
        if (r.value("type", "") != type->type) continue;
        if (rule_id != nullptr) {
          if (r.value("id", "") == *rule_id) {
            return Json{{std::string(type->member), ruleView(*type, r, req)}};
          }
        } else if (matchesFilters(r, req)) {
          list.push_back(ruleView(*type, r, req));
        }
      }
      if (rule_id != nullptr) return Json();
      return Json{{std::string(type->path), std::move(list)}};
    });
    if (!out) return errorResponse(policyNotFound(policy_id));
    if (out->is_null()) return errorResponse(ruleNotFound(*rule_id, policy_id));
    return json(200, *out);
  }
  const bool create = rule_id == nullptr && req.method == "POST";
  const bool change = rule_id != nullptr && req.method == "PUT";
  const bool remove = rule_id != nullptr && req.method == "DELETE";
  if (!create && !change && !remove) return methodNotAllowed();
  // Creating is refused to non-admins before anything is looked up, as
  // Neutron's policy engine does; a change first needs the rule found.
  const std::string verb = std::string(create   ? "create"
                                       : change ? "update"
                                                : "delete") +
                           "_policy_" + std::string(type->member);
  if (create && !caller.is_admin) {
    return errorResponse(model::policyRefused("(rule:" + verb + ") is disallowed by policy"));
  }
  Json result;
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    const state::Document* p = ctx.find("qos-policies", policy_id);
    if (p == nullptr || !policies.visible(p->doc, ctx.caller(), ctx.tables())) {
      return policyNotFound(policy_id);
    }
    Json doc = p->doc;
    Json rules = doc.value("rules", Json::array());
    auto at = rules.end();
    if (rule_id != nullptr) {
      at = std::find_if(rules.begin(), rules.end(), [&](const Json& x) {
        return x.value("id", "") == *rule_id && x.value("type", "") == type->type;
      });
      if (at == rules.end()) return ruleNotFound(*rule_id, policy_id);
    }
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:" + verb + ") is disallowed by policy");
    }
    if (remove) {
      rules.erase(at);
    } else {
      Json base = change ? *at : Json::object();
      auto wanted = checkedRule(*type, req, base, create);
      if (!wanted) return std::move(wanted).error();
      if (create) {
        (*wanted)["id"] = newUuid();
        (*wanted)["type"] = type->type;
        (*wanted)["qos_policy_id"] = policy_id;
      }
      if (auto c = checkRuleConflicts(*type, rules, *wanted, policy_id); !c) return c;
      if (create) {
        rules.push_back(*wanted);
      } else {
        *at = *wanted;
      }
      result = *wanted;
    }
    doc["rules"] = std::move(rules);
    putParent(ctx, "qos-policies", policy_id, std::move(doc), p->mod_revision);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (remove) return noContent();
  HttpRequest plain;  // the answer to a write shows every field
  return json(create ? 201 : 200, {{std::string(type->member), ruleView(*type, result, plain)}});
}

}  // namespace detail
}  // namespace canopy::api
