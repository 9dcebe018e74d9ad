// The datapath core without I/O, one core: frames in batches of 32 through
// Datapath::process() with a topology of 10,000 ports and 1,000
// security-group rules.
//
//   BM_Floor               parse + copy into the output batch: what any
//                          datapath pays per frame, the in-run reference
//   BM_CachedL2            port -> port on another host, same network, Geneve
//   BM_FabricL2            BM_CachedL2's frames through both hosts on a Fabric
//                          (sender, tunnel, receiver), one frame at a time
//   BM_CachedRouted        port -> router -> port on another host, Geneve
//   BM_CachedFloatingIp    port with a floating IP -> outside: route, NAT, uplink
//   BM_CachedSnatRedirect  port -> outside through the gateway host, Geneve
//   BM_FlowSetup           every frame a new connection: conntrack miss, a
//                          full simulation (20 rules per group), cache insert
//   BM_ConntrackLookup     ConnTrack::lookup over 65,536 established flows
//   BM_Workers*/threads:N  N workers, each its own Datapath (cache, counters)
//                          over one SharedState (conntrack, SNAT, neighbours),
//                          each on its own flows: the cached routed path and
//                          flow setups (conntrack commits in the shared
//                          table). Rates are of all threads together (wall
//                          time): threads:2 over threads:1 is the scaling.
//
// 64-byte frames (UDP, 22 bytes of payload). Items per second = frames/s.

#include <benchmark/benchmark.h>

#include <memory>
#include <mutex>
#include <vector>

#include "base/clock.h"
#include "datapath/fabric/fabric.h"
#include "datapath/packet/builder.h"
#include "datapath/pipeline/datapath.h"

