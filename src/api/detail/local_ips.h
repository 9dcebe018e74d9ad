#pragma once
// Local IPs as ports see them: a port a local IP stands on may not go while
// the local IP does; a port's associations go with it.
//
// Thread-safety: functions of one request's Transaction.

#include "api/kind.h"

namespace canopy::api::detail {

// ServicePortInUse (409) while a local IP names `port` as its local port.
Result<void> checkLocalIpPort(const Json& port, const Transaction& ctx);
// Removes the local IP associations of port `port_id`.
void removeLocalIpAssociations(const std::string& port_id, Transaction& ctx);

}  // namespace canopy::api::detail
