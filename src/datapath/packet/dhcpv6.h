#pragma once
// DHCPv6 (RFC 8415) between a client and a server on its link: parsing a
// client's message from a UDP payload, and writing the server's replies.
// Relay messages are not parsed (the server is on every link). The
// server's decisions live in the simulator.
//
//   Dhcpv6Message m;
//   if (parseDhcpv6(udp_payload, m) != DropReason::None) drop(...);
//   Dhcpv6Options o;
//   o.add(dhcpv6::kServerId, duid).add(dhcpv6::kClientId, m.client_id);
//   auto payload = dhcpv6Reply(dhcpv6::kReply, m, o);
//
// Thread-safety: pure functions and value types; spans view the input.

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "datapath/packet/drop_reason.h"
#include "datapath/packet/wire.h"

namespace canopy::datapath::packet {

namespace dhcpv6 {
inline constexpr uint16_t kClientPort = 546;
inline constexpr uint16_t kServerPort = 547;
// Message types.
inline constexpr uint8_t kSolicit = 1;
inline constexpr uint8_t kAdvertise = 2;
inline constexpr uint8_t kRequest = 3;
inline constexpr uint8_t kConfirm = 4;
inline constexpr uint8_t kRenew = 5;
inline constexpr uint8_t kRebind = 6;
inline constexpr uint8_t kReply = 7;
inline constexpr uint8_t kRelease = 8;
inline constexpr uint8_t kDecline = 9;
inline constexpr uint8_t kInformationRequest = 11;
// Option codes.
inline constexpr uint16_t kClientId = 1;
inline constexpr uint16_t kServerId = 2;
inline constexpr uint16_t kIaNa = 3;
inline constexpr uint16_t kIaTa = 4;
inline constexpr uint16_t kIaAddress = 5;
inline constexpr uint16_t kRequestedOptions = 6;
inline constexpr uint16_t kElapsedTime = 8;
inline constexpr uint16_t kStatusCode = 13;
inline constexpr uint16_t kRapidCommit = 14;
inline constexpr uint16_t kDnsServers = 23;
inline constexpr uint16_t kDomainList = 24;
inline constexpr uint16_t kIaPd = 25;
// Status codes.
inline constexpr uint16_t kSuccess = 0;
inline constexpr uint16_t kNoAddressesAvailable = 2;
inline constexpr uint16_t kNotOnLink = 4;
}  // namespace dhcpv6

// An identity association for non-temporary addresses, as the client sent
// it: the addresses it holds or would like.
struct Dhcpv6Ia {
  uint32_t iaid = 0;
  std::vector<Ipv6Address> addresses{};
};

struct Dhcpv6Message {
  uint8_t type = 0;
  uint32_t transaction = 0;  // 24 bits
  std::span<const uint8_t> client_id{};
  std::span<const uint8_t> server_id{};
  bool has_server_id = false;
  bool rapid_commit = false;
  std::vector<Dhcpv6Ia> ia_na{};
};

// The message must be a client's (not a relay's) with its options whole.
DropReason parseDhcpv6(std::span<const uint8_t> udp_payload, Dhcpv6Message& out) noexcept;

// A message's options, in the order added.
class Dhcpv6Options {
 public:
  Dhcpv6Options& add(uint16_t code, std::span<const uint8_t> data);
  Dhcpv6Options& addAddresses(uint16_t code, std::span<const Ipv6Address> addresses);
  Dhcpv6Options& addStatus(uint16_t status, std::string_view message);
  // IA_NA with its addresses, each with `valid` and `preferred` lifetimes
  // (0 and 0: the client must stop using it), or only a status.
  struct Lease {
    Ipv6Address address{};
    uint32_t preferred = 0;
    uint32_t valid = 0;
  };
  Dhcpv6Options& addIaNa(uint32_t iaid, uint32_t t1, uint32_t t2, std::span<const Lease> leases,
                         uint16_t status = dhcpv6::kSuccess);
  // Domain names in DNS wire format (RFC 1035 3.1), e.g. option 24.
  Dhcpv6Options& addDomains(uint16_t code, std::span<const std::string_view> domains);

  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// A message of `type` in answer to `request` (same transaction): the UDP
// payload.
std::vector<uint8_t> dhcpv6Reply(uint8_t type, const Dhcpv6Message& request,
                                 const Dhcpv6Options& options);
// A client message (for tests): the UDP payload.
std::vector<uint8_t> dhcpv6Request(uint8_t type, uint32_t transaction,
                                   const Dhcpv6Options& options);
// A DUID-LL (RFC 8415 11.4) of an Ethernet address.
std::vector<uint8_t> duidOf(MacAddress mac);

}  // namespace canopy::datapath::packet
