// The kernel fast path against the userspace datapath, byte for byte: the
// scenario's host h1 with three of its VMs' ports (vm1 and vm5 on net1, vm3
// on net2 behind r1) as veth pairs whose VM ends are raw sockets in
// namespaces of their own. Random flows (UDP and TCP, switched and routed,
// random ports, TTLs and payloads, printed seed) are opened through the
// datapath; each later packet goes through the datapath, whose offers are
// installed for real, and then through the kernel: what reaches the
// destination VM's namespace must be the datapath's output exactly. The
// same flows' packets the fast path must leave to the agent (TCP RST, a TTL
// routing ends, a fragment) reach no VM and are seen by the agent's socket.
// Needs root (skipped without).

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>

#include "agent/kernel_flows.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/describe.h"
#include "datapath/pipeline/datapath.h"
#include "fastpath/fast_path.h"
#include "kernel_test.h"
#include "testing/datapath_scenario.h"

namespace canopy::fastpath {
namespace {

using datapath::packet::PacketBuilder;
using datapath::packet::TcpHeader;
using datapath::pipeline::Datapath;
using datapath::pipeline::Ingress;
using datapath::pipeline::Outputs;
using namespace datapath::testing::world;
using datapath::packet::MacAddress;
using datapath::testing::mac;
using datapath::testing::scenario;
using datapath::testing::v4;

const std::string kTag = "cfd" + std::to_string(::getpid());

uint64_t testSeed() {
  const char* fixed = std::getenv("CANOPY_TEST_SEED");
  return fixed != nullptr ? std::strtoull(fixed, nullptr, 10) : std::random_device{}();
}

// A generator from testSeed(), the seed printed (to replay a failure).
std::mt19937_64 seeded() {
  const uint64_t seed = testSeed();
  std::printf("seed %llu\n", static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

// A raw socket on `interface` of namespace `ns` (the test's own when empty).
int rawSocket(const std::string& ns, const std::string& interface) {
  int here = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int there = ns.empty() ? -1 : ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  if (there >= 0) ::setns(there, CLONE_NEWNET);
  int s = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
  sockaddr_ll ll{};
  ll.sll_family = AF_PACKET;
  ll.sll_protocol = htons(ETH_P_ALL);
  ll.sll_ifindex = static_cast<int>(::if_nametoindex(interface.c_str()));
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)), 0) << interface;
  int one = 1;
  ::setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
  ::setsockopt(s, SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one));
  if (there >= 0) {
    ::setns(here, CLONE_NEWNET);
    ::close(there);
  }
  ::close(here);
  return s;
}

// The IPv4 frames waiting on a raw socket after up to `wait_ms` for the
// first; IPv4 behind a VLAN tag too, the tag (which the kernel delivers
// beside the frame) put back in.
std::vector<std::vector<uint8_t>> frames(int s, int wait_ms) {
  std::vector<std::vector<uint8_t>> out;
  pollfd p{.fd = s, .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, wait_ms) != 1) return out;
  for (;;) {
    std::vector<uint8_t> f(65536);
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata))];
    iovec iov{.iov_base = f.data(), .iov_len = f.size()};
    msghdr m{};
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = control;
    m.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(s, &m, MSG_DONTWAIT);
    if (n < 0) return out;
    f.resize(static_cast<size_t>(n));
    for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
      tpacket_auxdata aux;
      std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
      if ((aux.tp_status & TP_STATUS_VLAN_VALID) != 0 && f.size() >= 12) {
        const uint8_t tag[4] = {0x81, 0x00, static_cast<uint8_t>(aux.tp_vlan_tci >> 8),
                                static_cast<uint8_t>(aux.tp_vlan_tci)};
        f.insert(f.begin() + 12, tag, tag + 4);
      }
    }
    if (f.size() >= 18 && f[12] == 0x81 && f[13] == 0x00 && f[16] == 0x08 && f[17] == 0x00) {
      out.push_back(std::move(f));
      continue;
    }
    if (f.size() >= 14 && f[12] == 0x08 && f[13] == 0x00) out.push_back(std::move(f));
    // IPv6, but not the namespaces' own chatter (MLD behind hop-by-hop
    // options, neighbour and router discovery).
    const bool v6 = f.size() >= 62 && f[12] == 0x86 && f[13] == 0xdd;
    if (v6 && f[20] != 0 && !(f[20] == 58 && f[54] >= 130 && f[54] <= 143)) {
      out.push_back(std::move(f));
    }
  }
}

struct Vm {
  uint32_t port = 0;
  MacAddress mac{};
  const char* ip = "";
  const char* ip6 = "";
  int ifindex = 0;  // its host side's
  int vm_socket = -1, host_socket = -1;
};

class FastPathDifferential : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    // (No IPv6 chatter from the host sides.)
    ASSERT_TRUE(
        sh("sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1"));
    vms_ = {{kVm1, mac(0, 1), "10.0.0.5", "fd00:1::5"},
            {kVm5, mac(0, 5), "10.0.0.8", "fd00:1::9"},
            {kVm3, mac(0, 3), "10.0.1.5", "fd00:2::5"}};
    for (auto& vm : vms_) {
      std::string ns = kTag + std::to_string(vm.port), host = kTag + "h" + std::to_string(vm.port);
      ASSERT_TRUE(addNamespace(ns));
      ASSERT_TRUE(sh("ip link add " + host + " type veth peer name eth0 netns " + ns));
      ASSERT_TRUE(sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"));
      ASSERT_TRUE(sh("ip -n " + ns + " link set eth0 up"));
      ASSERT_TRUE(sh("ip link set " + host + " up"));
      vm.ifindex = static_cast<int>(::if_nametoindex(host.c_str()));
      vm.vm_socket = rawSocket(ns, "eth0");
      vm.host_socket = rawSocket("", host);
      int filter = fp_->socketFilter();
      ASSERT_EQ(::setsockopt(vm.host_socket, SOL_SOCKET, SO_ATTACH_BPF, &filter, sizeof(filter)),
                0);
      ASSERT_TRUE(fp_->attach(vm.ifindex));
    }
    // The outside: h1's uplink to physnet1, its far end a namespace too.
    {
      const std::string ns = kTag + "out", host = kTag + "up";
      ASSERT_TRUE(addNamespace(ns));
      ASSERT_TRUE(sh("ip link add " + host + " type veth peer name eth0 netns " + ns));
      ASSERT_TRUE(sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1"));
      ASSERT_TRUE(sh("ip -n " + ns + " link set eth0 up"));
      ASSERT_TRUE(sh("ip link set " + host + " up"));
      outside_.port = kOutside;
      outside_.mac = kOutsideMac;
      outside_.ifindex = static_cast<int>(::if_nametoindex(host.c_str()));
      outside_.vm_socket = rawSocket(ns, "eth0");
      outside_.host_socket = rawSocket("", host);
    }
    datapath::pipeline::Config config;
    config.host.host = kH1;
    config.host.uplinks = {"physnet1"};
    config.offer_flows = true;
    dp_ = std::make_unique<Datapath>(clock_, config);
    // IPv6 beside IPv4 (vm5 an address too, vm3's web group TCP 80).
    auto parts = datapath::testing::TopologyParts::of(**scenario().build(1));
    datapath::testing::addIpv6(parts);
    parts.ports.at(kVm5).ips.push_back(datapath::testing::ip("fd00:1::9"));
    parts.groups.at(kWeb).rules.push_back({.id = "v6-web",
                                           .direction = datapath::topology::Direction::Ingress,
                                           .family = 6,
                                           .protocol = 6,
                                           .port_min = 80,
                                           .port_max = 80});
    auto built = parts.builder().build(1);
    ASSERT_TRUE(built);
    dp_->setTopology(*built);
  }
  void TearDown() override {
    for (int fd : {outside_.vm_socket, outside_.host_socket}) {
      if (fd >= 0) ::close(fd);
    }
    for (auto& vm : vms_) {
      for (int fd : {vm.vm_socket, vm.host_socket}) {
        if (fd >= 0) ::close(fd);
      }
    }
    KernelTest::TearDown();
  }

  Vm& vm(uint32_t port) {
    if (port == kOutside) return outside_;
    for (auto& v : vms_) {
      if (v.port == port) return v;
    }
    throw std::out_of_range("vm");
  }

  // Through the datapath: the frames that leave for a port or the uplink
  // (two or more: fragments); its offers are installed in the kernel.
  std::vector<std::vector<uint8_t>> userspace(uint32_t from, const std::vector<uint8_t>& frame) {
    Outputs out;
    dp_->process(from == kOutside ? Ingress::fromUplink(0) : Ingress::fromPort(from), frame, out);
    std::vector<std::vector<uint8_t>> sent;
    for (const auto& item : out.items()) {
      if (item.kind == Outputs::Kind::Port || item.kind == Outputs::Kind::Uplink) {
        auto b = out.bytes(item);
        sent.emplace_back(b.begin(), b.end());
      }
    }
    if (keep_offers_) return sent;  // the test's KernelFlows takes them
    for (const auto& o : dp_->offers()) {
      EXPECT_TRUE(
          fp_->install(agent::kernelKey(o, vm(o.from_port).ifindex),
                       agent::kernelAction(o, vm(o.to_port).ifindex, CANOPY_FP_REDIRECT_PEER)));
      ++installed_;
    }
    dp_->offers().clear();
    return sent;
  }

  // Every VM's interface attached as the agent's worker does (its
  // program, and the filter on an agent's socket of its own).
  void attachAll(agent::KernelFlows& flows, std::vector<std::unique_ptr<agent::PortIo>>& ios,
                 std::map<uint32_t, int>& ifindex) {
    auto factory = agent::socketIo({});
    for (auto& v : vms_) {
      const std::string host = kTag + "h" + std::to_string(v.port);
      auto io = factory->openInterface(host, 0, 1);
      ASSERT_TRUE(io) << io.error().message();
      ifindex[v.port] = flows.attach(**io, host);
      ASSERT_EQ(ifindex[v.port], v.ifindex) << host;
      ios.push_back(std::move(*io));
    }
  }

  // The same with the uplink too (its program, and the filter on its
  // socket); the offers are then the test's KernelFlows'.
  void loadBalancedFlows(int family);
  void addVip(int family);
  static constexpr uint32_t kVip = 50;

  void attachWithUplink(agent::KernelFlows& flows) {
    int filter = fp_->socketFilter();
    ASSERT_EQ(
        ::setsockopt(outside_.host_socket, SOL_SOCKET, SO_ATTACH_BPF, &filter, sizeof(filter)), 0);
    ASSERT_TRUE(fp_->attach(outside_.ifindex));
    attachAll(flows, ios_, ifindex_);
    keep_offers_ = true;
  }
  // Through the datapath, its offers installed by `flows`.
  std::vector<std::vector<uint8_t>> installing(agent::KernelFlows& flows, uint32_t from,
                                               const std::vector<uint8_t>& frame) {
    auto sent = userspace(from, frame);
    flows.install(dp_->offers(), [&](uint32_t port) { return ifindex_.at(port); });
    dp_->offers().clear();
    return sent;
  }

  // Through the kernel: sent from the VM's end; what the other VMs got,
  // and whether the agent's socket on the sender's interface saw it.
  struct Kernel {
    uint32_t to = 0;
    std::vector<uint8_t> bytes;
    bool agent_saw = false;
  };
  Kernel kernel(uint32_t from, const std::vector<uint8_t>& frame, int wait_ms) {
    Kernel k;
    EXPECT_EQ(::send(vm(from).vm_socket, frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()));
    std::vector<pollfd> polled;
    std::vector<Vm*> all;
    for (auto& v : vms_) all.push_back(&v);
    all.push_back(&outside_);
    for (Vm* v : all) {
      if (v->port != from) polled.push_back({.fd = v->vm_socket, .events = POLLIN, .revents = 0});
    }
    ::poll(polled.data(), polled.size(), wait_ms);
    for (Vm* p : all) {
      Vm& v = *p;
      if (v.port == from) continue;
      for (auto& f : frames(v.vm_socket, 0)) {
        EXPECT_EQ(k.to, 0u) << "delivered twice";
        k.to = v.port;
        k.bytes = std::move(f);
      }
    }
    k.agent_saw = !frames(vm(from).host_socket, 20).empty();
    return k;
  }

  static constexpr uint32_t kOutside = 0xffff;  // not a port: the uplink's far end
  void translatedFlows(uint16_t vlan);
  FakeClock clock_;
  std::unique_ptr<Datapath> dp_;
  std::vector<Vm> vms_;
  Vm outside_{};
  size_t installed_ = 0;
  bool keep_offers_ = false;
  // attachWithUplink()'s.
  std::vector<std::unique_ptr<agent::PortIo>> ios_;
  std::map<uint32_t, int> ifindex_;
};

