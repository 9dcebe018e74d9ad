#include "datapath/pipeline/datapath.h"

#include <algorithm>
#include <cstring>

#include "base/hash.h"
#include "datapath/nat/maglev.h"
#include "datapath/nat/nat.h"
#include "datapath/packet/checksum.h"
#include "datapath/packet/fragment.h"
#include "datapath/packet/parser.h"
#include "datapath/packet/tunnel.h"
#include "datapath/simulator/replies.h"

namespace canopy::datapath::pipeline {
namespace {

// QoS's DSCP marking: the upper six bits of an IPv4 packet's TOS (its
// header checksum updated) or an IPv6 packet's traffic class; ECN's two
// bits stay.
void setDscp(std::span<uint8_t> bytes, const packet::ParsedPacket& p, uint8_t dscp) {
  const size_t ip = p.l3_offset;
  if (p.key.eth_type == packet::ethertype::kIpv4 && bytes.size() >= ip + 20) {
    const auto old_word = static_cast<uint16_t>(bytes[ip] << 8 | bytes[ip + 1]);
    bytes[ip + 1] = static_cast<uint8_t>(dscp << 2 | (bytes[ip + 1] & 0x03));
    const auto new_word = static_cast<uint16_t>(bytes[ip] << 8 | bytes[ip + 1]);
    auto sum = static_cast<uint16_t>(bytes[ip + 10] << 8 | bytes[ip + 11]);
    sum = packet::checksumUpdate16(sum, old_word, new_word);
    bytes[ip + 10] = static_cast<uint8_t>(sum >> 8);
    bytes[ip + 11] = static_cast<uint8_t>(sum);
  } else if (p.key.eth_type == packet::ethertype::kIpv6 && bytes.size() >= ip + 40) {
    // Version (4 bits), traffic class (8), flow label (20).
    const uint8_t tc = static_cast<uint8_t>((bytes[ip] & 0x0f) << 4 | bytes[ip + 1] >> 4);
    const uint8_t marked = static_cast<uint8_t>(dscp << 2 | (tc & 0x03));
    bytes[ip] = static_cast<uint8_t>((bytes[ip] & 0xf0) | marked >> 4);
    bytes[ip + 1] = static_cast<uint8_t>((marked & 0x0f) << 4 | (bytes[ip + 1] & 0x0f));
  }
}

using simulator::Action;
using simulator::ActionKind;
using simulator::Context;
using simulator::Stage;
namespace ethertype = packet::ethertype;

constexpr int kMaxDepth = 4;
constexpr size_t kMaxGroupSets = 1 << 16;
constexpr size_t kMaxNeighbors = 1 << 16;
// Neighbour changes kept for workers that have not caught up yet; one that
// fell further behind clears its cache.
constexpr size_t kNeighborLog = 1024;
// Sender groups are tagged up to as many as the Geneve networks' MTU leaves
// room for (model/network.h): with more, the receiver matches the sender's
// address instead.
constexpr size_t kMaxTaggedGroups = packet::CanopyOptions::kMaxSenderGroups;

bool isIp(const packet::FlowKey& k) {
  return k.eth_type == ethertype::kIpv4 || k.eth_type == ethertype::kIpv6;
}

// Whose MAC a neighbour discovery message from outside says: a
// solicitation's sender, an advertisement's target (RFC 4861 7.2.5); none
// for anything else or an unspecified address.
std::optional<IpAddress> ndSpeaker(std::span<const uint8_t> bytes, const packet::ParsedPacket& p) {
  const auto& k = p.key;
  if (k.eth_type != ethertype::kIpv6 || k.ip_proto != packet::ipproto::kIcmpv6 || k.ip_ttl != 255 ||
      (k.tp_src != 135 && k.tp_src != 136)) {
    return std::nullopt;
  }
  IpAddress who{6, k.ip_src};
  if (k.tp_src == 136) {
    if (p.payload_offset == 0 || p.payload_offset + 16 > p.l3_end) return std::nullopt;
    std::copy_n(bytes.begin() + p.payload_offset, 16, who.bytes.begin());
  }
  if (who.bytes == std::array<uint8_t, 16>{} || who.bytes[0] == 0xff) return std::nullopt;
  return who;
}

IpAddress dstOf(const packet::FlowKey& k) {
  if (k.eth_type == ethertype::kIpv6) return IpAddress{6, k.ip_dst};
  return IpAddress::v4(k.ip_dst[0], k.ip_dst[1], k.ip_dst[2], k.ip_dst[3]);
}

uint8_t familyOf(const packet::FlowKey& k) { return k.eth_type == ethertype::kIpv6 ? 6 : 4; }

IpAddress srcOf(const packet::FlowKey& k) {
  if (k.eth_type == ethertype::kIpv6) return IpAddress{6, k.ip_src};
  return IpAddress::v4(k.ip_src[0], k.ip_src[1], k.ip_src[2], k.ip_src[3]);
}

// A pinned member in the cache key: a hash, odd (0 is no pin) and never
// UINT32_MAX (not cached).
uint32_t pinId(const nat::LbTarget& member) {
  uint64_t h = mix64(member.port);
  for (uint8_t b : member.address.bytes) h = mix64(h ^ b);
  return (static_cast<uint32_t>(h) & 0x7fffffffu) | 1u;
}

uint32_t contextBits(const Context& c) {
  return static_cast<uint32_t>(c.stage) | static_cast<uint32_t>(c.ct) << 3 |
         static_cast<uint32_t>(c.ct_reply) << 6 | static_cast<uint32_t>(c.ct_invalid) << 8;
}

}  // namespace

// A frame in a stage: its working bytes, as parsed, and where it came in.
struct Datapath::Packet {
  std::span<uint8_t> bytes{};  // the frame as it is now
  packet::ParsedPacket parsed{};
  Ingress in{};
  // From an uplink: the switch whose tag (or none) it came with; answers go
  // back with it.
  uint32_t uplink_switch = 0;
  // The destination its sender used, when a translation on the way in
  // changed it: a floating IP (dnat_from), or router SNAT's external
  // address (snat_external). An ICMP error about it quotes it as sent.
  std::optional<IpAddress> dnat_from{};
  std::optional<packet::Ipv4Address> snat_external{};
  // A reply router SNAT translated back by its mapping's address and port
  // alone: the key it arrived with (a kernel flow's).
  std::optional<packet::FlowKey> snat_arrived{};
  // A load balancer's member's reply, translated back to the VIP before
  // this stage's decision: the key it arrived with, and the connection's
  // tuple to the VIP in its zone (family 0: none, or not one a kernel flow
  // may repeat: another destination too, not IPv4).
  packet::FlowKey lb_arrived{};
  conntrack::ConnKey lb_reply{};
  // The bytes are the input's own buffer (Input::writable): an output that
  // is the last thing done with them may refer to them instead of a copy.
  bool in_input = false;
  // From a trunk's subport: the VLAN it came in (answers go back in it).
  uint16_t trunk_vid = 0;
  // The flow the kernel fast path may take over, while its stages allow it.
  FlowOffer* offer = nullptr;
  // From a tunnel: its VNI.
  uint32_t vni = 0;
};

// The frame with a helper's payload edit, in a buffer of its own (the
// packet's length changes), parsed again.
DropReason Datapath::applyPayloadEdit(Packet& pkt, const nat::PayloadEdit& edit, int depth) {
  auto& grown = grown_[static_cast<size_t>(depth)];
  std::vector<uint8_t> copy(pkt.bytes.begin(), pkt.bytes.end());
  if (auto why = nat::applyEdit(copy, pkt.parsed, edit); why != DropReason::None) return why;
  grown = std::move(copy);
  pkt.bytes = grown;
  pkt.in_input = false;
  return packet::parse(pkt.bytes, pkt.parsed);
}

std::span<uint8_t> Datapath::scratch(size_t depth, std::span<const uint8_t> from) {
  auto& v = scratch_[depth];
  v.assign(from.begin(), from.end());
  return v;
}

namespace {

conntrack::Limits sharedLimits(conntrack::Limits limits, bool shared) {
  limits.shared = shared;
  return limits;
}

}  // namespace

SharedState::SharedState(const Clock& clock, const Config& config, size_t workers,
                         std::shared_ptr<persist::StateFile> file)
    : shared_(workers > 1),
      file_(std::move(file)),
      conntrack_(clock, sharedLimits(config.conntrack, shared_)),
      snat_(clock, config.snat),
      dnat_(clock),
      lb_(clock),
      ftp_(clock),
      log_limits_(config.security_group_log) {
  if (file_ != nullptr) adopt();
}

namespace {

// A port's conntrack zone as the state file keeps it (version 1).
struct ZoneRecord {
  uint32_t port = 0;
  uint16_t zone = 0;
  uint16_t reserved = 0;
};
constexpr uint8_t kZoneRecordVersion = 1;

// A learned neighbour (version 1): the restarted agent need not ask again
// (and drop what waits for the answer).
struct NeighborRecord {
  uint32_t switch_key = 0;
  uint8_t family = 0;
  uint8_t reserved[3] = {};
  std::array<uint8_t, 16> ip{};
  std::array<uint8_t, 6> mac{};
  uint8_t reserved2[2] = {};
};
static_assert(sizeof(NeighborRecord) == 32);
constexpr uint8_t kNeighborRecordVersion = 1;

}  // namespace

void SharedState::adopt() {
  persist::StateFile& file = *file_;
  // Not shared with any thread yet: the locks are for the analysis.
  MutexLock zones(zones_mu_);
  MutexLock snat(snat_mu_);
  MutexLock dnat(dnat_mu_);
  MutexLock lb(lb_mu_);
  // Given the file first: what a table does not take back, it releases.
  conntrack_.persistTo(file_.get());
  snat_.persistTo(file_.get());
  dnat_.persistTo(file_.get());
  lb_.persistTo(file_.get());
  for (const persist::Record& r : file.adopted()) {
    bool read = false;
    switch (r.kind) {
      case persist::RecordKind::Connection:
        read = conntrack_.adopt(r);
        adopted_.connections += read ? 1 : 0;
        break;
      case persist::RecordKind::Snat:
        read = snat_.adopt(r);
        adopted_.snat += read ? 1 : 0;
        break;
      case persist::RecordKind::LbPin:
        read = lb_.adopt(r);
        adopted_.lb += read ? 1 : 0;
        break;
      case persist::RecordKind::LocalIp:
        read = dnat_.adopt(r);
        adopted_.local_ip += read ? 1 : 0;
        break;
      case persist::RecordKind::Zone: {
        ZoneRecord z;
        read = r.version == kZoneRecordVersion && r.as(z) && z.zone != 0 &&
               zones_.count(z.port) == 0 && zone_ports_.count(z.zone) == 0;
        if (read) {
          zones_[z.port] = z.zone;
          zone_ports_[z.zone] = z.port;
          zone_slots_[z.port] = r.slot;
          next_zone_ = std::max<uint16_t>(next_zone_, static_cast<uint16_t>(z.zone + 1));
          ++adopted_.zones;
        }
        break;
      }
      case persist::RecordKind::Neighbor: {
        NeighborRecord n;
        read = r.version == kNeighborRecordVersion && r.as(n) && (n.family == 4 || n.family == 6);
        if (read) {
          std::unique_lock lock(neighbors_.mu);
          IpAddress ip{n.family, n.ip};
          packet::MacAddress mac;
          std::memcpy(mac.bytes.data(), n.mac.data(), 6);
          read = neighbors_.entries.size() < kMaxNeighbors &&
                 neighbors_.entries.try_emplace({n.switch_key, ip}, mac).second;
          if (read) {
            neighbors_.slots[{n.switch_key, ip}] = r.slot;
            ++adopted_.neighbors;
          }
        }
        break;
      }
      default:
        break;
    }
    if (!read) {
      file.discard(r);
      ++adopted_.unreadable;
    }
  }
  lb_active_.store(!lb_.empty(), std::memory_order_relaxed);
  if (next_zone_ == 0) next_zone_ = 1;
}

DropReason SharedState::snatOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                     packet::Ipv4Address external, nat::SnatHelper helper,
                                     nat::PayloadEdit* edit, nat::PortRange ports) noexcept {
  MutexLock lock(snat_mu_);
  return snat_.translateOutbound(frame, p, external, helper, edit, ports);
}

