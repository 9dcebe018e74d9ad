#pragma once
// What an agent knows about its part of the world (the southbound view), as
// an immutable snapshot: logical switches with their subnets and DHCP
// settings, logical ports (MAC, addresses, allowed pairs, port security,
// security groups, host), routers (interfaces, static routes, external
// gateway with SNAT and its host), floating IPs, security groups with their
// rules and members, and hosts (tunnel endpoints).
//
// Objects are named by small integer keys the server assigns (like OVN's
// tunnel keys) and keep their Neutron id for traces. A TopologyBuilder
// collects them and build() checks every reference, so a bad view is a
// clear error, never a dangling lookup in the datapath.
//
//   TopologyBuilder b;
//   b.addSwitch({.key = 1, .id = net_id, .vni = 100, .mtu = 1442});
//   b.addPort({.key = 10, .switch_key = 1, .mac = mac, .ips = {ip}});
//   auto topology = b.build(version);        // Result<shared_ptr<const Topology>>
//   const Port* p = (*topology)->portByMac(1, mac);
//
// Thread-safety: a built Topology is immutable and shared by workers (swapped
// whole, see base/snapshot_cell.h); a builder belongs to one thread.

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_set>
#include <vector>

#include "base/ip.h"
#include "base/result.h"
#include "datapath/nat/maglev.h"
#include "datapath/packet/wire.h"

namespace canopy::datapath::topology {

using packet::MacAddress;

using canopy::IpAddress;
using canopy::IpPrefix;

struct HostRoute {
  IpPrefix destination{};
  IpAddress nexthop{};

  friend bool operator==(const HostRoute&, const HostRoute&) = default;
};

// How an IPv6 subnet's hosts configure themselves (Neutron's ipv6_ra_mode
// and ipv6_address_mode): by router advertisements alone (SLAAC), SLAAC and
// DHCPv6 for the rest (stateless), or their address by DHCPv6 (stateful).
enum class Ipv6Mode : uint8_t { None, Slaac, Dhcpv6Stateless, Dhcpv6Stateful };

struct Subnet {
  std::string id{};
  IpPrefix cidr{};
  std::optional<IpAddress> gateway{};
  bool dhcp = true;
  std::vector<IpAddress> dns_servers{};
  std::vector<HostRoute> host_routes{};
  // Router advertisements from the subnet's router interface (None: none,
  // another router advertises); how DHCPv6 serves it (None or Slaac: not).
  Ipv6Mode ra_mode = Ipv6Mode::None;
  Ipv6Mode address_mode = Ipv6Mode::None;

  friend bool operator==(const Subnet&, const Subnet&) = default;
};

struct Switch {
  uint32_t key = 0;
  std::string id{};
  std::string name{};
  uint32_t vni = 0;
  uint16_t mtu = 1500;
  std::vector<Subnet> subnets{};
  bool external = false;           // router:external
  std::string physical_network{};  // flat/VLAN: the uplink it leaves by
  uint16_t vlan = 0;
  std::string dns_domain{};  // DHCP option 15 when set

  friend bool operator==(const Switch&, const Switch&) = default;
};

struct AddressPair {
  MacAddress mac{};
  IpPrefix prefix{};

  friend bool operator==(const AddressPair&, const AddressPair&) = default;
};

// A DHCPv4 option as the server sends it (RFC 2132 code and value bytes).
struct DhcpOption {
  uint8_t code = 0;
  std::vector<uint8_t> value{};

  friend bool operator==(const DhcpOption&, const DhcpOption&) = default;
};

// A DHCPv6 option as the server sends it (code, value bytes).
struct Dhcpv6Option {
  uint16_t code = 0;
  std::vector<uint8_t> value{};

  friend bool operator==(const Dhcpv6Option&, const Dhcpv6Option&) = default;
};

// A local IP a port answers on its host (Neutron's local IP association):
// what the port's network's other ports on that host send to `local` goes
// to `fixed`, one of the port's addresses, and the replies come from
// `local`. IPv4.
struct LocalIp {
  IpAddress local{};
  IpAddress fixed{};

