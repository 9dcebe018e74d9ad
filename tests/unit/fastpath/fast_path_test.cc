// The kernel fast path's programs, loaded for real and attached to the host
// side of two veth pairs whose other ends are in namespaces A and B (the
// host side in a network namespace of the test's own). UDP between real
// sockets in A and B: nothing forwards it until a flow is installed, then
// the kernel does (rewritten as the action says) and the agent's AF_PACKET
// socket, with the socket filter, no longer sees it; what the fast path
// leaves to the agent (a TTL that routing would end, another flow, a flow
// removed) it sees again. Needs root (skipped without).

#include "fastpath/fast_path.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "datapath/nat/maglev.h"
#include "kernel_test.h"

namespace canopy::fastpath {
namespace {

const std::string kTag = "cfp" + std::to_string(::getpid());
const uint8_t kMacA[6] = {0x02, 0, 0, 0, 0, 0x0a};
const uint8_t kMacB[6] = {0x02, 0, 0, 0, 0, 0x0b};
const uint8_t kRouterMac[6] = {0x02, 0, 0, 0, 0, 0x01};

// Runs `f` with the calling thread in network namespace `ns` (sockets made
// there stay there).
template <typename F>
auto inNamespace(const std::string& ns, F f) {
  int here = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
  int there = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_GE(there, 0) << ns;
  EXPECT_EQ(::setns(there, CLONE_NEWNET), 0);
  auto result = f();
  EXPECT_EQ(::setns(here, CLONE_NEWNET), 0);
  ::close(here);
  ::close(there);
  return result;
}

int udpSocket(const char* address, uint16_t port) {
  int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &a.sin_addr);
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
  int one = 1;
  ::setsockopt(s, IPPROTO_IP, IP_RECVTTL, &one, sizeof(one));
  return s;
}

void sendTo(int s, const char* address, uint16_t port, int ttl = 64) {
  ::setsockopt(s, IPPROTO_IP, IP_TTL, &ttl, sizeof(ttl));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, address, &a.sin_addr);
  ASSERT_EQ(::sendto(s, "x", 1, 0, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 1);
}

// The TTL a datagram arrived with, or -1 if none came within 300 ms.
int receiveTtl(int s) {
  pollfd p{.fd = s, .events = POLLIN, .revents = 0};
  if (::poll(&p, 1, 300) != 1) return -1;
  char data[16], control[64];
  iovec v{.iov_base = data, .iov_len = sizeof(data)};
  msghdr m{};
  m.msg_iov = &v;
  m.msg_iovlen = 1;
  m.msg_control = control;
  m.msg_controllen = sizeof(control);
  if (::recvmsg(s, &m, 0) < 0) return -1;
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) {
      int ttl = 0;
      std::memcpy(&ttl, CMSG_DATA(c), sizeof(ttl));
      return ttl;
    }
  }
  return 0;
}

// UDP frames an AF_PACKET socket has waiting (drained).
int udpFramesSeen(int s) {
  int n = 0;
  uint8_t frame[2048];
  for (;;) {
    ssize_t got = ::recv(s, frame, sizeof(frame), MSG_DONTWAIT);
    if (got < 0) return n;
    if (got >= 34 && frame[12] == 0x08 && frame[13] == 0x00 && frame[23] == IPPROTO_UDP) ++n;
  }
}

