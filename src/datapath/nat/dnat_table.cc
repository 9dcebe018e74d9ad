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
    it->second = {hostAddress(p.key.ip_dst), clock_.now() + timeout_};
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
    by_reply_.erase(it);
    return false;
  }
  packet::Ipv4Address original{packet::Be32::of(it->second.original)};
  if (rewriteIpv4(frame, p, Side::Source, original, std::nullopt) != DropReason::None) return false;
  it->second.expires = now + timeout_;
  return true;
}

size_t DnatTable::sweep(size_t budget) noexcept {
  SteadyTime now = clock_.now();
  size_t freed = 0;
  for (auto it = by_reply_.begin(); it != by_reply_.end() && freed < budget;) {
    if (it->second.expires <= now) {
      it = by_reply_.erase(it);
      ++freed;
    } else {
      ++it;
    }
  }
  return freed;
}

}  // namespace canopy::datapath::nat
