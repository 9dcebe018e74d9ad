#pragma once
// The connections of load balancers' listeners on a client's host
// (docs/LOADBALANCING.md): which member each connection to a VIP is pinned
// to, and how its replies get the VIP back as their source.
//
// A connection from a client to VIP:port, in the client port's conntrack
// zone, is pinned to a member when its first packet is balanced; later
// packets go to the same member even after the listener's members change
// (a new member takes only new connections); a SYN after the connection's
// FIN or RST (its port reused) is balanced afresh.
//
// What the member sees is unique on the member's side: two clients'
// connections (a client's to two listeners, or to two VIPs) that would
// reach one member's address and port from the same address and port get
// another source port for the second, as a full NAT would; a closed TCP
// connection's tuple is held for the member's TIME-WAIT (60 s) after its
// pin goes, so that a new one does not land on it (the member would take
// the new SYN for an old duplicate). The forward packet's
// destination becomes the member's address and port. When the member is
// the client itself (a hairpin), the source becomes the VIP too, so that
// the reply comes back through the datapath. A reply from the member gets
// the VIP's address and port back as its source (and, after a hairpin, the
// client's address and port as its destination), as do ICMP errors about
// the connection.
//
//   LbTable lb(clock);
//   auto pin = lb.pinned(parsed, zone);                       // client -> VIP
//   DropReason why = lb.translate(frame, parsed, zone, member, hairpin, listener);
//   bool undone = lb.translateReply(frame, parsed, zone);      // member -> client
//   lb.sweep();                                                // now and then
//
// TCP and UDP over IPv4 and IPv6. A connection lives while its packets flow, up to an
// idle timeout (an hour for TCP, a minute for UDP), and ten seconds after a
// TCP FIN or RST.
//
// Thread-safety: none; a table belongs to one thread (or one lock). The
// clock is borrowed and must outlive the table.

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <type_traits>
#include <unordered_map>

#include "base/clock.h"
#include "base/ip.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"
#include "datapath/persist/state_file.h"

namespace canopy::datapath::nat {

// A member: its address and port.
struct LbTarget {
  IpAddress address{};
  uint16_t port = 0;

  friend bool operator==(const LbTarget&, const LbTarget&) = default;
};

class LbTable {
 public:
  // An address as flow keys hold it: IPv4's in the first four bytes.
  using Address = std::array<uint8_t, 16>;

  explicit LbTable(const Clock& clock, size_t max_entries = 1 << 18);

  // The member the connection of a packet to a VIP is pinned to, if any.
  std::optional<LbTarget> pinned(const packet::ParsedPacket& p, uint16_t zone) const noexcept;

  // Pins a connection to a member without translating it (a choice made
  // before the packet is forwarded). LbTableFull when the table is full.
  DropReason pin(const packet::ParsedPacket& p, uint16_t zone, LbTarget member,
                 uint64_t listener) noexcept;

  // A packet of a connection to a VIP goes to `member`: pinned (or its pin
  // refreshed), its destination rewritten (and its source, for a hairpin),
  // its reply remembered. Returns None or why not, the frame then
  // unchanged: LbFamilyMismatch, LbNotTcpOrUdp, LbTableFull,
  // LbConnectionLimit (a new connection while the listener has `limit` open
  // here; 0: none), Ipv4Truncated, Ipv6Truncated.
  DropReason translate(std::span<uint8_t> frame, const packet::ParsedPacket& p, uint16_t zone,
                       LbTarget member, bool hairpin, uint64_t listener,
                       uint32_t limit = 0) noexcept;

  // A packet (or an ICMP error) that may be a balanced connection's reply,
  // arriving in the client port's zone: translated back and true if it is.
  bool translateReply(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                      uint16_t zone) noexcept;

  // How many connections through `listener` this host has open to a member
  // (least connections' measure): pinned and not closing.
  size_t connections(uint64_t listener, const LbTarget& member) const noexcept;

  // What each listener (by its id's hash) carried on this host: Octavia's
  // statistics. Bytes in: from clients, as they sent them; out: to them.
  struct Counters {
    uint64_t active = 0;
    uint64_t total = 0;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
  };
  std::map<uint64_t, Counters> counters() const;

  // A connection's tuple as its client sends it to the VIP, in the
  // client's zone. Fixed layout with no padding, hashed as bytes.
  struct Key {
    Address src{};
    Address dst{};
    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    uint16_t zone = 0;
    uint8_t protocol = 0;
    uint8_t family = 0;  // 4 or 6

