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

// RFC 4443 2.4 (c): an ICMPv6 error fits in the minimum MTU.
constexpr size_t kMaxQuote6 = 1280 - 40 - 8;

packet::Ipv4Header ipHeader(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  packet::Ipv4Header ip{};
  static_cast<void>(packet::load(frame, p.l3_offset, ip));  // parse() saw it whole
  return ip;
}
packet::Ipv6Header ipv6Header(std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  packet::Ipv6Header ip{};
  static_cast<void>(packet::load(frame, p.l3_offset, ip));  // parse() saw it whole
  return ip;
}
bool isV6(const packet::ParsedPacket& p) { return p.key.eth_type == packet::ethertype::kIpv6; }

// The IP header of an answer to `frame`: from its destination back to its
// source.
void answerIp(PacketBuilder& b, std::span<const uint8_t> frame, const packet::ParsedPacket& p) {
  if (isV6(p)) {
    auto ip = ipv6Header(frame, p);
    b.ipv6(ip.dst, ip.src);
  } else {
    auto ip = ipHeader(frame, p);
    b.ipv4(ip.dst, ip.src);
  }
}

void putU32(std::vector<uint8_t>& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<uint8_t>(v >> shift));
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

std::vector<uint8_t> neighborSolicitation(MacAddress from_mac, const IpAddress& from_ip,
                                          const IpAddress& target) {
  IpAddress to{6, {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff}};
  std::copy_n(target.bytes.begin() + 13, 3, to.bytes.begin() + 13);
  MacAddress to_mac{{0x33, 0x33, 0xff, target.bytes[13], target.bytes[14], target.bytes[15]}};
  std::vector<uint8_t> body(target.bytes.begin(), target.bytes.end());
  body.insert(body.end(), {1, 1});  // source link-layer address
  body.insert(body.end(), from_mac.bytes.begin(), from_mac.bytes.end());
  return PacketBuilder()
      .eth(from_mac, to_mac)
      .ipv6(packet::Ipv6Address::of(from_ip), packet::Ipv6Address::of(to), 255)
      .icmp(135, 0)
      .payload(body)
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

std::vector<uint8_t> icmpv6Error(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                                 MacAddress router_mac, const IpAddress& router_ip, uint8_t type,
                                 uint8_t code, uint32_t value) {
  auto ip = ipv6Header(frame, p);
  size_t quoted = std::min<size_t>(p.l3_end - p.l3_offset, kMaxQuote6);
  return PacketBuilder()
      .eth(router_mac, p.key.eth_src)
      .ipv6(packet::Ipv6Address::of(router_ip), ip.src)
      .icmp(type, code, static_cast<uint16_t>(value >> 16), static_cast<uint16_t>(value))
      .payload(frame.subspan(p.l3_offset, quoted))
      .build();
}

std::vector<uint8_t> echoReply(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                               MacAddress router_mac) {
  packet::IcmpHeader icmp{};
  static_cast<void>(packet::load(frame, p.l4_offset, icmp));  // parse() saw it whole
  size_t data = p.l4_offset + sizeof(icmp);
  PacketBuilder b;
  b.eth(router_mac, p.key.eth_src);
  answerIp(b, frame, p);
  return b.icmp(isV6(p) ? 129 : 0, 0, icmp.id.host(), icmp.sequence.host())
      .payload(frame.subspan(data, p.l3_end - data))
      .build();
}

std::vector<uint8_t> tcpReset(std::span<const uint8_t> frame, const packet::ParsedPacket& p,
                              MacAddress router_mac) {
  packet::TcpHeader tcp{};
  static_cast<void>(packet::load(frame, p.l4_offset, tcp));  // parse() saw it whole
  PacketBuilder b;
  b.eth(router_mac, p.key.eth_src);
  answerIp(b, frame, p);
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

IpAddress linkLocalOf(MacAddress mac) {
  IpAddress ip{6, {0xfe, 0x80}};
  ip.bytes[8] = static_cast<uint8_t>(mac.bytes[0] ^ 0x02);
  ip.bytes[9] = mac.bytes[1];
  ip.bytes[10] = mac.bytes[2];
  ip.bytes[11] = 0xff;
  ip.bytes[12] = 0xfe;
  ip.bytes[13] = mac.bytes[3];
  ip.bytes[14] = mac.bytes[4];
  ip.bytes[15] = mac.bytes[5];
  return ip;
}

bool isLinkLocal(const IpAddress& ip) {
  return ip.family == 6 && ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80;
}

std::vector<uint8_t> routerAdvertisement(const topology::Switch& sw, MacAddress router_mac,
                                         std::span<const topology::Subnet* const> subnets,
                                         MacAddress to_mac, const IpAddress& to) {
  using topology::Ipv6Mode;
  uint8_t flags = 0;
  for (const auto* s : subnets) {
    if (s->ra_mode == Ipv6Mode::Dhcpv6Stateful) flags |= 0x80;   // M: addresses by DHCPv6
    if (s->ra_mode == Ipv6Mode::Dhcpv6Stateless) flags |= 0x40;  // O: the rest by DHCPv6
  }
  std::vector<uint8_t> body(8, 0);  // reachable time, retransmission timer: unspecified
  body.insert(body.end(), {1, 1});  // source link-layer address
  body.insert(body.end(), router_mac.bytes.begin(), router_mac.bytes.end());
  if (sw.mtu >= 1280) {
    body.insert(body.end(), {5, 1, 0, 0});
    putU32(body, sw.mtu);
  }
  std::vector<IpAddress> dns;
  for (const auto* s : subnets) {
    // RFC 4861 4.6.2: on-link; autonomous (SLAAC) unless addresses come by DHCPv6.
    uint8_t prefix_flags = s->ra_mode == Ipv6Mode::Dhcpv6Stateful ? 0x80 : 0xc0;
    body.insert(body.end(), {3, 4, s->cidr.length, prefix_flags});
    putU32(body, 86400);  // valid lifetime
    putU32(body, 14400);  // preferred lifetime
    putU32(body, 0);
    body.insert(body.end(), s->cidr.address.bytes.begin(), s->cidr.address.bytes.end());
    if (s->ra_mode == Ipv6Mode::Slaac) {
      for (const auto& d : s->dns_servers) {
        if (d.family == 6 && std::find(dns.begin(), dns.end(), d) == dns.end()) dns.push_back(d);
      }
    }
  }
  if (!dns.empty()) {
    body.insert(body.end(), {25, static_cast<uint8_t>(1 + 2 * dns.size()), 0, 0});
    putU32(body, kRouterLifetime);
    for (const auto& d : dns) body.insert(body.end(), d.bytes.begin(), d.bytes.end());
  }
  return PacketBuilder()
      .eth(router_mac, to_mac)
      .ipv6(packet::Ipv6Address::of(linkLocalOf(router_mac)), packet::Ipv6Address::of(to), 255)
      .icmp(134, 0, static_cast<uint16_t>(64 << 8 | flags), kRouterLifetime)
      .payload(body)
      .build();
}

std::vector<Advertiser> advertisersOn(const topology::Topology& t, const topology::Switch& sw) {
  std::vector<Advertiser> out;
  for (const auto& [key, r] : t.routers()) {
    for (const auto& i : r.interfaces) {
      if (i.switch_key != sw.key || i.ip.family != 6) continue;
      for (const auto& s : sw.subnets) {
        if (s.cidr != i.subnet || s.ra_mode == topology::Ipv6Mode::None) continue;
        auto at =
            std::find_if(out.begin(), out.end(), [&](const auto& a) { return a.mac == i.mac; });
        if (at == out.end()) at = out.insert(out.end(), Advertiser{i.mac, key, {}});
        if (std::find(at->subnets.begin(), at->subnets.end(), &s) == at->subnets.end()) {
          at->subnets.push_back(&s);
        }
      }
    }
  }
  return out;
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

Dhcpv6Answer dhcpv6Answer(const packet::Dhcpv6Message& m, const packet::ParsedPacket& p,
                          MacAddress server_mac, std::span<const IpAddress> addresses,
                          std::span<const IpAddress> dns_servers, const std::string& domain,
                          uint32_t lease_seconds, std::span<const topology::Dhcpv6Option> extra) {
  namespace d6 = packet::dhcpv6;
  using Lease = packet::Dhcpv6Options::Lease;
  const std::vector<uint8_t> duid = packet::duidOf(server_mac);
  auto ours = [&] {
    return std::equal(m.server_id.begin(), m.server_id.end(), duid.begin(), duid.end());
  };
  if (m.client_id.empty() && m.type != d6::kInformationRequest) {
    return {{}, "message without a client identifier, not answered"};
  }
  uint8_t reply = d6::kReply;
  bool leases = false;  // IA_NAs answered with the port's addresses
  std::string summary;
  std::optional<uint16_t> status;
  switch (m.type) {
    case d6::kSolicit:
      reply = m.rapid_commit ? d6::kReply : d6::kAdvertise;
      leases = true;
      summary = m.rapid_commit ? "SOLICIT (rapid commit) -> REPLY" : "SOLICIT -> ADVERTISE";
      break;
    case d6::kRequest:
    case d6::kRenew:
      if (!m.has_server_id || !ours()) return {{}, "message for another server, not answered"};
      [[fallthrough]];
    case d6::kRebind:
      leases = true;
      summary = std::string(m.type == d6::kRequest ? "REQUEST"
                            : m.type == d6::kRenew ? "RENEW"
                                                   : "REBIND") +
                " -> REPLY";
      break;
    case d6::kConfirm: {
      bool on_link = true;
      for (const auto& ia : m.ia_na) {
        for (const auto& a : ia.addresses) {
          on_link &= std::find(addresses.begin(), addresses.end(), a.ip()) != addresses.end();
        }
      }
      status = on_link ? d6::kSuccess : d6::kNotOnLink;
      summary = on_link ? "CONFIRM -> REPLY (success)" : "CONFIRM -> REPLY (not on link)";
      break;
    }
    case d6::kRelease:
    case d6::kDecline:
      if (!m.has_server_id || !ours()) return {{}, "message for another server, not answered"};
      status = d6::kSuccess;
      summary = m.type == d6::kRelease ? "RELEASE -> REPLY" : "DECLINE -> REPLY";
      break;
    case d6::kInformationRequest:
      if (m.has_server_id && !ours()) return {{}, "message for another server, not answered"};
      summary = "INFORMATION-REQUEST -> REPLY";
      break;
    default:
      return {{}, "message type " + std::to_string(m.type) + " not answered"};
  }

  packet::Dhcpv6Options o;
  if (!m.client_id.empty()) o.add(d6::kClientId, m.client_id);
  o.add(d6::kServerId, duid);
  if (status) o.addStatus(*status, *status == d6::kSuccess ? "success" : "not on link");
  if (leases) {
    const uint32_t t1 = lease_seconds / 2, t2 = lease_seconds / 5 * 4;
    for (const auto& ia : m.ia_na) {
      std::vector<Lease> given;
      for (const auto& a : addresses) {
        given.push_back({packet::Ipv6Address::of(a), lease_seconds, lease_seconds});
      }
      // What it held or asked for that is not the port's: not to be used.
      for (const auto& a : ia.addresses) {
        if (std::find(addresses.begin(), addresses.end(), a.ip()) == addresses.end()) {
          given.push_back({a, 0, 0});
        }
      }
      o.addIaNa(ia.iaid, t1, t2, given,
                addresses.empty() ? d6::kNoAddressesAvailable : d6::kSuccess);
    }
    if (m.ia_na.empty() && m.type == d6::kSolicit) o.addStatus(d6::kNoAddressesAvailable, "");
    if (reply == d6::kReply && m.type == d6::kSolicit) o.add(d6::kRapidCommit, {});
    for (const auto& a : addresses) summary += " " + a.toString();
  }
  auto given = [&](uint16_t code) {
    return std::any_of(extra.begin(), extra.end(), [&](const auto& x) { return x.code == code; });
  };
  std::vector<packet::Ipv6Address> dns;
  for (const auto& a : dns_servers) {
    if (a.family == 6) dns.push_back(packet::Ipv6Address::of(a));
  }
  if (!dns.empty() && !given(d6::kDnsServers)) o.addAddresses(d6::kDnsServers, dns);
  std::string_view name = domain;
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (!name.empty() && !given(d6::kDomainList)) {
    o.addDomains(d6::kDomainList, std::span<const std::string_view>(&name, 1));
  }
  for (const auto& x : extra) o.add(x.code, x.value);

  return {
      PacketBuilder()
          .eth(server_mac, p.key.eth_src)
          .ipv6(packet::Ipv6Address::of(linkLocalOf(server_mac)), packet::Ipv6Address{p.key.ip_src})
          .udp(d6::kServerPort, d6::kClientPort)
          .payload(packet::dhcpv6Reply(reply, m, o))
          .build(),
      summary};
}

}  // namespace canopy::datapath::simulator
