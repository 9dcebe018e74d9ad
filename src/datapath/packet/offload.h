#pragma once
// Segmentation and checksum offload for frames that come with a virtio-net
// header (virtio 1.2 section 5.1.6; Linux's AF_PACKET PACKET_VNET_HDR): a
// guest's TCP hands over "super-frames" of up to 64 KiB (GSO) to be cut
// into segments of gso_size payload bytes, and leaves their TCP or UDP
// checksum partial: the field holds only the pseudo-header sum, for
// whoever sends the frame on to finish. What it takes to carry such frames
// through the datapath, without sockets:
//
// - acceptOffload(): on receive, keeps the request only for TCP or UDP that
//   the later steps can finish; any other partial checksum is completed
//   here, any other GSO request refused;
// - setPartialChecksum(): after the datapath rewrote a frame (NAT, TTL, a
//   VLAN tag), the partial checksum and offsets of its final headers, as
//   Linux writes them, for a port whose kernel finishes the job;
// - completeChecksum(): the checksum in software, for a frame that goes
//   where nobody finishes it (into a tunnel);
// - segment(): a super-frame cut into complete TCP (or UDP) segments, each
//   after a prefix (a tunnel header), laid out for one UDP_SEGMENT send;
// - TcpCoalescer: the reverse on the receiving side, consecutive segments of
//   one flow joined into a super-frame again, as GRO does.
//
//   Offload o = ...;                              // from the virtio-net header
//   if (auto why = acceptOffload(frame, o); why != DropReason::None) drop(why);
//   ... the datapath rewrites the frame ...
//   setPartialChecksum(output, o);               // to a port, with o as its header
//   segment(inner, o, 1400, tunnel_header, s);   // into a tunnel, s.count datagrams
//
// Thread-safety: pure functions on their arguments; a TcpCoalescer belongs
// to one thread.

#include <cstdint>
#include <span>
#include <vector>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::packet {

// The offload request of a virtio-net header (struct virtio_net_hdr), with
// the same numbers, in host order.
struct Offload {
  // flags
  static constexpr uint8_t kNeedsChecksum = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM
  static constexpr uint8_t kDataValid = 2;      // VIRTIO_NET_HDR_F_DATA_VALID
  // gso_type
  static constexpr uint8_t kGsoNone = 0;
  static constexpr uint8_t kGsoTcpv4 = 1;
  static constexpr uint8_t kGsoUdp = 3;  // UDP fragmentation (UFO): not carried
  static constexpr uint8_t kGsoTcpv6 = 4;
  static constexpr uint8_t kGsoUdpL4 = 5;  // UDP segmentation (UDP_SEGMENT)
  static constexpr uint8_t kGsoEcn = 0x80;

  uint8_t flags = 0;
  uint8_t gso_type = 0;
  uint16_t hdr_len = 0;      // L2 to L4 headers, for GSO
  uint16_t gso_size = 0;     // payload bytes per segment
  uint16_t csum_start = 0;   // where the checksummed bytes start (the L4 header)
  uint16_t csum_offset = 0;  // the checksum field, from csum_start

  uint8_t gsoKind() const { return static_cast<uint8_t>(gso_type & ~kGsoEcn); }
  bool gso() const { return gsoKind() != kGsoNone; }
  bool partial() const { return (flags & kNeedsChecksum) != 0; }
  // Nothing to finish or cut: the frame is complete as it is.
  bool none() const { return !gso() && !partial(); }
  // What the datapath checks against MTUs: a segment's payload, 0 if none.
  uint16_t segmentSize() const { return gso() ? gso_size : 0; }
};

// The most segments one super-frame is cut into (a 64 KiB frame of
// 32-byte segments); smaller gso_size is refused.
inline constexpr size_t kMaxSegments = 2048;

// Checks a received frame's request. Afterwards `o` is either none() (any
// partial checksum completed in `frame`) or a partial TCP/UDP checksum over
// IPv4 or IPv6 at the frame's L4 header, with GSO if the frame is a
// super-frame; a super-frame whose checksum was already complete (GRO on
// the receiving device) is made partial, so that every super-frame leaves
// the same way. Drops: OffloadUnsupported (GSO of a frame that is not TCP
// or UDP of its kind), OffloadBadSegmentSize, OffloadBadChecksumOffset.
DropReason acceptOffload(std::span<uint8_t> frame, Offload& o) noexcept;

// Writes the partial checksum of the parsed TCP or UDP packet `p` (the
// folded, not inverted, pseudo-header sum: what Linux leaves there) and
// sets o's checksum offsets and header length to the frame's headers, GSO
// fields kept. OffloadUnsupported if `p` is no TCP/UDP over IP.
DropReason setPartialChecksum(std::span<uint8_t> frame, const ParsedPacket& p, Offload& o) noexcept;
DropReason setPartialChecksum(std::span<uint8_t> frame, Offload& o) noexcept;

// What another host's kernel sent through a virtual underlay (its fast
// path's encapsulation, or a tunnel device, over veths) may still carry the
// partial TCP or UDP checksum its sender left: a physical NIC finishes it on
// the way out, a veth and the receiving socket do not. Such a field holds
// exactly the pseudo-header sum; the request that says so (partial at the
// frame's L4 header), or none() for anything else. (A complete checksum that
// happens to equal that sum is computed again from the same bytes: the same.)
Offload leftPartial(std::span<const uint8_t> frame) noexcept;

