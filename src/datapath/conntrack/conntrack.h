#pragma once
// Connection tracking for stateful security groups (and, later, NAT): TCP
// tracked through its handshake, data and closing (with a sequence check on
// RST), UDP and ICMP echo by their tuples, ICMP errors related to the
// connection they quote; entries per zone (one zone per logical port), with
// timeouts and a size limit.
//
// As OVS's ct(): lookup() tells a packet's state without creating anything;
// the security-group decision then commit()s a new connection it allows.
//
//   auto s = table.lookup(parsed, frame, zone);
//   if (s.state == CtState::New && allowedByRules) {
//     if (auto why = table.commit(parsed, frame, zone); why != DropReason::None) drop(why);
//   }
//
// With a persist::StateFile (persistTo()), every connection is also a
// record there, written when its state or expiry changes, so that the
// agent's next process adopt()s it: established connections survive a
// restart of the agent. A record's expiry is at most a second early.
//
// Thread-safety: with Limits::shared, lookup(), commit(), sweep() and
// find() from any thread: the table is split into shards, each with its
// lock, and both directions of a connection live in the same shard (chosen
// by a hash that is the same for a tuple and its reverse), so the workers
// of one host share it and a connection's two directions may run on
// different workers. Without, one thread owns it and takes no lock.

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"
#include "datapath/persist/state_file.h"

namespace canopy::datapath::conntrack {

enum class CtState : uint8_t {
  New,          // no connection yet; may be committed
  Established,  // part of a committed connection (either direction)
  Related,      // an ICMP error about a committed connection
  Invalid,      // does not fit: TCP without SYN and no connection, RST out of window...
  Untracked,    // not IP, or a protocol that is not tracked (still forwarded by rules)
};

enum class TcpState : uint8_t {
  SynSent,
  SynReceived,
  Established,
  FinWait,   // one side sent FIN
  Closing,   // both sides sent FIN
  TimeWait,  // the last FIN was acknowledged
  Closed,    // reset
};

struct Timeouts {
  std::chrono::seconds tcp_syn{60};
  std::chrono::seconds tcp_established{24 * 3600};
  std::chrono::seconds tcp_closing{120};
  std::chrono::seconds tcp_time_wait{120};
  std::chrono::seconds tcp_closed{10};
  std::chrono::seconds udp_unreplied{30};
  std::chrono::seconds udp_replied{180};
  std::chrono::seconds icmp{30};
};

struct Limits {
  size_t max_connections = 1 << 20;
  Timeouts timeouts{};
  // Used from several threads at once (a host's datapath workers): each
  // shard is locked; otherwise one thread owns the table and nothing is.
  bool shared = false;
};

// One direction of a connection: its tuple in a zone. Fixed layout, no
// padding, compared and hashed as bytes (change connKey() with it).
struct ConnKey {
  std::array<uint8_t, 16> src{};
  std::array<uint8_t, 16> dst{};
  uint16_t src_port = 0;  // ICMP echo: the identifier
  uint16_t dst_port = 0;
  uint16_t zone = 0;
  uint8_t protocol = 0;
  uint8_t family = 0;  // 4 or 6

  friend bool operator==(const ConnKey& a, const ConnKey& b) { return packet::sameBytes(a, b); }
  ConnKey reversed() const;
};
static_assert(sizeof(ConnKey) == 40);
static_assert(std::has_unique_object_representations_v<ConnKey>, "no padding bytes");

struct ConnKeyHash {
  size_t operator()(const ConnKey& k) const noexcept;
};

struct Lookup {
  CtState state = CtState::Untracked;
  bool reply = false;    // the packet goes in the connection's reply direction
  bool closing = false;  // TCP: both sides sent FIN, or a RST (after this packet)
  DropReason invalid_reason = DropReason::None;  // why, when Invalid
};

// A connection's state (find() returns a copy).
struct Connection {
  ConnKey original;  // its protocol is the connection's
  TcpState tcp = TcpState::SynSent;
  bool replied = false;
  bool fin_seen[2] = {false, false};  // [reply]
  uint32_t next_seq[2] = {0, 0};      // highest seq + length seen, per direction
  SteadyTime expires{};
};

// A connection in the table: its state behind its own lock, all in one
// cache line of its own, so that the workers that run a host's other
// connections never write this one's line. `dead` once it has left the
// table.
struct alignas(64) ConnEntry {
  // Bits of `flags`.
  static constexpr uint8_t kReplied = 1;
  static constexpr uint8_t kFinSeen = 2;  // << direction (0 original, 1 reply)

