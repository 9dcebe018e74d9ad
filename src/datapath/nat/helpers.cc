#include "datapath/nat/helpers.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <new>

#include "datapath/packet/checksum.h"

namespace canopy::datapath::nat {
namespace {

using packet::Be16;
using packet::Be32;

bool startsWithNoCase(std::span<const uint8_t> s, std::string_view word) {
  if (s.size() < word.size()) return false;
  for (size_t i = 0; i < word.size(); ++i) {
    if (std::toupper(s[i]) != word[i]) return false;
  }
  return true;
}

bool isDigit(uint8_t c) { return c >= '0' && c <= '9'; }

// A decimal number of at most `digits` digits and at most `max` at `at`.
std::optional<uint32_t> number(std::span<const uint8_t> s, size_t& at, size_t digits,
                               uint32_t max) {
  size_t start = at;
  uint32_t v = 0;
  while (at < s.size() && isDigit(s[at]) && at - start < digits) v = v * 10 + (s[at++] - '0');
  if (at == start || (at < s.size() && isDigit(s[at])) || v > max) return std::nullopt;
  return v;
}

// "h1,h2,h3,h4,p1,p2" at `at` (RFC 959's host-port).
std::optional<FtpEndpoint> hostPort(std::span<const uint8_t> s, size_t at, FtpForm form) {
  FtpEndpoint e{.form = form, .begin = at};
  uint32_t v[6];
  for (size_t i = 0; i < 6; ++i) {
    if (i != 0) {
      if (at >= s.size() || s[at] != ',') return std::nullopt;
      ++at;
    }
    auto n = number(s, at, 3, 255);
    if (!n) return std::nullopt;
    v[i] = *n;
  }
  e.end = at;
  e.address = {Be32::of(v[0] << 24 | v[1] << 16 | v[2] << 8 | v[3])};
  e.port = static_cast<uint16_t>(v[4] << 8 | v[5]);
  return e;
}

// The line goes on to its end within the segment.
bool lineEnds(std::span<const uint8_t> s, size_t at) {
  return std::find(s.begin() + static_cast<std::ptrdiff_t>(at), s.end(), '\n') != s.end();
}

// "|1|a.b.c.d|port|" at `at` (RFC 2428's EPRT argument).
std::optional<FtpEndpoint> extendedAddress(std::span<const uint8_t> s, size_t at) {
  if (at >= s.size() || s[at] < 33 || s[at] > 126) return std::nullopt;
  FtpEndpoint e{.form = FtpForm::Eprt, .begin = at, .delimiter = static_cast<char>(s[at])};
  uint8_t d = s[at++];
  if (at + 2 > s.size() || s[at] != '1' || s[at + 1] != d) return std::nullopt;  // IPv4 only
  at += 2;
  uint32_t a = 0;
  for (size_t i = 0; i < 4; ++i) {
    if (i != 0) {
      if (at >= s.size() || s[at] != '.') return std::nullopt;
      ++at;
    }
    auto n = number(s, at, 3, 255);
    if (!n) return std::nullopt;
    a = a << 8 | *n;
  }
  if (at >= s.size() || s[at++] != d) return std::nullopt;
  auto port = number(s, at, 5, 65535);
  if (!port || at >= s.size() || s[at++] != d) return std::nullopt;
  e.end = at;
  e.address = {Be32::of(a)};
  e.port = static_cast<uint16_t>(*port);
  return e;
}

std::string dotted(packet::Ipv4Address a, char separator) {
  uint32_t h = a.host();
  return std::to_string(h >> 24) + separator + std::to_string(h >> 16 & 0xff) + separator +
         std::to_string(h >> 8 & 0xff) + separator + std::to_string(h & 0xff);
}

// seq-space comparison: a comes after b.
bool after(uint32_t a, uint32_t b) { return static_cast<int32_t>(b - a) < 0; }

uint32_t load32(std::span<const uint8_t> s, size_t at) {
  return uint32_t{s[at]} << 24 | uint32_t{s[at + 1]} << 16 | uint32_t{s[at + 2]} << 8 | s[at + 3];
}

void store32(std::span<uint8_t> s, size_t at, uint32_t v) {
  s[at] = static_cast<uint8_t>(v >> 24);
  s[at + 1] = static_cast<uint8_t>(v >> 16);
  s[at + 2] = static_cast<uint8_t>(v >> 8);
  s[at + 3] = static_cast<uint8_t>(v);
}

uint16_t fold(uint32_t sum) {
  while ((sum >> 16) != 0) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

// Replaces the 32-bit word at `at` of a TCP segment whose header starts at
// `tcp`, updating its checksum (RFC 1624) over the 16-bit words the field
// touches: an option (a SACK edge) need not start on an even offset.
void replace32(std::span<uint8_t> frame, size_t tcp, size_t at, uint32_t value) {
  if (load32(frame, at) == value) return;
  // The words from the one the field starts in, zero past the frame's end
  // (as the checksum pads an odd last byte).
  size_t begin = tcp + ((at - tcp) & ~size_t{1});
  auto words = [&] {
    std::array<uint8_t, 6> w{};
    for (size_t i = 0; i < w.size() && begin + i < frame.size(); ++i) w[i] = frame[begin + i];
    return fold(packet::sumWords(w));
  };
  uint16_t before = words();
  store32(frame, at, value);
  uint16_t after = words();
  uint16_t sum = static_cast<uint16_t>(frame[tcp + 16] << 8 | frame[tcp + 17]);
  sum = static_cast<uint16_t>(
      ~fold(uint32_t{static_cast<uint16_t>(~sum)} + static_cast<uint16_t>(~before) + after));
  frame[tcp + 16] = static_cast<uint8_t>(sum >> 8);
  frame[tcp + 17] = static_cast<uint8_t>(sum);
}

bool isTcp4(const packet::ParsedPacket& p) {
  return p.key.eth_type == packet::ethertype::kIpv4 && p.key.ip_proto == packet::ipproto::kTcp &&
         p.l4_offset != 0 && p.payload_offset != 0;
}

}  // namespace

PayloadEdit FtpEndpoint::replacedBy(packet::Ipv4Address to, uint16_t to_port) const {
  PayloadEdit e{.offset = begin, .length = end - begin};
  switch (form) {
    case FtpForm::Port:
    case FtpForm::Passive:
      e.text = dotted(to, ',') + "," + std::to_string(to_port >> 8) + "," +
               std::to_string(to_port & 0xff);
      break;
    case FtpForm::Eprt:
      e.text = std::string(1, delimiter) + "1" + delimiter + dotted(to, '.') + delimiter +
               std::to_string(to_port) + delimiter;
      break;
  }
  return e;
}

std::optional<FtpEndpoint> findFtpEndpoint(std::span<const uint8_t> s) noexcept {
  auto skipSpaces = [&](size_t at) {
    while (at < s.size() && s[at] == ' ') ++at;
    return at;
  };
  std::optional<FtpEndpoint> e;
  if (startsWithNoCase(s, "PORT ")) {
    e = hostPort(s, skipSpaces(5), FtpForm::Port);
  } else if (startsWithNoCase(s, "EPRT ")) {
    e = extendedAddress(s, skipSpaces(5));
  } else if (startsWithNoCase(s, "227 ")) {
    // The numbers follow some text ("Entering Passive Mode (").
    size_t at = 4;
    while (at < s.size() && !isDigit(s[at]) && s[at] != '\n') ++at;
    if (at < s.size() && isDigit(s[at])) e = hostPort(s, at, FtpForm::Passive);
  }
  if (!e || !lineEnds(s, e->end)) return std::nullopt;
  return e;
}

void SeqAdjust::record(uint32_t seq, int32_t delta) noexcept {
  if (offset_before == offset_after || after(seq, correction_pos)) {
    correction_pos = seq;
    offset_before = offset_after;
    offset_after += delta;
  }
}

int32_t SeqAdjust::forSeq(uint32_t seq) const noexcept {
  return after(seq, correction_pos) ? offset_after : offset_before;
}

int32_t SeqAdjust::forAck(uint32_t ack) const noexcept {
  return after(ack - static_cast<uint32_t>(offset_before), correction_pos) ? offset_after
                                                                           : offset_before;
}

void adjustSeq(std::span<uint8_t> frame, const packet::ParsedPacket& p,
               const SeqAdjust& adjust) noexcept {
  if (!isTcp4(p) || !adjust.active()) return;
  size_t tcp = p.l4_offset;
  uint32_t seq = load32(frame, tcp + 4);
  replace32(frame, tcp, tcp + 4, seq + static_cast<uint32_t>(adjust.forSeq(seq)));
}

void adjustAck(std::span<uint8_t> frame, const packet::ParsedPacket& p,
               const SeqAdjust& adjust) noexcept {
  if (!isTcp4(p) || !adjust.active()) return;
  size_t tcp = p.l4_offset;
  if ((frame[tcp + 13] & packet::TcpHeader::kAck) == 0) return;
  uint32_t ack = load32(frame, tcp + 8);
  replace32(frame, tcp, tcp + 8, ack - static_cast<uint32_t>(adjust.forAck(ack)));
  // SACK blocks (RFC 2018) acknowledge the same bytes.
  size_t at = tcp + 20, end = p.payload_offset;
  while (at < end) {
    uint8_t kind = frame[at];
    if (kind == 0) break;
    if (kind == 1) {
      ++at;
      continue;
    }
    if (at + 1 >= end || frame[at + 1] < 2 || at + frame[at + 1] > end) break;
    size_t length = frame[at + 1];
    if (kind == 5) {
      for (size_t edge = at + 2; edge + 4 <= at + length; edge += 4) {
        uint32_t v = load32(frame, edge);
        replace32(frame, tcp, edge, v - static_cast<uint32_t>(adjust.forAck(v)));
      }
    }
    at += length;
  }
}

DropReason applyEdit(std::vector<uint8_t>& frame, const packet::ParsedPacket& p,
                     const PayloadEdit& edit) {
  if (!isTcp4(p) || p.l3_end > frame.size()) return DropReason::NatHelperEdit;
  size_t payload = p.payload_offset;
  size_t payload_length = p.l3_end - payload;
  if (edit.offset > payload_length || edit.length > payload_length - edit.offset) {
    return DropReason::NatHelperEdit;
  }
  size_t ip_length = p.l3_end - p.l3_offset + edit.text.size() - edit.length;
  if (ip_length > 65535) return DropReason::NatHelperEdit;
  // Ethernet padding after the packet goes; the packet's tail moves.
  frame.resize(p.l3_end);
  auto at = frame.begin() + static_cast<std::ptrdiff_t>(payload + edit.offset);
  at = frame.erase(at, at + static_cast<std::ptrdiff_t>(edit.length));
  frame.insert(at, edit.text.begin(), edit.text.end());

  std::span<uint8_t> bytes(frame);
  size_t ip = p.l3_offset;
  size_t header = static_cast<size_t>(bytes[ip] & 0x0f) * 4;
  bytes[ip + 2] = static_cast<uint8_t>(ip_length >> 8);
  bytes[ip + 3] = static_cast<uint8_t>(ip_length);
  bytes[ip + 10] = bytes[ip + 11] = 0;
  uint16_t ip_sum = packet::checksum(bytes.subspan(ip, header));
  bytes[ip + 10] = static_cast<uint8_t>(ip_sum >> 8);
  bytes[ip + 11] = static_cast<uint8_t>(ip_sum);

  size_t tcp = p.l4_offset;
  auto segment = bytes.subspan(tcp, ip + ip_length - tcp);
  segment[16] = segment[17] = 0;
  packet::Ipv4Address src, dst;
  std::memcpy(&src, &bytes[ip + 12], 4);
  std::memcpy(&dst, &bytes[ip + 16], 4);
  uint32_t sum = packet::pseudoHeaderSum(src, dst, packet::ipproto::kTcp,
                                         static_cast<uint32_t>(segment.size()));
  uint16_t tcp_sum = packet::finish(packet::sumWords(segment, sum));
  segment[16] = static_cast<uint8_t>(tcp_sum >> 8);
  segment[17] = static_cast<uint8_t>(tcp_sum);
  return DropReason::None;
}

DropReason FtpFloatingTable::outbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                      packet::Ipv4Address inside, packet::Ipv4Address outside,
                                      PayloadEdit& edit) noexcept {
  if (!isTcp4(p)) return DropReason::None;
  const auto& k = p.key;
  packet::Ipv4Address remote;
  std::memcpy(&remote, k.ip_dst.data(), 4);
  Key key{outside.host(), remote.host(), uint32_t{k.tp_src} << 16 | k.tp_dst};
  SteadyTime now = clock_.now();
  auto it = entries_.find(key);
  if (it != entries_.end() && now >= it->second.expires) {
    entries_.erase(it);
    it = entries_.end();
  }
  size_t tcp = p.l4_offset;
  uint32_t seq = load32(frame, tcp + 4);
  auto payload =
      std::span<const uint8_t>(frame).subspan(p.payload_offset, p.l3_end - p.payload_offset);
  if (auto e = findFtpEndpoint(payload); e && e->address == inside) {
    if (it == entries_.end()) {
      if (entries_.size() >= max_entries_) sweep();
      if (entries_.size() >= max_entries_) return DropReason::NatTableFull;
      try {
        it = entries_.try_emplace(key).first;
      } catch (const std::bad_alloc&) {
        return DropReason::NatTableFull;
      }
    }
    edit = e->replacedBy(outside, e->port);
    it->second.adjust.record(seq, edit.delta());
  }
  if (it == entries_.end()) return DropReason::None;
  it->second.expires = now + idle_;
  adjustSeq(frame, p, it->second.adjust);
  return DropReason::None;
}

void FtpFloatingTable::inbound(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept {
  if (!isTcp4(p) || entries_.empty()) return;
  const auto& k = p.key;
  packet::Ipv4Address outside, remote;
  std::memcpy(&outside, k.ip_dst.data(), 4);
  std::memcpy(&remote, k.ip_src.data(), 4);
  auto it = entries_.find(Key{outside.host(), remote.host(), uint32_t{k.tp_dst} << 16 | k.tp_src});
  if (it == entries_.end()) return;
  it->second.expires = clock_.now() + idle_;
  adjustAck(frame, p, it->second.adjust);
}

size_t FtpFloatingTable::sweep(size_t budget) noexcept {
  SteadyTime now = clock_.now();
  size_t freed = 0;
  for (auto it = entries_.begin(); it != entries_.end() && freed < budget;) {
    if (now >= it->second.expires) {
      it = entries_.erase(it);
      ++freed;
    } else {
      ++it;
    }
  }
  return freed;
}

}  // namespace canopy::datapath::nat