class FastPathTest : public KernelTest {
 protected:
  void SetUp() override {
    KernelTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    for (const char* side : {"a", "b"}) {
      std::string ns = kTag + side, host = kTag + "h" + side;
      const uint8_t* mac = side[0] == 'a' ? kMacA : kMacB;
      char text[18];
      std::snprintf(text, sizeof(text), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2],
                    mac[3], mac[4], mac[5]);
      std::string address = side[0] == 'a' ? "10.9.0.1" : "10.9.0.2";
      std::string other = side[0] == 'a' ? "10.9.0.2" : "10.9.0.1";
      ASSERT_TRUE(addNamespace(ns));
      // No IPv6 chatter (neighbour discovery, MLD) from the VMs' sides: the
      // counters count the test's packets only.
      ASSERT_TRUE(sh("ip netns exec " + ns + " sysctl -qw net.ipv6.conf.all.disable_ipv6=1 " +
                     "net.ipv6.conf.default.disable_ipv6=1"));
      ASSERT_TRUE(sh("ip link add " + host + " type veth peer name eth0 netns " + ns));
      ASSERT_TRUE(sh("ip link set " + host + " up"));
      ASSERT_TRUE(sh("ip -n " + ns + " link set eth0 address " + text));
      ASSERT_TRUE(sh("ip -n " + ns + " addr add " + address + "/24 dev eth0"));
      ASSERT_TRUE(sh("ip -n " + ns + " link set eth0 up"));
      // The other side's MAC is the router's: a routed hop, as the fast
      // path's rewrite makes it.
      ASSERT_TRUE(sh("ip -n " + ns + " neigh add " + other + " lladdr 02:00:00:00:00:01 dev eth0"));
    }
    ha_ = static_cast<int>(::if_nametoindex((kTag + "ha").c_str()));
    hb_ = static_cast<int>(::if_nametoindex((kTag + "hb").c_str()));
    ASSERT_GT(ha_, 0);
    ASSERT_GT(hb_, 0);
    // The agent's socket on A's interface, with the socket filter.
    packet_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    ASSERT_GE(packet_, 0);
    sockaddr_ll ll{};
    ll.sll_family = AF_PACKET;
    ll.sll_protocol = htons(ETH_P_ALL);
    ll.sll_ifindex = ha_;
    ASSERT_EQ(::bind(packet_, reinterpret_cast<sockaddr*>(&ll), sizeof(ll)), 0);
    int filter = fp_->socketFilter();
    ASSERT_EQ(::setsockopt(packet_, SOL_SOCKET, SO_ATTACH_BPF, &filter, sizeof(filter)), 0)
        << std::strerror(errno);
    ASSERT_TRUE(fp_->attach(ha_)) << "attach";
    ASSERT_TRUE(fp_->attach(hb_));
    a_ = inNamespace(kTag + "a", [] { return udpSocket("10.9.0.1", 6000); });
    b_ = inNamespace(kTag + "b", [] { return udpSocket("10.9.0.2", 7000); });
  }
  void TearDown() override {
    for (int fd : {a_, b_, packet_}) {
      if (fd >= 0) ::close(fd);
    }
    KernelTest::TearDown();
  }

  // A to B's UDP flow as it arrives on A's host side; routed: to B's MAC
  // from the router's, TTL decremented.
  FlowKey keyAtoB() const {
    FlowKey k{};
    k.ifindex = static_cast<uint32_t>(ha_);
    std::memcpy(k.eth_src, kMacA, 6);
    std::memcpy(k.eth_dst, kRouterMac, 6);
    ::inet_pton(AF_INET, "10.9.0.1", &k.ip_src);
    ::inet_pton(AF_INET, "10.9.0.2", &k.ip_dst);
    k.port_src = htons(6000);
    k.port_dst = htons(7000);
    k.protocol = IPPROTO_UDP;
    k.family = 4;
    return k;
  }
  FlowAction routedToB() const {
    FlowAction a{};
    a.ifindex = static_cast<uint32_t>(hb_);
    a.out = CANOPY_FP_REDIRECT_PEER;
    a.flags = CANOPY_FP_SET_ETH | CANOPY_FP_DECREMENT_TTL;
    a.mtu = 1500;
    std::memcpy(a.eth_src, kRouterMac, 6);
    std::memcpy(a.eth_dst, kMacB, 6);
    return a;
  }

  int packet_ = -1, a_ = -1, b_ = -1, ha_ = 0, hb_ = 0;
};

TEST_F(FastPathTest, AnInstalledFlowIsForwardedInTheKernelAndTheAgentNoLongerSeesIt) {
  // Nothing installed: the agent has it, nobody forwards it.
  sendTo(a_, "10.9.0.2", 7000);
  EXPECT_EQ(receiveTtl(b_), -1);
  EXPECT_EQ(udpFramesSeen(packet_), 1);
  EXPECT_EQ(fp_->counters().misses, 1u);

  ASSERT_TRUE(fp_->install(keyAtoB(), routedToB()));
  EXPECT_EQ(fp_->flows(), 1u);
  for (int i = 0; i < 3; ++i) {
    sendTo(a_, "10.9.0.2", 7000);
    EXPECT_EQ(receiveTtl(b_), 63) << "routed: one hop (and the checksum right, or B drops it)";
  }
  EXPECT_EQ(udpFramesSeen(packet_), 0) << "the socket filter keeps the fast path's from the agent";
  auto f = fp_->find(keyAtoB());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->packets, 3u);
  EXPECT_GT(f->last_used_ns, 0u);
  EXPECT_EQ(fp_->counters().hits, 3u);
}

TEST_F(FastPathTest, WhatTheFlowCannotTakeGoesToTheAgent) {
  ASSERT_TRUE(fp_->install(keyAtoB(), routedToB()));
  // A TTL that routing ends: the agent answers it (time exceeded).
  sendTo(a_, "10.9.0.2", 7000, /*ttl=*/1);
  EXPECT_EQ(receiveTtl(b_), -1);
  EXPECT_EQ(udpFramesSeen(packet_), 1);
  EXPECT_EQ(fp_->counters().slow, 1u);
  // Another flow (another source port).
  int other = inNamespace(kTag + "a", [] { return udpSocket("10.9.0.1", 6001); });
  sendTo(other, "10.9.0.2", 7000);
  ::close(other);
  EXPECT_EQ(receiveTtl(b_), -1);
  EXPECT_EQ(udpFramesSeen(packet_), 1);
  // The flow removed: back to the agent.
  fp_->remove(keyAtoB());
  sendTo(a_, "10.9.0.2", 7000);
  EXPECT_EQ(receiveTtl(b_), -1);
  EXPECT_EQ(udpFramesSeen(packet_), 1);
  EXPECT_EQ(fp_->flows(), 0u);
}