  ConnKey original;  // set before the entry is shared, then read-only
  uint32_t next_seq[2] CANOPY_GUARDED_BY(lock) = {0, 0};
  TcpState tcp CANOPY_GUARDED_BY(lock) = TcpState::SynSent;
  uint8_t flags CANOPY_GUARDED_BY(lock) = 0;
  SpinLock lock;
  std::atomic<bool> dead{false};
  // Its record in the state file (persist::kNoSlot: none); set before the
  // entry is shared, then read-only.
  uint32_t slot = persist::kNoSlot;
  SteadyTime expires CANOPY_GUARDED_BY(lock){};

  bool replied() const CANOPY_REQUIRES(lock) { return (flags & kReplied) != 0; }
  bool finSeen(int direction) const CANOPY_REQUIRES(lock) {
    return (flags & (kFinSeen << direction)) != 0;
  }
};
static_assert(sizeof(ConnEntry) == 64, "a connection fills one cache line");

// A worker's index of the connections it has looked up in a shared table:
// the next packet of one takes that connection's lock alone, not its
// shard's (whose line the other workers' packets would move between
// cores). Entries are checked (dead, expired) before use, so a stale one
// only costs a look in the table.
class ConnCache {
 public:
  explicit ConnCache(
      size_t slots = 8192);  // a power of two, in sets of two  // rounded up to a power of two

 private:
  friend class ConnTrack;
  struct Slot {
    ConnKey key;
    std::shared_ptr<ConnEntry> entry;
  };
  Slot& slot(const ConnKey& key) noexcept;
  std::vector<Slot> slots_;
};

class ConnTrack {
 public:
  ConnTrack(const Clock& clock, Limits limits);

  // The packet's state; advances the TCP state and timeouts of an existing
  // connection. Creates nothing. `now`: the caller's time (a batch's), else
  // the clock's.
  // `cache`, the calling worker's (a shared table only), is consulted and
  // filled.
  Lookup lookup(const packet::ParsedPacket& p, std::span<const uint8_t> frame, uint16_t zone,
                SteadyTime now, ConnCache* cache = nullptr) noexcept;
  Lookup lookup(const packet::ParsedPacket& p, std::span<const uint8_t> frame,
                uint16_t zone) noexcept {
    return lookup(p, frame, zone, clock_.now());
  }
  // Creates the connection a New packet starts. ConntrackFull when the table
  // is at its limit (existing connections are not disturbed).
  DropReason commit(const packet::ParsedPacket& p, std::span<const uint8_t> frame, uint16_t zone,
                    SteadyTime now) noexcept;
  DropReason commit(const packet::ParsedPacket& p, std::span<const uint8_t> frame,
                    uint16_t zone) noexcept {
    return commit(p, frame, zone, clock_.now());
  }

  // The kernel fast path carried packets of connection `key` (either
  // direction) that this table did not see: its timeout moves on as theirs
  // would have, and its TCP sequence positions are learned again from the
  // next segments it sees; a handshake answered (SYN-ACK) is complete
  // (the kernel carried its last ACK). False if the connection is gone or
  // was reset.
  bool touch(const ConnKey& key, SteadyTime now) noexcept;

