#include "datapath/nat/snat_table.h"

#include <algorithm>
#include <cstring>
#include <new>

#include "base/assert.h"
#include "base/hash.h"

namespace canopy::datapath::nat {
namespace {

using packet::ipproto::kIcmp;
using packet::ipproto::kTcp;
using packet::ipproto::kUdp;

bool isEcho(uint16_t type) { return type == 8 || type == 0; }

uint32_t hostAddress(const std::array<uint8_t, 16>& key_address) {
  packet::Ipv4Address a;
  std::memcpy(&a, key_address.data(), sizeof(a));
  return a.host();
}

packet::Ipv4Address wireAddress(uint32_t host) { return {packet::Be32::of(host)}; }

}  // namespace

SnatTable::Key SnatTable::Key::reversed() const noexcept {
  Key r = *this;
  r.src = dst;
  r.dst = src;
  r.src_port = dst_port;
  r.dst_port = src_port;
  return r;
}

size_t SnatTable::KeyHash::operator()(const Key& k) const noexcept {
  uint64_t words[sizeof(Key) / 8];
  std::memcpy(words, &k, sizeof(Key));
  return static_cast<size_t>(mix64(words[0] ^ mix64(words[1])));
}

SnatTable::SnatTable(const Clock& clock, SnatTimeouts timeouts, size_t max_entries,
                     uint16_t first_port, uint16_t last_port)
    : clock_(clock),
      timeouts_(timeouts),
      max_entries_(max_entries),
      ports_(first_port, last_port) {}

std::optional<SnatTable::Key> SnatTable::packetKey(const packet::ParsedPacket& p) noexcept {
  const packet::FlowKey& f = p.key;
  if (p.l4_offset == 0 && !p.fragment_ports) return std::nullopt;
  Key k;
  k.protocol = f.ip_proto;
  k.src = hostAddress(f.ip_src);
  k.dst = hostAddress(f.ip_dst);
  switch (f.ip_proto) {
    case kTcp:
    case kUdp:
      k.src_port = f.tp_src;
      k.dst_port = f.tp_dst;
      return k;
    case kIcmp:
      if (!isEcho(f.tp_src)) return std::nullopt;
      k.src_port = f.icmp_id;
      k.dst_port = f.icmp_id;
      return k;
    default:
      return std::nullopt;
  }
}

std::optional<SnatTable::Key> SnatTable::quotedKey(std::span<const uint8_t> frame,
                                                   const IcmpQuote& quote) noexcept {
  if (quote.later_fragment) return std::nullopt;
  packet::Ipv4Header ip;
  packet::UdpHeader ports;  // the first 8 bytes of TCP, UDP or ICMP
  if (!packet::load(frame, quote.ip_offset, ip) || !packet::load(frame, quote.l4_offset, ports)) {
    CANOPY_BUG("SNAT: a quote that icmpQuote() accepted does not load");
    return std::nullopt;
  }
  Key k;
  k.protocol = ip.protocol;
  k.src = ip.src.host();
  k.dst = ip.dst.host();
  switch (ip.protocol) {
    case kTcp:
    case kUdp:
      k.src_port = ports.src_port.host();
      k.dst_port = ports.dst_port.host();
      return k;
    case kIcmp:
      if (!isEcho(static_cast<uint16_t>(ports.src_port.host() >> 8))) return std::nullopt;
      k.src_port = ports.length.host();  // the echo identifier sits where UDP's length does
      k.dst_port = k.src_port;
      return k;
    default:
      return std::nullopt;
  }
}

SnatTable::Mapping* SnatTable::expireIfDue(Mapping* m) noexcept {
  if (m != nullptr && clock_.now() >= m->expires) {
    erase(*m);
    return nullptr;
  }
  return m;
}

SnatTable::Mapping* SnatTable::liveOutbound(const Key& key) noexcept {
  auto it = by_outbound_.find(key);
  return expireIfDue(it == by_outbound_.end() ? nullptr : &it->second);
}

SnatTable::Mapping* SnatTable::liveInbound(const Key& key) noexcept {
  auto it = by_inbound_.find(key);
  return expireIfDue(it == by_inbound_.end() ? nullptr : it->second);
}

void SnatTable::erase(const Mapping& m) noexcept {
  Key outbound = m.outbound;  // m dies with its by_outbound_ entry
  Key inbound = m.inbound;
  if (file_ != nullptr) file_->release(m.slot);
  ports_.release(wireAddress(inbound.dst), inbound.protocol, inbound.dst_port);
  by_inbound_.erase(inbound);
  by_outbound_.erase(outbound);
}

DropReason SnatTable::create(const Key& outbound, packet::Ipv4Address external, PortRange ports,
                             Mapping*& out) noexcept {
  if (by_outbound_.size() >= max_entries_) {
    sweep();
    if (by_outbound_.size() >= max_entries_) return DropReason::NatTableFull;
  }
  // Out of memory refuses the new mapping as a full table would; the
  // allocator's pools and the maps' nodes are the only allocations.
  std::optional<uint16_t> port;
  try {
    port = ports.contains(outbound.src_port) &&
                   ports_.claim(external, outbound.protocol, outbound.src_port)
               ? std::optional<uint16_t>(outbound.src_port)
               : ports_.allocate(external, outbound.protocol, ports);
  } catch (const std::bad_alloc&) {
    return DropReason::NatTableFull;
  }
  if (!port) return DropReason::NatPortsExhausted;

  Key inbound;
  inbound.protocol = outbound.protocol;
  inbound.src = outbound.dst;
  inbound.dst = external.host();
  inbound.src_port = outbound.protocol == kIcmp ? *port : outbound.dst_port;
  inbound.dst_port = *port;
  try {
    auto [it, inserted] = by_outbound_.try_emplace(outbound);
    it->second = Mapping{.outbound = outbound, .inbound = inbound, .expires = {}, .closing = false};
    by_inbound_.emplace(inbound, &it->second);
    out = &it->second;
    if (file_ != nullptr) out->slot = file_->allocate();
  } catch (const std::bad_alloc&) {
    by_outbound_.erase(outbound);
    ports_.release(external, outbound.protocol, *port);
    return DropReason::NatTableFull;
  }
  return DropReason::None;
}

void SnatTable::refresh(Mapping& m, const packet::FlowKey& f, bool outbound) noexcept {
  SteadyTime now = clock_.now();
  const bool closing = m.closing;
  switch (m.outbound.protocol) {
    case kTcp: {
      uint8_t flags = f.tcp_flags;
      if ((flags & (packet::TcpHeader::kFin | packet::TcpHeader::kRst)) != 0) {
        m.closing = true;
      } else if (outbound && (flags & (packet::TcpHeader::kSyn | packet::TcpHeader::kAck)) ==
                                 packet::TcpHeader::kSyn) {
        m.closing = false;  // the internal host opens the tuple anew
      }
      m.expires = now + (m.closing ? timeouts_.tcp_closing : timeouts_.tcp);
      break;
    }
    case kUdp:
      m.expires = now + timeouts_.udp;
      break;
    default:
      m.expires = now + timeouts_.icmp;
      break;
  }
  if (m.slot != persist::kNoSlot &&
      (m.closing != closing || m.expires - m.persisted >= std::chrono::seconds(1) ||
       m.expires < m.persisted)) {
    persist(m);
  }
}

struct SnatTable::Persisted {
  Key outbound;
  Key inbound;
  int64_t expires_ns = 0;  // steady clock (the same for every process of a boot)
  SeqAdjust adjust{};
  uint8_t flags = 0;  // kClosing, kHelper
  uint8_t reserved[3] = {};
  static constexpr uint8_t kClosing = 1, kHelper = 2;
};
namespace {
constexpr uint8_t kSnatRecordVersion = 1;
}  // namespace

SnatTable::Persisted SnatTable::recordOf(const Mapping& m) const noexcept {
  static_assert(std::is_trivially_copyable_v<Persisted> && sizeof(Persisted) == kRecordBytes);
  Persisted r;
  r.outbound = m.outbound;
  r.inbound = m.inbound;
  r.expires_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(m.expires.time_since_epoch()).count();
  r.adjust = m.adjust;
  r.flags = static_cast<uint8_t>((m.closing ? Persisted::kClosing : 0) |
                                 (m.helper ? Persisted::kHelper : 0));
  return r;
}

void SnatTable::persist(Mapping& m) noexcept {
  if (file_ == nullptr && replica_ == nullptr) return;
  Persisted r = recordOf(m);
  if (file_ != nullptr && m.slot != persist::kNoSlot) {
    file_->write(m.slot, persist::RecordKind::Snat, kSnatRecordVersion, r);
  }
  if (replica_ != nullptr && replica_->size() + sizeof r <= replica_limit_) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(&r);
    replica_->insert(replica_->end(), bytes, bytes + sizeof r);
  }
  m.persisted = m.expires;
}

