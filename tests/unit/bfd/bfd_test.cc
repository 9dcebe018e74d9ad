// BFD (RFC 5880) on a fake clock: two sessions joined by a link that can be
// cut come up through Down, Init and Up; move to their fast rates with a
// Poll sequence; go Down within the detection time when the link is cut
// and Up again when it is back; follow the peer's AdminDown; a restarted
// end resumes without its peer seeing it go. And the wire format: each of
// RFC 5880 6.8.6's reasons to discard a packet.

#include "bfd/bfd.h"

#include <gtest/gtest.h>

#include <random>

namespace canopy::bfd {
namespace {

using namespace std::chrono_literals;

class Link : public ::testing::Test {
 protected:
  // Runs both ends until `until` (fake time), in 1 ms steps, delivering
  // what each sends to the other unless the link is cut. Returns the
  // packets a sent.
  int run(std::chrono::milliseconds span) {
    int sent = 0;
    auto end = clock.now() + span;
    while (clock.now() < end) {
      for (int side = 0; side < 2; ++side) {
        Session& from = side == 0 ? a : b;
        Session& to = side == 0 ? b : a;
        while (auto p = from.transmit(clock.now(), jitter(rng))) {
          if (side == 0) ++sent;
          // Through the wire format, as the agent sends it.
          auto bytes = encode(*p);
          Parsed got = parse(bytes);
          EXPECT_EQ(got.refusal, Refusal::None);
          EXPECT_EQ(got.packet, *p);
          if (!cut) to.receive(got.packet, clock.now());
        }
      }
      clock.advance(1ms);
    }
    return sent;
  }
  // Runs until both ends are `state`; how long it took (or `limit`).
  std::chrono::milliseconds until(State state, std::chrono::milliseconds limit) {
    auto start = clock.now();
    while (!(a.state() == state && b.state() == state) && clock.now() - start < limit) run(1ms);
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock.now() - start);
  }

