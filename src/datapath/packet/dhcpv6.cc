#include "datapath/packet/dhcpv6.h"

#include <algorithm>

namespace canopy::datapath::packet {
namespace {

uint16_t u16At(std::span<const uint8_t> d, size_t at) {
  return static_cast<uint16_t>(d[at] << 8 | d[at + 1]);
}
uint32_t u32At(std::span<const uint8_t> d, size_t at) {
  return uint32_t{d[at]} << 24 | uint32_t{d[at + 1]} << 16 | uint32_t{d[at + 2]} << 8 | d[at + 3];
}
void putU16(std::vector<uint8_t>& out, uint16_t v) {
  out.push_back(static_cast<uint8_t>(v >> 8));
  out.push_back(static_cast<uint8_t>(v));
}
void putU32(std::vector<uint8_t>& out, uint32_t v) {
  putU16(out, static_cast<uint16_t>(v >> 16));
  putU16(out, static_cast<uint16_t>(v));
}

// Walks a sequence of options (code, length, data); false if one runs past
// the end.
template <typename F>
bool eachOption(std::span<const uint8_t> options, F&& f) {
  size_t at = 0;
  while (at < options.size()) {
    if (options.size() - at < 4) return false;
    uint16_t code = u16At(options, at);
    size_t length = u16At(options, at + 2);
    if (options.size() - at - 4 < length) return false;
    f(code, options.subspan(at + 4, length));
    at += 4 + length;
  }
  return true;
}

}  // namespace

DropReason parseDhcpv6(std::span<const uint8_t> payload, Dhcpv6Message& out) noexcept {
  out = Dhcpv6Message{};
  if (payload.size() < 4) return DropReason::Dhcpv6Truncated;
  out.type = payload[0];
  out.transaction = uint32_t{payload[1]} << 16 | uint32_t{payload[2]} << 8 | payload[3];
  if (out.type == 12 || out.type == 13) return DropReason::Dhcpv6Relayed;
  bool ia_ok = true;
  bool whole = eachOption(payload.subspan(4), [&](uint16_t code, std::span<const uint8_t> data) {
    switch (code) {
      case dhcpv6::kClientId:
        out.client_id = data;
        break;
      case dhcpv6::kServerId:
        out.server_id = data;
        out.has_server_id = true;
        break;
      case dhcpv6::kRapidCommit:
        out.rapid_commit = true;
        break;
      case dhcpv6::kIaNa: {
        if (data.size() < 12) {
          ia_ok = false;
          break;
        }
        Dhcpv6Ia ia{.iaid = u32At(data, 0)};
        ia_ok &= eachOption(data.subspan(12), [&](uint16_t inner, std::span<const uint8_t> d) {
          if (inner != dhcpv6::kIaAddress) return;
          if (d.size() < 24) {
            ia_ok = false;
            return;
          }
          Ipv6Address a;
          std::copy_n(d.begin(), 16, a.bytes.begin());
          ia.addresses.push_back(a);
        });
        // A client asks for few; more than this is not a client's message.
        if (out.ia_na.size() < 16) out.ia_na.push_back(std::move(ia));
        break;
      }
      default:
        break;
    }
  });
  if (!whole || !ia_ok) return DropReason::Dhcpv6BadOption;
  return DropReason::None;
}

Dhcpv6Options& Dhcpv6Options::add(uint16_t code, std::span<const uint8_t> data) {
  putU16(bytes_, code);
  putU16(bytes_, static_cast<uint16_t>(data.size()));
  bytes_.insert(bytes_.end(), data.begin(), data.end());
  return *this;
}

Dhcpv6Options& Dhcpv6Options::addAddresses(uint16_t code, std::span<const Ipv6Address> addresses) {
  std::vector<uint8_t> data;
  for (const auto& a : addresses) data.insert(data.end(), a.bytes.begin(), a.bytes.end());
  return add(code, data);
}

Dhcpv6Options& Dhcpv6Options::addStatus(uint16_t status, std::string_view message) {
  std::vector<uint8_t> data;
  putU16(data, status);
  data.insert(data.end(), message.begin(), message.end());
  return add(dhcpv6::kStatusCode, data);
}

Dhcpv6Options& Dhcpv6Options::addIaNa(uint32_t iaid, uint32_t t1, uint32_t t2,
                                      std::span<const Lease> leases, uint16_t status) {
  Dhcpv6Options inner;
  for (const auto& l : leases) {
    std::vector<uint8_t> a(l.address.bytes.begin(), l.address.bytes.end());
    putU32(a, l.preferred);
    putU32(a, l.valid);
    inner.add(dhcpv6::kIaAddress, a);
  }
  if (status != dhcpv6::kSuccess) {
    inner.addStatus(status, status == dhcpv6::kNoAddressesAvailable ? "no addresses for this IA"
                                                                    : "not on link");
  }
  std::vector<uint8_t> data;
  putU32(data, iaid);
  putU32(data, t1);
  putU32(data, t2);
  data.insert(data.end(), inner.bytes().begin(), inner.bytes().end());
  return add(dhcpv6::kIaNa, data);
}

Dhcpv6Options& Dhcpv6Options::addDomains(uint16_t code, std::span<const std::string_view> domains) {
  std::vector<uint8_t> data;
  for (std::string_view d : domains) {
    while (!d.empty()) {
      size_t dot = d.find('.');
      std::string_view label = d.substr(0, dot);
      if (label.size() > 63) label = label.substr(0, 63);
      data.push_back(static_cast<uint8_t>(label.size()));
      data.insert(data.end(), label.begin(), label.end());
      d = dot == std::string_view::npos ? std::string_view() : d.substr(dot + 1);
    }
    data.push_back(0);
  }
  return add(code, data);
}

std::vector<uint8_t> dhcpv6Reply(uint8_t type, const Dhcpv6Message& request,
                                 const Dhcpv6Options& options) {
  return dhcpv6Request(type, request.transaction, options);
}

std::vector<uint8_t> dhcpv6Request(uint8_t type, uint32_t transaction,
                                   const Dhcpv6Options& options) {
  std::vector<uint8_t> out{type, static_cast<uint8_t>(transaction >> 16),
                           static_cast<uint8_t>(transaction >> 8),
                           static_cast<uint8_t>(transaction)};
  out.insert(out.end(), options.bytes().begin(), options.bytes().end());
  return out;
}

std::vector<uint8_t> duidOf(MacAddress mac) {
  std::vector<uint8_t> duid{0, 3, 0, 1};
  duid.insert(duid.end(), mac.bytes.begin(), mac.bytes.end());
  return duid;
}

}  // namespace canopy::datapath::packet
