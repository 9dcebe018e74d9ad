#pragma once
// The frames the simulator answers with: ARP replies and requests, ICMP
// echo replies and errors (RFC 792, quoting the offending packet as RFC 1812
// asks), TCP resets, and the DHCP server's replies (RFC 2131) with their
// options (RFC 2132, classless routes RFC 3442).
//
//   auto reply = icmpError(frame, parsed, router_mac, router_ip, 11, 0, 0);
//
// Thread-safety: pure functions.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "datapath/packet/dhcp.h"
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
// A broadcast ARP request for `target`.
std::vector<uint8_t> arpRequest(packet::MacAddress from_mac, packet::Ipv4Address from_ip,
                                packet::Ipv4Address target);

// An ICMPv4 error about `frame` from `router_ip`, back to its sender:
// `mtu` is the next-hop MTU of "fragmentation needed" (type 3 code 4).
std::vector<uint8_t> icmpError(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               packet::MacAddress router_mac, packet::Ipv4Address router_ip,
                               uint8_t type, uint8_t code, uint16_t mtu);
// The echo reply to an ICMPv4 echo request (same identifier, sequence, data).
std::vector<uint8_t> echoReply(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               packet::MacAddress router_mac);
// RST (with ACK) answering a TCP segment to a closed port.
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

}  // namespace canopy::datapath::simulator
