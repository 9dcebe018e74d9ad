#pragma once
// Floating IP port forwardings as the floating IP and port kinds use them
// (kinds/port_forwarding.cc).
//
// Thread-safety: functions of one request's Transaction, or stateless.

#include <string>
#include <vector>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api::detail {

// A floating IP's forwardings as its view shows them
// (expose-port-forwarding-in-fip, with -detail's id and internal_port_id).
Json portForwardingsView(const Json& fip);
// A port that goes takes the forwardings to it along (Neutron's).
void removeForwardingsTo(const std::string& port_id, Transaction& ctx);
// /v2.0/floatingips/<id>/port_forwardings[/<pf>] (parts: v2.0, floatingips,
// id, port_forwardings[, pf]).
HttpResponse serveFloatingIpPortForwardings(const ApiWriter& w, const ResourceKind& fips,
                                            const std::vector<std::string>& parts,
                                            const HttpRequest& req, const Caller& caller);

}  // namespace canopy::api::detail
