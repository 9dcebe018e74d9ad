#include "datapath/nat/dnat_table.h"

#include <cstring>
#include <optional>

#include "datapath/nat/nat.h"

namespace canopy::datapath::nat {
namespace {

using packet::ipproto::kIcmp;
using packet::ipproto::kTcp;
using packet::ipproto::kUdp;

uint32_t hostAddress(const std::array<uint8_t, 16>& key_address) {
  packet::Ipv4Address a;
  std::memcpy(&a, key_address.data(), sizeof(a));
  return a.host();
}

// The packet's ports (TCP, UDP) or echo identifier; none for the rest.
std::optional<std::pair<uint16_t, uint16_t>> portsOf(const packet::ParsedPacket& p) {
  const packet::FlowKey& f = p.key;
  if (p.l4_offset == 0) return std::nullopt;  // a later fragment
  if (f.ip_proto == kTcp || f.ip_proto == kUdp) return std::pair{f.tp_src, f.tp_dst};
  if (f.ip_proto == kIcmp && (f.tp_src == 8 || f.tp_src == 0)) {
    return std::pair{f.icmp_id, f.icmp_id};
  }
  return std::nullopt;
}

}  // namespace

size_t DnatTable::KeyHash::operator()(const Key& k) const noexcept {
  uint64_t words[2];
  std::memcpy(words, &k, sizeof(Key));
  uint64_t x = words[0] ^ (words[1] * 0x9e3779b97f4a7c15ULL);
  x ^= x >> 31;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 29;
  return static_cast<size_t>(x);
}

DnatTable::DnatTable(const Clock& clock, std::chrono::seconds timeout, size_t max_entries)
    : clock_(clock), timeout_(timeout), max_entries_(max_entries) {}

DropReason DnatTable::translate(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                packet::Ipv4Address target) noexcept {
  if (p.key.eth_type != packet::ethertype::kIpv4) return DropReason::NatNotIpv4;
  if (auto ports = portsOf(p)) {
    // The reply comes from the target, to the client, ports swapped.
    Key reply{.src = target.host(),
              .dst = hostAddress(p.key.ip_src),
              .src_port = ports->second,
              .dst_port = ports->first,
              .protocol = p.key.ip_proto};
    auto it = by_reply_.find(reply);
    if (it == by_reply_.end()) {
      if (by_reply_.size() >= max_entries_) sweep(by_reply_.size());
      if (by_reply_.size() >= max_entries_) return DropReason::LocalIpTableFull;
      it = by_reply_.emplace(reply, Entry{}).first;
    }
    it->second.original = hostAddress(p.key.ip_dst);
    it->second.expires = clock_.now() + timeout_;
    persist(it->first, it->second);
  }
  return rewriteIpv4(frame, p, Side::Destination, target, std::nullopt);
}

bool DnatTable::translateReply(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept {
  if (p.key.eth_type != packet::ethertype::kIpv4 || by_reply_.empty()) return false;
  auto ports = portsOf(p);
  if (!ports) return false;
  Key reply{.src = hostAddress(p.key.ip_src),
            .dst = hostAddress(p.key.ip_dst),
            .src_port = ports->first,
            .dst_port = ports->second,
            .protocol = p.key.ip_proto};
  auto it = by_reply_.find(reply);
  if (it == by_reply_.end()) return false;
  SteadyTime now = clock_.now();
  if (it->second.expires <= now) {
    if (file_ != nullptr) file_->release(it->second.slot);
    by_reply_.erase(it);
    return false;
  }
  packet::Ipv4Address original{packet::Be32::of(it->second.original)};
  if (rewriteIpv4(frame, p, Side::Source, original, std::nullopt) != DropReason::None) return false;
  it->second.expires = now + timeout_;
  persist(it->first, it->second);
  return true;
}

bool DnatTable::keepAlive(packet::Ipv4Address src, uint16_t src_port, packet::Ipv4Address dst,
                          uint16_t dst_port, uint8_t protocol, bool used) noexcept {
  const Key reply{.src = src.host(),
                  .dst = dst.host(),
                  .src_port = src_port,
                  .dst_port = dst_port,
                  .protocol = protocol};
  auto it = by_reply_.find(reply);
  const SteadyTime now = clock_.now();
  if (it == by_reply_.end() || it->second.expires <= now) return false;
  if (used) {
    it->second.expires = now + timeout_;
    persist(it->first, it->second);
  }
  return true;
}

struct DnatTable::Persisted {
  Key reply;
  uint32_t original = 0;
  uint32_t reserved = 0;
  int64_t expires_ns = 0;  // steady clock (the same for every process of a boot)
};
namespace {
constexpr uint8_t kLocalIpRecordVersion = 1;
}  // namespace

void DnatTable::persist(const Key& key, Entry& e) noexcept {
  if (file_ == nullptr) return;
  if (e.slot != persist::kNoSlot && e.expires >= e.persisted &&
      e.expires - e.persisted < std::chrono::seconds(1)) {
    return;  // the record is near enough
  }
  static_assert(std::is_trivially_copyable_v<Persisted> && sizeof(Persisted) == 32);
  if (e.slot == persist::kNoSlot) e.slot = file_->allocate();
  Persisted r;
  r.reply = key;
  r.original = e.original;
  r.expires_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(e.expires.time_since_epoch()).count();
  file_->write(e.slot, persist::RecordKind::LocalIp, kLocalIpRecordVersion, r);
  e.persisted = e.expires;
}

bool DnatTable::adopt(const persist::Record& record) noexcept {
  Persisted r;
  if (record.kind != persist::RecordKind::LocalIp || record.version != kLocalIpRecordVersion ||
      !record.as(r)) {
    return false;
  }
  if (r.reply.protocol != kTcp && r.reply.protocol != kUdp && r.reply.protocol != kIcmp) {
    return false;  // bytes from a file: checked as any input
  }
  const SteadyTime expires{
      std::chrono::duration_cast<SteadyTime::duration>(std::chrono::nanoseconds(r.expires_ns))};
  bool taken = false;
  if (expires > clock_.now() && by_reply_.size() < max_entries_ && by_reply_.count(r.reply) == 0) {
    try {
      by_reply_.emplace(r.reply, Entry{.original = r.original,
                                       .expires = expires,
                                       .slot = record.slot,
                                       .persisted = expires});
      taken = true;
    } catch (const std::bad_alloc&) {
    }
  }
  if (!taken && file_ != nullptr) file_->release(record.slot);
  return true;
}

size_t DnatTable::sweep(size_t budget) noexcept {
  SteadyTime now = clock_.now();
  size_t freed = 0;
  for (auto it = by_reply_.begin(); it != by_reply_.end() && freed < budget;) {
    if (it->second.expires <= now) {
      if (file_ != nullptr) file_->release(it->second.slot);
      it = by_reply_.erase(it);
      ++freed;
    } else {
      ++it;
    }
  }
  return freed;
}

}  // namespace canopy::datapath::nat
