#pragma once
// Neutron's L3 resources: routers (with the external gateway, ext-gw-mode
// and extraroute extensions) and floating IPs. Attribute maps and the
// format checks that need no I/O; what needs the model (reachability,
// connected next hops) lives with the API's resource kinds.

#include <string>

#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& routerSpec();
const ResourceSpec& floatingIpSpec();

// Device owners of the ports the L3 resources make.
inline constexpr std::string_view kOwnerRouterInterface = "network:router_interface";
inline constexpr std::string_view kOwnerRouterGateway = "network:router_gateway";
inline constexpr std::string_view kOwnerFloatingIp = "network:floatingip";

// Neutron's extraroute limit per router.
inline constexpr size_t kMaxRoutes = 30;

// Checks a list of {"destination": CIDR, "nexthop": IP} (no other keys, no
// duplicates) and normalises each destination to its network address.
Result<Json> normaliseRoutes(const Json& routes);

}  // namespace canopy::model