  friend bool operator==(const LocalIp&, const LocalIp&) = default;
};

// A bandwidth limit (Neutron's bandwidth_limit rule): `kbps` kilobits per
// second with bursts of `burst_kbits` (0: 80 % of a second's worth, as
// Neutron's Open vSwitch driver takes it).
struct BandwidthLimit {
  uint64_t kbps = 0;
  uint64_t burst_kbits = 0;

  friend bool operator==(const BandwidthLimit&, const BandwidthLimit&) = default;
};

// A subport of a trunk: frames of VLAN `vid` on the parent's interface are
// port `port`'s.
struct TrunkSubport {
  uint16_t vid = 0;
  uint32_t port = 0;

  friend bool operator==(const TrunkSubport&, const TrunkSubport&) = default;
};

// A port's QoS policy as the datapath enforces it: limits on what the port
// sends (egress) and receives (ingress), and the DSCP mark written on the
// IP packets it sends.
struct PortQos {
  std::optional<BandwidthLimit> egress{};
  std::optional<BandwidthLimit> ingress{};
  std::optional<uint8_t> dscp{};

  bool empty() const { return !egress && !ingress && !dscp; }
  friend bool operator==(const PortQos&, const PortQos&) = default;
};

// How a listener spreads new connections over its members. Every host
// chooses by Maglev hashing (nat/maglev.h) so that all agree without
// asking: the connection's 5-tuple (RoundRobin, SourceIpPort) or its source
// address alone (SourceIp, and session persistence by source IP).
// LeastConnections takes the member with the fewest connections that this
// host has open through the listener.
enum class LbAlgorithm : uint8_t { RoundRobin, LeastConnections, SourceIp, SourceIpPort };

// How a pool's members are checked (Octavia's health monitor), by the
// agent of each member's own host: an echo (Ping), a connection (Tcp), an
// HTTP request whose status must be one of `expected_codes` ("200",
// "200,202", "200-204"), or a datagram that must not be refused
// (UdpConnect). A member is found down after `max_retries_down` failed
// checks in a row, and up again after `max_retries` good ones.
enum class LbMonitorType : uint8_t { Ping, Tcp, Http, UdpConnect };

struct LbMonitor {
  LbMonitorType type = LbMonitorType::Tcp;
  uint32_t delay = 5;    // seconds between checks
  uint32_t timeout = 5;  // seconds a check may take
  uint32_t max_retries = 3;
  uint32_t max_retries_down = 3;
  std::string http_method = "GET";
  std::string url_path = "/";
  std::string expected_codes = "200";

  friend bool operator==(const LbMonitor&, const LbMonitor&) = default;
};

struct LbMember {
  std::string id{};
  uint32_t port_key = 0;  // the port that has the address; 0: none known
  IpAddress address{};
  uint16_t port = 0;
  uint16_t weight = 1;  // 0: no new connections
  bool backup = false;  // only while no other member is up
  bool up = true;       // enabled and not found down by its health monitor

  friend bool operator==(const LbMember&, const LbMember&) = default;
};

// A load balancer's listener, carried by its VIP port: connections to the
// port's address and `port` (of `protocol`) go to the default pool's
// members.
struct LbListener {
  std::string id{};
  uint8_t protocol = 6;  // TCP or UDP
  uint16_t port = 0;
  LbAlgorithm algorithm = LbAlgorithm::RoundRobin;
  bool source_ip_persistence = false;
  // Open connections each host admits through the listener from its own
  // clients (Octavia's is the load balancer's; a host knows its own). 0:
  // no limit.
  uint32_t connection_limit = 0;
  std::vector<IpPrefix> allowed_cidrs{};  // empty: any source
  std::vector<LbMember> members{};
  std::optional<LbMonitor> monitor{};  // enabled

