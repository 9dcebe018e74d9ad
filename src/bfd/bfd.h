#pragma once
// Bidirectional Forwarding Detection (RFC 5880, asynchronous mode, without
// authentication or demand mode; single hop over UDP, RFC 5881): the
// control packet's wire format, and one session's state machine on a
// clock, with no I/O, so that it is tested on a fake clock and fuzzed.
//
//   Session s(discriminator, {.desired_min_tx = 200ms, .required_min_rx = 200ms});
//   s.receive(*parse(bytes), now);          // a packet from the peer
//   if (auto p = s.transmit(now, jitter))   // what to send now, if due
//     send(encode(*p));
//   s.state();                              // Down, Init, Up (AdminDown)
//   s.nextEvent();                          // when to call transmit() again
//
// As RFC 5880 6.8.3 asks, a session that is not Up sends at most once a
// second; once Up it moves to its configured rates with a Poll sequence.
//
// Thread-safety: none; a session belongs to one thread.

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

#include "base/clock.h"

namespace canopy::bfd {

enum class State : uint8_t { AdminDown = 0, Down = 1, Init = 2, Up = 3 };
std::string_view stateName(State s);

enum class Diagnostic : uint8_t {
  None = 0,
  DetectionTimeExpired = 1,
  EchoFailed = 2,
  NeighborSignaledDown = 3,
  AdminDown = 7,
};

inline constexpr uint16_t kControlPort = 3784;  // RFC 5881
inline constexpr size_t kPacketBytes = 24;

struct Packet {
  Diagnostic diagnostic = Diagnostic::None;
  State state = State::Down;
  bool poll = false;
  bool final = false;
  bool control_plane_independent = false;
  uint8_t detect_mult = 3;
  uint32_t my_discriminator = 0;
  uint32_t your_discriminator = 0;
  std::chrono::microseconds desired_min_tx{0};
  std::chrono::microseconds required_min_rx{0};
  std::chrono::microseconds required_min_echo_rx{0};

  friend bool operator==(const Packet&, const Packet&) = default;
};

std::array<uint8_t, kPacketBytes> encode(const Packet& p);

// Why a received packet is discarded (RFC 5880 6.8.6's checks).
enum class Refusal : uint8_t {
  None,
  Truncated,       // fewer bytes than a control packet, or than its Length
  BadVersion,      // not version 1
  BadLength,       // Length under 24 (or over what arrived)
  ZeroMultiplier,  // Detect Mult 0
  Multipoint,      // M bit set
  ZeroMyDiscriminator,
  NoYourDiscriminator,  // Your Discriminator 0 in a state other than Down or AdminDown
  Authenticated,        // A bit: no authentication is configured
};
std::string_view refusalName(Refusal r);

// The packet in `bytes`, or why it is discarded.
struct Parsed {
  Packet packet{};
  Refusal refusal = Refusal::None;
};
Parsed parse(std::span<const uint8_t> bytes);

struct Timing {
  // The rates this end wants once Up; while not Up it sends once a second.
  std::chrono::microseconds desired_min_tx{std::chrono::milliseconds(200)};
  std::chrono::microseconds required_min_rx{std::chrono::milliseconds(200)};
  uint8_t detect_mult = 3;
};

class Session {
 public:
  Session(uint32_t local_discriminator, Timing timing);

  // A valid packet (parse()'s) from the peer, at `now`.
  void receive(const Packet& p, SteadyTime now);
  // The packet to send at `now`, if one is due (periodic, or the Final of
  // a Poll the peer sent); `jitter` in [0, 1) spreads the next one (RFC
  // 5880 6.8.7: 75-100 % of the interval). Also runs the detection timer.
  std::optional<Packet> transmit(SteadyTime now, double jitter);
  // When transmit() has something to do next (a packet or the detection
  // timer).
  SteadyTime nextEvent() const;

  State state() const { return state_; }
  Diagnostic diagnostic() const { return diagnostic_; }
  uint32_t localDiscriminator() const { return local_discriminator_; }
  uint32_t remoteDiscriminator() const { return remote_discriminator_; }
  State remoteState() const { return remote_state_; }
  // The peer is up: this session is Up.
  bool up() const { return state_ == State::Up; }
  // How long without a packet before the session goes Down (0: not
  // running).
  std::chrono::microseconds detectionTime() const;
  // When the state last changed.
  SteadyTime since() const { return since_; }

  // Continues from an earlier process's session (a restarted agent): its
  // state, discriminators and the peer's last timers, so that the peer
  // sees no gap beyond the restart's.
  void resume(State state, uint32_t remote_discriminator, std::chrono::microseconds remote_min_rx,
              std::chrono::microseconds remote_min_tx, uint8_t remote_mult, SteadyTime since,
              SteadyTime now);
  std::chrono::microseconds remoteMinRx() const { return remote_min_rx_; }
  std::chrono::microseconds remoteMinTx() const { return remote_min_tx_; }
  uint8_t remoteMult() const { return remote_mult_; }

 private:
  void setState(State s, Diagnostic d, SteadyTime now);
  std::chrono::microseconds txInterval() const;
  std::chrono::microseconds desiredMinTx() const;
  Packet packet(bool final) const;

  uint32_t local_discriminator_;
  Timing timing_;
  State state_ = State::Down;
  Diagnostic diagnostic_ = Diagnostic::None;
  uint32_t remote_discriminator_ = 0;
  State remote_state_ = State::Down;
  std::chrono::microseconds remote_min_rx_{1};  // RFC 5880: 1 until heard
  std::chrono::microseconds remote_min_tx_{0};
  uint8_t remote_mult_ = 0;
  // A Poll sequence (the fast rates announced on going Up) until answered.
  bool polling_ = false;
  bool final_due_ = false;
  SteadyTime next_tx_{};
  SteadyTime last_rx_{};
  bool detecting_ = false;
  SteadyTime since_{};
};

}  // namespace canopy::bfd
