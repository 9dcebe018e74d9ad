#pragma once
// Ports' addresses and claims, shared by the port kind and the ports the
// server makes for other resources (kind.h's createServicePort): the claims
// that keep an IP and a MAC unique in a network, IPAM allocation, the
// completion of a new port.
//
// Thread-safety: functions of one request's Transaction.

#include <string>

#include "api/kind.h"

namespace canopy::api::detail {

std::string ipKey(const std::string& network_id, const std::string& ip);
std::string macKey(const std::string& network_id, const std::string& mac);
// A port's security groups exist and may be used, and port security allows them.
Result<void> checkSecurityGroups(const Json& doc, const Transaction& ctx);
// Turns the requested fixed_ips (or none: automatic) into allocations,
// claiming each new address in the store and releasing those given up.
Result<Json> allocate(const Json& doc, const Json& held, Transaction& ctx, bool ipv4_only = false);
// Gives back a port's addresses and MAC.
void releasePortClaims(const Json& port, Transaction& ctx);
// Completes a new port on `network`: MAC, port security, security groups,
// addresses, with their claims.
Result<void> completeNewPort(Json& doc, const Json& network, Transaction& ctx,
                             const model::NetworkConfig& config, bool ipv4_only);

}  // namespace canopy::api::detail
