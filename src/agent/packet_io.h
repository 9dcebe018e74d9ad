#pragma once
// The agent's sockets: a VM interface or an uplink as an AF_PACKET socket
// bound to it (frames in and out, not our own sends), and the tunnel as UDP
// sockets (Geneve 6081, VXLAN 4789 by default) whose payloads are the tunnel
// header and the inner frame. Batches go through recvmmsg/sendmmsg.
//
//   auto port = FrameSocket::open("tap1234");      // Result<FrameSocket>
//   size_t n = port->receive(batch);               // up to batch.capacity()
//   port->send(frame);
//
// Thread-safety: a socket belongs to the worker that polls it.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "datapath/topology/topology.h"

namespace canopy::agent {

// Received frames (or datagrams) in one buffer.
class Batch {
 public:
  static constexpr size_t kFrames = 32;
  static constexpr size_t kFrameBytes = 65536 + 64;

  Batch() : data_(kFrames * kFrameBytes) {}
  size_t size() const { return count_; }
  std::span<const uint8_t> frame(size_t i) const {
    return {data_.data() + i * kFrameBytes, length_[i]};
  }
  const datapath::topology::IpAddr& source(size_t i) const { return source_[i]; }

 private:
  friend class FrameSocket;
  friend class TunnelSocket;
  std::vector<uint8_t> data_;
  std::array<size_t, kFrames> length_{};
  std::array<datapath::topology::IpAddr, kFrames> source_{};
  size_t count_ = 0;
};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  ~Fd();
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }

 private:
  int fd_ = -1;
};

// Frames of one network interface.
class FrameSocket {
 public:
  static Result<FrameSocket> open(const std::string& interface);

  int fd() const { return fd_.get(); }
  int ifindex() const { return ifindex_; }
  const std::string& interface() const { return interface_; }
  // Non-blocking: what is waiting, up to a batch.
  size_t receive(Batch& batch);
  bool send(std::span<const uint8_t> frame);

 private:
  Fd fd_;
  int ifindex_ = 0;
  std::string interface_;
};

// Tunnel datagrams on one UDP port of the tunnel address.
class TunnelSocket {
 public:
  static Result<TunnelSocket> open(const datapath::topology::IpAddr& local, uint16_t port);

  int fd() const { return fd_.get(); }
  size_t receive(Batch& batch);
  bool send(const datapath::topology::IpAddr& remote, std::span<const uint8_t> payload);

 private:
  Fd fd_;
  uint16_t port_ = 0;
  uint8_t family_ = 4;
};

}  // namespace canopy::agent