  friend bool operator==(const LbListener&, const LbListener&) = default;
};

struct Port {
  uint32_t key = 0;
  std::string id{};
  uint32_t switch_key = 0;
  MacAddress mac{};
  std::vector<IpAddress> ips{};
  std::vector<AddressPair> allowed_pairs{};
  bool port_security = true;
  bool admin_up = true;
  std::vector<uint32_t> groups{};  // security group keys
  uint32_t host = 0;               // host key; 0: not bound
  std::string device_owner{};
  std::string name{};
  // What the DHCP server tells this port beyond its subnet's answer: the
  // host name (Neutron's dns_name; "" for host-<address>), the domain
  // (dns_domain; "" for the network's), BOOTP's next server (siaddr), and
  // extra options already encoded (extra_dhcp_opts), which replace the
  // server's own options of the same code.
  std::string dhcp_host_name{};
  std::string dhcp_domain{};
  std::optional<IpAddress> dhcp_next_server{};
  std::vector<DhcpOption> dhcp_options{};
  std::vector<Dhcpv6Option> dhcpv6_options{};  // extra_dhcp_opts of ip_version 6
  std::vector<LocalIp> local_ips{};
  // A load balancer's VIP port: what it balances.
  std::vector<LbListener> listeners{};
  PortQos qos{};
  // A trunk's parent: its subports, by VLAN (sorted). A subport: its
  // parent (whose interface carries its frames) and its VLAN.
  std::vector<TrunkSubport> subports{};
  uint32_t trunk_parent = 0;
  uint16_t trunk_vid = 0;
  // Security-group logging: the events logged for the port.
  static constexpr uint8_t kLogAccept = 1;  // new connections its groups allow
  static constexpr uint8_t kLogDrop = 2;    // packets its groups refuse
  uint8_t log_events = 0;

  friend bool operator==(const Port&, const Port&) = default;
};

enum class Direction : uint8_t { Ingress, Egress };

// A security-group rule as Neutron has it: for ICMP, port_min/port_max hold
// the type and code.
struct Rule {
  std::string id{};
  Direction direction = Direction::Ingress;
  uint8_t family = 4;
  std::optional<uint8_t> protocol{};  // none: any
  std::optional<uint16_t> port_min{};
  std::optional<uint16_t> port_max{};
  std::optional<IpPrefix> remote_prefix{};
  std::optional<uint32_t> remote_group{};  // group key

  friend bool operator==(const Rule&, const Rule&) = default;
};

struct SecurityGroup {
  uint32_t key = 0;
  std::string id{};
  std::string name{};
  std::vector<Rule> rules{};
  // Neutron's stateful=false: every packet is matched against the rules,
  // replies too, and nothing is tracked.
  bool stateful = true;

  friend bool operator==(const SecurityGroup&, const SecurityGroup&) = default;
};

struct Route {
  IpPrefix destination{};
  IpAddress nexthop{};

  friend bool operator==(const Route&, const Route&) = default;
};

struct RouterInterface {
  uint32_t port_key = 0;  // the port that owns the interface's MAC and address
  uint32_t switch_key = 0;
  MacAddress mac{};
  IpAddress ip{};
  IpPrefix subnet{};

  friend bool operator==(const RouterInterface&, const RouterInterface&) = default;
};

// Distributed SNAT: a block of the gateway address's ports that a host
// translates its own VMs' outbound connections with, leased from the store.
struct SnatLease {
  uint32_t host = 0;
  uint16_t first = 0, last = 0;

  friend bool operator==(const SnatLease&, const SnatLease&) = default;
};

struct Gateway {
  uint32_t port_key = 0;
  uint32_t switch_key = 0;  // the external network
  MacAddress mac{};
  std::vector<IpAddress> ips{};
  bool snat = true;
  uint32_t host = 0;  // the gateway host that holds the SNAT
  // High availability: the hosts that take it over, in order, when `host`
  // is down (the agent's BFD sessions decide, and set `host` to the one
  // that holds it in the topology its datapath runs).
  std::vector<uint32_t> standbys{};
  // Distributed SNAT: the ports `host` translates with (for hosts without
  // a lease of their own), and the leases, by host.
  uint16_t central_first = 1024, central_last = 65535;
  std::vector<SnatLease> leases{};
  std::optional<IpAddress> nexthop{};   // the external IPv4 subnet's gateway
  std::optional<IpAddress> nexthop6{};  // the external IPv6 subnet's (routed, never NATed)

