#pragma once
// Tunnel headers inside UDP: VXLAN (RFC 7348) and Geneve (RFC 8926) with
// its options. Parsing takes the UDP payload and yields the VNI, where the
// inner Ethernet frame starts and (Geneve) the options, each bounds-checked;
// encap() writes the outer headers in front of an inner frame.
//
//   TunnelInfo t;
//   if (auto why = parseGeneve(udp_payload, t); why != DropReason::None) drop(why);
//   for (const GeneveOptionView& o : t.options()) ...
//
// Thread-safety: pure functions; views live as long as the frame.

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

inline constexpr uint16_t kVxlanPort = 4789;
inline constexpr uint16_t kGenevePort = 6081;
inline constexpr uint16_t kGeneveProtocolEthernet = 0x6558;
// Canopy's Geneve option class, from RFC 8926's experimental range.
inline constexpr uint16_t kCanopyOptionClass = 0xfff0;

struct GeneveOptionView {
  uint16_t option_class = 0;
  uint8_t type = 0;  // without the critical bit
  bool critical = false;
  std::span<const uint8_t> data;
};

struct TunnelInfo {
  static constexpr size_t kMaxOptions = 8;

  uint32_t vni = 0;
  uint16_t inner_offset = 0;  // of the inner Ethernet header, in the UDP payload
  bool control = false;       // Geneve O bit: a control message, not a data frame
  std::array<GeneveOptionView, kMaxOptions> option_slots{};
  size_t option_count = 0;

  std::span<const GeneveOptionView> options() const { return {option_slots.data(), option_count}; }
};

DropReason parseVxlan(std::span<const uint8_t> udp_payload, TunnelInfo& out) noexcept;
DropReason parseGeneve(std::span<const uint8_t> udp_payload, TunnelInfo& out) noexcept;

// An option to write: class, type (bit 7 = critical) and data (a multiple
// of 4 bytes, at most 124).
struct GeneveOptionSpec {
  uint16_t option_class;
  uint8_t type;
  std::vector<uint8_t> data;
};

// Canopy's own Geneve options (class kCanopyOptionClass), what a sending
// host tells the receiving one:
//   destination    type 0x01, critical: u32 logical port, u32 router (0
//                  when none): where the sender's pipeline delivered the
//                  frame, so that the receiver does not look it up again
//   sender groups  type 0x02: the u32 keys of the sending port's security
//                  groups, sorted (at most kMaxSenderGroups are sent), so
//                  that the receiver's remote-group rules need no address
//                  lookup
struct CanopyOptions {
  static constexpr uint8_t kDestination = 0x01;
  static constexpr uint8_t kSenderGroups = 0x02;
  static constexpr size_t kMaxSenderGroups = 4;

  bool has_destination = false;
  uint32_t port = 0;
  uint32_t router = 0;
  bool groups_known = false;
  // Decoded: a view of the option's data, 4 bytes per key; encoded from
  // `groups_to_send`.
  std::span<const uint8_t> group_bytes{};
  std::span<const uint32_t> groups_to_send{};

  size_t groupCount() const { return group_bytes.size() / 4; }
  uint32_t group(size_t i) const;
};

// Reads Canopy's options off a parsed Geneve header. TunnelBadOption for a
// critical option it does not know (of any class) or a known one whose
// size is wrong; other classes' non-critical options are skipped.
DropReason decodeCanopyOptions(const TunnelInfo& t, CanopyOptions& out) noexcept;

// The Geneve header (with Canopy's options: the destination, and the
// sender's groups when `o.groups_known`) that encodeGeneve() writes.
inline size_t geneveHeaderSize(const CanopyOptions& o) noexcept {
  size_t options = sizeof(GeneveOption) + 8;
  if (o.groups_known) options += sizeof(GeneveOption) + 4 * o.groups_to_send.size();
  return sizeof(GeneveHeader) + options;
}
// Writes it at the start of `out` (at least geneveHeaderSize() bytes).
// Inline, as the send path of every tunnelled frame.
inline void encodeGeneve(std::span<uint8_t> out, uint32_t vni, const CanopyOptions& o) noexcept {
  size_t options = geneveHeaderSize(o) - sizeof(GeneveHeader);
  GeneveHeader h{};
  h.version_option_length = static_cast<uint8_t>(options / 4);
  h.flags = 0x40;  // C: a critical option is present
  h.protocol = Be16::of(kGeneveProtocolEthernet);
  h.vni[0] = static_cast<uint8_t>(vni >> 16);
  h.vni[1] = static_cast<uint8_t>(vni >> 8);
  h.vni[2] = static_cast<uint8_t>(vni);
  store(out, 0, h);
  size_t at = sizeof(h);
  store(out, at,
        GeneveOption{.option_class = Be16::of(kCanopyOptionClass),
                     .type = static_cast<uint8_t>(0x80 | CanopyOptions::kDestination),
                     .length = 2});
  store(out, at + 4, Be32::of(o.port));
  store(out, at + 8, Be32::of(o.router));
  at += 12;
  if (!o.groups_known) return;
  store(out, at,
        GeneveOption{.option_class = Be16::of(kCanopyOptionClass),
                     .type = CanopyOptions::kSenderGroups,
                     .length = static_cast<uint8_t>(o.groups_to_send.size() & 0x1f)});
  at += 4;
  for (uint32_t g : o.groups_to_send) {
    store(out, at, Be32::of(g));
    at += 4;
  }
}

// The VXLAN header.
inline void encodeVxlan(std::span<uint8_t> out, uint32_t vni) noexcept {
  VxlanHeader h{};
  h.flags = 0x08;
  h.vni[0] = static_cast<uint8_t>(vni >> 16);
  h.vni[1] = static_cast<uint8_t>(vni >> 8);
  h.vni[2] = static_cast<uint8_t>(vni);
  store(out, 0, h);
}

// The UDP payload of a tunnel packet: the tunnel header (with options for
// Geneve) followed by the inner frame.
std::vector<uint8_t> vxlanPayload(uint32_t vni, std::span<const uint8_t> inner);
std::vector<uint8_t> genevePayload(uint32_t vni, std::span<const GeneveOptionSpec> options,
                                   std::span<const uint8_t> inner);

}  // namespace canopy::datapath::packet
