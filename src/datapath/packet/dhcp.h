#pragma once
// DHCPv4 (RFC 2131, options RFC 2132, classless static routes RFC 3442):
// parsing a client's message from a UDP payload, and writing the server's
// replies with their options. The server's decisions live in the simulator.
//
//   DhcpMessage m;
//   if (parseDhcp(udp_payload, m) != DropReason::None) drop(...);
//   DhcpOptions o;
//   o.addByte(dhcp::kMessageType, dhcp::kOffer).addAddress(dhcp::kSubnetMask, mask);
//   auto payload = dhcpReply(m, yiaddr, server, o);
//
// Thread-safety: pure functions and value types; spans view the input.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

namespace dhcp {
inline constexpr uint16_t kServerPort = 67;
inline constexpr uint16_t kClientPort = 68;
inline constexpr uint32_t kMagicCookie = 0x63825363;
// Option codes.
inline constexpr uint8_t kPad = 0;
inline constexpr uint8_t kSubnetMask = 1;
inline constexpr uint8_t kRouter = 3;
inline constexpr uint8_t kDnsServers = 6;
inline constexpr uint8_t kHostName = 12;
inline constexpr uint8_t kDomainName = 15;
inline constexpr uint8_t kInterfaceMtu = 26;
inline constexpr uint8_t kBroadcastAddress = 28;
inline constexpr uint8_t kRequestedAddress = 50;
inline constexpr uint8_t kLeaseTime = 51;
inline constexpr uint8_t kMessageType = 53;
inline constexpr uint8_t kServerId = 54;
inline constexpr uint8_t kParameterRequests = 55;
inline constexpr uint8_t kRenewalTime = 58;
inline constexpr uint8_t kRebindingTime = 59;
inline constexpr uint8_t kClientId = 61;
inline constexpr uint8_t kClasslessRoutes = 121;
inline constexpr uint8_t kEnd = 255;
// Message types (option 53).
inline constexpr uint8_t kDiscover = 1;
inline constexpr uint8_t kOffer = 2;
inline constexpr uint8_t kRequest = 3;
inline constexpr uint8_t kDecline = 4;
inline constexpr uint8_t kAck = 5;
inline constexpr uint8_t kNak = 6;
inline constexpr uint8_t kRelease = 7;
inline constexpr uint8_t kInform = 8;
}  // namespace dhcp

// The fixed BOOTP part of every DHCP message (RFC 2131 figure 1).
struct BootpHeader {
  uint8_t op;  // 1 request, 2 reply
  uint8_t htype;
  uint8_t hlen;
  uint8_t hops;
  Be32 xid;
  Be16 secs;
  Be16 flags;  // 0x8000: broadcast the reply
  Ipv4Address ciaddr;
  Ipv4Address yiaddr;
  Ipv4Address siaddr;
  Ipv4Address giaddr;
  uint8_t chaddr[16];
  uint8_t sname[64];
  uint8_t file[128];
};
static_assert(sizeof(BootpHeader) == 236);

struct DhcpMessage {
  BootpHeader header{};
  MacAddress client_mac;
  uint8_t message_type = 0;  // option 53; 0: none (plain BOOTP)
  std::optional<Ipv4Address> requested_address;
  std::optional<Ipv4Address> server_id;
  std::span<const uint8_t> parameter_requests;
  std::span<const uint8_t> client_id;
  std::span<const uint8_t> host_name;
};

DropReason parseDhcp(std::span<const uint8_t> udp_payload, DhcpMessage& out) noexcept;

struct ClasslessRoute {
  Ipv4Address destination;
  uint8_t prefix_length;
  Ipv4Address router;
};

// A reply's options, in the order added, ended by dhcpReply().
class DhcpOptions {
 public:
  DhcpOptions& add(uint8_t code, std::span<const uint8_t> data);
  DhcpOptions& addByte(uint8_t code, uint8_t value);
  DhcpOptions& addU16(uint8_t code, uint16_t value);
  DhcpOptions& addU32(uint8_t code, uint32_t value);
  DhcpOptions& addAddress(uint8_t code, Ipv4Address address);
  DhcpOptions& addAddresses(uint8_t code, std::span<const Ipv4Address> addresses);
  DhcpOptions& addText(uint8_t code, std::string_view text);
  // Option 121: destination prefixes in RFC 3442's compact encoding.
  DhcpOptions& addClasslessRoutes(std::span<const ClasslessRoute> routes);

  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// A server reply to `request` (BOOTREPLY, same xid, flags and client
// hardware address): the UDP payload. siaddr is `next_server` if given (a
// boot server), else the server itself.
std::vector<uint8_t> dhcpReply(const DhcpMessage& request, Ipv4Address your_address,
                               Ipv4Address server_address, const DhcpOptions& options,
                               std::optional<Ipv4Address> next_server = std::nullopt);
// A client message (for tests and health checks): the UDP payload.
std::vector<uint8_t> dhcpRequest(MacAddress client, uint32_t xid, const DhcpOptions& options);

}  // namespace canopy::datapath::packet
