// frame_flood: a small-packet generator for bench/e2e/run.sh. Sends complete
// 60-byte Ethernet + IPv4 + UDP frames (64 on the wire with the FCS; UDP to
// port 9, UDP checksum 0), or with IPv6 addresses the smallest IPv6 ones (64
// bytes: 2 bytes of UDP payload, the checksum IPv6 requires), out of one
// interface through an AF_PACKET socket
// that bypasses the qdisc, 64 frames a sendmmsg, until it has sent --count
// frames or --seconds have passed, whichever comes first. The source MAC is
// the interface's own, the destination MAC the one given: no ARP is needed.
// With --flows K the UDP source port takes K values in turn (10000 on), so
// that a forwarder sees K flows.
//
// Prints one line, "sent N seconds T": the frames the kernel took and the
// time spent. Sends the kernel refused for want of buffers (ENOBUFS, EAGAIN)
// are retried, and their count is said on stderr.
//
// Usage: frame_flood IFACE DST_MAC SRC_IP DST_IP [--seconds S] [--count N] [--flows K]

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace canopy::bench {
namespace {

constexpr size_t kFrameBytes = 60;   // the smallest Ethernet frame, without its FCS
constexpr size_t kFrameBytes6 = 64;  // the smallest IPv6 UDP frame, rounded up to even
constexpr size_t kIpOffset = 14;
constexpr size_t kUdpOffset = kIpOffset + 20;
constexpr size_t kUdpOffset6 = kIpOffset + 40;
constexpr unsigned kBatch = 64;
constexpr uint16_t kFirstSourcePort = 10000;
constexpr uint16_t kDiscardPort = 9;
constexpr double kMaxSeconds = 60;
constexpr uint64_t kMaxFlows = 10000;

using Frame = std::array<uint8_t, kFrameBytes6>;
using Mac = std::array<uint8_t, ETH_ALEN>;

struct Options {
  std::string interface;
  Mac destination_mac{};
  in_addr source_ip{};
  in_addr destination_ip{};
  bool v6 = false;
  in6_addr source_ip6{};
  in6_addr destination_ip6{};
  double seconds = 5;
  uint64_t count = 50'000'000;
  uint64_t flows = 1;
};

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "frame_flood: %s\n", what.c_str());
  std::exit(1);
}

[[noreturn]] void failSys(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

[[noreturn]] void usage() {
  std::fprintf(stderr,
               "usage: frame_flood IFACE DST_MAC SRC_IP DST_IP [--seconds S (default 5, at most "
               "60)] [--count N (default 50000000)] [--flows K (default 1, at most 10000)]\n");
  std::exit(2);
}

Mac parseMac(std::string_view text) {
  Mac mac{};
  // Six pairs of hex digits, five colons between them.
  if (text.size() != 17) fail("not a MAC address: " + std::string(text));
  for (size_t i = 0; i < mac.size(); ++i) {
    const char* begin = text.data() + i * 3;
    auto [end, ec] = std::from_chars(begin, begin + 2, mac[i], 16);
    if (ec != std::errc() || end != begin + 2 || (i + 1 < mac.size() && *end != ':')) {
      fail("not a MAC address: " + std::string(text));
    }
  }
  return mac;
}

in_addr parseIp(const char* text) {
  in_addr ip{};
  if (inet_pton(AF_INET, text, &ip) != 1) fail(std::string("not an IPv4 address: ") + text);
  return ip;
}

template <typename T>
T parseNumber(std::string_view option, std::string_view text) {
  T value{};
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) {
    fail(std::string(option) + " takes a number, not '" + std::string(text) + "'");
  }
  return value;
}