    friend bool operator==(const Key&, const Key&) = default;
  };

  // The kernel fast path carries a pinned connection's packets (`forward`:
  // its tuple): whether its pin is still live, its timeout moved on as a
  // forward packet's would when `used`, and the bytes (IP packets') it
  // carried each way counted as the datapath counts its own.
  bool keepAlive(const Key& forward, bool used, uint64_t bytes_in, uint64_t bytes_out) noexcept;

  // A connection the kernel fast path set up to `member` (its own source
  // port at the member, no hairpin), pinned as translate() would have
  // pinned its first packet, and counted; `closing` after its FIN. False
  // if it cannot be: the table full, or the member's side of it another
  // live connection's. A pin there already is kept.
  bool import(const Key& forward, LbTarget member, uint64_t listener, bool closing) noexcept;
  // A FIN the kernel fast path carried on a pinned connection: closing, as
  // translate() makes it for one (no longer open; its short timeout).
  void close(const Key& forward) noexcept;

  // Forgets expired connections; at most `budget` of them.
  size_t sweep(size_t budget = 1024) noexcept;
  size_t size() const noexcept { return pins_.size(); }
  bool empty() const noexcept { return pins_.empty() && replies_.empty(); }

  // Keeps every pinned connection in `file` from now on (it outlives the
  // table), so that the agent's next process adopt()s it: a balanced
  // connection stays on its member across a restart.
  void persistTo(persist::StateFile* file) noexcept { file_ = file; }
  // Takes an LbPin record an earlier process left: true if it was one
  // this table reads (an expired one is released), false if not.
  bool adopt(const persist::Record& record) noexcept;

 private:
  static_assert(sizeof(Key) == 40);
  static_assert(std::has_unique_object_representations_v<Key>, "no padding bytes");
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Pin {
    Address member{};
    uint16_t member_port = 0;
    bool hairpin = false;
    bool closing = false;
    bool translated = false;   // a reply is remembered
    uint16_t source_port = 0;  // what the member sees instead of the client's (0: its own)
    uint64_t listener = 0;
    SteadyTime expires{};
    uint32_t slot = persist::kNoSlot;  // its record in the state file
    SteadyTime persisted{};            // the expiry the record holds
  };
  struct Persisted;
  // Writes a pin's record (a slot first, if it has none).
  void persist(const Key& key, Pin& pin) noexcept;
  struct Reply {
    uint64_t listener = 0;
    Address vip{};
    uint16_t vip_port = 0;
    Address client{};  // a hairpin's destination back
    uint16_t client_port = 0;
    SteadyTime expires{};
    bool lingering = false;  // its pin gone: held against reuse until it expires
  };
  // Whether `reply` is that of a connection with this forward tuple.
  static bool sameConnection(const Reply& reply, const Key& forward) noexcept;
  // Another source port for `forward`'s connection to the member, so that
  // `reply` (updated) is unused; false if none was found.
  bool unusedSourcePort(const Key& forward, Key& reply) const noexcept;
  void sweepLingering(SteadyTime now, bool all) noexcept;

  static std::optional<Key> forwardKey(const packet::ParsedPacket& p, uint16_t zone) noexcept;
  Key replyKey(const Key& forward, const Pin& pin) const noexcept;
  // Makes room for one more entry; false if there is none.
  bool room() noexcept;
  // A bare TCP SYN on a closing connection: its port reused, balanced afresh.
  static bool reopens(const packet::ParsedPacket& p, const Pin& pin) noexcept;
  void count(const Pin& pin, int delta) noexcept;
  void erase(std::unordered_map<Key, Pin, KeyHash>::iterator it) noexcept;
  std::chrono::seconds idleTimeout(uint8_t protocol) const noexcept;

  const Clock& clock_;
  const size_t max_entries_;
  std::unordered_map<Key, Pin, KeyHash> pins_;
  std::unordered_map<Key, Reply, KeyHash> replies_;
  // Open connections by (listener, member address, member port).
  std::map<std::tuple<uint64_t, Address, uint16_t>, size_t> open_;
  std::unordered_map<uint64_t, size_t> open_by_listener_;
  std::unordered_map<uint64_t, Counters> counters_;  // total and bytes
  persist::StateFile* file_ = nullptr;
};

}  // namespace canopy::datapath::nat
