#pragma once
// Router SNAT (port masquerading) on the gateway host: the translations of
// internal (address, port) pairs to ports of an external address, made by
// outbound packets, found again by their replies, and forgotten after a
// timeout.
//
//   SnatTable snat(clock);
//   // leaving the router's internal networks through its gateway:
//   DropReason why = snat.translateOutbound(frame, parsed, gateway_ip);
//   // arriving for the gateway address:
//   DropReason why = snat.translateInbound(frame, parsed);
//   snat.sweep();  // now and then, on the same thread
//
// TCP and UDP map by ports, ICMP echo by its identifier (standing for both
// ports, as in conntrack). With a helper (the router's conntrack helper for
// the packet's port, helpers.h), a mapping also expects a related
// connection from its remote end: TFTP's answer from the server's new
// port, FTP's active-mode data connection to the port an outbound PORT or
// EPRT names (rewritten to the external address and a port of its own,
// the length change carried through the control connection's sequence
// numbers). The first packet of an expected connection makes its mapping;
// an expectation is used once, or forgotten after a timeout. A mapping keeps the connection's
// source port when that port of the external address is free, and holds its external port alone
// until it expires. ICMP errors about a mapped flow are translated in both directions, quote
// included (RFC 5508); they refresh nothing. Other protocols, and later fragments, whose ports are
// unknown, are refused.
//
// With a persist::StateFile (persistTo()), every mapping is also a record
// there, written when it is made, changes, or its expiry moves by a second,
// so that the agent's next process adopt()s it and the connections it
// translates go on. A helper's expectations are not kept.
//
// Thread-safety: none; a table belongs to one thread. The clock is borrowed
// and must outlive the table.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>
#include <unordered_map>

#include "base/clock.h"
#include "datapath/nat/helpers.h"
#include "datapath/nat/nat.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"
#include "datapath/persist/state_file.h"

namespace canopy::datapath::nat {

struct SnatTimeouts {
  std::chrono::seconds tcp{86400};
  std::chrono::seconds tcp_closing{120};  // once a FIN or RST has been seen
  std::chrono::seconds udp{180};
  std::chrono::seconds icmp{30};
  std::chrono::seconds expected{300};  // a helper's expected connection (Linux's)
};

// The router's helper for a packet's connection, if any.
enum class SnatHelper : uint8_t { None, Ftp, Tftp };

class SnatTable {
 public:
  explicit SnatTable(const Clock& clock, SnatTimeouts timeouts = {}, size_t max_entries = 1 << 18,
                     uint16_t first_port = 1024, uint16_t last_port = 65535);

  // An outbound packet from an internal source, leaving as `external`: finds
  // or makes the mapping of its tuple, rewrites its source address and port
  // (or echo identifier) in place and refreshes the mapping's timeout. An
  // ICMP error that an internal host sends about a mapped flow's reply is
  // translated with its quote, through the flow's own external address.
  // Returns None, or why not (the frame is then unchanged): NatNotIpv4,
  // NatLaterFragment, NatProtocolUnsupported, NatPortsExhausted (counted in
  // exhausted()), NatTableFull, NatNoMapping (an ICMP error about no flow),
  // NatBadIcmpQuote.
  //
  // `helper`: Tftp expects the server's answer to a read or write request;
  // Ftp shifts the control connection's sequence numbers and, when the
  // segment starts with PORT or EPRT naming the internal host, expects the
  // data connection on a new external port and fills `edit` with the
  // payload change the caller makes (applyEdit) after this call (the
  // sequence number already accounts for it). NatPortsExhausted when no
  // port is left for the data connection.
  //
  // `ports`: the external ports a new mapping takes (distributed SNAT: this
  // host's lease); a mapping whose port is outside them starts over.
  DropReason translateOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                               packet::Ipv4Address external, SnatHelper helper = SnatHelper::None,
                               PayloadEdit* edit = nullptr, PortRange ports = {}) noexcept;