Options parseOptions(int argc, char** argv) {
  std::vector<std::string_view> positional;
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--seconds" || arg == "--count" || arg == "--flows") {
      if (i + 1 >= argc) usage();
      std::string_view value = argv[++i];
      if (arg == "--seconds") {
        o.seconds = parseNumber<double>(arg, value);
      } else if (arg == "--count") {
        o.count = parseNumber<uint64_t>(arg, value);
      } else {
        o.flows = parseNumber<uint64_t>(arg, value);
      }
    } else if (arg.starts_with("-")) {
      usage();
    } else {
      positional.push_back(arg);
    }
  }
  if (positional.size() != 4) usage();
  if (!(o.seconds > 0 && o.seconds <= kMaxSeconds)) fail("--seconds: more than 0, at most 60");
  if (o.count == 0) fail("--count: at least 1");
  if (o.flows == 0 || o.flows > kMaxFlows) fail("--flows: 1 to 10000");
  o.interface = std::string(positional[0]);
  o.destination_mac = parseMac(positional[1]);
  std::string source(positional[2]), destination(positional[3]);
  o.v6 = source.find(':') != std::string::npos;
  if (o.v6) {
    if (inet_pton(AF_INET6, source.c_str(), &o.source_ip6) != 1 ||
        inet_pton(AF_INET6, destination.c_str(), &o.destination_ip6) != 1) {
      fail("not IPv6 addresses: " + source + " " + destination);
    }
  } else {
    o.source_ip = parseIp(source.c_str());
    o.destination_ip = parseIp(destination.c_str());
  }
  return o;
}

// The Internet checksum of an IPv4 header (RFC 1071), in network byte order
// as it is stored.
uint16_t ipChecksum(const uint8_t* header, size_t bytes) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < bytes; i += 2) {
    sum += static_cast<uint32_t>(header[i] << 8 | header[i + 1]);
  }
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return htons(static_cast<uint16_t>(~sum));
}

void put16(uint8_t* at, uint16_t host_order) {
  uint16_t net = htons(host_order);
  std::memcpy(at, &net, sizeof(net));
}

// One frame of flow `flow`: Ethernet, a 20-byte IPv4 header, UDP with an
// 18-byte zero payload.
Frame buildFrame(const Options& o, const Mac& source_mac, uint16_t flow) {
  Frame f{};
  std::memcpy(f.data(), o.destination_mac.data(), ETH_ALEN);
  std::memcpy(f.data() + ETH_ALEN, source_mac.data(), ETH_ALEN);
  put16(f.data() + 12, ETHERTYPE_IP);
  uint8_t* ip = f.data() + kIpOffset;
  ip[0] = 0x45;                                                   // version 4, 5 words
  put16(ip + 2, static_cast<uint16_t>(kFrameBytes - kIpOffset));  // total length
  put16(ip + 6, IP_DF);                                           // flags, fragment offset
  ip[8] = 64;                                                     // TTL
  ip[9] = IPPROTO_UDP;
  std::memcpy(ip + 12, &o.source_ip, 4);
  std::memcpy(ip + 16, &o.destination_ip, 4);
  uint16_t checksum = ipChecksum(ip, 20);
  std::memcpy(ip + 10, &checksum, sizeof(checksum));
  uint8_t* udp = f.data() + kUdpOffset;
  put16(udp, static_cast<uint16_t>(kFirstSourcePort + flow));
  put16(udp + 2, kDiscardPort);
  put16(udp + 4, static_cast<uint16_t>(kFrameBytes - kUdpOffset));  // length; checksum 0: none
  return f;
}

// The same with IPv6: a 40-byte header, UDP with a 2-byte payload and its
// checksum (RFC 8200 8.1).
Frame buildFrame6(const Options& o, const Mac& source_mac, uint16_t flow) {
  Frame f{};
  std::memcpy(f.data(), o.destination_mac.data(), ETH_ALEN);
  std::memcpy(f.data() + ETH_ALEN, source_mac.data(), ETH_ALEN);
  put16(f.data() + 12, ETHERTYPE_IPV6);
  uint8_t* ip = f.data() + kIpOffset;
  ip[0] = 0x60;
  const auto udp_bytes = static_cast<uint16_t>(kFrameBytes6 - kUdpOffset6);
  put16(ip + 4, udp_bytes);  // payload length
  ip[6] = IPPROTO_UDP;
  ip[7] = 64;  // hop limit
  std::memcpy(ip + 8, &o.source_ip6, 16);
  std::memcpy(ip + 24, &o.destination_ip6, 16);
  uint8_t* udp = f.data() + kUdpOffset6;
  put16(udp, static_cast<uint16_t>(kFirstSourcePort + flow));
  put16(udp + 2, kDiscardPort);
  put16(udp + 4, udp_bytes);
  uint32_t sum = udp_bytes + IPPROTO_UDP;
  for (size_t i = 8; i < 40; i += 2) sum += static_cast<uint32_t>(ip[i] << 8 | ip[i + 1]);
  for (size_t i = 0; i < udp_bytes; i += 2) sum += static_cast<uint32_t>(udp[i] << 8 | udp[i + 1]);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  auto checksum = static_cast<uint16_t>(~sum);
  put16(udp + 6, checksum == 0 ? 0xffff : checksum);
  return f;
}

