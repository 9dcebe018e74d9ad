#include "datapath/simulator/replies.h"

#include <algorithm>

#include "datapath/packet/builder.h"
#include "datapath/simulator/simulator.h"

namespace canopy::datapath::simulator {
namespace {

using packet::Ipv4Address;
using packet::MacAddress;
using packet::PacketBuilder;
namespace dhcp = packet::dhcp;

// RFC 1812 4.3.2.3: an ICMP error carries as much of the offending packet
// as fits in 576 bytes.
constexpr size_t kMaxQuote = 576 - 20 - 8;

Ipv4Address v4(const IpAddress& ip) { return Ipv4Address::of(ip); }

packet::Ipv4Header ipHeader(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  packet::Ipv4Header ip{};
  static_cast<void>(packet::load(frame, p.l3_offset, ip));  // parse() saw it whole
  return ip;
}

}  // namespace

std::vector<uint8_t> arpReply(std::span<const uint8_t> request, const packet::ParsedPacket& p,
                              MacAddress mac) {
  packet::ArpPacket arp{};
  static_cast<void>(packet::load(request, p.l3_offset, arp));  // parse() saw it whole
  return PacketBuilder()
      .eth(mac, arp.sender_mac)
      .arp(2, mac, arp.target_ip, arp.sender_mac, arp.sender_ip)
      .build();
}

std::vector<uint8_t> arpRequest(MacAddress from_mac, Ipv4Address from_ip, Ipv4Address target) {
  return PacketBuilder()
      .eth(from_mac, MacAddress::broadcast())
      .arp(1, from_mac, from_ip, MacAddress{}, target)
      .build();
}

std::vector<uint8_t> icmpError(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               MacAddress router_mac, Ipv4Address router_ip, uint8_t type,
                               uint8_t code, uint16_t mtu) {
  auto ip = ipHeader(frame, p);
  size_t quoted = std::min<size_t>(p.l3_end - p.l3_offset, kMaxQuote);
  return PacketBuilder()
      .eth(router_mac, p.key.eth_src)
      .ipv4(router_ip, ip.src)
      .icmp(type, code, 0, mtu)
      .payload(frame.subspan(p.l3_offset, quoted))
      .build();
}

std::vector<uint8_t> echoReply(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               MacAddress router_mac) {
  auto ip = ipHeader(frame, p);
  packet::IcmpHeader icmp{};
  static_cast<void>(packet::load(frame, p.l4_offset, icmp));  // parse() saw it whole
  size_t data = p.l4_offset + sizeof(icmp);
  return PacketBuilder()
      .eth(router_mac, p.key.eth_src)
      .ipv4(ip.dst, ip.src)
      .icmp(0, 0, icmp.id.host(), icmp.sequence.host())
      .payload(frame.subspan(data, p.l3_end - data))
      .build();
}

std::vector<uint8_t> tcpReset(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                              MacAddress router_mac) {
  auto ip = ipHeader(frame, p);
  packet::TcpHeader tcp{};
  static_cast<void>(packet::load(frame, p.l4_offset, tcp));  // parse() saw it whole
  PacketBuilder b;
  b.eth(router_mac, p.key.eth_src).ipv4(ip.dst, ip.src);
  if ((tcp.flags & packet::TcpHeader::kAck) != 0) {
    // RFC 9293 3.10.7.1: take the sequence number from the ACK field.
    b.tcp(p.key.tp_dst, p.key.tp_src, packet::TcpHeader::kRst, tcp.acknowledgment.host(), 0);
  } else {
    uint32_t length = static_cast<uint32_t>(p.l3_end - p.payload_offset);
    if ((tcp.flags & packet::TcpHeader::kSyn) != 0) ++length;
    if ((tcp.flags & packet::TcpHeader::kFin) != 0) ++length;
    b.tcp(p.key.tp_dst, p.key.tp_src, packet::TcpHeader::kRst | packet::TcpHeader::kAck, 0,
          tcp.sequence.host() + length);
  }
  return b.build();
}

std::vector<uint8_t> neighborAdvertisement(const packet::ParsedPacket& p, const IpAddress& target,
                                           MacAddress mac, bool router) {
  const auto& k = p.key;
  IpAddress asker{6, k.ip_src};
  bool dad = asker.bytes == std::array<uint8_t, 16>{};
  // ff02::1 and its MAC (RFC 2464) when the asker has no address yet.
  IpAddress to = asker;
  MacAddress to_mac = k.eth_src;
  if (dad) {
    to = IpAddress{6, {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
    to_mac = MacAddress{{0x33, 0x33, 0, 0, 0, 1}};
  }
  uint16_t flags = static_cast<uint16_t>((router ? 0x8000 : 0) | (dad ? 0 : 0x4000) | 0x2000);
  std::vector<uint8_t> body(target.bytes.begin(), target.bytes.end());
  body.insert(body.end(), {2, 1});  // target link-layer address, 8 bytes
  body.insert(body.end(), mac.bytes.begin(), mac.bytes.end());
  return PacketBuilder()
      .eth(mac, to_mac)
      .ipv6(packet::Ipv6Address::of(target), packet::Ipv6Address::of(to), 255)
      .icmp(136, 0, flags, 0)
      .payload(body)
      .build();
}

DhcpAnswer dhcpAnswer(const packet::DhcpMessage& m, const topology::Switch& sw,
                      const topology::Port& port, const topology::Subnet& subnet,
                      const IpAddress& address, uint32_t lease_seconds, const DhcpServerId& server,
                      bool metadata_route) {
  const Ipv4Address mine = v4(address);
  const Ipv4Address zero{};
  uint8_t reply = 0;
  Ipv4Address yiaddr = mine;
  std::string summary;
  switch (m.message_type) {
    case dhcp::kDiscover:
      reply = dhcp::kOffer;
      summary = "DISCOVER -> OFFER " + address.toString();
      break;
    case dhcp::kRequest: {
      if (m.server_id && !(*m.server_id == server.address)) {
        return {{}, "REQUEST for another server, not answered"};
      }
      Ipv4Address wanted = m.requested_address.value_or(m.header.ciaddr);
      if (wanted == mine) {
        reply = dhcp::kAck;
        summary = "REQUEST " + address.toString() + " -> ACK";
      } else {
        reply = dhcp::kNak;
        yiaddr = zero;
        summary = "REQUEST " + wanted.toString() + " is not the port's address -> NAK";
      }
      break;
    }
    case dhcp::kInform:
      reply = dhcp::kAck;
      yiaddr = zero;
      summary = "INFORM -> ACK";
      break;
    case dhcp::kRelease:
      return {{}, "RELEASE of " + m.header.ciaddr.toString()};
    case dhcp::kDecline:
      return {{}, "DECLINE: the client found its address in use"};
    default:
      return {{}, "message type " + std::to_string(m.message_type) + " not answered"};
  }

  packet::DhcpOptions o;
  o.addByte(dhcp::kMessageType, reply).addAddress(dhcp::kServerId, server.address);
  // The port's extra options replace the server's own of the same code.
  auto given = [&](uint8_t code) {
    return std::any_of(port.dhcp_options.begin(), port.dhcp_options.end(),
                       [&](const topology::DhcpOption& x) { return x.code == code; });
  };
  std::optional<Ipv4Address> next_server;
  if (port.dhcp_next_server && port.dhcp_next_server->isV4()) {
    next_server = v4(*port.dhcp_next_server);
  }
  if (reply != dhcp::kNak) {
    if (m.message_type != dhcp::kInform) {
      o.addU32(dhcp::kLeaseTime, lease_seconds)
          .addU32(dhcp::kRenewalTime, lease_seconds / 2)
          .addU32(dhcp::kRebindingTime, lease_seconds / 8 * 7);
    }
    uint32_t mask = subnet.cidr.length == 0 ? 0 : ~uint32_t{0} << (32 - subnet.cidr.length);
    uint32_t broadcast = (mine.host() & mask) | ~mask;
    o.addAddress(dhcp::kSubnetMask, Ipv4Address{packet::Be32::of(mask)})
        .addAddress(dhcp::kBroadcastAddress, Ipv4Address{packet::Be32::of(broadcast)});
    if (subnet.gateway && !given(dhcp::kRouter)) o.addAddress(dhcp::kRouter, v4(*subnet.gateway));
    if (!subnet.dns_servers.empty() && !given(dhcp::kDnsServers)) {
      std::vector<Ipv4Address> dns;
      for (const auto& d : subnet.dns_servers) {
        if (d.family == 4) dns.push_back(v4(d));
      }
      if (!dns.empty()) o.addAddresses(dhcp::kDnsServers, dns);
    }
    std::string host = port.dhcp_host_name;
    if (host.empty()) {
      host = "host-" + address.toString();
      std::replace(host.begin(), host.end(), '.', '-');
    }
    if (!given(dhcp::kHostName)) o.addText(dhcp::kHostName, host);
    std::string domain = port.dhcp_domain.empty() ? sw.dns_domain : port.dhcp_domain;
    if (!domain.empty() && domain.back() == '.') domain.pop_back();
    if (!domain.empty() && !given(dhcp::kDomainName)) o.addText(dhcp::kDomainName, domain);
    if (!given(dhcp::kInterfaceMtu)) o.addU16(dhcp::kInterfaceMtu, sw.mtu);
    if (!subnet.host_routes.empty() || metadata_route) {
      // With option 121 a client ignores option 3 (RFC 3442), so the
      // default route goes in it too.
      std::vector<packet::ClasslessRoute> routes;
      for (const auto& r : subnet.host_routes) {
        if (r.destination.address.family == 4 && r.nexthop.family == 4) {
          routes.push_back({v4(r.destination.address), r.destination.length, v4(r.nexthop)});
        }
      }
      // On the link (router 0.0.0.0): ARP for it is answered on this host.
      if (metadata_route) routes.push_back({kMetadataAddress, 32, zero});
      if (subnet.gateway) routes.push_back({zero, 0, v4(*subnet.gateway)});
      if (!given(dhcp::kClasslessRoutes)) o.addClasslessRoutes(routes);
    }
    for (const auto& x : port.dhcp_options) o.add(x.code, x.value);
  }

  // RFC 2131 4.1: where the reply goes.
  MacAddress to_mac = m.client_mac;
  Ipv4Address to_ip = yiaddr;
  if (reply == dhcp::kNak || (m.header.flags.host() & 0x8000) != 0) {
    to_mac = MacAddress::broadcast();
    to_ip = Ipv4Address::of(255, 255, 255, 255);
  } else if (!(m.header.ciaddr == zero)) {
    to_ip = m.header.ciaddr;
  }
  if (to_ip == zero) {  // e.g. an INFORM without ciaddr: nowhere else to send it
    to_mac = MacAddress::broadcast();
    to_ip = Ipv4Address::of(255, 255, 255, 255);
  }
  auto payload = packet::dhcpReply(m, yiaddr, server.address, o, next_server);
  return {PacketBuilder()
              .eth(server.mac, to_mac)
              .ipv4(server.address, to_ip)
              .udp(dhcp::kServerPort, dhcp::kClientPort)
              .payload(payload)
              .build(),
          summary};
}

}  // namespace canopy::datapath::simulator
