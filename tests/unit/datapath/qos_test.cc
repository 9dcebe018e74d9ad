// QoS on ports (Neutron's qos): bandwidth limits held per port and
// direction by a token bucket, on cached decisions too, super-frames
// counted as the segments they leave as; DSCP marked on what a port sends.

#include <gtest/gtest.h>

#include "datapath/packet/checksum.h"
#include "datapath/pipeline/policer.h"
#include "world.h"

namespace canopy::datapath::testing {
namespace {

using namespace world;
using packet::PacketBuilder;
using packet::TcpHeader;
using std::chrono::microseconds;
using std::chrono::milliseconds;

// vm1 (h1, 10.0.0.5) to vm2 (h2, 10.0.0.6): `payload` bytes of UDP.
std::vector<uint8_t> udp(size_t payload, uint8_t tos = 0) {
  std::vector<uint8_t> data(payload, 0x5a);
  auto frame = PacketBuilder()
                   .eth(mac(0, 1), mac(0, 2))
                   .ipv4(v4("10.0.0.5"), v4("10.0.0.6"))
                   .udp(40000, 5001)
                   .payload(data)
                   .build();
  if (tos != 0) {
    // TOS and the header checksum, as the guest's stack would write them.
    frame[15] = tos;
    frame[24] = frame[25] = 0;
    uint16_t sum = packet::checksum(std::span<const uint8_t>(frame).subspan(14, 20));
    frame[24] = static_cast<uint8_t>(sum >> 8);
    frame[25] = static_cast<uint8_t>(sum);
  }
  return frame;
}

class Qos : public ::testing::Test {
 protected:
  void build(topology::PortQos vm1, topology::PortQos vm2 = {}, bool v6 = false,
             uint64_t version = 2) {
    auto p = TopologyParts::of(**scenario().build(1));
    if (v6) addIpv6(p);
    p.ports.at(kVm1).qos = vm1;
    p.ports.at(kVm2).qos = vm2;
    world_.setTopology(p.builder(), version);
  }
  // Sends `count` frames, one every `gap`; the bytes that reached vm2.
  uint64_t deliver(const std::vector<uint8_t>& frame, int count, microseconds gap) {
    uint64_t bytes = 0;
    for (int i = 0; i < count; ++i) {
      for (const auto& r : world_.fromPort(kH1, kVm1, frame)) {
        if (r.port == kVm2) bytes += r.bytes.size();
      }
      world_.clock.advance(gap);
    }
    return bytes;
  }

