#include "datapath/nat/lb_table.h"

#include <cstring>

#include "base/hash.h"
#include "datapath/nat/nat.h"

namespace canopy::datapath::nat {
namespace {

using packet::ipproto::kIcmp;
using packet::ipproto::kTcp;
using packet::ipproto::kUdp;

constexpr std::chrono::seconds kTcpIdle{3600};
constexpr std::chrono::seconds kUdpIdle{60};
constexpr std::chrono::seconds kClosing{10};
// A member's TIME-WAIT (Linux's: 60 s), with room.
constexpr std::chrono::seconds kLinger{75};
// Source ports given instead of a client's own: above Linux's default
// ephemeral range, so as not to meet the client's own connections.
constexpr uint16_t kRemapFirst = 61000;
constexpr uint32_t kRemapPorts = 65536 - kRemapFirst;

using packet::ipproto::kIcmpv6;

uint8_t familyOf(const packet::FlowKey& k) {
  return k.eth_type == packet::ethertype::kIpv4   ? 4
         : k.eth_type == packet::ethertype::kIpv6 ? 6
                                                  : 0;
}

IpAddress ip(uint8_t family, const LbTable::Address& a) { return IpAddress{family, a}; }

// IPv4 addresses as flow keys hold them: in the first four bytes.
LbTable::Address keyAddress(const packet::Ipv4Address& a) {
  LbTable::Address out{};
  std::memcpy(out.data(), &a, sizeof(a));
  return out;
}

}  // namespace

size_t LbTable::KeyHash::operator()(const Key& k) const noexcept {
  uint64_t words[5];
  std::memcpy(words, &k, sizeof(Key));
  uint64_t h = 0;
  for (uint64_t w : words) h = mix64(h ^ w);
  return static_cast<size_t>(h);
}

LbTable::LbTable(const Clock& clock, size_t max_entries)
    : clock_(clock), max_entries_(max_entries) {}

std::optional<LbTable::Key> LbTable::forwardKey(const packet::ParsedPacket& p,
                                                uint16_t zone) noexcept {
  const auto& k = p.key;
  const uint8_t family = familyOf(k);
  if (family == 0 || (k.ip_proto != kTcp && k.ip_proto != kUdp) || p.l4_offset == 0) {
    return std::nullopt;
  }
  return Key{.src = k.ip_src,
             .dst = k.ip_dst,
             .src_port = k.tp_src,
             .dst_port = k.tp_dst,
             .zone = zone,
             .protocol = k.ip_proto,
             .family = family};
}

LbTable::Key LbTable::replyKey(const Key& forward, const Pin& pin) const noexcept {
  // From the member, to the client (or, after a hairpin, to the VIP), ports
  // swapped.
  return Key{.src = pin.member,
             .dst = pin.hairpin ? forward.dst : forward.src,
             .src_port = pin.member_port,
             .dst_port = pin.source_port != 0 ? pin.source_port : forward.src_port,
             .zone = forward.zone,
             .protocol = forward.protocol,
             .family = forward.family};
}

std::chrono::seconds LbTable::idleTimeout(uint8_t protocol) const noexcept {
  return protocol == kTcp ? kTcpIdle : kUdpIdle;
}

std::optional<LbTarget> LbTable::pinned(const packet::ParsedPacket& p,
                                        uint16_t zone) const noexcept {
  if (pins_.empty()) return std::nullopt;
  auto key = forwardKey(p, zone);
  if (!key) return std::nullopt;
  auto it = pins_.find(*key);
  if (it == pins_.end() || it->second.expires <= clock_.now() || reopens(p, it->second)) {
    return std::nullopt;
  }
  return LbTarget{ip(key->family, it->second.member), it->second.member_port};
}

bool LbTable::reopens(const packet::ParsedPacket& p, const Pin& pin) noexcept {
  // A bare SYN on a connection that was closing is a new connection from a
  // reused port: balanced afresh, not sent after the old one's member.
  constexpr uint8_t kSynAck = packet::TcpHeader::kSyn | packet::TcpHeader::kAck;
  return pin.closing && p.key.ip_proto == kTcp &&
         (p.key.tcp_flags & kSynAck) == packet::TcpHeader::kSyn;
}

bool LbTable::room() noexcept {
  if (pins_.size() + replies_.size() < max_entries_) return true;
  sweep(pins_.size());
  // Then what only guards against reuse: the table is for live connections.
  if (pins_.size() + replies_.size() >= max_entries_) sweepLingering(clock_.now(), true);
  return pins_.size() + replies_.size() < max_entries_;
}

bool LbTable::sameConnection(const Reply& reply, const Key& forward) noexcept {
  return reply.client == forward.src && reply.client_port == forward.src_port &&
         reply.vip == forward.dst && reply.vip_port == forward.dst_port;
}

bool LbTable::unusedSourcePort(const Key& forward, Key& reply) const noexcept {
  const uint64_t start = KeyHash{}(forward);
  for (uint32_t i = 0; i < 64; ++i) {
    reply.dst_port = static_cast<uint16_t>(kRemapFirst + (start + i * 7919u) % kRemapPorts);
    if (!replies_.contains(reply)) return true;
  }
  return false;
}

void LbTable::sweepLingering(SteadyTime now, bool all) noexcept {
  std::erase_if(replies_, [&](const auto& entry) {
    return entry.second.lingering && (all || entry.second.expires <= now);
  });
}

void LbTable::count(const Pin& pin, int delta) noexcept {
  auto key = std::tuple{pin.listener, pin.member, pin.member_port};
  if (delta > 0) {
    ++open_[key];
    ++open_by_listener_[pin.listener];
    ++counters_[pin.listener].total;
    return;
  }
  auto it = open_.find(key);
  if (it == open_.end()) return;
  if (--it->second == 0) open_.erase(it);
  auto l = open_by_listener_.find(pin.listener);
  if (l != open_by_listener_.end() && --l->second == 0) open_by_listener_.erase(l);
}

void LbTable::erase(std::unordered_map<Key, Pin, KeyHash>::iterator it) noexcept {
  if (file_ != nullptr) file_->release(it->second.slot);
  if (!it->second.closing) count(it->second, -1);
  if (it->second.translated) {
    // Its reply, unless a newer connection of the same tuple took it over;
    // a TCP one lingers for the member's TIME-WAIT.
    auto r = replies_.find(replyKey(it->first, it->second));
    if (r != replies_.end() && sameConnection(r->second, it->first) && !r->second.lingering) {
      if (it->first.protocol == kTcp) {
        r->second.lingering = true;
        r->second.expires = std::max(r->second.expires, clock_.now() + kLinger);
      } else {
        replies_.erase(r);
      }
    }
  }
  pins_.erase(it);
}

DropReason LbTable::pin(const packet::ParsedPacket& p, uint16_t zone, LbTarget member,
                        uint64_t listener) noexcept {
  auto key = forwardKey(p, zone);
  if (!key) return DropReason::LbNotTcpOrUdp;
  if (member.address.family != key->family) return DropReason::LbFamilyMismatch;
  auto it = pins_.find(*key);
  if (it != pins_.end()) erase(it);
  if (!room()) return DropReason::LbTableFull;
  Pin pin{.member = member.address.bytes,
          .member_port = member.port,
          .listener = listener,
          .expires = clock_.now() + idleTimeout(key->protocol)};
  count(pin, +1);
  auto made = pins_.emplace(*key, pin).first;
  persist(made->first, made->second);
  return DropReason::None;
}

DropReason LbTable::translate(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                              uint16_t zone, LbTarget member, bool hairpin, uint64_t listener,
                              uint32_t limit) noexcept {
  auto key = forwardKey(p, zone);
  if (!key) return DropReason::LbNotTcpOrUdp;
  if (member.address.family != key->family) return DropReason::LbFamilyMismatch;
  SteadyTime now = clock_.now();
  const Address& address = member.address.bytes;
  auto it = pins_.find(*key);
  if (it != pins_.end() && (it->second.member != address || it->second.member_port != member.port ||
                            it->second.hairpin != hairpin || it->second.listener != listener ||
                            it->second.expires <= now || reopens(p, it->second))) {
    erase(it);
    it = pins_.end();
  }
  if (it == pins_.end()) {
    if (!room()) return DropReason::LbTableFull;
    if (limit != 0) {
      auto open = open_by_listener_.find(listener);
      if (open != open_by_listener_.end() && open->second >= limit) {
        return DropReason::LbConnectionLimit;
      }
    }
    Pin pin{
        .member = address, .member_port = member.port, .hairpin = hairpin, .listener = listener};
    count(pin, +1);
    it = pins_.emplace(*key, pin).first;
  }
  Pin& pin = it->second;
  Key reply = replyKey(*key, pin);
  if (!pin.translated) {
    if (replies_.size() + pins_.size() > max_entries_) {
      erase(it);
      return DropReason::LbTableFull;
    }
    if (auto used = replies_.find(reply);
        used != replies_.end() && !sameConnection(used->second, *key)) {
      // Another connection's tuple at the member, live or in its TIME-WAIT.
      if (!unusedSourcePort(*key, reply)) {
        erase(it);
        return DropReason::LbTableFull;
      }
      pin.source_port = reply.dst_port;
    }
    replies_[reply] = Reply{.listener = listener,
                            .vip = key->dst,
                            .vip_port = key->dst_port,
                            .client = key->src,
                            .client_port = key->src_port};
    pin.translated = true;
  }
  const bool ends = key->protocol == kTcp &&
                    (p.key.tcp_flags & (packet::TcpHeader::kFin | packet::TcpHeader::kRst)) != 0;
  if (ends && !pin.closing) {
    count(pin, -1);
    pin.closing = true;
  }
  const SteadyTime before = pin.expires;
  pin.expires = now + (pin.closing ? kClosing : idleTimeout(key->protocol));
  replies_[reply].expires = pin.expires;
  // The record follows a new pin, a change, or its expiry by a second.
  if (pin.slot == persist::kNoSlot || pin.expires < before ||
      pin.expires - pin.persisted >= std::chrono::seconds(1)) {
    persist(it->first, pin);
  }
  counters_[listener].bytes_in += p.l3_end - p.l3_offset;

  if (hairpin || pin.source_port != 0) {
    const IpAddress source = ip(key->family, hairpin ? key->dst : key->src);
    auto port = pin.source_port != 0 ? std::optional<uint16_t>(pin.source_port) : std::nullopt;
    if (auto why = rewriteIp(frame, p, Side::Source, source, port); why != DropReason::None) {
      return why;
    }
  }
  return rewriteIp(frame, p, Side::Destination, member.address, member.port);
}

bool LbTable::import(const Key& forward, LbTarget member, uint64_t listener,
                     bool closing) noexcept {
  if ((forward.family != 4 && forward.family != 6) || member.address.family != forward.family ||
      (forward.protocol != kTcp && forward.protocol != kUdp)) {
    return false;
  }
  const SteadyTime now = clock_.now();
  if (auto it = pins_.find(forward); it != pins_.end() && it->second.expires > now) {
    return it->second.member == member.address.bytes && it->second.member_port == member.port;
  }
  if (!room() || replies_.size() + pins_.size() + 1 > max_entries_) return false;
  Pin pin{.member = member.address.bytes, .member_port = member.port, .listener = listener};
  const Key reply = replyKey(forward, pin);
  if (auto used = replies_.find(reply);
      used != replies_.end() && !sameConnection(used->second, forward) && !used->second.lingering) {
    return false;
  }
  count(pin, +1);
  if (closing) {
    count(pin, -1);
    pin.closing = true;
  }
  pin.translated = true;
  pin.expires = now + (pin.closing ? kClosing : idleTimeout(forward.protocol));
  auto it = pins_.insert_or_assign(forward, pin).first;
  replies_[reply] = Reply{.listener = listener,
                          .vip = forward.dst,
                          .vip_port = forward.dst_port,
                          .client = forward.src,
                          .client_port = forward.src_port,
                          .expires = pin.expires};
  persist(it->first, it->second);
  return true;
}

void LbTable::close(const Key& forward) noexcept {
  auto it = pins_.find(forward);
  if (it == pins_.end() || it->second.closing) return;
  Pin& pin = it->second;
  count(pin, -1);
  pin.closing = true;
  pin.expires = clock_.now() + kClosing;
  if (auto reply = replies_.find(replyKey(forward, pin)); reply != replies_.end()) {
    reply->second.expires = pin.expires;
  }
  persist(it->first, pin);
}

bool LbTable::keepAlive(const Key& forward, bool used, uint64_t bytes_in,
                        uint64_t bytes_out) noexcept {
  auto it = pins_.find(forward);
  const SteadyTime now = clock_.now();
  if (it == pins_.end() || it->second.expires <= now) return false;
  Pin& pin = it->second;
  auto& counters = counters_[pin.listener];
  counters.bytes_in += bytes_in;
  counters.bytes_out += bytes_out;
  if (!used) return true;
  const SteadyTime before = pin.expires;
  pin.expires = now + (pin.closing ? kClosing : idleTimeout(forward.protocol));
  if (auto reply = replies_.find(replyKey(forward, pin)); reply != replies_.end()) {
    reply->second.expires = pin.expires;
  }
  if (pin.expires < before || pin.expires - pin.persisted >= std::chrono::seconds(1)) {
    persist(it->first, pin);
  }
  return true;
}

bool LbTable::translateReply(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                             uint16_t zone) noexcept {
  const uint8_t family = familyOf(p.key);
  if (replies_.empty() || family == 0) return false;
  Key key{.zone = zone, .family = family};
  if ((p.key.ip_proto == kTcp || p.key.ip_proto == kUdp) && p.l4_offset != 0) {
    key.src = p.key.ip_src;
    key.dst = p.key.ip_dst;
    key.src_port = p.key.tp_src;
    key.dst_port = p.key.tp_dst;
    key.protocol = p.key.ip_proto;
  } else if (family == 4 ? p.key.ip_proto == kIcmp && isIcmpv4Error(p.key.tp_src)
                         : p.key.ip_proto == kIcmpv6 && isIcmpv6Error(p.key.tp_src)) {
    // An error about the forward packet as translated: the quote's
    // destination is the member.
    IcmpQuote q;
    if (icmpQuote(frame, p, q) != DropReason::None || q.later_fragment ||
        (q.protocol != kTcp && q.protocol != kUdp)) {
      return false;
    }
    if (family == 4) {
      packet::Ipv4Header quoted;
      if (!packet::load(frame, q.ip_offset, quoted)) return false;
      key.src = keyAddress(quoted.dst);
      key.dst = keyAddress(quoted.src);
    } else {
      packet::Ipv6Header quoted;
      if (!packet::load(frame, q.ip_offset, quoted)) return false;
      key.src = quoted.dst.bytes;
      key.dst = quoted.src.bytes;
    }
    key.src_port = static_cast<uint16_t>(frame[q.l4_offset + 2] << 8 | frame[q.l4_offset + 3]);
    key.dst_port = static_cast<uint16_t>(frame[q.l4_offset] << 8 | frame[q.l4_offset + 1]);
    key.protocol = q.protocol;
  } else {
    return false;
  }
  auto it = replies_.find(key);
  if (it == replies_.end()) return false;
  SteadyTime now = clock_.now();
  if (it->second.expires <= now) return false;  // swept with its pin
  const Reply r = it->second;
  counters_[r.listener].bytes_out += p.l3_end - p.l3_offset;
  // The source becomes the VIP with the listener's port (for an error,
  // the quote's destination); after a hairpin, the destination the client.
  // The rewrites read the addresses they replace from the frame, so the
  // first one leaves `p` good for the second.
  if (rewriteIp(frame, p, Side::Source, ip(family, r.vip), r.vip_port) != DropReason::None) {
    return false;
  }
  // (After a hairpin the reply is to the VIP; after a new source port, to
  // that port: the client's own back.)
  const bool hairpin = key.dst == r.vip;
  if ((hairpin || key.dst_port != r.client_port) &&
      rewriteIp(frame, p, Side::Destination, ip(family, hairpin ? r.client : key.dst),
                r.client_port) != DropReason::None) {
    return false;
  }
  return true;
}

size_t LbTable::connections(uint64_t listener, const LbTarget& member) const noexcept {
  auto it = open_.find({listener, member.address.bytes, member.port});
  return it == open_.end() ? 0 : it->second;
}

std::map<uint64_t, LbTable::Counters> LbTable::counters() const {
  std::map<uint64_t, Counters> out;
  for (const auto& [listener, c] : counters_) out[listener] = c;
  for (const auto& [listener, open] : open_by_listener_) out[listener].active = open;
  return out;
}

struct LbTable::Persisted {
  Key forward;
  Address member{};
  uint16_t member_port = 0;
  uint8_t flags = 0;  // 1 hairpin, 2 closing, 4 translated
  uint8_t pad = 0;
  uint16_t source_port = 0;  // 0: the client's own (older records: 0)
  uint8_t reserved[2] = {};
  uint64_t listener = 0;
  int64_t expires_ns = 0;  // steady clock (the same for every process of a boot)
};
namespace {
constexpr uint8_t kLbRecordVersion = 1;
}  // namespace

void LbTable::persist(const Key& key, Pin& pin) noexcept {
  if (file_ == nullptr) return;
  static_assert(std::is_trivially_copyable_v<Persisted> && sizeof(Persisted) == 80);
  if (pin.slot == persist::kNoSlot) pin.slot = file_->allocate();
  Persisted r;
  r.forward = key;
  r.member = pin.member;
  r.member_port = pin.member_port;
  r.flags = static_cast<uint8_t>((pin.hairpin ? 1 : 0) | (pin.closing ? 2 : 0) |
                                 (pin.translated ? 4 : 0));
  r.source_port = pin.source_port;
  r.listener = pin.listener;
  r.expires_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(pin.expires.time_since_epoch()).count();
  file_->write(pin.slot, persist::RecordKind::LbPin, kLbRecordVersion, r);
  pin.persisted = pin.expires;
}

bool LbTable::adopt(const persist::Record& record) noexcept {
  Persisted r;
  if (record.kind != persist::RecordKind::LbPin || record.version != kLbRecordVersion ||
      !record.as(r)) {
    return false;
  }
  // Bytes from a file: checked as any input.
  const Key& key = r.forward;
  if ((key.family != 4 && key.family != 6) || (key.protocol != kTcp && key.protocol != kUdp) ||
      r.flags > 7) {
    return false;
  }
  const SteadyTime expires{
      std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(r.expires_ns))};
  bool taken = false;
  if (expires > clock_.now() && pins_.count(key) == 0 &&
      pins_.size() + replies_.size() + 2 <= max_entries_) {
    Pin pin{.member = r.member,
            .member_port = r.member_port,
            .hairpin = (r.flags & 1) != 0,
            .closing = (r.flags & 2) != 0,
            .translated = (r.flags & 4) != 0,
            .source_port = r.source_port,
            .listener = r.listener,
            .expires = expires,
            .slot = record.slot,
            .persisted = expires};
    try {
      if (pin.translated) {
        replies_[replyKey(key, pin)] = Reply{.listener = pin.listener,
                                             .vip = key.dst,
                                             .vip_port = key.dst_port,
                                             .client = key.src,
                                             .client_port = key.src_port,
                                             .expires = expires};
      }
      pins_.emplace(key, pin);
      if (!pin.closing) {
        count(pin, +1);
        --counters_[pin.listener].total;  // counted by the process that made it
      }
      taken = true;
    } catch (const std::bad_alloc&) {
      if (pin.translated) replies_.erase(replyKey(key, pin));
    }
  }
  if (!taken && file_ != nullptr) file_->release(record.slot);
  return true;
}

size_t LbTable::sweep(size_t budget) noexcept {
  SteadyTime now = clock_.now();
  size_t freed = 0;
  sweepLingering(now, false);
  for (auto it = pins_.begin(); it != pins_.end() && freed < budget;) {
    auto next = std::next(it);
    if (it->second.expires <= now) {
      erase(it);
      ++freed;
    }
    it = next;
  }
  return freed;
}

}  // namespace canopy::datapath::nat
