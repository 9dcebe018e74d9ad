#pragma once
// One host's datapath, with no I/O: frames in (from a VM port, a tunnel or
// an uplink), frames out, as ARCHITECTURE.md draws it:
//
//   parse -> conntrack lookup -> flow cache
//      hit:  execute the cached actions
//      miss: simulate -> cache (tagged) -> execute
//
// It owns the host's stateful parts: conntrack (a zone per local port), the
// SNAT table of the gateways it holds, the neighbours learned on its
// uplinks, the flow cache and the counters. Topology snapshots are replaced
// whole; the cache loses only the entries tagged with what changed.
//
//   Datapath dp(clock, {.host = {.host = 1, .uplinks = {"physnet1"}}});
//   dp.setTopology(snapshot);
//   Outputs out;
//   dp.process(Ingress::port(port_key), frame, out);
//   for (const auto& o : out.items()) send(o, out.bytes(o));
//
// Tunnel frames come and go as UDP payloads (the Geneve or VXLAN header and
// the inner frame): the agent's UDP sockets add the outer headers.
//
// Thread-safety: a Datapath belongs to one worker thread; the workers of a
// host share one SharedState (conntrack, SNAT, neighbours, zones).

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "datapath/conntrack/conntrack.h"
#include "datapath/conntrack/fragments.h"
#include "datapath/flowcache/flow_cache.h"
#include "datapath/nat/dnat_table.h"
#include "datapath/nat/helpers.h"
#include "datapath/nat/lb_table.h"
#include "datapath/nat/snat_table.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/pipeline/policer.h"
#include "datapath/simulator/simulator.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::pipeline {

using simulator::Trace;

enum class Encapsulation : uint8_t { Geneve, Vxlan };

// Where a frame came in.
struct Ingress {
  // Metadata: the host's metadata interface (its service's answers).
  enum class Kind : uint8_t { Port, Tunnel, Uplink, Metadata };
  Kind kind = Kind::Port;
  uint32_t port = 0;                                    // Port: the logical port bound here
  Encapsulation encapsulation = Encapsulation::Geneve;  // Tunnel
  uint32_t uplink = 0;                                  // Uplink: index into the host's uplinks
  IpAddress source{};                                   // Tunnel: the sending host's tunnel address

  static Ingress fromPort(uint32_t port) { return {Kind::Port, port, {}, 0, {}}; }
  static Ingress fromTunnel(Encapsulation e, const IpAddress& source) {
    return {Kind::Tunnel, 0, e, 0, source};
  }
  static Ingress fromUplink(uint32_t index) { return {Kind::Uplink, 0, {}, index, {}}; }
  static Ingress fromMetadata() { return {Kind::Metadata, 0, {}, 0, {}}; }
};

// Where frames go, written into one arena per batch.
class Outputs {
 public:
  enum class Kind : uint8_t { Port, Tunnel, Uplink, Metadata };
  struct Item {
    Kind kind = Kind::Port;
    uint32_t port = 0;  // Port
    uint32_t host = 0;  // Tunnel: the remote host and its tunnel address
    IpAddress remote{};
    uint16_t udp_source = 0;  // Tunnel: flow entropy for the outer UDP source port
    Encapsulation encapsulation = Encapsulation::Geneve;  // Tunnel
    uint32_t uplink = 0;                                  // Uplink: index into the host's uplinks
    uint16_t inner_offset = 0;  // Tunnel: where the inner frame starts (after Geneve/VXLAN)
    // Made by the datapath (ARP, DHCP, ICMP answers, ARP requests) rather
    // than forwarded from the input: no offload request of the input's
    // applies to it.
    bool generated = false;
    uint32_t input = 0;  // the index in processBatch()'s batch of the frame it came from
    size_t offset = 0;
    size_t length = 0;
    uint8_t* external = nullptr;  // the bytes, when they are not in the arena (addRef)
  };

  void clear() {
    items_.clear();
    used_ = 0;
  }
  const std::vector<Item>& items() const { return items_; }
  std::span<const uint8_t> bytes(const Item& i) const {
    return {i.external != nullptr ? i.external : arena_.get() + i.offset, i.length};
  }
  // For the sender's last touches (checksum offload), before it sends.
  std::span<uint8_t> mutableBytes(const Item& i) {
    return {i.external != nullptr ? i.external : arena_.get() + i.offset, i.length};
  }

  // Room for one output's bytes (not zeroed: the caller writes all of
  // them); valid until the next add().
  // An output whose bytes stay where they are (an input's buffer that
  // outlives this batch's outputs).
  void addRef(Item item, std::span<uint8_t> bytes) {
    item.external = bytes.data();
    item.length = bytes.size();
    items_.push_back(item);
  }

