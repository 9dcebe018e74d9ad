#include "datapath/packet/dhcp.h"

#include <algorithm>

namespace canopy::datapath::packet {

DropReason parseDhcp(std::span<const uint8_t> payload, DhcpMessage& out) noexcept {
  out = DhcpMessage{};
  if (!load(payload, 0, out.header)) return DropReason::DhcpTruncated;
  if (out.header.htype != 1 || out.header.hlen != 6) return DropReason::DhcpNotEthernet;
  std::copy_n(out.header.chaddr, 6, out.client_mac.bytes.begin());
  Be32 magic;
  if (!load(payload, sizeof(BootpHeader), magic)) return DropReason::DhcpTruncated;
  if (magic.host() != dhcp::kMagicCookie) return DropReason::DhcpBadMagic;
  auto options = payload.subspan(sizeof(BootpHeader) + sizeof(Be32));
  size_t at = 0;
  while (at < options.size()) {
    uint8_t code = options[at];
    if (code == dhcp::kPad) {
      ++at;
      continue;
    }
    if (code == dhcp::kEnd) break;
    if (options.size() - at < 2) return DropReason::DhcpBadOption;
    size_t length = options[at + 1];
    if (options.size() - at - 2 < length) return DropReason::DhcpBadOption;
    auto data = options.subspan(at + 2, length);
    auto address = [&]() -> std::optional<Ipv4Address> {
      Ipv4Address a;
      if (data.size() != 4 || !load(data, 0, a)) return std::nullopt;
      return a;
    };
    switch (code) {
      case dhcp::kMessageType:
        if (length == 1) out.message_type = data[0];
        break;
      case dhcp::kRequestedAddress:
        out.requested_address = address();
        break;
      case dhcp::kServerId:
        out.server_id = address();
        break;
      case dhcp::kParameterRequests:
        out.parameter_requests = data;
        break;
      case dhcp::kClientId:
        out.client_id = data;
        break;
      case dhcp::kHostName:
        out.host_name = data;
        break;
      default:
        break;
    }
    at += 2 + length;
  }
  return DropReason::None;
}

DhcpOptions& DhcpOptions::add(uint8_t code, std::span<const uint8_t> data) {
  // Longer than 255 bytes: split into several instances of the option
  // (RFC 3396 concatenation).
  size_t at = 0;
  do {
    size_t n = std::min<size_t>(255, data.size() - at);
    bytes_.push_back(code);
    bytes_.push_back(static_cast<uint8_t>(n));
    bytes_.insert(bytes_.end(), data.begin() + static_cast<std::ptrdiff_t>(at),
                  data.begin() + static_cast<std::ptrdiff_t>(at + n));
    at += n;
  } while (at < data.size());
  return *this;
}

DhcpOptions& DhcpOptions::addByte(uint8_t code, uint8_t value) {
  return add(code, std::span<const uint8_t>(&value, 1));
}

DhcpOptions& DhcpOptions::addU16(uint8_t code, uint16_t value) {
  Be16 v = Be16::of(value);
  return add(code, v.b);
}

DhcpOptions& DhcpOptions::addU32(uint8_t code, uint32_t value) {
  Be32 v = Be32::of(value);
  return add(code, v.b);
}

DhcpOptions& DhcpOptions::addAddress(uint8_t code, Ipv4Address address) {
  return add(code, address.value.b);
}

DhcpOptions& DhcpOptions::addAddresses(uint8_t code, std::span<const Ipv4Address> addresses) {
  std::vector<uint8_t> data;
  for (const auto& a : addresses) data.insert(data.end(), a.value.b, a.value.b + 4);
  return add(code, data);
}

DhcpOptions& DhcpOptions::addText(uint8_t code, std::string_view text) {
  return add(code, std::span(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

DhcpOptions& DhcpOptions::addClasslessRoutes(std::span<const ClasslessRoute> routes) {
  std::vector<uint8_t> data;
  for (const auto& r : routes) {
    uint8_t width = std::min<uint8_t>(r.prefix_length, 32);
    data.push_back(width);
    data.insert(data.end(), r.destination.value.b, r.destination.value.b + (width + 7) / 8);
    data.insert(data.end(), r.router.value.b, r.router.value.b + 4);
  }
  return add(dhcp::kClasslessRoutes, data);
}

namespace {

std::vector<uint8_t> message(const BootpHeader& header, const DhcpOptions& options) {
  std::vector<uint8_t> out(sizeof(BootpHeader) + 4);
  store(std::span<uint8_t>(out), 0, header);
  store(std::span<uint8_t>(out), sizeof(BootpHeader), Be32::of(dhcp::kMagicCookie));
  out.insert(out.end(), options.bytes().begin(), options.bytes().end());
  out.push_back(dhcp::kEnd);
  // Some clients ignore BOOTP messages shorter than 300 bytes (RFC 1542).
  if (out.size() < 300) out.resize(300, dhcp::kPad);
  return out;
}

}  // namespace

std::vector<uint8_t> dhcpReply(const DhcpMessage& request, Ipv4Address your_address,
                               Ipv4Address server_address, const DhcpOptions& options,
                               std::optional<Ipv4Address> next_server) {
  BootpHeader h{};
  h.op = 2;
  h.htype = 1;
  h.hlen = 6;
  h.xid = request.header.xid;
  h.flags = request.header.flags;
  h.ciaddr = request.header.ciaddr;
  h.yiaddr = your_address;
  h.siaddr = next_server.value_or(server_address);
  h.giaddr = request.header.giaddr;
  std::copy_n(request.header.chaddr, sizeof(h.chaddr), h.chaddr);
  return message(h, options);
}

std::vector<uint8_t> dhcpRequest(MacAddress client, uint32_t xid, const DhcpOptions& options) {
  BootpHeader h{};
  h.op = 1;
  h.htype = 1;
  h.hlen = 6;
  h.xid = Be32::of(xid);
  std::copy(client.bytes.begin(), client.bytes.end(), h.chaddr);
  return message(h, options);
}

}  // namespace canopy::datapath::packet