// Completes a partial checksum in software: the sum of everything from
// csum_start to the frame's end, the field's pseudo-header sum included,
// inverted (0 sent as 0xffff, as Linux does). OffloadBadChecksumOffset if
// the field lies outside the frame.
DropReason completeChecksum(std::span<uint8_t> frame, uint16_t csum_start,
                            uint16_t csum_offset) noexcept;

// A super-frame's segments, one after the other, each after the same
// prefix: every one `stride` bytes long but the last, as a UDP_SEGMENT
// send wants them.
struct Segments {
  std::vector<uint8_t> bytes;
  size_t stride = 0;
  size_t count = 0;

  std::span<const uint8_t> at(size_t i) const {
    size_t begin = i * stride;
    size_t end = i + 1 == count ? bytes.size() : begin + stride;
    return std::span<const uint8_t>(bytes).subspan(begin, end - begin);
  }
};

// The same cut without copying payloads: each segment's headers (after the
// prefix) are `header_length` bytes of `headers`, its payload a slice of the
// frame (for a scatter-gather send). Valid as long as the frame.
struct SegmentHeaders {
  std::vector<uint8_t> headers{};
  size_t header_length = 0;   // the prefix and the frame's L2 to L4 headers
  size_t payload_offset = 0;  // where the frame's payload starts
  size_t mss = 0;
  size_t payload = 0;  // payload bytes in all
  size_t count = 0;

  std::span<const uint8_t> header(size_t i) const {
    return std::span<const uint8_t>(headers).subspan(i * header_length, header_length);
  }
  std::span<const uint8_t> payloadOf(std::span<const uint8_t> frame, size_t i) const {
    size_t from = i * mss;
    return frame.subspan(payload_offset + from, std::min(mss, payload - from));
  }
};
DropReason segmentHeaders(std::span<const uint8_t> frame, const Offload& o, size_t mss,
                          std::span<const uint8_t> prefix, SegmentHeaders& out);

// Cuts a TCP frame (or a UDP one whose request is kGsoUdpL4) into complete
// segments of at most `mss` payload bytes (0: o.gso_size), each after
// `prefix`: L2 to L4 headers copied; IPv4 total length, identification
// (+1 per segment) and header checksum, or IPv6 payload length; TCP
// sequence number advanced, FIN and PSH on the last segment only, CWR on
// the first only; UDP length; every TCP/UDP checksum complete. A frame
// whose payload fits gives one segment. Drops: OffloadUnsupported,
// OffloadBadSegmentSize (an mss of 0 or one that makes more than
// kMaxSegments), and the parser's reasons.
DropReason segment(std::span<const uint8_t> frame, const Offload& o, size_t mss,
                   std::span<const uint8_t> prefix, Segments& out);

// Joins consecutive complete TCP segments of one IPv4 flow into one
// super-frame, as GRO does on a receiving device: what a tunnel brought one
// segment at a time reaches a VM port as one frame with a partial checksum
// and a GSO request, for the kernel to hand to the guest whole (or to cut
// again where it must leave as segments).
//
//   TcpCoalescer c;
//   for (auto frame : frames_to_one_port) {
//     if (c.add(frame)) continue;
//     if (!c.empty()) send(c.finish(o), o), c.clear();
//     if (!c.add(frame)) send(frame, {});
//   }
//   if (!c.empty()) send(c.finish(o), o), c.clear();
class TcpCoalescer {
 public:
  // Takes a segment into the run: as its first if the run is empty, or
  // appended if it continues it. What joins: TCP over IPv4 without options
  // or fragmentation, or over IPv6 without extension headers, untagged,
  // flags ACK or ACK|PSH, payload not empty, IPv4 and TCP checksums
  // verified (or the TCP checksum partial, as another host's kernel may
  // leave it: see leftPartial()); appended, also the run's Ethernet,
  // IP and TCP headers (but for lengths, identification, checksums,
  // sequence number, window and PSH), the next sequence number, a payload
  // no larger than the first's, and at most 64 KiB in all. A shorter
  // segment or PSH ends the run. False, with nothing changed, for anything
  // else; a run never starts with PSH (nothing would join it).
  //
  // With a `prefix` (a tunnel header), the run is kept behind the first
  // segment's prefix, and only segments behind the same prefix join.
  bool add(std::span<const uint8_t> frame, std::span<const uint8_t> prefix = {});

  bool empty() const { return segments_ == 0; }
  size_t segments() const { return segments_; }

  // The run as one frame, and its offload request in `o`: for more than
  // one segment a super-frame (IP length and IPv4 checksum set, PSH if any
  // segment had it, a partial TCP checksum) with a TCPv4 or TCPv6 GSO request of
  // the first segment's payload size; for one, that segment as it came,
  // none(). With a prefix, the frame follows it (and the request's offsets
  // count from the frame, not the prefix). Valid until the next add() or
  // clear().
  std::span<uint8_t> finish(Offload& o);
  void clear() { segments_ = 0; }

 private:
  std::vector<uint8_t> frame_;
  size_t segments_ = 0;
  size_t prefix_ = 0;                       // bytes of frame_ before the run's frame
  uint16_t l3_ = 0, l4_ = 0, payload_ = 0;  // offsets into the run's frame
  uint16_t mss_ = 0;                        // the first segment's payload bytes
  uint32_t next_sequence_ = 0;
  bool push_ = false;
  bool closed_ = false;  // a shorter segment or PSH came: nothing more joins
  bool v6_ = false;
};

}  // namespace canopy::datapath::packet