  // An inbound packet for an external address: a mapping's reply (from its
  // remote end to its external address and port) gets the internal
  // destination back, and refreshes the timeout; an ICMP error quoting a
  // translated outbound packet gets its outer destination and the quote's
  // source translated back. Returns None, or why not (the frame is then
  // unchanged): NatNoMapping, NatNotIpv4, NatLaterFragment, NatBadIcmpQuote.
  // An expected connection's first packet makes its mapping; an FTP control
  // connection's acknowledgments are shifted back.
  // `plain` (if given): whether the translation is the mapping's address
  // and port alone, as a kernel flow may repeat it for the connection's
  // later packets (not a helper's connection, whose segments shift, nor an
  // ICMP error).
  DropReason translateInbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                              bool* plain = nullptr) noexcept;

  // The kernel fast path carries a mapping's packets (the mapping's tuple
  // as the internal host sends it: `src`:`src_port` -> `dst`:`dst_port`,
  // addresses in network order): whether it is still live, its timeout
  // moved on as a packet's would when `used`.
  bool keepAlive(packet::Ipv4Address src, uint16_t src_port, packet::Ipv4Address dst,
                 uint16_t dst_port, uint8_t protocol, bool used) noexcept;

  // Frees expired mappings and their ports; at most `budget` of them.
  size_t sweep(size_t budget = 1024) noexcept;

  size_t size() const noexcept { return by_outbound_.size(); }

  // Keeps every mapping in `file` from now on (it outlives the table).
  void persistTo(persist::StateFile* file) noexcept { file_ = file; }
  // Takes an Snat record an earlier process left in that file: true if it
  // was one this table reads (one expired, or whose port is taken, is
  // released), false if not (the caller discards it).
  bool adopt(const persist::Record& record) noexcept;

  // Gateway high availability: every record persist() writes is also
  // appended to `out` (a record is kRecordBytes; at most `limit` bytes are
  // kept), for the standby hosts; exportAll() appends every mapping's.
  static constexpr size_t kRecordBytes = 56;
  void replicateTo(std::vector<uint8_t>* out, size_t limit) noexcept {
    replica_ = out;
    replica_limit_ = limit;
  }
  void exportAll(std::vector<uint8_t>& out) const;
  // A record a host holding the gateway sent: its mapping made here (or
  // brought up to date), so that this host translates the connection if
  // it takes the gateway over. False if the bytes are not a mapping.
  bool absorb(std::span<const uint8_t> record) noexcept;
  size_t expectations() const noexcept { return expected_.size(); }
  // How many new mappings found no free port.
  uint64_t exhausted() const noexcept { return ports_.exhausted(); }

 private:
  // One direction's tuple, addresses in host order. Fixed layout with no
  // padding, hashed as bytes: change packetKey(), quotedKey() and KeyHash in
  // snat_table.cc with it.
  struct Key {
    uint32_t src = 0;
    uint32_t dst = 0;
    uint16_t src_port = 0;  // ICMP echo: the identifier, on both ports
    uint16_t dst_port = 0;
    uint8_t protocol = 0;
    uint8_t reserved[3] = {0, 0, 0};

    friend bool operator==(const Key&, const Key&) = default;
    Key reversed() const noexcept;
  };
  static_assert(sizeof(Key) == 16);
  static_assert(std::has_unique_object_representations_v<Key>, "no padding bytes");

  struct KeyHash {
    size_t operator()(const Key& k) const noexcept;
  };

  struct Mapping {
    Key outbound;  // as the internal host sends: internal -> remote
    Key inbound;   // the reply as it arrives: remote -> external address and port
    SteadyTime expires{};
    bool closing = false;              // TCP: a FIN or RST was seen
    bool helper = false;               // made or used with a helper (its segments may shift)
    SeqAdjust adjust{};                // FTP: what the outbound payload edits shifted
    uint32_t slot = persist::kNoSlot;  // its record in the state file
    SteadyTime persisted{};            // the expiry the record holds
  };
  struct Persisted;

  // A connection a helper expects from `remote` (any port) to the external
  // address and port, for the internal address and port. It holds its
  // external port (PortAllocator::retain) until used or expired.
  struct Expectation {
    uint32_t remote = 0;
    uint32_t external = 0;
    uint32_t internal = 0;
    uint16_t external_port = 0;
    uint16_t internal_port = 0;
    uint8_t protocol = 0;
    SteadyTime expires{};
  };
  static constexpr size_t kMaxExpectations = 4096;

  static std::optional<Key> packetKey(const packet::ParsedPacket& p) noexcept;
  static std::optional<Key> quotedKey(std::span<const uint8_t> frame,
                                      const IcmpQuote& quote) noexcept;

  Mapping* liveOutbound(const Key& key) noexcept;
  Mapping* liveInbound(const Key& key) noexcept;
  Mapping* expireIfDue(Mapping* m) noexcept;
  DropReason create(const Key& outbound, packet::Ipv4Address external, PortRange ports,
                    Mapping*& out) noexcept;
  void refresh(Mapping& m, const packet::FlowKey& f, bool outbound) noexcept;
  void erase(const Mapping& m) noexcept;
  // Writes the mapping's record to the state file (if it has one).
  void persist(Mapping& m) noexcept;
  DropReason translateError(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                            bool outbound) noexcept;
  // Expects a connection (the port already held by the caller, which this
  // takes over); false when the table of expectations is full.
  bool expect(const Expectation& e) noexcept;
  // The mapping for the expected connection `inbound` starts, or nullptr.
  Mapping* fromExpectation(const Key& inbound) noexcept;
  void forget(std::vector<Expectation>::iterator e) noexcept;
  DropReason ftpOutbound(std::span<uint8_t> frame, const packet::ParsedPacket& p, Mapping& m,
                         const Key& key, PayloadEdit* edit, PortRange ports) noexcept;

  const Clock& clock_;
  const SnatTimeouts timeouts_;
  const size_t max_entries_;
  PortAllocator ports_;
  std::unordered_map<Key, Mapping, KeyHash> by_outbound_;
  // Points into by_outbound_ (its nodes do not move).
  std::unordered_map<Key, Mapping*, KeyHash> by_inbound_;
  std::vector<Expectation> expected_;  // few: searched in order
  persist::StateFile* file_ = nullptr;
  std::vector<uint8_t>* replica_ = nullptr;
  size_t replica_limit_ = 0;
  // Makes the mapping a record names (the port claimed); false if it
  // cannot be (expired, its tuple or port taken, the table full).
  bool insert(const Persisted& r, uint32_t slot) noexcept;
  // The record of a mapping.
  Persisted recordOf(const Mapping& m) const noexcept;
};

}  // namespace canopy::datapath::nat