void SharedState::replicateSnat(bool on) {
  MutexLock lock(snat_mu_);
  // At most this much waits between two sends (about 18,000 mappings);
  // beyond, the periodic full copy carries it.
  constexpr size_t kReplicaLimit = size_t{1} << 20;
  snat_.replicateTo(on ? &snat_replica_ : nullptr, kReplicaLimit);
  if (!on) snat_replica_.clear();
}

std::vector<uint8_t> SharedState::takeSnatReplica() {
  MutexLock lock(snat_mu_);
  std::vector<uint8_t> out;
  out.swap(snat_replica_);
  return out;
}

std::vector<uint8_t> SharedState::snatRecords() const {
  MutexLock lock(snat_mu_);
  std::vector<uint8_t> out;
  snat_.exportAll(out);
  return out;
}

size_t SharedState::absorbSnatReplica(std::span<const uint8_t> records) {
  MutexLock lock(snat_mu_);
  size_t n = 0;
  constexpr size_t kBytes = nat::SnatTable::kRecordBytes;
  for (size_t at = 0; at + kBytes <= records.size(); at += kBytes) {
    if (snat_.absorb(records.subspan(at, kBytes))) ++n;
  }
  return n;
}

DropReason SharedState::ftpFloatingOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                            packet::Ipv4Address inside, packet::Ipv4Address outside,
                                            nat::PayloadEdit& edit) noexcept {
  MutexLock lock(ftp_mu_);
  return ftp_.outbound(frame, p, inside, outside, edit);
}

void SharedState::ftpFloatingInbound(std::span<uint8_t> frame,
                                     const packet::ParsedPacket& p) noexcept {
  MutexLock lock(ftp_mu_);
  ftp_.inbound(frame, p);
}

bool SharedState::fragmentFlow(packet::ParsedPacket& p, SteadyTime now) {
  if (p.key.ip_frag == packet::Fragment::None || p.fragment_ports) return true;
  MaybeLock lock(fragments_mu_, shared_);
  if (p.key.ip_frag == packet::Fragment::First) {
    fragments_.remember(p, now);
    return true;
  }
  return fragments_.fill(p, now);
}

std::vector<SharedState::Neighbor> SharedState::neighborList(size_t limit) const {
  std::shared_lock lock(neighbors_.mu);
  std::vector<Neighbor> out;
  for (const auto& [where, mac] : neighbors_.entries) {
    if (out.size() == limit) break;
    out.push_back({where.first, where.second, mac});
  }
  return out;
}

DropReason SharedState::snatInbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                    bool* plain) noexcept {
  MutexLock lock(snat_mu_);
  return snat_.translateInbound(frame, p, plain);
}

namespace {
packet::Ipv4Address v4Of(const std::array<uint8_t, 16>& a) {
  return packet::Ipv4Address::of(a[0], a[1], a[2], a[3]);
}
}  // namespace

bool SharedState::snatKeepAlive(const conntrack::ConnKey& outbound, bool used) noexcept {
  MutexLock lock(snat_mu_);
  return snat_.keepAlive(v4Of(outbound.src), outbound.src_port, v4Of(outbound.dst),
                         outbound.dst_port, outbound.protocol, used);
}

bool SharedState::localIpKeepAlive(const conntrack::ConnKey& reply, bool used) noexcept {
  MutexLock lock(dnat_mu_);
  return dnat_.keepAlive(v4Of(reply.src), reply.src_port, v4Of(reply.dst), reply.dst_port,
                         reply.protocol, used);
}

DropReason SharedState::localIpForward(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                       packet::Ipv4Address target) noexcept {
  MutexLock lock(dnat_mu_);
  return dnat_.translate(frame, p, target);
}