namespace canopy::datapath {
namespace {

using packet::Ipv4Address;
using packet::MacAddress;
using packet::PacketBuilder;
using pipeline::Datapath;
using pipeline::Ingress;
using pipeline::Outputs;

constexpr uint32_t kSwitches = 100;
constexpr uint32_t kPortsPerSwitch = 100;  // 10,000 ports
constexpr uint32_t kGroups = 50;
constexpr uint32_t kRulesPerGroup = 20;  // 1,000 rules
constexpr uint32_t kExternal = 1000;
constexpr size_t kBatch = 32;

uint32_t portKey(uint32_t sw, uint32_t i) { return sw * 1000 + i; }
MacAddress portMac(uint32_t sw, uint32_t i) {
  return {{0xfa, 0x16, 0x3e, static_cast<uint8_t>(sw), static_cast<uint8_t>(i >> 8),
           static_cast<uint8_t>(i)}};
}
MacAddress routerMac(uint32_t sw) {
  return {{0xfa, 0x16, 0x3e, 0xff, 0, static_cast<uint8_t>(sw)}};
}
Ipv4Address portIp(uint32_t sw, uint32_t i) {
  return Ipv4Address::of(10, static_cast<uint8_t>(sw), static_cast<uint8_t>(i / 200),
                         static_cast<uint8_t>(i % 200 + 2));
}
IpAddress addr(Ipv4Address a) { return a.ip(); }
// Even ports are on host 1 (where the benchmark runs), odd ones on host 2.
uint32_t hostOf(uint32_t i) { return i % 2 == 0 ? 1 : 2; }

// With `qos`, every port is under a QoS policy: its egress held to
// 10 Gbit/s (never reached here: the cost of the bucket, not of drops) and
// DSCP 26 marked. With `logged`, every port's groups are logged (ACCEPT
// and DROP).
std::shared_ptr<const topology::Topology> bigTopology(bool qos = false, bool logged = false) {
  topology::TopologyBuilder b;
  b.addHost({.key = 1, .name = "h1", .tunnel_ip = IpAddress::v4(192, 168, 0, 1)});
  b.addHost({.key = 2, .name = "h2", .tunnel_ip = IpAddress::v4(192, 168, 0, 2)});
  for (uint32_t g = 1; g <= kGroups; ++g) {
    topology::SecurityGroup group{.key = g, .id = "sg" + std::to_string(g)};
    // Rules that do not match the benchmark's UDP first, the one that
    // does last: a setup scans them all.
    for (uint32_t r = 0; r + 2 < kRulesPerGroup; ++r) {
      group.rules.push_back({.id = "r" + std::to_string(g) + "-" + std::to_string(r),
                             .direction = topology::Direction::Ingress,
                             .protocol = 6,
                             .port_min = static_cast<uint16_t>(1000 + r),
                             .port_max = static_cast<uint16_t>(1000 + r),
                             .remote_prefix = *IpPrefix::parse("172.16.0.0/12")});
    }
    group.rules.push_back(
        {.id = "egress" + std::to_string(g), .direction = topology::Direction::Egress});
    group.rules.push_back({.id = "udp" + std::to_string(g),
                           .direction = topology::Direction::Ingress,
                           .protocol = 17,
                           .remote_prefix = *IpPrefix::parse("0.0.0.0/0")});
    b.addGroup(std::move(group));
  }
  topology::Router router{.key = 1, .id = "router"};
  for (uint32_t s = 1; s <= kSwitches; ++s) {
    auto cidr = *IpPrefix::parse("10." + std::to_string(s) + ".0.0/16");
    auto gw = IpAddress::v4(10, static_cast<uint8_t>(s), 0, 1);
    b.addSwitch({.key = s,
                 .id = "net" + std::to_string(s),
                 .vni = 1000 + s,
                 .mtu = 1442,
                 .subnets = {{.id = "sub" + std::to_string(s), .cidr = cidr, .gateway = gw}}});
    router.interfaces.push_back(
        {.port_key = 900000 + s, .switch_key = s, .mac = routerMac(s), .ip = gw, .subnet = cidr});
    for (uint32_t i = 0; i < kPortsPerSwitch; ++i) {
      b.addPort({.key = portKey(s, i),
                 .id = "p" + std::to_string(portKey(s, i)),
                 .switch_key = s,
                 .mac = portMac(s, i),
                 .ips = {addr(portIp(s, i))},
                 .groups = {1 + (s * kPortsPerSwitch + i) % kGroups},
                 .host = hostOf(i),
                 .qos = qos ? topology::PortQos{.egress = topology::BandwidthLimit{10'000'000, 0},
                                                .dscp = 26}
                            : topology::PortQos{},
                 .log_events = static_cast<uint8_t>(logged ? 3 : 0)});
    }
  }
  b.addSwitch({.key = kExternal,
               .id = "public",
               .vni = 5000,
               .subnets = {{.id = "public-sub",
                            .cidr = *IpPrefix::parse("203.0.113.0/24"),
                            .gateway = IpAddress::v4(203, 0, 113, 1),
                            .dhcp = false}},
               .external = true,
               .physical_network = "physnet1"});
  router.gateway = topology::Gateway{.port_key = 999999,
                                     .switch_key = kExternal,
                                     .mac = {{0xfa, 0x16, 0x3e, 0xee, 0, 1}},
                                     .ips = {IpAddress::v4(203, 0, 113, 10)},
                                     .host = 2,
                                     .nexthop = IpAddress::v4(203, 0, 113, 1)};
  b.addRouter(std::move(router));
  for (uint32_t i = 0; i < 64; i += 2) {
    b.addFloatingIp({.id = "fip" + std::to_string(i),
                     .external = IpAddress::v4(203, 0, 113, static_cast<uint8_t>(100 + i)),
                     .fixed = addr(portIp(1, i)),
                     .port_key = portKey(1, i),
                     .router_key = 1});
  }
  return *b.build(1);
}

struct Flow {
  uint32_t in_port;
  std::vector<uint8_t> frame;
};

std::vector<uint8_t> udpFrame(MacAddress src_mac, MacAddress dst_mac, Ipv4Address src,
                              Ipv4Address dst, uint16_t sport) {
  return PacketBuilder()
      .eth(src_mac, dst_mac)
      .ipv4(src, dst)
      .udp(sport, 5001)
      .payload(std::string(22, 'x'))  // 14 + 20 + 8 + 22 = 64 bytes
      .build();
}

pipeline::Config hostConfig() {
  pipeline::Config c;
  c.host.host = 1;
  c.host.uplinks = {"physnet1"};
  c.flow_cache_entries = 1 << 16;
  return c;
}

class Fixture {
 public:
  explicit Fixture(std::shared_ptr<pipeline::SharedState> shared = nullptr,
                   std::shared_ptr<const topology::Topology> t = topology) {
    dp = std::make_unique<Datapath>(clock, hostConfig(), std::move(shared));
    dp->setTopology(std::move(t));
    dp->learnNeighbor(kExternal, IpAddress::v4(203, 0, 113, 1), {{0x52, 0x54, 0, 0, 0, 1}});
  }

