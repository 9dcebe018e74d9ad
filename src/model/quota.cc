#include "model/quota.h"

#include <limits>

#include "model/attributes.h"

namespace canopy::model {

const std::vector<QuotaResource>& quotaResources() {
  static const std::vector<QuotaResource> resources = {
      {"floatingip", "floatingips", 50},
      {"network", "networks", 100},
      {"port", "ports", 500},
      {"rbac_policy", "rbac-policies", 10},
      {"router", "routers", 10},
      {"security_group", "security-groups", 10},
      {"security_group_rule", "security-group-rules", 100},
      {"subnet", "subnets", 100},
      {"subnetpool", "subnetpools", -1},
  };
  return resources;
}

const QuotaResource* quotaFor(std::string_view collection) {
  for (const auto& r : quotaResources()) {
    if (r.collection == collection) return &r;
  }
  return nullptr;
}

Json quotaLimits(const Json* stored) {
  Json out = Json::object();
  for (const auto& r : quotaResources()) {
    out[r.name] = r.default_limit;
    if (stored != nullptr && stored->contains(r.name) && (*stored)[r.name].is_number_integer()) {
      out[r.name] = (*stored)[r.name];
    }
  }
  return out;
}

Result<Json> checkQuotaUpdate(const Json& body) {
  if (!body.is_object() || !body.contains("quota") || !body["quota"].is_object()) {
    return badRequest("Body must be {\"quota\": {...}}");
  }
  Json out = Json::object();
  for (auto it = body["quota"].begin(); it != body["quota"].end(); ++it) {
    bool known = false;
    for (const auto& r : quotaResources()) known = known || r.name == it.key();
    if (!known) return badRequest("Unrecognized attribute(s) '" + it.key() + "'");
    auto value = validateAttributes(
        ResourceSpec{
            .collection = "quotas",
            .member = "quota",
            .type_name = "Quota",
            .attrs = {AttrSpec{.name = it.key(), .type = AttrType::Int, .allow_put = true}}},
        Json{{it.key(), it.value()}}, Action::Update, Caller{.project_id = {}, .is_admin = true});
    if (!value) return std::move(value).error();
    int64_t limit = (*value)[it.key()].get<int64_t>();
    constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
    if (limit < -1 || limit > kMax) {
      return invalidInput(it.key(), "'" + std::to_string(limit) + "' is not in range -1 through " +
                                        std::to_string(kMax));
    }
    out[it.key()] = limit;
  }
  return out;
}

Error overQuota(std::string_view resource) {
  return Error(Errc::Conflict, "Quota exceeded for resources: ['" + std::string(resource) + "'].",
               "OverQuota");
}

}  // namespace canopy::model
