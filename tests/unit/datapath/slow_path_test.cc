// Slow-path protection: a port flooding new flows (random ports) or ARP is
// held to its own rate, dropped beyond it with named, per-port counts,
// while a neighbour on the same host sets up its flows and gets its ARP
// answered all along; established flows (the flow cache) are not limited.

#include <gtest/gtest.h>

#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using std::chrono::milliseconds;

// A UDP datagram from a vm on net1 to vm2 (10.0.0.6), from `sport`.
std::vector<uint8_t> udpFrom(uint8_t mac_byte, const char* source, uint16_t sport) {
  return PacketBuilder()
      .eth(mac(0, mac_byte), mac(0, 2))
      .ipv4(v4(source), v4("10.0.0.6"))
      .udp(sport, 5001)
      .payload("x")
      .build();
}

// A TCP segment between vm1 (10.0.0.5) and vm2 (10.0.0.6), either way.
std::vector<uint8_t> tcpBetween(bool from_vm1, uint16_t sport, uint8_t flags, uint32_t seq,
                                uint32_t ack) {
  PacketBuilder b;
  if (from_vm1) {
    b.eth(mac(0, 1), mac(0, 2))
        .ipv4(v4("10.0.0.5"), v4("10.0.0.6"))
        .tcp(sport, 5001, flags, seq, ack);
  } else {
    b.eth(mac(0, 2), mac(0, 1))
        .ipv4(v4("10.0.0.6"), v4("10.0.0.5"))
        .tcp(5001, sport, flags, seq, ack);
  }
  return b.build();
}

std::vector<uint8_t> arpFrom(uint8_t mac_byte, const char* source) {
  return PacketBuilder()
      .eth(mac(0, mac_byte), packet::MacAddress::broadcast())
      .arp(1, mac(0, mac_byte), v4(source), packet::MacAddress{}, v4("10.0.0.1"))
      .build();
}

size_t reached(const std::vector<World::Received>& got, uint32_t port) {
  size_t n = 0;
  for (const auto& r : got) n += r.port == port ? 1 : 0;
  return n;
}

constexpr pipeline::SlowPathLimits kLimits{
    .flows_per_second = 1000, .flows_burst = 100, .control_per_second = 100, .control_burst = 10};

class SlowPath : public ::testing::Test {
 protected:
  SlowPath() { world_.setTopology(scenario(), 1); }
  uint64_t portDrops(uint32_t port, DropReason why) {
    const auto& drops = world_.host(kH1).portDrops();
    auto it = drops.find(port);
    return it == drops.end() ? 0 : it->second[static_cast<size_t>(why)];
  }
  World world_{Encapsulation::Geneve, kLimits};
};

TEST_F(SlowPath, AFloodOfNewFlowsIsHeldToItsPortsRateAndTheNeighbourIsNot) {
  // Over 2 s: vm1 sends 20 new flows a millisecond (20,000/s), vm5 on the
  // same host one every 2 ms (500/s, within the limit).
  size_t flooded = 0, neighbour = 0;
  uint16_t port = 1024;
  for (int ms = 0; ms < 2000; ++ms) {
    for (int i = 0; i < 20; ++i) {
      flooded += reached(world_.fromPort(kH1, kVm1, udpFrom(1, "10.0.0.5", port++)), kVm2);
      if (port == 0) port = 1024;
    }
    if (ms % 2 == 0) {
      neighbour += reached(
          world_.fromPort(kH1, kVm5, udpFrom(5, "10.0.0.8", static_cast<uint16_t>(30000 + ms))),
          kVm2);
    }
    world_.clock.advance(milliseconds(1));
  }
  EXPECT_EQ(neighbour, 1000u) << "every one of the neighbour's flows";
  // The burst, then the rate: 100 + 2 s x 1000/s.
  EXPECT_NEAR(static_cast<double>(flooded), 2100, 25);
  EXPECT_NEAR(static_cast<double>(portDrops(kVm1, DropReason::FlowSetupRateLimited)), 40'000 - 2100,
              25);
  EXPECT_EQ(portDrops(kVm5, DropReason::FlowSetupRateLimited), 0u);
}

