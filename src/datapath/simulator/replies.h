#pragma once
// The frames the simulator answers with: ARP replies and requests, ICMP
// echo replies and errors (RFC 792, quoting the offending packet as RFC 1812
// asks), ICMPv6 ones (RFC 4443), TCP resets, neighbour and router
// advertisements (RFC 4861), the DHCP server's replies (RFC 2131) with their
// options (RFC 2132, classless routes RFC 3442), and DHCPv6's (RFC 8415).
//
//   auto reply = icmpError(frame, parsed, router_mac, router_ip, 11, 0, 0);
//
// Thread-safety: pure functions.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "datapath/packet/dhcp.h"
#include "datapath/packet/dhcpv6.h"
#include "datapath/packet/parser.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::simulator {

// An ARP reply to `request` saying its target address is at `mac`.
std::vector<uint8_t> arpReply(std::span<const uint8_t> request, const packet::ParsedPacket& p,
                              packet::MacAddress mac);
// The neighbour advertisement (RFC 4861 4.4) answering a neighbour
// solicitation for `target`: `mac` in its target link-layer address option,
// solicited and to the asker, or to all nodes when the asker had no address
// yet (duplicate address detection); `router` sets the R flag.
std::vector<uint8_t> neighborAdvertisement(const packet::ParsedPacket& p, const IpAddress& target,
                                           packet::MacAddress mac, bool router);
// The link-local address of an interface with this MAC (fe80::/64 and the
// modified EUI-64, RFC 4291 appendix A), as routers and guests form it.
IpAddress linkLocalOf(packet::MacAddress mac);
// Whether an IPv6 address is link-local (fe80::/10).
bool isLinkLocal(const IpAddress& ip);

// The router advertisement (RFC 4861 4.2) of a router interface with MAC
// `router_mac` on `sw`, for its subnets whose ipv6_ra_mode is set, as
// Neutron's radvd configuration makes it: the M flag for DHCPv6-stateful,
// O for stateless; each prefix on-link, autonomous unless stateful; the
// network's MTU; the DNS servers of SLAAC subnets (RFC 8106). From the
// interface's link-local address to `to` (ff02::1 for the periodic ones).
std::vector<uint8_t> routerAdvertisement(const topology::Switch& sw, packet::MacAddress router_mac,
                                         std::span<const topology::Subnet* const> subnets,
                                         packet::MacAddress to_mac, const IpAddress& to);
// What a router advertises on a switch: per router interface MAC there,
// the switch's subnets it advertises (ipv6_ra_mode set); none when no
// router advertises there.
struct Advertiser {
  packet::MacAddress mac{};
  uint32_t router = 0;
  std::vector<const topology::Subnet*> subnets{};
};
std::vector<Advertiser> advertisersOn(const topology::Topology& t, const topology::Switch& sw);
inline constexpr uint16_t kRouterLifetime = 300;  // seconds, 3 x the longest interval
inline constexpr uint32_t kMaxAdvertisementInterval = 100;
inline constexpr uint32_t kMinAdvertisementInterval = 30;

// A broadcast ARP request for `target`.
std::vector<uint8_t> arpRequest(packet::MacAddress from_mac, packet::Ipv4Address from_ip,
                                packet::Ipv4Address target);
// A neighbour solicitation (RFC 4861 4.3) for `target`, to its
// solicited-node multicast address, with the source link-layer address.
std::vector<uint8_t> neighborSolicitation(packet::MacAddress from_mac, const IpAddress& from_ip,
                                          const IpAddress& target);

// An ICMPv4 error about `frame` from `router_ip`, back to its sender:
// `mtu` is the next-hop MTU of "fragmentation needed" (type 3 code 4).
std::vector<uint8_t> icmpError(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               packet::MacAddress router_mac, packet::Ipv4Address router_ip,
                               uint8_t type, uint8_t code, uint16_t mtu);
// An ICMPv6 error (RFC 4443) about `frame` from `router_ip`, back to its
// sender, quoting as much as fits in 1280 bytes; `value` is the 32 bits
// after the checksum (the MTU of "packet too big", type 2).
std::vector<uint8_t> icmpv6Error(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                                 packet::MacAddress router_mac, const IpAddress& router_ip,
                                 uint8_t type, uint8_t code, uint32_t value);
// The echo reply to an ICMPv4 or ICMPv6 echo request (same identifier, sequence, data).
std::vector<uint8_t> echoReply(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               packet::MacAddress router_mac);
// RST (with ACK) answering a TCP segment to a closed port (IPv4 or IPv6).
std::vector<uint8_t> tcpReset(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                              packet::MacAddress router_mac);

struct DhcpServerId {
  packet::MacAddress mac{};
  packet::Ipv4Address address{};
};

struct DhcpAnswer {
  std::vector<uint8_t> frame{};  // empty: nothing to send (RELEASE, DECLINE...)
  std::string summary{};         // for the trace
};

// The server's answer to a client message on a port whose address in a
// DHCP-enabled subnet is `address`: OFFER to DISCOVER; ACK to a REQUEST for
// that address (NAK otherwise); ACK without lease to INFORM. The port's
// own DHCP settings (host name, domain, next server, extra options) go in.
// `metadata_route`: a classless route to the metadata service on the link.
DhcpAnswer dhcpAnswer(const packet::DhcpMessage& m, const topology::Switch& sw,
                      const topology::Port& port, const topology::Subnet& subnet,
                      const IpAddress& address, uint32_t lease_seconds, const DhcpServerId& server,
                      bool metadata_route = false);

// The DHCPv6 server's answer to a client's message on a port (RFC 8415
// 18.3): its `addresses` (from IPAM, on stateful subnets) in each IA_NA it
// asks for, the DNS servers and domain otherwise too (stateless). The
// server is identified by a DUID of `server_mac` and speaks from that
// MAC's link-local address, to the client's.
struct Dhcpv6Answer {
  std::vector<uint8_t> frame{};  // empty: nothing to send
  std::string summary{};
};
// `extra`: the port's own options (extra_dhcp_opts), which replace the
// server's of the same code.
Dhcpv6Answer dhcpv6Answer(const packet::Dhcpv6Message& m, const packet::ParsedPacket& p,
                          packet::MacAddress server_mac, std::span<const IpAddress> addresses,
                          std::span<const IpAddress> dns_servers, const std::string& domain,
                          uint32_t lease_seconds,
                          std::span<const topology::Dhcpv6Option> extra = {});

}  // namespace canopy::datapath::simulator