  std::span<uint8_t> add(Item item, size_t length) {
    if (capacity_ - used_ < length) grow(length);
    item.offset = used_;
    item.length = length;
    used_ += length;
    items_.push_back(item);
    return {arena_.get() + item.offset, length};
  }

 private:
  void grow(size_t length) {
    size_t capacity = std::max(capacity_ * 2, used_ + length + 4096);
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(capacity);
    if (used_ != 0) std::memcpy(bigger.get(), arena_.get(), used_);
    arena_ = std::move(bigger);
    capacity_ = capacity;
  }

  std::vector<Item> items_;
  std::unique_ptr<uint8_t[]> arena_;
  size_t used_ = 0;
  size_t capacity_ = 0;
};

// Security-group logging's limits (Neutron's [network_log] rate_limit and
// burst_limit): records per second, bursts of at most `burst`; what is over
// is counted, not written. At most `queued` records wait for the agent.
struct LogLimits {
  double rate = 100;
  double burst = 25;
  size_t queued = 10000;
};

// One security-group log record: the groups of port `port_id` accepted a
// new connection or dropped a packet, which the port sent (`egress`) or was
// to receive.
struct SecurityGroupLogRecord {
  WallTime time{};
  std::string port_id{};
  bool egress = false;
  bool accepted = false;
  uint8_t protocol = 0;
  IpAddress source{};
  IpAddress destination{};
  uint16_t source_port = 0;       // or ICMP type
  uint16_t destination_port = 0;  // or ICMP code
};

// Slow-path protection: what one local port may make this host's datapath
// work out per second, so that a guest flooding new connections (random
// ports) or ARP cannot starve its neighbours. Every packet that misses the
// flow cache runs the simulator (ARP, ND, DHCP and the answered ICMP are
// never cached): `flows` limits those that would set up a flow, `control`
// those of ARP, ND, DHCP and ICMP together; beyond, they are dropped and
// counted by kind (flow_setup_rate_limited, arp_rate_limited, ...). In
// bursts of `*_burst`; 0: no limit.
struct SlowPathLimits {
  uint32_t flows_per_second = 0;
  uint32_t flows_burst = 0;
  uint32_t control_per_second = 0;
  uint32_t control_burst = 0;
};

struct Config {
  simulator::HostContext host{};
  SlowPathLimits slow_path{};
  LogLimits security_group_log{};
  Encapsulation encapsulation = Encapsulation::Geneve;  // of the tunnels it sends
  conntrack::Limits conntrack{};
  nat::SnatTimeouts snat{};
  size_t flow_cache_entries = 1 << 16;
  // The kernel fast path: offer the flows it can run (offers()).
  bool offer_flows = false;
};

// A flow this datapath decided that the kernel fast path may run in its
// place (fastpath/): from a local port to a local port, from a local port
// into a tunnel to another host's port (to_port 0), or from a tunnel to a
// local port (from_port 0); its connection established in the local ports'
// zones, an IPv4 packet that needs nothing but its MACs rewritten and,
// routed, its TTL decremented (within an MTU). Only for packets that are
// not the connection's opening or closing (TCP SYN, FIN or RST) and not
// fragments; the kernel programs take no others either.
// A listener's Maglev table as the kernel fast path repeats it: for each
// entry, the index in the listener's members of the member it picks
// (kNone: none), and what it hashes (the datapath's flowHash: the client's
// address, or the 5-tuple).
struct LbSelector {
  static constexpr uint16_t kNone = 0xffff;
  static constexpr size_t kMaxEntries = 4096;  // (the kernel's room)
  uint64_t listener = 0;                       // its id, hashed
  bool source_only = false;
  std::vector<uint16_t> members;

  friend bool operator==(const LbSelector&, const LbSelector&) = default;
};

