#include "base/ip.h"

#include <arpa/inet.h>

#include <charconv>

namespace canopy {
namespace {

int bits(int version) { return version == 4 ? 32 : 128; }

U128 hostMask(int version, int length) {
  int host = bits(version) - length;
  if (host >= 128) return ~U128{0};
  return (U128{1} << host) - 1;
}

}  // namespace

Result<IpAddress> IpAddress::parse(std::string_view text) {
  std::string s(text);
  IpAddress ip;
  if (!s.empty() && s.find(':') == std::string::npos) {
    if (inet_pton(AF_INET, s.c_str(), ip.bytes.data()) == 1) {
      ip.family = 4;
      return ip;
    }
  } else if (inet_pton(AF_INET6, s.c_str(), ip.bytes.data()) == 1) {
    ip.family = 6;
    return ip;
  }
  return Error(Errc::InvalidArgument, "'" + s + "' is not a valid IP address");
}

IpAddress IpAddress::fromValue(int version, U128 value) {
  IpAddress ip;
  ip.family = static_cast<uint8_t>(version);
  int n = version == 4 ? 4 : 16;
  for (int i = n - 1; i >= 0; --i) {
    ip.bytes[static_cast<size_t>(i)] = static_cast<uint8_t>(value & 0xff);
    value >>= 8;
  }
  return ip;
}

U128 IpAddress::value() const {
  U128 v = 0;
  int n = family == 4 ? 4 : 16;
  for (int i = 0; i < n; ++i) v = (v << 8) | bytes[static_cast<size_t>(i)];
  return v;
}

std::string IpAddress::toString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (family == 4) {
    inet_ntop(AF_INET, bytes.data(), buf, sizeof(buf));
  } else if (family == 6) {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof(buf));
  } else {
    return "-";
  }
  return buf;
}

Result<IpPrefix> IpPrefix::parse(std::string_view text) {
  auto bad = [&] {
    return Error(Errc::InvalidArgument, "'" + std::string(text) + "' is not a valid IP subnet");
  };
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return bad();
  auto ip = IpAddress::parse(text.substr(0, slash));
  if (!ip) return bad();
  std::string_view digits = text.substr(slash + 1);
  unsigned length = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), length);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
      length > static_cast<unsigned>(bits(ip->family))) {
    return bad();
  }
  return IpPrefix{*ip, static_cast<uint8_t>(length)};
}

Result<IpPrefix> IpPrefix::parseNetwork(std::string_view text) {
  auto p = parse(text);
  if (!p) return p;
  if (p->first() != p->address) {
    return Error(Errc::InvalidArgument,
                 "'" + std::string(text) + "' isn't a recognized IP subnet cidr, '" +
                     p->first().toString() + "/" + std::to_string(p->length) + "' is recommended");
  }
  return p;
}

IpAddress IpPrefix::first() const {
  return IpAddress::fromValue(version(), address.value() & ~hostMask(version(), length));
}

IpAddress IpPrefix::last() const {
  return IpAddress::fromValue(version(), address.value() | hostMask(version(), length));
}

U128 IpPrefix::size() const {
  U128 mask = hostMask(version(), length);
  return mask == ~U128{0} ? (U128{1} << 127) : mask + 1;
}

bool IpPrefix::contains(const IpAddress& ip) const {
  if (ip.family != address.family) return false;
  unsigned full = length / 8u, rest = length % 8u;
  for (unsigned i = 0; i < full; ++i) {
    if (ip.bytes[i] != address.bytes[i]) return false;
  }
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (address.bytes[full] & mask);
}

bool IpPrefix::overlaps(const IpPrefix& other) const {
  return version() == other.version() && first() <= other.last() && other.first() <= last();
}

std::string IpPrefix::toString() const { return address.toString() + "/" + std::to_string(length); }

}  // namespace canopy