TEST_F(FastPathDifferential, RandomFlowsLeaveTheKernelAsTheyLeaveTheDatapath) {
  std::mt19937_64 rng = seeded();
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  size_t compared = 0, left = 0;
  for (int round = 0; round < 40; ++round) {
    // vm1 <-> vm5 switched (any protocol and port), vm1 <-> vm3 routed (TCP 80).
    const bool routed = pick(2) == 0;
    Vm& a = vm(pick(2) == 0 ? kVm1 : (routed ? kVm1 : kVm5));
    Vm& b = routed ? vm(kVm3) : vm(a.port == kVm1 ? kVm5 : kVm1);
    const bool tcp = routed || pick(2) == 0;
    const bool v6 = pick(3) == 0;
    // (IPv4 packets' headers, or IPv6 ones: hop limit as TTL.)
    auto ip = [&](PacketBuilder& pb, const Vm& from, const Vm& to, uint8_t ttl) -> PacketBuilder& {
      if (v6) {
        return pb.ipv6(datapath::packet::Ipv6Address::of(datapath::testing::ip(from.ip6)),
                       datapath::packet::Ipv6Address::of(datapath::testing::ip(to.ip6)), ttl);
      }
      return pb.ipv4(v4(from.ip), v4(to.ip), ttl);
    };
    const auto sport = static_cast<uint16_t>(1024 + pick(60000));
    const auto dport = routed ? uint16_t{80} : static_cast<uint16_t>(1 + pick(65000));
    const MacAddress a_next = routed ? kRouterNet1Mac : b.mac;
    const MacAddress b_next = routed ? kRouterNet2Mac : a.mac;
    uint32_t seq_a = static_cast<uint32_t>(rng()), seq_b = static_cast<uint32_t>(rng());
    auto fromA = [&](uint8_t flags, size_t payload, uint8_t ttl) {
      PacketBuilder pb;
      ip(pb.eth(a.mac, a_next), a, b, ttl);
      if (tcp) {
        pb.tcp(sport, dport, flags, seq_a, seq_b);
      } else {
        pb.udp(sport, dport);
      }
      std::string data(payload, static_cast<char>('a' + pick(26)));
      seq_a += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
      return pb.payload(data).build();
    };
    auto fromB = [&](uint8_t flags) {
      PacketBuilder pb;
      ip(pb.eth(b.mac, b_next), b, a, 64);
      if (tcp) {
        pb.tcp(dport, sport, flags, seq_b, seq_a);
      } else {
        pb.udp(dport, sport);
      }
      seq_b += (flags & TcpHeader::kSyn) ? 1 : 0;
      return pb.payload("r").build();
    };
    // Opened through the datapath (a UDP flow by its first packet, TCP by
    // its handshake).
    if (tcp) {
      ASSERT_FALSE(userspace(a.port, fromA(TcpHeader::kSyn, 0, 64)).empty()) << round;
      ASSERT_FALSE(userspace(b.port, fromB(TcpHeader::kSyn | TcpHeader::kAck)).empty()) << round;
    } else {
      ASSERT_FALSE(userspace(a.port, fromA(0, 10, 64)).empty()) << round;
      ASSERT_FALSE(userspace(b.port, fromB(0)).empty()) << round;
    }
    for (int i = 0; i < 3; ++i) {
      const auto ttl = static_cast<uint8_t>(2 + pick(254));
      auto frame = fromA(TcpHeader::kAck, static_cast<size_t>(pick(1400)), ttl);
      auto expected = userspace(a.port, frame);
      ASSERT_FALSE(expected.empty()) << "round " << round;
      if (expected.size() > 1 || (v6 && routed && frame.size() > 14 + 1400)) {
        // Larger than net2's MTU (1,400), cut into fragments by the
        // datapath (IPv6: answered with "packet too big"): the agent's to
        // do.
        auto got = kernel(a.port, frame, 30);
        EXPECT_EQ(got.to, 0u) << "round " << round << ": the kernel took a packet over the MTU";
        EXPECT_TRUE(got.agent_saw);
        ++left;
        continue;
      }
      auto got = kernel(a.port, frame, 300);
      ASSERT_EQ(got.to, b.port) << "round " << round << " packet " << i << ": "
                                << datapath::packet::describeFrame(frame) << ", agent saw it "
                                << got.agent_saw << ", slow " << fp_->counters().slow << ", misses "
                                << fp_->counters().misses << ", hits " << fp_->counters().hits
                                << ", redirect failed " << fp_->counters().redirect_failed
                                << ", malformed " << fp_->counters().malformed;
      EXPECT_EQ(got.bytes, expected[0]) << "round " << round << " packet " << i;
      EXPECT_FALSE(got.agent_saw) << "round " << round;
      ++compared;
    }
    // A FIN: carried, told to the agent (its event), as the datapath
    // forwards it.
    if (tcp) {
      auto fin = fromA(TcpHeader::kFin | TcpHeader::kAck, 0, 64);
      auto expected = userspace(a.port, fin);
      ASSERT_EQ(expected.size(), 1u);
      auto got = kernel(a.port, fin, 300);
      EXPECT_EQ(got.bytes, expected[0]) << "round " << round << ": a FIN";
      EXPECT_FALSE(got.agent_saw) << "round " << round << ": a FIN";
      size_t told = 0;
      fp_->takeEvents([&](const Event& e) {
        told += (e.tcp_flags & 0x01) != 0 && e.key.ifindex == static_cast<uint32_t>(a.ifindex);
      });
      EXPECT_EQ(told, 1u) << "round " << round << ": the agent was not told of the FIN";
      ++compared;
    }
    // What stays the agent's, though its flow is installed.
    std::vector<std::vector<uint8_t>> agents;
    if (tcp) agents.push_back(fromA(TcpHeader::kRst | TcpHeader::kAck, 0, 64));
    if (routed) agents.push_back(fromA(TcpHeader::kAck, 10, 1));
    if (!v6) {
      agents.push_back(PacketBuilder()
                           .eth(a.mac, a_next)
                           .ipv4(v4(a.ip), v4(b.ip))
                           .fragment(0, true)
                           .udp(sport, dport)
                           .payload("frag")
                           .build());
    }
    for (const auto& frame : agents) {
      auto got = kernel(a.port, frame, 30);
      EXPECT_EQ(got.to, 0u) << "round " << round << ": the kernel took what is the agent's";
      EXPECT_TRUE(got.agent_saw) << "round " << round;
      ++left;
    }
  }
  EXPECT_GT(installed_, 40u);
  std::printf("%zu packets compared, %zu left to the agent, %zu flows installed\n", compared, left,
              installed_);
}