void SnatTable::exportAll(std::vector<uint8_t>& out) const {
  for (const auto& [key, m] : by_outbound_) {
    Persisted r = recordOf(m);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&r);
    out.insert(out.end(), bytes, bytes + sizeof r);
  }
}

bool SnatTable::insert(const Persisted& r, uint32_t slot) noexcept {
  // Bytes from a file or a peer: checked as any input.
  const Key& out = r.outbound;
  const Key& in = r.inbound;
  const SteadyTime expires{
      std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(r.expires_ns))};
  const packet::Ipv4Address external = wireAddress(in.dst);
  if (expires <= clock_.now() || by_outbound_.size() >= max_entries_ ||
      by_outbound_.count(out) != 0 || by_inbound_.count(in) != 0) {
    return false;
  }
  try {
    if (!ports_.claim(external, out.protocol, in.dst_port)) return false;
    auto [it, inserted] = by_outbound_.try_emplace(out);
    it->second = Mapping{.outbound = out,
                         .inbound = in,
                         .expires = expires,
                         .closing = (r.flags & Persisted::kClosing) != 0,
                         .helper = (r.flags & Persisted::kHelper) != 0,
                         .adjust = r.adjust,
                         .slot = slot,
                         .persisted = expires};
    try {
      by_inbound_.emplace(in, &it->second);
    } catch (const std::bad_alloc&) {
      by_outbound_.erase(it);
      ports_.release(external, out.protocol, in.dst_port);
      return false;
    }
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

namespace {

// Whether a record's fields make a mapping (bytes from a file or a peer).
template <typename Persisted>
bool wellFormed(const Persisted& r) {
  const auto& out = r.outbound;
  const auto& in = r.inbound;
  return (out.protocol == kTcp || out.protocol == kUdp || out.protocol == kIcmp) &&
         in.protocol == out.protocol && in.src == out.dst &&
         (r.flags & ~(Persisted::kClosing | Persisted::kHelper)) == 0 &&
         (out.protocol == kIcmp || in.src_port == out.dst_port);
}

}  // namespace

bool SnatTable::adopt(const persist::Record& record) noexcept {
  Persisted r;
  if (record.kind != persist::RecordKind::Snat || record.version != kSnatRecordVersion ||
      !record.as(r) || !wellFormed(r)) {
    return false;
  }
  if (!insert(r, record.slot) && file_ != nullptr) {
    file_->release(record.slot);  // over, or its port is taken
  }
  return true;
}

bool SnatTable::absorb(std::span<const uint8_t> record) noexcept {
  Persisted r;
  if (record.size() != sizeof r) return false;
  std::memcpy(&r, record.data(), sizeof r);
  if (!wellFormed(r)) return false;
  auto it = by_outbound_.find(r.outbound);
  if (it != by_outbound_.end()) {
    // Known: brought up to date if it is the same translation.
    Mapping& m = it->second;
    if (!(m.inbound == r.inbound)) return true;
    m.expires = SteadyTime(
        std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(r.expires_ns)));
    m.closing = (r.flags & Persisted::kClosing) != 0;
    m.helper = (r.flags & Persisted::kHelper) != 0;
    m.adjust = r.adjust;
    if (file_ != nullptr && m.slot != persist::kNoSlot) {
      file_->write(m.slot, persist::RecordKind::Snat, kSnatRecordVersion, recordOf(m));
    }
    m.persisted = m.expires;
    return true;
  }
  uint32_t slot = file_ != nullptr ? file_->allocate() : persist::kNoSlot;
  if (!insert(r, slot)) {
    if (file_ != nullptr) file_->release(slot);
    return true;
  }
  if (file_ != nullptr && slot != persist::kNoSlot) {
    file_->write(slot, persist::RecordKind::Snat, kSnatRecordVersion, r);
  }
  return true;
}

