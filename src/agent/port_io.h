#pragma once
// Packet I/O as the agent's workers see it, apart from how it is done: a
// PortIo carries the frames of one interface (a VM's port or an uplink), a
// TunnelIo the datagrams of one tunnel port, and an IoFactory opens them.
// The sockets (packet_io.h) implement them for real; unit tests give the
// agent fakes (tests/unit/agent/fake_io.h) and drive it without a network.
//
//   std::unique_ptr<IoFactory> io = socketIo({.rx_ring = true});
//   auto port = io->openInterface("tap1234abcd-ef", /*worker=*/0, /*workers=*/2);
//   size_t n = (*port)->receive(batch);          // up to Batch::kFrames
//   (*port)->queue(batch.frame(0), batch.offload(0));
//   (*port)->flush();                            // one system call where it can
//
// Per batch a virtual call, per packet none: queue() fills arrays in the
// base class that the implementation's flush() sends.
//
// Thread-safety: a PortIo or TunnelIo belongs to the worker that uses it;
// an IoFactory may be called from the control thread only.

#include <array>
#include <cstdint>
#include <memory>
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

VirtioNetHeader toVirtio(const datapath::packet::Offload& o);

// A file descriptor, closed with its owner.
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

// Received frames (or datagrams) in one buffer, each slot room for a GSO
// super-frame (an IPv4 packet of 64 KiB, its Ethernet header and a VLAN
// tag) or a UDP_GRO buffer of coalesced datagrams.
class Batch {
 public:
  static constexpr size_t kFrames = 32;
  static constexpr size_t kFrameBytes = 65536 + 64;

  Batch() : data_(kFrames * kFrameBytes) {}
  size_t size() const { return count_; }
  // Frame i, in its slot or in a receive ring, until the I/O's next
  // receive() or release().
  std::span<const uint8_t> frame(size_t i) const { return {at_[i], length_[i]}; }
  // For rewriting in place.
  std::span<uint8_t> mutableFrame(size_t i) { return {at_[i], length_[i]}; }
  // From a PortIo: the offload request of frame i's virtio-net header.
  datapath::packet::Offload offload(size_t i) const;
  // From a TunnelIo: frame i holds datagrams of this many bytes back to
  // back, the last one maybe shorter (UDP_GRO); 0: one datagram.
  size_t segmentSize(size_t i) const { return segment_[i]; }
  const IpAddress& source(size_t i) const { return source_[i]; }

  // For implementations: slot i's own room, and frame i as received.
  uint8_t* slot(size_t i) { return data_.data() + i * kFrameBytes; }
  void resize(size_t count) { count_ = count; }
  void set(size_t i, uint8_t* at, size_t length, const VirtioNetHeader& vnet = {},
           size_t segment = 0, const IpAddress& source = {}) {
    at_[i] = at;
    length_[i] = length;
    vnet_[i] = vnet;
    segment_[i] = segment;
    source_[i] = source;
  }

 private:
  friend class FrameSocket;
  friend class TunnelSocket;
  std::vector<uint8_t> data_;
  std::array<uint8_t*, kFrames> at_{};
  std::array<size_t, kFrames> length_{};
  std::array<VirtioNetHeader, kFrames> vnet_{};
  std::array<size_t, kFrames> segment_{};
  std::array<IpAddress, kFrames> source_{};
  size_t count_ = 0;
};

// The frames of one interface, each with its virtio-net header's offload
// request.
class PortIo {
 public:
  static constexpr size_t kSendBatch = 32;

  virtual ~PortIo() = default;
  // Readable when frames wait (poll); -1 for an I/O that is never polled.
  virtual int fd() const = 0;
  // Non-blocking: what is waiting, up to a batch. Releases what the
  // previous call received.
  virtual size_t receive(Batch& batch) = 0;
  // Hands the last batch's buffers back: its frames are not to be used after.
  virtual void release() = 0;
  // Sends what queue() gathered, in order; how many frames left.
  virtual size_t flush() = 0;
  // One frame now (announcements).
  virtual bool send(std::span<const uint8_t> frame,
                    const datapath::packet::Offload& offload = {}) = 0;
  // Frames left out on receive because they did not fit (BIG TCP).
  virtual uint64_t truncated() const { return 0; }
  // A tap the agent owns: whether its device still exists, and removing it.
  virtual bool tap() const { return false; }
  // The kernel fast path: the interface's index (0: not an interface the
  // fast path can serve), and a socket filter program put on its socket.
  virtual int interfaceIndex() const { return 0; }
  virtual bool filterWith(int /*program*/) { return false; }
  virtual bool attached() const { return true; }
  virtual Result<void> removeTap() { return ok(); }

