// Fuzzes the NAT's FTP helper (nat/helpers.h) with arbitrary control
// segments: findFtpEndpoint() reads only the payload and finds an endpoint
// inside it; the edit that names another address and port, applied to the
// frame, gives a frame that parses, whose IPv4 and TCP checksums verify and
// whose payload is the old one with the text spliced in, and in which the
// endpoint is found again with the new address and port; adjustAck() and
// adjustSeq() on frames with arbitrary TCP options stay within them and
// keep the checksum right.
//
// Input: 1 byte of TCP option length (0-40, in 4-byte words), the options,
// then the payload.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "datapath/nat/helpers.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/checksum.h"
#include "datapath/packet/parser.h"

using canopy::datapath::DropReason;
namespace nat = canopy::datapath::nat;
namespace packet = canopy::datapath::packet;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

bool checksumsVerify(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  packet::Ipv4Header ip;
  if (!packet::load(frame, p.l3_offset, ip)) return false;
  size_t header = static_cast<size_t>(frame[p.l3_offset] & 0x0f) * 4;
  if (packet::checksum(frame.subspan(p.l3_offset, header)) != 0) return false;
  auto segment = frame.subspan(p.l4_offset, p.l3_end - p.l4_offset);
  uint32_t pseudo = packet::pseudoHeaderSum(ip.src, ip.dst, packet::ipproto::kTcp,
                                            static_cast<uint32_t>(segment.size()));
  return packet::finish(packet::sumWords(segment, pseudo)) == 0;
}

// A TCP/IPv4 frame whose header carries `options` (a multiple of 4 bytes).
std::vector<uint8_t> frameWith(std::span<const uint8_t> options, std::span<const uint8_t> payload) {
  std::vector<uint8_t> body(options.begin(), options.end());
  body.insert(body.end(), payload.begin(), payload.end());
  auto frame =
      packet::PacketBuilder()
          .eth({{2, 0, 0, 0, 0, 1}}, {{2, 0, 0, 0, 0, 2}})
          .ipv4(packet::Ipv4Address::of(10, 0, 0, 5), packet::Ipv4Address::of(192, 0, 2, 1))
          .tcp(40000, 21, packet::TcpHeader::kAck | packet::TcpHeader::kPsh, 1000, 2000)
          .payload(std::span<const uint8_t>(body))
          .build();
  packet::ParsedPacket p;
  if (packet::parse(frame, p) != DropReason::None) return {};
  // Move the header's end past the options and set the checksum anew.
  size_t tcp = p.l4_offset;
  frame[tcp + 12] = static_cast<uint8_t>(((20 + options.size()) / 4) << 4);
  frame[tcp + 16] = frame[tcp + 17] = 0;
  auto segment = std::span<const uint8_t>(frame).subspan(tcp, p.l3_end - tcp);
  uint32_t pseudo = packet::pseudoHeaderSum(
      packet::Ipv4Address::of(10, 0, 0, 5), packet::Ipv4Address::of(192, 0, 2, 1),
      packet::ipproto::kTcp, static_cast<uint32_t>(segment.size()));
  uint16_t sum = packet::finish(packet::sumWords(segment, pseudo));
  frame[tcp + 16] = static_cast<uint8_t>(sum >> 8);
  frame[tcp + 17] = static_cast<uint8_t>(sum);
  return frame;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  size_t options = static_cast<size_t>(data[0] % 11) * 4;
  if (size < 1 + options) return 0;
  std::span<const uint8_t> in(data + 1, size - 1);
  auto opts = in.first(options);
  auto payload = in.subspan(options);
  if (payload.size() > 1400) return 0;

  // The parser alone, on exactly the payload's bytes (ASan sees any overread).
  std::vector<uint8_t> exact(payload.begin(), payload.end());
  auto e = nat::findFtpEndpoint(exact);
  if (e) check(e->begin < e->end && e->end <= exact.size());

  auto frame = frameWith(opts, payload);
  if (frame.empty()) return 0;
  packet::ParsedPacket p;
  if (packet::parse(frame, p) != DropReason::None || p.payload_offset == 0) return 0;
  check(checksumsVerify(frame, p));

  // Sequence shifts keep the checksum right, whatever the options hold.
  nat::SeqAdjust adjust;
  adjust.record(900, static_cast<int32_t>(size % 7) - 3);
  adjust.record(1500, 5);
  nat::adjustAck(frame, p, adjust);
  nat::adjustSeq(frame, p, adjust);
  check(checksumsVerify(frame, p));

  auto found = nat::findFtpEndpoint(
      std::span<const uint8_t>(frame).subspan(p.payload_offset, p.l3_end - p.payload_offset));
  check(found.has_value() == e.has_value());
  if (!found) return 0;
  const auto to = packet::Ipv4Address::of(203, 0, 113, 200);
  const uint16_t to_port = static_cast<uint16_t>(found->port ^ 0x5a5a);
  nat::PayloadEdit edit = found->replacedBy(to, to_port);
  std::vector<uint8_t> expected(frame.begin() + p.payload_offset, frame.begin() + p.l3_end);
  expected.erase(expected.begin() + static_cast<std::ptrdiff_t>(edit.offset),
                 expected.begin() + static_cast<std::ptrdiff_t>(edit.offset + edit.length));
  expected.insert(expected.begin() + static_cast<std::ptrdiff_t>(edit.offset), edit.text.begin(),
                  edit.text.end());
  check(nat::applyEdit(frame, p, edit) == DropReason::None);
  packet::ParsedPacket q;
  check(packet::parse(frame, q) == DropReason::None);
  check(checksumsVerify(frame, q));
  std::vector<uint8_t> now(frame.begin() + q.payload_offset, frame.begin() + q.l3_end);
  check(now == expected);
  auto again = nat::findFtpEndpoint(now);
  check(again && again->address == to && again->port == to_port && again->form == found->form);
  return 0;
}