  const SnatLease* leaseOf(uint32_t host_key) const {
    for (const auto& l : leases) {
      if (l.host == host_key) return &l;
    }
    return nullptr;
  }
  // The lease whose block holds `port`, or nullptr.
  const SnatLease* leaseFor(uint16_t port) const {
    for (const auto& l : leases) {
      if (port >= l.first && port <= l.last) return &l;
    }
    return nullptr;
  }

  // The default route's next hop for addresses of `family`.
  const std::optional<IpAddress>& nexthopFor(uint8_t family) const {
    return family == 6 ? nexthop6 : nexthop;
  }

  friend bool operator==(const Gateway&, const Gateway&) = default;
};

// An application-level gateway that a router's NAT (SNAT and floating
// IPs) runs for connections to `port` of `protocol`: Neutron's conntrack
// helpers, as nat/helpers.h implements them.
enum class NatHelperKind : uint8_t { Ftp, Tftp };

struct NatHelper {
  uint8_t protocol = 0;
  uint16_t port = 0;
  NatHelperKind kind = NatHelperKind::Ftp;

  friend bool operator==(const NatHelper&, const NatHelper&) = default;
};

// A metering label's rule (Neutron's metering): traffic entering the
// router from its gateway (ingress) or leaving by it (egress), by the
// remote address (the source of ingress, the destination of egress) or by
// source and destination. Addresses are as inside the router: a floating
// IP's fixed address, before SNAT.
struct MeterRule {
  bool ingress = false;
  bool excluded = false;
  std::optional<IpPrefix> remote{};
  std::optional<IpPrefix> source{};
  std::optional<IpPrefix> destination{};

  friend bool operator==(const MeterRule&, const MeterRule&) = default;
};

// A metering label that applies to a router: its project's, or a shared one.
struct MeterLabel {
  std::string id{};
  std::vector<MeterRule> rules{};

  friend bool operator==(const MeterLabel&, const MeterLabel&) = default;
};

struct Router {
  uint32_t key = 0;
  std::string id{};
  std::string name{};
  std::vector<RouterInterface> interfaces{};
  std::vector<Route> routes{};
  std::optional<Gateway> gateway{};
  std::vector<NatHelper> helpers{};
  std::vector<MeterLabel> meters{};

  // The helper for connections to `port` of `protocol`, or nullptr.
  const NatHelper* helperFor(uint8_t protocol, uint16_t port) const noexcept {
    for (const auto& h : helpers) {
      if (h.protocol == protocol && h.port == port) return &h;
    }
    return nullptr;
  }

  friend bool operator==(const Router&, const Router&) = default;
};

// A floating IP's port forwarding (Neutron's floating-ip-port-forwarding):
// TCP or UDP to the floating IP's ports `external_min`..`external_max`
// goes to `internal` (an address of port `port_key`) at the same offset
// from `internal_min`, and its replies come back from the floating IP.
struct PortForwarding {
  uint8_t protocol = 6;  // 6 or 17
  uint16_t external_min = 0;
  uint16_t external_max = 0;
  uint16_t internal_min = 0;
  IpAddress internal{};
  uint32_t port_key = 0;

  uint16_t internalMax() const {
    return static_cast<uint16_t>(internal_min + (external_max - external_min));
  }
  friend bool operator==(const PortForwarding&, const PortForwarding&) = default;
};

// A floating IP: associated with a port's fixed address (port_key), or,
// unassociated, forwarding some of its ports (`forwardings`, through its
// router's gateway).
struct FloatingIp {
  std::string id{};
  IpAddress external{};
  IpAddress fixed{};
  uint32_t port_key = 0;
  uint32_t router_key = 0;
  std::vector<PortForwarding> forwardings{};