  // A TCP connection the kernel fast path set up itself (from a template,
  // fastpath/bpf/fastpath.h), which this table never saw open: `original`
  // is its opening direction. Answered (the kernel carried its SYN-ACK):
  // Established; else SynSent. Its sequence positions are learned from the
  // next segments it sees. Nothing changes if the table has it already;
  // an earlier connection on the tuple that was over (TIME_WAIT, reset, or
  // its opener's FIN seen) is replaced, as the new SYN would have replaced it.
  // ConntrackFull when the table is at its limit.
  DropReason import(const ConnKey& original, bool answered, SteadyTime now) noexcept;
  // The kernel fast path carried a FIN of connection `key`, in the
  // direction `key` names: as if this table had seen it. Whether both sides
  // have now sent one (the connection is closing); false if it is gone.
  bool finished(const ConnKey& key, SteadyTime now) noexcept;
  // Frees expired connections; at most `budget` of them per call.
  size_t sweep(size_t budget = 1024) noexcept;

  size_t size() const noexcept { return connections_.load(std::memory_order_relaxed); }

  // Keeps every connection in `file` from now on (before the table is
  // shared; the file outlives the table).
  void persistTo(persist::StateFile* file) noexcept { file_ = file; }
  // Takes a Connection record an earlier process left in the file given
  // to persistTo(): true if it was one this table reads (an expired one is
  // released), false if not (the caller discards it).
  bool adopt(const persist::Record& record) noexcept;
  bool shared() const noexcept { return limits_.shared; }
  // A copy of the live connection `key` names (either direction).
  std::optional<Connection> find(const ConnKey& key) const noexcept;

  // Shards of a shared table: enough that two workers' connections seldom
  // share one, so that a lock's line rarely moves between cores. A table
  // one thread owns has one.
  static constexpr size_t kSharedShards = 4096;
  size_t shards() const noexcept { return shard_mask_ + 1; }

 private:
  // A cache line (or two) each: workers locking neighbouring shards do not
  // take each other's lines.
  struct alignas(64) Shard {
    mutable Mutex mu;
    // Both directions' keys lead to the same connection.
    std::unordered_map<ConnKey, std::shared_ptr<ConnEntry>, ConnKeyHash> table
        CANOPY_GUARDED_BY(mu);
  };
  // What a packet of live connection `c` (found by `k`) is, advancing it.
  [[gnu::always_inline]] inline Lookup established(ConnEntry& c, const ConnKey& k,
                                                   const packet::ParsedPacket& p,
                                                   std::span<const uint8_t> frame,
                                                   SteadyTime now) noexcept CANOPY_REQUIRES(c.lock);
  size_t shardOf(const ConnKey& key) const noexcept;
  // The live entry `key` names (an expired one is erased), or nullptr.
  const std::shared_ptr<ConnEntry>* live(Shard& shard, const ConnKey& key, SteadyTime now) noexcept
      CANOPY_REQUIRES(shard.mu);
  void advanceTcp(ConnEntry& c, const packet::ParsedPacket& p, std::span<const uint8_t> frame,
                  bool reply, SteadyTime now, Lookup& out) noexcept CANOPY_REQUIRES(c.lock);
  // A new connection, its state set, into the table (both directions) and
  // the state file.
  void insert(Shard& shard, std::shared_ptr<ConnEntry> e) noexcept CANOPY_REQUIRES(shard.mu);
  // Takes the entry out of the table (both directions) and marks it dead.
  void erase(Shard& shard, ConnEntry& e) noexcept CANOPY_REQUIRES(shard.mu);
  // Writes the entry's record to the state file.
  void persist(const ConnEntry& c) noexcept CANOPY_REQUIRES(c.lock);

  const Clock& clock_;
  const Limits limits_;
  const size_t shard_mask_;
  std::unique_ptr<Shard[]> shards_;
  std::atomic<size_t> connections_{0};
  std::atomic<size_t> sweep_from_{0};  // the shard the next sweep starts at
  persist::StateFile* file_ = nullptr;
};

// The tuple of a parsed packet (nullopt-like: family 0 when untracked).
ConnKey connKey(const packet::ParsedPacket& p, uint16_t zone) noexcept;

}  // namespace canopy::datapath::conntrack