  World world_;
};

TEST_F(Qos, EgressIsHeldToTheLimitOnTheSendersHost) {
  // 8 Mbit/s = 1,000,000 bytes/s, bursts of 80 kbit = 10,000 bytes.
  build({.egress = topology::BandwidthLimit{8000, 80}});
  auto frame = udp(958);  // 1000 bytes with its headers
  ASSERT_EQ(frame.size(), 1000u);
  // Offered 4 MB/s for 2 s: the burst, then the rate.
  uint64_t got = deliver(frame, 8000, microseconds(250));
  EXPECT_NEAR(static_cast<double>(got), 2'000'000 + 10'000, 2'000);
  auto& h1 = world_.host(kH1);
  EXPECT_GT(h1.counters().dropped(DropReason::QosBandwidthLimit), 5'900u);
  EXPECT_EQ(h1.portDrops().at(kVm1)[static_cast<size_t>(DropReason::QosBandwidthLimit)],
            h1.counters().dropped(DropReason::QosBandwidthLimit))
      << "charged to the port";
  EXPECT_LT(h1.counters().simulations, 5u) << "policed on the cached path";
  EXPECT_EQ(world_.host(kH2).counters().dropped(DropReason::QosBandwidthLimit), 0u);
}

TEST_F(Qos, IngressIsHeldToTheLimitOnTheReceiversHost) {
  // vm2 receives at most 4 Mbit/s (500,000 bytes/s); burst 0: 80 % of a
  // second's worth (400,000 bytes).
  build({}, {.ingress = topology::BandwidthLimit{4000, 0}});
  uint64_t got = deliver(udp(958), 4000, microseconds(500));  // 2 MB/s for 2 s
  EXPECT_NEAR(static_cast<double>(got), 1'000'000 + 400'000, 2'000);
  EXPECT_GT(world_.host(kH2).counters().dropped(DropReason::QosBandwidthLimit), 2'500u);
  EXPECT_EQ(world_.host(kH1).counters().dropped(DropReason::QosBandwidthLimit), 0u);
}

TEST_F(Qos, ALimitChangedLiveTakesOverAtOnce) {
  build({.egress = topology::BandwidthLimit{8000, 80}});
  auto frame = udp(958);
  uint64_t before = deliver(frame, 4000, microseconds(250));  // 1 s at 4 MB/s
  EXPECT_NEAR(static_cast<double>(before), 1'010'000, 2'000);
  build({.egress = topology::BandwidthLimit{16000, 80}}, {}, false, 3);
  uint64_t after = deliver(frame, 4000, microseconds(250));
  EXPECT_NEAR(static_cast<double>(after), 2'000'000, 12'000) << "twice the rate";
  build({}, {}, false, 4);
  EXPECT_EQ(deliver(frame, 100, microseconds(1)), 100'000u) << "no limit: all of it";
}

TEST_F(Qos, ASuperFrameCountsAsTheSegmentsItLeavesAs) {
  // 8 Mbit/s (1 byte per microsecond), bursts of 8 kbit (1,000 bytes).
  build({.egress = topology::BandwidthLimit{8000, 8}});
  auto& h1 = world_.host(kH1);
  std::vector<uint8_t> data(14'480);  // ten segments of 1,448
  auto super = PacketBuilder()
                   .eth(mac(0, 1), mac(0, 2))
                   .ipv4(v4("10.0.0.5"), v4("10.0.0.6"))
                   .udp(40000, 5001)
                   .payload(data)
                   .build();
  auto send = [&] {
    Outputs out;
    const Datapath::Input in[] = {
        {.in = Ingress::fromPort(kVm1), .frame = super, .segment_size = 1448}};
    h1.processBatch(in, out);
    return !out.items().empty();
  };
  const uint64_t headers = 14 + 20 + 8;
  const uint64_t wire = super.size() + 9 * headers;
  ASSERT_TRUE(send()) << "bigger than the whole burst, yet it passes";
  ASSERT_FALSE(send()) << "and the debt holds back the next";
  // Paid back after (wire - burst) microseconds, not (frame - burst).
  world_.clock.advance(microseconds(super.size() - 1000 + 100));
  EXPECT_FALSE(send()) << "the nine segments' headers count too";
  world_.clock.advance(microseconds(wire - super.size()));
  EXPECT_TRUE(send());
}

TEST_F(Qos, DscpIsMarkedOnWhatThePortSendsWithEcnKept) {
  build({.dscp = 26});
  auto r = world_.fromPort(kH1, kVm1, udp(100, /*tos=*/0x01));  // ECN ECT(1)
  ASSERT_EQ(r.size(), 1u);
  const auto& b = r[0].bytes;
  EXPECT_EQ(b[15], 26 << 2 | 0x01);
  EXPECT_EQ(packet::checksum(std::span<const uint8_t>(b).subspan(14, 20)), 0)
      << "the header checksum follows";
  // What vm2 sends back is not vm2's to mark.
  auto back = world_.fromPort(kH2, kVm2,
                              PacketBuilder()
                                  .eth(mac(0, 2), mac(0, 1))
                                  .ipv4(v4("10.0.0.6"), v4("10.0.0.5"))
                                  .udp(5001, 40000)
                                  .payload("x")
                                  .build());
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].bytes[15], 0);
}

TEST_F(Qos, DscpIsMarkedInTheTrafficClassOfIpv6) {
  build({.dscp = 46}, {}, /*v6=*/true);
  auto frame =
      PacketBuilder()
          .eth(mac(0, 1), mac(0, 2))
          .ipv6(packet::Ipv6Address::of(ip("fd00:1::5")), packet::Ipv6Address::of(ip("fd00:1::6")))
          .udp(40000, 5001)
          .payload("x")
          .build();
  frame[14] = 0x60;  // version 6, traffic class 0x03 (ECN CE), flow label 0x12345
  frame[15] = 0x31;
  frame[16] = 0x23;
  frame[17] = 0x45;
  auto r = world_.fromPort(kH1, kVm1, frame);
  ASSERT_EQ(r.size(), 1u);
  const auto& b = r[0].bytes;
  const int tc = (b[14] & 0x0f) << 4 | b[15] >> 4;
  EXPECT_EQ(tc, 46 << 2 | 0x03);
  EXPECT_EQ(b[14] >> 4, 6);
  EXPECT_EQ((b[15] & 0x0f) << 16 | b[16] << 8 | b[17], 0x12345) << "the flow label stays";
}

TEST_F(Qos, TheTraceSaysWhatHoldsThePort) {
  build({.egress = topology::BandwidthLimit{1000, 0}, .dscp = 10},
        {.ingress = topology::BandwidthLimit{2000, 500}});
  std::vector<std::string> trace;
  world_.fromPort(kH1, kVm1, udp(10), &trace);
  std::string all;
  for (const auto& line : trace) all += line + "\n";
  EXPECT_NE(all.find("QoS: egress limited to 1000 kbit/s"), std::string::npos) << all;
  EXPECT_NE(all.find("QoS: DSCP 10 marked"), std::string::npos) << all;
  EXPECT_NE(all.find("QoS: ingress limited to 2000 kbit/s, bursts of 500 kbit"), std::string::npos)
      << all;
}

TEST(Policer, HoldsTheAverageToTheRateWhateverTheFrameSizes) {
  pipeline::Policer p;
  p.configure(80'000, 800);  // 10 MB/s, bursts of 100,000 bytes
  SteadyTime t{};
  uint64_t passed = 0;
  // 65,536-byte frames every 2 ms for 10 s: 32 MB/s offered.
  for (int i = 0; i < 5000; ++i) {
    if (p.admit(65'536, t)) passed += 65'536;
    t += milliseconds(2);
  }
  EXPECT_NEAR(static_cast<double>(passed), 100'000'000, 200'000);
}

}  // namespace
}  // namespace canopy::datapath::testing
