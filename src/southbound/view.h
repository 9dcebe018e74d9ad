#pragma once
// A host's view of the logical model (ARCHITECTURE.md, "Southbound"): the
// closure of what its ports can reach. From the ports bound to the host (and
// the routers whose gateway it holds): their networks; the routers on those
// networks and, transitively, the networks behind them (never expanding
// through an external network); every port on those networks; the security
// groups those ports use and the groups their rules name; the floating IPs
// of those routers; the hosts of all those ports and gateways.
//
// Objects carry the small integer keys the southbound assigns once and keeps
// in the store (keys.h), so that the same key names the same object on every
// host.
//
//   state.read([&](const state::Tables& t) { view = computeView(t, "compute-1"); });
//   auto built = view.builder().build(version);   // the agent's Topology
//
// Thread-safety: pure functions over a Tables the caller holds read-locked;
// a HostView is a value.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>

#include "model/json.h"
#include "southbound/host_view.h"
#include "state/model_state.h"

namespace canopy::southbound {

// The closure's skeleton: the networks and routers a host sees, and each
// router's networks (interfaces and gateway).
struct ViewClosure {
  std::set<std::string> networks, routers;
  std::map<std::string, std::set<std::string>> router_networks;
};
ViewClosure closureOf(const state::Tables& tables, std::string_view host);
// The networks a router is on: its interfaces' and its gateway's.
std::set<std::string> routerNetworks(const state::Tables& tables, std::string_view router);

// Whether a port on one of the closure's networks is in the host's view:
// not a router's or floating IP's port, and on an external network only
// the host's own.
bool inView(const model::Json& port, bool external_network, std::string_view host);

// The view of the host named `host` (binding:host_id). Objects that have no
// key yet (keys.h assigns them) are left out. The tracker (tracker.h) keeps
// the same view up to date incrementally.
HostView computeView(const state::Tables& tables, std::string_view host);

// VNIs of networks that are not overlays (flat, VLAN): still named by a VNI
// inside Canopy's own tunnels (to a gateway host), from a range tenant
// networks do not use.
inline constexpr uint32_t kInternalVniBase = 0xf00000;

}  // namespace canopy::southbound
