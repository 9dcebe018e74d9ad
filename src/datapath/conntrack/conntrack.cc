#include "datapath/conntrack/conntrack.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <optional>
#include <vector>

namespace canopy::datapath::conntrack {
namespace {

using packet::ipproto::kIcmp;
using packet::ipproto::kIcmpv6;
using packet::ipproto::kTcp;
using packet::ipproto::kUdp;

// How far from the sender's next sequence number a RST may land and still
// be taken (window scaling is not read yet, so a generous fixed window).
constexpr uint32_t kRstWindow = 1u << 22;

bool isEcho(uint8_t protocol, uint16_t type) {
  return protocol == kIcmp ? (type == 8 || type == 0) : (type == 128 || type == 129);
}

bool isIcmpError(uint8_t protocol, uint16_t type) {
  if (protocol == kIcmp) return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
  return type >= 1 && type <= 4;
}

// An expiry moves later only in steps of this much: a connection's line is
// not written by every packet (it may be read by another worker's), at the
// price of expiring up to this much early.
constexpr auto kExpiryStep = std::chrono::seconds(1);

// The connection lives until `until`: later by at least a step, or earlier.
void expireAt(ConnEntry& c, SteadyTime until) CANOPY_REQUIRES(c.lock) {
  if (until < c.expires || until - c.expires >= kExpiryStep) c.expires = until;
}

// a <= b in sequence-number arithmetic.
bool seqBefore(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }

// The tuple of the packet an ICMP error quotes: its IP header, then at
// least 8 bytes of its L4 header (ports, or an echo's identifier).
std::optional<ConnKey> quotedKey(std::span<const uint8_t> quote, uint16_t eth_type, uint16_t zone) {
  ConnKey k;
  k.zone = zone;
  size_t l4 = 0;
  if (eth_type == packet::ethertype::kIpv4) {
    packet::Ipv4Header ip;
    if (!packet::load(quote, 0, ip) || ip.version() != 4 || ip.headerBytes() < 20) {
      return std::nullopt;
    }
    std::memcpy(k.src.data(), &ip.src, 4);
    std::memcpy(k.dst.data(), &ip.dst, 4);
    k.protocol = ip.protocol;
    k.family = 4;
    l4 = ip.headerBytes();
  } else if (eth_type == packet::ethertype::kIpv6) {
    packet::Ipv6Header ip;
    if (!packet::load(quote, 0, ip)) return std::nullopt;
    k.src = ip.src.bytes;
    k.dst = ip.dst.bytes;
    k.protocol = ip.next_header;
    k.family = 6;
    l4 = sizeof(packet::Ipv6Header);
  } else {
    return std::nullopt;
  }
  packet::UdpHeader ports;  // the first 8 bytes of TCP, UDP or ICMP
  if (!packet::load(quote, l4, ports)) return std::nullopt;
  if (k.protocol == kTcp || k.protocol == kUdp) {
    k.src_port = ports.src_port.host();
    k.dst_port = ports.dst_port.host();
  } else if (k.protocol == kIcmp || k.protocol == kIcmpv6) {
    uint8_t type = static_cast<uint8_t>(ports.src_port.host() >> 8);
    if (!isEcho(k.protocol, type)) return std::nullopt;
    k.src_port = ports.length.host();  // the echo identifier sits where UDP's length does
    k.dst_port = k.src_port;
  }
  return k;
}

}  // namespace

ConnKey ConnKey::reversed() const {
  ConnKey r = *this;
  r.src = dst;
  r.dst = src;
  r.src_port = dst_port;
  r.dst_port = src_port;
  return r;
}

size_t ConnKeyHash::operator()(const ConnKey& k) const noexcept {
  uint64_t words[sizeof(ConnKey) / 8];
  std::memcpy(words, &k, sizeof(ConnKey));
  uint64_t h = 0x9e3779b97f4a7c15ULL;
  for (uint64_t w : words) {
    h ^= w + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return static_cast<size_t>(h);
}

ConnKey connKey(const packet::ParsedPacket& p, uint16_t zone) noexcept {
  ConnKey k;
  const packet::FlowKey& f = p.key;
  bool v4 = f.eth_type == packet::ethertype::kIpv4;
  bool v6 = f.eth_type == packet::ethertype::kIpv6;
  // A later fragment is tracked with its first fragment's flow fields.
  const bool later = f.ip_frag == packet::Fragment::Later;
  if ((!v4 && !v6) || (later && !p.fragment_ports)) return k;  // untracked
  const bool l4 = p.l4_offset != 0 || later;
  k.zone = zone;
  k.protocol = f.ip_proto;
  k.src = f.ip_src;
  k.dst = f.ip_dst;
  switch (f.ip_proto) {
    case kTcp:
    case kUdp:
      if (!l4) return ConnKey{};
      k.src_port = f.tp_src;
      k.dst_port = f.tp_dst;
      break;
    case kIcmp:
    case kIcmpv6:
      if (!l4 || !isEcho(f.ip_proto, f.tp_src)) return ConnKey{};
      // The identifier on both sides, so that the reply's tuple is the
      // request's reversed.
      k.src_port = f.icmp_id;
      k.dst_port = f.icmp_id;
      break;
    default:
      break;  // other protocols: by addresses
  }
  k.family = v4 ? 4 : 6;
  return k;
}

ConnTrack::ConnTrack(const Clock& clock, Limits limits)
    : clock_(clock),
      limits_(limits),
      shard_mask_(limits.shared ? kSharedShards - 1 : 0),
      shards_(std::make_unique<Shard[]>(shard_mask_ + 1)) {}

size_t ConnTrack::shardOf(const ConnKey& key) const noexcept {
  if (shard_mask_ == 0) return 0;  // a table one thread owns
  // The same for a tuple and its reverse (both directions in one shard):
  // the two ends XORed, which is symmetric, then mixed.
  uint64_t src[2], dst[2];
  std::memcpy(src, key.src.data(), 16);
  std::memcpy(dst, key.dst.data(), 16);
  uint64_t h = src[0] ^ dst[0] ^ src[1] ^ dst[1] ^ (key.src_port ^ key.dst_port) ^
               (uint64_t{key.zone} << 32) ^ (uint64_t{key.protocol} << 48);
  h *= 0x9e3779b97f4a7c15ULL;
  return static_cast<size_t>(h >> 40) & shard_mask_;  // well-mixed high bits
}

ConnCache::ConnCache(size_t slots) : slots_(std::bit_ceil(std::max<size_t>(slots, 2))) {}

ConnCache::Slot& ConnCache::slot(const ConnKey& key) noexcept {
  // Two ways per set: the newest in the first, the one before in the second,
  // so that two connections whose keys share a set do not evict each other.
  size_t set = ConnKeyHash()(key) & (slots_.size() - 2);
  Slot& first = slots_[set];
  Slot& second = slots_[set + 1];
  if (first.entry != nullptr && first.key == key) return first;
  if (second.entry != nullptr && second.key == key) return second;
  if (first.entry != nullptr) second = std::move(first);
  return first;
}

const std::shared_ptr<ConnEntry>* ConnTrack::live(Shard& shard, const ConnKey& key,
                                                  SteadyTime now) noexcept {
  auto it = shard.table.find(key);
  if (it == shard.table.end()) return nullptr;
  ConnEntry& e = *it->second;
  {
    MaybeLock lock(e.lock, limits_.shared);
    if (now < e.expires) return &it->second;
  }
  erase(shard, e);
  return nullptr;
}

void ConnTrack::erase(Shard& shard, ConnEntry& e) noexcept {
  e.dead.store(true, std::memory_order_release);
  // The entries may hold the last references to `e`.
  ConnKey original = e.original;
  uint32_t slot = e.slot;
  shard.table.erase(original.reversed());
  shard.table.erase(original);
  connections_.fetch_sub(1, std::memory_order_relaxed);
  if (file_ != nullptr) file_->release(slot);
}

namespace {

// A connection as the state file keeps it (version 1).
struct ConnRecord {
  ConnKey original;
  int64_t expires_ns = 0;  // steady clock (the same for every process of a boot)
  uint8_t tcp = 0;
  uint8_t flags = 0;
  uint8_t reserved[6] = {};
};
static_assert(std::is_trivially_copyable_v<ConnRecord> && sizeof(ConnRecord) == 56);
constexpr uint8_t kConnRecordVersion = 1;

}  // namespace

void ConnTrack::persist(const ConnEntry& c) noexcept {
  ConnRecord r;
  r.original = c.original;
  r.expires_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(c.expires.time_since_epoch()).count();
  r.tcp = static_cast<uint8_t>(c.tcp);
  r.flags = c.flags;
  file_->write(c.slot, persist::RecordKind::Connection, kConnRecordVersion, r);
}

bool ConnTrack::adopt(const persist::Record& record) noexcept {
  ConnRecord r;
  if (record.kind != persist::RecordKind::Connection || record.version != kConnRecordVersion ||
      !record.as(r)) {
    return false;
  }
  const ConnKey& k = r.original;
  // Bytes from a file: checked as any input.
  if ((k.family != 4 && k.family != 6) || r.tcp > static_cast<uint8_t>(TcpState::Closed) ||
      (r.flags & ~(ConnEntry::kReplied | ConnEntry::kFinSeen | ConnEntry::kFinSeen << 1)) != 0) {
    return false;
  }
  const SteadyTime now = clock_.now();
  const SteadyTime expires{
      std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(r.expires_ns))};
  Shard& shard = shards_[shardOf(k)];
  MaybeLock lock(shard.mu, limits_.shared);
  if (expires <= now || size() >= limits_.max_connections || live(shard, k, now) != nullptr ||
      live(shard, k.reversed(), now) != nullptr) {
    if (file_ != nullptr) file_->release(record.slot);  // over, or there already
    return true;
  }
  auto e = std::make_shared<ConnEntry>();
  ConnEntry& c = *e;
  c.original = k;
  c.slot = record.slot;
  {
    MaybeLock entry(c.lock, limits_.shared);
    c.tcp = static_cast<TcpState>(r.tcp);
    c.flags = r.flags;
    c.expires = expires;
    // next_seq unknown (0): learned again from the next segments.
  }
  shard.table[k] = e;
  shard.table[k.reversed()] = std::move(e);
  connections_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

bool ConnTrack::touch(const ConnKey& key, SteadyTime now) noexcept {
  Shard& shard = shards_[shardOf(key)];
  MaybeLock lock(shard.mu, limits_.shared);
  const std::shared_ptr<ConnEntry>* found = live(shard, key, now);
  if (found == nullptr) return false;
  ConnEntry& c = **found;
  MaybeLock entry(c.lock, limits_.shared);
  const SteadyTime expires = c.expires;
  const Timeouts& t = limits_.timeouts;
  if (key.protocol == kTcp) {
    if (c.tcp == TcpState::Closed) return false;  // reset: its packets are the agent's again
    // The kernel carries a connection's packets from its SYN-ACK on: what
    // it carried after it completed the handshake (its last ACK, or the
    // answer's data, which follows it).
    if (c.tcp == TcpState::SynReceived) c.tcp = TcpState::Established;
    if (c.tcp == TcpState::Established) expireAt(c, now + t.tcp_established);
    c.next_seq[0] = c.next_seq[1] = 0;
  } else if (key.protocol == kIcmp || key.protocol == kIcmpv6) {
    expireAt(c, now + t.icmp);
  } else {
    expireAt(c, now + (c.replied() ? t.udp_replied : t.udp_unreplied));
  }
  if (c.slot != persist::kNoSlot && c.expires != expires) persist(c);
  return true;
}

std::optional<Connection> ConnTrack::find(const ConnKey& key) const noexcept {
  const Shard& shard = shards_[shardOf(key)];
  MaybeLock lock(shard.mu, limits_.shared);
  auto it = shard.table.find(key);
  if (it == shard.table.end()) return std::nullopt;
  ConnEntry& e = *it->second;
  MaybeLock entry(e.lock, limits_.shared);
  if (clock_.now() >= e.expires) return std::nullopt;
  return Connection{.original = e.original,
                    .tcp = e.tcp,
                    .replied = e.replied(),
                    .fin_seen = {e.finSeen(0), e.finSeen(1)},
                    .next_seq = {e.next_seq[0], e.next_seq[1]},
                    .expires = e.expires};
}

inline Lookup ConnTrack::established(ConnEntry& c, const ConnKey& k, const packet::ParsedPacket& p,
                                     std::span<const uint8_t> frame, SteadyTime now) noexcept {
  Lookup out;
  out.reply = !(c.original == k);
  out.state = CtState::Established;
  const TcpState tcp = c.tcp;
  const uint8_t flags = c.flags;
  const SteadyTime expires = c.expires;
  const Timeouts& t = limits_.timeouts;
  if (k.protocol == kTcp) {
    // A later fragment has no TCP header to follow the connection by.
    if (p.key.ip_frag != packet::Fragment::Later) advanceTcp(c, p, frame, out.reply, now, out);
    out.closing =
        out.state == CtState::Established &&
        (c.tcp == TcpState::Closing || c.tcp == TcpState::TimeWait || c.tcp == TcpState::Closed);
  } else {
    if (out.reply) c.flags |= ConnEntry::kReplied;
    if (k.protocol == kIcmp || k.protocol == kIcmpv6) {
      expireAt(c, now + t.icmp);
    } else {
      expireAt(c, now + (c.replied() ? t.udp_replied : t.udp_unreplied));
    }
  }
  // The record follows (expiry moves in steps: about once a second).
  if (c.slot != persist::kNoSlot && (c.tcp != tcp || c.flags != flags || c.expires != expires)) {
    persist(c);
  }
  return out;
}

Lookup ConnTrack::lookup(const packet::ParsedPacket& p, std::span<const uint8_t> frame,
                         uint16_t zone, SteadyTime now, ConnCache* cache) noexcept {
  Lookup out;
  const packet::FlowKey& f = p.key;
  bool icmp = f.ip_proto == kIcmp || f.ip_proto == kIcmpv6;
  if (icmp && p.l4_offset != 0 && isIcmpError(f.ip_proto, f.tp_src)) {
    // The quoted packet (its IP header and first L4 bytes) names the
    // connection; the quote may be cut anywhere after 8 bytes of L4.
    std::optional<ConnKey> k =
        quotedKey(frame.subspan(p.payload_offset, p.l3_end - p.payload_offset), f.eth_type, zone);
    bool found = false;
    if (k) {
      Shard& shard = shards_[shardOf(*k)];
      MaybeLock lock(shard.mu, limits_.shared);
      found = live(shard, *k, now) != nullptr;
    }
    out.state = found ? CtState::Related : CtState::Invalid;
    if (!found) out.invalid_reason = DropReason::ConntrackUnrelatedIcmpError;
    return out;
  }
  ConnKey k = connKey(p, zone);
  if (k.family == 0) return out;  // Untracked
  ConnCache::Slot* slot = cache != nullptr && limits_.shared ? &cache->slot(k) : nullptr;
  if (slot != nullptr && slot->entry != nullptr && slot->key == k) {
    // A connection this worker has seen: its own lock only.
    ConnEntry& e = *slot->entry;
    MaybeLock entry_lock(e.lock, true);
    if (!e.dead.load(std::memory_order_acquire) && now < e.expires) {
      Lookup fast = established(e, k, p, frame, now);
      // A new SYN on a finished connection erases it: in the table, below.
      if (fast.state != CtState::New) return fast;
    }
  }
  Shard& shard = shards_[shardOf(k)];
  MaybeLock lock(shard.mu, limits_.shared);
  const std::shared_ptr<ConnEntry>* found = live(shard, k, now);
  if (found == nullptr) {
    if (slot != nullptr) slot->entry.reset();
    if (k.protocol == kTcp) {
      uint8_t flags = f.tcp_flags;
      bool syn = (flags & packet::TcpHeader::kSyn) != 0;
      bool other =
          (flags & (packet::TcpHeader::kAck | packet::TcpHeader::kRst | packet::TcpHeader::kFin)) !=
          0;
      if (!syn || other) {
        out.state = CtState::Invalid;
        out.invalid_reason = DropReason::ConntrackNotSyn;
        return out;
      }
    }
    out.state = CtState::New;
    return out;
  }
  ConnEntry& entry = **found;
  {
    MaybeLock lock_entry(entry.lock, limits_.shared);
    out = established(entry, k, p, frame, now);
  }
  if (out.state == CtState::New) {
    if (slot != nullptr) slot->entry.reset();
    // A new SYN on a finished connection: the port is reused.
    erase(shard, entry);
  } else if (slot != nullptr) {
    slot->key = k;
    slot->entry = *found;
  }
  return out;
}

void ConnTrack::advanceTcp(ConnEntry& c, const packet::ParsedPacket& p,
                           std::span<const uint8_t> frame, bool reply, SteadyTime now,
                           Lookup& out) noexcept {
  packet::TcpHeader h;
  if (!packet::load(frame, p.l4_offset, h)) {
    out.state = CtState::Invalid;
    out.invalid_reason = DropReason::TcpTruncated;
    return;
  }
  const Timeouts& t = limits_.timeouts;
  uint8_t flags = h.flags;
  bool syn = flags & packet::TcpHeader::kSyn;
  bool ack = flags & packet::TcpHeader::kAck;
  bool fin = flags & packet::TcpHeader::kFin;
  bool rst = flags & packet::TcpHeader::kRst;
  uint32_t seq = h.sequence.host();
  int dir = reply ? 1 : 0;

  // A bare SYN from the side that opened the connection, once that side
  // has closed its half (or the connection is over): the port is reused,
  // whether or not the last ACK of the old connection was seen.
  if (syn && !ack && !reply &&
      (c.tcp == TcpState::TimeWait || c.tcp == TcpState::Closed || c.finSeen(0))) {
    out.state = CtState::New;
    return;
  }
  if (c.tcp == TcpState::Closed) {
    out.state = CtState::Invalid;
    out.invalid_reason = DropReason::ConntrackClosed;
    return;
  }
  if (rst) {
    // A blind RST must land near where the sender's stream is.
    uint32_t expected = c.next_seq[dir];
    bool known = expected != 0;
    uint32_t distance = seq - expected;
    if (known && distance > kRstWindow && (0u - distance) > kRstWindow) {
      out.state = CtState::Invalid;
      out.invalid_reason = DropReason::ConntrackRstOutOfWindow;
      return;
    }
    c.tcp = TcpState::Closed;
    expireAt(c, now + t.tcp_closed);
    return;
  }
  if (reply) c.flags |= ConnEntry::kReplied;
  size_t payload = p.l3_end > p.payload_offset ? p.l3_end - p.payload_offset : 0;
  uint32_t end = seq + static_cast<uint32_t>(payload) + (syn ? 1 : 0) + (fin ? 1 : 0);
  if (c.next_seq[dir] == 0 || seqBefore(c.next_seq[dir], end)) c.next_seq[dir] = end;

  switch (c.tcp) {
    case TcpState::SynSent:
      if (reply && syn && ack) c.tcp = TcpState::SynReceived;
      break;
    case TcpState::SynReceived:
      if (!reply && ack && !syn) c.tcp = TcpState::Established;
      break;
    default:
      break;
  }
  if (fin) {
    c.flags |= static_cast<uint8_t>(ConnEntry::kFinSeen << dir);
    c.tcp = c.finSeen(0) && c.finSeen(1) ? TcpState::Closing : TcpState::FinWait;
  } else if (c.tcp == TcpState::Closing && ack) {
    c.tcp = TcpState::TimeWait;
  }
  switch (c.tcp) {
    case TcpState::SynSent:
    case TcpState::SynReceived:
      expireAt(c, now + t.tcp_syn);
      break;
    case TcpState::Established:
      expireAt(c, now + t.tcp_established);
      break;
    case TcpState::FinWait:
    case TcpState::Closing:
      expireAt(c, now + t.tcp_closing);
      break;
    case TcpState::TimeWait:
      expireAt(c, now + t.tcp_time_wait);
      break;
    case TcpState::Closed:
      expireAt(c, now + t.tcp_closed);
      break;
  }
}

DropReason ConnTrack::commit(const packet::ParsedPacket& p, std::span<const uint8_t> frame,
                             uint16_t zone, SteadyTime now) noexcept {
  ConnKey k = connKey(p, zone);
  if (k.family == 0) return DropReason::None;
  if (size() >= limits_.max_connections) {
    sweep();
    if (size() >= limits_.max_connections) return DropReason::ConntrackFull;
  }
  Shard& shard = shards_[shardOf(k)];
  MaybeLock lock(shard.mu, limits_.shared);
  if (live(shard, k, now) != nullptr) return DropReason::None;  // committed meanwhile
  auto e = std::make_shared<ConnEntry>();
  ConnEntry& c = *e;
  c.original = k;
  {
    // Not yet seen by any other thread; the lock is for the analysis.
    MaybeLock entry(c.lock, limits_.shared);
    const Timeouts& t = limits_.timeouts;
    if (k.protocol == kTcp) {
      c.tcp = TcpState::SynSent;
      packet::TcpHeader h;
      if (packet::load(frame, p.l4_offset, h)) {
        size_t payload = p.l3_end > p.payload_offset ? p.l3_end - p.payload_offset : 0;
        c.next_seq[0] = h.sequence.host() + 1 + static_cast<uint32_t>(payload);
      }
      c.expires = now + t.tcp_syn;
    } else if (k.protocol == kIcmp || k.protocol == kIcmpv6) {
      c.expires = now + t.icmp;
    } else {
      c.expires = now + t.udp_unreplied;
    }
  }
  insert(shard, std::move(e));
  return DropReason::None;
}

void ConnTrack::insert(Shard& shard, std::shared_ptr<ConnEntry> e) noexcept {
  ConnEntry& c = *e;
  if (file_ != nullptr) {
    MaybeLock entry(c.lock, limits_.shared);
    c.slot = file_->allocate();
    persist(c);
  }
  const ConnKey k = c.original;
  shard.table[k] = e;
  shard.table[k.reversed()] = std::move(e);
  connections_.fetch_add(1, std::memory_order_relaxed);
}

bool ConnTrack::finished(const ConnKey& key, SteadyTime now) noexcept {
  if (key.family == 0 || key.protocol != kTcp) return false;
  Shard& shard = shards_[shardOf(key)];
  MaybeLock lock(shard.mu, limits_.shared);
  const std::shared_ptr<ConnEntry>* found = live(shard, key, now);
  if (found == nullptr) return false;
  ConnEntry& c = **found;
  MaybeLock entry(c.lock, limits_.shared);
  if (c.tcp == TcpState::Closed) return true;
  const int dir = c.original == key ? 0 : 1;
  c.flags |= static_cast<uint8_t>(ConnEntry::kFinSeen << dir);
  if (c.tcp != TcpState::TimeWait) {
    c.tcp = c.finSeen(0) && c.finSeen(1) ? TcpState::Closing : TcpState::FinWait;
    expireAt(c, now + limits_.timeouts.tcp_closing);
  }
  if (c.slot != persist::kNoSlot) persist(c);
  return c.finSeen(0) && c.finSeen(1);
}

DropReason ConnTrack::import(const ConnKey& original, bool answered, SteadyTime now) noexcept {
  if (original.family == 0 || original.protocol != kTcp) return DropReason::None;
  if (size() >= limits_.max_connections) {
    sweep();
    if (size() >= limits_.max_connections) return DropReason::ConntrackFull;
  }
  Shard& shard = shards_[shardOf(original)];
  MaybeLock lock(shard.mu, limits_.shared);
  if (const auto* found = live(shard, original, now); found != nullptr) {
    // This connection, adopted already; or an earlier one on the same
    // tuple that was over (or whose opener had closed its half) when the
    // kernel carried the new SYN: replaced, as that SYN would have.
    ConnEntry& old = **found;
    bool over;
    {
      MaybeLock entry(old.lock, limits_.shared);
      over = old.tcp == TcpState::TimeWait || old.tcp == TcpState::Closed ||
             old.finSeen(old.original == original ? 0 : 1);
    }
    if (!over) return DropReason::None;
    erase(shard, old);
  }
  auto e = std::make_shared<ConnEntry>();
  ConnEntry& c = *e;
  c.original = original;
  {
    MaybeLock entry(c.lock, limits_.shared);
    const Timeouts& t = limits_.timeouts;
    c.tcp = answered ? TcpState::Established : TcpState::SynSent;
    if (answered) c.flags |= ConnEntry::kReplied;
    c.expires = now + (answered ? t.tcp_established : t.tcp_syn);
  }
  insert(shard, std::move(e));
  return DropReason::None;
}

size_t ConnTrack::sweep(size_t budget) noexcept {
  // Shard by shard, from where the last sweep stopped; in each, chosen
  // first, erased after: erasing a connection removes two entries, and the
  // other one may be the iterator's next.
  SteadyTime now = clock_.now();
  size_t freed = 0;
  size_t start = sweep_from_.load(std::memory_order_relaxed);
  for (size_t i = 0; i < shards() && freed < budget; ++i) {
    size_t at = (start + i) & shard_mask_;
    Shard& shard = shards_[at];
    MaybeLock lock(shard.mu, limits_.shared);
    std::vector<std::shared_ptr<ConnEntry>> dead;
    for (const auto& [key, e] : shard.table) {
      if (freed + dead.size() >= budget) break;
      MaybeLock entry(e->lock, limits_.shared);
      if (now >= e->expires && key == e->original) dead.push_back(e);
    }
    for (const auto& e : dead) erase(shard, *e);
    freed += dead.size();
    if (freed >= budget) sweep_from_.store(at, std::memory_order_relaxed);
  }
  return freed;
}

}  // namespace canopy::datapath::conntrack
