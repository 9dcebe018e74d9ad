#pragma once
// An IpAddress and a port as the sockets API has them, and back.
//
//   sockaddr_storage a;
//   bind(fd, reinterpret_cast<sockaddr*>(&a), toSockaddr(ip, port, a));
//   IpAddress from = fromSockaddr(peer);  // family 0: neither IPv4 nor IPv6
//
// Thread-safety: pure functions.

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <cstring>

#include "base/ip.h"

namespace canopy::agent {

// Its length for bind(), sendto() and the like.
inline socklen_t toSockaddr(const IpAddress& ip, uint16_t port, sockaddr_storage& out) {
  out = {};
  if (ip.family == 4) {
    auto* a = reinterpret_cast<sockaddr_in*>(&out);
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    std::memcpy(&a->sin_addr, ip.bytes.data(), 4);
    return sizeof(sockaddr_in);
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(&out);
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  std::memcpy(&a->sin6_addr, ip.bytes.data(), 16);
  return sizeof(sockaddr_in6);
}

inline IpAddress fromSockaddr(const sockaddr_storage& in) {
  IpAddress ip{};
  if (in.ss_family == AF_INET) {
    ip.family = 4;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in*>(&in)->sin_addr, 4);
  } else if (in.ss_family == AF_INET6) {
    ip.family = 6;
    std::memcpy(ip.bytes.data(), &reinterpret_cast<const sockaddr_in6*>(&in)->sin6_addr, 16);
  }
  return ip;
}

}  // namespace canopy::agent
