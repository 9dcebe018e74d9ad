#include "datapath/packet/offload.h"

#include <algorithm>
#include <cstring>

#include "datapath/packet/checksum.h"

namespace canopy::datapath::packet {
namespace {

// The L4 protocol whose offloads can be carried: TCP or UDP, not a
// fragment, over IPv4 or IPv6; 0 for anything else.
uint8_t carriedProtocol(const ParsedPacket& p) noexcept {
  const FlowKey& k = p.key;
  if (k.eth_type != ethertype::kIpv4 && k.eth_type != ethertype::kIpv6) return 0;
  if (p.l4_offset == 0 || p.payload_offset == 0 || k.ip_frag != Fragment::None) return 0;
  if (k.ip_proto != ipproto::kTcp && k.ip_proto != ipproto::kUdp) return 0;
  return k.ip_proto;
}

// Where the checksum lies in the L4 header.
uint16_t checksumOffset(uint8_t protocol) noexcept { return protocol == ipproto::kTcp ? 16 : 6; }

bool gsoFits(const Offload& o, const ParsedPacket& p, uint8_t protocol) noexcept {
  switch (o.gsoKind()) {
    case Offload::kGsoTcpv4:
      return protocol == ipproto::kTcp && p.key.eth_type == ethertype::kIpv4;
    case Offload::kGsoTcpv6:
      return protocol == ipproto::kTcp && p.key.eth_type == ethertype::kIpv6;
    case Offload::kGsoUdpL4:
      return protocol == ipproto::kUdp;
    default:
      return false;
  }
}

// The pseudo-header sum of the packet's L4 part (`length` bytes of it);
// parse() has seen the IP header whole.
uint32_t pseudoSum(std::span<const uint8_t> frame, const ParsedPacket& p, uint8_t protocol,
                   uint32_t length) noexcept {
  if (p.key.eth_type == ethertype::kIpv4) {
    Ipv4Header ip{};
    static_cast<void>(load(frame, p.l3_offset, ip));
    return pseudoHeaderSum(ip.src, ip.dst, protocol, length);
  }
  Ipv6Header ip{};
  static_cast<void>(load(frame, p.l3_offset, ip));
  return pseudoHeaderSum(ip.src, ip.dst, protocol, length);
}

uint16_t fold(uint32_t sum) noexcept {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(sum);
}

}  // namespace

DropReason acceptOffload(std::span<uint8_t> frame, Offload& o) noexcept {
  o.flags &= Offload::kNeedsChecksum;  // DATA_VALID: nothing the datapath needs
  if (o.none()) {
    o = {};
    return DropReason::None;
  }
  ParsedPacket p;
  uint8_t protocol = parse(frame, p) == DropReason::None ? carriedProtocol(p) : 0;
  if (o.gso()) {
    if (protocol == 0 || !gsoFits(o, p, protocol)) return DropReason::OffloadUnsupported;
    if (o.gso_size == 0) return DropReason::OffloadBadSegmentSize;
    if (o.partial() && o.csum_start == p.l4_offset && o.csum_offset == checksumOffset(protocol)) {
      return DropReason::None;
    }
    // Coalesced by GRO with its checksum verified (or offsets elsewhere):
    // from here on it is a partial checksum like any other super-frame.
    return setPartialChecksum(frame, p, o);
  }
  if (protocol != 0 && o.csum_start == p.l4_offset && o.csum_offset == checksumOffset(protocol)) {
    return DropReason::None;  // finished when it leaves
  }
  // A checksum in a place no later step looks at: finished now.
  if (auto why = completeChecksum(frame, o.csum_start, o.csum_offset); why != DropReason::None) {
    return why;
  }
  o = {};
  return DropReason::None;
}

DropReason setPartialChecksum(std::span<uint8_t> frame, const ParsedPacket& p,
                              Offload& o) noexcept {
  uint8_t protocol = carriedProtocol(p);
  if (protocol == 0 || p.l3_end > frame.size() || (o.gso() && !gsoFits(o, p, protocol))) {
    return DropReason::OffloadUnsupported;
  }
  uint16_t field = checksumOffset(protocol);
  auto length = static_cast<uint32_t>(p.l3_end - p.l4_offset);
  store(frame, p.l4_offset + field, Be16::of(fold(pseudoSum(frame, p, protocol, length))));
  o.flags = Offload::kNeedsChecksum;
  o.csum_start = p.l4_offset;
  o.csum_offset = field;
  o.hdr_len = p.payload_offset;
  return DropReason::None;
}

DropReason setPartialChecksum(std::span<uint8_t> frame, Offload& o) noexcept {
  ParsedPacket p;
  if (auto why = parse(frame, p); why != DropReason::None) return why;
  return setPartialChecksum(frame, p, o);
}

Offload leftPartial(std::span<const uint8_t> frame) noexcept {
  ParsedPacket p;
  if (parse(frame, p) != DropReason::None) return {};
  const uint8_t protocol = carriedProtocol(p);
  if (protocol == 0 || p.l3_end > frame.size()) return {};
  const uint16_t field = checksumOffset(protocol);
  Be16 sum{};
  if (!load(frame, p.l4_offset + field, sum)) return {};
  auto length = static_cast<uint32_t>(p.l3_end - p.l4_offset);
  if (sum.host() != fold(pseudoSum(frame, p, protocol, length))) return {};
  Offload o;
  o.flags = Offload::kNeedsChecksum;
  o.csum_start = p.l4_offset;
  o.csum_offset = field;
  o.hdr_len = p.payload_offset;
  return o;
}

DropReason completeChecksum(std::span<uint8_t> frame, uint16_t csum_start,
                            uint16_t csum_offset) noexcept {
  size_t field = size_t{csum_start} + csum_offset;
  if (csum_start > frame.size() || field + 2 > frame.size()) {
    return DropReason::OffloadBadChecksumOffset;
  }
  uint16_t sum = finish(sumWords(frame.subspan(csum_start)));
  store(frame, field, Be16::of(sum == 0 ? 0xffff : sum));
  return DropReason::None;
}

DropReason segmentHeaders(std::span<const uint8_t> frame, const Offload& o, size_t mss,
                          std::span<const uint8_t> prefix, SegmentHeaders& out) {
  out = SegmentHeaders{.headers = std::move(out.headers)};
  out.headers.clear();
  ParsedPacket p;
  if (auto why = parse(frame, p); why != DropReason::None) return why;
  uint8_t protocol = carriedProtocol(p);
  bool tcp = protocol == ipproto::kTcp;
  // UDP datagrams are cut only when their sender asked for it.
  if (protocol == 0 || (!tcp && o.gsoKind() != Offload::kGsoUdpL4)) {
    return DropReason::OffloadUnsupported;
  }
  if (mss == 0) mss = o.gso_size;
  const size_t headers = p.payload_offset;
  const size_t payload = p.l3_end - p.payload_offset;
  if (mss == 0) return DropReason::OffloadBadSegmentSize;
  const size_t count = payload == 0 ? 1 : (payload + mss - 1) / mss;
  if (count > kMaxSegments) return DropReason::OffloadBadSegmentSize;

  const size_t l3 = p.l3_offset, l4 = p.l4_offset;
  const size_t l3_headers = l4 - l3;       // the IP header, IPv6 extensions included
  const size_t l4_headers = headers - l4;  // the TCP header with options, or UDP's 8 bytes
  const bool v4 = p.key.eth_type == ethertype::kIpv4;
  Ipv4Header ip4{};
  Ipv6Header ip6{};
  TcpHeader th{};
  // parse() has seen all of these whole.
  static_cast<void>(v4 ? load(frame, l3, ip4) : load(frame, l3, ip6));
  if (tcp) static_cast<void>(load(frame, l4, th));

  out.count = count;
  out.mss = mss;
  out.payload = payload;
  out.payload_offset = headers;
  out.header_length = prefix.size() + headers;
  out.headers.resize(count * out.header_length);
  for (size_t i = 0; i < count; ++i) {
    const size_t from = i * mss;
    const size_t chunk = std::min(mss, payload - from);
    std::span<uint8_t> block(out.headers.data() + i * out.header_length, out.header_length);
    std::copy(prefix.begin(), prefix.end(), block.begin());
    std::span<uint8_t> f = block.subspan(prefix.size());
    std::memcpy(f.data(), frame.data(), headers);

    const size_t l4_length = l4_headers + chunk;
    if (v4) {
      Ipv4Header h = ip4;
      h.total_length = Be16::of(static_cast<uint16_t>(l3_headers + l4_length));
      h.id = Be16::of(static_cast<uint16_t>(ip4.id.host() + i));
      h.checksum = {};
      store(f, l3, h);
      h.checksum = Be16::of(checksum(f.subspan(l3, l3_headers)));
      store(f, l3, h);
    } else {
      Ipv6Header h = ip6;
      h.payload_length =
          Be16::of(static_cast<uint16_t>(l3_headers - sizeof(Ipv6Header) + l4_length));
      store(f, l3, h);
    }
    if (tcp) {
      TcpHeader t = th;
      t.sequence = Be32::of(static_cast<uint32_t>(th.sequence.host() + from));
      if (i + 1 < count) t.flags &= static_cast<uint8_t>(~(TcpHeader::kFin | TcpHeader::kPsh));
      if (i > 0) t.flags &= static_cast<uint8_t>(~TcpHeader::kCwr);
      t.checksum = {};
      store(f, l4, t);
    } else {
      UdpHeader u{};
      static_cast<void>(load(frame, l4, u));
      u.length = Be16::of(static_cast<uint16_t>(l4_length));
      u.checksum = {};
      store(f, l4, u);
    }
    // The L4 header's length is a multiple of 4: its sum and the payload's
    // add up as if they were one run of bytes.
    auto length = static_cast<uint32_t>(l4_length);
    uint32_t pseudo = v4 ? pseudoHeaderSum(ip4.src, ip4.dst, protocol, length)
                         : pseudoHeaderSum(ip6.src, ip6.dst, protocol, length);
    uint32_t sum = sumWords(f.subspan(l4, l4_headers), pseudo);
    uint16_t folded = finish(sumWords(frame.subspan(headers + from, chunk), sum));
    if (!tcp && folded == 0) folded = 0xffff;  // 0 would mean "no checksum"
    store(f, l4 + checksumOffset(protocol), Be16::of(folded));
  }
  return DropReason::None;
}

DropReason segment(std::span<const uint8_t> frame, const Offload& o, size_t mss,
                   std::span<const uint8_t> prefix, Segments& out) {
  out.bytes.clear();
  out.stride = 0;
  out.count = 0;
  SegmentHeaders h;
  if (auto why = segmentHeaders(frame, o, mss, prefix, h); why != DropReason::None) return why;
  out.count = h.count;
  out.stride = h.header_length + std::min(h.mss, h.payload);
  out.bytes.resize(h.count * h.header_length + h.payload);
  uint8_t* at = out.bytes.data();
  for (size_t i = 0; i < h.count; ++i) {
    auto header = h.header(i);
    auto payload = h.payloadOf(frame, i);
    std::memcpy(at, header.data(), header.size());
    if (!payload.empty()) std::memcpy(at + header.size(), payload.data(), payload.size());
    at += header.size() + payload.size();
  }
  return DropReason::None;
}

namespace {

// Whether a parsed frame is a segment a run can hold (TcpCoalescer::add()).
bool coalescable(std::span<const uint8_t> frame, const ParsedPacket& p) noexcept {
  const FlowKey& k = p.key;
  const bool v4 = k.eth_type == ethertype::kIpv4;
  if ((!v4 && k.eth_type != ethertype::kIpv6) || k.vlan_tci != 0 || k.ip_proto != ipproto::kTcp ||
      k.ip_frag != Fragment::None || p.l4_offset == 0 || p.payload_offset == 0) {
    return false;
  }
  // IPv4 without options, IPv6 without extension headers.
  const size_t header = v4 ? sizeof(Ipv4Header) : sizeof(Ipv6Header);
  if (static_cast<size_t>(p.l4_offset - p.l3_offset) != header || p.l3_end != frame.size() ||
      p.l3_end == p.payload_offset) {
    return false;
  }
  if (k.tcp_flags != TcpHeader::kAck && k.tcp_flags != (TcpHeader::kAck | TcpHeader::kPsh)) {
    return false;
  }
  if (v4 && checksum(frame.subspan(p.l3_offset, sizeof(Ipv4Header))) != 0) return false;
  auto length = static_cast<uint32_t>(p.l3_end - p.l4_offset);
  const uint32_t pseudo = pseudoSum(frame, p, ipproto::kTcp, length);
  // Verified, or left partial by the sender's kernel (leftPartial()): the
  // run's checksum is partial anyway.
  return finish(sumWords(frame.subspan(p.l4_offset, length), pseudo)) == 0 ||
         (static_cast<uint16_t>(frame[p.l4_offset + 16] << 8 | frame[p.l4_offset + 17]) ==
          fold(pseudo));
}

bool sameBytes(std::span<const uint8_t> a, std::span<const uint8_t> b, size_t from, size_t to) {
  return std::equal(a.begin() + static_cast<std::ptrdiff_t>(from),
                    a.begin() + static_cast<std::ptrdiff_t>(to),
                    b.begin() + static_cast<std::ptrdiff_t>(from));
}

}  // namespace

bool TcpCoalescer::add(std::span<const uint8_t> frame, std::span<const uint8_t> prefix) {
  if (closed_ && segments_ != 0) return false;
  ParsedPacket p;
  if (parse(frame, p) != DropReason::None || !coalescable(frame, p)) return false;
  TcpHeader tcp{};
  static_cast<void>(load(frame, p.l4_offset, tcp));
  const size_t payload = p.l3_end - p.payload_offset;
  const bool push = (tcp.flags & TcpHeader::kPsh) != 0;
  if (segments_ == 0) {
    if (push) return false;
    frame_.assign(prefix.begin(), prefix.end());
    frame_.insert(frame_.end(), frame.begin(), frame.end());
    prefix_ = prefix.size();
    l3_ = p.l3_offset;
    l4_ = p.l4_offset;
    v6_ = p.key.eth_type == ethertype::kIpv6;
    payload_ = p.payload_offset;
    mss_ = static_cast<uint16_t>(payload);
    next_sequence_ = static_cast<uint32_t>(tcp.sequence.host() + payload);
    push_ = false;
    closed_ = false;
    segments_ = 1;
    return true;
  }
  std::span<const uint8_t> whole(frame_);
  std::span<const uint8_t> run = whole.subspan(prefix_);
  // The same prefix, flow and headers: Ethernet; IPv4 version, TOS, flags,
  // TTL, protocol and addresses (IPv6: all but the payload length); TCP
  // ports, acknowledgment, data offset and options.
  const bool same_ip =
      (p.key.eth_type == ethertype::kIpv6) == v6_ &&
      (v6_ ? sameBytes(run, frame, 0, l3_ + 4u) && sameBytes(run, frame, l3_ + 6u, l4_)
           : sameBytes(run, frame, 0, l3_ + 2u) && sameBytes(run, frame, l3_ + 6u, l3_ + 10u) &&
                 sameBytes(run, frame, l3_ + 12u, l4_));
  if (prefix.size() != prefix_ || !std::equal(prefix.begin(), prefix.end(), whole.begin()) ||
      p.payload_offset != payload_ || !same_ip || !sameBytes(run, frame, l4_, l4_ + 4u) ||
      !sameBytes(run, frame, l4_ + 8u, l4_ + 13u) || !sameBytes(run, frame, l4_ + 20u, payload_)) {
    return false;
  }
  if (tcp.sequence.host() != next_sequence_ || payload > mss_ ||
      run.size() - l3_ + payload > UINT16_MAX) {
    return false;
  }
  frame_.insert(frame_.end(), frame.begin() + payload_, frame.end());
  next_sequence_ = static_cast<uint32_t>(next_sequence_ + payload);
  ++segments_;
  push_ = push;
  closed_ = push || payload < mss_;
  return true;
}

std::span<uint8_t> TcpCoalescer::finish(Offload& o) {
  o = {};
  if (segments_ <= 1) return frame_;
  std::span<uint8_t> f = std::span<uint8_t>(frame_).subspan(prefix_);
  if (push_) f[l4_ + 13u] |= TcpHeader::kPsh;
  auto length = static_cast<uint32_t>(f.size() - l4_);
  uint32_t pseudo = 0;
  if (v6_) {
    Ipv6Header ip{};
    static_cast<void>(load(f, l3_, ip));
    ip.payload_length = Be16::of(static_cast<uint16_t>(length));
    store(f, l3_, ip);
    pseudo = pseudoHeaderSum(ip.src, ip.dst, ipproto::kTcp, length);
  } else {
    Ipv4Header ip{};
    static_cast<void>(load(f, l3_, ip));
    ip.total_length = Be16::of(static_cast<uint16_t>(f.size() - l3_));
    ip.checksum = {};
    store(f, l3_, ip);
    ip.checksum = Be16::of(checksum(f.subspan(l3_, sizeof(Ipv4Header))));
    store(f, l3_, ip);
    pseudo = pseudoHeaderSum(ip.src, ip.dst, ipproto::kTcp, length);
  }
  store(f, l4_ + 16u, Be16::of(fold(pseudo)));
  o = {.flags = Offload::kNeedsChecksum,
       .gso_type = v6_ ? Offload::kGsoTcpv6 : Offload::kGsoTcpv4,
       .hdr_len = payload_,
       .gso_size = mss_,
       .csum_start = l4_,
       .csum_offset = 16};
  return frame_;
}

}  // namespace canopy::datapath::packet
