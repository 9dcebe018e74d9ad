#pragma once
// The slow path: walks one packet through the tenant's virtual devices, as
// MidoNet's simulation does, and returns what to do with it: a list of
// actions (rewrites, conntrack commits, NAT, deliveries, tunnels, uplinks,
// generated replies) plus the topology objects the decision depended on,
// whose tags invalidate it in the flow cache when they change.
//
// A packet is simulated in one of five stages, each on the host that holds
// the state it needs:
//
//   FromPort    a local VM port sent it: port security, egress security
//               group, the logical switch (ARP responder, DHCP server, L2,
//               flooding), routers (TTL, longest-prefix match, ICMP, NAT),
//               up to the destination port, tunnel, uplink or gateway host;
//   FromUplink  it arrived on an uplink (external or provider network):
//               ARP for the addresses this host serves, floating-IP DNAT,
//               routing in from the gateway;
//   ToPort      delivery to a local port (after a tunnel, or on the same
//               host): its ingress security group, with the sender's
//               groups known by tag or matched by address;
//   ToGateway   on the host that holds a router's gateway: next hop, SNAT,
//               out the uplink;
//   FromMetadata the host's metadata service answered a VM (see below):
//               back to the VM's port.
//
// The metadata service (169.254.169.254:80) is answered on the VM's own
// host: a VM's TCP to it leaves its port with its source rewritten to an
// address that names the port (metadataPeer()), for the agent's HTTP
// server behind the metadata interface; the server's answers come back
// from that interface and go to the port the address names. Neither
// direction passes the security groups or conntrack (as DHCP does not): the
// port, not the packet, says whose metadata it is.
//
// Everything the decision depends on besides the topology is an input: the
// flow key (with the conntrack state, as in Context) and, for ARP and DHCP,
// the frame. Decisions that answer with generated frames (ARP, DHCP, ICMP)
// are marked not cacheable; all others are a pure function of the cache key.
//
//   Simulator sim(*topology, host, neighbors);
//   Trace trace;                                    // optional
//   Simulation s = sim.run(ctx, frame, parsed, &trace);
//   if (s.decision.cacheable) cache.insert(key, s.decision, s.tags);
//
// Thread-safety: a Simulator reads an immutable Topology and a neighbour
// table the caller does not change during run(); one per worker.

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "datapath/conntrack/conntrack.h"
#include "datapath/flowcache/flow_cache.h"
#include "datapath/packet/parser.h"
#include "datapath/packet/wire.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::simulator {

using flowcache::Tag;
using packet::Ipv4Address;
using packet::MacAddress;

// What a tag names. A tag is the hash of its kind and the object's key.
enum class TagKind : uint8_t {
  Switch = 1,       // a switch's settings and which ports it has
  Port,             // a port's settings
  Router,           // a router's interfaces, routes and gateway
  Group,            // a security group's rules and members
  FloatingAddress,  // the floating IP at an external address
  Neighbor,         // a learned external MAC binding (switch, address)
  Host,             // a host's tunnel endpoint
};
Tag tagOf(TagKind kind, uint64_t key) noexcept;
Tag neighborTag(uint32_t switch_key, const IpAddress& ip) noexcept;
Tag floatingTag(const IpAddress& external) noexcept;

// The tags of every object that differs between two snapshots: what a
// topology update must invalidate in the flow cache.
std::vector<Tag> changedTags(const topology::Topology& before, const topology::Topology& after);

// The metadata service's address and port, the MAC that answers ARP for it
// and that its answers come from.
inline constexpr Ipv4Address kMetadataAddress = Ipv4Address::of(169, 254, 169, 254);
inline constexpr uint16_t kMetadataPort = 80;
inline constexpr MacAddress kMetadataMac{{0x02, 0x00, 0x5e, 0xa9, 0xfe, 0xfe}};

// Which port's request a metadata connection carries, by its rewritten
// source address: 10.0.0.0/8 holding the port's key and which of its IPv4
// addresses the VM used (the answer goes back to it). Ports whose key is
// 2^22 or more, and addresses after a port's fourth, are not served.
struct MetadataPeer {
  uint32_t port = 0;
  uint8_t index = 0;  // among the port's IPv4 addresses