// Malformed frames of installed flows (lengths that do not fit, header
// lengths out of range, truncation): the kernel forwards one only as the
// datapath would (byte for byte), else leaves it to the agent.
TEST_F(FastPathDifferential, MalformedFramesOfInstalledFlowsAreNeverForwardedUnchecked) {
  std::mt19937_64 rng = seeded();
  auto pick = [&](uint64_t n) { return static_cast<size_t>(rng() % n); };
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto udp = [&](bool forward, size_t payload) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .udp(forward ? 7000 : 7001, forward ? 7001 : 7000);
    return pb.payload(std::string(payload, 'p')).build();
  };
  auto tcp = [&](bool forward, uint8_t flags, size_t payload) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? 7100 : 7101, forward ? 7101 : 7100, flags, 1, 1);
    return pb.payload(std::string(payload, 't')).build();
  };
  // Both flows opened and installed (the kernel carries a good packet).
  ASSERT_FALSE(userspace(a.port, udp(true, 10)).empty());
  ASSERT_FALSE(userspace(b.port, udp(false, 10)).empty());
  ASSERT_FALSE(userspace(a.port, tcp(true, TcpHeader::kSyn, 0)).empty());
  ASSERT_FALSE(userspace(b.port, tcp(false, TcpHeader::kSyn | TcpHeader::kAck, 0)).empty());
  ASSERT_FALSE(userspace(a.port, udp(true, 10)).empty());
  ASSERT_FALSE(userspace(a.port, tcp(true, TcpHeader::kAck, 10)).empty());
  ASSERT_EQ(kernel(a.port, udp(true, 10), 300).to, b.port);
  ASSERT_EQ(kernel(a.port, tcp(true, TcpHeader::kAck, 10), 300).to, b.port);
  size_t forwarded = 0, left = 0;
  for (int i = 0; i < 120; ++i) {
    const bool is_tcp = pick(2) == 0;
    auto frame = is_tcp ? tcp(true, TcpHeader::kAck, pick(200)) : udp(true, pick(200));
    const size_t ip = 14, l4 = 34;
    auto put16 = [&](size_t at, size_t v) {
      frame[at] = static_cast<uint8_t>(v >> 8);
      frame[at + 1] = static_cast<uint8_t>(v);
    };
    switch (pick(5)) {
      case 0:  // the IP total length
        put16(ip + 2, pick(2 * (frame.size() - ip) + 1));
        break;
      case 1:  // the IP header length
        frame[ip] = static_cast<uint8_t>(0x40 | pick(16));
        break;
      case 2:  // TCP's data offset, or UDP's length
        if (is_tcp) {
          frame[l4 + 12] = static_cast<uint8_t>(pick(16) << 4);
        } else {
          put16(l4 + 4, pick(2 * (frame.size() - l4) + 1));
        }
        break;
      case 3:  // cut short
        frame.resize(ip + pick(frame.size() - ip));
        break;
      default:  // a byte of the IP or L4 header
        frame[ip + pick(l4 + 8 - ip)] = static_cast<uint8_t>(rng());
        break;
    }
    auto expected = userspace(a.port, frame);
    auto got = kernel(a.port, frame, 30);
    if (got.to == 0) {
      ++left;
      continue;
    }
    ++forwarded;
    ASSERT_EQ(expected.size(), 1u)
        << "case " << i << ": the kernel forwarded what the datapath "
        << "does not: " << datapath::packet::describeFrame(frame) << " (" << frame.size()
        << " bytes, IP total length " << (frame.size() >= 18 ? (frame[16] << 8 | frame[17]) : -1)
        << "; received " << got.bytes.size() << " bytes on port " << got.to << ": "
        << datapath::packet::describeFrame(got.bytes) << ")";
    EXPECT_EQ(got.bytes, expected[0]) << "case " << i;
    EXPECT_EQ(got.to, b.port) << "case " << i;
  }
  std::printf("%zu malformed frames forwarded as the datapath does, %zu left to the agent\n",
              forwarded, left);
  EXPECT_GT(left, 40u);
}

// A handshake's flows, both ways, are installed with its SYN-ACK (before
// it goes on): the kernel carries its last ACK and the answer's data, as
// the datapath would; before the SYN-ACK, the opener's packets of the
// connection are the agent's.
TEST_F(FastPathDifferential, AHandshakeIsInstalledBothWaysWithItsSynAck) {
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto tcp = [&](bool forward, uint8_t flags, uint32_t seq, uint32_t ack, const char* data) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? 41000 : 22, forward ? 22 : 41000, flags, seq, ack);
    return pb.payload(data).build();
  };
  ASSERT_FALSE(userspace(a.port, tcp(true, TcpHeader::kSyn, 100, 0, "")).empty());
  EXPECT_EQ(installed_, 0u) << "a SYN alone installs nothing";
  auto early = kernel(a.port, tcp(true, TcpHeader::kAck, 101, 501, ""), 30);
  EXPECT_EQ(early.to, 0u) << "the kernel carried the opener's packet before the SYN-ACK";
  EXPECT_TRUE(early.agent_saw);
  ASSERT_FALSE(
      userspace(b.port, tcp(false, TcpHeader::kSyn | TcpHeader::kAck, 500, 101, "")).empty());
  EXPECT_EQ(installed_, 2u) << "the SYN-ACK installs both ways";
  for (auto [forward, data] : {std::pair{true, ""}, {false, "SSH-2.0-canopy\r\n"}}) {
    auto frame = forward ? tcp(true, TcpHeader::kAck, 101, 501, data)
                         : tcp(false, TcpHeader::kAck | TcpHeader::kPsh, 501, 101, data);
    auto expected = userspace(forward ? a.port : b.port, frame);
    ASSERT_EQ(expected.size(), 1u);
    auto got = kernel(forward ? a.port : b.port, frame, 300);
    EXPECT_EQ(got.to, forward ? b.port : a.port);
    EXPECT_EQ(got.bytes, expected[0]);
    EXPECT_FALSE(got.agent_saw) << (forward ? "the last ACK" : "the answer's data");
  }
}

// UDP's the same way: its first datagram installs nothing; the first reply
// installs both ways, and the next datagrams run in the kernel.
TEST_F(FastPathDifferential, AUdpFlowIsInstalledBothWaysWithItsFirstReply) {
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto udp = [&](bool forward, const char* data) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .udp(forward ? 5353 : 53, forward ? 53 : 5353);
    return pb.payload(data).build();
  };
  ASSERT_FALSE(userspace(a.port, udp(true, "query")).empty());
  EXPECT_EQ(installed_, 0u) << "a first datagram alone installs nothing";
  ASSERT_FALSE(userspace(b.port, udp(false, "answer")).empty());
  EXPECT_EQ(installed_, 2u) << "the first reply installs both ways";
  for (bool forward : {true, false}) {
    auto frame = udp(forward, forward ? "again" : "again, answered");
    auto expected = userspace(forward ? a.port : b.port, frame);
    ASSERT_EQ(expected.size(), 1u);
    auto got = kernel(forward ? a.port : b.port, frame, 300);
    EXPECT_EQ(got.to, forward ? b.port : a.port);
    EXPECT_EQ(got.bytes, expected[0]);
    EXPECT_FALSE(got.agent_saw);
  }
}