bool SharedState::localIpReply(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept {
  MutexLock lock(dnat_mu_);
  return dnat_.translateReply(frame, p);
}

std::optional<nat::LbTarget> SharedState::lbPinned(const packet::ParsedPacket& p,
                                                   uint16_t zone) const {
  MutexLock lock(lb_mu_);
  return lb_.pinned(p, zone);
}

DropReason SharedState::lbPin(const packet::ParsedPacket& p, uint16_t zone, nat::LbTarget member,
                              uint64_t listener) noexcept {
  MutexLock lock(lb_mu_);
  return lb_.pin(p, zone, member, listener);
}

DropReason SharedState::lbForward(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                  uint16_t zone, nat::LbTarget member, bool hairpin,
                                  uint64_t listener, uint32_t limit) noexcept {
  MutexLock lock(lb_mu_);
  auto why = lb_.translate(frame, p, zone, member, hairpin, listener, limit);
  lb_active_.store(!lb_.empty(), std::memory_order_relaxed);
  return why;
}

bool SharedState::lbReply(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                          uint16_t zone) noexcept {
  MutexLock lock(lb_mu_);
  return lb_.translateReply(frame, p, zone);
}

namespace {
nat::LbTable::Key lbKey(const conntrack::ConnKey& forward) {
  return {.src = forward.src,
          .dst = forward.dst,
          .src_port = forward.src_port,
          .dst_port = forward.dst_port,
          .zone = forward.zone,
          .protocol = forward.protocol,
          .family = forward.family};
}
}  // namespace

bool SharedState::lbKeepAlive(const conntrack::ConnKey& forward, bool used, uint64_t bytes_in,
                              uint64_t bytes_out) noexcept {
  MutexLock lock(lb_mu_);
  return lb_.keepAlive(lbKey(forward), used, bytes_in, bytes_out);
}

void SharedState::lbClose(const conntrack::ConnKey& forward) noexcept {
  MutexLock lock(lb_mu_);
  lb_.close(lbKey(forward));
}

bool SharedState::lbImport(const conntrack::ConnKey& forward, const nat::LbTarget& member,
                           uint64_t listener, bool closing) noexcept {
  MutexLock lock(lb_mu_);
  const bool imported = lb_.import(lbKey(forward), member, listener, closing);
  if (imported) lb_active_.store(true, std::memory_order_relaxed);
  return imported;
}

size_t SharedState::lbConnections(uint64_t listener, const nat::LbTarget& member) const {
  MutexLock lock(lb_mu_);
  return lb_.connections(listener, member);
}

std::map<uint64_t, nat::LbTable::Counters> SharedState::lbCounters() const {
  MutexLock lock(lb_mu_);
  return lb_.counters();
}

size_t SharedState::lbSize() const {
  MutexLock lock(lb_mu_);
  return lb_.size();
}

size_t SharedState::snatSize() const {
  MutexLock lock(snat_mu_);
  return snat_.size();
}

std::optional<packet::MacAddress> SharedState::NeighborTable::find(uint32_t switch_key,
                                                                   const IpAddress& ip) const {
  std::shared_lock lock(mu);
  auto it = entries.find({switch_key, ip});
  if (it == entries.end()) return std::nullopt;
  return it->second;
}

bool SharedState::learnNeighbor(uint32_t switch_key, const IpAddress& ip,
                                const packet::MacAddress& mac) {
  {
    std::shared_lock lock(neighbors_.mu);
    auto it = neighbors_.entries.find({switch_key, ip});
    if (it != neighbors_.entries.end() && it->second == mac) return false;  // the usual case
  }
  std::unique_lock lock(neighbors_.mu);
  auto [it, inserted] = neighbors_.entries.try_emplace({switch_key, ip}, mac);
  if (!inserted && it->second == mac) return false;
  if (inserted && neighbors_.entries.size() > kMaxNeighbors) {
    neighbors_.entries.erase(it);
    return false;
  }
  it->second = mac;
  if (file_ != nullptr) {
    auto [slot, made] = neighbors_.slots.try_emplace({switch_key, ip}, persist::kNoSlot);
    if (made) slot->second = file_->allocate();
    NeighborRecord n{.switch_key = switch_key, .family = ip.family, .ip = ip.bytes};
    std::memcpy(n.mac.data(), mac.bytes.data(), 6);
    file_->write(slot->second, persist::RecordKind::Neighbor, kNeighborRecordVersion, n);
  }
  uint64_t epoch = neighbor_epoch_.load(std::memory_order_relaxed) + 1;
  neighbors_.log.emplace_back(epoch, simulator::neighborTag(switch_key, ip));
  while (neighbors_.log.size() > kNeighborLog) neighbors_.log.pop_front();
  neighbor_epoch_.store(epoch, std::memory_order_release);
  return true;
}

bool SharedState::neighborChangesSince(uint64_t& epoch, std::vector<flowcache::Tag>& tags) const {
  std::shared_lock lock(neighbors_.mu);
  uint64_t latest = neighbor_epoch_.load(std::memory_order_acquire);
  bool complete =
      epoch == latest || (!neighbors_.log.empty() && neighbors_.log.front().first <= epoch + 1);
  if (complete) {
    for (const auto& [e, tag] : neighbors_.log) {
      if (e > epoch) tags.push_back(tag);
    }
  }
  epoch = latest;
  return complete;
}

uint16_t SharedState::zoneOf(uint32_t port) {
  MutexLock lock(zones_mu_);
  auto [it, inserted] = zones_.try_emplace(port, next_zone_);
  if (inserted) {
    // Zone 0 stays unused; after 65535 ports the numbers come round again.
    next_zone_ = static_cast<uint16_t>(next_zone_ == 0xffff ? 1 : next_zone_ + 1);
    if (file_ != nullptr) {
      // Kept, so that the next process tracks this port's connections in
      // the same zone (the zone is part of their keys).
      auto was = zone_ports_.find(it->second);
      uint32_t slot = persist::kNoSlot;
      if (was != zone_ports_.end()) {
        // The numbers came round: the zone's earlier port loses it.
        auto old = zone_slots_.find(was->second);
        if (old != zone_slots_.end()) {
          slot = old->second;
          zone_slots_.erase(old);
        }
        zones_.erase(was->second);
      }
      if (slot == persist::kNoSlot) slot = file_->allocate();
      zone_ports_[it->second] = port;
      zone_slots_[port] = slot;
      file_->write(slot, persist::RecordKind::Zone, kZoneRecordVersion,
                   ZoneRecord{.port = port, .zone = it->second});
    }
  }
  return it->second;
}

bool SharedState::logSecurityGroup(SecurityGroupLogRecord record, SteadyTime now) {
  MutexLock lock(log_mu_);
  if (!log_started_) {
    log_started_ = true;
    log_tokens_ = log_limits_.burst;
    log_refilled_ = now;
  }
  if (now > log_refilled_) {
    const double seconds = std::chrono::duration<double>(now - log_refilled_).count();
    log_tokens_ = std::min(log_limits_.burst, log_tokens_ + seconds * log_limits_.rate);
    log_refilled_ = now;
  }
  if (log_tokens_ < 1 || log_.size() >= log_limits_.queued) {
    log_suppressed_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  log_tokens_ -= 1;
  log_.push_back(std::move(record));
  log_written_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

std::vector<SecurityGroupLogRecord> SharedState::takeSecurityGroupLog() {
  MutexLock lock(log_mu_);
  std::vector<SecurityGroupLogRecord> out;
  out.swap(log_);
  return out;
}

std::shared_ptr<Policer> SharedState::policer(uint32_t port, bool sending) {
  MutexLock lock(policers_mu_);
  auto& p = policers_[uint64_t{port} << 1 | (sending ? 1 : 0)];
  if (p == nullptr) p = std::make_shared<Policer>();
  return p;
}

void SharedState::prunePolicers(const std::function<bool(uint32_t port)>& keep) {
  MutexLock lock(policers_mu_);
  std::erase_if(policers_,
                [&](const auto& entry) { return !keep(static_cast<uint32_t>(entry.first >> 1)); });
}

bool SharedState::admitSlowPath(uint32_t port, bool control, const SlowPathLimits& limits,
                                SteadyTime now) {
  const uint32_t rate = control ? limits.control_per_second : limits.flows_per_second;
  if (rate == 0) return true;
  const uint32_t burst = control ? limits.control_burst : limits.flows_burst;
  MutexLock lock(policers_mu_);  // the slow path: the simulator runs next
  auto& bucket = slow_path_[uint64_t{port} << 1 | (control ? 1 : 0)];
  if (bucket == nullptr) bucket = std::make_unique<RateLimiter>();
  return bucket->admit(now, rate, std::max(burst, uint32_t{1}));
}

void SharedState::pruneSlowPath(const std::function<bool(uint32_t port)>& keep) {
  MutexLock lock(policers_mu_);
  std::erase_if(slow_path_,
                [&](const auto& entry) { return !keep(static_cast<uint32_t>(entry.first >> 1)); });
}

void SharedState::sweep() {
  conntrack_.sweep();
  {
    MutexLock lock(lb_mu_);
    lb_.sweep();
    lb_active_.store(!lb_.empty(), std::memory_order_relaxed);
  }
  {
    MutexLock lock(snat_mu_);
    snat_.sweep();
  }
  {
    MutexLock lock(ftp_mu_);
    ftp_.sweep();
  }
  MutexLock lock(dnat_mu_);
  dnat_.sweep();
}

Datapath::Datapath(const Clock& clock, Config config, std::shared_ptr<SharedState> shared)
    : clock_(clock),
      config_(std::move(config)),
      shared_(shared != nullptr ? std::move(shared)
                                : std::make_shared<SharedState>(clock, config_)),
      cache_(config_.flow_cache_entries),
      ct_cache_(shared_->conntrack().shared() ? std::make_unique<conntrack::ConnCache>() : nullptr),
      neighbor_epoch_(shared_->neighborEpoch()),
      scratch_(kMaxDepth),
      grown_(kMaxDepth) {}

void Datapath::setTopology(std::shared_ptr<const topology::Topology> next) {
  if (topology_ != nullptr && next != nullptr) {
    for (auto tag : simulator::changedTags(*topology_, *next)) invalidate(tag);
  } else {
    invalidateAll();
  }
  topology_ = std::move(next);
  lb_selectors_.clear();
  std::erase_if(port_drops_, [&](const auto& entry) {
    return topology_ == nullptr || topology_->findPort(entry.first) == nullptr;
  });
  // QoS buckets of ports that left (or lost their limits).
  auto limited = [&](uint32_t port) {
    const topology::Port* p = topology_ == nullptr ? nullptr : topology_->findPort(port);
    return p != nullptr && (p->qos.egress || p->qos.ingress);
  };
  std::erase_if(policers_, [&](const auto& entry) {
    return !limited(static_cast<uint32_t>(entry.first >> 1));
  });
  if (!policers_.empty() || topology_ == nullptr) shared_->prunePolicers(limited);
  shared_->pruneSlowPath(
      [&](uint32_t port) { return topology_ != nullptr && topology_->findPort(port) != nullptr; });
  uplink_switches_.clear();
  local_gateways_.clear();
  leased_gateways_.clear();
  hosts_by_address_.clear();
  lb_floating_.clear();
  if (topology_ == nullptr) return;
  const auto& uplinks = config_.host.uplinks;
  for (const auto& [key, sw] : topology_->switches()) {
    auto it = std::find(uplinks.begin(), uplinks.end(), sw.physical_network);
    if (sw.physical_network.empty() || it == uplinks.end()) continue;
    uplink_switches_[{static_cast<uint32_t>(it - uplinks.begin()), sw.vlan}] = key;
  }
  for (const auto& [key, r] : topology_->routers()) {
    if (!r.gateway) continue;
    if (r.gateway->host != config_.host.host) {
      if (r.gateway->leaseOf(config_.host.host) != nullptr && !r.gateway->ips.empty()) {
        leased_gateways_[key] = r.gateway->ips.front();
      }
      continue;
    }
    for (const auto& ip : r.gateway->ips) local_gateways_[{r.gateway->switch_key, ip}] = key;
  }
  for (const auto& [key, h] : topology_->hosts()) hosts_by_address_[h.tunnel_ip] = key;
  for (const auto& f : topology_->floatingIps()) {
    const topology::Port* vip = topology_->findPort(f.port_key);
    const topology::Router* r = topology_->findRouter(f.router_key);
    if (vip != nullptr && !vip->listeners.empty() && r != nullptr && r->gateway &&
        r->gateway->host == config_.host.host) {
      lb_floating_[f.external] = f.router_key;
    }
  }
}

void Datapath::learnNeighbor(uint32_t switch_key, const IpAddress& ip,
                             const packet::MacAddress& mac) {
  if (shared_->learnNeighbor(switch_key, ip, mac)) catchUpNeighbors();
}

void Datapath::catchUpNeighbors() {
  if (shared_->neighborEpoch() == neighbor_epoch_) return;
  neighbor_tags_.clear();
  if (!shared_->neighborChangesSince(neighbor_epoch_, neighbor_tags_)) {
    invalidateAll();
    return;
  }
  for (auto tag : neighbor_tags_) invalidate(tag);
}

void Datapath::invalidate(flowcache::Tag tag) {
  cache_.invalidate(tag);
  if (config_.offer_flows && !invalidations_.all) invalidations_.tags.push_back(tag);
  // Held offers made of what changed go too (they are at most kMaxPending).
  if (!pending_order_.empty()) {
    std::erase_if(pending_order_, [&](const std::shared_ptr<const Pending>& p) {
      const auto& tags = p->offer.tags;
      if (!std::binary_search(tags.begin(), tags.end(), tag)) return false;
      forgetPending(*p);
      return true;
    });
  }
}

void Datapath::invalidateAll() {
  cache_.clear();
  if (config_.offer_flows) invalidations_ = {.all = true, .tags = {}};
  pending_.clear();
  pending_order_.clear();
}

void Datapath::sweep() { shared_->sweep(); }

void Datapath::drop(DropReason why, Trace* trace, uint32_t port) {
  ++counters_.drops[static_cast<size_t>(why)];
  verdict_.drop = why;
  if (port != 0) ++port_drops_[port][static_cast<size_t>(why)];
  if (trace != nullptr) {
    trace->push_back("drop: " + std::string(dropReasonText(why)));
  }
}

// A load balancer's connections are tracked in the client port's zone; on
// the gateway host (clients outside, through a floating IP), in a zone of
// the router's, apart from every port's.
uint16_t Datapath::lbZone(const Context& ctx, uint32_t router) {
  if (ctx.stage == Stage::FromPort || ctx.stage == Stage::ToPort) return zoneOf(ctx.key);
  return zoneOf(0x80000000u | router);
}

void Datapath::importConnection(uint32_t from, uint32_t to, conntrack::ConnKey tuple,
                                bool answered) {
  if (topology_ == nullptr) return;
  clock_.refresh();
  for (uint32_t key : {from, to}) {
    const topology::Port* port = key != 0 ? topology_->findPort(key) : nullptr;
    // (As offers take their connections: a port without port security, or
    // with stateless groups only, has none.)
    if (port == nullptr || !port->port_security || topology_->isStateless(key)) continue;
    tuple.zone = zoneOf(key);
    shared_->conntrack().import(tuple, answered, clock_.now());
  }
}

bool Datapath::lbReplyBack(const Context& ctx, Packet& pkt, Trace* trace) {
  auto& p = pkt.parsed;
  const packet::FlowKey arrived = p.key;
  if (!shared_->lbReply(pkt.bytes, p, lbZone(ctx, ctx.key))) return false;
  // A reply from a load balancer's member: from the VIP again, before the
  // client's conntrack sees it.
  packet::parse(pkt.bytes, p);
  p.key.in_port = ctx.key;
  const auto& k = p.key;
  // (Its source alone translated, to a port: a kernel flow may repeat it.)
  if (ctx.stage == Stage::ToPort &&
      (k.ip_proto == packet::ipproto::kTcp || k.ip_proto == packet::ipproto::kUdp) &&
      k.ip_dst == arrived.ip_dst && k.tp_dst == arrived.tp_dst) {
    pkt.lb_arrived = arrived;
    pkt.lb_reply = {.src = k.ip_dst,
                    .dst = k.ip_src,
                    .src_port = k.tp_dst,
                    .dst_port = k.tp_src,
                    .zone = lbZone(ctx, ctx.key),
                    .protocol = k.ip_proto,
                    .family = familyOf(k)};
  }
  if (trace != nullptr) trace->push_back("load balancer: reply translated back to the VIP");
  return true;
}

void Datapath::lbReplyOffer(const Packet& pkt, FlowOffer& offer) {
  // Its source the VIP's address and port again, as translateReply made it.
  const auto& k = pkt.parsed.key;
  offer.nat_ip_src = srcOf(k);
  offer.nat_port_src = k.tp_src;
  offer.lb = pkt.lb_reply;
  offer.lb_reply = true;
}

std::shared_ptr<const LbSelector> Datapath::lbSelector(uint32_t switch_key, const IpAddress& vip,
                                                       uint8_t protocol, uint16_t port) {
  const auto key = std::tuple{switch_key, vip, protocol, port};
  if (auto it = lb_selectors_.find(key); it != lb_selectors_.end()) return it->second;
  std::shared_ptr<const LbSelector> made;
  const topology::Balancer* b =
      topology_ != nullptr ? topology_->balancerAt(switch_key, vip, protocol, port) : nullptr;
  if (b != nullptr) {
    const topology::LbListener& l = topology_->listenerOf(*b);
    const bool backup = b->primary == nullptr;
    const auto& table = backup ? b->backup : b->primary;
    const auto& members = backup ? b->backup_members : b->primary_members;
    if (table != nullptr && table->entries().size() <= LbSelector::kMaxEntries &&
        l.algorithm != topology::LbAlgorithm::LeastConnections && l.connection_limit == 0) {
      auto s = std::make_shared<LbSelector>();
      s->listener = nat::stableHash(l.id);
      s->source_only = l.source_ip_persistence || l.algorithm == topology::LbAlgorithm::SourceIp;
      s->members.reserve(table->entries().size());
      for (uint16_t e : table->entries()) {
        s->members.push_back(e < members.size() ? members[e] : LbSelector::kNone);
      }
      made = std::move(s);
    }
  }
  lb_selectors_.emplace(key, made);
  return made;
}

bool Datapath::snatOfferable(const Packet& pkt) {
  const auto& k = pkt.parsed.key;
  return pkt.snat_arrived.has_value() && k.eth_type == ethertype::kIpv4 &&
         (k.ip_proto == packet::ipproto::kTcp || k.ip_proto == packet::ipproto::kUdp);
}

uint16_t Datapath::zoneOf(uint32_t port) {
  auto it = zones_.find(port);
  if (it != zones_.end()) return it->second;
  uint16_t zone = shared_->zoneOf(port);
  zones_.emplace(port, zone);
  return zone;
}

Policer& Datapath::policerFor(const simulator::Action& a) {
  auto& p = policers_[uint64_t{a.port} << 1 | (a.source_side ? 1 : 0)];
  if (p == nullptr) p = shared_->policer(a.port, a.source_side);
  return *p;
}

uint32_t Datapath::groupSetId(const simulator::Sender& sender) {
  if (!sender.known) return 0;
  auto it = group_sets_.find(sender.groups);
  if (it != group_sets_.end()) return it->second;
  if (group_sets_.size() >= kMaxGroupSets) return UINT32_MAX;  // not cached
  auto id = static_cast<uint32_t>(group_sets_.size() + 1);
  group_sets_.emplace(sender.groups, id);
  return id;
}

Verdict Datapath::process(const Ingress& in, std::span<const uint8_t> frame, Outputs& out,
                          Trace* trace) {
  clock_.refresh();
  catchUpNeighbors();
  input_index_ = 0;
  segment_size_ = 0;
  verdict_ = {};
  size_t before = out.items().size();
  processOne(in, frame, {}, out, trace);
  verdict_.outputs = out.items().size() - before;
  return verdict_;
}

void Datapath::processBatch(std::span<const Input> batch, Outputs& out) {
  clock_.refresh();
  catchUpNeighbors();
  for (size_t i = 0; i < batch.size(); ++i) {
    input_index_ = static_cast<uint32_t>(i);
    segment_size_ = batch[i].segment_size;
    const Input& input = batch[i];
    processOne(input.in, input.writable.empty() ? input.frame : input.writable, input.writable, out,
               nullptr);
  }
}

std::span<uint8_t> Datapath::addOutput(Outputs& out, Outputs::Item item, size_t length) {
  item.input = input_index_;
  return out.add(item, length);
}

void Datapath::processOne(const Ingress& in, std::span<const uint8_t> frame,
                          std::span<uint8_t> writable, Outputs& out, Trace* trace) {
  ++counters_.packets;
  if (topology_ == nullptr) return drop(DropReason::NoTopology, trace);
  switch (in.kind) {
    case Ingress::Kind::Tunnel:
      return fromTunnel(in, frame, writable, out, trace);
    case Ingress::Kind::Uplink:
      return fromUplink(in, frame, writable, out, trace);
    case Ingress::Kind::Port:
    case Ingress::Kind::Metadata:
      break;
  }
  Packet pkt;
  pkt.bytes = writable.empty() ? scratch(0, frame) : writable;
  pkt.in_input = !writable.empty();
  pkt.in = in;
  if (auto why = packet::parse(pkt.bytes, pkt.parsed); why != DropReason::None) {
    return drop(why, trace, in.port);
  }
  if (in.kind == Ingress::Kind::Metadata) {
    return runStage({.stage = Stage::FromMetadata}, pkt, out, trace, 0);
  }
  uint32_t port = in.port;
  if (const uint16_t vid = pkt.parsed.key.vlan_tci & 0x0fff; vid != 0) {
    // A trunk's subport: its VLAN on the parent's interface, untagged here
    // and sent on as the subport's (answers go back tagged).
    const topology::Port* parent = topology_->findPort(in.port);
    const topology::TrunkSubport* sub = nullptr;
    if (parent != nullptr) {
      for (const auto& s : parent->subports) {
        if (s.vid == vid) sub = &s;
      }
    }
    if (sub != nullptr) {
      auto& untagged = scratch_[0];
      if (untagged.data() != pkt.bytes.data()) {
        untagged.assign(pkt.bytes.begin(), pkt.bytes.begin() + 12);
        untagged.insert(untagged.end(), pkt.bytes.begin() + 16, pkt.bytes.end());
      } else {
        untagged.erase(untagged.begin() + 12, untagged.begin() + 16);
      }
      pkt.bytes = untagged;
      pkt.in_input = false;
      if (auto why = packet::parse(pkt.bytes, pkt.parsed); why != DropReason::None) {
        return drop(why, trace, sub->port);
      }
      pkt.trunk_vid = vid;
      port = sub->port;
      if (trace != nullptr) {
        trace->push_back("trunk: VLAN " + std::to_string(vid) + " is subport " +
                         std::to_string(port));
      }
    }
  }
  runStage({.stage = Stage::FromPort, .key = port}, pkt, out, trace, 0);
}

void Datapath::fromUplink(const Ingress& in, std::span<const uint8_t> frame,
                          std::span<uint8_t> writable, Outputs& out, Trace* trace) {
  Packet pkt;
  pkt.in = in;
  if (auto why = packet::parse(frame, pkt.parsed); why != DropReason::None) {
    return drop(why, trace);
  }
  auto vid = static_cast<uint16_t>(pkt.parsed.key.vlan_tci & 0x0fff);
  auto sw = uplink_switches_.find({in.uplink, vid});
  if (sw == uplink_switches_.end()) return drop(DropReason::UnknownUplink, trace);
  if (pkt.parsed.key.vlan_tci != 0) {
    // The switch is known by its tag: carry the frame untagged.
    auto& untagged = scratch_[0];
    untagged.assign(frame.begin(), frame.begin() + 12);
    untagged.insert(untagged.end(), frame.begin() + 16, frame.end());
    pkt.bytes = untagged;
    packet::parse(pkt.bytes, pkt.parsed);
  } else {
    pkt.bytes = writable.empty() ? scratch(0, frame) : writable;
    pkt.in_input = !writable.empty();
  }
  auto bytes = pkt.bytes;
  const auto& k = pkt.parsed.key;
  if (k.eth_type == ethertype::kArp) {
    packet::ArpPacket arp;
    if (packet::load(bytes, pkt.parsed.l3_offset, arp) && arp.sender_ip.host() != 0 &&
        !arp.sender_mac.isMulticast()) {
      const auto& b = arp.sender_ip.value.b;
      learnNeighbor(sw->second, IpAddress::v4(b[0], b[1], b[2], b[3]), arp.sender_mac);
    }
  } else if (auto who = ndSpeaker(bytes, pkt.parsed); who && !k.eth_src.isMulticast()) {
    learnNeighbor(sw->second, *who, k.eth_src);
  } else if (k.eth_type == ethertype::kIpv4) {
    IpAddress to = IpAddress::v4(k.ip_dst[0], k.ip_dst[1], k.ip_dst[2], k.ip_dst[3]);
    if (auto g = local_gateways_.find({sw->second, to}); g != local_gateways_.end()) {
      // Replies to router SNAT find their connection's inside address;
      // what matches none is for the router itself. A later fragment by
      // its first fragment's ports.
      if (!shared_->fragmentFlow(pkt.parsed, clock_.now())) {
        return drop(DropReason::FragmentUnknown, trace);
      }
      // Distributed SNAT: a reply in another host's lease is translated
      // back there.
      if (steerToLease(g->second, to, pkt, out, trace)) return;
      const packet::FlowKey arrived = pkt.parsed.key;
      bool plain = false;
      if (shared_->snatInbound(bytes, pkt.parsed, &plain) == DropReason::None) {
        pkt.snat_external = packet::Ipv4Address::of(to);
        if (plain) pkt.snat_arrived = arrived;
        packet::parse(bytes, pkt.parsed);
        if (trace != nullptr) trace->push_back("SNAT: reply translated back to the inside");
      }
    }
  }
  pkt.uplink_switch = sw->second;
  runStage({.stage = Stage::FromUplink, .key = sw->second}, pkt, out, trace, 0);
}

namespace {

// Distributed SNAT: the port of the gateway's address a packet from outside
// is for: a reply's destination port or echo identifier, or the port the
// packet an ICMP error quotes left from.
std::optional<uint16_t> snatPortOf(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  const auto& k = p.key;
  if (p.l4_offset == 0 && !p.fragment_ports) return std::nullopt;
  switch (k.ip_proto) {
    case packet::ipproto::kTcp:
    case packet::ipproto::kUdp:
      return k.tp_dst;
    case packet::ipproto::kIcmp: {
      if (k.tp_src == 0 || k.tp_src == 8) return k.icmp_id;
      nat::IcmpQuote q;
      packet::UdpHeader quoted;  // the first 8 bytes of TCP, UDP or ICMP
      if (p.l4_offset == 0 || nat::icmpQuote(frame, p, q) != DropReason::None || q.later_fragment ||
          !packet::load(frame, q.l4_offset, quoted)) {
        return std::nullopt;
      }
      if (q.protocol == packet::ipproto::kTcp || q.protocol == packet::ipproto::kUdp) {
        return quoted.src_port.host();
      }
      if (q.protocol == packet::ipproto::kIcmp) return quoted.length.host();  // the identifier
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

bool Datapath::steerToLease(uint32_t router_key, const IpAddress& to, Packet& pkt, Outputs& out,
                            Trace* trace) {
  const topology::Router* r = topology_->findRouter(router_key);
  if (r == nullptr || !r->gateway || r->gateway->leases.empty() || to != r->gateway->ips.front()) {
    return false;
  }
  auto port = snatPortOf(pkt.bytes, pkt.parsed);
  const topology::SnatLease* lease = port ? r->gateway->leaseFor(*port) : nullptr;
  if (lease == nullptr || lease->host == config_.host.host) return false;
  const topology::Host* h = topology_->findHost(lease->host);
  const topology::Switch* ext = topology_->findSwitch(r->gateway->switch_key);
  if (h == nullptr || ext == nullptr) {
    drop(DropReason::DestinationUnbound, trace);
    return true;
  }
  if (trace != nullptr) {
    trace->push_back("distributed SNAT: port " + std::to_string(*port) + " is leased to " +
                     h->name + ": tunnelled there");
  }
  simulator::Action a{.kind = ActionKind::Tunnel};
  a.host = h->key;
  a.remote = h->tunnel_ip;
  a.vxlan = !h->geneve;
  a.router = router_key;
  a.vni = ext->vni;
  a.source_side = false;
  ++counters_.snat_steered;
  emitTunnel(a, pkt, out);
  return true;
}

void Datapath::fromTunnel(const Ingress& in, std::span<const uint8_t> payload,
                          std::span<uint8_t> writable, Outputs& out, Trace* trace) {
  if (!hosts_by_address_.count(in.source)) return drop(DropReason::TunnelUnknownSource, trace);
  packet::TunnelInfo t;
  DropReason why = in.encapsulation == Encapsulation::Geneve ? packet::parseGeneve(payload, t)
                                                             : packet::parseVxlan(payload, t);
  if (why != DropReason::None) return drop(why, trace);
  if (t.control) return drop(DropReason::TunnelBadOption, trace);
  packet::CanopyOptions options;
  if (auto bad = packet::decodeCanopyOptions(t, options); bad != DropReason::None) {
    return drop(bad, trace);
  }
  uint32_t dest_port = options.port, dest_router = options.router;
  bool has_destination = options.has_destination;
  simulator::Sender sender;
  if (options.groups_known) {
    sender.known = true;
    for (size_t i = 0; i < options.groupCount(); ++i) sender.groups.push_back(options.group(i));
    std::sort(sender.groups.begin(), sender.groups.end());
  }
  const topology::Switch* sw = topology_->switchByVni(t.vni);
  if (sw == nullptr) return drop(DropReason::UnknownVni, trace);

  Packet pkt;
  pkt.in = in;
  pkt.bytes = writable.empty() ? scratch(0, payload.subspan(t.inner_offset))
                               : writable.subspan(t.inner_offset);
  pkt.in_input = !writable.empty();
  pkt.vni = t.vni;
  if (auto w = packet::parse(pkt.bytes, pkt.parsed); w != DropReason::None) {
    return drop(w, trace);
  }
  const auto& k = pkt.parsed.key;
  if (!has_destination) {
    // VXLAN: the destination by MAC.
    if (auto rp = topology_->routerPortByMac(sw->key, k.eth_dst); rp && rp->interface == nullptr) {
      dest_router = rp->router->key;
    } else if (const auto* p = topology_->portByMac(sw->key, k.eth_dst)) {
      dest_port = p->key;
    }
  }
  if (trace != nullptr) {
    trace->push_back("tunnel in: VNI " + std::to_string(t.vni) + " (network " + sw->id + ")" +
                     (sender.known ? ", sender groups tagged" : ", sender groups by address"));
  }
  if (dest_router != 0) {
    // Distributed SNAT: a reply to this host's translation, from the host
    // holding the gateway (to the gateway's address, in this host's lease).
    if (auto l = leased_gateways_.find(dest_router);
        l != leased_gateways_.end() && k.eth_type == ethertype::kIpv4 && dstOf(k) == l->second) {
      if (!shared_->fragmentFlow(pkt.parsed, clock_.now())) {
        return drop(DropReason::FragmentUnknown, trace);
      }
      if (auto bad = shared_->snatInbound(pkt.bytes, pkt.parsed); bad != DropReason::None) {
        return drop(bad, trace);
      }
      pkt.snat_external = packet::Ipv4Address::of(l->second);
      packet::parse(pkt.bytes, pkt.parsed);
      if (trace != nullptr) trace->push_back("distributed SNAT: reply translated back here");
      return runStage({.stage = Stage::FromSnatLease, .key = dest_router}, pkt, out, trace, 0);
    }
    return runStage({.stage = Stage::ToGateway, .key = dest_router}, pkt, out, trace, 0);
  }
  if (dest_port != 0) {
    return runStage({.stage = Stage::ToPort, .key = dest_port, .sender = std::move(sender)}, pkt,
                    out, trace, 0);
  }
  if (!has_destination && !k.eth_dst.isMulticast()) {
    return drop(DropReason::TunnelNotForHost, trace);
  }
  // A flood from another host (broadcast, or unknown unicast that each
  // port's security then refuses): every local port on the switch, never
  // back into a tunnel.
  for (uint32_t pk : topology_->portsOn(sw->key)) {
    const topology::Port* p = topology_->findPort(pk);
    if (p->host != config_.host.host || !p->admin_up) continue;
    Packet copy = pkt;
    copy.in_input = false;  // the ports share the bytes: each output is a copy
    runStage({.stage = Stage::ToPort, .key = pk, .sender = sender}, copy, out, trace, 0);
  }
}

namespace {

// What a packet that misses the flow cache is, for slow-path protection:
// the drop reason it gets beyond its port's limit.
DropReason slowPathKind(const packet::FlowKey& k) {
  if (k.eth_type == packet::ethertype::kArp) return DropReason::ArpRateLimited;
  if (k.ip_proto == packet::ipproto::kIcmpv6 && k.eth_type == packet::ethertype::kIpv6) {
    // Router and neighbour solicitations and advertisements, redirects.
    return k.tp_src >= 133 && k.tp_src <= 137 ? DropReason::NdRateLimited
                                              : DropReason::IcmpRateLimited;
  }
  if (k.ip_proto == packet::ipproto::kIcmp && k.eth_type == packet::ethertype::kIpv4) {
    return DropReason::IcmpRateLimited;
  }
  if (k.ip_proto == packet::ipproto::kUdp && (k.tp_dst == 67 || k.tp_dst == 547)) {
    return DropReason::DhcpRateLimited;
  }
  return DropReason::FlowSetupRateLimited;
}

}  // namespace

void Datapath::runStage(Context ctx, Packet& pkt, Outputs& out, Trace* trace, int depth) {
  auto& p = pkt.parsed;
  p.key.in_port = ctx.key;
  if (isIp(p.key) && !shared_->fragmentFlow(p, clock_.now())) {
    const bool port = ctx.stage == Stage::FromPort || ctx.stage == Stage::ToPort;
    return drop(DropReason::FragmentUnknown, trace, port ? ctx.key : 0);
  }
  // Whether this stage rewrote the packet before its decision: what the
  // decision's actions do is then not all that happened to it.
  bool rewritten = false;
  pkt.lb_reply = {};
  if ((ctx.stage == Stage::ToPort || ctx.stage == Stage::ToGateway) && shared_->lbActive() &&
      isIp(p.key)) {
    rewritten = lbReplyBack(ctx, pkt, trace);
  }
  if ((ctx.stage == Stage::FromPort || ctx.stage == Stage::ToPort) && isIp(p.key) &&
      !topology_->isStateless(ctx.key)) {
    // (A port with stateless groups is not tracked: its rules see each
    // packet on its own.)
    auto l =
        shared_->conntrack().lookup(p, pkt.bytes, zoneOf(ctx.key), clock_.now(), ct_cache_.get());
    ctx.ct = l.state;
    ctx.ct_reply = l.reply;
    ctx.ct_closing = l.closing;
    ctx.ct_invalid = l.invalid_reason;
    // A connection that a RST ended, or whose both sides sent FIN: its
    // flows leave the kernel (what is left of it is the agent's), so that
    // the kernel's map holds live connections only.
    if (config_.offer_flows && p.key.ip_proto == packet::ipproto::kTcp &&
        ((p.key.tcp_flags & packet::TcpHeader::kRst) != 0 ||
         (l.closing && (p.key.tcp_flags & packet::TcpHeader::kFin) != 0))) {
      retractions_.push_back(conntrack::connKey(p, zoneOf(ctx.key)));
    }
  }
  flowcache::CacheKey key{p.key, contextBits(ctx), 0};
  // Of a TCP segment's flags only SYN, FIN and RST can change a decision
  // (conntrack has looked at all of them already): an established
  // connection's ACK and PSH segments share one.
  key.flow.tcp_flags &= packet::TcpHeader::kSyn | packet::TcpHeader::kFin | packet::TcpHeader::kRst;
  if (ctx.stage == Stage::ToPort) key.reserved = groupSetId(ctx.sender);
  if (isIp(p.key) && (topology_->isVip(dstOf(p.key)) || !lb_floating_.empty())) {
    // A connection to a VIP (or, on the gateway host, to a floating IP on
    // one) may be pinned to a member already.
    std::optional<uint16_t> zone;
    if (ctx.stage == Stage::FromPort && topology_->isVip(dstOf(p.key))) {
      if (balancedElsewhere(ctx, pkt, out, trace, depth)) return;
      zone = zoneOf(ctx.key);
    } else if (ctx.stage == Stage::FromUplink) {
      if (auto f = lb_floating_.find(dstOf(p.key)); f != lb_floating_.end()) {
        zone = lbZone(ctx, f->second);
      }
    }
    if (auto pin = zone ? shared_->lbPinned(p, *zone) : std::nullopt) {
      ctx.lb_member = pin->address;
      ctx.lb_member_port = pin->port;
      key.reserved = pinId(*pin);
    }
  }

  CachedDecision d;
  if (trace == nullptr) {
    if (const CachedDecision* hit = cache_.find(key)) d = *hit;
  }
  if (d == nullptr) {
    // Slow-path protection: what a local port makes this host work out.
    // Flows are counted as connections: a packet of one that conntrack
    // holds (its answer, its first ACK or FIN) was paid for by its opening.
    const DropReason kind = slowPathKind(p.key);
    const bool paid =
        kind == DropReason::FlowSetupRateLimited &&
        (ctx.ct == conntrack::CtState::Established || ctx.ct == conntrack::CtState::Related);
    if (ctx.stage == Stage::FromPort && trace == nullptr && !paid) {
      if (!shared_->admitSlowPath(ctx.key, kind != DropReason::FlowSetupRateLimited,
                                  config_.slow_path, clock_.now())) {
        return drop(kind, trace, ctx.key);
      }
    }
    ++counters_.simulations;
    simulator::Simulator sim(*topology_, config_.host, shared_->neighbors());
    auto s = sim.run(ctx, pkt.bytes, p, trace);
    if (config_.offer_flows) s.decision.tags = s.tags;
    d = std::make_shared<const simulator::Decision>(std::move(s.decision));
    if (trace == nullptr && d->cacheable && key.reserved != UINT32_MAX) {
      cache_.insert(key, d, s.tags);
    }
  }
  FlowOffer offer;
  if (config_.offer_flows) {
    // A port without port security, or with stateless groups only, decides
    // without conntrack: its flows need no connection (and have none to keep).
    const topology::Port* port = topology_->findPort(ctx.key);
    const bool tracked =
        port == nullptr || (port->port_security && !topology_->isStateless(ctx.key));
    auto conn = [&] {
      return tracked ? conntrack::connKey(p, zoneOf(ctx.key)) : conntrack::ConnKey{};
    };
    const char* no = nullptr;
    if (rewritten && pkt.lb_reply.family == 0) {
      // (A member's reply, translated back to the VIP and to another
      // destination, or not IPv4 TCP or UDP: NAT, the agent's.)
      if (trace != nullptr) {
        trace->push_back("fast path: this flow stays in the agent: a load balancer's translation");
      }
      pkt.offer = nullptr;
    } else if (ctx.stage == Stage::FromPort && depth == 0 &&
               (no = notOffered(*d, ctx, p, true, tracked, offer, trace != nullptr)) == nullptr) {
      // (A trunk's subport: by its parent's interface and its VLAN.)
      offer.from_port = pkt.trunk_vid != 0 ? pkt.in.port : ctx.key;
      offer.from_vlan = pkt.trunk_vid;
      offer.key = p.key;
      offer.from_conn = conn();
      offer.tags = d->tags;
      pkt.offer = &offer;
    } else if (ctx.stage == Stage::FromUplink && depth == 0 &&
               (no = pkt.snat_external && !snatOfferable(pkt)
                         ? "translated before its decision (SNAT: an ICMP error, a helper's "
                           "connection, not TCP or UDP)"
                         : notOffered(*d, ctx, p, true, false, offer, trace != nullptr)) ==
                   nullptr) {
      // From outside, as it arrived (untagged here: the tag its network's
      // frames carry on the uplink is the key's).
      offer.from_uplink = pkt.in.uplink + 1;
      offer.from_vlan = uplinkVlan(ctx.key);
      offer.key = p.key;
      offer.tags = d->tags;
      if (pkt.snat_external) {
        // A reply to router SNAT: its mapping's translation back, as a
        // stateless one (the mapping's tuple, from the inside, kept alive
        // by the kernel's use).
        const auto& k = p.key;
        offer.key = *pkt.snat_arrived;
        offer.nat_ip_dst = dstOf(k);
        offer.nat_port_dst = k.tp_dst;
        offer.snat = {.src = k.ip_dst,
                      .dst = k.ip_src,
                      .src_port = k.tp_dst,
                      .dst_port = k.tp_src,
                      .protocol = k.ip_proto,
                      .family = 4};
      }
      pkt.offer = &offer;
    } else if (ctx.stage == Stage::ToPort && pkt.offer != nullptr &&
               (no = notOffered(*d, ctx, p, false, tracked, *pkt.offer, trace != nullptr)) ==
                   nullptr) {
      pkt.offer->to_port = ctx.key;
      pkt.offer->to_conn = conn();
      if (rewritten) lbReplyOffer(pkt, *pkt.offer);
      auto& tags = pkt.offer->tags;
      const size_t mid = tags.size();
      tags.insert(tags.end(), d->tags.begin(), d->tags.end());
      std::inplace_merge(tags.begin(), tags.begin() + static_cast<ptrdiff_t>(mid), tags.end());
      tags.erase(std::unique(tags.begin(), tags.end()), tags.end());
    } else if (ctx.stage == Stage::ToGateway && depth == 0 &&
               pkt.in.kind == Ingress::Kind::Tunnel && pkt.in.source.family != 0 &&
               (no = notOffered(*d, ctx, p, true, false, offer, trace != nullptr)) == nullptr) {
      // To a router's gateway here, from a tunnel as it arrived: routed
      // (and translated) out of the uplink.
      offer.key = p.key;
      offer.tunnel_remote = pkt.in.source;
      offer.vni = pkt.vni;
      offer.tags = d->tags;
      pkt.offer = &offer;
    } else if (ctx.stage == Stage::ToPort && depth == 0 && pkt.in.kind == Ingress::Kind::Tunnel &&
               pkt.in.source.family != 0 &&
               (no = notOffered(*d, ctx, p, false, tracked, offer, trace != nullptr)) == nullptr) {
      // From a tunnel, as it arrived (the sending host routed it).
      offer.key = rewritten ? pkt.lb_arrived : p.key;
      offer.tunnel_remote = pkt.in.source;
      offer.vni = pkt.vni;
      offer.to_port = ctx.key;
      offer.to_conn = conn();
      offer.tags = d->tags;
      if (rewritten) lbReplyOffer(pkt, offer);
      pkt.offer = &offer;
    } else {
      if (trace != nullptr && no != nullptr) {
        trace->push_back(std::string("fast path: this flow stays in the agent: ") + no);
      }
      pkt.offer = nullptr;
    }
  }
  execute(*d, ctx, pkt, out, trace, depth);
  pkt.offer = nullptr;  // (the offer lives in this frame)
}

const char* Datapath::notOffered(const simulator::Decision& d, const Context& ctx,
                                 const packet::ParsedPacket& p, bool from, bool tracked,
                                 FlowOffer& offer, bool flow) {
  const auto& k = p.key;
  using packet::TcpHeader;
  const auto tcp_flags =
      k.ip_proto == packet::ipproto::kTcp
          ? k.tcp_flags & (TcpHeader::kSyn | TcpHeader::kAck | TcpHeader::kFin | TcpHeader::kRst)
          : 0;
  // A connection's opening SYN (or UDP's first datagram): its flow is
  // offered once the answer's is (pending); the SYN-ACK's own, for the
  // answer's later packets.
  const bool opening = !flow && tracked && ctx.ct == conntrack::CtState::New &&
                       (tcp_flags == TcpHeader::kSyn || k.ip_proto == packet::ipproto::kUdp);
  const bool answer = !flow && ctx.ct == conntrack::CtState::Established &&
                      tcp_flags == (TcpHeader::kSyn | TcpHeader::kAck);
  if (!flow && tracked && ctx.ct != conntrack::CtState::Established && !opening) {
    return "no established connection";
  }
  if (!flow && ctx.ct_closing) return "a closing connection";
  if (d.drop != DropReason::None) return "dropped";
  if (!d.cacheable || d.actions.empty()) return "decided packet by packet";
  if (k.eth_type != ethertype::kIpv4 && k.eth_type != ethertype::kIpv6) return "not IP";
  if (k.vlan_tci != 0) return "VLAN-tagged";
  if (k.ip_frag != packet::Fragment::None) return "a fragment";
  switch (k.ip_proto) {
    case packet::ipproto::kTcp:
      if (!flow && !opening && !answer &&
          (k.tcp_flags & (TcpHeader::kSyn | TcpHeader::kFin | TcpHeader::kRst)) != 0) {
        return "a TCP SYN, FIN or RST";
      }
      if (opening) offer.pending = true;
      if (answer) offer.early = true;
      break;
    case packet::ipproto::kUdp:
      if (opening) offer.pending = true;
      break;
    case packet::ipproto::kIcmp:
      if (k.eth_type != ethertype::kIpv4 || (k.tp_src != 0 && k.tp_src != 8)) {
        return "ICMP other than echo";
      }
      break;
    case packet::ipproto::kIcmpv6:
      // (Neighbour discovery and errors are answered or checked here.)
      if (k.eth_type != ethertype::kIpv6 || (k.tp_src != 128 && k.tp_src != 129)) {
        return "ICMPv6 other than echo";
      }
      break;
    default:
      return "not TCP, UDP or ICMP echo";
  }
  const ActionKind end = from ? ActionKind::Deliver : ActionKind::Output;
  // From a port, an uplink or (a router's gateway here) a tunnel: to a local
  // port, out of an uplink, or into a tunnel to another host's port or
  // router gateway (with the sender's groups in reach).
  auto ends = [&](const Action& a) {
    if (a.kind == end) return true;
    // (Out of an uplink: its VLAN is checked as it leaves, emitUplink().)
    if (from && a.kind == ActionKind::Uplink) return true;
    // (A tunnel to a port, or to a router's gateway on another host; not a
    // flood.)
    return from && a.kind == ActionKind::Tunnel && (a.port != 0 || a.router != 0) &&
           a.remote.family != 0 && a.groups.size() <= kMaxTaggedGroups;
  };
  for (const Action& a : d.actions) {
    const bool last = &a == &d.actions.back();
    switch (a.kind) {
      case ActionKind::CtCommit:
        break;
      case ActionKind::SetEth:
      case ActionKind::DecrementTtl:
      case ActionKind::CheckMtu:
        if (!from) return "rewritten on its way in";
        if (a.kind == ActionKind::DecrementTtl) offer.decrement_ttl = true;
        if (a.kind == ActionKind::CheckMtu) offer.mtu = a.mtu;
        break;
      case ActionKind::Nat: {
        // Stateless (a floating IP, port forwarding): IPv4, its ports TCP's
        // or UDP's, no helper rewriting payloads.
        if (!from) return "rewritten on its way in";
        if (a.helper) return "a NAT helper's connection";
        if (k.eth_type != ethertype::kIpv4) return "NAT of other than IPv4";
        const bool ports =
            k.ip_proto == packet::ipproto::kTcp || k.ip_proto == packet::ipproto::kUdp;
        if (a.to_port != 0 && !ports) return "a translated port of other than TCP or UDP";
        auto& ip = a.source_side ? offer.nat_ip_src : offer.nat_ip_dst;
        ip = a.address.ip();
        if (a.to_port != 0) (a.source_side ? offer.nat_port_src : offer.nat_port_dst) = a.to_port;
        break;
      }
      case ActionKind::LocalIpDnat:
      case ActionKind::LocalIpReply:
        // A local IP: the client's way to the target (its reply's tuple
        // remembered as the packet goes), or the target's reply, from the
        // local IP again if it is one (Datapath::runStage fills both in).
        if (!from) return "rewritten on its way in";
        if (k.eth_type != ethertype::kIpv4 ||
            (k.ip_proto != packet::ipproto::kTcp && k.ip_proto != packet::ipproto::kUdp)) {
          return "a local IP's translation of other than IPv4 TCP or UDP";
        }
        if (a.kind == ActionKind::LocalIpDnat) offer.nat_ip_dst = a.address.ip();
        offer.local_ip = {.protocol = k.ip_proto, .family = 4};
        break;
      case ActionKind::LbDnat:
        // Load balancing: the connection's pin, made or found as the packet
        // goes (Datapath::runStage fills it in), IPv4 TCP or UDP (the
        // forward key's), not a hairpin (whose source changes too).
        if (!from) return "rewritten on its way in";
        if (a.hairpin) return "a load balancer's hairpin";
        if (a.to.family != familyOf(k)) return "load balancing to a member of the other family";
        offer.lb = {.family = familyOf(k)};
        break;
      case ActionKind::Snat:
        // Router SNAT: the connection's mapping, made or found as the
        // packet goes (Datapath::runStage fills it in), IPv4 TCP or UDP, no
        // helper shifting its segments.
        if (!from) return "rewritten on its way in";
        if (a.helper) return "a NAT helper's connection";
        if (k.eth_type != ethertype::kIpv4 ||
            (k.ip_proto != packet::ipproto::kTcp && k.ip_proto != packet::ipproto::kUdp)) {
          return "SNAT of other than IPv4 TCP or UDP";
        }
        offer.snat = {.protocol = k.ip_proto, .family = 4};
        break;
      case ActionKind::Deliver:
      case ActionKind::Output:
      case ActionKind::Tunnel:
      case ActionKind::Uplink:
        if (!last || !ends(a)) return "not to one port of this host or of another, or an uplink";
        break;
      default:
        return "needs what the kernel path does not do (least connections' choice, QoS, "
               "metering, logging...)";
    }
  }
  return ends(d.actions.back()) ? nullptr
                                : "not to one port of this host or of another, or an uplink";
}

void Datapath::holdUntilAnswered(const FlowOffer& o) {
  const SteadyTime now = clock_.now();
  while (!pending_order_.empty() &&
         (pending_order_.size() >= kMaxPending || pending_order_.front()->at + kPendingFor < now)) {
    forgetPending(*pending_order_.front());
    pending_order_.pop_front();
  }
  auto held = std::make_shared<const Pending>(Pending{.offer = o, .at = now});
  for (const auto* c : {&o.from_conn, &o.to_conn}) {
    if (c->family != 0) pending_[*c] = held;
  }
  pending_order_.push_back(std::move(held));
}

void Datapath::forgetPending(const Pending& p) {
  for (const auto* c : {&p.offer.from_conn, &p.offer.to_conn}) {
    auto it = c->family != 0 ? pending_.find(*c) : pending_.end();
    if (it != pending_.end() && it->second.get() == &p) pending_.erase(it);
  }
}

// An answer's flow is offered (a SYN-ACK's, a UDP reply's): its
// connection's opening one, if held, with it (found by either zone's
// connection, in the opening direction). Whether one was.
bool Datapath::releaseAnswered(const FlowOffer& answer) {
  for (const auto* c : {&answer.from_conn, &answer.to_conn}) {
    if (c->family == 0) continue;
    auto it = pending_.find(c->reversed());
    if (it == pending_.end()) continue;
    auto held = it->second;
    forgetPending(*held);
    FlowOffer o = held->offer;
    o.pending = false;
    o.early = true;
    o.opening = true;
    offers_.push_back(std::move(o));
    return true;
  }
  return false;
}

uint16_t Datapath::uplinkVlan(uint32_t switch_key) const {
  const topology::Switch* sw = topology_->findSwitch(switch_key);
  return sw != nullptr ? sw->vlan : 0;
}

void Datapath::offerFlow(const FlowOffer& o, Trace* trace) {
  if (trace == nullptr && o.pending) {
    holdUntilAnswered(o);
  } else if (trace == nullptr) {
    // (A UDP flow's answer is any packet of its reply direction.)
    const bool released =
        (o.early || (o.key.ip_proto == packet::ipproto::kUdp && !pending_.empty())) &&
        releaseAnswered(o);
    offers_.push_back(o);
    if (released) offers_.back().early = true;
  } else if (o.to_port != 0 && o.from_port != 0) {
    trace->push_back("fast path: once established, this flow goes port to port in the kernel");
  } else if (o.from_uplink != 0 && o.to_port != 0) {
    trace->push_back(
        "fast path: once established, this flow goes from the uplink to its port in the kernel");
  } else if (o.from_uplink != 0) {
    trace->push_back(
        "fast path: once established, this flow goes from the uplink into the tunnel in the "
        "kernel");
  } else if (o.to_uplink != 0 && o.from_port != 0) {
    trace->push_back("fast path: once established, this flow leaves by the uplink in the kernel");
  } else if (o.to_uplink != 0) {
    trace->push_back(
        "fast path: once established, this flow goes from the tunnel out of the uplink in the "
        "kernel");
  } else if (o.to_port != 0) {
    trace->push_back("fast path: once established, this flow leaves the tunnel in the kernel");
  } else {
    trace->push_back("fast path: once established, this flow enters the tunnel in the kernel");
  }
  // (A template, agent/kernel_flows.h: a TCP opening between ports or
  // through tunnels, nothing translated.)
  using packet::TcpHeader;
  const auto flags = o.key.tcp_flags & (TcpHeader::kSyn | TcpHeader::kAck);
  if (trace != nullptr && o.key.ip_proto == packet::ipproto::kTcp && flags == TcpHeader::kSyn &&
      !o.nat_ip_src && !o.nat_ip_dst && !o.nat_port_src && !o.nat_port_dst && o.from_uplink == 0 &&
      o.to_uplink == 0 && o.from_vlan == 0 && o.to_vlan == 0 &&
      (o.from_conn.family != 0 || o.to_conn.family != 0)) {
    trace->push_back(
        "fast path: once one such handshake has passed, later connections between these ends "
        "to this port are set up in the kernel");
  }
}

// What a hairpin's member sends back to the VIP is its client's reply:
// translated back, it goes to the same port as a packet from the VIP. The
// member's side of the connection has seen its reply in the conntrack
// lookup before; the client's side sees it in ToPort.
bool Datapath::balancedElsewhere(const Context& ctx, Packet& pkt, Outputs& out, Trace* trace,
                                 int depth) {
  if (!shared_->lbActive() || !shared_->lbReply(pkt.bytes, pkt.parsed, zoneOf(ctx.key))) {
    return false;
  }
  const topology::Port* port = topology_->findPort(ctx.key);
  if (port == nullptr || depth + 1 >= kMaxDepth) {
    drop(DropReason::TooManyHops, trace, ctx.key);
    return true;
  }
  if (trace != nullptr) {
    trace->push_back("load balancer: a hairpin's reply, from the VIP back to its client");
  }
  // From the VIP's MAC (the destination the member used) to the port's own.
  auto bytes = pkt.bytes;
  std::array<uint8_t, 6> vip_mac{};
  std::copy_n(bytes.begin(), 6, vip_mac.begin());
  std::copy(port->mac.bytes.begin(), port->mac.bytes.end(), bytes.begin());
  std::copy(vip_mac.begin(), vip_mac.end(), bytes.begin() + 6);
  if (auto why = packet::parse(bytes, pkt.parsed); why != DropReason::None) {
    drop(why, trace, ctx.key);
    return true;
  }
  simulator::Sender sender{.known = port->port_security, .groups = port->groups};
  std::sort(sender.groups.begin(), sender.groups.end());
  runStage({.stage = Stage::ToPort, .key = ctx.key, .sender = std::move(sender)}, pkt, out, trace,
           depth + 1);
  return true;
}

// Least connections: the member of the listener with the fewest
// connections from this host for its weight, counted from an offset the
// flow chooses so that ties spread; the connection is pinned to it and the
// stage runs again.
void Datapath::chooseLeastConnected(const Action& a, const Context& ctx, Packet& pkt, Outputs& out,
                                    Trace* trace, int depth) {
  const auto& k = pkt.parsed.key;
  const topology::Balancer* b = topology_->balancerAt(a.switch_key, a.to, k.ip_proto, k.tp_dst);
  const auto* members = b == nullptr            ? nullptr
                        : b->primary != nullptr ? &b->primary_members
                                                : &b->backup_members;
  if (members == nullptr || members->empty()) return drop(DropReason::LbNoMember, trace, ctx.key);
  if (depth + 1 >= kMaxDepth) return drop(DropReason::TooManyHops, trace, ctx.key);
  const auto& l = topology_->listenerOf(*b);
  const uint64_t listener = nat::stableHash(l.id);
  const size_t start = (k.tp_src ^ k.ip_src[3]) % members->size();
  const topology::LbMember* best = nullptr;
  size_t best_count = 0;
  for (size_t n = 0; n < members->size(); ++n) {
    const auto& m = l.members[(*members)[(start + n) % members->size()]];
    size_t count = shared_->lbConnections(listener, {m.address, m.port});
    // count / weight < best_count / best weight, without division.
    if (best == nullptr || count * best->weight < best_count * m.weight) {
      best = &m;
      best_count = count;
    }
  }
  if (auto why =
          shared_->lbPin(pkt.parsed, lbZone(ctx, a.router), {best->address, best->port}, listener);
      why != DropReason::None) {
    return drop(why, trace, ctx.key);
  }
  if (trace != nullptr) {
    trace->push_back("least connections: member " + best->address.toString() + ":" +
                     std::to_string(best->port) + " has " + std::to_string(best_count) +
                     " from this host; pinned");
  }
  runStage(ctx, pkt, out, trace, depth + 1);
}

// An ICMP error about a packet that a translation on the way in changed
// quotes it as its sender sent it, or the sender's path MTU discovery does
// not know what it is about: back through the floating IP (the quote's
// destination and the error's source become the floating IP) or router
// SNAT's mapping (the external address and port).
void Datapath::untranslateError(const Packet& pkt, std::vector<uint8_t>& error) {
  if (!pkt.dnat_from && !pkt.snat_external) return;
  packet::ParsedPacket e;
  if (packet::parse(error, e) != DropReason::None) return;
  if (pkt.dnat_from) {
    static_cast<void>(nat::rewriteIp(error, e, nat::Side::Source, *pkt.dnat_from, std::nullopt));
  } else {
    static_cast<void>(shared_->snatOutbound(error, e, *pkt.snat_external));
  }
}

void Datapath::fragmentAndGoOn(const simulator::Decision& d, size_t next, const Context& ctx,
                               Packet& pkt, Outputs& out, Trace* trace, int depth, uint16_t mtu) {
  const uint32_t charged = ctx.stage == Stage::FromPort || ctx.stage == Stage::ToPort ? ctx.key : 0;
  if (depth + 1 >= kMaxDepth) return drop(DropReason::TooManyHops, trace, charged);
  auto pieces = packet::fragmentIpv4(pkt.bytes, pkt.parsed, mtu);
  if (pieces.empty()) return drop(DropReason::TooBigToForward, trace, charged);
  if (trace != nullptr) {
    trace->push_back("larger than the MTU " + std::to_string(mtu) + " without DF: cut into " +
                     std::to_string(pieces.size()) + " fragments");
  }
  simulator::Decision rest{
      .actions = {d.actions.begin() + static_cast<std::ptrdiff_t>(next), d.actions.end()},
      .drop = DropReason::None,
      .cacheable = false};
  for (auto& f : pieces) {
    Packet piece;
    piece.bytes = f;
    piece.in = pkt.in;
    piece.uplink_switch = pkt.uplink_switch;
    piece.dnat_from = pkt.dnat_from;
    piece.snat_external = pkt.snat_external;
    if (auto why = packet::parse(piece.bytes, piece.parsed); why != DropReason::None) {
      drop(why, trace, charged);
      continue;
    }
    // Later pieces by the first one's flow (NAT further on needs its ports).
    piece.parsed.key.in_port = pkt.parsed.key.in_port;
    if (!shared_->fragmentFlow(piece.parsed, clock_.now())) {
      drop(DropReason::FragmentUnknown, trace, charged);
      continue;
    }
    execute(rest, ctx, piece, out, trace, depth + 1);
  }
}

void Datapath::execute(const simulator::Decision& d, const Context& ctx, Packet& pkt, Outputs& out,
                       Trace* trace, int depth) {
  auto bytes = pkt.bytes;
  const auto& p = pkt.parsed;
  // Drops in a port's stages are charged to that port.
  const uint32_t charged = ctx.stage == Stage::FromPort || ctx.stage == Stage::ToPort ? ctx.key : 0;
  auto fail = [&](DropReason why) { drop(why, trace, charged); };
  for (const Action& a : d.actions) {
    // Nothing is done with the bytes after the decision's last action.
    const bool last = &a == &d.actions.back();
    switch (a.kind) {
      case ActionKind::CtCommit:
        if (auto why = shared_->conntrack().commit(p, bytes, zoneOf(a.port), clock_.now());
            why != DropReason::None) {
          return fail(why);
        }
        break;
      case ActionKind::SetEth:
        std::copy(a.eth_dst.bytes.begin(), a.eth_dst.bytes.end(), bytes.begin());
        std::copy(a.eth_src.bytes.begin(), a.eth_src.bytes.end(), bytes.begin() + 6);
        break;
      case ActionKind::DecrementTtl:
        if (p.key.eth_type == ethertype::kIpv4) {
          size_t ip = p.l3_offset;
          uint16_t old_word = static_cast<uint16_t>(bytes[ip + 8] << 8 | bytes[ip + 9]);
          --bytes[ip + 8];
          uint16_t new_word = static_cast<uint16_t>(bytes[ip + 8] << 8 | bytes[ip + 9]);
          uint16_t sum = static_cast<uint16_t>(bytes[ip + 10] << 8 | bytes[ip + 11]);
          sum = packet::checksumUpdate16(sum, old_word, new_word);
          bytes[ip + 10] = static_cast<uint8_t>(sum >> 8);
          bytes[ip + 11] = static_cast<uint8_t>(sum);
        } else if (p.key.eth_type == ethertype::kIpv6) {
          --bytes[p.l3_offset + 7];
        }
        break;
      case ActionKind::CheckMtu: {
        size_t length = static_cast<size_t>(p.l3_end - p.l3_offset);
        if (segment_size_ != 0 && p.payload_offset != 0) {
          // A super-frame leaves as segments: the largest is what must fit.
          length =
              std::min(length, static_cast<size_t>(p.payload_offset - p.l3_offset) + segment_size_);
        }
        if (length <= a.mtu) break;
        // IPv6 routers never fragment (RFC 8200 5): always "packet too big".
        const bool v6 = p.key.eth_type == ethertype::kIpv6;
        packet::Ipv4Header ip{};
        bool df =
            v6 || (p.key.eth_type == ethertype::kIpv4 && packet::load(bytes, p.l3_offset, ip) &&
                   (ip.flags_fragment.host() & packet::Ipv4Header::kDontFragment) != 0);
        if (!df) {
          // RFC 1812 5.2.6: an IPv4 router cuts what it may; the rest of
          // the decision runs on each fragment.
          if (segment_size_ != 0) return fail(DropReason::TooBigToForward);
          auto next = static_cast<size_t>(&a - d.actions.data()) + 1;
          return fragmentAndGoOn(d, next, ctx, pkt, out, trace, depth, a.mtu);
        }
        if (trace != nullptr) {
          trace->push_back(
              "larger than the MTU " + std::to_string(a.mtu) +
              (v6 ? ": ICMPv6 packet too big" : " with DF: ICMP fragmentation needed"));
        }
        if (a.from.family != (v6 ? 6 : 4)) return fail(DropReason::FragmentationNeeded);
        auto reply = v6 ? simulator::icmpv6Error(bytes, p, a.eth_src, a.from, 2, 0, a.mtu)
                        : simulator::icmpError(bytes, p, a.eth_src, packet::Ipv4Address::of(a.from),
                                               3, 4, a.mtu);
        if (!v6) untranslateError(pkt, reply);
        Action back{.kind = ActionKind::Emit};
        back.frame = std::move(reply);
        execute(simulator::Decision{.actions = {std::move(back)}}, ctx, pkt, out, nullptr, depth);
        return fail(DropReason::FragmentationNeeded);
      }
      case ActionKind::Nat: {
        const bool ftp = a.helper == topology::NatHelperKind::Ftp;
        packet::Ipv4Address inside{};
        if (ftp && a.source_side) std::memcpy(&inside, p.key.ip_src.data(), sizeof(inside));
        // Inbound, the control connection's acknowledgments are shifted
        // back before the translation, by its outside tuple.
        if (ftp && !a.source_side) shared_->ftpFloatingInbound(bytes, p);
        if (!a.source_side && p.key.eth_type == ethertype::kIpv4) {
          pkt.dnat_from = dstOf(p.key);
        }
        if (auto why = nat::rewriteIpv4(
                bytes, p, a.source_side ? nat::Side::Source : nat::Side::Destination, a.address,
                a.to_port != 0 ? std::optional<uint16_t>(a.to_port) : std::nullopt);
            why != DropReason::None) {
          return fail(why);
        }
        if (ftp && a.source_side) {
          nat::PayloadEdit edit;
          if (auto why = shared_->ftpFloatingOutbound(bytes, p, inside, a.address, edit);
              why != DropReason::None) {
            return fail(why);
          }
          if (!edit.text.empty()) {
            if (auto why = applyPayloadEdit(pkt, edit, depth); why != DropReason::None) {
              return fail(why);
            }
            bytes = pkt.bytes;
            if (trace != nullptr)
              trace->push_back("FTP helper: the address follows the floating IP");
          }
        }
        break;
      }
      case ActionKind::LocalIpDnat:
        if (auto why = shared_->localIpForward(bytes, p, a.address); why != DropReason::None) {
          return fail(why);
        }
        if (pkt.offer != nullptr && pkt.offer->local_ip.family == 4 && p.l4_offset != 0) {
          // (The reply's tuple: from the target, ports swapped.)
          const auto& k = p.key;
          auto& t = pkt.offer->local_ip;
          std::copy_n(a.address.value.b, 4, t.src.begin());
          t.dst = k.ip_src;
          t.src_port = k.tp_dst;
          t.dst_port = k.tp_src;
        }
        break;
      case ActionKind::LocalIpReply:
        if (shared_->localIpReply(bytes, p) && pkt.offer != nullptr &&
            pkt.offer->local_ip.family == 4 && p.l4_offset != 0) {
          // A local IP's connection: its source the local IP again, as the
          // packet now has it.
          const auto& k = p.key;
          auto& o = *pkt.offer;
          o.local_ip.src = k.ip_src;
          o.local_ip.dst = k.ip_dst;
          o.local_ip.src_port = k.tp_src;
          o.local_ip.dst_port = k.tp_dst;
          // (The packet's source now: k is the tuple as it came.)
          o.nat_ip_src = IpAddress::v4(bytes[p.l3_offset + 12], bytes[p.l3_offset + 13],
                                       bytes[p.l3_offset + 14], bytes[p.l3_offset + 15]);
        } else if (pkt.offer != nullptr) {
          pkt.offer->local_ip = {};  // (not one: a plain flow)
        }
        break;
      case ActionKind::LbDnat: {
        const IpAddress vip = dstOf(p.key);
        const packet::FlowKey before = p.key;
        const uint16_t zone = lbZone(ctx, a.router);
        if (auto why = shared_->lbForward(bytes, p, zone, {a.to, a.to_port}, a.hairpin, a.listener,
                                          a.limit);
            why != DropReason::None) {
          return fail(why);
        }
        pkt.dnat_from = vip;
        packet::parse(bytes, pkt.parsed);
        if (pkt.offer != nullptr && pkt.offer->lb.family != 0 && pkt.offer->lb.protocol == 0) {
          // The pin's translation, as a kernel flow repeats it: to the
          // member; a connection given another source port (as the member
          // sees it) stays in the agent.
          const auto& k = p.key;
          if (k.ip_src != before.ip_src || k.tp_src != before.tp_src) {
            if (trace != nullptr) {
              trace->push_back(
                  "fast path: this flow stays in the agent: the member sees it from another port");
            }
            pkt.offer = nullptr;
          } else {
            auto& o = *pkt.offer;
            o.nat_ip_dst = a.to;
            o.nat_port_dst = a.to_port;
            o.lb = {.src = before.ip_src,
                    .dst = before.ip_dst,
                    .src_port = before.tp_src,
                    .dst_port = before.tp_dst,
                    .zone = zone,
                    .protocol = before.ip_proto,
                    .family = familyOf(before)};
            if (a.lb_member != 0 && before.ip_proto == packet::ipproto::kTcp) {
              o.lb_selector = lbSelector(a.switch_key, vip, before.ip_proto, before.tp_dst);
              o.lb_member = o.lb_selector != nullptr ? a.lb_member : 0;
            }
          }
        }
        break;
      }
      case ActionKind::LbChoose:
        return chooseLeastConnected(a, ctx, pkt, out, trace, depth);
      case ActionKind::Snat: {
        nat::SnatHelper helper = !a.helper ? nat::SnatHelper::None
                                 : *a.helper == topology::NatHelperKind::Ftp
                                     ? nat::SnatHelper::Ftp
                                     : nat::SnatHelper::Tftp;
        nat::PayloadEdit edit;
        if (auto why = shared_->snatOutbound(bytes, p, a.address, helper, &edit,
                                             {.first = a.port_first, .last = a.port_last});
            why != DropReason::None) {
          return fail(why);
        }
        if (pkt.offer != nullptr && pkt.offer->snat.family == 4 && pkt.offer->snat.dst_port == 0 &&
            !a.helper && p.l4_offset != 0) {
          // Its mapping, as the kernel's flow repeats it: the source address
          // and port the packet now leaves with.
          auto& o = *pkt.offer;
          const auto& k = p.key;
          o.snat.src = k.ip_src;
          o.snat.dst = k.ip_dst;
          o.snat.src_port = k.tp_src;
          o.snat.dst_port = k.tp_dst;
          o.nat_ip_src = a.address.ip();
          o.nat_port_src = static_cast<uint16_t>(bytes[p.l4_offset] << 8 | bytes[p.l4_offset + 1]);
        }
        if (!edit.text.empty()) {
          if (auto why = applyPayloadEdit(pkt, edit, depth); why != DropReason::None) {
            return fail(why);
          }
          bytes = pkt.bytes;
          if (trace != nullptr) trace->push_back("FTP helper: the data connection is expected");
        }
        break;
      }
      case ActionKind::Deliver: {
        if (depth + 1 >= kMaxDepth) return fail(DropReason::TooManyHops);
        Packet next;
        // The last action hands the bytes on; otherwise the next stage gets
        // its own copy.
        next.bytes = last ? bytes : scratch(static_cast<size_t>(depth + 1), bytes);
        next.in_input = last && pkt.in_input;
        next.in = pkt.in;
        if (auto why = packet::parse(next.bytes, next.parsed); why != DropReason::None) {
          return fail(why);
        }
        next.offer = pkt.offer;
        runStage({.stage = Stage::ToPort,
                  .key = a.port,
                  .sender = {.known = a.source_side, .groups = a.groups}},
                 next, out, trace, depth + 1);
        break;
      }
      case ActionKind::Output:
      case ActionKind::ToMetadata: {
        if (pkt.offer != nullptr && a.kind == ActionKind::Output && ctx.stage == Stage::ToPort) {
          // (To a trunk's subport: out of its parent's interface, tagged.)
          pkt.offer->to_port = a.port;
          pkt.offer->to_vlan = a.vlan;
          std::copy_n(bytes.begin(), 6, pkt.offer->eth_dst.bytes.begin());
          std::copy_n(bytes.begin() + 6, 6, pkt.offer->eth_src.bytes.begin());
          offerFlow(*pkt.offer, trace);
        }
        Outputs::Item item{
            .kind = a.kind == ActionKind::Output ? Outputs::Kind::Port : Outputs::Kind::Metadata,
            .port = a.port};
        if (a.vlan != 0) {
          addTagged(out, item, bytes, a.vlan);
        } else if (last && pkt.in_input) {
          item.input = input_index_;
          out.addRef(item, bytes);  // the input's buffer, as it is now: no copy
        } else {
          auto room = addOutput(out, item, bytes.size());
          std::copy(bytes.begin(), bytes.end(), room.begin());
        }
        ++counters_.outputs;
        break;
      }
      case ActionKind::Tunnel:
        emitTunnel(a, pkt, out);
        if (pkt.offer != nullptr &&
            (ctx.stage == Stage::FromPort || ctx.stage == Stage::FromUplink) && last) {
          // Into the tunnel as this packet went: its inner frame's MACs and
          // the header and UDP port emitTunnel() gave it.
          const auto& item = out.items().back();
          auto sent = out.bytes(item);
          FlowOffer& o = *pkt.offer;
          o.tunnel_remote = a.remote;
          o.vxlan = item.encapsulation == Encapsulation::Vxlan;
          o.udp_source = item.udp_source;
          o.tunnel_header_len = static_cast<uint8_t>(item.inner_offset);
          if (item.inner_offset <= o.tunnel_header.size() &&
              sent.size() >= item.inner_offset + 12u) {
            std::copy_n(sent.begin(), item.inner_offset, o.tunnel_header.begin());
            std::copy_n(sent.begin() + item.inner_offset, 6, o.eth_dst.bytes.begin());
            std::copy_n(sent.begin() + item.inner_offset + 6, 6, o.eth_src.bytes.begin());
            offerFlow(o, trace);
          }
        }
        break;
      case ActionKind::Uplink:
        emitUplink(a.switch_key, bytes, out);
        if (pkt.offer != nullptr &&
            (ctx.stage == Stage::FromPort || ctx.stage == Stage::ToGateway) && last &&
            !out.items().empty() && out.items().back().kind == Outputs::Kind::Uplink) {
          // Out of the uplink as this packet left, tagged with its
          // network's VLAN if it has one.
          const auto& item = out.items().back();
          FlowOffer& o = *pkt.offer;
          o.to_uplink = item.uplink + 1;
          o.to_vlan = uplinkVlan(a.switch_key);
          std::copy_n(bytes.begin(), 6, o.eth_dst.bytes.begin());
          std::copy_n(bytes.begin() + 6, 6, o.eth_src.bytes.begin());
          offerFlow(o, trace);
        }
        break;
      case ActionKind::Police: {
        // A super-frame counts as the segments it leaves as, each with
        // its headers.
        uint64_t wire = bytes.size();
        if (segment_size_ != 0 && p.payload_offset != 0 && p.l3_end > p.payload_offset) {
          const uint64_t payload = p.l3_end - p.payload_offset;
          const uint64_t segments = (payload + segment_size_ - 1) / segment_size_;
          if (segments > 1) wire += (segments - 1) * p.payload_offset;
        }
        if (!policerFor(a).admit(wire, clock_.now(), a.limit_kbps, a.burst_kbits)) {
          return fail(DropReason::QosBandwidthLimit);
        }
        break;
      }
      case ActionKind::SetDscp:
        setDscp(bytes, p, a.dscp);
        break;
      case ActionKind::Log: {
        const topology::Port* port = topology_->findPort(a.port);
        const auto& k = p.key;
        SecurityGroupLogRecord r{.time = clock_.wallNow(),
                                 .port_id = port != nullptr ? port->id : std::to_string(a.port),
                                 .egress = a.source_side,
                                 .accepted = a.accepted,
                                 .protocol = k.ip_proto,
                                 .source = srcOf(k),
                                 .destination = dstOf(k),
                                 .source_port = k.tp_src,
                                 .destination_port = k.tp_dst};
        shared_->logSecurityGroup(std::move(r), clock_.now());
        break;
      }
      case ActionKind::Meter: {
        auto& m = counters_.meters[a.meter];
        ++m.packets;
        m.bytes += p.l3_end - p.l3_offset;
        break;
      }
      case ActionKind::Emit: {
        ++counters_.answered;
        if (a.switch_key != 0) {
          emitUplink(a.switch_key, a.frame, out, /*generated=*/true);
        } else if (pkt.in.kind == Ingress::Kind::Port && pkt.trunk_vid != 0) {
          addTagged(out, {.kind = Outputs::Kind::Port, .port = pkt.in.port, .generated = true},
                    a.frame, pkt.trunk_vid);
        } else if (pkt.in.kind == Ingress::Kind::Port) {
          auto room =
              addOutput(out, {.kind = Outputs::Kind::Port, .port = pkt.in.port, .generated = true},
                        a.frame.size());
          std::copy(a.frame.begin(), a.frame.end(), room.begin());
        } else if (pkt.in.kind == Ingress::Kind::Uplink && pkt.uplink_switch != 0) {
          // Back out of the uplink, on the VLAN it came from.
          emitUplink(pkt.uplink_switch, a.frame, out, /*generated=*/true);
        }
        break;
      }
    }
  }
  if (d.drop != DropReason::None) {
    ++counters_.drops[static_cast<size_t>(d.drop)];
    verdict_.drop = d.drop;
    if (charged != 0) ++port_drops_[charged][static_cast<size_t>(d.drop)];
  }
}

void Datapath::addTagged(Outputs& out, Outputs::Item item, std::span<const uint8_t> frame,
                         uint16_t vid) {
  if (frame.size() < 12) return;
  auto room = addOutput(out, item, frame.size() + 4);
  std::copy(frame.begin(), frame.begin() + 12, room.begin());
  room[12] = 0x81;
  room[13] = 0x00;
  room[14] = static_cast<uint8_t>(vid >> 8);
  room[15] = static_cast<uint8_t>(vid);
  std::copy(frame.begin() + 12, frame.end(), room.begin() + 16);
}

void Datapath::emitTunnel(const Action& a, const Packet& pkt, Outputs& out) {
  std::span<const uint8_t> frame = pkt.bytes;
  Outputs::Item item{.kind = Outputs::Kind::Tunnel, .host = a.host, .remote = a.remote};
  // Flow entropy for the outer UDP source port (RFC 7348 5, RFC 8926 3.3):
  // the same for every packet of a connection, spread across connections.
  const auto& k = pkt.parsed.key;
  uint32_t s = 0, d = 0;
  std::memcpy(&s, k.ip_src.data(), 4);
  std::memcpy(&d, k.ip_dst.data(), 4);
  uint32_t mix = (s ^ d ^ (uint32_t{k.tp_src} << 16 | k.tp_dst) ^ k.ip_proto) * 0x9e3779b1u;
  item.udp_source = static_cast<uint16_t>(0xc000 | (mix >> 18));
  ++counters_.outputs;
  if (config_.encapsulation == Encapsulation::Vxlan || a.vxlan) {
    item.encapsulation = Encapsulation::Vxlan;
    item.inner_offset = sizeof(packet::VxlanHeader);
    auto room = addOutput(out, item, sizeof(packet::VxlanHeader) + frame.size());
    packet::encodeVxlan(room, a.vni);
    std::copy(frame.begin(), frame.end(), room.begin() + sizeof(packet::VxlanHeader));
    return;
  }
  packet::CanopyOptions options{.port = a.port, .router = a.router};
  if (a.source_side && a.groups.size() <= kMaxTaggedGroups) {
    options.groups_known = true;
    options.groups_to_send = a.groups;
  }
  size_t header = packet::geneveHeaderSize(options);
  item.inner_offset = static_cast<uint16_t>(header);
  auto room = addOutput(out, item, header + frame.size());
  packet::encodeGeneve(room, a.vni, options);
  std::copy(frame.begin(), frame.end(), room.begin() + static_cast<std::ptrdiff_t>(header));
}

void Datapath::emitUplink(uint32_t switch_key, std::span<const uint8_t> frame, Outputs& out,
                          bool generated) {
  const topology::Switch* sw = topology_->findSwitch(switch_key);
  const auto& uplinks = config_.host.uplinks;
  auto it = sw == nullptr ? uplinks.end()
                          : std::find(uplinks.begin(), uplinks.end(), sw->physical_network);
  if (it == uplinks.end()) return drop(DropReason::NoUplink, nullptr);
  Outputs::Item item{.kind = Outputs::Kind::Uplink,
                     .uplink = static_cast<uint32_t>(it - uplinks.begin()),
                     .generated = generated};
  ++counters_.outputs;
  if (sw->vlan == 0) {
    auto room = addOutput(out, item, frame.size());
    std::copy(frame.begin(), frame.end(), room.begin());
    return;
  }
  auto room = addOutput(out, item, frame.size() + 4);
  std::copy(frame.begin(), frame.begin() + 12, room.begin());
  packet::store(room, 12, packet::Be16::of(ethertype::kVlan));
  packet::store(room, 14, packet::Be16::of(sw->vlan));
  std::copy(frame.begin() + 12, frame.end(), room.begin() + 16);
}

}  // namespace canopy::datapath::pipeline