DropReason SnatTable::translateError(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                     bool outbound) noexcept {
  IcmpQuote quote;
  if (DropReason why = icmpQuote(frame, p, quote); why != DropReason::None) return why;
  // The quote is the reported packet as it was sent: outbound, the reply the
  // internal host got; inbound, the translated packet that left. Reversed,
  // it is the mapping's key in the error's own direction.
  std::optional<Key> quoted = quotedKey(frame, quote);
  if (!quoted) return DropReason::NatNoMapping;
  Key key = quoted->reversed();
  if (outbound) {
    Mapping* m = liveOutbound(key);
    if (m == nullptr) return DropReason::NatNoMapping;
    return rewriteIpv4(frame, p, Side::Source, wireAddress(m->inbound.dst), m->inbound.dst_port);
  }
  Mapping* m = liveInbound(key);
  if (m == nullptr || hostAddress(p.key.ip_dst) != m->inbound.dst) return DropReason::NatNoMapping;
  return rewriteIpv4(frame, p, Side::Destination, wireAddress(m->outbound.src),
                     m->outbound.src_port);
}

bool SnatTable::expect(const Expectation& e) noexcept {
  SteadyTime now = clock_.now();
  std::erase_if(expected_, [&](const Expectation& x) {
    bool gone = now >= x.expires ||
                (x.remote == e.remote && x.external == e.external &&
                 x.external_port == e.external_port && x.protocol == e.protocol);  // renewed below
    if (gone) ports_.release(wireAddress(x.external), x.protocol, x.external_port);
    return gone;
  });
  if (expected_.size() >= kMaxExpectations) return false;
  try {
    expected_.push_back(e);
  } catch (const std::bad_alloc&) {
    return false;
  }
  return true;
}