struct FlowOffer {
  uint32_t from_port = 0;
  uint32_t to_port = 0;
  // From or out of an uplink instead of a port: its index in
  // Config::host.uplinks, plus one (0: none).
  uint32_t from_uplink = 0;
  uint32_t to_uplink = 0;
  // The VLAN tag it comes or leaves with on its interface (an uplink's
  // VLAN network's; a trunk's subport's on its parent's, which is then
  // from_port or to_port); 0: untagged.
  uint16_t from_vlan = 0, to_vlan = 0;
  // Into a tunnel: the other host's tunnel address (IPv4 or IPv6), the tunnel
  // header as the datapath writes it and the outer UDP source port; from
  // one: the sending host's tunnel address and the VNI.
  IpAddress tunnel_remote{};
  std::array<uint8_t, 40> tunnel_header{};
  uint8_t tunnel_header_len = 0;
  bool vxlan = false;
  uint16_t udp_source = 0;
  uint32_t vni = 0;
  packet::FlowKey key{};                    // as it came from `from_port`
  packet::MacAddress eth_src{}, eth_dst{};  // as it leaves
  bool decrement_ttl = false;
  uint16_t mtu = 0;  // 0: none checked
  // The source and destination it leaves with, where they were translated
  // (nullopt: as they came): stateless NAT (IPv4: floating IPs, port
  // forwarding), and the translations below (of the flow's family).
  std::optional<IpAddress> nat_ip_src{}, nat_ip_dst{};
  std::optional<uint16_t> nat_port_src{}, nat_port_dst{};
  // Router SNAT (IPv4 TCP or UDP, no helper): the mapping's tuple as the
  // internal host sends it (family 0: none), the translation above its
  // address and port. The kernel's use of the flow keeps the mapping alive
  // (SharedState::snatKeepAlive), the flow goes when the mapping does, and
  // a FIN is the agent's (the mapping follows the connection's close).
  conntrack::ConnKey snat{};
  // Load balancing (IPv4 or IPv6, no hairpin, the client's own source port): the
  // pinned connection's tuple as the client sends it to the VIP, in its
  // load-balancing zone (family 0: none), and whether this is the
  // member's reply (translated back to the VIP: the translation above
  // its source) or the client's way (to the member: its destination).
  // The kernel's use keeps the pin alive and counts the listener's bytes
  // (SharedState::lbKeepAlive); the flow goes with the pin; a FIN is the
  // agent's.
  conntrack::ConnKey lb{};
  bool lb_reply = false;
  // The client's way of a new connection whose member the listener's Maglev
  // table chose: that member (its index in the listener's members plus
  // one) and the table, from which the kernel may choose later
  // connections' members itself (null: none; a pin chose it, or the kernel
  // could not: least connections, a connection limit, a table too large).
  uint16_t lb_member = 0;
  std::shared_ptr<const LbSelector> lb_selector{};
  // A local IP's translation (IPv4 TCP or UDP): its reply's tuple, from the
  // target to the client (family 0: none); the translation above it (the
  // client's way: to the target; the reply: from the local IP again). The
  // kernel's use keeps it alive (SharedState::localIpKeepAlive), and the
  // flow goes with it.
  conntrack::ConnKey local_ip{};
  // The connection in each port's zone, whose timeouts the kernel's packets
  // keep moving (ConnTrack::touch).
  conntrack::ConnKey from_conn{}, to_conn{};
  // The cache tags of the decisions it was made of (sorted, unique): a
  // change to any takes the flow back (Datapath::takeInvalidations).
  std::vector<flowcache::Tag> tags{};
  // Made of a connection's opening SYN (UDP: its first datagram): held by
  // the datapath until the answer's own flow is offered (the SYN-ACK's, a
  // reply's), then offered with it (the kernel never carries a SYN; it
  // carries the handshake's last ACK).
  bool pending = false;
  // Of a handshake (the answer's flow, and the opening one): to be
  // installed before the answer is sent on, so that the next packets find
  // it.
  bool early = false;
  // The held opening flow, offered with its answer's (which follows it
  // among the offers): the two ways of a handshake, from which the kernel
  // may make later connections' (agent/kernel_flows.h, templates).
  bool opening = false;
};

// What changed since the kernel fast path's flows were offered: the cache
// tags invalidated (all: the whole cache was).
struct Invalidations {
  bool all = false;
  std::vector<flowcache::Tag> tags{};
};

// What a packet came to in process(): how many outputs it made and, if
// anything was dropped on its way (a flood may drop for one port and
// deliver to another), the last reason.
struct Verdict {
  size_t outputs = 0;
  DropReason drop = DropReason::None;

  bool dropped() const { return drop != DropReason::None; }
};

// What the datapaths of one host's workers share, so that each sees the
// same: connection tracking (both directions of a connection may run on
// different workers), the SNAT table of the gateways the host holds, the
// neighbours learned on its uplinks and each local port's conntrack zone.
// A Datapath made without one has its own.
//
// Thread-safety: every member function from any thread when made for
// several workers (conntrack is sharded, the rest behind locks taken on the
// slow path or for NAT); made for one, conntrack and fragments take no lock
// (the worker's alone). The translation tables (SNAT, local IPs, load
// balancers, FTP) are always locked: the control side reads their counters
// and replicas while the worker runs.
class SharedState {
 public:
  // `workers`: how many datapaths use it; with one, nothing is locked.
  // `file`: where the connection state is kept across restarts of the
  // agent (persist/state_file.h): what an earlier process left there is
  // adopted now, and every table writes its changes to it.
  SharedState(const Clock& clock, const Config& config, size_t workers = 1,
              std::shared_ptr<persist::StateFile> file = nullptr);