int run(const Options& o) {
  if (o.interface.empty() || o.interface.size() >= IFNAMSIZ) fail("no interface " + o.interface);
  int ifindex = static_cast<int>(if_nametoindex(o.interface.c_str()));
  if (ifindex == 0) failSys("interface " + o.interface);
  // Protocol 0: the socket only sends, nothing the interface receives is
  // queued to it.
  int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  if (fd < 0) failSys("AF_PACKET socket");
  sockaddr_ll address{};
  address.sll_family = AF_PACKET;
  address.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    failSys("bind to " + o.interface);
  }
  int one = 1;
  // Straight to the driver: the generator measures the path beyond the
  // interface, not its qdisc.
  if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) {
    failSys("PACKET_QDISC_BYPASS");
  }
  // A send that waits for buffers waits at most a second, so that the clock
  // is looked at again.
  timeval timeout{.tv_sec = 1, .tv_usec = 0};
  if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0) {
    failSys("SO_SNDTIMEO");
  }
  ifreq request{};
  std::memcpy(request.ifr_name, o.interface.data(), o.interface.size());
  if (::ioctl(fd, SIOCGIFHWADDR, &request) != 0) failSys("MAC address of " + o.interface);
  Mac source_mac{};
  std::memcpy(source_mac.data(), request.ifr_hwaddr.sa_data, ETH_ALEN);

  std::vector<Frame> frames;
  frames.reserve(o.flows);
  for (uint64_t flow = 0; flow < o.flows; ++flow) {
    auto f = static_cast<uint16_t>(flow);
    frames.push_back(o.v6 ? buildFrame6(o, source_mac, f) : buildFrame(o, source_mac, f));
  }
  // Every frame to the bound interface as IPv4 (or IPv6).
  sockaddr_ll destination = address;
  destination.sll_protocol = htons(o.v6 ? ETH_P_IPV6 : ETH_P_IP);
  const size_t frame_bytes = o.v6 ? kFrameBytes6 : kFrameBytes;
  destination.sll_halen = ETH_ALEN;
  std::memcpy(destination.sll_addr, o.destination_mac.data(), ETH_ALEN);
  std::array<iovec, kBatch> iov{};
  std::array<mmsghdr, kBatch> messages{};
  for (unsigned i = 0; i < kBatch; ++i) {
    iov[i].iov_len = frame_bytes;
    messages[i].msg_hdr.msg_name = &destination;
    messages[i].msg_hdr.msg_namelen = sizeof(destination);
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }

  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  const auto deadline =
      start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  uint64_t sent = 0;
  uint64_t retries = 0;
  uint64_t next_flow = 0;
  auto now = start;
  while (sent < o.count && now < deadline) {
    auto batch = static_cast<unsigned>(std::min<uint64_t>(kBatch, o.count - sent));
    for (unsigned i = 0; i < batch; ++i) {
      iov[i].iov_base = frames[(next_flow + i) % o.flows].data();
    }
    int n = ::sendmmsg(fd, messages.data(), batch, 0);
    if (n < 0) {
      if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) failSys("sendmmsg");
      ++retries;
    } else {
      sent += static_cast<uint64_t>(n);
      next_flow = (next_flow + static_cast<uint64_t>(n)) % o.flows;
    }
    now = Clock::now();
  }
  const double seconds = std::chrono::duration<double>(now - start).count();
  ::close(fd);
  std::printf("sent %" PRIu64 " seconds %.3f\n", sent, seconds);
  if (retries > 0) {
    std::fprintf(stderr, "frame_flood: %" PRIu64 " sends retried (no buffers)\n", retries);
  }
  return 0;
}

}  // namespace
}  // namespace canopy::bench

int main(int argc, char** argv) {
  return canopy::bench::run(canopy::bench::parseOptions(argc, argv));
}