  // Runs every flow until its decision is cached (new, then established).
  void warm(const std::vector<Flow>& flows) {
    for (int round = 0; round < 2; ++round) {
      for (const auto& f : flows) {
        out.clear();
        dp->process(Ingress::fromPort(f.in_port), f.frame, out);
      }
    }
  }

  static inline std::shared_ptr<const topology::Topology> topology = bigTopology();
  static inline std::shared_ptr<const topology::Topology> qos_topology = bigTopology(true);
  static inline std::shared_ptr<const topology::Topology> logged_topology =
      bigTopology(false, true);
  SystemClock clock;
  std::unique_ptr<Datapath> dp;
  Outputs out;
};

std::vector<Datapath::Input> inputs(const std::vector<Flow>& flows) {
  std::vector<Datapath::Input> v;
  for (const auto& f : flows) v.push_back({Ingress::fromPort(f.in_port), f.frame});
  return v;
}

void runBatches(benchmark::State& state, Fixture& fx, const std::vector<Flow>& flows) {
  auto in = inputs(flows);  // a multiple of the batch size
  size_t next = 0;
  uint64_t sent = 0;
  for (auto _ : state) {
    fx.out.clear();
    fx.dp->processBatch(std::span(in).subspan(next, kBatch), fx.out);
    next = next + kBatch == in.size() ? 0 : next + kBatch;
    sent += fx.out.items().size();
    benchmark::DoNotOptimize(fx.out.items().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
  state.counters["outputs_per_frame"] =
      static_cast<double>(sent) /
      static_cast<double>(state.iterations() * static_cast<int64_t>(kBatch));
  const auto& s = fx.dp->cacheStats();
  state.counters["cache_hit_ratio"] =
      static_cast<double>(s.hits) / static_cast<double>(std::max<uint64_t>(1, s.hits + s.misses));
}

// 1,024 flows from local ports to the given destinations.
template <typename Make>
std::vector<Flow> flows(Make make) {
  std::vector<Flow> v;
  for (uint32_t n = 0; n < 1024; ++n) v.push_back(make(n));
  return v;
}

// 1,024 flows from host 1's ports to host 2's on the same network (8 of them).
std::vector<Flow> l2Flows() {
  return flows([](uint32_t n) {
    uint32_t sw = 1 + n % 8, src = (n % 50) * 2, dst = (n % 50) * 2 + 1;
    return Flow{portKey(sw, src), udpFrame(portMac(sw, src), portMac(sw, dst), portIp(sw, src),
                                           portIp(sw, dst), static_cast<uint16_t>(1000 + n))};
  });
}

void BM_Floor(benchmark::State& state) {
  auto frame = udpFrame(portMac(1, 0), portMac(1, 1), portIp(1, 0), portIp(1, 1), 1000);
  Outputs out;
  for (auto _ : state) {
    out.clear();
    for (size_t i = 0; i < kBatch; ++i) {
      packet::ParsedPacket p;
      benchmark::DoNotOptimize(packet::parse(frame, p));
      auto room = out.add({.kind = Outputs::Kind::Port, .port = p.key.tp_src}, frame.size());
      std::copy(frame.begin(), frame.end(), room.begin());
    }
    benchmark::DoNotOptimize(out.items().data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * static_cast<int64_t>(kBatch)));
}
BENCHMARK(BM_Floor);

void BM_CachedL2(benchmark::State& state) {
  Fixture fx;
  auto v = l2Flows();
  fx.warm(v);
  runBatches(state, fx, v);
}
BENCHMARK(BM_CachedL2);

// BM_CachedL2 with every sender under a QoS policy (egress limit and DSCP
// mark): the cost of a limited port on the cached path.
void BM_CachedL2Qos(benchmark::State& state) {
  Fixture fx(nullptr, Fixture::qos_topology);
  auto v = l2Flows();
  fx.warm(v);
  runBatches(state, fx, v);
  state.counters["qos_drops"] =
      static_cast<double>(fx.dp->counters().dropped(DropReason::QosBandwidthLimit));
}
BENCHMARK(BM_CachedL2Qos);

// BM_CachedL2 with every port's security groups logged (ACCEPT and DROP):
// established flows carry no record, so the cached path should not notice.
void BM_CachedL2Logged(benchmark::State& state) {
  Fixture fx(nullptr, Fixture::logged_topology);
  auto v = l2Flows();
  fx.warm(v);
  runBatches(state, fx, v);
  state.counters["records"] = static_cast<double>(fx.dp->shared().securityGroupLogWritten());
}
BENCHMARK(BM_CachedL2Logged);

// The same frames as BM_CachedL2 on both of their hosts, on a Fabric (as
// trace and the tests wire hosts): the sender's datapath, the tunnel, the
// receiver's. Includes the fabric's copy of each frame between hosts.
void BM_FabricL2(benchmark::State& state) {
  SystemClock clock;
  fabric::Fabric fabric(clock);
  for (uint32_t h : {1u, 2u}) {
    pipeline::Config c = hostConfig();
    c.host.host = h;
    fabric.addHost(h, "h" + std::to_string(h), std::move(c), Fixture::topology);
  }
  auto v = l2Flows();
  for (int round = 0; round < 2; ++round) {
    for (const auto& f : v) fabric.send(1, Ingress::fromPort(f.in_port), f.frame);
  }
  size_t next = 0, delivered = 0;
  for (auto _ : state) {
    const Flow& f = v[next];
    next = (next + 1) % v.size();
    delivered += fabric.send(1, Ingress::fromPort(f.in_port), f.frame).outputs.size();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["delivered_per_frame"] =
      static_cast<double>(delivered) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_FabricL2);

void BM_CachedRouted(benchmark::State& state) {
  Fixture fx;
  auto v = flows([](uint32_t n) {
    uint32_t sw = 1 + n % 8, src = (n % 50) * 2, dst = (n % 50) * 2 + 1;
    return Flow{portKey(sw, src), udpFrame(portMac(sw, src), routerMac(sw), portIp(sw, src),
                                           portIp(sw + 10, dst), static_cast<uint16_t>(1000 + n))};
  });
  fx.warm(v);
  runBatches(state, fx, v);
}
BENCHMARK(BM_CachedRouted);

void BM_CachedFloatingIp(benchmark::State& state) {
  Fixture fx;
  auto v = flows([](uint32_t n) {
    uint32_t src = (n % 32) * 2;  // the ports with floating IPs
    return Flow{portKey(1, src),
                udpFrame(portMac(1, src), routerMac(1), portIp(1, src),
                         Ipv4Address::of(198, 51, 100, static_cast<uint8_t>(n % 200)),
                         static_cast<uint16_t>(1000 + n))};
  });
  fx.warm(v);
  runBatches(state, fx, v);
}
BENCHMARK(BM_CachedFloatingIp);

void BM_CachedSnatRedirect(benchmark::State& state) {
  Fixture fx;
  auto v = flows([](uint32_t n) {
    uint32_t sw = 2 + n % 8, src = (n % 50) * 2;
    return Flow{portKey(sw, src),
                udpFrame(portMac(sw, src), routerMac(sw), portIp(sw, src),
                         Ipv4Address::of(198, 51, 100, static_cast<uint8_t>(n % 200)),
                         static_cast<uint16_t>(1000 + n))};
  });
  fx.warm(v);
  runBatches(state, fx, v);
}
BENCHMARK(BM_CachedSnatRedirect);

void BM_FlowSetup(benchmark::State& state) {
  std::unique_ptr<Fixture> fx;
  std::vector<Flow> v;
  for (uint32_t n = 0; n < 65536; ++n) {
    // Local destinations: each setup also runs the ingress rules (a second
    // simulation, the destination port's stage).
    uint32_t sw = 1 + n % 8, src = (n % 50) * 2, dst = (n / 50 % 50) * 2;
    v.push_back(
        {portKey(sw, src), udpFrame(portMac(sw, src), routerMac(sw), portIp(sw, src),
                                    portIp(sw + 10, dst), static_cast<uint16_t>(1024 + n / 2500))});
  }
  auto in = inputs(v);
  size_t next = in.size();
  for (auto _ : state) {
    if (next == in.size()) {
      // Every frame must be new to this datapath: start a fresh one.
      state.PauseTiming();
      fx = std::make_unique<Fixture>();
      next = 0;
      state.ResumeTiming();
    }
    fx->out.clear();
    fx->dp->processBatch(std::span(in).subspan(next, kBatch), fx->out);
    next += kBatch;
    benchmark::DoNotOptimize(fx->out.items().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
  state.counters["simulations_per_frame"] =
      static_cast<double>(fx->dp->counters().simulations) /
      static_cast<double>(std::max<uint64_t>(1, fx->dp->counters().packets));
}
BENCHMARK(BM_FlowSetup);

void BM_ConntrackLookup(benchmark::State& state) {
  SystemClock clock;
  conntrack::ConnTrack ct(clock, {});
  std::vector<std::vector<uint8_t>> frames;
  std::vector<packet::ParsedPacket> parsed;
  for (uint32_t n = 0; n < 65536; ++n) {
    frames.push_back(
        udpFrame(portMac(1, 0), portMac(1, 1),
                 Ipv4Address::of(10, 1, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)),
                 portIp(1, 1), static_cast<uint16_t>(1000 + n % 50000)));
    packet::ParsedPacket p;
    static_cast<void>(packet::parse(frames.back(), p));
    parsed.push_back(p);
    static_cast<void>(ct.commit(p, frames.back(), 1));
  }
  size_t next = 0;
  for (auto _ : state) {
    for (size_t i = 0; i < kBatch; ++i) {
      benchmark::DoNotOptimize(ct.lookup(parsed[next], frames[next], 1));
      next = (next + 1) & 0xffff;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * static_cast<int64_t>(kBatch)));
}
BENCHMARK(BM_ConntrackLookup);

// One SharedState for the threads of one run: the first thread to set up
// makes it, the last one to finish lets it go.
class SharedForRun {
 public:
  std::shared_ptr<pipeline::SharedState> join(size_t threads) {
    std::lock_guard lock(mu_);
    if (users_++ == 0) {
      current_ = std::make_shared<pipeline::SharedState>(clock_, hostConfig(), threads);
    }
    return current_;
  }
  void leave() {
    std::lock_guard lock(mu_);
    if (--users_ == 0) current_.reset();
  }

 private:
  std::mutex mu_;
  SystemClock clock_;
  std::shared_ptr<pipeline::SharedState> current_;
  int users_ = 0;
};

SharedForRun g_shared;

void BM_WorkersCachedRouted(benchmark::State& state) {
  Fixture fx(g_shared.join(static_cast<size_t>(state.threads())));
  // Each thread its own 1,024 flows (other networks, other source ports).
  auto t = static_cast<uint32_t>(state.thread_index());
  auto v = flows([t](uint32_t n) {
    uint32_t sw = 1 + (n + 8 * t) % 40, src = (n % 50) * 2, dst = (n % 50) * 2 + 1;
    return Flow{portKey(sw, src),
                udpFrame(portMac(sw, src), routerMac(sw), portIp(sw, src), portIp(sw + 40, dst),
                         static_cast<uint16_t>(1000 + n + 2000 * t))};
  });
  fx.warm(v);
  runBatches(state, fx, v);
  fx.dp.reset();
  g_shared.leave();
}
BENCHMARK(BM_WorkersCachedRouted)->Threads(1)->Threads(2)->UseRealTime();

void BM_WorkersFlowSetup(benchmark::State& state) {
  auto shared = g_shared.join(static_cast<size_t>(state.threads()));
  auto t = static_cast<uint32_t>(state.thread_index());
  // Round r's flows differ from earlier rounds' by their source ports, so
  // that each is new to the shared table too.
  auto round = [t](uint32_t r) {
    std::vector<Flow> v;
    for (uint32_t n = 0; n < 32768; ++n) {
      uint32_t sw = 1 + (n + 8 * t) % 40, src = (n % 50) * 2, dst = (n / 50 % 50) * 2;
      auto sport = static_cast<uint16_t>(1024 + n / 2500 + 16 * t + 64 * r);
      v.push_back({portKey(sw, src), udpFrame(portMac(sw, src), routerMac(sw), portIp(sw, src),
                                              portIp(sw + 40, dst), sport)});
    }
    return v;
  };
  std::vector<Flow> v;
  std::vector<Datapath::Input> in;
  std::unique_ptr<Fixture> fx;
  size_t next = 0;
  uint32_t rounds = 0;
  for (auto _ : state) {
    if (next == in.size()) {
      // Every frame new to its worker: a fresh datapath (and cache) over
      // the same shared table.
      state.PauseTiming();
      fx = std::make_unique<Fixture>(shared);
      v = round(rounds++ % 900);
      in = inputs(v);
      next = 0;
      state.ResumeTiming();
    }
    fx->out.clear();
    fx->dp->processBatch(std::span(in).subspan(next, kBatch), fx->out);
    next += kBatch;
    benchmark::DoNotOptimize(fx->out.items().data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(kBatch));
  fx.reset();
  g_shared.leave();
}
BENCHMARK(BM_WorkersFlowSetup)->Threads(1)->Threads(2)->UseRealTime();

}  // namespace
}  // namespace canopy::datapath

BENCHMARK_MAIN();