// A VIP's selector template: each new connection's SYN is made into flows
// from the template of the member the listener's Maglev table gives its
// 5-tuple, by the datapath's own hash; a member without a template (the
// agent has not set up a connection to it from this client yet) leaves the
// SYN to the agent. Connections are real: A's kernel connects to B, port 80.
TEST_F(FastPathTest, AVipsSelectorMakesEachConnectionFromItsMaglevMembersTemplate) {
  std::vector<datapath::nat::MaglevMember> members;
  for (int i = 0; i < 5; ++i)
    members.push_back({.name = "10.0.0." + std::to_string(10 + i) + "/80"});
  const datapath::nat::MaglevTable maglev(members, 1021);
  LbTable table{};
  table.size = static_cast<uint32_t>(maglev.entries().size());
  for (size_t i = 0; i < maglev.entries().size(); ++i) table.members[i] = maglev.entries()[i];
  ASSERT_TRUE(fp_->installLbTable(7, table));
  // The opener's key (source port 0) holds the selector; members 0 to 3
  // have templates (all to B, told apart by their ids), member 4 none.
  FlowKey opener = keyAtoB();
  opener.protocol = IPPROTO_TCP;
  opener.port_src = 0;
  opener.port_dst = htons(80);
  Template selector{};
  selector.lb_table = 7;
  ASSERT_TRUE(fp_->installTemplate(opener, selector));
  for (uint16_t m = 0; m < 4; ++m) {
    Template t{};
    t.forward = routedToB();
    t.reply_key = opener;  // (B's answer: its own key, unused here)
    t.reply_key.ifindex = static_cast<uint32_t>(hb_);
    std::swap(t.reply_key.ip_src, t.reply_key.ip_dst);
    t.reply_key.port_src = htons(80);
    t.reply_key.port_dst = 0;
    t.reply = routedToB();
    t.id = 100 + m;
    FlowKey k = opener;
    k.lb_member = static_cast<uint16_t>(m + 1);
    ASSERT_TRUE(fp_->installTemplate(k, t));
  }
  std::set<uint32_t> reached;
  int to_agent = 0;
  for (int i = 0; i < 40; ++i) {
    int s = inNamespace(kTag + "a", [] {
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      sockaddr_in b{};
      b.sin_family = AF_INET;
      b.sin_port = htons(80);
      ::inet_pton(AF_INET, "10.9.0.2", &b.sin_addr);
      ::connect(c, reinterpret_cast<sockaddr*>(&b), sizeof(b));  // (its SYN goes now)
      return c;
    });
    sockaddr_in me{};
    socklen_t length = sizeof(me);
    ASSERT_EQ(::getsockname(s, reinterpret_cast<sockaddr*>(&me), &length), 0);
    ::close(s);
    // The datapath's hash of the 5-tuple, as the simulator takes it.
    std::string bytes;
    for (uint32_t a : {htonl(0x0a090001u), htonl(0x0a090002u)}) {
      bytes.append(reinterpret_cast<const char*>(&a), 4);
    }
    const uint16_t sport = ntohs(me.sin_port);
    const char rest[5] = {IPPROTO_TCP, static_cast<char>(sport >> 8), static_cast<char>(sport), 0,
                          80};
    bytes.append(rest, sizeof(rest));
    const size_t member = *maglev.pick(datapath::nat::stableHash(bytes));
    FlowKey made = opener;
    made.port_src = me.sin_port;
    auto f = fp_->find(made);
    if (member == 4) {
      EXPECT_FALSE(f) << "port " << sport << ": member 4 has no template";
      ++to_agent;
      continue;
    }
    ASSERT_TRUE(f) << "port " << sport << ": no flow made for member " << member;
    EXPECT_EQ(f->template_id, 100 + member) << "port " << sport;
    EXPECT_EQ(made.lb_member, 0) << "a made flow's key has no member";
    reached.insert(f->template_id);
  }
  EXPECT_EQ(reached.size(), 4u) << "40 connections reach every member with a template";
  EXPECT_GT(to_agent, 0) << "and member 4's go to the agent";
  EXPECT_EQ(fp_->counters().made, 40u - static_cast<uint64_t>(to_agent));
}

TEST_F(FastPathTest, DetachingLeavesTheInterfaceAsItWas) {
  ASSERT_TRUE(fp_->install(keyAtoB(), routedToB()));
  fp_->detach(ha_);
  sendTo(a_, "10.9.0.2", 7000);
  EXPECT_EQ(receiveTtl(b_), -1) << "no program on A's side any more";
  EXPECT_FALSE(sh("tc filter show dev " + kTag + "ha ingress | grep -q bpf"));
}

}  // namespace
}  // namespace canopy::fastpath