// A later connection between the same two ends to the same port is set up
// in the kernel from the first one's handshake (a template): its SYN and
// SYN-ACK and what follows never reach the agent, and leave the kernel as
// they leave a datapath that saw them all. Its FINs too: the kernel tells
// the agent, which adopts the connection (conntrack's) and takes its flows
// back once it is closed. A RST reaches the agent, which adopts its
// connection first: the RST goes on. A change to
// the groups that allowed it takes the template and its connections back
// (the connections into conntrack first, as the agent would have them).
TEST_F(FastPathDifferential, ALaterConnectionIsSetUpInTheKernelFromAnEarlierHandshake) {
  agent::Templates templates;
  agent::KernelFlows flows(*fp_, {}, {}, &templates, 0);
  flows.useConntrack(&dp_->connections(), &clock_);
  std::vector<std::unique_ptr<agent::PortIo>> ios;
  std::map<uint32_t, int> ifindex;
  attachAll(flows, ios, ifindex);
  keep_offers_ = true;
  auto install = [&] {
    flows.install(dp_->offers(), [&](uint32_t port) { return ifindex.at(port); });
    dp_->offers().clear();
  };
  // The datapath that sees every packet (what the kernel must do).
  datapath::pipeline::Config config;
  config.host.host = kH1;
  config.host.uplinks = {"physnet1"};
  Datapath reference(clock_, config);
  auto same = datapath::testing::TopologyParts::of(*dp_->topology()).builder().build(1);
  ASSERT_TRUE(same);
  reference.setTopology(*same);
  auto through = [&](Datapath& d, uint32_t from, const std::vector<uint8_t>& frame) {
    Outputs out;
    d.process(Ingress::fromPort(from), frame, out);
    std::vector<std::vector<uint8_t>> sent;
    for (const auto& item : out.items()) {
      if (item.kind == Outputs::Kind::Port) {
        auto b = out.bytes(item);
        sent.emplace_back(b.begin(), b.end());
      }
    }
    return sent;
  };
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto tcp = [&](uint16_t opener, bool forward, uint8_t flags, uint32_t seq, uint32_t ack,
                 const char* data) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? opener : 22, forward ? 22 : opener, flags, seq, ack);
    return pb.payload(data).build();
  };
  uint16_t zone = 0;  // vm1's
  auto known = [&](uint16_t opener) {
    datapath::conntrack::ConnKey k = datapath::conntrack::connKey(
        [&] {
          datapath::packet::ParsedPacket p;
          auto f = tcp(opener, true, TcpHeader::kAck, 0, 0, "");
          EXPECT_EQ(datapath::packet::parse(f, p), datapath::DropReason::None);
          return p;
        }(),
        zone);
    return dp_->connections().find(k);
  };
  // The first connection, through the agent: its handshake leaves a
  // template.
  ASSERT_FALSE(userspace(a.port, tcp(41000, true, TcpHeader::kSyn, 100, 0, "")).empty());
  ASSERT_FALSE(userspace(b.port, tcp(41000, false, TcpHeader::kSyn | TcpHeader::kAck, 500, 101, ""))
                   .empty());
  ASSERT_FALSE(dp_->offers().empty());
  zone = dp_->offers().front().from_conn.zone;
  install();
  ASSERT_EQ(flows.size(), 2u);
  ASSERT_EQ(flows.templates(), 1u);
  const uint64_t made_before = fp_->counters().made;
  // The next ones, in the kernel from their SYN on.
  for (uint16_t opener : {uint16_t{41001}, uint16_t{41002}, uint16_t{41005}}) {
    const std::vector<std::tuple<bool, uint8_t, uint32_t, uint32_t, const char*>> packets = {
        {true, TcpHeader::kSyn, 1000, 0, ""},
        {false, TcpHeader::kSyn | TcpHeader::kAck, 5000, 1001, ""},
        {true, TcpHeader::kAck, 1001, 5001, ""},
        {true, TcpHeader::kAck | TcpHeader::kPsh, 1001, 5001, "hello"},
        {false, TcpHeader::kAck | TcpHeader::kPsh, 5001, 1006, "SSH-2.0-canopy\r\n"}};
    for (const auto& [forward, flags, seq, ack, data] : packets) {
      auto frame = tcp(opener, forward, flags, seq, ack, data);
      auto expected = through(reference, forward ? a.port : b.port, frame);
      ASSERT_EQ(expected.size(), 1u);
      auto got = kernel(forward ? a.port : b.port, frame, 300);
      EXPECT_EQ(got.to, forward ? b.port : a.port) << opener << " flags " << int{flags};
      EXPECT_EQ(got.bytes, expected[0]) << opener << " flags " << int{flags};
      EXPECT_FALSE(got.agent_saw) << opener << " flags " << int{flags};
    }
    EXPECT_FALSE(known(opener)) << "conntrack knew a connection the agent never saw";
  }
  EXPECT_EQ(fp_->counters().made - made_before, 3u);
  // 41001's FIN: carried by the kernel, which tells the agent; the agent
  // adopts the connection (conntrack's, its flows in its bookkeeping) and
  // follows its close.
  auto fin = tcp(41001, false, TcpHeader::kFin | TcpHeader::kAck, 5016, 1006, "");
  auto expected = through(reference, b.port, fin);
  ASSERT_EQ(expected.size(), 1u);
  auto got = kernel(b.port, fin, 300);
  EXPECT_EQ(got.to, a.port);
  EXPECT_EQ(got.bytes, expected[0]);
  EXPECT_FALSE(got.agent_saw);
  flows.takeEvents();
  auto adopted = known(41001);
  ASSERT_TRUE(adopted);
  EXPECT_EQ(adopted->tcp, datapath::conntrack::TcpState::FinWait);
  EXPECT_EQ(flows.size(), 4u) << "its two flows are the agent's bookkeeping's";
  // The other side's: closed, its flows leave the kernel.
  auto other = tcp(41001, true, TcpHeader::kFin | TcpHeader::kAck, 1006, 5017, "");
  expected = through(reference, a.port, other);
  ASSERT_EQ(expected.size(), 1u);
  got = kernel(a.port, other, 300);
  EXPECT_EQ(got.to, b.port);
  EXPECT_EQ(got.bytes, expected[0]);
  flows.takeEvents();
  ASSERT_TRUE(known(41001));
  EXPECT_EQ(known(41001)->tcp, datapath::conntrack::TcpState::Closing);
  EXPECT_EQ(flows.size(), 2u) << "a closed connection's flows stayed";
  EXPECT_FALSE(fp_->find(agent::kernelKey(
      [&] {
        datapath::pipeline::FlowOffer o;
        datapath::packet::ParsedPacket p;
        EXPECT_EQ(datapath::packet::parse(other, p), datapath::DropReason::None);
        o.key = p.key;
        return o;
      }(),
      ifindex.at(a.port))));
  // 41005's RST reaches the agent, which adopts the connection before its
  // datapath sees the RST: conntrack has it, and the RST goes on (one of a
  // connection conntrack does not know would be dropped).
  auto rst = tcp(41005, false, TcpHeader::kRst | TcpHeader::kAck, 5016, 1006, "");
  got = kernel(b.port, rst, 30);
  EXPECT_EQ(got.to, 0u);
  EXPECT_TRUE(got.agent_saw);
  EXPECT_FALSE(known(41005));
  flows.adoptFor(rst, ifindex.at(b.port));
  ASSERT_TRUE(known(41005));
  EXPECT_EQ(known(41005)->tcp, datapath::conntrack::TcpState::Established);
  EXPECT_EQ(userspace(b.port, rst).size(), 1u) << "the adopted connection's RST goes on";
  // The default group's ingress rule goes: the template goes with it, and
  // so do its connections' flows (41002: into conntrack first); a new SYN
  // is the agent's, which refuses it.
  auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
  auto& rules = parts.groups.at(kDefault).rules;
  std::erase_if(rules, [](const auto& r) { return r.id == "rule-default-ingress"; });
  auto changed = parts.builder().build(2);
  ASSERT_TRUE(changed);
  dp_->setTopology(*changed);
  flows.retract(dp_->takeInvalidations());
  EXPECT_EQ(flows.templates(), 0u);
  auto imported = known(41002);
  ASSERT_TRUE(imported) << "a connection made in the kernel left without conntrack";
  EXPECT_EQ(imported->tcp, datapath::conntrack::TcpState::Established);
  got = kernel(a.port, tcp(41002, true, TcpHeader::kAck, 1006, 5016, ""), 30);
  EXPECT_EQ(got.to, 0u);
  EXPECT_TRUE(got.agent_saw) << "a connection of the template stayed in the kernel";
  got = kernel(a.port, tcp(41003, true, TcpHeader::kSyn, 1, 0, ""), 30);
  EXPECT_EQ(got.to, 0u);
  EXPECT_TRUE(got.agent_saw) << "the kernel made a connection the groups no longer allow";
  EXPECT_TRUE(userspace(a.port, tcp(41003, true, TcpHeader::kSyn, 1, 0, "")).empty());
}

// A template outlives its connections (they closed, their flows went); a
// change to the decisions it was made of takes it back all the same, so
// that the kernel makes no connection to a port that went down.
TEST_F(FastPathDifferential, ATemplateGoesWithItsDecisionsAfterItsConnectionsClosed) {
  agent::Templates templates;
  agent::KernelFlows flows(*fp_, {}, {}, &templates, 0);
  flows.useConntrack(&dp_->connections(), &clock_);
  std::vector<std::unique_ptr<agent::PortIo>> ios;
  std::map<uint32_t, int> ifindex;
  attachAll(flows, ios, ifindex);
  keep_offers_ = true;
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto tcp = [&](uint16_t opener, bool forward, uint8_t flags) {
    return PacketBuilder()
        .eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? opener : 22, forward ? 22 : opener, flags, 1, 1)
        .build();
  };
  ASSERT_FALSE(userspace(a.port, tcp(42000, true, TcpHeader::kSyn)).empty());
  ASSERT_FALSE(userspace(b.port, tcp(42000, false, TcpHeader::kSyn | TcpHeader::kAck)).empty());
  ASSERT_FALSE(dp_->offers().empty());
  const auto connection = dp_->offers().front().from_conn;
  flows.install(dp_->offers(), [&](uint32_t port) { return ifindex.at(port); });
  dp_->offers().clear();
  ASSERT_EQ(flows.templates(), 1u);
  // Its connection's flows go (as when both sides sent FIN); the template
  // stays.
  flows.retract(std::span(&connection, 1));
  ASSERT_EQ(flows.size(), 0u);
  ASSERT_EQ(flows.templates(), 1u);
  dp_->takeInvalidations();  // (the first topology's: everything)
  auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
  parts.ports.at(kVm5).admin_up = false;
  auto changed = parts.builder().build(2);
  ASSERT_TRUE(changed);
  dp_->setTopology(*changed);
  auto invalidated = dp_->takeInvalidations();
  ASSERT_FALSE(invalidated.all) << "(the case: some tags, not all)";
  flows.retract(invalidated);
  EXPECT_EQ(flows.templates(), 0u) << "a template outlived the port it was made for";
  auto got = kernel(a.port, tcp(42001, true, TcpHeader::kSyn), 30);
  EXPECT_EQ(got.to, 0u) << "the kernel made a connection to a port that is down";
  EXPECT_TRUE(got.agent_saw);
}

