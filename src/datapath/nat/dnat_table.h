#pragma once
// Destination translations whose replies are translated back (local IPs,
// on the host of the port that answers them): a packet to `original` goes
// on to `target`, and its connection's replies, from `target`, get
// `original` back as their source, so that the client sees the address it
// spoke to. The client's own address is kept.
//
//   DnatTable dnat(clock);
//   DropReason why = dnat.translate(frame, parsed, fixed_ip);  // client -> local IP
//   bool undone = dnat.translateReply(frame, parsed);          // fixed IP -> client
//   dnat.sweep();                                              // now and then
//
// TCP and UDP connections are matched by ports, ICMP echo by its
// identifier; a packet of another protocol, or a later fragment, is sent on
// translated but its replies cannot be told apart (they keep their source).
// A translation lives while packets use it, up to a timeout after the last.
//
// Thread-safety: none; a table belongs to one thread (or one lock). The
// clock is borrowed and must outlive the table.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <unordered_map>

#include "base/clock.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"
#include "datapath/persist/state_file.h"

namespace canopy::datapath::nat {

class DnatTable {
 public:
  explicit DnatTable(const Clock& clock, std::chrono::seconds timeout = std::chrono::seconds(300),
                     size_t max_entries = 1 << 16);

  // A packet to a translated address: its destination becomes `target`,
  // and (TCP, UDP, ICMP echo) its replies' tuple is remembered. Returns
  // None, or why not (the frame is then unchanged): NatNotIpv4,
  // Ipv4Truncated, LocalIpTableFull.
  DropReason translate(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                       packet::Ipv4Address target) noexcept;

  // A packet that may be a translated connection's reply: if it is, its
  // source becomes the address the client spoke to (and the translation is
  // refreshed); true if it was.
  bool translateReply(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept;

  // The kernel fast path carries a translated connection's packets (its
  // reply's tuple: from `src`:`src_port`, the target, to the client
  // `dst`:`dst_port`; addresses in network order): whether its translation
  // is still live, its timeout moved on as a packet's would when `used`.
  bool keepAlive(packet::Ipv4Address src, uint16_t src_port, packet::Ipv4Address dst,
                 uint16_t dst_port, uint8_t protocol, bool used) noexcept;

  // Forgets expired translations; at most `budget` of them.
  size_t sweep(size_t budget = 1024) noexcept;
  size_t size() const noexcept { return by_reply_.size(); }

  // Keeps every translation in `file` from now on (it outlives the table),
  // written when made or when its expiry moves by a second, for the agent's
  // next process to adopt().
  void persistTo(persist::StateFile* file) noexcept { file_ = file; }
  // Takes a LocalIp record an earlier process left: true if it was one
  // this table reads (an expired one is released), false if not.
  bool adopt(const persist::Record& record) noexcept;

 private:
  // A reply's tuple, addresses in host order. Fixed layout with no padding,
  // hashed as bytes.
  struct Key {
    uint32_t src = 0;
    uint32_t dst = 0;
    uint16_t src_port = 0;  // ICMP echo: the identifier, on both ports
    uint16_t dst_port = 0;
    uint8_t protocol = 0;
    uint8_t reserved[3] = {0, 0, 0};

    friend bool operator==(const Key&, const Key&) = default;
  };
  static_assert(sizeof(Key) == 16);
  static_assert(std::has_unique_object_representations_v<Key>, "no padding bytes");
  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };
  struct Entry {
    uint32_t original = 0;  // the address the client spoke to
    SteadyTime expires{};
    uint32_t slot = persist::kNoSlot;  // its record in the state file
    SteadyTime persisted{};            // the expiry the record holds
  };
  struct Persisted;
  // Writes an entry's record when it is new or its expiry moved by a second.
  void persist(const Key& key, Entry& e) noexcept;

  const Clock& clock_;
  const std::chrono::seconds timeout_;
  const size_t max_entries_;
  std::unordered_map<Key, Entry, KeyHash> by_reply_;
  persist::StateFile* file_ = nullptr;
};

}  // namespace canopy::datapath::nat
