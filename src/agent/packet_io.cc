#include "agent/packet_io.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/udp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include "agent/sockaddr.h"

namespace canopy::agent {

bool FrameSocket::filterWith(int program) {
  return setsockopt(fd_.get(), SOL_SOCKET, SO_ATTACH_BPF, &program, sizeof(program)) == 0;
}
namespace {

using datapath::packet::Offload;

// The most a UDP datagram over IPv4 can carry; a UDP_SEGMENT send is one
// such datagram before the kernel cuts it.
constexpr size_t kMaxUdpPayload = 65535 - 20 - 8;
// Room for one UDP_GRO control message.
constexpr size_t kControlBytes = 64;

Error sysError(const std::string& what) {
  return Error(Errc::Unavailable, what + ": " + std::strerror(errno));
}

// A socket buffer of `bytes`, past the system's limit where the agent may
// (it runs with CAP_NET_ADMIN), within it otherwise.
void setBuffer(int fd, int option, int force_option, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, force_option, &bytes, sizeof(bytes)) != 0) {
    setsockopt(fd, SOL_SOCKET, option, &bytes, sizeof(bytes));
  }
}

// The MTU of the interface that holds `local`, 0 if none does.
size_t interfaceMtu(int fd, const IpAddress& local) {
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return 0;
  std::string name;
  for (const ifaddrs* a = list; a != nullptr && name.empty(); a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    if (local.family == 4 && a->ifa_addr->sa_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
      if (std::memcmp(&in->sin_addr, local.bytes.data(), 4) == 0) name = a->ifa_name;
    } else if (local.family == 6 && a->ifa_addr->sa_family == AF_INET6) {
      const auto* in = reinterpret_cast<const sockaddr_in6*>(a->ifa_addr);
      if (std::memcmp(&in->sin6_addr, local.bytes.data(), 16) == 0) name = a->ifa_name;
    }
  }
  freeifaddrs(list);
  if (name.empty() || name.size() >= IFNAMSIZ) return 0;
  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), name.size());
  if (ioctl(fd, SIOCGIFMTU, &request) != 0 || request.ifr_mtu <= 0) return 0;
  return static_cast<size_t>(request.ifr_mtu);
}

}  // namespace

VirtioNetHeader toVirtio(const Offload& o) {
  VirtioNetHeader h{};
  h.flags = o.flags;
  h.gso_type = o.gso_type;
  h.hdr_len = o.hdr_len;
  h.gso_size = o.gso_size;
  h.csum_start = o.csum_start;
  h.csum_offset = o.csum_offset;
  return h;
}

namespace {

// The kernel takes a received frame's 802.1Q tag out of it into the
// packet's metadata (skb_vlan_untag) and tells it beside the frame (the
// ring's header, PACKET_AUXDATA): put back, the datapath sees the frame as
// it was on the wire (a provider network's VLAN, a guest's tagged frames).
// `headroom`: bytes free before the frame; with fewer than 4 the frame
// moves within its slot of `capacity` bytes. Returns where it now starts,
// or nullptr if there is no room.
uint8_t* restoreVlanTag(uint8_t* frame, size_t& length, size_t headroom, size_t capacity,
                        uint16_t tpid, uint16_t tci, VirtioNetHeader& vnet) {
  if (length < 12 || (headroom < 4 && length + 4 > capacity)) return nullptr;
  uint8_t* at = frame;
  if (headroom >= 4) {
    at = frame - 4;
    std::memmove(at, frame, 12);
  } else {
    std::memmove(frame + 16, frame + 12, length - 12);
  }
  const uint8_t tag[4] = {static_cast<uint8_t>(tpid >> 8), static_cast<uint8_t>(tpid),
                          static_cast<uint8_t>(tci >> 8), static_cast<uint8_t>(tci)};
  std::memcpy(at + 12, tag, sizeof(tag));
  length += 4;
  // The offload request's offsets count from the frame's start.
  if ((vnet.flags & Offload::kNeedsChecksum) != 0) vnet.csum_start += 4;
  if (vnet.gso_type != Offload::kGsoNone) vnet.hdr_len += 4;
  return at;
}

// The tag in a received packet's auxiliary data, if the kernel took one out.
bool auxTag(const msghdr& m, uint16_t& tpid, uint16_t& tci) {
  for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&m), c)) {
    if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA ||
        c->cmsg_len < CMSG_LEN(sizeof(tpacket_auxdata))) {
      continue;
    }
    tpacket_auxdata aux;
    std::memcpy(&aux, CMSG_DATA(c), sizeof(aux));
    if ((aux.tp_status & TP_STATUS_VLAN_VALID) == 0 && aux.tp_vlan_tci == 0) return false;
    tci = aux.tp_vlan_tci;
    tpid = (aux.tp_status & TP_STATUS_VLAN_TPID_VALID) != 0 ? aux.tp_vlan_tpid : ETH_P_8021Q;
    return true;
  }
  return false;
}