void SnatTable::forget(std::vector<Expectation>::iterator e) noexcept {
  ports_.release(wireAddress(e->external), e->protocol, e->external_port);
  expected_.erase(e);
}

SnatTable::Mapping* SnatTable::fromExpectation(const Key& inbound) noexcept {
  auto e = std::find_if(expected_.begin(), expected_.end(), [&](const Expectation& x) {
    return x.protocol == inbound.protocol && x.remote == inbound.src && x.external == inbound.dst &&
           x.external_port == inbound.dst_port;
  });
  if (e == expected_.end()) return nullptr;
  if (clock_.now() >= e->expires) {
    forget(e);
    return nullptr;
  }
  Key outbound;
  outbound.protocol = inbound.protocol;
  outbound.src = e->internal;
  outbound.src_port = e->internal_port;
  outbound.dst = inbound.src;
  outbound.dst_port = inbound.src_port;
  if (by_outbound_.size() >= max_entries_ || by_outbound_.count(outbound) != 0) return nullptr;
  // The mapping holds the port as well; the expectation's hold goes with it.
  if (!ports_.retain(wireAddress(inbound.dst), inbound.protocol, inbound.dst_port)) return nullptr;
  Mapping* m = nullptr;
  try {
    auto [it, inserted] = by_outbound_.try_emplace(outbound);
    it->second = Mapping{.outbound = outbound, .inbound = inbound, .expires = {}, .closing = false};
    by_inbound_.emplace(inbound, &it->second);
    m = &it->second;
    if (file_ != nullptr) m->slot = file_->allocate();
  } catch (const std::bad_alloc&) {
    by_outbound_.erase(outbound);
    ports_.release(wireAddress(inbound.dst), inbound.protocol, inbound.dst_port);
    return nullptr;
  }
  forget(e);
  return m;
}