  // What was adopted from the state file, by kind, and how many of its
  // records were not (unknown kinds or versions, bad bytes).
  struct Adopted {
    size_t connections = 0, snat = 0, lb = 0, local_ip = 0, zones = 0, neighbors = 0;
    size_t unreadable = 0;
  };
  const Adopted& adopted() const { return adopted_; }
  const persist::StateFile* stateFile() const { return file_.get(); }

  conntrack::ConnTrack& conntrack() { return conntrack_; }
  const conntrack::ConnTrack& conntrack() const { return conntrack_; }

  // Fragments (conntrack/fragments.h): a first fragment's flow remembered,
  // a later one's filled in; false for a later fragment of no known datagram.
  bool fragmentFlow(packet::ParsedPacket& p, SteadyTime now);

  // `helper`, `edit` and `ports`: SnatTable::translateOutbound's.
  DropReason snatOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                          packet::Ipv4Address external,
                          nat::SnatHelper helper = nat::SnatHelper::None,
                          nat::PayloadEdit* edit = nullptr, nat::PortRange ports = {}) noexcept;
  DropReason snatInbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                         bool* plain = nullptr) noexcept;
  // A mapping whose packets the kernel fast path carries (its tuple as the
  // internal host sends it, FlowOffer::snat): SnatTable::keepAlive.
  bool snatKeepAlive(const conntrack::ConnKey& outbound, bool used) noexcept;
  size_t snatSize() const;
  // Gateway high availability: while on, every SNAT mapping made or
  // changed is kept for takeSnatReplica() (to send to the standby hosts);
  // snatRecords() is every mapping's record (a full copy for them);
  // absorbSnatReplica() makes here what a host holding a gateway sent
  // (whole records, concatenated), and says how many.
  void replicateSnat(bool on);
  std::vector<uint8_t> takeSnatReplica();
  std::vector<uint8_t> snatRecords() const;
  size_t absorbSnatReplica(std::span<const uint8_t> records);
  // Local IPs on this host: a client's packet goes on to `target` (the
  // associated port's address); a reply of such a connection gets the local
  // IP back as its source (true if the packet was one).
  DropReason localIpForward(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                            packet::Ipv4Address target) noexcept;
  bool localIpReply(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept;
  // A local IP's translation whose packets the kernel fast path carries
  // (its reply's tuple, FlowOffer::local_ip): nat::DnatTable::keepAlive.
  bool localIpKeepAlive(const conntrack::ConnKey& reply, bool used) noexcept;
  // Load balancers' connections on this host (nat::LbTable); lbActive()
  // tells, without a lock, whether any reply may need translating back.
  std::optional<nat::LbTarget> lbPinned(const packet::ParsedPacket& p, uint16_t zone) const;
  DropReason lbPin(const packet::ParsedPacket& p, uint16_t zone, nat::LbTarget member,
                   uint64_t listener) noexcept;
  DropReason lbForward(std::span<uint8_t> frame, const packet::ParsedPacket& p, uint16_t zone,
                       nat::LbTarget member, bool hairpin, uint64_t listener,
                       uint32_t limit) noexcept;
  bool lbReply(std::span<uint8_t> frame, const packet::ParsedPacket& p, uint16_t zone) noexcept;
  // A pinned connection whose packets the kernel fast path carries (its
  // tuple to the VIP, FlowOffer::lb): nat::LbTable::keepAlive.
  bool lbKeepAlive(const conntrack::ConnKey& forward, bool used, uint64_t bytes_in,
                   uint64_t bytes_out) noexcept;
  // A connection the kernel fast path set up to a member: nat::LbTable::import.
  bool lbImport(const conntrack::ConnKey& forward, const nat::LbTarget& member, uint64_t listener,
                bool closing) noexcept;
  // A FIN the kernel fast path carried on a pinned connection: nat::LbTable::close.
  void lbClose(const conntrack::ConnKey& forward) noexcept;
  size_t lbConnections(uint64_t listener, const nat::LbTarget& member) const;
  bool lbActive() const noexcept { return lb_active_.load(std::memory_order_relaxed); }
  size_t lbSize() const;
  std::map<uint64_t, nat::LbTable::Counters> lbCounters() const;
  // FTP control connections through floating IPs (nat::FtpFloatingTable).
  DropReason ftpFloatingOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                                 packet::Ipv4Address inside, packet::Ipv4Address outside,
                                 nat::PayloadEdit& edit) noexcept;
  void ftpFloatingInbound(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept;

  // The neighbours, as the simulator looks them up.
  const simulator::Neighbors& neighbors() const { return neighbors_; }
  // Learns (or confirms) one; true if that changed something (logged, for
  // every worker's cache).
  bool learnNeighbor(uint32_t switch_key, const IpAddress& ip, const packet::MacAddress& mac);
  // The learned neighbours, up to `limit`, in (switch, address) order.
  struct Neighbor {
    uint32_t switch_key = 0;
    IpAddress ip{};
    packet::MacAddress mac{};
  };
  std::vector<Neighbor> neighborList(size_t limit) const;
  // How many neighbour changes were ever logged.
  uint64_t neighborEpoch() const { return neighbor_epoch_.load(std::memory_order_acquire); }
  // The cache tags of the changes after `epoch`, which moves to the latest;
  // false if the log no longer reaches back that far (the caller's cache
  // must be cleared instead).
  bool neighborChangesSince(uint64_t& epoch, std::vector<flowcache::Tag>& tags) const;

  // The conntrack zone of a local port: given on first use, kept.
  uint16_t zoneOf(uint32_t port);
  // Security-group logging: a record, kept if within the limits (true);
  // the records kept since the last call; how many were over the limits.
  bool logSecurityGroup(SecurityGroupLogRecord record, SteadyTime now);
  std::vector<SecurityGroupLogRecord> takeSecurityGroupLog();
  uint64_t securityGroupLogSuppressed() const {
    return log_suppressed_.load(std::memory_order_relaxed);
  }
  uint64_t securityGroupLogWritten() const { return log_written_.load(std::memory_order_relaxed); }

  // The QoS token bucket of a local port's direction (`sending`: what it
  // sends), made on first use; every worker polices the port with it.
  std::shared_ptr<Policer> policer(uint32_t port, bool sending);
  // Forgets the buckets of ports `keep` says are gone.
  void prunePolicers(const std::function<bool(uint32_t port)>& keep);
  // Slow-path protection: whether local port `port` may have one more
  // packet of its `control` (ARP, ND, DHCP, ICMP) or flow kind worked out
  // now, within `limits`.
  bool admitSlowPath(uint32_t port, bool control, const SlowPathLimits& limits, SteadyTime now);
  // Forgets the slow-path buckets of ports `keep` says are gone.
  void pruneSlowPath(const std::function<bool(uint32_t port)>& keep);

  // Frees expired connections and SNAT mappings (a bounded amount of work).
  // Made for one worker: from that worker's thread only.
  void sweep();

 private:
  class NeighborTable final : public simulator::Neighbors {
   public:
    std::optional<packet::MacAddress> find(uint32_t switch_key, const IpAddress& ip) const override;
    mutable std::shared_mutex mu;
    std::map<std::pair<uint32_t, IpAddress>, packet::MacAddress> entries;  // guarded by mu
    std::map<std::pair<uint32_t, IpAddress>, uint32_t> slots;  // in the state file; guarded by mu
    std::deque<std::pair<uint64_t, flowcache::Tag>> log;       // guarded by mu
  };

  // Adopts what an earlier process left in file_.
  void adopt();

  const bool shared_;
  std::shared_ptr<persist::StateFile> file_;
  Adopted adopted_{};
  conntrack::ConnTrack conntrack_;
  mutable Mutex fragments_mu_;
  conntrack::FragmentTable fragments_ CANOPY_GUARDED_BY(fragments_mu_);
  mutable Mutex snat_mu_;
  nat::SnatTable snat_ CANOPY_GUARDED_BY(snat_mu_);
  std::vector<uint8_t> snat_replica_ CANOPY_GUARDED_BY(snat_mu_);
  mutable Mutex dnat_mu_;
  nat::DnatTable dnat_ CANOPY_GUARDED_BY(dnat_mu_);
  mutable Mutex lb_mu_;
  nat::LbTable lb_ CANOPY_GUARDED_BY(lb_mu_);
  std::atomic<bool> lb_active_{false};
  mutable Mutex ftp_mu_;
  nat::FtpFloatingTable ftp_ CANOPY_GUARDED_BY(ftp_mu_);
  NeighborTable neighbors_;
  std::atomic<uint64_t> neighbor_epoch_{0};
  Mutex zones_mu_;
  std::unordered_map<uint32_t, uint16_t> zones_ CANOPY_GUARDED_BY(zones_mu_);
  std::unordered_map<uint16_t, uint32_t> zone_ports_ CANOPY_GUARDED_BY(zones_mu_);
  std::unordered_map<uint32_t, uint32_t> zone_slots_ CANOPY_GUARDED_BY(zones_mu_);
  uint16_t next_zone_ CANOPY_GUARDED_BY(zones_mu_) = 1;
  const LogLimits log_limits_;
  Mutex log_mu_;
  std::vector<SecurityGroupLogRecord> log_ CANOPY_GUARDED_BY(log_mu_);
  double log_tokens_ CANOPY_GUARDED_BY(log_mu_) = 0;
  SteadyTime log_refilled_ CANOPY_GUARDED_BY(log_mu_){};
  bool log_started_ CANOPY_GUARDED_BY(log_mu_) = false;
  std::atomic<uint64_t> log_suppressed_{0};
  std::atomic<uint64_t> log_written_{0};
  Mutex policers_mu_;
  // (port << 1 | sending) -> its bucket
  std::unordered_map<uint64_t, std::shared_ptr<Policer>> policers_ CANOPY_GUARDED_BY(policers_mu_);
  // (port << 1 | control) -> its slow-path bucket
  std::unordered_map<uint64_t, std::unique_ptr<RateLimiter>> slow_path_
      CANOPY_GUARDED_BY(policers_mu_);
};

