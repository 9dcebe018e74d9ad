// Fuzzes one host's whole datapath (parser, tunnels, conntrack, flow cache,
// simulator, NAT, generated replies, the metadata service's path, IPv6's
// neighbour discovery, router advertisements and DHCPv6) on the test
// scenario's topology with IPv6 (testing/datapath_scenario.h), a trunk, QoS
// limits and a floating IP's port forwardings. An input is up to four segments
// separated by the bytes ff fe; a segment's first byte says where the rest comes in:
//
//   bit 7      the host: h1 (vm1, vm3, vm5, vmb; vm3's floating IP) or h2
//              (vm2; the router's gateway, with SNAT)
//   bit 6      (first segment) whether the hosts know the external next hop
//   bit 5      h1's metadata interface (its metadata service's answers),
//              whatever bits 0-2 say
//   bits 0-2   0-3 a port bound on the host, 4 its uplink, 5 a Geneve and
//              6 a VXLAN tunnel from the other host (the rest is the UDP
//              payload), 7 a port bound on another host
//
// The segments run twice, in order, through two datapaths per host side by
// side: one with the flow cache, one traced (every packet simulated
// afresh). Besides crashes (ASan, UBSan), any difference in what they send
// or count aborts: a cached decision that a fresh simulation would not make.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <vector>

#include "base/clock.h"
#include "datapath/pipeline/datapath.h"
#include "testing/datapath_scenario.h"

