#include "bfd/bfd.h"

#include <algorithm>

namespace canopy::bfd {
namespace {

using std::chrono::microseconds;

constexpr uint8_t kVersion = 1;
constexpr microseconds kSlowTx = std::chrono::seconds(1);  // RFC 5880 6.8.3, while not Up

void put32(uint8_t* at, uint32_t v) {
  at[0] = static_cast<uint8_t>(v >> 24);
  at[1] = static_cast<uint8_t>(v >> 16);
  at[2] = static_cast<uint8_t>(v >> 8);
  at[3] = static_cast<uint8_t>(v);
}
uint32_t get32(const uint8_t* at) {
  return uint32_t{at[0]} << 24 | uint32_t{at[1]} << 16 | uint32_t{at[2]} << 8 | at[3];
}
uint32_t micros(microseconds d) {
  return static_cast<uint32_t>(std::clamp<int64_t>(d.count(), 0, 0xffffffffLL));
}

}  // namespace

std::string_view stateName(State s) {
  switch (s) {
    case State::AdminDown:
      return "admin_down";
    case State::Down:
      return "down";
    case State::Init:
      return "init";
    case State::Up:
      return "up";
  }
  return "?";
}

std::string_view refusalName(Refusal r) {
  switch (r) {
    case Refusal::None:
      return "none";
    case Refusal::Truncated:
      return "truncated";
    case Refusal::BadVersion:
      return "bad_version";
    case Refusal::BadLength:
      return "bad_length";
    case Refusal::ZeroMultiplier:
      return "zero_multiplier";
    case Refusal::Multipoint:
      return "multipoint";
    case Refusal::ZeroMyDiscriminator:
      return "zero_my_discriminator";
    case Refusal::NoYourDiscriminator:
      return "no_your_discriminator";
    case Refusal::Authenticated:
      return "authenticated";
  }
  return "?";
}

std::array<uint8_t, kPacketBytes> encode(const Packet& p) {
  std::array<uint8_t, kPacketBytes> b{};
  b[0] = static_cast<uint8_t>(kVersion << 5 | (static_cast<uint8_t>(p.diagnostic) & 0x1f));
  b[1] = static_cast<uint8_t>(static_cast<uint8_t>(p.state) << 6 | (p.poll ? 0x20 : 0) |
                              (p.final ? 0x10 : 0) | (p.control_plane_independent ? 0x08 : 0));
  b[2] = p.detect_mult;
  b[3] = static_cast<uint8_t>(kPacketBytes);
  put32(&b[4], p.my_discriminator);
  put32(&b[8], p.your_discriminator);
  put32(&b[12], micros(p.desired_min_tx));
  put32(&b[16], micros(p.required_min_rx));
  put32(&b[20], micros(p.required_min_echo_rx));
  return b;
}

Parsed parse(std::span<const uint8_t> b) {
  Parsed out;
  if (b.size() < kPacketBytes) return {.refusal = Refusal::Truncated};
  if ((b[0] >> 5) != kVersion) return {.refusal = Refusal::BadVersion};
  if (b[3] < kPacketBytes) return {.refusal = Refusal::BadLength};
  if (b[3] > b.size()) return {.refusal = Refusal::Truncated};
  if ((b[1] & 0x04) != 0) return {.refusal = Refusal::Authenticated};
  if (b[2] == 0) return {.refusal = Refusal::ZeroMultiplier};
  if ((b[1] & 0x01) != 0) return {.refusal = Refusal::Multipoint};
  Packet& p = out.packet;
  p.diagnostic = static_cast<Diagnostic>(b[0] & 0x1f);
  p.state = static_cast<State>(b[1] >> 6);
  p.poll = (b[1] & 0x20) != 0;
  p.final = (b[1] & 0x10) != 0;
  p.control_plane_independent = (b[1] & 0x08) != 0;
  p.detect_mult = b[2];
  p.my_discriminator = get32(&b[4]);
  p.your_discriminator = get32(&b[8]);
  p.desired_min_tx = microseconds(get32(&b[12]));
  p.required_min_rx = microseconds(get32(&b[16]));
  p.required_min_echo_rx = microseconds(get32(&b[20]));
  if (p.my_discriminator == 0) return {.refusal = Refusal::ZeroMyDiscriminator};
  if (p.your_discriminator == 0 && p.state != State::Down && p.state != State::AdminDown) {
    return {.refusal = Refusal::NoYourDiscriminator};
  }
  return out;
}

Session::Session(uint32_t local_discriminator, Timing timing)
    : local_discriminator_(local_discriminator), timing_(timing) {}

microseconds Session::desiredMinTx() const {
  return state_ == State::Up ? timing_.desired_min_tx : std::max(kSlowTx, timing_.desired_min_tx);
}

microseconds Session::txInterval() const { return std::max(desiredMinTx(), remote_min_rx_); }

microseconds Session::detectionTime() const {
  if (remote_mult_ == 0) return microseconds(0);
  return remote_mult_ * std::max(timing_.required_min_rx, remote_min_tx_);
}

void Session::setState(State s, Diagnostic d, SteadyTime now) {
  if (s == state_) return;
  state_ = s;
  diagnostic_ = d;
  since_ = now;
  // The peer learns at once; Up starts a Poll sequence for the fast rates.
  polling_ = s == State::Up;
  next_tx_ = now;
}

void Session::receive(const Packet& p, SteadyTime now) {
  remote_discriminator_ = p.my_discriminator;
  remote_state_ = p.state;
  remote_min_rx_ = p.required_min_rx;
  remote_min_tx_ = p.desired_min_tx;
  remote_mult_ = p.detect_mult;
  if (p.final) polling_ = false;
  if (p.poll) final_due_ = true;
  last_rx_ = now;
  detecting_ = true;
  if (state_ == State::AdminDown) return;
  if (p.state == State::AdminDown) {
    if (state_ != State::Down) setState(State::Down, Diagnostic::NeighborSignaledDown, now);
  } else if (state_ == State::Down) {
    if (p.state == State::Down) {
      setState(State::Init, Diagnostic::None, now);
    } else if (p.state == State::Init) {
      setState(State::Up, Diagnostic::None, now);
    }
  } else if (state_ == State::Init) {
    if (p.state == State::Init || p.state == State::Up) setState(State::Up, Diagnostic::None, now);
  } else if (p.state == State::Down) {
    setState(State::Down, Diagnostic::NeighborSignaledDown, now);
  }
}

Packet Session::packet(bool final) const {
  return Packet{.diagnostic = diagnostic_,
                .state = state_,
                .poll = polling_ && !final,
                .final = final,
                .detect_mult = timing_.detect_mult,
                .my_discriminator = local_discriminator_,
                .your_discriminator = remote_discriminator_,
                .desired_min_tx = desiredMinTx(),
                .required_min_rx = timing_.required_min_rx};
}

std::optional<Packet> Session::transmit(SteadyTime now, double jitter) {
  if (detecting_ && detectionTime() > microseconds(0) && now - last_rx_ > detectionTime()) {
    // Nothing heard within the detection time (RFC 5880 6.8.4).
    detecting_ = false;
    remote_discriminator_ = 0;
    remote_mult_ = 0;
    remote_min_rx_ = microseconds(1);
    if (state_ == State::Init || state_ == State::Up) {
      setState(State::Down, Diagnostic::DetectionTimeExpired, now);
    }
  }
  if (final_due_) {
    final_due_ = false;
    return packet(/*final=*/true);
  }
  if (now < next_tx_ || remote_min_rx_ == microseconds(0)) return std::nullopt;
  // 75-100 % of the interval (RFC 5880 6.8.7; at most 90 % with a
  // multiplier of 1).
  double spread = timing_.detect_mult == 1 ? 0.15 : 0.25;
  double factor = 1.0 - spread * std::clamp(jitter, 0.0, 1.0);
  next_tx_ = now + std::chrono::duration_cast<SteadyTime::duration>(
                       std::chrono::duration<double, std::micro>(
                           static_cast<double>(txInterval().count()) * factor));
  return packet(/*final=*/false);
}

SteadyTime Session::nextEvent() const {
  SteadyTime next = next_tx_;
  if (detecting_ && detectionTime() > microseconds(0)) {
    next = std::min(next, last_rx_ + detectionTime() + microseconds(1));
  }
  return next;
}

void Session::resume(State state, uint32_t remote_discriminator, microseconds remote_min_rx,
                     microseconds remote_min_tx, uint8_t remote_mult, SteadyTime since,
                     SteadyTime now) {
  state_ = state;
  since_ = since;
  remote_discriminator_ = remote_discriminator;
  remote_min_rx_ = remote_min_rx;
  remote_min_tx_ = remote_min_tx;
  remote_mult_ = remote_mult;
  last_rx_ = now;
  detecting_ = state != State::Down && state != State::AdminDown;
  next_tx_ = now;
}

}  // namespace canopy::bfd
