// The flow cache against a fresh simulation: for random topologies and
// random traffic, every host runs two datapaths side by side, one as in
// production (decisions cached, invalidated by tag when the topology
// changes) and one that simulates every packet afresh (a trace bypasses the
// cache), the first also rewriting each frame in place as the agent lets
// it. After every packet both must have sent the same frames and
// counted the same drops, through random topology changes every few dozen
// packets. A disagreement is a decision that read something it did not tag,
// or a change that changedTags() does not name.
//
// Each round prints its seed; CANOPY_TEST_SEED=<seed> replays that round.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "datapath/packet/dhcp.h"
#include "datapath/simulator/replies.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using packet::PacketBuilder;
using packet::TcpHeader;
using pipeline::Trace;
using topology::Direction;
using topology::FloatingIp;
using topology::Port;
using topology::Router;
using topology::Rule;
using topology::Switch;

constexpr uint32_t kExternal = 100;
constexpr uint32_t kHosts = 3;
constexpr int kRounds = 6;
constexpr int kPacketsPerRound = 2000;
constexpr int kMutationEvery = 50;
constexpr size_t kFlows = 48;  // frames sent again, as a flow's next packets
const MacAddress kOutside{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
const MacAddress kOutsideOther{{0x52, 0x54, 0x00, 0x00, 0x00, 0x02}};

// Deterministic for a seed on every platform (no std distributions).
class Random {
 public:
  explicit Random(uint64_t seed) : rng_(seed) {}
  size_t below(size_t n) { return static_cast<size_t>(rng_() % n); }
  bool chance(unsigned percent) { return below(100) < percent; }
  template <typename T>
  const T& pick(const std::vector<T>& v) {
    return v[below(v.size())];
  }
  template <typename T>
  T pick(std::initializer_list<T> v) {
    return *(v.begin() + below(v.size()));
  }
  uint8_t byte() { return static_cast<uint8_t>(rng_()); }

 private:
  std::mt19937_64 rng_;
};

IpAddress address(size_t a, size_t b, size_t c, size_t d) {
  return IpAddress::v4(static_cast<uint8_t>(a), static_cast<uint8_t>(b), static_cast<uint8_t>(c),
                       static_cast<uint8_t>(d));
}
Ipv4Address toV4(const IpAddress& ip) { return Ipv4Address::of(ip); }
MacAddress portMac(uint32_t index) { return mac(0, static_cast<uint8_t>(index)); }

// --- random topologies ---

Rule randomRule(Random& r, std::string id, size_t groups) {
  Rule rule{.id = std::move(id),
            .direction = r.chance(50) ? Direction::Ingress : Direction::Egress};
  if (r.chance(5)) rule.family = 6;
  switch (r.below(4)) {
    case 0:
      rule.protocol = packet::ipproto::kTcp;
      break;
    case 1:
      rule.protocol = packet::ipproto::kUdp;
      break;
    case 2:
      rule.protocol = packet::ipproto::kIcmp;
      break;
    default:
      break;  // any protocol
  }
  if (rule.protocol && *rule.protocol != packet::ipproto::kIcmp && r.chance(70)) {
    uint16_t low = r.pick<uint16_t>({22, 53, 80, 443, 1000});
    rule.port_min = low;
    rule.port_max = static_cast<uint16_t>(low + r.pick<uint16_t>({0, 0, 100, 5000}));
  } else if (rule.protocol && r.chance(40)) {
    rule.port_min = r.pick<uint16_t>({8, 0, 3});
    if (r.chance(50)) rule.port_max = 0;
  }
  if (r.chance(40)) {
    rule.remote_prefix = prefix(
        r.pick({"0.0.0.0/0", "10.0.0.0/16", "10.0.1.0/24", "198.51.100.0/24", "203.0.113.0/24"}));
  } else if (r.chance(35)) {
    rule.remote_group = static_cast<uint32_t>(1 + r.below(groups));
  }
  return rule;
}

// The switches a port may sit on: the tenant networks, not the external one.
std::vector<uint32_t> tenantSwitches(const TopologyParts& t) {
  std::vector<uint32_t> keys;
  for (const auto& [key, s] : t.switches) {
    if (key != kExternal) keys.push_back(key);
  }
  return keys;
}

Port randomPort(Random& r, const TopologyParts& t, uint32_t index) {
  uint32_t sw = r.pick(tenantSwitches(t));
  Port p{.key = 10 + index,
         .id = "port-" + std::to_string(index),
         .switch_key = sw,
         .mac = portMac(index),
         .ips = {address(10, 0, sw, 10 + index)},
         .port_security = r.chance(85),
         .admin_up = r.chance(90),
         .host = r.chance(92) ? static_cast<uint32_t>(1 + r.below(kHosts)) : 0,
         .device_owner = "compute:nova",
         .name = "vm" + std::to_string(index)};
  for (const auto& [key, g] : t.groups) {
    if (r.chance(50)) p.groups.push_back(key);
  }
  if (r.chance(15)) {
    p.allowed_pairs.push_back(
        {.mac = mac(3, static_cast<uint8_t>(index)), .prefix = {address(10, 0, sw, 200), 29}});
  }
  return p;
}

void randomRoutes(Random& r, TopologyParts& t, Router& router) {
  router.routes.clear();
  std::vector<IpAddress> nexthops = {address(203, 0, 113, 1), address(203, 0, 113, 200),
                                     address(10, 0, 1, 77)};
  for (const auto& i : router.interfaces) {
    for (const auto& [key, p] : t.ports) {
      if (p.switch_key == i.switch_key) nexthops.push_back(p.ips[0]);
    }
    nexthops.push_back(address(10, 0, i.switch_key, 2));  // another router, if shared
  }
  if (!router.interfaces.empty() && r.chance(30)) {
    // More specific than a connected network, through the external one:
    // which wins depends on the external subnet holding the next hop.
    const auto& i = r.pick(router.interfaces);
    router.routes.push_back({.destination = {address(10, 0, i.switch_key, 0), 25},
                             .nexthop = address(203, 0, 113, 200)});
  }
  size_t n = r.below(3);
  for (size_t k = 0; k < n; ++k) {
    router.routes.push_back(
        {.destination = prefix(r.pick(
             {"192.168.50.0/24", "198.51.100.0/25", "10.0.9.0/24", "10.0.1.0/25", "10.0.2.0/25"})),
         .nexthop = r.pick(nexthops)});
  }
}

std::optional<topology::Gateway> randomGateway(Random& r, uint32_t router) {
  if (!r.chance(75)) return std::nullopt;
  topology::Gateway g{.port_key = 900 + router,
                      .switch_key = kExternal,
                      .mac = mac(2, static_cast<uint8_t>(router)),
                      .ips = {address(203, 0, 113, 10 + router)},
                      .snat = r.chance(75),
                      .host = static_cast<uint32_t>(r.below(kHosts + 1))};
  if (r.chance(85)) g.nexthop = address(203, 0, 113, 1);
  return g;
}

FloatingIp randomFloatingIp(Random& r, const TopologyParts& t, uint32_t external_last) {
  std::vector<const Port*> ports;
  for (const auto& [key, p] : t.ports) ports.push_back(&p);
  const Port* p = r.pick(ports);
  std::vector<uint32_t> routers;
  for (const auto& [key, router] : t.routers) routers.push_back(key);
  return {.id = "fip-" + std::to_string(external_last),
          .external = address(203, 0, 113, external_last),
          .fixed = p->ips[0],
          .port_key = p->key,
          .router_key = routers.empty() ? 0 : r.pick(routers)};
}

TopologyParts randomTopology(Random& r, uint32_t& next_port) {
  TopologyParts t;
  for (uint32_t h = 1; h <= kHosts; ++h) {
    t.hosts[h] = {
        .key = h, .name = "h" + std::to_string(h), .tunnel_ip = address(192, 168, 100, h)};
  }
  auto switches = static_cast<uint32_t>(2 + r.below(3));
  for (uint32_t k = 1; k <= switches; ++k) {
    Switch s{.key = k,
             .id = "net" + std::to_string(k) + "-id",
             .name = "net" + std::to_string(k),
             .vni = 100 + k,
             .mtu = r.pick<uint16_t>({1400, 1442, 1500}),
             .subnets = {{.id = "subnet" + std::to_string(k),
                          .cidr = {address(10, 0, k, 0), 24},
                          .gateway = address(10, 0, k, 1),
                          .dhcp = r.chance(80)}}};
    if (k == switches && r.chance(40)) {
      s.physical_network = r.pick({"physnet1", "physnet2"});  // a VLAN provider network
      s.vlan = static_cast<uint16_t>(40 + k);
    }
    t.switches[k] = s;
  }
  t.switches[kExternal] = {.key = kExternal,
                           .id = "public-id",
                           .name = "public",
                           .vni = 1000,
                           .subnets = {{.id = "public-subnet",
                                        .cidr = prefix("203.0.113.0/24"),
                                        .gateway = address(203, 0, 113, 1),
                                        .dhcp = false}},
                           .external = true,
                           .physical_network = "physnet1"};
  auto groups = static_cast<uint32_t>(2 + r.below(2));
  for (uint32_t g = 1; g <= groups; ++g) {
    topology::SecurityGroup group{.key = g, .id = "sg" + std::to_string(g)};
    group.stateful = !r.chance(25);
    size_t rules = 1 + r.below(4);
    for (size_t i = 0; i < rules; ++i) {
      group.rules.push_back(
          randomRule(r, "rule-" + std::to_string(g) + "-" + std::to_string(i), groups));
    }
    t.groups[g] = group;
  }
  size_t ports = 4 + r.below(9);
  for (size_t i = 0; i < ports; ++i) {
    Port p = randomPort(r, t, next_port++);
    t.ports[p.key] = p;
  }
  auto routers = static_cast<uint32_t>(r.below(3));
  for (uint32_t k = 1; k <= routers; ++k) {
    Router router{.key = k, .id = "router" + std::to_string(k), .name = "r" + std::to_string(k)};
    for (uint32_t sw : tenantSwitches(t)) {
      // Router 1 takes the gateway address (.1), router 2 the next (.2):
      // where both are, a network the routers share.
      if (!r.chance(k == 1 ? 70 : 45)) continue;
      router.interfaces.push_back({.port_key = 800 + k * 16 + sw,
                                   .switch_key = sw,
                                   .mac = mac(1, static_cast<uint8_t>(k * 16 + sw)),
                                   .ip = address(10, 0, sw, k),
                                   .subnet = {address(10, 0, sw, 0), 24}});
    }
    router.gateway = randomGateway(r, k);
    randomRoutes(r, t, router);
    t.routers[k] = router;
  }
  size_t fips = r.below(3);
  for (uint32_t n = 0; n < fips; ++n) t.floating_ips.push_back(randomFloatingIp(r, t, 50 + n));
  return t;
}

// --- the twin datapaths ---

struct Recorded {
  uint32_t host = 0;
  Outputs::Kind kind = Outputs::Kind::Port;
  uint32_t port = 0;
  uint32_t uplink = 0;
  std::vector<uint8_t> bytes;
};

std::string describeOutputs(const Outputs& out) {
  std::string s;
  for (const auto& i : out.items()) {
    s += "  ";
    switch (i.kind) {
      case Outputs::Kind::Port:
        s += "port " + std::to_string(i.port);
        break;
      case Outputs::Kind::Tunnel:
        s += "tunnel to host " + std::to_string(i.host) + " (" + i.remote.toString() + ") udp " +
             std::to_string(i.udp_source);
        break;
      case Outputs::Kind::Uplink:
        s += "uplink " + std::to_string(i.uplink);
        break;
      case Outputs::Kind::Metadata:
        s += "metadata";
        break;
    }
    s += " " + std::to_string(i.length) + "B";
    if (i.kind != Outputs::Kind::Tunnel) s += ": " + describeFrame(out.bytes(i));
    s += "\n";
  }
  return s.empty() ? "  nothing\n" : s;
}

bool sameOutputs(const Outputs& a, const Outputs& b) {
  if (a.items().size() != b.items().size()) return false;
  for (size_t n = 0; n < a.items().size(); ++n) {
    const auto& x = a.items()[n];
    const auto& y = b.items()[n];
    if (x.kind != y.kind || x.port != y.port || x.host != y.host || !(x.remote == y.remote) ||
        x.udp_source != y.udp_source || x.uplink != y.uplink) {
      return false;
    }
    auto xb = a.bytes(x), yb = b.bytes(y);
    if (!std::equal(xb.begin(), xb.end(), yb.begin(), yb.end())) return false;
  }
  return true;
}

bool sameCounters(const pipeline::Counters& a, const pipeline::Counters& b) {
  return a.packets == b.packets && a.outputs == b.outputs && a.answered == b.answered &&
         a.drops == b.drops;
}

std::string counterDiff(const pipeline::Counters& a, const pipeline::Counters& b) {
  std::string s;
  for (size_t n = 0; n < kDropReasonCount; ++n) {
    if (a.drops[n] != b.drops[n]) {
      s += "  drop " + std::string(dropReasonName(static_cast<DropReason>(n))) + ": cached " +
           std::to_string(a.drops[n]) + ", fresh " + std::to_string(b.drops[n]) + "\n";
    }
  }
  if (a.outputs != b.outputs || a.answered != b.answered) s += "  outputs or answers differ\n";
  return s;
}

class Twins {
 public:
  Twins(Random& r, const Clock& clock) : random_(r) {
    size_t cache = r.chance(25) ? 32 : 1 << 16;  // a small cache evicts as well
    for (uint32_t h = 1; h <= kHosts; ++h) {
      pipeline::Config c;
      c.host.host = h;
      if (h == 1 || r.chance(60)) c.host.uplinks.push_back("physnet1");
      if (r.chance(50)) c.host.uplinks.push_back("physnet2");
      c.encapsulation = r.chance(70) ? Encapsulation::Geneve : Encapsulation::Vxlan;
      c.flow_cache_entries = cache;
      configs_[h] = c;
      cached_[h] = std::make_unique<Datapath>(clock, c);
      fresh_[h] = std::make_unique<Datapath>(clock, c);
    }
  }

  void setTopology(const TopologyParts& parts) {
    auto built = parts.builder().build(++version_);
    ASSERT_TRUE(built.has_value()) << built.error().message();
    topology_ = *built;
    for (uint32_t h = 1; h <= kHosts; ++h) {
      cached_[h]->setTopology(topology_);
      fresh_[h]->setTopology(topology_);
    }
  }
  void learnNeighbor(uint32_t host, uint32_t sw, const IpAddress& ip, const MacAddress& m) {
    cached_[host]->learnNeighbor(sw, ip, m);
    fresh_[host]->learnNeighbor(sw, ip, m);
  }
  void sweep() {
    for (uint32_t h = 1; h <= kHosts; ++h) {
      cached_[h]->sweep();
      fresh_[h]->sweep();
    }
  }

  // Sends a frame into both datapaths of a host and follows tunnels (and,
  // sometimes, provider networks to the other hosts on them). False at the
  // first disagreement, which is reported.
  bool send(uint32_t host, const Ingress& in, const std::vector<uint8_t>& frame) {
    struct Pending {
      uint32_t host;
      Ingress in;
      std::vector<uint8_t> bytes;
    };
    std::deque<Pending> queue;
    queue.push_back({host, in, frame});
    for (int steps = 0; !queue.empty() && steps < 32; ++steps) {
      Pending p = std::move(queue.front());
      queue.pop_front();
      Outputs a, b;
      Trace trace;
      // The production side also works as the agent does: in place, in a
      // buffer of its own that its outputs may refer to.
      std::vector<uint8_t> writable = p.bytes;
      Datapath::Input input{.in = p.in, .frame = writable, .writable = writable};
      cached_[p.host]->processBatch({&input, 1}, a);
      fresh_[p.host]->process(p.in, p.bytes, b, &trace);
      ++processed_;
      if (!sameOutputs(a, b) ||
          !sameCounters(cached_[p.host]->counters(), fresh_[p.host]->counters())) {
        std::string lines;
        for (const auto& l : trace) lines += "  " + l + "\n";
        ADD_FAILURE() << "cached and fresh decisions differ on h" << p.host << " (topology version "
                      << version_ << ", packet " << processed_
                      << ")\nframe: " << describeFrame(p.bytes) << "\ncached sent:\n"
                      << describeOutputs(a) << "fresh sent:\n"
                      << describeOutputs(b) << "counters:\n"
                      << counterDiff(cached_[p.host]->counters(), fresh_[p.host]->counters())
                      << "fresh trace:\n"
                      << lines;
        return false;
      }
      for (const auto& item : a.items()) {
        auto bytes = a.bytes(item);
        std::vector<uint8_t> copy(bytes.begin(), bytes.end());
        if (item.kind == Outputs::Kind::Tunnel) {
          queue.push_back({item.host,
                           Ingress::fromTunnel(configs_[p.host].encapsulation,
                                               topology_->findHost(p.host)->tunnel_ip),
                           std::move(copy)});
          continue;
        }
        if (item.kind == Outputs::Kind::Uplink && random_.chance(30)) {
          // The physical network carries it to another host on it.
          const std::string& net = configs_[p.host].host.uplinks[item.uplink];
          uint32_t other = static_cast<uint32_t>(1 + random_.below(kHosts));
          const auto& uplinks = configs_[other].host.uplinks;
          auto at = std::find(uplinks.begin(), uplinks.end(), net);
          if (other != p.host && at != uplinks.end()) {
            queue.push_back(
                {other, Ingress::fromUplink(static_cast<uint32_t>(at - uplinks.begin())), copy});
          }
        }
        record({p.host, item.kind, item.port, item.uplink, std::move(copy)});
      }
    }
    return true;
  }

  const pipeline::Config& config(uint32_t host) const { return configs_.at(host); }
  const std::deque<Recorded>& recent() const { return recent_; }
  flowcache::CacheStats cacheTotals() const {
    flowcache::CacheStats s;
    for (const auto& [h, dp] : cached_) {
      s.hits += dp->cacheStats().hits;
      s.invalidated += dp->cacheStats().invalidated;
      s.inserts += dp->cacheStats().inserts;
    }
    return s;
  }
  uint64_t outputs() const {
    uint64_t n = 0;
    for (const auto& [h, dp] : cached_) n += dp->counters().outputs;
    return n;
  }

 private:
  void record(Recorded r) {
    recent_.push_back(std::move(r));
    if (recent_.size() > 64) recent_.pop_front();
  }

  Random& random_;
  std::map<uint32_t, pipeline::Config> configs_;
  std::map<uint32_t, std::unique_ptr<Datapath>> cached_, fresh_;
  std::shared_ptr<const topology::Topology> topology_;
  uint64_t version_ = 0;
  uint64_t processed_ = 0;
  std::deque<Recorded> recent_;
};

// --- random traffic ---

class Traffic {
 public:
  Traffic(Random& r, const TopologyParts& t) : r_(r), t_(t) {}

  // A frame from a local port: mostly its own addresses, to known MACs and
  // addresses, sometimes through a router, sometimes spoofed or odd.
  std::vector<uint8_t> fromPort(const Port& p) {
    MacAddress src_mac = r_.chance(92) ? p.mac : randomKnownMac();
    IpAddress src_ip = r_.chance(92) ? p.ips[0] : address(10, 0, r_.below(5), 10 + r_.below(20));
    if (!p.allowed_pairs.empty() && r_.chance(20)) {
      src_mac = p.allowed_pairs[0].mac;
      src_ip = address(10, 0, p.switch_key, 201);
    }
    MacAddress dst_mac;
    IpAddress dst_ip;
    size_t way = r_.below(100);
    const Port* peer = randomPortOn(p.switch_key);
    auto router_mac = routerMacOn(p.switch_key);
    if (way < 30 && peer != nullptr) {
      dst_mac = peer->mac;
      dst_ip = peer->ips[0];
    } else if (way < 65 && router_mac) {
      dst_mac = *router_mac;
      dst_ip = routedDestination();
    } else if (way < 75) {
      dst_mac = MacAddress::broadcast();
      dst_ip = address(255, 255, 255, 255);
    } else if (way < 88 && !t_.ports.empty()) {
      const Port& q = randomPort();
      dst_mac = q.mac;
      dst_ip = q.ips[0];
    } else {
      dst_mac = mac(7, r_.byte());
      dst_ip = address(10, 0, p.switch_key, r_.below(256));
    }
    size_t kind = r_.below(100);
    if (kind < 14) return arp(src_mac, src_ip, dst_mac, dst_ip);
    if (kind < 22) return dhcp(src_mac);
    if (kind < 25) return ipv6(src_mac, dst_mac);
    if (kind < 27) return nonIp(src_mac, dst_mac);
    return ip(src_mac, dst_mac, src_ip, dst_ip);
  }

  // A frame from outside on an uplink of `physnet`.
  std::vector<uint8_t> fromOutside(const std::string& physnet) {
    size_t kind = r_.below(100);
    if (kind < 20) {
      // ARP: a request for an address this side serves, or a reply that
      // teaches the next hop's MAC.
      if (r_.chance(40)) {
        MacAddress m = r_.chance(80) ? kOutside : kOutsideOther;
        return PacketBuilder()
            .eth(m, gatewayMac().value_or(MacAddress::broadcast()))
            .arp(2, m, v4("203.0.113.1"), gatewayMac().value_or(MacAddress{}),
                 toV4(externalAddress()))
            .build();
      }
      return PacketBuilder()
          .eth(kOutside, MacAddress::broadcast())
          .arp(1, kOutside, v4("203.0.113.1"), MacAddress{}, toV4(externalAddress()))
          .build();
    }
    if (kind < 35) {
      // A provider network's VLAN.
      for (const auto& [key, s] : t_.switches) {
        if (s.physical_network != physnet || s.vlan == 0) continue;
        const Port* d = randomPortOn(key);
        MacAddress to = d != nullptr && r_.chance(80) ? d->mac : MacAddress::broadcast();
        IpAddress dst = d != nullptr ? d->ips[0] : address(10, 0, key, 99);
        auto frame = PacketBuilder()
                         .eth(kOutside, to)
                         .vlan(r_.chance(90) ? s.vlan : 99)
                         .ipv4(toV4(address(10, 0, key, 250)), toV4(dst), ttl())
                         .udp(5000, r_.pick<uint16_t>({53, 80, 5000}))
                         .payload("provider")
                         .build();
        return frame;
      }
    }
    // IP for a gateway or a floating IP.
    IpAddress to = externalAddress();
    MacAddress to_mac = gatewayMac().value_or(kOutsideOther);
    for (const auto& f : t_.floating_ips) {
      if (f.external == to && r_.chance(85)) {
        auto p = t_.ports.find(f.port_key);
        if (p != t_.ports.end()) to_mac = p->second.mac;
      }
    }
    return ip(kOutside, to_mac, r_.chance(80) ? address(198, 51, 100, 7) : address(203, 0, 113, 1),
              to);
  }

  // The answer to a frame seen leaving: a reply with the addresses swapped,
  // or an ICMP error about it, from whoever received it.
  std::optional<std::vector<uint8_t>> answer(const std::vector<uint8_t>& frame) {
    packet::ParsedPacket p;
    if (packet::parse(frame, p) != DropReason::None) return std::nullopt;
    const auto& k = p.key;
    if (k.eth_type != packet::ethertype::kIpv4 || p.l4_offset == 0 || k.eth_dst.isMulticast()) {
      return std::nullopt;
    }
    auto s = Ipv4Address::of(k.ip_src[0], k.ip_src[1], k.ip_src[2], k.ip_src[3]);
    auto d = Ipv4Address::of(k.ip_dst[0], k.ip_dst[1], k.ip_dst[2], k.ip_dst[3]);
    if (r_.chance(20)) {
      return simulator::icmpError(frame, p, k.eth_dst, d, 3, r_.pick<uint8_t>({1, 3}), 0);
    }
    PacketBuilder b;
    b.eth(k.eth_dst, k.eth_src).ipv4(d, s, 64);
    switch (k.ip_proto) {
      case packet::ipproto::kTcp:
        b.tcp(k.tp_dst, k.tp_src,
              r_.pick<uint8_t>({TcpHeader::kSyn | TcpHeader::kAck, TcpHeader::kAck,
                                TcpHeader::kFin | TcpHeader::kAck, TcpHeader::kRst,
                                TcpHeader::kPsh | TcpHeader::kAck}),
              2000, 1001);
        break;
      case packet::ipproto::kUdp:
        b.udp(k.tp_dst, k.tp_src).payload("reply");
        break;
      case packet::ipproto::kIcmp:
        if (k.tp_src != 8) return std::nullopt;
        b.icmp(0, 0, k.icmp_id, 1).payload("pong");
        break;
      default:
        return std::nullopt;
    }
    return b.build();
  }

 private:
  uint8_t ttl() { return r_.chance(85) ? 64 : r_.pick<uint8_t>({1, 1, 2}); }

  const Port& randomPort() {
    auto it = t_.ports.begin();
    std::advance(it, static_cast<long>(r_.below(t_.ports.size())));
    return it->second;
  }
  const Port* randomPortOn(uint32_t sw) {
    std::vector<const Port*> on;
    for (const auto& [key, p] : t_.ports) {
      if (p.switch_key == sw) on.push_back(&p);
    }
    return on.empty() ? nullptr : r_.pick(on);
  }
  MacAddress randomKnownMac() { return t_.ports.empty() ? mac(7, 7) : randomPort().mac; }
  std::optional<MacAddress> routerMacOn(uint32_t sw) {
    std::vector<MacAddress> macs;
    for (const auto& [key, r] : t_.routers) {
      for (const auto& i : r.interfaces) {
        if (i.switch_key == sw) macs.push_back(i.mac);
      }
    }
    if (macs.empty()) return std::nullopt;
    return r_.pick(macs);
  }
  std::optional<MacAddress> gatewayMac() {
    std::vector<MacAddress> macs;
    for (const auto& [key, r] : t_.routers) {
      if (r.gateway) macs.push_back(r.gateway->mac);
    }
    if (macs.empty()) return std::nullopt;
    return r_.pick(macs);
  }
  IpAddress externalAddress() {
    std::vector<IpAddress> all = {address(203, 0, 113, 99)};
    for (const auto& [key, r] : t_.routers) {
      if (r.gateway) all.insert(all.end(), r.gateway->ips.begin(), r.gateway->ips.end());
    }
    for (const auto& f : t_.floating_ips) all.push_back(f.external);
    return r_.pick(all);
  }
  IpAddress routedDestination() {
    size_t n = r_.below(100);
    if (n < 35 && !t_.ports.empty()) return randomPort().ips[0];
    if (n < 45) return address(10, 0, 1 + r_.below(4), r_.pick<uint32_t>({1, 2}));  // routers
    if (n < 70) return address(198, 51, 100, r_.pick<uint32_t>({7, 200}));
    if (n < 85) return externalAddress();
    return r_.pick({address(203, 0, 113, 1), address(192, 168, 50, 9), address(10, 0, 9, 9),
                    address(203, 0, 113, 200)});
  }

  std::vector<uint8_t> arp(MacAddress src_mac, IpAddress src_ip, MacAddress dst_mac,
                           IpAddress target) {
    uint16_t op = r_.chance(80) ? 1 : 2;
    MacAddress sender = r_.chance(85) ? src_mac : randomKnownMac();
    Ipv4Address spa = r_.chance(10) ? Ipv4Address{} : toV4(src_ip);
    if (r_.chance(10)) target = src_ip;  // gratuitous
    return PacketBuilder()
        .eth(src_mac, op == 1 && r_.chance(80) ? MacAddress::broadcast() : dst_mac)
        .arp(op, sender, spa, op == 1 ? MacAddress{} : dst_mac, toV4(target))
        .build();
  }

  std::vector<uint8_t> dhcp(MacAddress src_mac) {
    using namespace packet::dhcp;
    packet::DhcpOptions o;
    uint8_t type = r_.pick<uint8_t>({kDiscover, kRequest, kRequest, kInform, kRelease, 0});
    if (type != 0) o.addByte(kMessageType, type);
    if (type == kRequest) o.addAddress(kRequestedAddress, toV4(randomPort().ips[0]));
    return PacketBuilder()
        .eth(src_mac, MacAddress::broadcast())
        .ipv4(v4("0.0.0.0"), v4("255.255.255.255"))
        .udp(kClientPort, kServerPort)
        .payload(packet::dhcpRequest(src_mac, 0x1234, o))
        .build();
  }

  std::vector<uint8_t> ipv6(MacAddress src_mac, MacAddress dst_mac) {
    packet::Ipv6Address s{{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, r_.byte()}};
    packet::Ipv6Address d{{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
    if (r_.chance(50)) d = {{0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, r_.byte()}};
    return PacketBuilder()
        .eth(src_mac, r_.chance(50) ? MacAddress{{0x33, 0x33, 0, 0, 0, 1}} : dst_mac)
        .ipv6(s, d, ttl())
        .udp(546, 547)
        .payload("v6")
        .build();
  }

  std::vector<uint8_t> nonIp(MacAddress src_mac, MacAddress dst_mac) {
    std::vector<uint8_t> f(60, 0);
    std::copy(dst_mac.bytes.begin(), dst_mac.bytes.end(), f.begin());
    std::copy(src_mac.bytes.begin(), src_mac.bytes.end(), f.begin() + 6);
    f[12] = 0x88;
    f[13] = 0xcc;  // LLDP
    return f;
  }

  std::vector<uint8_t> ip(MacAddress src_mac, MacAddress dst_mac, IpAddress src, IpAddress dst) {
    PacketBuilder b;
    b.eth(src_mac, dst_mac).ipv4(toV4(src), toV4(dst), ttl());
    bool large = r_.chance(5);
    if (large && r_.chance(50)) b.dontFragment();
    size_t proto = r_.below(100);
    if (proto < 25) {
      b.icmp(r_.pick<uint8_t>({8, 8, 8, 0, 13}), 0, r_.pick<uint16_t>({1, 2, 3}), 1);
    } else if (proto < 65) {
      b.tcp(r_.pick<uint16_t>({1000, 1001, 40000}), r_.pick<uint16_t>({22, 80, 443, 1000}),
            r_.chance(90) ? r_.pick<uint8_t>({TcpHeader::kSyn, TcpHeader::kSyn,
                                              TcpHeader::kSyn | TcpHeader::kAck, TcpHeader::kAck,
                                              TcpHeader::kFin | TcpHeader::kAck, TcpHeader::kRst,
                                              TcpHeader::kPsh | TcpHeader::kAck})
                          : r_.byte(),
            1000, 0);
    } else {
      b.udp(r_.pick<uint16_t>({1000, 5353, 68}), r_.pick<uint16_t>({53, 80, 67, 5000}));
    }
    if (large) {
      b.payload(std::string(1400 + r_.below(80), 'x'));
    } else {
      b.payload("data");
    }
    return b.build();
  }

  Random& r_;
  const TopologyParts& t_;
};

// --- random topology changes ---

class Mutator {
 public:
  Mutator(Random& r, TopologyParts& t, uint32_t& next_port) : r_(r), t_(t), next_port_(next_port) {}

  // One change, named for failure messages.
  std::string mutate() {
    switch (r_.below(16)) {
      case 0:
      case 1:
        return changeRule();
      case 15:
        return withPort([&](Port& p) { return changeListeners(p); });
      case 14:
        return withPort([&](Port& p) {
          p.host = r_.chance(90) ? static_cast<uint32_t>(1 + r_.below(kHosts)) : 0;
          return "port " + std::to_string(p.key) + " moves to host " + std::to_string(p.host);
        });
      case 2:
        return withPort([&](Port& p) {
          p.port_security = !p.port_security;
          return "port " + std::to_string(p.key) + " port security flipped";
        });
      case 3:
        return withPort([&](Port& p) {
          p.admin_up = !p.admin_up;
          return "port " + std::to_string(p.key) + " admin state flipped";
        });
      case 4:
        return withPort([&](Port& p) {
          if (!p.groups.empty() && r_.chance(50)) {
            p.groups.erase(p.groups.begin() + static_cast<long>(r_.below(p.groups.size())));
          } else {
            auto g = static_cast<uint32_t>(1 + r_.below(t_.groups.size()));
            if (std::find(p.groups.begin(), p.groups.end(), g) == p.groups.end()) {
              p.groups.push_back(g);
            }
          }
          return "port " + std::to_string(p.key) + " groups changed";
        });
      case 5:
        return changeFloatingIp();
      case 6:
        return changeRouter();
      case 7:
        return addOrRemovePort();
      case 8: {
        auto& s = t_.switches.at(r_.pick(tenantSwitches(t_)));
        s.mtu = r_.pick<uint16_t>({1400, 1442, 1500});
        s.subnets[0].dhcp = r_.chance(80);
        if (r_.chance(30)) s.vni = s.vni < 200 ? s.vni + 100 : s.vni - 100;
        return "switch " + std::to_string(s.key) + " MTU, DHCP or VNI changed";
      }
      case 10: {
        auto& h = t_.hosts.at(static_cast<uint32_t>(1 + r_.below(kHosts)));
        h.tunnel_ip.bytes[2] = h.tunnel_ip.bytes[2] == 100 ? 101 : 100;
        return "host " + std::to_string(h.key) + " tunnel address now " + h.tunnel_ip.toString();
      }
      case 11:
        return withPort([&](Port& p) {
          // Another network (and an address in it), or another MAC.
          uint32_t index = p.key - 10;
          if (r_.chance(50)) {
            p.switch_key = r_.pick(tenantSwitches(t_));
            p.ips = {address(10, 0, p.switch_key, 10 + index)};
            p.allowed_pairs.clear();
          } else {
            p.mac = p.mac == portMac(index) ? mac(4, static_cast<uint8_t>(index)) : portMac(index);
          }
          return "port " + std::to_string(p.key) + " moves network or changes MAC";
        });
      case 12:
        return changeInterface();
      default: {
        auto& ext = t_.switches.at(kExternal);
        ext.subnets[0].cidr.length = r_.pick<uint8_t>({24, 25, 16});
        return "external subnet now /" + std::to_string(ext.subnets[0].cidr.length);
      }
    }
  }

 private:
  template <typename F>
  std::string withPort(F&& change) {
    if (t_.ports.empty()) return addOrRemovePort();
    auto it = t_.ports.begin();
    std::advance(it, static_cast<long>(r_.below(t_.ports.size())));
    return change(it->second);
  }

  std::string changeRule() {
    auto it = t_.groups.begin();
    std::advance(it, static_cast<long>(r_.below(t_.groups.size())));
    auto& rules = it->second.rules;
    std::string what = "group " + std::to_string(it->first) + ": ";
    if (r_.chance(10)) {
      it->second.stateful = !it->second.stateful;
      return what + (it->second.stateful ? "stateful" : "stateless");
    }
    if (!rules.empty() && r_.chance(40)) {
      rules.erase(rules.begin() + static_cast<long>(r_.below(rules.size())));
      return what + "rule removed";
    }
    Rule fresh = randomRule(r_, "rule-" + std::to_string(++rule_serial_), t_.groups.size());
    if (!rules.empty() && r_.chance(50)) {
      rules[r_.below(rules.size())] = fresh;
      return what + "rule replaced";
    }
    rules.push_back(fresh);
    return what + "rule added";
  }

  // A port becomes a load balancer's VIP (or stops being one): listeners
  // on ports the traffic uses, members among the ports' addresses.
  std::string changeListeners(Port& p) {
    std::string what = "port " + std::to_string(p.key) + " ";
    if (!p.listeners.empty() && r_.chance(30)) {
      p.listeners.clear();
      return what + "is no VIP";
    }
    p.listeners.clear();
    std::vector<uint16_t> used;
    for (int n = 0, count = 1 + static_cast<int>(r_.below(2)); n < count; ++n) {
      uint16_t port = r_.pick<uint16_t>({22, 80, 443, 53});
      if (std::find(used.begin(), used.end(), port) != used.end()) continue;
      used.push_back(port);
      topology::LbListener l{.id = "listener-" + std::to_string(++rule_serial_),
                             .protocol = port == 53 ? uint8_t{17} : uint8_t{6},
                             .port = port,
                             .algorithm = r_.pick({topology::LbAlgorithm::RoundRobin,
                                                   topology::LbAlgorithm::LeastConnections,
                                                   topology::LbAlgorithm::SourceIp}),
                             .source_ip_persistence = r_.chance(20)};
      if (r_.chance(15)) l.allowed_cidrs.push_back({address(10, 0, 1, 0), 24});
      for (const auto& [key, other] : t_.ports) {
        if (!r_.chance(40)) continue;
        l.members.push_back({.address = other.ips[0],
                             .port = r_.pick<uint16_t>({80, 1000, 5000}),
                             .weight = r_.pick<uint16_t>({1, 1, 3, 0}),
                             .backup = r_.chance(15),
                             .up = r_.chance(85)});
      }
      p.listeners.push_back(std::move(l));
    }
    return what + "is a VIP with " + std::to_string(p.listeners.size()) + " listener(s)";
  }

  std::string changeFloatingIp() {
    if (!t_.floating_ips.empty() && r_.chance(50)) {
      t_.floating_ips.erase(t_.floating_ips.begin() +
                            static_cast<long>(r_.below(t_.floating_ips.size())));
      return "floating IP removed";
    }
    if (t_.ports.empty()) return "nothing";
    for (uint32_t last = 50; last < 54; ++last) {
      bool taken = std::any_of(t_.floating_ips.begin(), t_.floating_ips.end(),
                               [&](const FloatingIp& f) { return f.external.bytes[3] == last; });
      if (!taken) {
        t_.floating_ips.push_back(randomFloatingIp(r_, t_, last));
        return "floating IP added";
      }
    }
    return "nothing";
  }

  std::string changeRouter() {
    if (t_.routers.empty()) return "nothing";
    auto it = t_.routers.begin();
    std::advance(it, static_cast<long>(r_.below(t_.routers.size())));
    Router& router = it->second;
    std::string what = "router " + std::to_string(router.key) + ": ";
    switch (r_.below(4)) {
      case 0:
        randomRoutes(r_, t_, router);
        return what + "routes changed";
      case 1:
        router.gateway = randomGateway(r_, router.key);
        return what + "gateway changed";
      case 2:
        if (router.gateway) {
          router.gateway->host = static_cast<uint32_t>(r_.below(kHosts + 1));
          router.gateway->snat = !router.gateway->snat;
        }
        return what + "gateway host or SNAT changed";
      default:
        if (router.gateway && router.gateway->nexthop) {
          router.gateway->nexthop.reset();
        } else if (router.gateway) {
          router.gateway->nexthop = address(203, 0, 113, 1);
        }
        return what + "default route flipped";
    }
  }

  std::string changeInterface() {
    if (t_.routers.empty()) return "nothing";
    auto it = t_.routers.begin();
    std::advance(it, static_cast<long>(r_.below(t_.routers.size())));
    Router& router = it->second;
    uint32_t sw = r_.pick(tenantSwitches(t_));
    auto& in = router.interfaces;
    auto at = std::find_if(in.begin(), in.end(), [&](const auto& i) { return i.switch_key == sw; });
    std::string what = "router " + std::to_string(router.key) + " interface on " +
                       std::to_string(sw) + (at == in.end() ? " added" : " removed");
    if (at != in.end()) {
      in.erase(at);
    } else {
      in.push_back({.port_key = 800 + router.key * 16 + sw,
                    .switch_key = sw,
                    .mac = mac(1, static_cast<uint8_t>(router.key * 16 + sw)),
                    .ip = address(10, 0, sw, router.key),
                    .subnet = {address(10, 0, sw, 0), 24}});
    }
    return what;
  }

  std::string addOrRemovePort() {
    if (t_.ports.size() > 4 && r_.chance(50)) {
      auto it = t_.ports.begin();
      std::advance(it, static_cast<long>(r_.below(t_.ports.size())));
      uint32_t key = it->first;
      t_.ports.erase(it);
      std::erase_if(t_.floating_ips, [&](const FloatingIp& f) { return f.port_key == key; });
      return "port " + std::to_string(key) + " removed";
    }
    if (next_port_ > 200) return "nothing";
    Port p = randomPort(r_, t_, next_port_++);
    t_.ports[p.key] = p;
    return "port " + std::to_string(p.key) + " added";
  }

  Random& r_;
  TopologyParts& t_;
  uint32_t& next_port_;
  int rule_serial_ = 0;
};

// --- the test ---

struct Sent {
  uint32_t host = 0;
  Ingress in{};
  std::vector<uint8_t> frame;
};

std::vector<uint64_t> roundSeeds() {
  if (const char* s = std::getenv("CANOPY_TEST_SEED")) return {std::strtoull(s, nullptr, 10)};
  std::random_device device;
  uint64_t base = uint64_t{device()} << 32 | device();
  std::vector<uint64_t> seeds;
  for (int i = 0; i < kRounds; ++i) seeds.push_back(base + static_cast<uint64_t>(i));
  return seeds;
}

TEST(Differential, CachedDecisionsEqualFreshSimulation) {
  flowcache::CacheStats totals;
  uint64_t outputs = 0;
  for (uint64_t seed : roundSeeds()) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " (CANOPY_TEST_SEED=" + std::to_string(seed) +
                 " replays this round)");
    // Printed as well, for a crash leaves no failure message.
    std::fprintf(stderr, "round seed %llu\n", static_cast<unsigned long long>(seed));
    Random r(seed);
    FakeClock clock;
    uint32_t next_port = 1;
    TopologyParts parts = randomTopology(r, next_port);
    Twins twins(r, clock);
    twins.setTopology(parts);
    if (::testing::Test::HasFatalFailure()) return;
    for (uint32_t h = 1; h <= kHosts; ++h) {
      if (r.chance(60)) twins.learnNeighbor(h, kExternal, address(203, 0, 113, 1), kOutside);
      if (r.chance(60)) twins.learnNeighbor(h, kExternal, address(203, 0, 113, 200), kOutsideOther);
    }
    Traffic traffic(r, parts);
    std::vector<Sent> flows;
    Mutator mutator(r, parts, next_port);
    std::string last_change = "none";
    for (int n = 1; n <= kPacketsPerRound; ++n) {
      SCOPED_TRACE("last topology change: " + last_change);
      if (n % kMutationEvery == 0) {
        last_change = mutator.mutate();
        twins.setTopology(parts);
        if (::testing::Test::HasFatalFailure()) return;
      }
      if (r.chance(2)) {
        clock.advance(std::chrono::seconds(r.pick<int>({1, 31, 200})));
        twins.sweep();
      }
      // A flow's next packet (the same frame again), an answer to what
      // left, a frame from outside, or a new frame from a port.
      Sent next;
      size_t source = r.below(100);
      const auto& recent = twins.recent();
      if (source < 40 && !flows.empty()) {
        next = flows[r.below(flows.size())];
      } else if (source < 55 && !recent.empty()) {
        const Recorded& seen = recent[r.below(recent.size())];
        if (auto answer = traffic.answer(seen.bytes)) {
          next = {seen.host,
                  seen.kind == Outputs::Kind::Port ? Ingress::fromPort(seen.port)
                                                   : Ingress::fromUplink(seen.uplink),
                  std::move(*answer)};
        }
      } else if (source < 68) {
        auto h = static_cast<uint32_t>(1 + r.below(kHosts));
        const auto& uplinks = twins.config(h).host.uplinks;
        if (!uplinks.empty()) {
          size_t u = r.below(uplinks.size());
          next = {h, Ingress::fromUplink(static_cast<uint32_t>(u)),
                  traffic.fromOutside(uplinks[u])};
        }
      } else if (!parts.ports.empty()) {
        auto it = parts.ports.begin();
        std::advance(it, static_cast<long>(r.below(parts.ports.size())));
        const Port& p = it->second;
        uint32_t host =
            p.host != 0 && r.chance(97) ? p.host : static_cast<uint32_t>(1 + r.below(kHosts));
        next = {host, Ingress::fromPort(p.key), traffic.fromPort(p)};
      }
      if (next.frame.empty()) continue;
      if (source >= 40) {
        if (flows.size() < kFlows) {
          flows.push_back(next);
        } else {
          flows[r.below(kFlows)] = next;
        }
      }
      bool ok = twins.send(next.host, next.in, next.frame);
      if (!ok) return;
    }
    auto stats = twins.cacheTotals();
    totals.hits += stats.hits;
    totals.invalidated += stats.invalidated;
    totals.inserts += stats.inserts;
    outputs += twins.outputs();
  }
  // Not vacuous: the cache served packets, changes invalidated decisions,
  // and frames went somewhere.
  EXPECT_GT(totals.hits, 100u);
  EXPECT_GT(totals.invalidated, 0u);
  EXPECT_GT(outputs, 100u);
  std::printf("cache: %llu inserts, %llu hits, %llu invalidated; %llu frames sent\n",
              static_cast<unsigned long long>(totals.inserts),
              static_cast<unsigned long long>(totals.hits),
              static_cast<unsigned long long>(totals.invalidated),
              static_cast<unsigned long long>(outputs));
}

}  // namespace
}  // namespace canopy::datapath::testing
