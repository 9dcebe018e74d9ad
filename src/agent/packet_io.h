#pragma once
// The agent's sockets: a VM interface or an uplink as an AF_PACKET socket
// bound to it (frames in and out, not our own sends), and the tunnel as UDP
// sockets (Geneve 6081, VXLAN 4789 by default) whose payloads are the tunnel
// header and the inner frame.
//
// A frame socket receives through a ring it shares with the kernel
// (PACKET_RX_RING, TPACKET_V2): frames of up to about 2 KiB are read where
// the kernel wrote them, without a system call while they keep coming, and
// handed back once forwarded. A frame too big for a slot (a super-frame)
// waits in the socket's queue and is read from there (PACKET_COPY_THRESH).
// Version 2, not 3: a version 3 block is handed over only when it is full or
// its timer (at least a millisecond) expires, which at low rates would add up
// to that to every packet; version 2 hands over each frame as it lands.
// Tunnel sockets and taps read batches with recvmmsg and readv.
//
// Offloads are kept end to end. Frame sockets carry the virtio-net header
// (PACKET_VNET_HDR): a guest's TCP super-frames (GSO, up to 64 KiB) and
// partial checksums come in with their request and leave with one, for the
// kernel to finish (packet/offload.h). Tunnel sockets send runs of
// equal-sized datagrams in one call (UDP_SEGMENT) and receive them
// coalesced (UDP_GRO); a coalesced buffer's segment size comes with it.
//
// Both implement port_io.h's interfaces; socketIo() opens them for the agent.
//
//   auto port = FrameSocket::open("tap1234");      // Result<FrameSocket>
//   auto tap = FrameSocket::openTap("tap5678", "/run/netns/vm1");
//   size_t n = port->receive(batch);               // up to batch.capacity()
//   port->send(batch.frame(0), batch.offload(0));  // as it came
//   tunnel.sendGather(remote, segments, frame);    // a super-frame's segments
//
// Thread-safety: a socket belongs to the worker that polls it.

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "agent/port_io.h"
#include "base/result.h"
#include "datapath/packet/offload.h"
#include "datapath/topology/topology.h"

namespace canopy::agent {

// Memory shared with the kernel (a packet ring), unmapped with its owner.
class Mapping {
 public:
  Mapping() = default;
  Mapping(uint8_t* at, size_t bytes) : at_(at), bytes_(bytes) {}
  Mapping(Mapping&& o) noexcept : at_(o.at_), bytes_(o.bytes_) { o.at_ = nullptr; }
  Mapping& operator=(Mapping&& o) noexcept;
  ~Mapping();
  uint8_t* get() const { return at_; }
  explicit operator bool() const { return at_ != nullptr; }

 private:
  uint8_t* at_ = nullptr;
  size_t bytes_ = 0;
};

// Frames of one network interface, each with its virtio-net header: an
// AF_PACKET socket bound to an interface (a veth's host end, an uplink), or
// a tap the agent owns (the guest's side is the tap's interface).
class FrameSocket final : public PortIo {
 public:
  // `rx_ring`: receive through a ring (above); off, through recvmmsg.
  // `fanout_group` (non-zero): joins the interface's other sockets of that
  // group, which share its frames by flow hash (PACKET_FANOUT_HASH).
  static Result<FrameSocket> open(const std::string& interface, bool rx_ring = true,
                                  uint16_t fanout_group = 0);
  // The tap `interface` (IFF_VNET_HDR, offloads on, persistent), created if
  // it does not exist, in the network namespace at path `netns` ("": the
  // agent's own). A tap outlives the agent: a restart attaches again.
  static Result<FrameSocket> openTap(const std::string& interface, const std::string& netns);
  // Another file on the same tap (dup), to send through from elsewhere.
  Result<FrameSocket> share() const;
  FrameSocket(FrameSocket&&) noexcept = default;
  FrameSocket& operator=(FrameSocket&&) noexcept = default;