  friend bool operator==(const MetadataPeer&, const MetadataPeer&) = default;
};
inline constexpr uint32_t kMetadataMaxPorts = 1u << 22;
std::optional<Ipv4Address> metadataAddressOf(MetadataPeer peer);
std::optional<MetadataPeer> metadataPeerOf(Ipv4Address address);

// The host a simulation runs on.
struct HostContext {
  uint32_t host = 0;                   // this host's key
  std::vector<std::string> uplinks{};  // the physical networks it reaches
  uint32_t dhcp_lease_seconds = 86400;
  // Whether this host serves the metadata service (its agent has the
  // interface behind it): ARP for the address, the requests, the route by
  // DHCP on subnets without a router.
  bool metadata = false;

  bool hasUplink(const std::string& physical_network) const;
};

// External MAC bindings, learned from ARP on uplinks (OVN's MAC_Binding).
class Neighbors {
 public:
  virtual ~Neighbors() = default;
  virtual std::optional<MacAddress> find(uint32_t switch_key, const IpAddress& ip) const = 0;
};

// FromSnatLease: a reply to distributed SNAT, steered from the host holding
// the router's gateway to the host whose lease of ports it is for, and
// translated back there (key: the router).
enum class Stage : uint8_t { FromPort, FromUplink, ToPort, ToGateway, FromMetadata, FromSnatLease };

// Distributed SNAT: the MAC a host's translated packets leave its uplink
// from (one per host, as Neutron DVR's host MACs), so that the physical
// network keeps learning the gateway's own MAC at the host that holds it.
inline constexpr MacAddress distributedSnatMac(uint32_t host) {
  return MacAddress{{0xfa, 0x16, 0x3f, static_cast<uint8_t>(host >> 16),
                     static_cast<uint8_t>(host >> 8), static_cast<uint8_t>(host)}};
}

// The sender's security groups, for remote-group rules at ToPort: known
// (from the local source port or a Geneve option) or unknown (VXLAN, an
// uplink), in which case remote groups are matched by source address.
struct Sender {
  bool known = false;
  std::vector<uint32_t> groups{};  // sorted
};

// What the decision depends on besides the packet's flow key.
struct Context {
  Stage stage = Stage::FromPort;
  uint32_t key = 0;  // port (FromPort, ToPort), switch (FromUplink), router (ToGateway)
  conntrack::CtState ct = conntrack::CtState::Untracked;
  bool ct_reply = false;
  // TCP: both sides sent FIN, or a RST: its flows leave the kernel, and no
  // new one is offered (not part of the decision).
  bool ct_closing = false;
  DropReason ct_invalid = DropReason::None;  // why, when ct is Invalid
  Sender sender{};                           // ToPort only
  // FromPort: the member a connection to a load balancer's VIP is pinned
  // to (port 0: none); it stands in the cache key as a hash.
  IpAddress lb_member{};
  uint16_t lb_member_port = 0;
};

enum class ActionKind : uint8_t {
  CtCommit,      // commit the connection in the stage port's zone
  SetEth,        // source and destination MAC
  DecrementTtl,  // IPv4 TTL (with checksum) or IPv6 hop limit
  CheckMtu,      // too big (IPv4 with DF, any IPv6): ICMP fragmentation needed or packet
                 // too big from `from`, back to the sender
  Nat,           // stateless: `side` address becomes `address` (floating IPs), and its
                 // port `to_port` when set (port forwarding)
  Snat,          // stateful masquerade as `address` with a port of `port_first`-`port_last`
                 // (router SNAT on the gateway host, or in the host's lease)
  LocalIpDnat,   // stateful: the destination (a local IP) becomes `address`, replies remembered
  LocalIpReply,  // a local IP connection's reply gets the local IP back as its source
  LbDnat,        // stateful: a connection to a VIP goes to member `to`:`to_port` of
                 // `listener`, pinned, its replies remembered; `hairpin`: the source
                 // becomes the VIP too (the member is the client)
  LbChoose,      // least connections: pin the connection to the member of the VIP
                 // `to` on `switch_key` with the fewest, then run the stage again
  Deliver,       // to local port `port`: run its ToPort stage
  Output,        // out of local port `port` (the end of ToPort); `vlan`: tagged (a
                 // trunk's subport, out of its parent's interface)
  Tunnel,        // to host `host` with VNI `vni`: logical port `port`, router `router`'s
                 // gateway, or (both 0) a flood
  Uplink,        // out of the uplink of switch `switch_key` (VLAN tag added if it has one)
  Emit,          // send the generated `frame` back where the packet came from, or out of
                 // the uplink of `switch_key` when set
  ToMetadata,    // out of the metadata interface, to the host's metadata service
  Meter,         // count the packet for metering label `meter` (its id, hashed)
  Police,        // QoS: within port `port`'s bandwidth limit `limit_kbps`/`burst_kbits`
                 // of its direction (`source_side`: what it sends), or dropped
  SetDscp,       // QoS: an IP packet's DSCP becomes `dscp` (ECN kept)
  Log,           // security-group logging: port `port`'s groups `accepted` (a new
                 // connection) or refused the packet, sent by it (`source_side`)
};