// FTP's control connection, outbound: the sequence number shifted by the
// earlier edits, and a PORT or EPRT that names the internal host rewritten
// to the external address and a port that expects the data connection.
DropReason SnatTable::ftpOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                  Mapping& m, const Key& key, PayloadEdit* edit,
                                  PortRange ports) noexcept {
  if (p.payload_offset == 0 || p.l4_offset == 0) return DropReason::None;
  size_t tcp = p.l4_offset;
  uint32_t seq = uint32_t{frame[tcp + 4]} << 24 | uint32_t{frame[tcp + 5]} << 16 |
                 uint32_t{frame[tcp + 6]} << 8 | frame[tcp + 7];
  auto payload =
      std::span<const uint8_t>(frame).subspan(p.payload_offset, p.l3_end - p.payload_offset);
  std::optional<FtpEndpoint> e;
  if (edit != nullptr) e = findFtpEndpoint(payload);
  if (e && e->form != FtpForm::Passive && e->address.host() == key.src) {
    packet::Ipv4Address external = wireAddress(m.inbound.dst);
    std::optional<uint16_t> port;
    try {
      port = ports_.allocate(external, kTcp, ports);
    } catch (const std::bad_alloc&) {
      return DropReason::NatTableFull;
    }
    if (!port) return DropReason::NatPortsExhausted;
    Expectation x{.remote = key.dst,
                  .external = m.inbound.dst,
                  .internal = key.src,
                  .external_port = *port,
                  .internal_port = e->port,
                  .protocol = kTcp,
                  .expires = clock_.now() + timeouts_.expected};
    if (!expect(x)) {
      ports_.release(external, kTcp, *port);
      return DropReason::NatTableFull;
    }
    *edit = e->replacedBy(external, *port);
    m.adjust.record(seq, edit->delta());
    persist(m);
  }
  adjustSeq(frame, p, m.adjust);
  return DropReason::None;
}

DropReason SnatTable::translateOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                        packet::Ipv4Address external, SnatHelper helper,
                                        PayloadEdit* edit, PortRange ports) noexcept {
  if (edit != nullptr) *edit = PayloadEdit{};
  const packet::FlowKey& f = p.key;
  if (f.eth_type != packet::ethertype::kIpv4) return DropReason::NatNotIpv4;
  // A later fragment follows its first fragment's mapping (its address
  // only: the ports and the L4 checksum are in the first).
  const bool later = f.ip_frag == packet::Fragment::Later;
  if (later && !p.fragment_ports) return DropReason::NatLaterFragment;
  if (f.ip_proto == kIcmp && p.l4_offset != 0 && isIcmpv4Error(f.tp_src)) {
    return translateError(frame, p, true);
  }
  std::optional<Key> key = packetKey(p);
  if (!key) return DropReason::NatProtocolUnsupported;
  Mapping* m = liveOutbound(*key);
  if (m != nullptr && (m->inbound.dst != external.host() || !ports.contains(m->inbound.dst_port))) {
    erase(*m);  // the router's gateway address or lease changed: start over from it
    m = nullptr;
  }
  if (later) {
    if (m == nullptr) return DropReason::NatLaterFragment;
    if (DropReason why = rewriteIpv4(frame, p, Side::Source, external, std::nullopt);
        why != DropReason::None) {
      return why;
    }
    refresh(*m, f, true);
    return DropReason::None;
  }
  if (m == nullptr) {
    if (DropReason why = create(*key, external, ports, m); why != DropReason::None) return why;
  }
  if (helper != SnatHelper::None && !m->helper) {
    m->helper = true;
    if (m->slot != persist::kNoSlot) persist(*m);
  }
  if (helper == SnatHelper::Ftp && key->protocol == kTcp) {
    if (DropReason why = ftpOutbound(frame, p, *m, *key, edit, ports); why != DropReason::None) {
      return why;
    }
  }
  DropReason why = rewriteIpv4(frame, p, Side::Source, external, m->inbound.dst_port);
  if (why != DropReason::None) return why;
  refresh(*m, f, true);
  if (helper == SnatHelper::Tftp && key->protocol == kUdp && p.payload_offset + 2 <= p.l3_end &&
      frame[p.payload_offset] == 0 &&
      (frame[p.payload_offset + 1] == 1 || frame[p.payload_offset + 1] == 2)) {
    // A read or write request: the server answers from a port of its own.
    if (ports_.retain(external, kUdp, m->inbound.dst_port)) {
      Expectation x{.remote = key->dst,
                    .external = external.host(),
                    .internal = key->src,
                    .external_port = m->inbound.dst_port,
                    .internal_port = key->src_port,
                    .protocol = kUdp,
                    .expires = clock_.now() + timeouts_.expected};
      if (!expect(x)) ports_.release(external, kUdp, m->inbound.dst_port);
    }
  }
  return DropReason::None;
}