  // Sent by the next flush(); the bytes must stay where they are until then.
  void queue(std::span<const uint8_t> frame, const datapath::packet::Offload& offload) {
    if (queued_ == kSendBatch) flush();
    queue_frames_[queued_] = frame;
    queue_offloads_[queued_] = offload;
    ++queued_;
  }
  size_t queued() const { return queued_; }

 protected:
  std::array<std::span<const uint8_t>, kSendBatch> queue_frames_{};
  std::array<datapath::packet::Offload, kSendBatch> queue_offloads_{};
  size_t queued_ = 0;
};

// The datagrams of one tunnel port (Geneve or VXLAN over UDP): payloads are
// the tunnel header and the inner frame.
class TunnelIo {
 public:
  static constexpr size_t kMaxSegmentsPerSend = 64;

  virtual ~TunnelIo() = default;
  virtual int fd() const = 0;
  // Non-blocking: up to a batch of buffers, each one datagram or a run of
  // coalesced ones (Batch::segmentSize()).
  virtual size_t receive(Batch& batch) = 0;
  virtual void release() = 0;
  // Sends what queue() gathered (runs to one remote of one size as one
  // message where the kernel can); how many datagrams left.
  virtual size_t flush() = 0;
  // A super-frame's segments (packet/offload.h), all to `remote`, each
  // gathered from its headers and its payload in `frame`; how many left.
  virtual size_t sendGather(const IpAddress& remote,
                            const datapath::packet::SegmentHeaders& segments,
                            std::span<const uint8_t> frame) = 0;
  // The largest payload that leaves without IP fragmentation.
  virtual size_t maxPayload() const = 0;

  // Sent by the next flush(); the bytes must stay where they are until then.
  void queue(const IpAddress& remote, std::span<const uint8_t> payload) {
    if (queued_ == kMaxSegmentsPerSend) flush();
    queue_remotes_[queued_] = remote;
    queue_payloads_[queued_] = payload;
    ++queued_;
  }
  size_t queued() const { return queued_; }

 protected:
  std::array<std::span<const uint8_t>, kMaxSegmentsPerSend> queue_payloads_{};
  std::array<IpAddress, kMaxSegmentsPerSend> queue_remotes_{};
  size_t queued_ = 0;
};

// Opens the agent's I/O. Several workers each get their own on every
// interface and tunnel port; the kernel then gives each flow to one of them
// (PACKET_FANOUT by flow hash, SO_REUSEPORT), so that a flow's packets keep
// their order.
class IoFactory {
 public:
  virtual ~IoFactory() = default;
  // Whether a network interface of that name exists (in the agent's namespace).
  virtual bool exists(const std::string& interface) = 0;
  // Removes a Linux bridge (a port's, model/port.h's bridgeNameOf, which
  // Nova's os-vif makes and leaves behind).
  virtual Result<void> removeBridge(const std::string& /*bridge*/) { return ok(); }
  // Worker `worker`'s share of an existing interface (a veth's host end, an
  // uplink).
  virtual Result<std::unique_ptr<PortIo>> openInterface(const std::string& interface, size_t worker,
                                                        size_t workers) = 0;
  // A tap the agent owns (created if it does not exist, in the network
  // namespace at path `netns`, "" for the agent's own): one worker receives
  // from it.
  virtual Result<std::unique_ptr<PortIo>> openTap(const std::string& interface,
                                                  const std::string& netns) = 0;
  // Another handle on the same tap, for another worker to send through.
  virtual Result<std::unique_ptr<PortIo>> shareTap(PortIo& tap) = 0;
  // Worker `worker`'s socket on a tunnel port of the tunnel address.
  virtual Result<std::unique_ptr<TunnelIo>> openTunnel(const IpAddress& local, uint16_t port,
                                                       size_t worker, size_t workers) = 0;
};

struct SocketIoOptions {
  // Ports and uplinks received through a ring shared with the kernel
  // (packet_io.h); off, through recvmmsg.
  bool rx_ring = true;
};
// The real sockets (packet_io.h).
std::unique_ptr<IoFactory> socketIo(SocketIoOptions options);

}  // namespace canopy::agent