struct Counters {
  uint64_t packets = 0;
  uint64_t outputs = 0;
  uint64_t answered = 0;  // generated replies (ARP, DHCP, ICMP)
  uint64_t simulations = 0;
  // Distributed SNAT: replies steered to the host whose lease they are in.
  uint64_t snat_steered = 0;
  std::array<uint64_t, kDropReasonCount> drops{};
  // Metering labels' counts, by label id hashed (simulator::Action::meter):
  // IP packets and their bytes (a super-frame counts once, with its bytes).
  struct Metered {
    uint64_t packets = 0;
    uint64_t bytes = 0;
  };
  std::map<uint64_t, Metered> meters{};

  uint64_t dropped(DropReason r) const { return drops[static_cast<size_t>(r)]; }
};

class Datapath {
 public:
  // `shared`: what this host's other workers' datapaths share with it;
  // null for a datapath of its own.
  Datapath(const Clock& clock, Config config, std::shared_ptr<SharedState> shared = nullptr);

  // The flows offered since the caller last cleared them (Config::offer_flows).
  std::vector<FlowOffer>& offers() { return offers_; }
  // Connections a TCP RST ended since the caller last cleared them: their
  // offered flows are to be taken back.
  std::vector<conntrack::ConnKey>& retractions() { return retractions_; }
  // What was invalidated since the last call (with Config::offer_flows):
  // the installed flows with any of these tags are to be taken back.
  Invalidations takeInvalidations() { return std::exchange(invalidations_, {}); }

