#pragma once
// What routers and floating IPs share: their error wording, the claim that
// keeps one floating IP per fixed IP, a router's ports, the networks a
// caller may use.
//
// Thread-safety: functions of one request's Transaction.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/kind.h"
#include "base/ip.h"

namespace canopy::api::detail {

Error badRouter(const std::string& message);
Error badFloatingIp(const std::string& message);
inline std::string str(const Json& doc, const char* key) { return model::stringAt(doc, key); }
// The claim that keeps one floating IP per fixed IP and external network.
std::string bindingKey(const std::string& network_id, const std::string& port_id,
                       const std::string& fixed_ip);
// The ports a router owns with this device owner.
std::vector<const Json*> routerPorts(const Transaction& ctx, const std::string& router_id,
                                     std::string_view owner);
// Subnet ids of a port's fixed IPs.
std::vector<std::string> portSubnets(const Json& port);
std::optional<IpPrefix> subnetCidr(const Transaction& ctx, const std::string& subnet_id);
bool mayUse(const Json& doc, const Caller& caller);
// A network the caller may see (its own, shared or external), or NotFound.
Result<const Json*> visibleNetwork(const Transaction& ctx, const std::string& id);

}  // namespace canopy::api::detail