  friend bool operator==(const FloatingIp&, const FloatingIp&) = default;
};

struct Host {
  uint32_t key = 0;
  std::string name{};
  IpAddress tunnel_ip{};
  bool geneve = true;                  // takes Geneve; else VXLAN (a hardware or kernel VTEP)
  std::vector<std::string> uplinks{};  // the physical networks it reaches

  bool hasUplink(const std::string& physical_network) const {
    return std::find(uplinks.begin(), uplinks.end(), physical_network) != uplinks.end();
  }

  friend bool operator==(const Host&, const Host&) = default;
};

// A listener as the datapath balances it: the VIP port and the listener
// (by index), and the Maglev tables over the members that take new
// connections, primary and backup, with which member each table index is.
struct Balancer {
  uint32_t vip_port = 0;
  size_t listener = 0;
  std::shared_ptr<const nat::MaglevTable> primary{}, backup{};
  std::vector<uint16_t> primary_members{}, backup_members{};  // indexes into members
};

class Topology {
 public:
  uint64_t version() const { return version_; }

  const Switch* findSwitch(uint32_t key) const;
  const Port* findPort(uint32_t key) const;
  const Router* findRouter(uint32_t key) const;
  const SecurityGroup* findGroup(uint32_t key) const;
  const Host* findHost(uint32_t key) const;

  // The port on a switch with this MAC, or with this address (allowed pairs
  // not included), or nullptr.
  const Port* portByMac(uint32_t switch_key, const MacAddress& mac) const;
  const Port* portByIp(uint32_t switch_key, const IpAddress& ip) const;
  // The router interface on a switch (its gateway address), or nullptr.
  const RouterInterface* routerInterfaceOn(uint32_t switch_key, const IpAddress& ip,
                                           const Router** router = nullptr) const;
  // The router that owns a MAC on a switch: one of its interfaces, or (when
  // `interface` is null) its external gateway.
  struct RouterPort {
    const Router* router = nullptr;
    const RouterInterface* interface = nullptr;
  };
  std::optional<RouterPort> routerPortByMac(uint32_t switch_key, const MacAddress& mac) const;
  // The router that answers to an address on a switch (interface or gateway).
  std::optional<RouterPort> routerPortByIp(uint32_t switch_key, const IpAddress& ip) const;
  const Switch* switchByVni(uint32_t vni) const;
  // The ports on a switch, in key order.
  const std::vector<uint32_t>& portsOn(uint32_t switch_key) const;
  // Whether one of a group's ports has this fixed address (remote-group
  // rules matched by address, when no group tags came with a packet).
  bool groupHasAddress(uint32_t group_key, const IpAddress& ip) const;
  // Floating IPs by the port and fixed address behind them, or by address.
  const FloatingIp* floatingIpFor(uint32_t port_key, const IpAddress& fixed) const;
  const FloatingIp* floatingIpAt(const IpAddress& external) const;
  // The floating IP of router `router_key` for a fixed address behind it.
  const FloatingIp* floatingIpBehind(uint32_t router_key, const IpAddress& fixed) const;
  // The port forwarding whose internal side a packet of `port_key` from
  // `source`:`source_port` (`protocol`) is, with its floating IP.
  struct Forwarded {
    const FloatingIp* floating_ip = nullptr;
    const PortForwarding* forwarding = nullptr;
  };
  Forwarded forwardingFrom(uint32_t port_key, const IpAddress& source, uint8_t protocol,
                           uint16_t source_port) const;
  // The ports that answer a local IP on a switch, in key order (the
  // datapath takes the one on its host).
  const std::vector<uint32_t>& localIpPorts(uint32_t switch_key, const IpAddress& local) const;
  // The ports in a security group (for remote-group rules).
  const std::vector<uint32_t>& groupMembers(uint32_t group_key) const;
  // The listener of a VIP on a switch for connections of `protocol` to
  // `port`, or nullptr; whether any listener has the address (on any switch).
  const Balancer* balancerAt(uint32_t switch_key, const IpAddress& vip, uint8_t protocol,
                             uint16_t port) const;
  bool isVip(const IpAddress& ip) const { return vips_.count(ip) > 0; }
  // A port whose security groups are all stateless (Neutron allows no
  // mix): its packets bypass conntrack.
  bool isStateless(uint32_t port) const { return stateless_ports_.count(port) > 0; }
  // The listener a balancer serves.
  const LbListener& listenerOf(const Balancer& b) const {
    return ports_.at(b.vip_port).listeners[b.listener];
  }

