#pragma once
// Every reason the datapath drops a packet, from one list that makes the
// enum, the names and the counter indexes at once. A drop is never silent:
// it has one of these, and it is counted.
//
// Thread-safety: constants.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace canopy::datapath {

// X(Name, "what an operator reads")
#define CANOPY_DROP_REASONS(X)                                                              \
  X(EthernetTruncated, "Ethernet header truncated")                                         \
  X(VlanTruncated, "802.1Q tag truncated")                                                  \
  X(StackedVlan, "stacked VLAN tags (QinQ) are not carried")                                \
  X(ArpTruncated, "ARP packet truncated")                                                   \
  X(ArpNotEthernetIpv4, "ARP is not for IPv4 over Ethernet")                                \
  X(Ipv4Truncated, "IPv4 header truncated")                                                 \
  X(Ipv4BadVersion, "IPv4 version is not 4")                                                \
  X(Ipv4BadHeaderLength, "IPv4 header length below 20 or past the packet")                  \
  X(Ipv4BadTotalLength, "IPv4 total length shorter than its header or past the frame")      \
  X(Ipv6Truncated, "IPv6 header truncated")                                                 \
  X(Ipv6BadVersion, "IPv6 version is not 6")                                                \
  X(Ipv6BadPayloadLength, "IPv6 payload length past the frame")                             \
  X(Ipv6ExtensionTruncated, "IPv6 extension header truncated")                              \
  X(Ipv6TooManyExtensions, "IPv6 extension header chain too long")                          \
  X(FragmentUnknown, "later fragment of a datagram whose first fragment was not seen")      \
  X(TcpTruncated, "TCP header truncated")                                                   \
  X(TcpBadHeaderLength, "TCP data offset below 5 or past the packet")                       \
  X(UdpTruncated, "UDP header truncated")                                                   \
  X(UdpBadLength, "UDP length shorter than its header or past the packet")                  \
  X(IcmpTruncated, "ICMP header truncated")                                                 \
  X(Icmpv6Truncated, "ICMPv6 header truncated")                                             \
  X(VxlanTruncated, "VXLAN header truncated")                                               \
  X(VxlanNoVni, "VXLAN header without the VNI flag")                                        \
  X(GeneveTruncated, "Geneve header truncated")                                             \
  X(GeneveBadVersion, "Geneve version is not 0")                                            \
  X(GeneveOptionsTruncated, "Geneve options past the packet")                               \
  X(GeneveTooManyOptions, "more Geneve options than are read")                              \
  X(GeneveNotEthernet, "Geneve payload is not Ethernet")                                    \
  X(DhcpTruncated, "DHCP message truncated")                                                \
  X(DhcpBadMagic, "DHCP magic cookie missing")                                              \
  X(DhcpNotEthernet, "DHCP hardware type is not Ethernet")                                  \
  X(DhcpBadOption, "DHCP option runs past the message")                                     \
  X(Dhcpv6Truncated, "DHCPv6 message truncated")                                            \
  X(Dhcpv6BadOption, "DHCPv6 option runs past its message or IA")                           \
  X(Dhcpv6Relayed, "DHCPv6 relay message from a port (the server is on every link)")        \
  X(NdBadHopLimit, "neighbour discovery message with a hop limit other than 255")           \
  X(UnknownPort, "frame from a port this host does not serve")                              \
  X(NoTopology, "no topology received yet")                                                 \
  X(PortDown, "port is administratively down")                                              \
  X(PortNotTrunk, "VLAN-tagged frame from a port that is not a trunk")                      \
  X(QosBandwidthLimit, "over the port's QoS bandwidth limit")                               \
  X(TrunkVlanUnknown, "VLAN-tagged frame from a trunk's parent for no subport of it")       \
  X(FlowSetupRateLimited, "over the port's rate of new flows (slow-path protection)")       \
  X(ArpRateLimited, "over the port's rate of ARP the datapath handles")                     \
  X(NdRateLimited, "over the port's rate of neighbour discovery the datapath handles")      \
  X(DhcpRateLimited, "over the port's rate of DHCP the datapath handles")                   \
  X(IcmpRateLimited, "over the port's rate of uncached ICMP (slow-path protection)")        \
  X(PortSecurityMac, "source MAC does not belong to the port")                              \
  X(PortSecurityIp, "source IP does not belong to the port")                                \
  X(PortSecurityArp, "ARP sender does not belong to the port")                              \
  X(PortSecurityEthertype, "ethertype not allowed on a port with port security")            \
  X(PortSecurityDestination, "frame addressed to another MAC than the port's")              \
  X(PortSecurityRouterAdvertisement, "router advertisement from a port with port security") \
  X(PortSecurityNeighborAdvertisement,                                                      \
    "neighbour advertisement for an address the port does not own")                         \
  X(PortSecurityDhcpServer, "DHCP server message from a port with port security")           \
  X(SecurityGroupEgress, "no egress security-group rule allows it")                         \
  X(SecurityGroupIngress, "no ingress security-group rule allows it")                       \
  X(DestinationUnbound, "destination port is not bound to a host")                          \
  X(DestinationDown, "destination port is down")                                            \
  X(UnknownVni, "tunnel VNI of no known network")                                           \
  X(TunnelNotForHost, "tunnel frame for a port that is not on this host")                   \
  X(TunnelUnknownSource, "tunnel packet from an address that is no known host")             \
  X(TunnelBadOption, "Canopy Geneve option malformed or unknown critical option")           \
  X(UnknownUplink, "frame on an uplink of no known network")                                \
  X(UplinkNotForHost, "frame on an uplink for no address this host serves")                 \
  X(FloatingIpPortNotForwarded, "to a floating IP's port that none of its forwardings has") \
  X(RouterNotIp, "frame to a router that is neither IPv4 nor IPv6")                         \
  X(RouterAddressNotServed, "packet to a router address that nothing answers")              \
  X(TtlExceeded, "TTL expired in a router (ICMP time exceeded sent)")                       \
  X(NoRoute, "no route to the destination (ICMP network unreachable sent)")                 \
  X(HostUnreachable, "no port has the next hop's address (ICMP host unreachable sent)")     \
  X(FragmentationNeeded, "larger than the next hop's MTU with DF set (ICMP sent)")          \
  X(TooBigToForward, "larger than the next hop's MTU without DF (not fragmented)")          \
  X(NeighborUnresolved, "next hop's MAC not known yet (ARP request sent)")                  \
  X(NoUplink, "this host has no uplink to the external network")                            \
  X(GatewayUnscheduled, "router gateway is not scheduled to any host")                      \
  X(NotGatewayHost, "gateway traffic on a host that does not hold the gateway")             \
  X(RouteHairpin, "routed from the external network back to it")                            \
  X(TooManyHops, "packet crossed too many routers in one simulation")                       \
  X(ConntrackNotSyn, "TCP packet of no known connection that is not a SYN")                 \
  X(ConntrackRstOutOfWindow, "TCP RST outside its connection's window")                     \
  X(ConntrackClosed, "TCP packet on a connection that was reset")                           \
  X(ConntrackUnrelatedIcmpError, "ICMP error about no known connection")                    \
  X(ConntrackFull, "connection table full: new connections refused")                        \
  X(NatNotIpv4, "NAT asked of a packet that is not IPv4")                                   \
  X(NatNotIpv6, "NAT asked of a packet that is not IPv6")                                   \
  X(NatFamilyMismatch, "NAT of a packet to an address of the other IP version")             \
  X(NatPortsExhausted, "no SNAT port left on the external address")                         \
  X(NatBadIcmpQuote, "ICMP error quotes a packet too short to translate")                   \
  X(NatNoMapping, "packet to an SNAT address matches no translation")                       \
  X(NatTableFull, "SNAT table full: new translations refused")                              \
  X(NatProtocolUnsupported, "SNAT of a protocol without ports")                             \
  X(NatLaterFragment, "SNAT of a later fragment, whose ports are unknown")                  \
  X(LocalIpTableFull, "local IP translation table full: new connections refused")           \
  X(NatHelperEdit, "FTP helper: the rewritten segment would not fit or its text is off")    \
  X(MetadataUnserved, "metadata request or answer for no port this host can serve")         \
  X(OffloadUnsupported, "segmentation offload of a frame not TCP/UDP of its kind")          \
  X(OffloadBadSegmentSize, "segmentation offload with a segment size of 0 or tiny")         \
  X(OffloadBadChecksumOffset, "checksum offload with the checksum outside the frame")       \
  X(LbNoListener, "to a load balancer's VIP on a protocol and port no listener has")        \
  X(LbNoMember, "to a load balancer's listener with no member up")                          \
  X(LbSourceNotAllowed, "to a load balancer's listener from outside its allowed CIDRs")     \
  X(LbNotTcpOrUdp, "load balancing of a packet that is not TCP or UDP")                     \
  X(LbTableFull, "load balancer connection table full: new connections refused")            \
  X(LbConnectionLimit, "load balancer listener at its connection limit on this host")       \
  X(LbFamilyMismatch, "load balancer member of another IP version than its VIP")            \
  X(SnatLeaseNotHere, "SNAT reply steered to a host without a lease of the gateway's ports")

enum class DropReason : uint8_t {
  None,  // not dropped
#define CANOPY_DROP_ENUM(name, text) name,
  CANOPY_DROP_REASONS(CANOPY_DROP_ENUM)
#undef CANOPY_DROP_ENUM
};

inline constexpr size_t kDropReasonCount = 1
#define CANOPY_DROP_COUNT(name, text) +1
    CANOPY_DROP_REASONS(CANOPY_DROP_COUNT)
#undef CANOPY_DROP_COUNT
    ;

// "ipv4_truncated"-style names for counters and logs, and the sentence.
std::string_view dropReasonName(DropReason reason) noexcept;
std::string_view dropReasonText(DropReason reason) noexcept;

}  // namespace canopy::datapath
