#pragma once
// Availability zones as networks and routers use them: the zones Canopy's
// agents report, hints checked against them, the zones of some hosts.
//
// Thread-safety: functions of one request's Tables or Transaction.

#include <map>
#include <string>
#include <vector>

#include "api/kind.h"

namespace canopy::api::detail {

// Every zone an agent (not a static VTEP) is in: whether one is alive.
std::map<std::string, bool> availabilityZones(const state::Tables& tables);
// availability_zone_hints name zones that exist (404 AvailabilityZoneNotFound).
Result<void> checkZoneHints(const Json& hints, const Transaction& ctx);
// The zones of these hosts' agents, sorted.
Json hostZones(const state::Tables& tables, const std::vector<std::string>& hosts);

}  // namespace canopy::api::detail
