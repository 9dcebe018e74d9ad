#pragma once
// Application-level gateways for a router's NAT (Neutron's conntrack
// helpers), as Linux's nf_conntrack_ftp/nf_nat_ftp and
// nf_conntrack_tftp do them:
//
// - FTP (RFC 959, RFC 2428): a control segment that starts with PORT or
//   EPRT (a client's address for the data connection) or a 227 reply (a
//   passive server's) names the inside address: findFtpEndpoint() finds
//   it, and the NAT puts its outside address (and, for SNAT, the port it
//   expects the data connection on) in its place. The text's length may
//   change, so the connection's later sequence numbers and the other
//   side's acknowledgments (and SACK blocks) are shifted by SeqAdjust;
// - TFTP (RFC 1350): the server answers a request from a new port, which
//   SNAT expects (snat_table.h); no payload changes.
//
//   if (auto e = findFtpEndpoint(payload); e && e->address == inside) {
//     PayloadEdit edit = e->replacedBy(outside, port);      // offsets in the payload
//     adjust.record(seq, edit.delta());
//     applyEdit(frame, parsed, edit);                       // lengths and checksums
//   }
//
// Thread-safety: pure functions and values.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "base/clock.h"
#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::nat {

// A change of some payload bytes to other text.
struct PayloadEdit {
  size_t offset = 0;  // in the L4 payload
  size_t length = 0;  // bytes replaced
  std::string text{};
  int32_t delta() const noexcept {
    return static_cast<int32_t>(text.size()) - static_cast<int32_t>(length);
  }
};

enum class FtpForm : uint8_t {
  Port,     // "PORT h1,h2,h3,h4,p1,p2"
  Eprt,     // "EPRT |1|a.b.c.d|port|" (any delimiter)
  Passive,  // "227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)"
};

struct FtpEndpoint {
  FtpForm form = FtpForm::Port;
  size_t begin = 0, end = 0;  // the address and port's text in the payload
  packet::Ipv4Address address{};
  uint16_t port = 0;
  char delimiter = '|';  // EPRT's

  // The edit that names `address` and `port` instead.
  PayloadEdit replacedBy(packet::Ipv4Address address, uint16_t port) const;
};

// The endpoint a control segment's payload starts with (a command or reply
// at its beginning, as Linux's helper reads it), or nullopt: not one of
// the three, malformed (a number out of range, no terminator), or IPv6
// (EPRT's family 2).
std::optional<FtpEndpoint> findFtpEndpoint(std::span<const uint8_t> payload) noexcept;

// One direction's payload changes, as Linux's nf_ct_seqadj keeps them: the
// bytes added (or removed) before and after the last changed segment.
struct SeqAdjust {
  uint32_t correction_pos = 0;  // sequence number of the last changed segment
  int32_t offset_before = 0;
  int32_t offset_after = 0;

  bool active() const noexcept { return offset_before != 0 || offset_after != 0; }
  // The segment at `seq` (as sent) grew by `delta` bytes.
  void record(uint32_t seq, int32_t delta) noexcept;
  // What to add to a sequence number `seq` of the changed direction.
  int32_t forSeq(uint32_t seq) const noexcept;
  // What to take from an acknowledgment `ack` of the changed direction's bytes.
  int32_t forAck(uint32_t ack) const noexcept;
};

// Shifts a TCP segment of the changed direction (its sequence number), or
// of the other (its acknowledgment and SACK blocks), updating the checksum.
// Nothing happens to a packet that is no TCP segment of IPv4.
void adjustSeq(std::span<uint8_t> frame, const packet::ParsedPacket& p,
               const SeqAdjust& adjust) noexcept;
void adjustAck(std::span<uint8_t> frame, const packet::ParsedPacket& p,
               const SeqAdjust& adjust) noexcept;

// Applies `edit` to the payload of the TCP/IPv4 segment in `frame`: the
// frame grows or shrinks, the IPv4 total length and checksum and the TCP
// checksum are written anew. NatHelperEdit if the packet would pass
// 65535 bytes or the edit does not lie in the payload (the frame is then
// unchanged). `p` is the frame's parse; parse again after.
DropReason applyEdit(std::vector<uint8_t>& frame, const packet::ParsedPacket& p,
                     const PayloadEdit& edit);

// FTP through a floating IP (1:1, which keeps no other state): the
// sequence shifts of the control connections whose segments were edited,
// by their outside tuple, forgotten after `idle` without a packet.
//
// Thread-safety: none; the caller locks.
class FtpFloatingTable {
 public:
  explicit FtpFloatingTable(const Clock& clock, std::chrono::seconds idle = std::chrono::hours(2),
                            size_t max_entries = 4096)
      : clock_(clock), idle_(idle), max_entries_(max_entries) {}

  // A control segment leaving through the floating IP `outside`, from
  // `inside` (its bytes may be translated already; `p` is its parse from
  // before): a PORT, EPRT or 227 that names `inside` is rewritten to
  // `outside` with the same port (`edit`, applied by the caller after); its
  // sequence number is shifted. NatTableFull when a new connection's shift
  // finds no room.
  DropReason outbound(std::span<uint8_t> frame, const packet::ParsedPacket& p,
                      packet::Ipv4Address inside, packet::Ipv4Address outside,
                      PayloadEdit& edit) noexcept;
  // A control segment arriving for the floating IP, before translation:
  // its acknowledgment (and SACK blocks) shifted back.
  void inbound(std::span<uint8_t> frame, const packet::ParsedPacket& p) noexcept;

  size_t sweep(size_t budget = 1024) noexcept;
  size_t size() const noexcept { return entries_.size(); }

 private:
  struct Entry {
    SeqAdjust adjust{};
    SteadyTime expires{};
  };
  // outside address, remote address, outside port << 16 | remote port
  using Key = std::tuple<uint32_t, uint32_t, uint32_t>;

  const Clock& clock_;
  const std::chrono::seconds idle_;
  const size_t max_entries_;
  std::map<Key, Entry> entries_;
};

}  // namespace canopy::datapath::nat
