#include "agent/packet_io.h"

#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace canopy::agent {
namespace {

Error sysError(const std::string& what) {
  return Error(Errc::Unavailable, what + ": " + std::strerror(errno));
}

}  // namespace

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

Result<FrameSocket> FrameSocket::open(const std::string& interface) {
  FrameSocket s;
  s.interface_ = interface;
  s.ifindex_ = static_cast<int>(if_nametoindex(interface.c_str()));
  if (s.ifindex_ == 0) return sysError("interface " + interface);
  s.fd_ = Fd(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (s.fd_.get() < 0) return sysError("AF_PACKET socket for " + interface);
  int one = 1;
  // Not our own transmissions back.
  if (setsockopt(s.fd_.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)) != 0) {
    return sysError("PACKET_IGNORE_OUTGOING on " + interface);
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = s.ifindex_;
  if (bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return sysError("bind to " + interface);
  }
  int size = 4 << 20;
  setsockopt(s.fd_.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  return s;
}

size_t FrameSocket::receive(Batch& batch) {
  std::array<mmsghdr, Batch::kFrames> msgs{};
  std::array<iovec, Batch::kFrames> iov{};
  for (size_t i = 0; i < Batch::kFrames; ++i) {
    iov[i] = {batch.data_.data() + i * Batch::kFrameBytes, Batch::kFrameBytes};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int n = recvmmsg(fd_.get(), msgs.data(), Batch::kFrames, MSG_DONTWAIT, nullptr);
  batch.count_ = n > 0 ? static_cast<size_t>(n) : 0;
  for (size_t i = 0; i < batch.count_; ++i) batch.length_[i] = msgs[i].msg_len;
  return batch.count_;
}

bool FrameSocket::send(std::span<const uint8_t> frame) {
  return ::send(fd_.get(), frame.data(), frame.size(), MSG_DONTWAIT) ==
         static_cast<ssize_t>(frame.size());
}

Result<TunnelSocket> TunnelSocket::open(const datapath::topology::IpAddr& local, uint16_t port) {
  TunnelSocket s;
  s.port_ = port;
  s.family_ = local.family;
  int domain = local.family == 6 ? AF_INET6 : AF_INET;
  s.fd_ = Fd(::socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.fd_.get() < 0) return sysError("UDP socket");
  int size = 8 << 20;
  setsockopt(s.fd_.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  setsockopt(s.fd_.get(), SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
  int rc;
  if (domain == AF_INET) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    std::memcpy(&a.sin_addr, local.bytes.data(), 4);
    rc = bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    std::memcpy(&a.sin6_addr, local.bytes.data(), 16);
    rc = bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  if (rc != 0) return sysError("bind UDP " + local.toString() + ":" + std::to_string(port));
  return s;
}

size_t TunnelSocket::receive(Batch& batch) {
  std::array<mmsghdr, Batch::kFrames> msgs{};
  std::array<iovec, Batch::kFrames> iov{};
  std::array<sockaddr_storage, Batch::kFrames> from{};
  for (size_t i = 0; i < Batch::kFrames; ++i) {
    iov[i] = {batch.data_.data() + i * Batch::kFrameBytes, Batch::kFrameBytes};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
  }
  int n = recvmmsg(fd_.get(), msgs.data(), Batch::kFrames, MSG_DONTWAIT, nullptr);
  batch.count_ = n > 0 ? static_cast<size_t>(n) : 0;
  for (size_t i = 0; i < batch.count_; ++i) {
    batch.length_[i] = msgs[i].msg_len;
    datapath::topology::IpAddr& src = batch.source_[i];
    src = {};
    if (from[i].ss_family == AF_INET) {
      const auto* a = reinterpret_cast<const sockaddr_in*>(&from[i]);
      src.family = 4;
      std::memcpy(src.bytes.data(), &a->sin_addr, 4);
    } else if (from[i].ss_family == AF_INET6) {
      const auto* a = reinterpret_cast<const sockaddr_in6*>(&from[i]);
      src.family = 6;
      std::memcpy(src.bytes.data(), &a->sin6_addr, 16);
    }
  }
  return batch.count_;
}

bool TunnelSocket::send(const datapath::topology::IpAddr& remote,
                        std::span<const uint8_t> payload) {
  ssize_t n;
  if (remote.family == 4) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port_);
    std::memcpy(&a.sin_addr, remote.bytes.data(), 4);
    n = sendto(fd_.get(), payload.data(), payload.size(), MSG_DONTWAIT,
               reinterpret_cast<sockaddr*>(&a), sizeof(a));
  } else {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port_);
    std::memcpy(&a.sin6_addr, remote.bytes.data(), 16);
    n = sendto(fd_.get(), payload.data(), payload.size(), MSG_DONTWAIT,
               reinterpret_cast<sockaddr*>(&a), sizeof(a));
  }
  return n == static_cast<ssize_t>(payload.size());
}

}  // namespace canopy::agent