  const std::map<uint32_t, Switch>& switches() const { return switches_; }
  const std::map<uint32_t, Port>& ports() const { return ports_; }
  const std::map<uint32_t, Router>& routers() const { return routers_; }
  const std::map<uint32_t, SecurityGroup>& groups() const { return groups_; }
  const std::map<uint32_t, Host>& hosts() const { return hosts_; }
  const std::vector<FloatingIp>& floatingIps() const { return floating_ips_; }

 private:
  friend class TopologyBuilder;
  uint64_t version_ = 0;
  std::map<uint32_t, Switch> switches_{};
  std::map<uint32_t, Port> ports_{};
  std::map<uint32_t, Router> routers_{};
  std::map<uint32_t, SecurityGroup> groups_{};
  std::map<uint32_t, Host> hosts_{};
  std::vector<FloatingIp> floating_ips_{};
  std::map<std::pair<uint32_t, MacAddress>, uint32_t> port_by_mac_{};
  std::map<std::pair<uint32_t, IpAddress>, uint32_t> port_by_ip_{};
  std::map<uint32_t, std::vector<uint32_t>> group_members_{};
  std::map<std::pair<uint32_t, MacAddress>, std::pair<uint32_t, int>> router_by_mac_{};
  std::map<std::pair<uint32_t, IpAddress>, std::pair<uint32_t, int>> router_by_ip_{};
  std::map<uint32_t, uint32_t> switch_by_vni_{};
  std::map<uint32_t, std::vector<uint32_t>> ports_on_{};
  std::map<std::pair<uint32_t, IpAddress>, bool> group_addresses_{};
  std::map<std::pair<uint32_t, IpAddress>, size_t> floating_by_fixed_{};
  std::map<std::pair<uint32_t, IpAddress>, size_t> floating_by_router_fixed_{};
  std::map<IpAddress, size_t> floating_by_external_{};
  // port key -> (floating IP, forwarding) indexes of the forwardings to it
  std::multimap<uint32_t, std::pair<size_t, size_t>> forwardings_by_port_{};
  std::map<std::pair<uint32_t, IpAddress>, std::vector<uint32_t>> local_ip_ports_{};
  std::map<std::tuple<uint32_t, IpAddress, uint8_t, uint16_t>, Balancer> balancers_{};
  std::map<IpAddress, size_t> vips_{};  // how many listeners
  std::unordered_set<uint32_t> stateless_ports_{};
};

class TopologyBuilder {
 public:
  TopologyBuilder& addSwitch(Switch s);
  TopologyBuilder& addPort(Port p);
  TopologyBuilder& addRouter(Router r);
  TopologyBuilder& addGroup(SecurityGroup g);
  TopologyBuilder& addHost(Host h);
  TopologyBuilder& addFloatingIp(FloatingIp f);

  // Checks every reference and builds the indexes. InvalidArgument names
  // the first bad reference or duplicate.
  Result<std::shared_ptr<const Topology>> build(uint64_t version) const;

 private:
  std::vector<Switch> switches_{};
  std::vector<Port> ports_{};
  std::vector<Router> routers_{};
  std::vector<SecurityGroup> groups_{};
  std::vector<Host> hosts_{};
  std::vector<FloatingIp> floating_ips_{};
};

}  // namespace canopy::datapath::topology