TEST_F(SlowPath, EstablishedFlowsAreNotLimited) {
  // One flow, 10,000 packets in 0.1 s: one setup, then the cache.
  auto frame = udpFrom(1, "10.0.0.5", 4000);
  size_t got = 0;
  for (int i = 0; i < 10'000; ++i) {
    got += reached(world_.fromPort(kH1, kVm1, frame), kVm2);
    if (i % 100 == 0) world_.clock.advance(milliseconds(1));
  }
  EXPECT_EQ(got, 10'000u);
  EXPECT_EQ(portDrops(kVm1, DropReason::FlowSetupRateLimited), 0u);
}

TEST_F(SlowPath, AConnectionIsCountedOnceWhateverItsSegments) {
  // 90 connections at one instant, within the burst of 100: each one's
  // SYN, first ACK and FIN miss the cache, but only the SYN opens a
  // connection.
  using packet::TcpHeader;
  size_t reached_vm2 = 0, reached_vm1 = 0;
  for (uint16_t sport = 20000; sport < 20090; ++sport) {
    reached_vm2 +=
        reached(world_.fromPort(kH1, kVm1, tcpBetween(true, sport, TcpHeader::kSyn, 100, 0)), kVm2);
    reached_vm1 += reached(
        world_.fromPort(kH2, kVm2,
                        tcpBetween(false, sport, TcpHeader::kSyn | TcpHeader::kAck, 500, 101)),
        kVm1);
    reached_vm2 += reached(
        world_.fromPort(kH1, kVm1, tcpBetween(true, sport, TcpHeader::kAck, 101, 501)), kVm2);
    reached_vm2 += reached(
        world_.fromPort(kH1, kVm1,
                        tcpBetween(true, sport, TcpHeader::kFin | TcpHeader::kAck, 101, 501)),
        kVm2);
  }
  EXPECT_EQ(reached_vm2, 270u);
  EXPECT_EQ(reached_vm1, 90u);
  EXPECT_EQ(portDrops(kVm1, DropReason::FlowSetupRateLimited), 0u);
  // The next ten fill the burst; then new connections are held.
  size_t opened = 0;
  for (uint16_t sport = 30000; sport < 30020; ++sport) {
    opened +=
        reached(world_.fromPort(kH1, kVm1, tcpBetween(true, sport, TcpHeader::kSyn, 100, 0)), kVm2);
  }
  EXPECT_GE(opened, 10u);
  EXPECT_LE(opened, 11u);  // (the bucket may round its refill up by one)
  EXPECT_EQ(portDrops(kVm1, DropReason::FlowSetupRateLimited), 20u - opened);
}

TEST_F(SlowPath, AnArpFloodIsHeldToTheControlRateAndNamed) {
  size_t answered = 0, neighbour = 0;
  for (int ms = 0; ms < 1000; ++ms) {
    for (int i = 0; i < 10; ++i) {
      answered += reached(world_.fromPort(kH1, kVm1, arpFrom(1, "10.0.0.5")), kVm1);
    }
    if (ms % 20 == 0)
      neighbour += reached(world_.fromPort(kH1, kVm5, arpFrom(5, "10.0.0.8")), kVm5);
    world_.clock.advance(milliseconds(1));
  }
  EXPECT_EQ(neighbour, 50u) << "the neighbour's ARP answered all along";
  EXPECT_NEAR(static_cast<double>(answered), 10 + 100, 5);
  EXPECT_NEAR(static_cast<double>(portDrops(kVm1, DropReason::ArpRateLimited)), 10'000 - 110, 5);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::FlowSetupRateLimited), 0u);
}

TEST_F(SlowPath, WithoutLimitsNothingIsDropped) {
  World unlimited;
  unlimited.setTopology(scenario(), 1);
  size_t got = 0;
  for (uint16_t p = 1024; p < 1024 + 5000; ++p) {
    got += reached(unlimited.fromPort(kH1, kVm1, udpFrom(1, "10.0.0.5", p)), kVm2);
  }
  EXPECT_EQ(got, 5000u);
}

}  // namespace
}  // namespace canopy::datapath::testing