  // For a tap: removes the device (unbind).
  Result<void> removeTap() override;
  // For a tap: whether its device still exists (its namespace may be gone).
  bool attached() const override;
  bool tap() const override { return tap_; }
  int interfaceIndex() const override { return tap_ ? 0 : ifindex_; }
  bool filterWith(int program) override;

  int fd() const override { return fd_.get(); }
  int ifindex() const { return ifindex_; }
  const std::string& interface() const { return interface_; }
  // Non-blocking: what is waiting, up to a batch. A frame that does not
  // fit its slot is left out (counted in truncated()). Releases what the
  // previous call received.
  size_t receive(Batch& batch) override;
  // Hands the ring's slots of the last batch back to the kernel: its frames
  // are not to be used after this.
  void release() override;
  // One frame with its offload request (none: the frame is complete).
  bool send(std::span<const uint8_t> frame, const datapath::packet::Offload& offload = {}) override;
  // Sends what queue() gathered, in order: up to kSendBatch frames in one
  // sendmmsg. Returns how many frames were sent.
  size_t flush() override;
  uint64_t truncated() const override { return truncated_; }

 private:
  FrameSocket() = default;
  // The receive ring: `ring_frames_` slots of kRingFrameBytes, the next one
  // the kernel fills after ours at `ring_next_`, the last batch's `held_`.
  static constexpr size_t kRingFrameBytes = 2048;
  static constexpr size_t kRingBlockBytes = 128 * 1024;
  static constexpr size_t kRingBlocks = 16;
  Result<void> mapRing();
  size_t receiveRing(Batch& batch);
  void receiveQueued(Batch& batch, size_t i);
  // Puts back the 802.1Q tag the kernel took out of frame i, if it did.
  void restoreTag(Batch& batch, size_t i, const msghdr& m);

  Fd fd_;
  int ifindex_ = 0;
  std::string interface_;
  bool tap_ = false;
  uint64_t truncated_ = 0;
  Mapping ring_;
  size_t ring_frames_ = 0;
  size_t ring_next_ = 0;
  std::vector<size_t> held_;
};

// Tunnel datagrams on one UDP port of the tunnel address.
class TunnelSocket final : public TunnelIo {
 public:
  // `reuse_port`: other sockets may bind the same port, the kernel giving
  // each flow (outer 4-tuple) to one of them (SO_REUSEPORT).
  static Result<TunnelSocket> open(const IpAddress& local, uint16_t port, bool reuse_port = false);
  TunnelSocket(TunnelSocket&&) noexcept = default;
  TunnelSocket& operator=(TunnelSocket&&) noexcept = default;

  int fd() const override { return fd_.get(); }
  // Non-blocking: up to a batch of buffers, each one datagram or a run of
  // coalesced ones (Batch::segmentSize()).
  size_t receive(Batch& batch) override;
  void release() override {}  // the batch holds its own copies
  bool send(const IpAddress& remote, std::span<const uint8_t> payload);
  // Sends what queue() gathered in one sendmmsg: consecutive datagrams to
  // one remote of one size (the last maybe shorter) as one UDP_SEGMENT
  // message, which also reaches the far end's UDP_GRO socket as one buffer.
  // Returns how many datagrams were sent.
  size_t flush() override;
  // A super-frame cut into segments (packet/offload.h), all to `remote`:
  // each datagram gathered from its headers and its payload in `frame`,
  // sent in UDP_SEGMENT calls of at most kMaxSegmentsPerSend datagrams and
  // 64 KiB, or one by one where the kernel refuses that (a path MTU below
  // maxPayload()). Returns how many datagrams were sent.
  size_t sendGather(const IpAddress& remote, const datapath::packet::SegmentHeaders& segments,
                    std::span<const uint8_t> frame) override;
  // The largest datagram payload that leaves without IP fragmentation: the
  // MTU of the interface holding the tunnel address, less the IP and UDP
  // headers.
  size_t maxPayload() const override { return max_payload_; }

 private:
  TunnelSocket() = default;
  Fd fd_;
  uint16_t port_ = 0;
  uint8_t family_ = 4;
  size_t max_payload_ = 1500 - 20 - 8;
};

}  // namespace canopy::agent
