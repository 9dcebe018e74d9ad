#pragma once
// Network segment ranges as networks draw on them: the ids a new network
// of a project may take, the project's own ranges first, then the shared
// ones (the configured defaults and those an admin made shared).
//
// Thread-safety: functions of one request's Tables.

#include <string>
#include <utility>
#include <vector>

#include "api/kind.h"

namespace canopy::api::detail {

// The ranges `project` draws `network_type` ids from (for VLANs, on
// `physical_network`; "" for any), in the order to try them, each with
// the physical network it is on.
struct SegmentRange {
  std::string physical_network;
  int64_t minimum = 0;
  int64_t maximum = 0;
};
std::vector<SegmentRange> segmentRangesFor(const state::Tables& tables,
                                           const model::NetworkConfig& config,
                                           const std::string& project,
                                           const std::string& network_type,
                                           const std::string& physical_network);

}  // namespace canopy::api::detail