  // Replaces the topology; invalidates the cached decisions of what changed.
  void setTopology(std::shared_ptr<const topology::Topology> topology);
  const topology::Topology* topology() const { return topology_.get(); }

  // Runs one frame; appends what it sends to `out`. With a trace, the flow
  // cache is bypassed and every stage's steps are recorded.
  Verdict process(const Ingress& in, std::span<const uint8_t> frame, Outputs& out,
                  Trace* trace = nullptr);

  // Runs a batch: the clock is read once for all of it. A GSO super-frame
  // (the virtio-net header's gso_size, packet/offload.h) stands for
  // segments of `segment_size` payload bytes each: MTUs are checked
  // against one segment, not the whole frame. Outputs name their input by
  // its index in the batch.
  struct Input {
    Ingress in{};
    std::span<const uint8_t> frame{};
    uint16_t segment_size = 0;  // 0: a plain frame
    // The same frame, writable: the datapath rewrites it in place instead
    // of copying it, and outputs may refer to it (Outputs::addRef), so it
    // must outlive them. Empty: `frame` is copied.
    std::span<uint8_t> writable{};
  };
  void processBatch(std::span<const Input> batch, Outputs& out);

  // Frees expired connections and SNAT mappings (a bounded amount of work).
  void sweep();

  const Counters& counters() const { return counters_; }
  SharedState& shared() { return *shared_; }
  // Drops by logical port and reason: what a local port sent (FromPort) or
  // was to receive (ToPort) that the datapath dropped. Ports that leave the
  // topology are forgotten.
  using PortDrops = std::array<uint64_t, kDropReasonCount>;
  const std::unordered_map<uint32_t, PortDrops>& portDrops() const { return port_drops_; }
  const flowcache::CacheStats& cacheStats() const { return cache_.stats(); }
  size_t cacheSize() const { return cache_.size(); }
  const conntrack::ConnTrack& connections() const { return shared_->conntrack(); }
  conntrack::ConnTrack& connections() { return shared_->conntrack(); }
  // A connection the kernel fast path set up between local ports `from`
  // (its opener) and `to` (0: a tunnel's other end) that this datapath
  // never saw open: taken into conntrack in the zone of each port that
  // tracks connections, as ConnTrack::import does (`tuple`: the opener's,
  // its zone ignored).
  void importConnection(uint32_t from, uint32_t to, conntrack::ConnKey tuple, bool answered);