namespace {

namespace dp = canopy::datapath;
using dp::pipeline::Datapath;
using dp::pipeline::Encapsulation;
using dp::pipeline::Ingress;
using dp::pipeline::Outputs;
using namespace dp::testing::world;

constexpr size_t kMaxSegments = 4;

// The scenario with its IPv6 subnets (router advertisements, DHCPv6,
// neighbour discovery, ICMPv6 from the router), and a load balancer's VIP
// on net1 (10.0.0.100 and fd00:1::100, TCP 80 and UDP 53 to vm2, vm5 (a
// hairpin from h1's vm5) and vm3 behind the router, least connections on
// UDP) with a floating IP: its pins, replies and ICMP errors see what the
// fuzzer sends.
const std::shared_ptr<const dp::topology::Topology>& scenarioTopology() {
  static const auto topology = [] {
    auto parts = dp::testing::TopologyParts::of(**dp::testing::scenario().build(1));
    dp::testing::addIpv6(parts);
    using dp::testing::ip;
    std::vector<dp::topology::LbMember> members = {{.address = ip("10.0.0.6"), .port = 80},
                                                   {.address = ip("10.0.0.8"), .port = 80},
                                                   {.address = ip("10.0.1.5"), .port = 80},
                                                   {.address = ip("fd00:1::6"), .port = 80},
                                                   {.address = ip("fd00:2::5"), .port = 80}};
    parts.ports[50] = dp::topology::Port{
        .key = 50,
        .id = "vip",
        .switch_key = kNet1,
        .mac = dp::testing::mac(0, 0x50),
        .ips = {ip("10.0.0.100"), ip("fd00:1::100")},
        .device_owner = "Octavia",
        .listeners = {{.id = "web", .protocol = 6, .port = 80, .members = members},
                      {.id = "dns",
                       .protocol = 17,
                       .port = 53,
                       .algorithm = dp::topology::LbAlgorithm::LeastConnections,
                       .members = members}}};
    parts.floating_ips.push_back({.id = "fip-vip",
                                  .external = ip("203.0.113.60"),
                                  .fixed = ip("10.0.0.100"),
                                  .port_key = 50,
                                  .router_key = kRouter});
    // vm1 is a trunk's parent: VLAN 100 is a subport on net2. vm5 sends
    // under a tight limit with DSCP marked; vm2 receives under one.
    parts.ports[51] = dp::topology::Port{.key = 51,
                                         .id = "subport",
                                         .switch_key = kNet2,
                                         .mac = dp::testing::mac(0, 1),
                                         .ips = {ip("10.0.1.51")},
                                         .groups = {kWeb},
                                         .host = kH1,
                                         .trunk_parent = kVm1,
                                         .trunk_vid = 100};
    parts.ports.at(kVm1).subports = {{100, 51}};
    parts.ports.at(kVm5).qos = {.egress = dp::topology::BandwidthLimit{64, 8}, .dscp = 46};
    parts.ports.at(kVm2).qos = {.ingress = dp::topology::BandwidthLimit{128, 0}};
    // A floating IP forwarding ports to vm1 and a range to vm2.
    dp::topology::FloatingIp forwarding{
        .id = "fip-pf", .external = ip("203.0.113.61"), .router_key = kRouter};
    forwarding.forwardings = {{.protocol = 6,
                               .external_min = 2222,
                               .external_max = 2222,
                               .internal_min = 22,
                               .internal = ip("10.0.0.5"),
                               .port_key = kVm1},
                              {.protocol = 17,
                               .external_min = 5000,
                               .external_max = 5009,
                               .internal_min = 6000,
                               .internal = ip("10.0.0.6"),
                               .port_key = kVm2}};
    parts.floating_ips.push_back(forwarding);
    return *parts.builder().build(1);
  }();
  return topology;
}

struct Segment {
  uint8_t selector = 0;
  std::span<const uint8_t> bytes;
};

std::vector<Segment> split(std::span<const uint8_t> data) {
  std::vector<Segment> segments;
  while (!data.empty() && segments.size() < kMaxSegments) {
    size_t cut = data.size();
    for (size_t i = 0; i + 1 < data.size(); ++i) {
      if (data[i] == 0xff && data[i + 1] == 0xfe) {
        cut = i;
        break;
      }
    }
    if (cut > 0) segments.push_back({data[0], data.subspan(1, cut - 1)});
    data = data.subspan(cut == data.size() ? cut : cut + 2);
  }
  return segments;
}

// Where a segment comes in.
Ingress ingressOf(uint8_t selector, uint32_t host) {
  static const std::vector<uint32_t> kH1Ports = {kVm1, kVm3, kVm5, kVmB};
  static const std::vector<uint32_t> kH2Ports = {kVm2};
  const auto& ports = host == kH1 ? kH1Ports : kH2Ports;
  uint32_t other = host == kH1 ? kH2 : kH1;
  const auto& peer = scenarioTopology()->findHost(other)->tunnel_ip;
  if ((selector & 0x20) != 0 && host == kH1) return Ingress::fromMetadata();
  unsigned which = selector & 0x07u;
  switch (which) {
    case 4:
      return Ingress::fromUplink(0);
    case 5:
      return Ingress::fromTunnel(Encapsulation::Geneve, peer);
    case 6:
      return Ingress::fromTunnel(Encapsulation::Vxlan, peer);
    case 7:
      return Ingress::fromPort(host == kH1 ? kVm2 : kVm1);
    default:
      return Ingress::fromPort(ports[which % ports.size()]);
  }
}

bool sameOutputs(const Outputs& a, const Outputs& b) {
  if (a.items().size() != b.items().size()) return false;
  for (size_t n = 0; n < a.items().size(); ++n) {
    const auto& x = a.items()[n];
    const auto& y = b.items()[n];
    auto xb = a.bytes(x), yb = b.bytes(y);
    if (x.kind != y.kind || x.port != y.port || x.host != y.host || !(x.remote == y.remote) ||
        x.udp_source != y.udp_source || x.uplink != y.uplink ||
        !std::equal(xb.begin(), xb.end(), yb.begin(), yb.end())) {
      return false;
    }
  }
  return true;
}

bool sameCounters(const dp::pipeline::Counters& a, const dp::pipeline::Counters& b) {
  return a.packets == b.packets && a.outputs == b.outputs && a.answered == b.answered &&
         a.drops == b.drops;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto segments = split({data, size});
  if (segments.empty()) return 0;
  canopy::FakeClock clock;
  // [host index][0: cached, 1: fresh]
  std::unique_ptr<Datapath> paths[2][2];
  for (uint32_t h : {kH1, kH2}) {
    dp::pipeline::Config config;
    config.host.host = h;
    config.host.uplinks = {"physnet1"};
    config.host.metadata = h == kH1;  // h1 serves the metadata service
    config.flow_cache_entries = 64;
    for (auto& path : paths[h - 1]) {
      path = std::make_unique<Datapath>(clock, config);
      path->setTopology(scenarioTopology());
      if ((segments[0].selector & 0x40) != 0) {
        path->learnNeighbor(kPublic, dp::testing::ip("203.0.113.1"), kOutsideMac);
      }
    }
  }
  for (int pass = 0; pass < 2; ++pass) {
    for (const Segment& s : segments) {
      uint32_t host = (s.selector & 0x80) != 0 ? kH2 : kH1;
      Ingress in = ingressOf(s.selector, host);
      Datapath& cached = *paths[host - 1][0];
      Datapath& fresh = *paths[host - 1][1];
      Outputs a, b;
      dp::pipeline::Trace trace;
      // The cached side works in place, as the agent lets it, in a buffer
      // of its own sized exactly (so that ASan sees any overrun).
      auto writable = std::make_unique<uint8_t[]>(s.bytes.size());
      std::copy(s.bytes.begin(), s.bytes.end(), writable.get());
      std::span<uint8_t> frame(writable.get(), s.bytes.size());
      Datapath::Input input{.in = in, .frame = frame, .writable = frame};
      cached.processBatch({&input, 1}, a);
      fresh.process(in, s.bytes, b, &trace);
      if (!sameOutputs(a, b) || !sameCounters(cached.counters(), fresh.counters())) {
        std::fprintf(stderr, "cached and fresh decisions differ (pass %d); fresh trace:\n", pass);
        for (const auto& line : trace) std::fprintf(stderr, "  %s\n", line.c_str());
        std::abort();
      }
    }
    clock.advance(std::chrono::seconds(1));
  }
  return 0;
}