constexpr size_t kAuxSpace = CMSG_SPACE(sizeof(tpacket_auxdata));

}  // namespace

// AF_PACKET's virtio-net header is in the host's byte order (on the
// little-endian hosts Canopy runs on, virtio's legacy order).
Offload Batch::offload(size_t i) const {
  const VirtioNetHeader& h = vnet_[i];
  return {.flags = h.flags,
          .gso_type = h.gso_type,
          .hdr_len = h.hdr_len,
          .gso_size = h.gso_size,
          .csum_start = h.csum_start,
          .csum_offset = h.csum_offset};
}

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    if (at_ != nullptr) ::munmap(at_, bytes_);
    at_ = o.at_;
    bytes_ = o.bytes_;
    o.at_ = nullptr;
  }
  return *this;
}

Mapping::~Mapping() {
  if (at_ != nullptr) ::munmap(at_, bytes_);
}

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

Result<FrameSocket> FrameSocket::open(const std::string& interface, bool rx_ring,
                                      uint16_t fanout_group) {
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
  // Every frame in and out behind a virtio-net header: super-frames and
  // partial checksums pass instead of being cut and summed by the kernel
  // (or, on a send, refused as too big). Set before bind, so that no frame
  // is queued without one.
  if (setsockopt(s.fd_.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one)) != 0) {
    return sysError("PACKET_VNET_HDR on " + interface);
  }
  // The 802.1Q tag the kernel takes out of a received frame, told beside it.
  if (setsockopt(s.fd_.get(), SOL_PACKET, PACKET_AUXDATA, &one, sizeof(one)) != 0) {
    return sysError("PACKET_AUXDATA on " + interface);
  }
  // The ring, also before bind: no frame is queued where it is not read.
  if (rx_ring) {
    if (auto mapped = s.mapRing(); !mapped) return mapped.error();
  }
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = s.ifindex_;
  if (bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return sysError("bind to " + interface);
  }
  if (fanout_group != 0) {
    int fanout = fanout_group | (PACKET_FANOUT_HASH << 16);
    if (setsockopt(s.fd_.get(), SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(fanout)) != 0) {
      return sysError("PACKET_FANOUT on " + interface);
    }
  }
  // Room for a few dozen super-frames each way.
  setBuffer(s.fd_.get(), SO_RCVBUF, SO_RCVBUFFORCE, 8 << 20);
  setBuffer(s.fd_.get(), SO_SNDBUF, SO_SNDBUFFORCE, 4 << 20);
  return s;
}

Result<FrameSocket> FrameSocket::openTap(const std::string& interface, const std::string& netns) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) {
    return Error(Errc::InvalidArgument, "interface name '" + interface + "' is not valid");
  }
  // A tap belongs to the namespace of the thread that opens /dev/net/tun:
  // for another namespace, a thread of its own enters it first.
  int fd = -1;
  std::string failed;
  auto attach = [&] {
    if (!netns.empty()) {
      Fd ns(::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
      if (ns.get() < 0 || ::setns(ns.get(), CLONE_NEWNET) != 0) {
        failed = "network namespace " + netns + ": " + std::strerror(errno);
        return;
      }
    }
    fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) failed = std::string("/dev/net/tun: ") + std::strerror(errno);
  };
  if (netns.empty()) {
    attach();
  } else {
    std::thread(attach).join();
  }
  if (fd < 0) return Error(Errc::Unavailable, failed);
  FrameSocket s;
  s.fd_ = Fd(fd);
  s.interface_ = interface;
  s.tap_ = true;
  // The tap with a virtio-net header on every frame, created if it does not
  // exist, and kept when the agent closes it (a restart attaches again).
  ifreq ifr{};
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  std::memcpy(ifr.ifr_name, interface.data(), interface.size());
  if (::ioctl(fd, TUNSETIFF, &ifr) != 0) return sysError("tap " + interface);
  int header_size = sizeof(VirtioNetHeader);
  if (::ioctl(fd, TUNSETVNETHDRSZ, &header_size) != 0) {
    return sysError("virtio-net header on tap " + interface);
  }
  // What this end takes: partial checksums and TCP super-frames, which the
  // guest's side may then send (its tx offloads).
  unsigned offloads = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
  if (::ioctl(fd, TUNSETOFFLOAD, offloads) != 0) return sysError("offloads on tap " + interface);
  if (::ioctl(fd, TUNSETPERSIST, 1) != 0) return sysError("persist tap " + interface);
  return s;
}