  // Learns (or confirms) an external neighbour; the agent also calls this
  // for static bindings. Invalidates what depended on it.
  void learnNeighbor(uint32_t switch_key, const IpAddress& ip, const packet::MacAddress& mac);

 private:
  using CachedDecision = std::shared_ptr<const simulator::Decision>;

  // The time conntrack and SNAT see: read once per process() call or batch.
  class BatchClock final : public Clock {
   public:
    explicit BatchClock(const Clock& real) : real_(real), now_(real.now()) {}
    SteadyTime now() const noexcept override { return now_; }
    WallTime wallNow() const noexcept override { return real_.wallNow(); }
    void refresh() noexcept { now_ = real_.now(); }

   private:
    const Clock& real_;
    SteadyTime now_;
  };

  struct Packet;
  void processOne(const Ingress& in, std::span<const uint8_t> frame, std::span<uint8_t> writable,
                  Outputs& out, Trace* trace);
  DropReason applyPayloadEdit(Packet& pkt, const nat::PayloadEdit& edit, int depth);
  // A copy of `from` in scratch_[depth].
  std::span<uint8_t> scratch(size_t depth, std::span<const uint8_t> from);
  // Room for an output of the frame being processed.
  std::span<uint8_t> addOutput(Outputs& out, Outputs::Item item, size_t length);
  void runStage(simulator::Context ctx, Packet& pkt, Outputs& out, Trace* trace, int depth);
  void execute(const simulator::Decision& d, const simulator::Context& ctx, Packet& pkt,
               Outputs& out, Trace* trace, int depth);
  void untranslateError(const Packet& pkt, std::vector<uint8_t>& error);
  // Load balancers: a hairpin's reply turned back to its client (true if
  // the packet was one), and least connections' choice.
  bool balancedElsewhere(const simulator::Context& ctx, Packet& pkt, Outputs& out, Trace* trace,
                         int depth);
  void chooseLeastConnected(const simulator::Action& a, const simulator::Context& ctx, Packet& pkt,
                            Outputs& out, Trace* trace, int depth);
  // Cuts the packet to `mtu` (IPv4 without DF) and runs the decision's
  // actions from `next` on each fragment.
  void fragmentAndGoOn(const simulator::Decision& d, size_t next, const simulator::Context& ctx,
                       Packet& pkt, Outputs& out, Trace* trace, int depth, uint16_t mtu);
  void fromTunnel(const Ingress& in, std::span<const uint8_t> udp_payload,
                  std::span<uint8_t> writable, Outputs& out, Trace* trace);
  void fromUplink(const Ingress& in, std::span<const uint8_t> frame, std::span<uint8_t> writable,
                  Outputs& out, Trace* trace);
  void emitTunnel(const simulator::Action& a, const Packet& pkt, Outputs& out);
  // Distributed SNAT, on the host holding router `router_key`'s gateway: a
  // packet for its address `to` whose port is in another host's lease goes
  // there (true: sent or dropped).
  bool steerToLease(uint32_t router_key, const IpAddress& to, Packet& pkt, Outputs& out,
                    Trace* trace);
  // Why decision `d` of a packet in FromPort (`from`) or ToPort does not
  // leave its flow one the kernel fast path may run (nullptr: it does, and
  // `offer`'s part is filled in). `tracked`: the port's decision depends on
  // conntrack (port security and stateful groups), which must then have
  // the connection established. `flow` (a trace): of the flow as its
  // established packets would be, whatever this packet's state and flags.
  static const char* notOffered(const simulator::Decision& d, const simulator::Context& ctx,
                                const packet::ParsedPacket& p, bool from, bool tracked,
                                FlowOffer& offer, bool flow);
  // A complete offer: kept for offers(), or said in the trace.
  void offerFlow(const FlowOffer& o, Trace* trace);
  // The VLAN tag a switch's frames carry on its uplink (0: untagged).
  uint16_t uplinkVlan(uint32_t switch_key) const;
  // An output of `frame` with an 802.1Q tag of VLAN `vid` pushed (to a
  // trunk's parent, for its subport).
  void addTagged(Outputs& out, Outputs::Item item, std::span<const uint8_t> frame, uint16_t vid);
  void emitUplink(uint32_t switch_key, std::span<const uint8_t> frame, Outputs& out,
                  bool generated = false);
  // Counts a drop; `port` (0: none) is the local port it is charged to.
  void drop(DropReason why, Trace* trace, uint32_t port = 0);
  // The shared zone of a port, remembered here.
  uint16_t zoneOf(uint32_t port);
  // A reply router SNAT translated back whose flow the kernel may carry.
  static bool snatOfferable(const Packet& pkt);
  // A packet that may be a load balancer's member's reply, before the
  // stage's decision: translated back to the VIP if it is one (true), and
  // then, if a kernel flow may repeat that, Packet::lb_reply set.
  bool lbReplyBack(const simulator::Context& ctx, Packet& pkt, Trace* trace);
  // Such a reply's flow: its translation (Packet::lb_reply).
  static void lbReplyOffer(const Packet& pkt, FlowOffer& offer);
  // The table of the VIP's listener on switch `switch_key` for the kernel
  // (null if it may not choose: see FlowOffer::lb_selector); built once a
  // topology.
  std::shared_ptr<const LbSelector> lbSelector(uint32_t switch_key, const IpAddress& vip,
                                               uint8_t protocol, uint16_t port);
  // The bucket a Police action counts against, remembered here.
  Policer& policerFor(const simulator::Action& a);
  uint16_t lbZone(const simulator::Context& ctx, uint32_t router);
  uint32_t groupSetId(const simulator::Sender& sender);
  // Invalidates what neighbours other workers learned since the last call.
  void catchUpNeighbors();

