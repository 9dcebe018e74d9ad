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

#include "base/result.h"
#include "datapath/packet/offload.h"
#include "datapath/topology/topology.h"

namespace canopy::agent {

// struct virtio_net_hdr (virtio 1.2 section 5.1.6, linux/virtio_net.h, whose
// header does not compile as C++): AF_PACKET's, in host byte order.
struct VirtioNetHeader {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
};
static_assert(sizeof(VirtioNetHeader) == 10);

// Received frames (or datagrams) in one buffer, each slot room for a GSO
// super-frame (an IPv4 packet of 64 KiB, its Ethernet header and a VLAN
// tag) or a UDP_GRO buffer of coalesced datagrams.
class Batch {
 public:
  static constexpr size_t kFrames = 32;
  static constexpr size_t kFrameBytes = 65536 + 64;

  Batch() : data_(kFrames * kFrameBytes) {}
  size_t size() const { return count_; }
  // Frame i, in its slot or in a receive ring, until the socket's next
  // receive() or release().
  std::span<const uint8_t> frame(size_t i) const { return {at_[i], length_[i]}; }
  // For rewriting in place.
  std::span<uint8_t> mutableFrame(size_t i) { return {at_[i], length_[i]}; }
  // FrameSocket: the offload request of frame i's virtio-net header.
  datapath::packet::Offload offload(size_t i) const;
  // TunnelSocket: frame i holds datagrams of this many bytes back to back,
  // the last one maybe shorter (UDP_GRO); 0: one datagram.
  size_t segmentSize(size_t i) const { return segment_[i]; }
  const datapath::topology::IpAddr& source(size_t i) const { return source_[i]; }

 private:
  friend class FrameSocket;
  friend class TunnelSocket;
  uint8_t* slot(size_t i) { return data_.data() + i * kFrameBytes; }
  std::vector<uint8_t> data_;
  std::array<uint8_t*, kFrames> at_{};
  std::array<size_t, kFrames> length_{};
  std::array<VirtioNetHeader, kFrames> vnet_{};
  std::array<size_t, kFrames> segment_{};
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
class FrameSocket {
 public:
  // `rx_ring`: receive through a ring (above); off, through recvmmsg.
  static Result<FrameSocket> open(const std::string& interface, bool rx_ring = true);
  // The tap `interface` (IFF_VNET_HDR, offloads on, persistent), created if
  // it does not exist, in the network namespace at path `netns` ("": the
  // agent's own). A tap outlives the agent: a restart attaches again.
  static Result<FrameSocket> openTap(const std::string& interface, const std::string& netns);
  // For a tap: removes the device (unbind).
  Result<void> removeTap();
  // For a tap: whether its device still exists (its namespace may be gone).
  bool attached() const;
  bool tap() const { return tap_; }

  int fd() const { return fd_.get(); }
  int ifindex() const { return ifindex_; }
  const std::string& interface() const { return interface_; }
  // Non-blocking: what is waiting, up to a batch. A frame that does not
  // fit its slot is left out (counted in truncated()). Releases what the
  // previous call received.
  size_t receive(Batch& batch);
  // Hands the ring's slots of the last batch back to the kernel: its frames
  // are not to be used after this.
  void release();
  // One frame with its offload request (none: the frame is complete).
  bool send(std::span<const uint8_t> frame, const datapath::packet::Offload& offload = {});
  // The same, sent by the next flush(): up to kSendBatch frames in one
  // sendmmsg. The frame's bytes must stay where they are until then.
  void queue(std::span<const uint8_t> frame, const datapath::packet::Offload& offload);
  size_t queued() const { return queued_; }
  // Sends what is queued, in order. Returns how many frames were sent.
  size_t flush();
  static constexpr size_t kSendBatch = 32;
  uint64_t truncated() const { return truncated_; }

 private:
  // The receive ring: `ring_frames_` slots of kRingFrameBytes, the next one
  // the kernel fills after ours at `ring_next_`, the last batch's `held_`.
  static constexpr size_t kRingFrameBytes = 2048;
  static constexpr size_t kRingBlockBytes = 128 * 1024;
  static constexpr size_t kRingBlocks = 16;
  Result<void> mapRing();
  size_t receiveRing(Batch& batch);
  void receiveQueued(Batch& batch, size_t i);

  Fd fd_;
  int ifindex_ = 0;
  std::string interface_;
  bool tap_ = false;
  uint64_t truncated_ = 0;
  Mapping ring_;
  size_t ring_frames_ = 0;
  size_t ring_next_ = 0;
  std::vector<size_t> held_;
  // What queue() gathered.
  std::array<std::span<const uint8_t>, kSendBatch> queue_frames_{};
  std::array<VirtioNetHeader, kSendBatch> queue_headers_{};
  size_t queued_ = 0;
};

// Tunnel datagrams on one UDP port of the tunnel address.
class TunnelSocket {
 public:
  static Result<TunnelSocket> open(const datapath::topology::IpAddr& local, uint16_t port);

  int fd() const { return fd_.get(); }
  // Non-blocking: up to a batch of buffers, each one datagram or a run of
  // coalesced ones (Batch::segmentSize()).
  size_t receive(Batch& batch);
  void release() {}  // the batch holds its own copies
  bool send(const datapath::topology::IpAddr& remote, std::span<const uint8_t> payload);
  // The same, sent by the next flush(), which sends what is queued in one
  // sendmmsg: consecutive datagrams to one remote of one size (the last
  // maybe shorter) as one UDP_SEGMENT message, which also reaches the far
  // end's UDP_GRO socket as one buffer. The payload's bytes must stay where
  // they are until then.
  void queue(const datapath::topology::IpAddr& remote, std::span<const uint8_t> payload);
  size_t queued() const { return queued_; }
  // Returns how many datagrams were sent.
  size_t flush();
  // A super-frame cut into segments (packet/offload.h), all to `remote`:
  // each datagram gathered from its headers and its payload in `frame`,
  // sent in UDP_SEGMENT calls of at most kMaxSegmentsPerSend datagrams and
  // 64 KiB, or one by one where the kernel refuses that (a path MTU below
  // maxPayload()). Returns how many datagrams were sent.
  size_t sendGather(const datapath::topology::IpAddr& remote,
                    const datapath::packet::SegmentHeaders& segments,
                    std::span<const uint8_t> frame);
  // The largest datagram payload that leaves without IP fragmentation: the
  // MTU of the interface holding the tunnel address, less the IP and UDP
  // headers.
  size_t maxPayload() const { return max_payload_; }

  static constexpr size_t kMaxSegmentsPerSend = 64;

 private:
  Fd fd_;
  uint16_t port_ = 0;
  uint8_t family_ = 4;
  size_t max_payload_ = 1500 - 20 - 8;
  // What queue() gathered.
  std::array<std::span<const uint8_t>, kMaxSegmentsPerSend> queue_payloads_{};
  std::array<datapath::topology::IpAddr, kMaxSegmentsPerSend> queue_remotes_{};
  size_t queued_ = 0;
};

}  // namespace canopy::agent