// A port's connections made in the kernel that wait for their answer are
// bounded (--port-kernel-half-open): beyond, its SYNs go to the agent. An
// answer (the SYN-ACK) frees its place.
TEST_F(FastPathDifferential, APortsHalfOpenConnectionsInTheKernelAreBounded) {
  agent::Templates templates;
  agent::KernelFlows flows(*fp_, {}, {}, &templates, 0);
  flows.useConntrack(&dp_->connections(), &clock_);
  std::vector<std::unique_ptr<agent::PortIo>> ios;
  std::map<uint32_t, int> ifindex;
  attachAll(flows, ios, ifindex);
  keep_offers_ = true;
  ASSERT_TRUE(fp_->configure({.geneve_port = 0,
                              .vxlan_port = 0,
                              .underlay_ifindex = 0,
                              .alive_until_ns = 0,
                              .half_open = 2,
                              .reserved = 0}));
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto tcp = [&](uint16_t opener, bool forward, uint8_t flags) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? opener : 22, forward ? 22 : opener, flags, 1, 1);
    return pb.payload("").build();
  };
  ASSERT_FALSE(userspace(a.port, tcp(42000, true, TcpHeader::kSyn)).empty());
  ASSERT_FALSE(userspace(b.port, tcp(42000, false, TcpHeader::kSyn | TcpHeader::kAck)).empty());
  flows.install(dp_->offers(), [&](uint32_t port) { return ifindex.at(port); });
  dp_->offers().clear();
  ASSERT_EQ(flows.templates(), 1u);
  const auto before = fp_->counters();
  for (uint16_t opener : {uint16_t{42001}, uint16_t{42002}}) {
    auto got = kernel(a.port, tcp(opener, true, TcpHeader::kSyn), 300);
    EXPECT_EQ(got.to, b.port);
    EXPECT_FALSE(got.agent_saw);
  }
  auto over = kernel(a.port, tcp(42003, true, TcpHeader::kSyn), 30);
  EXPECT_EQ(over.to, 0u) << "a third half-open connection made in the kernel";
  EXPECT_TRUE(over.agent_saw);
  auto answer = kernel(b.port, tcp(42001, false, TcpHeader::kSyn | TcpHeader::kAck), 300);
  EXPECT_EQ(answer.to, a.port);
  auto again = kernel(a.port, tcp(42004, true, TcpHeader::kSyn), 300);
  EXPECT_EQ(again.to, b.port) << "an answered connection did not free its place";
  const auto after = fp_->counters();
  EXPECT_EQ(after.made - before.made, 3u);
  EXPECT_EQ(after.made_limited - before.made_limited, 1u);
}

// With several workers, the first takes the kernel's events: a FIN of a
// flow another worker installed is handed to that worker, whose conntrack
// follows the close and which takes the connection's flows back.
TEST_F(FastPathDifferential, AFinOfAnotherWorkersFlowIsHandedToIt) {
  agent::Templates shared;
  shared.setWorkers(2);
  agent::KernelFlows first(*fp_, {}, {}, &shared, 0, /*setups=*/false);
  agent::KernelFlows second(*fp_, {}, {}, &shared, 1, /*setups=*/false);
  for (auto* f : {&first, &second}) f->useConntrack(&dp_->connections(), &clock_);
  std::vector<std::unique_ptr<agent::PortIo>> ios;
  std::map<uint32_t, int> ifindex;
  attachAll(second, ios, ifindex);
  keep_offers_ = true;
  Vm &a = vm(kVm1), &b = vm(kVm5);
  auto tcp = [&](bool forward, uint8_t flags, uint32_t seq, uint32_t ack) {
    PacketBuilder pb;
    pb.eth(forward ? a.mac : b.mac, forward ? b.mac : a.mac)
        .ipv4(v4(forward ? a.ip : b.ip), v4(forward ? b.ip : a.ip))
        .tcp(forward ? 43000 : 22, forward ? 22 : 43000, flags, seq, ack);
    return pb.payload("").build();
  };
  ASSERT_FALSE(userspace(a.port, tcp(true, TcpHeader::kSyn, 100, 0)).empty());
  ASSERT_FALSE(userspace(b.port, tcp(false, TcpHeader::kSyn | TcpHeader::kAck, 500, 101)).empty());
  second.install(dp_->offers(), [&](uint32_t port) { return ifindex.at(port); });
  dp_->offers().clear();
  ASSERT_EQ(second.size(), 2u);
  ASSERT_EQ(second.templates(), 0u) << "a template without setups";
  ASSERT_EQ(first.eventsFd() >= 0, true);
  int closed = 0;
  for (auto [forward, seq, ack] : {std::tuple{false, 501u, 101u}, {true, 101u, 502u}}) {
    auto got = kernel(forward ? a.port : b.port,
                      tcp(forward, TcpHeader::kFin | TcpHeader::kAck, seq, ack), 300);
    EXPECT_EQ(got.to, forward ? b.port : a.port);
    first.takeEvents();
    second.takeHanded();
    ++closed;
    EXPECT_EQ(second.size(), closed == 1 ? 2u : 0u) << "after FIN " << closed;
  }
  EXPECT_EQ(fp_->flows(), 0u) << "a closed connection's flows stayed in the kernel";
}

// Through h1's uplink, translated: vm3's floating IP (TCP to port 80 and
// ICMP echo, from random outside addresses) and a port forwarding to vm1's
// TCP 22 (its router's gateway moved to h1), both ways, byte for byte as
// the datapath; the agent's KernelFlows installs them. On a flat external
// network, and on one with a VLAN (tagged on the uplink both ways).
TEST_F(FastPathDifferential, TranslatedFlowsThroughTheUplinkLeaveTheKernelAsTheDatapath) {
  translatedFlows(0);
}
TEST_F(FastPathDifferential, TranslatedFlowsThroughAVlanUplinkLeaveTheKernelAsTheDatapath) {
  translatedFlows(300);
}

