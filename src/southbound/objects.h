#pragma once
// One object of the model as a host view carries it (host_view.h): a
// network as a switch, a port, a router, a security group, an agent's host,
// a floating IP. Each is converted from its document and the keys alone, so
// that the whole view (view.h) and the incremental one (tracker.h) build
// the same objects the same way. Nothing here decides what a host sees;
// an object that cannot be carried yet (no key, an unusable address) is
// nullopt.
//
//   auto sw = switchOf(tables, network_id);
//   auto port = portOf(tables, port_doc, [&](uint32_t sw) { return view.switches.count(sw); });
//
// Thread-safety: pure functions over a Tables the caller holds read-locked.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "datapath/topology/topology.h"
#include "model/json.h"
#include "state/model_state.h"

namespace canopy::southbound {

namespace topology = datapath::topology;

// A document by collection and id; null if there is none.
const model::Json* docOf(const state::Tables& tables, std::string_view collection,
                         std::string_view id);
// The documents an index files under `key`.
std::vector<const model::Json*> indexedDocs(const state::Tables& tables, std::string_view index,
                                            std::string_view collection, std::string_view key);

bool isRouterPort(std::string_view device_owner);
bool isExternalNetwork(const state::Tables& tables, std::string_view network_id);

// The host's key when it has one and an agent document; else 0.
uint32_t hostKeyOf(const state::Tables& tables, std::string_view host);
std::optional<topology::Host> hostOf(const state::Tables& tables, std::string_view host);

// The network with its subnets.
std::optional<topology::Switch> switchOf(const state::Tables& tables, std::string_view network_id);

// Which switches the view holds: a port or router port on a switch the view
// lacks is left out.
using HasSwitch = std::function<bool(uint32_t switch_key)>;

// A VM's (or DHCP's) port. `groups` receives the ids of its security groups
// that have keys.
// The port that has a load balancer's member's address (a Neutron port
// id), or "": on the member's subnet's network, or without one, on the
// VIP's network or a network of a router on it.
std::string memberPortOf(const state::Tables& tables, const model::Json& member);

std::optional<topology::Port> portOf(const state::Tables& tables, const model::Json& port,
                                     const HasSwitch& has_switch,
                                     std::vector<std::string>* groups = nullptr);

// A router: its interfaces and gateway on the switches the view holds, and
// its routes. `switches` gives a switch's subnets by key.
using SwitchAt = std::function<const topology::Switch*(uint32_t switch_key)>;
std::optional<topology::Router> routerOf(const state::Tables& tables, std::string_view router_id,
                                         const SwitchAt& switches);
// The host its gateway port is bound to ("" for none).
std::string gatewayHostOf(const state::Tables& tables, std::string_view router_id);
// The router's gateway host and its standby hosts, in order (none: no
// gateway, or not scheduled).
std::vector<std::string> gatewayHostsOf(const state::Tables& tables, std::string_view router_id);
// A gateway port's standby host names (gateway high availability).
std::vector<std::string> standbyHostsOf(const model::Json& port);
// Distributed SNAT: a gateway port's leased port blocks by host name, and
// the gateway's central range and leases (by host key) from its document.
std::map<std::string, std::pair<uint16_t, uint16_t>> snatLeaseHostsOf(const model::Json& port);
void snatLeasesOf(const state::Tables& tables, const model::Json& port, topology::Gateway& gw);

// A security group; `remotes` receives the ids of the groups its rules name
// (only rules whose remote group exists and has a key are carried).
std::optional<topology::SecurityGroup> groupOf(const state::Tables& tables,
                                               std::string_view group_id,
                                               std::vector<std::string>* remotes = nullptr);

// A floating IP of router `router_key`, whose port the view holds.
std::optional<topology::FloatingIp> floatingIpOf(const state::Tables& tables,
                                                 const model::Json& floating_ip,
                                                 uint32_t router_key,
                                                 const std::function<bool(uint32_t)>& has_port);

}  // namespace canopy::southbound
