#pragma once
// Trunks as the port kind and the router use them (kinds/trunk.cc).
//
// Thread-safety: functions of one request's Transaction, or stateless.

#include <string>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api::detail {

// A port a trunk holds (as its parent or a subport) cannot go: 409
// PortInUseAsTrunkParent or PortInUseAsSubPort.
Result<void> checkTrunkPortRemoval(const Json& port, const Transaction& ctx);
// A trunk's parent port moved to another host (`before` its update): its
// subports are bound there too.
void followParentBinding(const Json& port, const Json& before, Transaction& ctx);
// GET /v2.0/trunks/<id>/get_subports.
HttpResponse serveTrunkSubports(const ApiWriter& w, const ResourceKind& trunks,
                                const std::string& id, const HttpRequest& req,
                                const Caller& caller);

}  // namespace canopy::api::detail
