#pragma once
// Neutron's quotas: the resources counted per project, their default limits,
// and the checks of a quota update. -1 means unlimited.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/json.h"

namespace canopy::model {

struct QuotaResource {
  std::string name;        // "security_group": the key in quota bodies
  std::string collection;  // "security-groups": what is counted
  int64_t default_limit;
};

// Every resource with a quota, in the order Neutron lists them.
const std::vector<QuotaResource>& quotaResources();

// The quota resource counting a collection, or nullptr.
const QuotaResource* quotaFor(std::string_view collection);

// A project's limits: the defaults overridden by its stored document (which
// may be null).
Json quotaLimits(const Json* stored);

// Checks the body of PUT /v2.0/quotas/<project> ({"quota": {...}}): known
// resources, integers of at least -1. Returns the limits given.
Result<Json> checkQuotaUpdate(const Json& body);

// "Quota exceeded for resources: ['network']." (409 OverQuota).
Error overQuota(std::string_view resource);

}  // namespace canopy::model
