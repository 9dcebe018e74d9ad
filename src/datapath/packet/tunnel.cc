#include "datapath/packet/tunnel.h"

namespace canopy::datapath::packet {
namespace {

uint32_t vni24(const uint8_t (&v)[3]) {
  return static_cast<uint32_t>(v[0]) << 16 | static_cast<uint32_t>(v[1]) << 8 | v[2];
}

void setVni24(uint8_t (&v)[3], uint32_t vni) {
  v[0] = static_cast<uint8_t>(vni >> 16);
  v[1] = static_cast<uint8_t>(vni >> 8);
  v[2] = static_cast<uint8_t>(vni);
}

}  // namespace

DropReason parseVxlan(std::span<const uint8_t> payload, TunnelInfo& out) noexcept {
  out = TunnelInfo{};
  VxlanHeader h;
  if (!load(payload, 0, h)) return DropReason::VxlanTruncated;
  if ((h.flags & 0x08) == 0) return DropReason::VxlanNoVni;
  out.vni = vni24(h.vni);
  out.inner_offset = sizeof(VxlanHeader);
  return DropReason::None;
}

DropReason parseGeneve(std::span<const uint8_t> payload, TunnelInfo& out) noexcept {
  out = TunnelInfo{};
  GeneveHeader h;
  if (!load(payload, 0, h)) return DropReason::GeneveTruncated;
  if ((h.version_option_length >> 6) != 0) return DropReason::GeneveBadVersion;
  size_t options_length = (h.version_option_length & 0x3fu) * 4;
  if (payload.size() - sizeof(GeneveHeader) < options_length) {
    return DropReason::GeneveOptionsTruncated;
  }
  if (h.protocol.host() != kGeneveProtocolEthernet) return DropReason::GeneveNotEthernet;
  out.vni = vni24(h.vni);
  out.control = (h.flags & 0x80) != 0;
  auto options = payload.subspan(sizeof(GeneveHeader), options_length);
  size_t at = 0;
  while (at < options.size()) {
    GeneveOption o;
    if (!load(options, at, o)) return DropReason::GeneveOptionsTruncated;
    size_t data_length = (o.length & 0x1fu) * 4;
    if (options.size() - at - sizeof(GeneveOption) < data_length) {
      return DropReason::GeneveOptionsTruncated;
    }
    if (out.option_count == TunnelInfo::kMaxOptions) return DropReason::GeneveTooManyOptions;
    out.option_slots[out.option_count++] = {
        .option_class = o.option_class.host(),
        .type = static_cast<uint8_t>(o.type & 0x7f),
        .critical = (o.type & 0x80) != 0,
        .data = options.subspan(at + sizeof(GeneveOption), data_length)};
    at += sizeof(GeneveOption) + data_length;
  }
  out.inner_offset = static_cast<uint16_t>(sizeof(GeneveHeader) + options_length);
  return DropReason::None;
}

std::vector<uint8_t> vxlanPayload(uint32_t vni, std::span<const uint8_t> inner) {
  VxlanHeader h{};
  h.flags = 0x08;
  setVni24(h.vni, vni);
  std::vector<uint8_t> out(sizeof(h) + inner.size());
  store(std::span<uint8_t>(out), 0, h);
  std::copy(inner.begin(), inner.end(), out.begin() + sizeof(h));
  return out;
}

std::vector<uint8_t> genevePayload(uint32_t vni, std::span<const GeneveOptionSpec> options,
                                   std::span<const uint8_t> inner) {
  std::vector<uint8_t> opts;
  for (const auto& o : options) {
    GeneveOption header{.option_class = Be16::of(o.option_class),
                        .type = o.type,
                        .length = static_cast<uint8_t>((o.data.size() / 4) & 0x1f)};
    size_t at = opts.size();
    opts.resize(at + sizeof(header));
    store(std::span<uint8_t>(opts), at, header);
    opts.insert(opts.end(), o.data.begin(),
                o.data.begin() + static_cast<std::ptrdiff_t>((o.data.size() / 4) * 4));
  }
  GeneveHeader h{};
  h.version_option_length = static_cast<uint8_t>((opts.size() / 4) & 0x3f);
  h.protocol = Be16::of(kGeneveProtocolEthernet);
  setVni24(h.vni, vni);
  std::vector<uint8_t> out(sizeof(h) + opts.size() + inner.size());
  store(std::span<uint8_t>(out), 0, h);
  std::copy(opts.begin(), opts.end(), out.begin() + sizeof(h));
  std::copy(inner.begin(), inner.end(),
            out.begin() + static_cast<std::ptrdiff_t>(sizeof(h) + opts.size()));
  return out;
}

uint32_t CanopyOptions::group(size_t i) const {
  Be32 v;
  (void)load(group_bytes, i * 4, v);
  return v.host();
}

DropReason decodeCanopyOptions(const TunnelInfo& t, CanopyOptions& out) noexcept {
  out = {};
  for (const auto& o : t.options()) {
    if (o.option_class != kCanopyOptionClass) {
      if (o.critical) return DropReason::TunnelBadOption;
      continue;
    }
    if (o.type == CanopyOptions::kDestination && o.data.size() == 8) {
      Be32 port, router;
      (void)load(o.data, 0, port);
      (void)load(o.data, 4, router);
      out.has_destination = true;
      out.port = port.host();
      out.router = router.host();
    } else if (o.type == CanopyOptions::kSenderGroups && o.data.size() % 4 == 0) {
      out.groups_known = true;
      out.group_bytes = o.data;
    } else if (o.critical) {
      return DropReason::TunnelBadOption;
    }
  }
  return DropReason::None;
}

}  // namespace canopy::datapath::packet
