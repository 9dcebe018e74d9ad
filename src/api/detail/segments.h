#pragma once
// A network's segment as a resource of its own (Neutron's /v2.0/segments):
// the document the network's provider attributes describe, made with the
// network and removed with it.
//
// Thread-safety: functions of one request's Transaction.

#include <string>

#include "api/kind.h"

namespace canopy::api::detail {

// Adds the segment document of `network` (its provider attributes set).
void addSegment(Transaction& ctx, const Json& network);
// Removes the segments of network `network_id`.
void removeSegments(Transaction& ctx, const std::string& network_id);

}  // namespace canopy::api::detail