struct Action {
  ActionKind kind = ActionKind::Output;
  bool source_side = true;  // Nat: rewrite the source (else the destination); see groups
  MacAddress eth_src{};
  MacAddress eth_dst{};
  Ipv4Address address{};
  IpAddress from{};  // CheckMtu: the router's address that the error comes from
  uint16_t mtu = 0;
  uint32_t port = 0;
  uint32_t host = 0;
  uint32_t vni = 0;
  uint32_t switch_key = 0;
  uint32_t router = 0;
  IpAddress remote{};  // Tunnel: the host's tunnel address
  IpAddress to{};      // LbDnat: the member; LbChoose: the VIP
  uint16_t to_port = 0;
  // LbDnat: the member's index in its listener's members plus one when the
  // listener's Maglev table chose it (the VIP's switch in `switch_key`);
  // 0 when a pin did.
  uint16_t lb_member = 0;
  uint16_t port_first = 1024, port_last = 65535;  // Snat
  uint64_t listener = 0;                          // LbDnat: the listener's id, hashed
  uint32_t limit = 0;        // LbDnat: the listener's connections on this host at most (0: none)
  uint64_t meter = 0;        // Meter: the label's id, hashed
  uint64_t limit_kbps = 0;   // Police
  uint64_t burst_kbits = 0;  // Police: 0 for 80 % of a second's worth
  uint8_t dscp = 0;          // SetDscp
  uint16_t vlan = 0;         // Output: the 802.1Q tag pushed (0: none)
  bool accepted = false;     // Log
  bool hairpin = false;
  bool vxlan = false;  // Tunnel: the host takes VXLAN only
  // Nat and Snat: the router's conntrack helper for the connection.
  std::optional<topology::NatHelperKind> helper{};
  // Deliver and Tunnel: the sender's groups, when `source_side` (known).
  std::vector<uint32_t> groups{};
  std::vector<uint8_t> frame{};  // Emit
};

struct Decision {
  std::vector<Action> actions{};
  // Why nothing (more) is sent, when the packet is dropped; None when it is
  // delivered or answered.
  DropReason drop = DropReason::None;
  bool cacheable = true;
  // What invalidates it (Simulation::tags), kept only when the datapath
  // offers flows to the kernel fast path, whose flows go by them too.
  std::vector<Tag> tags{};
};

// Human-readable steps in Neutron's terms, for `canopy trace` and tests.
using Trace = std::vector<std::string>;

struct Simulation {
  Decision decision{};
  std::vector<Tag> tags{};  // sorted, unique
};

class Simulator {
 public:
  Simulator(const topology::Topology& topology, const HostContext& host, const Neighbors& neighbors)
      : topology_(topology), host_(host), neighbors_(neighbors) {}

  // Simulates one parsed frame. `trace` may be null (the fast case).
  Simulation run(const Context& ctx, std::span<const uint8_t> frame,
                 const packet::ParsedPacket& parsed, Trace* trace = nullptr) const;

 private:
  const topology::Topology& topology_;
  const HostContext& host_;
  const Neighbors& neighbors_;
};

}  // namespace canopy::datapath::simulator
