#include "datapath/packet/describe.h"

#include <string>

#include "datapath/packet/dhcp.h"
#include "datapath/packet/parser.h"

namespace canopy::datapath::packet {

namespace {

std::string v4Text(const std::array<uint8_t, 16>& b) {
  return std::to_string(b[0]) + "." + std::to_string(b[1]) + "." + std::to_string(b[2]) + "." +
         std::to_string(b[3]);
}

std::string tcpFlags(uint8_t f) {
  std::string s;
  if (f & TcpHeader::kSyn) s += 'S';
  if (f & TcpHeader::kFin) s += 'F';
  if (f & TcpHeader::kRst) s += 'R';
  if (f & TcpHeader::kPsh) s += 'P';
  if (f & TcpHeader::kAck) s += '.';
  return s;
}

}  // namespace

std::string describeFrame(std::span<const uint8_t> frame) {
  ParsedPacket p;
  if (auto why = parse(frame, p); why != DropReason::None) {
    return "unparsable: " + std::string(dropReasonName(why));
  }
  const auto& k = p.key;
  std::string s = k.eth_src.toString() + " > " + k.eth_dst.toString();
  if (k.vlan_tci != 0) s += " vlan " + std::to_string(k.vlan_tci & 0xfff);
  if (k.eth_type == ethertype::kArp) {
    ArpPacket arp;
    if (!load(frame, p.l3_offset, arp)) return s + " arp?";
    if (arp.operation.host() == 1) {
      return s + " arp who-has " + arp.target_ip.toString() + " tell " + arp.sender_ip.toString();
    }
    return s + " arp reply " + arp.sender_ip.toString() + " is-at " + arp.sender_mac.toString();
  }
  if (k.eth_type != ethertype::kIpv4) return s + " ethertype " + std::to_string(k.eth_type);
  s += " ip " + v4Text(k.ip_src) + " > " + v4Text(k.ip_dst) + " ttl " + std::to_string(k.ip_ttl) +
       " len " + std::to_string(p.l3_end - p.l3_offset);
  if (k.ip_frag == Fragment::Later) {
    return s + " later fragment of proto " + std::to_string(k.ip_proto) + " id " +
           std::to_string(p.fragment_id);
  }
  if (k.ip_frag == Fragment::First) s += " first fragment id " + std::to_string(p.fragment_id);
  switch (k.ip_proto) {
    case ipproto::kTcp:
      return s + " tcp " + std::to_string(k.tp_src) + " > " + std::to_string(k.tp_dst) + " [" +
             tcpFlags(k.tcp_flags) + "]";
    case ipproto::kUdp: {
      s += " udp " + std::to_string(k.tp_src) + " > " + std::to_string(k.tp_dst);
      DhcpMessage m;
      if ((k.tp_src == 67 || k.tp_src == 68) &&
          parseDhcp(frame.subspan(p.payload_offset, p.l3_end - p.payload_offset), m) ==
              DropReason::None) {
        static const char* kTypes[] = {"?",   "DISCOVER", "OFFER",   "REQUEST", "DECLINE",
                                       "ACK", "NAK",      "RELEASE", "INFORM"};
        s += std::string(" dhcp ") + (m.message_type <= 8 ? kTypes[m.message_type] : "?") +
             " yiaddr " + m.header.yiaddr.toString();
      }
      return s;
    }
    case ipproto::kIcmp:
      return s + " icmp " + std::to_string(k.tp_src) + "/" + std::to_string(k.tp_dst) + " id " +
             std::to_string(k.icmp_id);
    default:
      return s + " proto " + std::to_string(k.ip_proto);
  }
}

}  // namespace canopy::datapath::packet
