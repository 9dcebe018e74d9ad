// Fuzzes the offload steps (packet/offload.h) with arbitrary frames and
// virtio-net headers: no out-of-bounds access, and what they promise holds.
// An accepted request describes the frame's own TCP/UDP checksum; after
// setPartialChecksum() and completeChecksum() that checksum verifies; a
// segmented frame's segments parse, verify, stay within kMaxSegments and
// carry the frame's payload in order; joined again by TcpCoalescer, they
// still carry it, as frames whose checksums verify once completed.
//
// Input: 10 bytes of virtio-net header (flags, gso_type, then hdr_len,
// gso_size, csum_start, csum_offset little-endian), 2 bytes of segment-size
// limit (0: gso_size), then the frame.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "datapath/packet/checksum.h"
#include "datapath/packet/offload.h"
#include "datapath/packet/parser.h"

using canopy::datapath::DropReason;
namespace packet = canopy::datapath::packet;

namespace {

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }

// Whether the L4 checksum of a parsed IPv4/IPv6 TCP or UDP frame verifies.
bool verifies(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  auto length = static_cast<uint32_t>(p.l3_end - p.l4_offset);
  uint32_t pseudo = 0;
  if (p.key.eth_type == packet::ethertype::kIpv4) {
    packet::Ipv4Header ip;
    if (!packet::load(frame, p.l3_offset, ip)) return false;
    pseudo = packet::pseudoHeaderSum(ip.src, ip.dst, p.key.ip_proto, length);
  } else {
    packet::Ipv6Header ip;
    if (!packet::load(frame, p.l3_offset, ip)) return false;
    pseudo = packet::pseudoHeaderSum(ip.src, ip.dst, p.key.ip_proto, length);
  }
  return packet::finish(packet::sumWords(frame.subspan(p.l4_offset, length), pseudo)) == 0;
}

void check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 12) return 0;
  packet::Offload o{.flags = data[0],
                    .gso_type = data[1],
                    .hdr_len = le16(data + 2),
                    .gso_size = le16(data + 4),
                    .csum_start = le16(data + 6),
                    .csum_offset = le16(data + 8)};
  size_t mss = le16(data + 10);
  std::vector<uint8_t> frame(data + 12, data + size);

  if (packet::acceptOffload(frame, o) != DropReason::None) return 0;
  if (o.none()) return 0;
  packet::ParsedPacket p;
  check(packet::parse(frame, p) == DropReason::None);
  check(p.l4_offset != 0 && o.csum_start == p.l4_offset);
  check(size_t{o.csum_start} + o.csum_offset + 2 <= p.l3_end);
  check(!o.gso() || o.gso_size != 0);

  std::vector<uint8_t> finished = frame;
  check(packet::setPartialChecksum(finished, o) == DropReason::None);
  check(packet::completeChecksum(finished, o.csum_start, o.csum_offset) == DropReason::None);
  // The checksum covers the frame to its end, as the kernel's does: it
  // verifies over the IP packet when nothing follows it.
  if (p.l3_end == finished.size()) check(verifies(finished, p));

  const uint8_t prefix[] = {0x08, 0, 0, 0, 0, 0, 1, 0};
  packet::Segments s;
  if (packet::segment(frame, o, mss, prefix, s) != DropReason::None) return 0;
  check(s.count >= 1 && s.count <= packet::kMaxSegments);
  std::vector<uint8_t> joined;
  for (size_t i = 0; i < s.count; ++i) {
    auto datagram = s.at(i);
    check(i + 1 == s.count || datagram.size() == s.stride);
    check(datagram.size() >= sizeof(prefix) && datagram.size() <= s.stride);
    check(std::equal(std::begin(prefix), std::end(prefix), datagram.begin()));
    auto segment = datagram.subspan(sizeof(prefix));
    packet::ParsedPacket q;
    check(packet::parse(segment, q) == DropReason::None);
    check(q.payload_offset == p.payload_offset && q.l3_end == segment.size());
    check(verifies(segment, q));
    if (q.key.eth_type == packet::ethertype::kIpv4) {
      check(packet::checksum(segment.subspan(q.l3_offset, q.l4_offset - q.l3_offset)) == 0);
    }
    joined.insert(joined.end(), segment.begin() + q.payload_offset, segment.end());
  }
  check(std::equal(joined.begin(), joined.end(), frame.begin() + p.payload_offset,
                   frame.begin() + p.l3_end) &&
        joined.size() == size_t{p.l3_end} - p.payload_offset);

  // The receiving side: runs of segments joined into super-frames.
  packet::TcpCoalescer coalescer;
  std::vector<uint8_t> rejoined;
  auto flush = [&] {
    if (coalescer.empty()) return;
    packet::Offload r;
    auto run = coalescer.finish(r);
    std::vector<uint8_t> complete(run.begin(), run.end());
    packet::ParsedPacket q;
    check(packet::parse(complete, q) == DropReason::None && q.l3_end == complete.size());
    if (!r.none()) {
      check(r.gso() && r.partial() && r.csum_start == q.l4_offset);
      check(packet::completeChecksum(complete, r.csum_start, r.csum_offset) == DropReason::None);
    }
    check(verifies(complete, q));
    rejoined.insert(rejoined.end(), complete.begin() + q.payload_offset, complete.end());
    coalescer.clear();
  };
  for (size_t i = 0; i < s.count; ++i) {
    auto segment = s.at(i).subspan(sizeof(prefix));
    if (coalescer.add(segment)) continue;
    flush();
    if (coalescer.add(segment)) continue;
    packet::ParsedPacket q;
    check(packet::parse(segment, q) == DropReason::None);
    rejoined.insert(rejoined.end(), segment.begin() + q.payload_offset, segment.end());
  }
  flush();
  check(rejoined == joined);
  return 0;
}
