#include "model/ip.h"

#include <arpa/inet.h>

#include <charconv>

namespace canopy::model {
namespace {

int bits(int version) { return version == 4 ? 32 : 128; }

U128 hostMask(int version, int prefix) {
  int host = bits(version) - prefix;
  if (host >= 128) return ~U128{0};
  return (U128{1} << host) - 1;
}

}  // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress ip;
  if (s.find(':') == std::string::npos) {
    in_addr a{};
    if (s.empty() || inet_pton(AF_INET, s.c_str(), &a) != 1) {
      return Error(Errc::InvalidArgument, "'" + s + "' is not a valid IP address");
    }
    ip.version_ = 4;
    ip.value_ = ntohl(a.s_addr);
    return ip;
  }
  in6_addr a{};
  if (inet_pton(AF_INET6, s.c_str(), &a) != 1) {
    return Error(Errc::InvalidArgument, "'" + s + "' is not a valid IP address");
  }
  ip.version_ = 6;
  for (uint8_t byte : a.s6_addr) ip.value_ = (ip.value_ << 8) | byte;
  return ip;
}

IpAddress IpAddress::fromValue(int version, U128 value) {
  IpAddress ip;
  ip.version_ = version;
  ip.value_ = version == 4 ? (value & 0xffffffffu) : value;
  return ip;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (version_ == 4) {
    in_addr a{};
    a.s_addr = htonl(static_cast<uint32_t>(value_));
    inet_ntop(AF_INET, &a, buf, sizeof(buf));
  } else {
    in6_addr a{};
    U128 v = value_;
    for (int i = 15; i >= 0; --i) {
      a.s6_addr[i] = static_cast<uint8_t>(v & 0xff);
      v >>= 8;
    }
    inet_ntop(AF_INET6, &a, buf, sizeof(buf));
  }
  return buf;
}

Result<Cidr> Cidr::parse(std::string_view text) {
  auto bad = [&] {
    return Error(Errc::InvalidArgument, "'" + std::string(text) + "' is not a valid IP subnet");
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return bad();
  std::string_view len = text.substr(slash + 1);
  int prefix = -1;
  auto [p, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
  if (ec != std::errc() || p != len.data() + len.size() || prefix < 0 ||
      prefix > bits(ip->version())) {
    return bad();
  }
  U128 mask = hostMask(ip->version(), prefix);
  if ((ip->value() & mask) != 0) {
    IpAddress net = IpAddress::fromValue(ip->version(), ip->value() & ~mask);
    return Error(Errc::InvalidArgument,
                 "'" + std::string(text) + "' isn't a recognized IP subnet cidr, '" +
                     net.toString() + "/" + std::to_string(prefix) + "' is recommended");
  }
  Cidr c;
  c.network_ = *ip;
  c.prefix_ = prefix;
  return c;
}

IpAddress Cidr::last() const {
  return IpAddress::fromValue(version(), network_.value() | hostMask(version(), prefix_));
}

U128 Cidr::size() const {
  U128 mask = hostMask(version(), prefix_);
  return mask == ~U128{0} ? (U128{1} << 127) : mask + 1;
}

bool Cidr::contains(const IpAddress& ip) const {
  return ip.version() == version() && ip.value() >= network_.value() &&
         ip.value() <= last().value();
}

bool Cidr::overlaps(const Cidr& other) const {
  return version() == other.version() && first() <= other.last() && other.first() <= last();
}

std::string Cidr::toString() const { return network_.toString() + "/" + std::to_string(prefix_); }

}  // namespace canopy::model