DropReason SnatTable::translateInbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                       bool* plain) noexcept {
  if (plain != nullptr) *plain = false;
  const packet::FlowKey& f = p.key;
  if (f.eth_type != packet::ethertype::kIpv4) return DropReason::NatNotIpv4;
  if (f.ip_frag == packet::Fragment::Later && !p.fragment_ports) {
    return DropReason::NatLaterFragment;
  }
  if (f.ip_proto == kIcmp && p.l4_offset != 0 && isIcmpv4Error(f.tp_src)) {
    return translateError(frame, p, false);
  }
  std::optional<Key> key = packetKey(p);
  if (!key) return DropReason::NatNoMapping;
  Mapping* m = liveInbound(*key);
  if (m == nullptr && !expected_.empty()) m = fromExpectation(*key);
  if (m == nullptr) return DropReason::NatNoMapping;
  DropReason why =
      rewriteIpv4(frame, p, Side::Destination, wireAddress(m->outbound.src), m->outbound.src_port);
  if (why != DropReason::None) return why;
  adjustAck(frame, p, m->adjust);
  refresh(*m, f, false);
  if (plain != nullptr)
    *plain = !m->helper && !m->adjust.active() && f.ip_frag == packet::Fragment::None;
  return DropReason::None;
}

bool SnatTable::keepAlive(packet::Ipv4Address src, uint16_t src_port, packet::Ipv4Address dst,
                          uint16_t dst_port, uint8_t protocol, bool used) noexcept {
  const Key key{.src = src.host(),
                .dst = dst.host(),
                .src_port = src_port,
                .dst_port = dst_port,
                .protocol = protocol};
  Mapping* m = liveOutbound(key);
  if (m == nullptr) return false;
  if (used) {
    // As a packet with neither SYN, FIN nor RST would.
    packet::FlowKey f;
    f.tcp_flags = packet::TcpHeader::kAck;
    refresh(*m, f, true);
  }
  return true;
}

size_t SnatTable::sweep(size_t budget) noexcept {
  SteadyTime now = clock_.now();
  size_t freed = 0;
  std::erase_if(expected_, [&](const Expectation& x) {
    if (now < x.expires) return false;
    ports_.release(wireAddress(x.external), x.protocol, x.external_port);
    return true;
  });
  for (auto it = by_outbound_.begin(); it != by_outbound_.end() && freed < budget;) {
    const Mapping& m = it->second;
    if (now < m.expires) {
      ++it;
      continue;
    }
    ports_.release(wireAddress(m.inbound.dst), m.inbound.protocol, m.inbound.dst_port);
    if (file_ != nullptr) file_->release(m.slot);
    by_inbound_.erase(m.inbound);
    it = by_outbound_.erase(it);
    ++freed;
  }
  return freed;
}

}  // namespace canopy::datapath::nat