  FakeClock clock;
  std::mt19937 rng{7};
  std::uniform_real_distribution<double> jitter{0.0, 1.0};
  Timing timing{.desired_min_tx = 200ms, .required_min_rx = 200ms, .detect_mult = 3};
  Session a{0x1111, timing};
  Session b{0x2222, timing};
  bool cut = false;
};

TEST_F(Link, ComesUpThroughInitAndThenSendsAtItsFastRate) {
  EXPECT_EQ(a.state(), State::Down);
  auto took = until(State::Up, 5000ms);
  EXPECT_LT(took, 2500ms) << "two slow (1 s) packets at most";
  EXPECT_EQ(a.remoteDiscriminator(), 0x2222u);
  EXPECT_EQ(b.remoteDiscriminator(), 0x1111u);
  // Once Up, 200 ms with jitter: 5 to 7 packets a second, not 1.
  run(1000ms);
  int sent = run(2000ms);
  EXPECT_GE(sent, 10);
  EXPECT_LE(sent, 14);
  EXPECT_EQ(a.detectionTime(), 600ms);
}

TEST_F(Link, GoesDownWithinTheDetectionTimeWhenCutAndUpWhenBack) {
  until(State::Up, 5000ms);
  run(1000ms);
  cut = true;
  auto took = until(State::Down, 5000ms);
  EXPECT_LE(took, 610ms);
  EXPECT_GE(took, 400ms);
  EXPECT_EQ(a.diagnostic(), Diagnostic::DetectionTimeExpired);
  cut = false;
  EXPECT_LT(until(State::Up, 5000ms), 3000ms);
  EXPECT_EQ(a.diagnostic(), Diagnostic::None);
}

TEST_F(Link, FollowsThePeersAdminDown) {
  until(State::Up, 5000ms);
  Packet down{.state = State::AdminDown,
              .my_discriminator = 0x2222,
              .your_discriminator = 0x1111,
              .desired_min_tx = 200ms,
              .required_min_rx = 200ms};
  a.receive(down, clock.now());
  EXPECT_EQ(a.state(), State::Down);
  EXPECT_EQ(a.diagnostic(), Diagnostic::NeighborSignaledDown);
}

TEST_F(Link, ARestartedEndResumesAndItsPeerSeesNoGap) {
  until(State::Up, 5000ms);
  run(1000ms);
  // a's process ends; 300 ms later (within b's 600 ms) its successor goes
  // on from what it saved.
  Session saved = a;
  cut = true;
  run(300ms);
  cut = false;
  a = Session(0x1111, timing);
  a.resume(saved.state(), saved.remoteDiscriminator(), saved.remoteMinRx(), saved.remoteMinTx(),
           saved.remoteMult(), saved.since(), clock.now());
  for (int i = 0; i < 3000; ++i) {
    run(1ms);
    ASSERT_EQ(b.state(), State::Up) << "after " << i << " ms";
    ASSERT_EQ(a.state(), State::Up) << "after " << i << " ms";
  }
}

TEST_F(Link, AFreshEndAfterARestartBringsTheSessionDownAndUpAgain) {
  until(State::Up, 5000ms);
  run(1000ms);
  SteadyTime up_since = b.since();
  a = Session(0x3333, timing);  // a successor that kept nothing
  Packet first = *a.transmit(clock.now(), 0);
  b.receive(first, clock.now());
  EXPECT_EQ(b.state(), State::Down) << "the peer's Down ends the session";
  EXPECT_EQ(b.diagnostic(), Diagnostic::NeighborSignaledDown);
  EXPECT_LT(until(State::Up, 5000ms), 3000ms);
  EXPECT_GT(b.since(), up_since);
  EXPECT_EQ(b.remoteDiscriminator(), 0x3333u);
}

std::array<uint8_t, kPacketBytes> valid() {
  return encode(Packet{.state = State::Up,
                       .my_discriminator = 1,
                       .your_discriminator = 2,
                       .desired_min_tx = 200ms,
                       .required_min_rx = 200ms});
}

TEST(Wire, EachReasonToDiscardIsNamed) {
  auto bytes = valid();
  EXPECT_EQ(parse(bytes).refusal, Refusal::None);
  EXPECT_EQ(parse(std::span(bytes).first(23)).refusal, Refusal::Truncated);
  auto b = bytes;
  b[0] = static_cast<uint8_t>(2 << 5);
  EXPECT_EQ(parse(b).refusal, Refusal::BadVersion);
  b = bytes;
  b[3] = 20;
  EXPECT_EQ(parse(b).refusal, Refusal::BadLength);
  b[3] = 40;
  EXPECT_EQ(parse(b).refusal, Refusal::Truncated);
  b = bytes;
  b[2] = 0;
  EXPECT_EQ(parse(b).refusal, Refusal::ZeroMultiplier);
  b = bytes;
  b[1] |= 0x01;
  EXPECT_EQ(parse(b).refusal, Refusal::Multipoint);
  b = bytes;
  b[1] |= 0x04;
  EXPECT_EQ(parse(b).refusal, Refusal::Authenticated);
  b = bytes;
  b[4] = b[5] = b[6] = b[7] = 0;
  EXPECT_EQ(parse(b).refusal, Refusal::ZeroMyDiscriminator);
  b = bytes;
  b[8] = b[9] = b[10] = b[11] = 0;
  EXPECT_EQ(parse(b).refusal, Refusal::NoYourDiscriminator);
  b[1] = static_cast<uint8_t>(static_cast<uint8_t>(State::Down) << 6);
  EXPECT_EQ(parse(b).refusal, Refusal::None) << "a Down packet may not know its peer yet";
}

TEST(Wire, RoundTripsEveryField) {
  Packet p{.diagnostic = Diagnostic::NeighborSignaledDown,
           .state = State::Init,
           .poll = true,
           .control_plane_independent = true,
           .detect_mult = 5,
           .my_discriminator = 0xdeadbeef,
           .your_discriminator = 0x01020304,
           .desired_min_tx = 123456us,
           .required_min_rx = 654321us,
           .required_min_echo_rx = 7us};
  auto got = parse(encode(p));
  EXPECT_EQ(got.refusal, Refusal::None);
  EXPECT_EQ(got.packet, p);
}

}  // namespace
}  // namespace canopy::bfd