  BatchClock clock_;
  const Config config_;
  std::shared_ptr<SharedState> shared_;
  std::shared_ptr<const topology::Topology> topology_;
  flowcache::FlowCache<CachedDecision> cache_;
  // This worker's index into a shared conntrack (null when not shared).
  std::unique_ptr<conntrack::ConnCache> ct_cache_;
  uint64_t neighbor_epoch_ = 0;
  std::vector<flowcache::Tag> neighbor_tags_;
  Counters counters_;
  Verdict verdict_;  // of the packet being processed
  std::unordered_map<uint32_t, PortDrops> port_drops_;
  std::unordered_map<uint32_t, uint16_t> zones_;
  std::unordered_map<uint64_t, std::shared_ptr<Policer>> policers_;
  std::map<std::vector<uint32_t>, uint32_t> group_sets_;
  // (uplink index, VLAN) -> switch; gateway address -> router, for this host.
  std::map<std::pair<uint32_t, uint16_t>, uint32_t> uplink_switches_;
  std::map<std::pair<uint32_t, IpAddress>, uint32_t> local_gateways_;
  // Distributed SNAT: routers whose gateway another host holds and whose
  // ports this host has a lease of -> their gateway's IPv4 address.
  std::map<uint32_t, IpAddress> leased_gateways_;
  std::map<IpAddress, uint32_t> hosts_by_address_;
  // Floating IPs on load balancers' VIPs served here (this host holds the
  // router's gateway) -> the router.
  std::map<IpAddress, uint32_t> lb_floating_;
  std::map<std::tuple<uint32_t, IpAddress, uint8_t, uint16_t>, std::shared_ptr<const LbSelector>>
      lb_selectors_;
  std::vector<FlowOffer> offers_;
  // Offers of connections whose SYN was seen and whose SYN-ACK was not yet
  // (FlowOffer::pending), by each zone's connection key; the oldest go
  // first beyond kMaxPending or after kPendingFor.
  struct Pending {
    FlowOffer offer;
    SteadyTime at;
  };
  static constexpr size_t kMaxPending = 4096;
  static constexpr std::chrono::seconds kPendingFor{10};
  std::unordered_map<conntrack::ConnKey, std::shared_ptr<const Pending>, conntrack::ConnKeyHash>
      pending_;
  std::deque<std::shared_ptr<const Pending>> pending_order_;
  void holdUntilAnswered(const FlowOffer& o);
  bool releaseAnswered(const FlowOffer& answer);
  void forgetPending(const Pending& p);
  std::vector<conntrack::ConnKey> retractions_;
  Invalidations invalidations_;
  void invalidate(flowcache::Tag tag);
  void invalidateAll();
  // Per-depth working copies of the frame (Deliver runs a nested stage).
  std::vector<std::vector<uint8_t>> scratch_;
  std::vector<std::vector<uint8_t>> grown_;  // frames a helper's edit resized, per depth
  // The frame being processed: its index in the batch and GSO segment size.
  uint32_t input_index_ = 0;
  uint16_t segment_size_ = 0;
};

}  // namespace canopy::datapath::pipeline