Result<FrameSocket> FrameSocket::share() const {
  FrameSocket s;
  s.fd_ = Fd(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (s.fd_.get() < 0) return sysError("dup of " + interface_);
  s.interface_ = interface_;
  s.ifindex_ = ifindex_;
  s.tap_ = tap_;
  return s;
}

bool FrameSocket::attached() const {
  if (!tap_) return true;
  ifreq ifr{};
  return ::ioctl(fd_.get(), TUNGETIFF, &ifr) == 0;  // EBADFD once the device is gone
}

Result<void> FrameSocket::removeTap() {
  if (!tap_) return ok();
  if (::ioctl(fd_.get(), TUNSETPERSIST, 0) != 0) return sysError("tap " + interface_);
  fd_ = Fd();  // the last file closed: the device goes
  return ok();
}

Result<void> FrameSocket::mapRing() {
  int version = TPACKET_V2;
  if (setsockopt(fd_.get(), SOL_PACKET, PACKET_VERSION, &version, sizeof(version)) != 0) {
    return sysError("TPACKET_V2 on " + interface_);
  }
  // A frame too big for its slot goes to the socket's queue whole, its slot
  // marked TP_STATUS_COPY, instead of being cut.
  int copy = 1;
  if (setsockopt(fd_.get(), SOL_PACKET, PACKET_COPY_THRESH, &copy, sizeof(copy)) != 0) {
    return sysError("PACKET_COPY_THRESH on " + interface_);
  }
  tpacket_req request{};
  request.tp_block_size = kRingBlockBytes;
  request.tp_block_nr = kRingBlocks;
  request.tp_frame_size = kRingFrameBytes;
  request.tp_frame_nr = kRingBlocks * (kRingBlockBytes / kRingFrameBytes);
  if (setsockopt(fd_.get(), SOL_PACKET, PACKET_RX_RING, &request, sizeof(request)) != 0) {
    return sysError("receive ring on " + interface_);
  }
  size_t bytes = size_t{kRingBlocks} * kRingBlockBytes;
  void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
  if (at == MAP_FAILED) return sysError("mapping the receive ring of " + interface_);
  ring_ = Mapping(static_cast<uint8_t*>(at), bytes);
  ring_frames_ = request.tp_frame_nr;
  held_.reserve(Batch::kFrames);
  return ok();
}

namespace {

// A ring slot's status word: the kernel's until it sets TP_STATUS_USER,
// ours until we set TP_STATUS_KERNEL back. What it covers is ordered by
// acquiring and releasing it.
std::atomic_ref<uint32_t> slotStatus(tpacket2_hdr* h) { return std::atomic_ref(h->tp_status); }

}  // namespace

void FrameSocket::release() {
  for (size_t slot : held_) {
    auto* h = reinterpret_cast<tpacket2_hdr*>(ring_.get() + slot * kRingFrameBytes);
    slotStatus(h).store(TP_STATUS_KERNEL, std::memory_order_release);
  }
  held_.clear();
}

size_t FrameSocket::receiveRing(Batch& batch) {
  release();
  batch.count_ = 0;
  while (batch.count_ < Batch::kFrames) {
    auto* h = reinterpret_cast<tpacket2_hdr*>(ring_.get() + ring_next_ * kRingFrameBytes);
    uint32_t status = slotStatus(h).load(std::memory_order_acquire);
    if ((status & TP_STATUS_USER) == 0) break;
    size_t i = batch.count_++;
    batch.segment_[i] = 0;
    held_.push_back(ring_next_);
    ring_next_ = (ring_next_ + 1) % ring_frames_;
    if ((status & TP_STATUS_COPY) != 0) {
      // The frame itself is next in the socket's queue.
      receiveQueued(batch, i);
      continue;
    }
    if (h->tp_snaplen != h->tp_len || h->tp_mac < sizeof(tpacket2_hdr) + sizeof(VirtioNetHeader) ||
        h->tp_mac + h->tp_snaplen > kRingFrameBytes) {
      // Cut short (the queue was full): nothing to forward.
      ++truncated_;
      batch.length_[i] = 0;
      batch.vnet_[i] = {};
      continue;
    }
    // The kernel writes the virtio-net header right before the frame.
    uint8_t* frame = reinterpret_cast<uint8_t*>(h) + h->tp_mac;
    std::memcpy(&batch.vnet_[i], frame - sizeof(VirtioNetHeader), sizeof(VirtioNetHeader));
    batch.at_[i] = frame;
    batch.length_[i] = h->tp_snaplen;
    if ((status & TP_STATUS_VLAN_VALID) != 0 || h->tp_vlan_tci != 0) {
      // The header's room (already copied out) takes the frame's start.
      uint16_t tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? h->tp_vlan_tpid : ETH_P_8021Q;
      batch.at_[i] = restoreVlanTag(frame, batch.length_[i], sizeof(VirtioNetHeader),
                                    batch.length_[i], tpid, h->tp_vlan_tci, batch.vnet_[i]);
      if (batch.at_[i] == nullptr) {
        ++truncated_;
        batch.at_[i] = frame;
        batch.length_[i] = 0;
      }
    }
  }
  return batch.count_;
}

void FrameSocket::receiveQueued(Batch& batch, size_t i) {
  std::array<iovec, 2> iov{
      {{&batch.vnet_[i], sizeof(VirtioNetHeader)}, {batch.slot(i), Batch::kFrameBytes - 4}}};
  alignas(cmsghdr) std::array<uint8_t, kAuxSpace> control{};
  msghdr m{};
  m.msg_iov = iov.data();
  m.msg_iovlen = iov.size();
  m.msg_control = control.data();
  m.msg_controllen = control.size();
  ssize_t n = ::recvmsg(fd_.get(), &m, MSG_DONTWAIT);
  batch.at_[i] = batch.slot(i);
  if (n < static_cast<ssize_t>(sizeof(VirtioNetHeader)) || (m.msg_flags & MSG_TRUNC) != 0) {
    ++truncated_;
    batch.length_[i] = 0;
    batch.vnet_[i] = {};
    return;
  }
  batch.length_[i] = static_cast<size_t>(n) - sizeof(VirtioNetHeader);
  restoreTag(batch, i, m);
}

void FrameSocket::restoreTag(Batch& batch, size_t i, const msghdr& m) {
  uint16_t tpid = 0, tci = 0;
  if (!auxTag(m, tpid, tci)) return;
  uint8_t* at = restoreVlanTag(batch.at_[i], batch.length_[i], 0, Batch::kFrameBytes, tpid, tci,
                               batch.vnet_[i]);
  if (at == nullptr) {
    ++truncated_;
    batch.length_[i] = 0;
  }
}

size_t FrameSocket::receive(Batch& batch) {
  if (ring_) return receiveRing(batch);
  if (tap_) {
    // A tap gives one frame per read.
    batch.count_ = 0;
    while (batch.count_ < Batch::kFrames) {
      size_t i = batch.count_;
      std::array<iovec, 2> iov{
          {{&batch.vnet_[i], sizeof(VirtioNetHeader)}, {batch.slot(i), Batch::kFrameBytes}}};
      ssize_t n = ::readv(fd_.get(), iov.data(), static_cast<int>(iov.size()));
      if (n < static_cast<ssize_t>(sizeof(VirtioNetHeader))) break;
      batch.at_[i] = batch.slot(i);
      batch.segment_[i] = 0;
      batch.length_[i] = static_cast<size_t>(n) - sizeof(VirtioNetHeader);
      ++batch.count_;
    }
    return batch.count_;
  }
  std::array<mmsghdr, Batch::kFrames> msgs{};
  std::array<std::array<iovec, 2>, Batch::kFrames> iov{};
  alignas(cmsghdr) std::array<std::array<uint8_t, kAuxSpace>, Batch::kFrames> control{};
  for (size_t i = 0; i < Batch::kFrames; ++i) {
    iov[i][0] = {&batch.vnet_[i], sizeof(VirtioNetHeader)};
    iov[i][1] = {batch.slot(i), Batch::kFrameBytes - 4};  // room for a tag put back
    msgs[i].msg_hdr.msg_iov = iov[i].data();
    msgs[i].msg_hdr.msg_iovlen = 2;
    msgs[i].msg_hdr.msg_control = control[i].data();
    msgs[i].msg_hdr.msg_controllen = control[i].size();
  }
  int n = recvmmsg(fd_.get(), msgs.data(), Batch::kFrames, MSG_DONTWAIT, nullptr);
  batch.count_ = n > 0 ? static_cast<size_t>(n) : 0;
  for (size_t i = 0; i < batch.count_; ++i) {
    size_t length = msgs[i].msg_len;
    batch.at_[i] = batch.slot(i);
    batch.segment_[i] = 0;
    if ((msgs[i].msg_hdr.msg_flags & MSG_TRUNC) != 0 || length < sizeof(VirtioNetHeader)) {
      // Cut short: nothing to forward. An empty frame is skipped.
      ++truncated_;
      batch.length_[i] = 0;
      batch.vnet_[i] = {};
      continue;
    }
    batch.length_[i] = length - sizeof(VirtioNetHeader);
    restoreTag(batch, i, msgs[i].msg_hdr);
  }
  return batch.count_;
}

bool FrameSocket::send(std::span<const uint8_t> frame, const Offload& offload) {
  VirtioNetHeader header = toVirtio(offload);
  std::array<iovec, 2> iov{
      {{&header, sizeof(header)}, {const_cast<uint8_t*>(frame.data()), frame.size()}}};
  if (tap_) {
    return ::writev(fd_.get(), iov.data(), static_cast<int>(iov.size())) ==
           static_cast<ssize_t>(sizeof(header) + frame.size());
  }
  msghdr m{};
  m.msg_iov = iov.data();
  m.msg_iovlen = iov.size();
  return ::sendmsg(fd_.get(), &m, MSG_DONTWAIT) ==
         static_cast<ssize_t>(sizeof(header) + frame.size());
}

size_t FrameSocket::flush() {
  size_t count = std::exchange(queued_, 0);
  std::array<VirtioNetHeader, kSendBatch> headers;
  std::array<std::array<iovec, 2>, kSendBatch> iov{};
  for (size_t i = 0; i < count; ++i) {
    headers[i] = toVirtio(queue_offloads_[i]);
    iov[i] = {{{&headers[i], sizeof(VirtioNetHeader)},
               {const_cast<uint8_t*>(queue_frames_[i].data()), queue_frames_[i].size()}}};
  }
  if (tap_) {
    // A tap takes one frame per write.
    size_t sent = 0;
    for (size_t i = 0; i < count; ++i) {
      ssize_t n = ::writev(fd_.get(), iov[i].data(), static_cast<int>(iov[i].size()));
      if (n == static_cast<ssize_t>(sizeof(VirtioNetHeader) + queue_frames_[i].size())) ++sent;
    }
    return sent;
  }
  std::array<mmsghdr, kSendBatch> msgs{};
  for (size_t i = 0; i < count; ++i) {
    msgs[i].msg_hdr.msg_iov = iov[i].data();
    msgs[i].msg_hdr.msg_iovlen = iov[i].size();
  }
  // sendmmsg stops at the first frame it cannot send: the rest are tried
  // after it, each frame once.
  size_t sent = 0;
  for (size_t at = 0; at < count;) {
    int n =
        ::sendmmsg(fd_.get(), msgs.data() + at, static_cast<unsigned>(count - at), MSG_DONTWAIT);
    if (n <= 0) {
      ++at;  // this one is lost
      continue;
    }
    sent += static_cast<size_t>(n);
    at += static_cast<size_t>(n);
  }
  return sent;
}

Result<TunnelSocket> TunnelSocket::open(const IpAddress& local, uint16_t port, bool reuse_port) {
  TunnelSocket s;
  s.port_ = port;
  s.family_ = local.family;
  int domain = local.family == 6 ? AF_INET6 : AF_INET;
  s.fd_ = Fd(::socket(domain, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (s.fd_.get() < 0) return sysError("UDP socket");
  setBuffer(s.fd_.get(), SO_RCVBUF, SO_RCVBUFFORCE, 8 << 20);
  setBuffer(s.fd_.get(), SO_SNDBUF, SO_SNDBUFFORCE, 8 << 20);
  int reuse = 1;
  if (reuse_port && setsockopt(s.fd_.get(), SOL_SOCKET, SO_REUSEPORT, &reuse, sizeof(reuse)) != 0) {
    return sysError("SO_REUSEPORT");
  }
  sockaddr_storage a;
  socklen_t a_length = toSockaddr(local, port, a);
  if (bind(s.fd_.get(), reinterpret_cast<sockaddr*>(&a), a_length) != 0) {
    return sysError("bind UDP " + local.toString() + ":" + std::to_string(port));
  }
  // Runs of datagrams of one flow arrive as one buffer (Linux 5.0 and
  // later); without it, one by one.
  int one = 1;
  setsockopt(s.fd_.get(), SOL_UDP, UDP_GRO, &one, sizeof(one));
  // Over IPv6, a fast path's tunnel packets come with a zero UDP checksum
  // (RFC 6935, 6936: its encapsulation cannot sum a guest's super-frame);
  // the inner frames carry their own.
  if (local.family == 6) setsockopt(s.fd_.get(), SOL_UDP, UDP_NO_CHECK6_RX, &one, sizeof(one));
  size_t mtu = interfaceMtu(s.fd_.get(), local);
  size_t headers = (local.family == 6 ? 40 : 20) + 8;
  if (mtu > headers + 68) s.max_payload_ = mtu - headers;
  return s;
}

size_t TunnelSocket::receive(Batch& batch) {
  std::array<mmsghdr, Batch::kFrames> msgs{};
  std::array<iovec, Batch::kFrames> iov{};
  std::array<sockaddr_storage, Batch::kFrames> from{};
  struct Control {
    alignas(cmsghdr) uint8_t bytes[kControlBytes];
  };
  std::array<Control, Batch::kFrames> control;
  for (size_t i = 0; i < Batch::kFrames; ++i) {
    iov[i] = {batch.slot(i), Batch::kFrameBytes};
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
    msgs[i].msg_hdr.msg_name = &from[i];
    msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    msgs[i].msg_hdr.msg_control = control[i].bytes;
    msgs[i].msg_hdr.msg_controllen = kControlBytes;
  }
  int n = recvmmsg(fd_.get(), msgs.data(), Batch::kFrames, MSG_DONTWAIT, nullptr);
  batch.count_ = n > 0 ? static_cast<size_t>(n) : 0;
  for (size_t i = 0; i < batch.count_; ++i) {
    batch.at_[i] = batch.slot(i);
    batch.length_[i] = msgs[i].msg_len;
    batch.vnet_[i] = {};
    batch.segment_[i] = 0;
    msghdr& h = msgs[i].msg_hdr;
    for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
      if (c->cmsg_level != SOL_UDP || c->cmsg_type != UDP_GRO) continue;
      int size = 0;
      std::memcpy(&size, CMSG_DATA(c), sizeof(size));
      if (size > 0 && static_cast<size_t>(size) < batch.length_[i]) {
        batch.segment_[i] = static_cast<size_t>(size);
      }
    }
    batch.source_[i] = fromSockaddr(from[i]);
  }
  return batch.count_;
}

bool TunnelSocket::send(const IpAddress& remote, std::span<const uint8_t> payload) {
  sockaddr_storage a;
  socklen_t length = toSockaddr(remote, port_, a);
  ssize_t n = sendto(fd_.get(), payload.data(), payload.size(), MSG_DONTWAIT,
                     reinterpret_cast<sockaddr*>(&a), length);
  return n == static_cast<ssize_t>(payload.size());
}

size_t TunnelSocket::flush() {
  const size_t count = std::exchange(queued_, 0);
  if (count == 0) return 0;
  // Messages: a run of datagrams [first, end) to one remote, cut by the
  // kernel at the run's first size when there are two or more.
  struct Message {
    size_t first = 0;
    size_t end = 0;
  };
  std::array<Message, kMaxSegmentsPerSend> runs{};
  size_t messages = 0;
  for (size_t i = 0; i < count;) {
    const size_t size = queue_payloads_[i].size();
    size_t end = i + 1;
    size_t total = size;
    // Equal sizes only after the first; a shorter one closes the run.
    bool open = size <= max_payload_ && size <= UINT16_MAX;
    while (open && end < count && queue_remotes_[end] == queue_remotes_[i] &&
           queue_payloads_[end].size() <= size &&
           total + queue_payloads_[end].size() <= kMaxUdpPayload) {
      total += queue_payloads_[end].size();
      open = queue_payloads_[end].size() == size;
      ++end;
    }
    runs[messages++] = {i, end};
    i = end;
  }
  std::array<iovec, kMaxSegmentsPerSend> iov{};
  std::array<sockaddr_storage, kMaxSegmentsPerSend> to{};
  struct Control {
    alignas(cmsghdr) uint8_t bytes[kControlBytes];
  };
  std::array<Control, kMaxSegmentsPerSend> control{};
  std::array<mmsghdr, kMaxSegmentsPerSend> msgs{};
  for (size_t d = 0; d < count; ++d) {
    iov[d] = {const_cast<uint8_t*>(queue_payloads_[d].data()), queue_payloads_[d].size()};
  }
  for (size_t m = 0; m < messages; ++m) {
    const Message& run = runs[m];
    msghdr& h = msgs[m].msg_hdr;
    h.msg_name = &to[m];
    h.msg_namelen = toSockaddr(queue_remotes_[run.first], port_, to[m]);
    h.msg_iov = &iov[run.first];
    h.msg_iovlen = run.end - run.first;
    if (run.end - run.first > 1) {
      h.msg_control = control[m].bytes;
      h.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      cmsghdr* c = CMSG_FIRSTHDR(&h);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      auto segment = static_cast<uint16_t>(queue_payloads_[run.first].size());
      std::memcpy(CMSG_DATA(c), &segment, sizeof(segment));
    }
  }
  size_t sent = 0;
  for (size_t m = 0; m < messages;) {
    int n = ::sendmmsg(fd_.get(), &msgs[m], static_cast<unsigned>(messages - m), MSG_DONTWAIT);
    if (n > 0) {
      for (size_t k = m; k < m + static_cast<size_t>(n); ++k) sent += runs[k].end - runs[k].first;
      m += static_cast<size_t>(n);
      continue;
    }
    // Message m was refused. A run the kernel cannot segment (a path MTU
    // below maxPayload()) goes one datagram at a time; anything else
    // (a full send buffer) is lost.
    const Message& run = runs[m];
    if (run.end - run.first > 1 && (errno == EINVAL || errno == EMSGSIZE || errno == EIO)) {
      for (size_t d = run.first; d < run.end; ++d) {
        if (send(queue_remotes_[d], queue_payloads_[d])) ++sent;
      }
    }
    ++m;
  }
  return sent;
}

size_t TunnelSocket::sendGather(const IpAddress& remote, const datapath::packet::SegmentHeaders& h,
                                std::span<const uint8_t> frame) {
  if (h.count == 0) return 0;
  const size_t size = h.header_length + std::min(h.mss, h.payload);  // all but the last
  sockaddr_storage to;
  socklen_t to_length = toSockaddr(remote, port_, to);
  // Datagram i: its headers, then its payload where it lies in the frame.
  auto fill = [&](size_t i, iovec* iov) {
    auto header = h.header(i);
    auto payload = h.payloadOf(frame, i);
    iov[0] = {const_cast<uint8_t*>(header.data()), header.size()};
    iov[1] = {const_cast<uint8_t*>(payload.data()), payload.size()};
  };
  size_t per_call = std::min(kMaxSegmentsPerSend, kMaxUdpPayload / size);
  bool gso = per_call >= 2 && size <= UINT16_MAX;
  std::array<iovec, 2 * kMaxSegmentsPerSend> iov{};
  size_t sent = 0;
  while (gso && sent < h.count) {
    size_t datagrams = std::min(per_call, h.count - sent);
    for (size_t d = 0; d < datagrams; ++d) fill(sent + d, &iov[2 * d]);
    struct {
      alignas(cmsghdr) uint8_t bytes[kControlBytes];
    } control{};
    msghdr m{};
    m.msg_name = &to;
    m.msg_namelen = to_length;
    m.msg_iov = iov.data();
    m.msg_iovlen = 2 * datagrams;
    if (datagrams > 1) {
      m.msg_control = control.bytes;
      m.msg_controllen = CMSG_SPACE(sizeof(uint16_t));
      cmsghdr* c = CMSG_FIRSTHDR(&m);
      c->cmsg_level = SOL_UDP;
      c->cmsg_type = UDP_SEGMENT;
      c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      auto segment = static_cast<uint16_t>(size);
      std::memcpy(CMSG_DATA(c), &segment, sizeof(segment));
    }
    if (::sendmsg(fd_.get(), &m, MSG_DONTWAIT) < 0) {
      // As in sendSegments(): the rest one by one where the kernel cannot
      // segment; a full send buffer loses the rest.
      if (datagrams > 1 && (errno == EINVAL || errno == EMSGSIZE || errno == EIO)) break;
      return sent;
    }
    sent += datagrams;
  }
  std::array<mmsghdr, kMaxSegmentsPerSend> msgs{};
  while (sent < h.count) {
    size_t n = std::min(msgs.size(), h.count - sent);
    for (size_t d = 0; d < n; ++d) {
      fill(sent + d, &iov[2 * d]);
      msgs[d].msg_hdr = {};
      msgs[d].msg_hdr.msg_name = &to;
      msgs[d].msg_hdr.msg_namelen = to_length;
      msgs[d].msg_hdr.msg_iov = &iov[2 * d];
      msgs[d].msg_hdr.msg_iovlen = 2;
    }
    int r = sendmmsg(fd_.get(), msgs.data(), static_cast<unsigned>(n), MSG_DONTWAIT);
    if (r <= 0) return sent;
    sent += static_cast<size_t>(r);
    if (static_cast<size_t>(r) < n) return sent;
  }
  return sent;
}

namespace {

class SocketIo final : public IoFactory {
 public:
  explicit SocketIo(SocketIoOptions options) : options_(options) {}

  bool exists(const std::string& interface) override {
    return if_nametoindex(interface.c_str()) != 0;
  }

  Result<void> removeBridge(const std::string& bridge) override {
    if (bridge.empty() || bridge.size() >= IFNAMSIZ) {
      return Error(Errc::InvalidArgument, "bridge name '" + bridge + "' is not valid");
    }
    Fd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) return sysError("socket");
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, bridge.data(), bridge.size());
    // Down first: the kernel refuses to delete a bridge that is up.
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) == 0) {
      ifr.ifr_flags = static_cast<short>(ifr.ifr_flags & ~IFF_UP);
      (void)::ioctl(s.get(), SIOCSIFFLAGS, &ifr);
    }
    char name[IFNAMSIZ] = {};
    std::memcpy(name, bridge.data(), bridge.size());
    if (::ioctl(s.get(), SIOCBRDELBR, name) != 0) return sysError("removing bridge " + bridge);
    return ok();
  }

  Result<std::unique_ptr<PortIo>> openInterface(const std::string& interface, size_t /*worker*/,
                                                size_t workers) override {
    // One fanout group per interface (its index is unique in the namespace).
    uint16_t group = 0;
    if (workers > 1) group = static_cast<uint16_t>(if_nametoindex(interface.c_str()) & 0xffff);
    auto s = FrameSocket::open(interface, options_.rx_ring, group);
    if (!s) return std::move(s).error();
    return std::unique_ptr<PortIo>(std::make_unique<FrameSocket>(std::move(*s)));
  }
  Result<std::unique_ptr<PortIo>> openTap(const std::string& interface,
                                          const std::string& netns) override {
    auto s = FrameSocket::openTap(interface, netns);
    if (!s) return std::move(s).error();
    return std::unique_ptr<PortIo>(std::make_unique<FrameSocket>(std::move(*s)));
  }
  Result<std::unique_ptr<PortIo>> shareTap(PortIo& tap) override {
    auto* socket = dynamic_cast<FrameSocket*>(&tap);
    if (socket == nullptr) return Error(Errc::Internal, "not a socket of this factory");
    auto s = socket->share();
    if (!s) return std::move(s).error();
    return std::unique_ptr<PortIo>(std::make_unique<FrameSocket>(std::move(*s)));
  }
  Result<std::unique_ptr<TunnelIo>> openTunnel(const IpAddress& local, uint16_t port,
                                               size_t /*worker*/, size_t workers) override {
    auto s = TunnelSocket::open(local, port, workers > 1);
    if (!s) return std::move(s).error();
    return std::unique_ptr<TunnelIo>(std::make_unique<TunnelSocket>(std::move(*s)));
  }

 private:
  SocketIoOptions options_;
};

}  // namespace

std::unique_ptr<IoFactory> socketIo(SocketIoOptions options) {
  return std::make_unique<SocketIo>(options);
}

}  // namespace canopy::agent