void FastPathDifferential::translatedFlows(uint16_t vlan) {
  std::mt19937_64 rng = seeded();
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  {
    auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
    parts.routers.at(kRouter).gateway->host = kH1;
    parts.switches.at(kPublic).vlan = vlan;
    parts.floating_ips.push_back({.id = "fip2-id",
                                  .external = datapath::testing::ip("203.0.113.60"),
                                  .router_key = kRouter,
                                  .forwardings = {{.protocol = 6,
                                                   .external_min = 2222,
                                                   .external_max = 2222,
                                                   .internal_min = 22,
                                                   .internal = datapath::testing::ip("10.0.0.5"),
                                                   .port_key = kVm1}}});
    parts.groups.at(kDefault).rules.push_back({.id = "ssh",
                                               .direction = datapath::topology::Direction::Ingress,
                                               .protocol = 6,
                                               .port_min = 22,
                                               .port_max = 22});
    auto built = parts.builder().build(2);
    ASSERT_TRUE(built);
    dp_->setTopology(*built);
  }
  agent::KernelFlows flows(*fp_, {}, {outside_.ifindex});
  attachWithUplink(flows);
  if (HasFatalFailure()) return;
  auto through = [&](uint32_t from, const std::vector<uint8_t>& frame) {
    return installing(flows, from, frame);
  };
  // The outside's router (203.0.113.1) makes itself known.
  {
    PacketBuilder arp;
    arp.eth(kOutsideMac, MacAddress::broadcast());
    if (vlan != 0) arp.vlan(vlan);
    through(kOutside,
            arp.arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.50")).build());
  }
  size_t compared = 0;
  for (int round = 0; round < 24; ++round) {
    const int kind = pick(3);  // floating IP TCP, floating IP ICMP echo, port forwarding
    Vm& inside = vm(kind == 2 ? kVm1 : kVm3);
    const MacAddress inside_gateway = kind == 2 ? kRouterNet1Mac : kRouterNet2Mac;
    // (A port forwarding's floating IP answers at the gateway's MAC.)
    const MacAddress outside_to = kind == 2 ? kGatewayMac : inside.mac;
    const auto remote =
        datapath::packet::Ipv4Address::of(198, 51, 100, static_cast<uint8_t>(1 + pick(250)));
    const auto external = v4(kind == 2 ? "203.0.113.60" : "203.0.113.50");
    const auto sport = static_cast<uint16_t>(1024 + pick(60000));
    const uint16_t dport = kind == 2 ? 2222 : 80, inside_port = kind == 2 ? 22 : 80;
    const auto id = static_cast<uint16_t>(pick(65536));
    uint32_t seq_o = static_cast<uint32_t>(rng()), seq_i = static_cast<uint32_t>(rng());
    uint16_t echo = 0;
    auto fromOutside = [&](uint8_t flags, size_t payload) {
      PacketBuilder pb;
      pb.eth(kOutsideMac, outside_to);
      if (vlan != 0) pb.vlan(vlan);
      pb.ipv4(remote, external, static_cast<uint8_t>(2 + pick(254)));
      if (kind == 1) {
        pb.icmp(8, 0, id, ++echo);
      } else {
        pb.tcp(sport, dport, flags, seq_o, seq_i);
      }
      seq_o += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
      return pb.payload(std::string(payload, static_cast<char>('a' + pick(26)))).build();
    };
    auto fromInside = [&](uint8_t flags, size_t payload) {
      PacketBuilder pb;
      pb.eth(inside.mac, inside_gateway).ipv4(v4(inside.ip), remote);
      if (kind == 1) {
        pb.icmp(0, 0, id, echo);
      } else {
        pb.tcp(inside_port, sport, flags, seq_i, seq_o);
      }
      seq_i += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
      return pb.payload(std::string(payload, static_cast<char>('A' + pick(26)))).build();
    };
    // Opened through the datapath.
    ASSERT_FALSE(through(kOutside, fromOutside(TcpHeader::kSyn, 0)).empty()) << round;
    ASSERT_FALSE(through(inside.port, fromInside(TcpHeader::kSyn | TcpHeader::kAck, 0)).empty())
        << round;
    ASSERT_FALSE(through(kOutside, fromOutside(TcpHeader::kAck, 0)).empty()) << round;
    ASSERT_FALSE(through(inside.port, fromInside(TcpHeader::kAck, 0)).empty()) << round;
    for (int i = 0; i < 4; ++i) {
      const bool in = i % 2 == 0;
      auto frame = in ? fromOutside(TcpHeader::kAck, static_cast<size_t>(pick(1300)))
                      : fromInside(TcpHeader::kAck, static_cast<size_t>(pick(1300)));
      auto expected = through(in ? kOutside : inside.port, frame);
      ASSERT_EQ(expected.size(), 1u) << "round " << round << " packet " << i;
      auto got = kernel(in ? kOutside : inside.port, frame, 300);
      ASSERT_EQ(got.to, in ? inside.port : kOutside)
          << "round " << round << " packet " << i << " (" << (in ? "in" : "out")
          << "): " << datapath::packet::describeFrame(frame) << ", agent saw it " << got.agent_saw
          << ", hits " << fp_->counters().hits << ", misses " << fp_->counters().misses
          << ", flows " << flows.size();
      EXPECT_EQ(got.bytes, expected[0])
          << "round " << round << " packet " << i << ": kernel "
          << datapath::packet::describeFrame(got.bytes) << ", datapath "
          << datapath::packet::describeFrame(expected[0]);
      EXPECT_FALSE(got.agent_saw) << "round " << round;
      ++compared;
    }
  }
  std::printf("%zu translated packets compared, %zu flows installed\n", compared, flows.size());
  EXPECT_GE(flows.size(), 24u);
}

// Router SNAT through h1's uplink (its router's gateway moved to h1): vm1
// and vm5, with no floating IP, open TCP and UDP to random outside
// addresses and ports through the datapath, which maps each to a port of
// the gateway's address; their later packets both ways leave the kernel
// byte for byte as the datapath's, translated by their mapping. A FIN is
// the agent's (the mapping follows the close). The kernel's use keeps the
// mappings alive: after 3 x 100 s with the kernel alone carrying them
// (past UDP's 180 s), none has expired; idle past that, they go, and so do
// their flows.
TEST_F(FastPathDifferential, SnatFlowsThroughTheUplinkLeaveTheKernelAsTheDatapath) {
  std::mt19937_64 rng = seeded();
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  {
    auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
    parts.routers.at(kRouter).gateway->host = kH1;
    auto built = parts.builder().build(2);
    ASSERT_TRUE(built);
    dp_->setTopology(*built);
  }
  agent::KernelFlows flows(*fp_, {}, {outside_.ifindex});
  flows.useConntrack(&dp_->connections(), &clock_);
  flows.useSnat([&](const auto& c, bool used) { return dp_->shared().snatKeepAlive(c, used); });
  attachWithUplink(flows);
  if (HasFatalFailure()) return;
  auto through = [&](uint32_t from, const std::vector<uint8_t>& frame) {
    return installing(flows, from, frame);
  };
  // The outside's router (203.0.113.1) makes itself known.
  through(kOutside, PacketBuilder()
                        .eth(kOutsideMac, MacAddress::broadcast())
                        .arp(1, kOutsideMac, v4("203.0.113.1"), MacAddress{}, v4("203.0.113.10"))
                        .build());
  const auto gateway = v4("203.0.113.10");
  struct Flow {
    Vm* inside = nullptr;
    bool tcp = true;
    datapath::packet::Ipv4Address remote{};
    uint16_t sport = 0, dport = 0, external = 0;
    uint32_t seq_i = 0, seq_o = 0;
  };
  // A packet of flow `f`, from inside (to the remote) or from outside (to
  // the gateway's address and the mapping's port).
  auto packet = [&](Flow& f, bool inside, uint8_t flags, size_t payload) {
    PacketBuilder pb;
    const auto ttl = static_cast<uint8_t>(2 + pick(254));
    if (inside) {
      pb.eth(f.inside->mac, kRouterNet1Mac).ipv4(v4(f.inside->ip), f.remote, ttl);
    } else {
      pb.eth(kOutsideMac, kGatewayMac).ipv4(f.remote, gateway, ttl);
    }
    const uint16_t from = inside ? f.sport : f.dport, to = inside ? f.dport : f.external;
    uint32_t& seq = inside ? f.seq_i : f.seq_o;
    if (f.tcp) {
      pb.tcp(from, to, flags, seq, inside ? f.seq_o : f.seq_i);
    } else {
      pb.udp(from, to);
    }
    seq += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
    return pb.payload(std::string(payload, static_cast<char>((inside ? 'A' : 'a') + pick(26))))
        .build();
  };
  auto fromInside = [&](Flow& f, uint8_t flags, size_t payload) {
    return packet(f, true, flags, payload);
  };
  auto fromOutside = [&](Flow& f, uint8_t flags, size_t payload) {
    return packet(f, false, flags, payload);
  };
  // One packet both ways, through the datapath and then the kernel.
  size_t compared = 0;
  auto compare = [&](Flow& f, bool in, int round) {
    auto frame = in ? fromOutside(f, TcpHeader::kAck, static_cast<size_t>(pick(1300)))
                    : fromInside(f, TcpHeader::kAck, static_cast<size_t>(pick(1300)));
    auto expected = through(in ? kOutside : f.inside->port, frame);
    ASSERT_EQ(expected.size(), 1u) << "round " << round;
    auto got = kernel(in ? kOutside : f.inside->port, frame, 300);
    ASSERT_EQ(got.to, in ? f.inside->port : kOutside)
        << "round " << round << " (" << (in ? "in" : "out")
        << "): " << datapath::packet::describeFrame(frame) << ", agent saw it " << got.agent_saw
        << ", flows " << flows.size();
    EXPECT_EQ(got.bytes, expected[0])
        << "round " << round << ": kernel " << datapath::packet::describeFrame(got.bytes)
        << ", datapath " << datapath::packet::describeFrame(expected[0]);
    EXPECT_FALSE(got.agent_saw) << "round " << round;
    ++compared;
  };
  std::vector<Flow> opened;
  size_t closed = 0;
  for (int round = 0; round < 16; ++round) {
    Flow f;
    f.inside = &vm(pick(2) == 0 ? kVm1 : kVm5);
    f.tcp = round % 2 == 0;
    f.remote = datapath::packet::Ipv4Address::of(198, 51, 100, static_cast<uint8_t>(1 + pick(250)));
    f.sport = static_cast<uint16_t>(1024 + pick(60000));
    f.dport = static_cast<uint16_t>(1 + pick(65000));
    f.seq_i = static_cast<uint32_t>(rng());
    f.seq_o = static_cast<uint32_t>(rng());
    // Opened through the datapath: the port its mapping gave it.
    auto first = through(f.inside->port, fromInside(f, f.tcp ? TcpHeader::kSyn : 0, 0));
    ASSERT_EQ(first.size(), 1u) << round;
    ASSERT_GE(first[0].size(), 36u);
    f.external = static_cast<uint16_t>(first[0][34] << 8 | first[0][35]);
    ASSERT_FALSE(
        through(kOutside, fromOutside(f, f.tcp ? TcpHeader::kSyn | TcpHeader::kAck : 0, 0)).empty())
        << round;
    if (f.tcp) {
      ASSERT_FALSE(through(f.inside->port, fromInside(f, TcpHeader::kAck, 0)).empty()) << round;
    }
    for (int i = 0; i < 4; ++i) {
      compare(f, i % 2 == 0, round);
      if (HasFatalFailure()) return;
    }
    if (f.tcp && round % 4 == 0) {
      // Its FIN: to the agent, whose datapath sees the close.
      auto fin = fromInside(f, TcpHeader::kFin | TcpHeader::kAck, 0);
      auto got = kernel(f.inside->port, fin, 30);
      EXPECT_EQ(got.to, 0u) << "round " << round << ": the kernel forwarded a SNAT FIN";
      EXPECT_TRUE(got.agent_saw) << "round " << round;
      EXPECT_EQ(through(f.inside->port, fin).size(), 1u);
      ++closed;
      continue;
    }
    opened.push_back(f);
  }
  std::printf("%zu packets compared, %zu flows installed, %zu mappings\n", compared, flows.size(),
              dp_->shared().snatSize());
  ASSERT_FALSE(opened.empty());
  EXPECT_GE(flows.size(), 2 * opened.size());
  ASSERT_EQ(dp_->shared().snatSize(), opened.size() + closed);
  // The kernel alone carries them for 300 s (its use each tick keeps their
  // mappings and connections; those closed expire after 120 s).
  for (int step = 0; step < 3; ++step) {
    clock_.advance(std::chrono::seconds(100));
    for (auto& f : opened) {
      auto got = kernel(f.inside->port, fromInside(f, TcpHeader::kAck, 10), 300);
      ASSERT_EQ(got.to, kOutside) << "step " << step;
      EXPECT_FALSE(got.agent_saw);
    }
    flows.tick(dp_->connections(), clock_.now());
    dp_->shared().sweep();
  }
  EXPECT_EQ(dp_->shared().snatSize(), opened.size()) << "a mapping the kernel used expired";
  EXPECT_GE(flows.size(), 2 * opened.size());
  for (auto& f : opened) compare(f, true, 99);
  // Idle past every timeout: the mappings go, and their flows with them.
  clock_.advance(std::chrono::hours(25));
  dp_->shared().sweep();
  flows.tick(dp_->connections(), clock_.now());
  EXPECT_EQ(flows.size(), 0u);
  for (auto& f : opened) {
    auto got = kernel(kOutside, fromOutside(f, TcpHeader::kAck, 10), 30);
    EXPECT_EQ(got.to, 0u) << "a reply went in through an expired mapping";
  }
}

// Load balancing on the client's host: vm1 connects to a VIP on net1
// (TCP 80, members vm5 on net1 and vm3 behind the router, both on h1),
// pinned to a member by the datapath; later packets both ways leave the
// kernel byte for byte as the datapath's (to the member, and its reply
// from the VIP again). The kernel's use keeps the pins and counts the
// listener's bytes as the datapath counts its own; a FIN is the agent's.
TEST_F(FastPathDifferential, LoadBalancedFlowsLeaveTheKernelAsTheDatapath) { loadBalancedFlows(4); }

TEST_F(FastPathDifferential, LoadBalancedIpv6FlowsLeaveTheKernelAsTheDatapath) {
  loadBalancedFlows(6);
}

// The VIP port (kVip) of `family` with a listener on TCP 80, members vm5
// (switched) and vm3 (routed), and the default group letting 80 in.
void FastPathDifferential::addVip(int family) {
  using datapath::testing::ip;
  const bool six = family == 6;
  const char* vip = six ? "fd00:1::100" : "10.0.0.100";
  const MacAddress vip_mac = mac(0, 0x50);
  auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
  parts.ports[kVip] = datapath::topology::Port{
      .key = kVip,
      .id = "vip-port",
      .switch_key = kNet1,
      .mac = vip_mac,
      .ips = {ip(vip)},
      .device_owner = "Octavia",
      .listeners = {{.id = "listener-web",
                     .protocol = 6,
                     .port = 80,
                     .members = {{.address = ip(six ? "fd00:1::9" : "10.0.0.8"), .port = 80},
                                 {.address = ip(six ? "fd00:2::5" : "10.0.1.5"), .port = 80}}}}};
  parts.groups.at(kDefault).rules.push_back({.id = "web-in",
                                             .direction = datapath::topology::Direction::Ingress,
                                             .family = static_cast<uint8_t>(family),
                                             .protocol = 6,
                                             .port_min = 80,
                                             .port_max = 80});
  auto built = parts.builder().build(2);
  ASSERT_TRUE(built);
  dp_->setTopology(*built);
}

// Connections to a VIP of `family` (IPv4 10.0.0.100, IPv6 fd00:1::100) with
// members switched (vm5) and routed (vm3): each packet through the
// datapath, then through the kernel, byte for byte the same.
void FastPathDifferential::loadBalancedFlows(int family) {
  using datapath::testing::ip;
  std::mt19937_64 rng = seeded();
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  const MacAddress vip_mac = mac(0, 0x50);
  const bool six = family == 6;
  const char* vip = six ? "fd00:1::100" : "10.0.0.100";
  addVip(family);
  if (HasFatalFailure()) return;
  agent::KernelFlows flows(*fp_, {});
  flows.useConntrack(&dp_->connections(), &clock_);
  flows.useLb([&](const auto& c, bool used, uint64_t in, uint64_t out) {
    return dp_->shared().lbKeepAlive(c, used, in, out);
  });
  attachWithUplink(flows);
  if (HasFatalFailure()) return;
  auto through = [&](uint32_t from, const std::vector<uint8_t>& frame) {
    return installing(flows, from, frame);
  };
  auto bytesIn = [&] {
    uint64_t n = 0;
    for (const auto& [listener, c] : dp_->shared().lbCounters()) n += c.bytes_in;
    return n;
  };
  Vm& client = vm(kVm1);
  // An IPv4 or IPv6 header between two addresses.
  auto between = [&](PacketBuilder& b, const char* from, const char* to) -> PacketBuilder& {
    if (six) {
      return b.ipv6(datapath::packet::Ipv6Address::of(ip(from)),
                    datapath::packet::Ipv6Address::of(ip(to)), 64);
    }
    return b.ipv4(v4(from), v4(to));
  };
  size_t compared = 0;
  std::set<uint32_t> members;
  for (int round = 0; round < 12; ++round) {
    const auto sport = static_cast<uint16_t>(1024 + pick(60000));
    uint32_t seq_c = static_cast<uint32_t>(rng()), seq_m = static_cast<uint32_t>(rng());
    auto toVip = [&](uint8_t flags, size_t payload) {
      PacketBuilder b;
      auto f = between(b.eth(client.mac, vip_mac), six ? client.ip6 : client.ip, vip)
                   .tcp(sport, 80, flags, seq_c, seq_m)
                   .payload(std::string(payload, static_cast<char>('a' + pick(26))))
                   .build();
      seq_c += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
      return f;
    };
    auto first = through(kVm1, toVip(TcpHeader::kSyn, 0));
    ASSERT_EQ(first.size(), 1u) << round;
    // The member it went to (by its address), and the way its reply goes.
    // (10.0.1.5; fd00:2::5)
    const bool routed = six ? first[0][14 + 24 + 3] == 2 : first[0][14 + 16 + 2] == 1;
    Vm& member = vm(routed ? kVm3 : kVm5);
    members.insert(member.port);
    auto fromMember = [&](uint8_t flags, size_t payload) {
      PacketBuilder b;
      auto f = between(b.eth(member.mac, routed ? kRouterNet2Mac : client.mac),
                       six ? member.ip6 : member.ip, six ? client.ip6 : client.ip)
                   .tcp(80, sport, flags, seq_m, seq_c)
                   .payload(std::string(payload, static_cast<char>('A' + pick(26))))
                   .build();
      seq_m += static_cast<uint32_t>(payload) + ((flags & TcpHeader::kSyn) ? 1 : 0);
      return f;
    };
    ASSERT_EQ(through(member.port, fromMember(TcpHeader::kSyn | TcpHeader::kAck, 0)).size(), 1u)
        << round;
    ASSERT_EQ(through(kVm1, toVip(TcpHeader::kAck, 0)).size(), 1u) << round;
    uint64_t sent_in = 0;
    const uint64_t before = bytesIn();
    // One packet through the datapath, then the kernel: the same frame.
    auto compare = [&](uint32_t from, const std::vector<uint8_t>& frame, uint32_t to) {
      auto expected = through(from, frame);
      ASSERT_EQ(expected.size(), 1u) << round;
      auto got = kernel(from, frame, 300);
      ASSERT_EQ(got.to, to) << "round " << round << ": " << datapath::packet::describeFrame(frame)
                            << ", agent saw it " << got.agent_saw << ", flows " << flows.size();
      EXPECT_EQ(got.bytes, expected[0])
          << "round " << round << ": kernel " << datapath::packet::describeFrame(got.bytes)
          << ", datapath " << datapath::packet::describeFrame(expected[0]);
      EXPECT_FALSE(got.agent_saw) << "round " << round;
      ++compared;
    };
    for (int i = 0; i < 4; ++i) {
      if (i % 2 == 0) {
        auto frame = toVip(TcpHeader::kAck, static_cast<size_t>(pick(1300)));
        sent_in += frame.size() - 14;
        compare(kVm1, frame, member.port);
      } else {
        compare(member.port, fromMember(TcpHeader::kAck, static_cast<size_t>(pick(1300))), kVm1);
      }
      if (HasFatalFailure()) return;
    }
    // (The datapath counted what went through it; the kernel's share is
    // counted at the tick.)
    const uint64_t counted = bytesIn() - before;
    flows.tick(dp_->connections(), clock_.now());
    EXPECT_EQ(bytesIn() - before - counted, sent_in) << "round " << round;
    if (round % 3 == 0) {
      auto fin = toVip(TcpHeader::kFin | TcpHeader::kAck, 0);
      auto got = kernel(kVm1, fin, 30);
      EXPECT_EQ(got.to, 0u) << "round " << round << ": the kernel forwarded a FIN to a VIP";
      EXPECT_TRUE(got.agent_saw) << "round " << round;
    }
    if (round == 11) {
      // The last connection carried by the kernel alone past TCP's idle
      // hour: its pin stays (and its flows); the others', idle, go with
      // their flows.
      EXPECT_EQ(flows.size(), 24u);
      for (int step = 0; step < 2; ++step) {
        clock_.advance(std::chrono::minutes(50));
        auto got = kernel(kVm1, toVip(TcpHeader::kAck, 10), 300);
        ASSERT_EQ(got.to, member.port) << "step " << step;
        flows.tick(dp_->connections(), clock_.now());
      }
      dp_->shared().sweep();
      EXPECT_EQ(dp_->shared().lbSize(), 1u);
      EXPECT_EQ(flows.size(), 2u);
      compare(kVm1, toVip(TcpHeader::kAck, 100), member.port);
    }
  }
  std::printf("%zu packets compared, %zu members reached\n", compared, members.size());
}

// A VIP's later connections are set up in the kernel: once the agent has
// balanced a connection from the client to each member (and learned that
// member's template under the VIP's selector), the kernel makes each new
// connection's flows on the member the listener's Maglev table gives its
// 5-tuple, the one the datapath chooses (a reference datapath, seeing
// every packet, says which), and the whole handshake and its data leave the
// kernel as they leave the reference. At the tick the agent takes each made
// connection in: pinned (the listener counts it), in conntrack; a FIN is
// the agent's.
TEST_F(FastPathDifferential, AVipsLaterConnectionsAreSetUpInTheKernelOnTheirMaglevMember) {
  std::mt19937_64 rng = seeded();
  addVip(4);
  if (HasFatalFailure()) return;
  agent::Templates templates;
  agent::KernelFlows flows(*fp_, {}, {}, &templates, 0);
  flows.useConntrack(&dp_->connections(), &clock_);
  flows.useLb([&](const auto& c, bool used, uint64_t in, uint64_t out) {
    return dp_->shared().lbKeepAlive(c, used, in, out);
  });
  flows.useLbImport([&](const auto& c, const auto& member, uint64_t listener) {
    return dp_->shared().lbImport(c, member, listener, false);
  });
  flows.useLbClose([&](const auto& c) { dp_->shared().lbClose(c); });
  attachWithUplink(flows);
  if (HasFatalFailure()) return;
  datapath::pipeline::Config config;
  config.host.host = kH1;
  config.host.uplinks = {"physnet1"};
  Datapath reference(clock_, config);
  auto same = datapath::testing::TopologyParts::of(*dp_->topology()).builder().build(2);
  ASSERT_TRUE(same);
  reference.setTopology(*same);
  auto through = [&](uint32_t from, const std::vector<uint8_t>& frame, uint32_t* to) {
    Outputs out;
    reference.process(Ingress::fromPort(from), frame, out);
    std::vector<uint8_t> sent;
    for (const auto& item : out.items()) {
      if (item.kind != Outputs::Kind::Port) continue;
      auto b = out.bytes(item);
      sent.assign(b.begin(), b.end());
      *to = item.port;
    }
    return sent;
  };
  const MacAddress vip_mac = mac(0, 0x50);
  Vm& client = vm(kVm1);
  auto member = [&](uint32_t port) -> Vm& { return vm(port); };
  auto toVip = [&](uint16_t sport, uint8_t flags, uint32_t seq, uint32_t ack, const char* data) {
    return PacketBuilder()
        .eth(client.mac, vip_mac)
        .ipv4(v4(client.ip), v4("10.0.0.100"))
        .tcp(sport, 80, flags, seq, ack)
        .payload(data)
        .build();
  };
  auto fromMember = [&](uint32_t port, uint16_t sport, uint8_t flags, uint32_t seq, uint32_t ack,
                        const char* data) {
    Vm& m = member(port);
    return PacketBuilder()
        .eth(m.mac, port == kVm3 ? kRouterNet2Mac : client.mac)
        .ipv4(v4(m.ip), v4(client.ip))
        .tcp(80, sport, flags, seq, ack)
        .payload(data)
        .build();
  };
  // Through the agent until it has balanced a connection to each member
  // (the Maglev table spreads source ports over both).
  std::set<uint32_t> learned;
  for (int i = 0; i < 64 && learned.size() < 2; ++i) {
    const auto sport = static_cast<uint16_t>(20000 + rng() % 20000);
    auto sent = installing(flows, kVm1, toVip(sport, TcpHeader::kSyn, 1, 0, ""));
    ASSERT_EQ(sent.size(), 1u);
    uint32_t to = 0;
    for (auto& v : vms_) {
      if (v.mac ==
          MacAddress{{sent[0][0], sent[0][1], sent[0][2], sent[0][3], sent[0][4], sent[0][5]}}) {
        to = v.port;
      }
    }
    ASSERT_TRUE(to == kVm5 || to == kVm3) << "the SYN went to port " << to;
    ASSERT_EQ(
        installing(flows, to, fromMember(to, sport, TcpHeader::kSyn | TcpHeader::kAck, 9, 2, ""))
            .size(),
        1u);
    learned.insert(to);
  }
  ASSERT_EQ(learned.size(), 2u);
  EXPECT_EQ(flows.templates(), 3u) << "a template for each member, and the VIP's selector";
  const uint64_t made_before = fp_->counters().made;
  const uint64_t total_before =
      dp_->shared().lbCounters()[datapath::nat::stableHash("listener-web")].total;
  std::map<uint32_t, int> reached;
  constexpr int kConnections = 16;
  std::vector<std::pair<uint16_t, uint32_t>> made;
  for (int i = 0; i < kConnections; ++i) {
    const auto sport = static_cast<uint16_t>(40000 + rng() % 20000);
    uint32_t to = 0;
    auto syn = toVip(sport, TcpHeader::kSyn, 100, 0, "");
    auto expected = through(kVm1, syn, &to);
    ASSERT_FALSE(expected.empty()) << sport;
    auto got = kernel(kVm1, syn, 300);
    ASSERT_EQ(got.to, to) << "port " << sport << ": the kernel chose another member";
    EXPECT_EQ(got.bytes, expected) << sport;
    EXPECT_FALSE(got.agent_saw) << sport;
    ++reached[to];
    made.emplace_back(sport, to);
    // The rest of the handshake and data, both ways.
    const std::vector<std::tuple<bool, uint8_t, uint32_t, uint32_t, const char*>> packets = {
        {false, TcpHeader::kSyn | TcpHeader::kAck, 500, 101, ""},
        {true, TcpHeader::kAck, 101, 501, ""},
        {true, TcpHeader::kAck | TcpHeader::kPsh, 101, 501, "GET / HTTP/1.0\r\n\r\n"},
        {false, TcpHeader::kAck | TcpHeader::kPsh, 501, 119, "HTTP/1.0 200 OK\r\n\r\n"}};
    for (const auto& [forward, flags, seq, ack, data] : packets) {
      auto frame = forward ? toVip(sport, flags, seq, ack, data)
                           : fromMember(to, sport, flags, seq, ack, data);
      uint32_t want = 0;
      auto e = through(forward ? kVm1 : to, frame, &want);
      ASSERT_FALSE(e.empty()) << sport << " flags " << int{flags};
      auto k = kernel(forward ? kVm1 : to, frame, 300);
      EXPECT_EQ(k.to, want) << sport << " flags " << int{flags};
      EXPECT_EQ(k.bytes, e) << sport << " flags " << int{flags};
      EXPECT_FALSE(k.agent_saw) << sport << " flags " << int{flags};
    }
  }
  EXPECT_EQ(fp_->counters().made - made_before, static_cast<uint64_t>(kConnections));
  EXPECT_EQ(reached.size(), 2u) << "both members got connections";
  // The tick takes them in: each pinned to its member, counted.
  flows.tick(dp_->connections(), clock_.now());
  EXPECT_EQ(
      dp_->shared().lbCounters()[datapath::nat::stableHash("listener-web")].total - total_before,
      static_cast<uint64_t>(kConnections));
  // A FIN: carried by the kernel, told to the agent, whose pin of the
  // connection closes (least connections counts it no longer).
  const auto [sport, to] = made.front();
  const datapath::nat::LbTarget target{
      .address = datapath::testing::ip(to == kVm3 ? "10.0.1.5" : "10.0.0.8"), .port = 80};
  const uint64_t listener = datapath::nat::stableHash("listener-web");
  const size_t open = dp_->shared().lbConnections(listener, target);
  ASSERT_GT(open, 0u);
  auto fin = toVip(sport, TcpHeader::kFin | TcpHeader::kAck, 119, 519, "");
  uint32_t want = 0;
  auto expected = through(kVm1, fin, &want);
  auto k = kernel(kVm1, fin, 300);
  EXPECT_EQ(k.to, to) << "the FIN went to another member";
  EXPECT_EQ(k.bytes, expected);
  EXPECT_FALSE(k.agent_saw);
  flows.takeEvents();
  EXPECT_EQ(dp_->shared().lbConnections(listener, target), open - 1)
      << "the pin of a connection the kernel saw close is still open";
  // The agent, should the member's FIN come to it, translates it back.
  auto back = fromMember(to, sport, TcpHeader::kFin | TcpHeader::kAck, 519, 120, "");
  auto sent = userspace(to, back);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0], through(to, back, &want));
}

// A change takes back exactly the installed flows whose decisions it
// touches (by the flow cache's tags), as the agent's worker does.
TEST_F(FastPathDifferential, AChangeTakesBackExactlyTheFlowsItTouches) {
  agent::KernelFlows flows(*fp_, {});
  std::vector<std::unique_ptr<agent::PortIo>> ios;
  std::map<uint32_t, int> ifindex;
  attachAll(flows, ios, ifindex);
  auto install = [&] {
    flows.install(dp_->offers(), [&](uint32_t port) { return ifindex.at(port); });
    dp_->offers().clear();
  };
  Vm &v1 = vm(kVm1), &v5 = vm(kVm5), &v3 = vm(kVm3);
  // vm1 <-> vm5: UDP, switched; vm1 <-> vm3: TCP to 80, routed (vm3's
  // group, web, admits it).
  auto udp = [&](Vm& from, Vm& to, uint16_t sport, uint16_t dport) {
    return PacketBuilder()
        .eth(from.mac, to.mac)
        .ipv4(v4(from.ip), v4(to.ip))
        .udp(sport, dport)
        .payload("u")
        .build();
  };
  auto tcp = [&](bool forward, uint8_t flags) {
    PacketBuilder pb;
    if (forward) {
      pb.eth(v1.mac, kRouterNet1Mac).ipv4(v4(v1.ip), v4(v3.ip)).tcp(40000, 80, flags, 1, 1);
    } else {
      pb.eth(v3.mac, kRouterNet2Mac).ipv4(v4(v3.ip), v4(v1.ip)).tcp(80, 40000, flags, 1, 1);
    }
    return pb.payload("t").build();
  };
  keep_offers_ = true;
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(userspace(kVm1, udp(v1, v5, 5000, 6000)).empty());
    ASSERT_FALSE(userspace(kVm5, udp(v5, v1, 6000, 5000)).empty());
  }
  ASSERT_FALSE(userspace(kVm1, tcp(true, TcpHeader::kSyn)).empty());
  ASSERT_FALSE(userspace(kVm3, tcp(false, TcpHeader::kSyn | TcpHeader::kAck)).empty());
  ASSERT_FALSE(userspace(kVm1, tcp(true, TcpHeader::kAck)).empty());
  ASSERT_FALSE(userspace(kVm3, tcp(false, TcpHeader::kAck)).empty());
  install();
  ASSERT_EQ(flows.size(), 4u) << "both ways of both flows";
  EXPECT_TRUE(dp_->takeInvalidations().tags.empty());
  // vm3's port gains an address: the routed flow's decisions go (they
  // depend on it), the switched one stays in the kernel and goes on
  // carrying its packets. (A security-group rule would take neither: an
  // established connection's packets are not decided by rules, in the
  // agent either; a router's change takes both, as it does cached
  // decisions on its networks.)
  auto parts = datapath::testing::TopologyParts::of(*dp_->topology());
  parts.ports.at(kVm3).ips.push_back(datapath::testing::ip("10.0.1.50"));
  auto changed = parts.builder().build(2);
  ASSERT_TRUE(changed);
  dp_->setTopology(*changed);
  flows.retract(dp_->takeInvalidations());
  EXPECT_EQ(flows.size(), 2u);
  auto got = kernel(kVm1, udp(v1, v5, 5000, 6000), 300);
  EXPECT_EQ(got.to, kVm5);
  EXPECT_FALSE(got.agent_saw) << "the switched flow left the kernel";
  got = kernel(kVm1, tcp(true, TcpHeader::kAck), 30);
  EXPECT_EQ(got.to, 0u);
  EXPECT_TRUE(got.agent_saw) << "the routed flow stayed in the kernel";
  // A change to everything (a new datapath's first view) takes all.
  dp_->setTopology(nullptr);
  flows.retract(dp_->takeInvalidations());
  EXPECT_EQ(flows.size(), 0u);
}

}  // namespace
}  // namespace canopy::fastpath
