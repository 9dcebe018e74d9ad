// FrameSocket against a real veth pair in a network namespace of the test's
// own: frames sent on one end arrive on the other whole, in order, with
// their virtio-net header, through the receive ring (small frames in its
// slots, bigger ones through the socket's queue) and through recvmmsg.
// Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN); skipped without it.

#include "agent/packet_io.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

namespace canopy::agent {
namespace {

using datapath::packet::Offload;

constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE 802 local experimental

// Runs `body` on a thread in a new network namespace holding the veth pair
// a <-> b (MTU 9000, up): the namespace goes with the thread.
void withVethPair(const std::function<void()>& body) {
  std::thread([&] {
    ASSERT_EQ(::unshare(CLONE_NEWNET), 0) << std::strerror(errno);
    // Commands run from this thread run in its namespace.
    ASSERT_EQ(
        std::system("ip link add name a type veth peer name b && ip link set dev a mtu 9000 up && "
                    "ip link set dev b mtu 9000 up"),
        0);
    body();
  }).join();
}

// A raw sender on interface b, with a virtio-net header on every frame.
class Sender {
 public:
  Sender() {
    fd_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    int one = 1;
    ::setsockopt(fd_, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(one));
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = static_cast<int>(if_nametoindex("b"));
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  }
  ~Sender() { ::close(fd_); }
  bool send(const std::vector<uint8_t>& frame, const VirtioNetHeader& header = {}) {
    std::array<iovec, 2> iov{{{const_cast<VirtioNetHeader*>(&header), sizeof(header)},
                              {const_cast<uint8_t*>(frame.data()), frame.size()}}};
    msghdr m{};
    m.msg_iov = iov.data();
    m.msg_iovlen = iov.size();
    return ::sendmsg(fd_, &m, 0) == static_cast<ssize_t>(sizeof(header) + frame.size());
  }

 private:
  int fd_ = -1;
};

// A frame of `length` bytes of our EtherType carrying `sequence`.
std::vector<uint8_t> testFrame(size_t length, uint32_t sequence) {
  std::vector<uint8_t> f(length);
  for (size_t i = 0; i < length; ++i) f[i] = static_cast<uint8_t>(i * 7 + sequence);
  std::memset(f.data(), 0xff, 6);  // broadcast
  f[12] = kTestEtherType >> 8;
  f[13] = kTestEtherType & 0xff;
  std::memcpy(f.data() + 14, &sequence, sizeof(sequence));
  return f;
}

bool ours(std::span<const uint8_t> frame) {
  return frame.size() >= 18 && frame[12] == (kTestEtherType >> 8) &&
         frame[13] == (kTestEtherType & 0xff);
}

// Receives on `socket` until `want` frames of ours have come (or 5 s pass),
// each checked by the caller, then released.
size_t receiveOurs(FrameSocket& socket, size_t want,
                   const std::function<void(const Batch&, size_t)>& check) {
  Batch batch;
  size_t got = 0;
  for (int waits = 0; got < want && waits < 500;) {
    size_t n = socket.receive(batch);
    if (n == 0) {
      pollfd p{socket.fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
      ++waits;
      continue;
    }
    for (size_t i = 0; i < n; ++i) {
      if (!ours(batch.frame(i))) continue;
      check(batch, i);
      ++got;
    }
    socket.release();
  }
  return got;
}

class FrameSocketTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  }
};

TEST_P(FrameSocketTest, FramesOfEverySizeArriveWholeAndInOrder) {
  withVethPair([&] {
    auto socket = FrameSocket::open("a", GetParam());
    ASSERT_TRUE(socket) << socket.error().message();
    Sender sender;
    // Sizes below and above a ring slot (2 KiB) interleaved, many times the
    // ring around, in rounds the ring holds.
    const std::vector<size_t> sizes = {60, 1514, 2030, 2100, 4000, 9014, 64, 128};
    uint32_t sent = 0;
    uint32_t expected = 0;
    for (int round = 0; round < 12; ++round) {
      for (int i = 0; i < 300; ++i, ++sent) {
        ASSERT_TRUE(sender.send(testFrame(sizes[sent % sizes.size()], sent)));
      }
      size_t got = receiveOurs(*socket, 300, [&](const Batch& batch, size_t i) {
        auto frame = batch.frame(i);
        uint32_t sequence = 0;
        std::memcpy(&sequence, frame.data() + 14, sizeof(sequence));
        EXPECT_EQ(sequence, expected);
        auto want = testFrame(sizes[sequence % sizes.size()], sequence);
        EXPECT_TRUE(std::equal(frame.begin(), frame.end(), want.begin(), want.end()))
            << "frame " << sequence << " of " << frame.size() << " bytes";
        EXPECT_TRUE(batch.offload(i).none());
        expected = sequence + 1;
      });
      ASSERT_EQ(got, 300u) << "round " << round;
    }
    EXPECT_EQ(socket->truncated(), 0u);
  });
}

// The kernel takes a received frame's 802.1Q tag out into the packet's
// metadata: the socket puts it back, in the ring's slots and through the
// queue alike (a provider network's VLAN on an uplink).
TEST_P(FrameSocketTest, AVlanTagArrivesWhereItWasOnTheWire) {
  withVethPair([&] {
    auto socket = FrameSocket::open("a", GetParam());
    ASSERT_TRUE(socket) << socket.error().message();
    Sender sender;
    const std::vector<size_t> sizes = {64, 1518, 4000};
    auto tagged = [&](uint32_t sequence) {
      auto f = testFrame(sizes[sequence % sizes.size()], sequence);
      const uint8_t tag[4] = {0x81, 0x00, 0x20, 0x64};  // priority 1, VLAN 100
      f.insert(f.begin() + 12, tag, tag + 4);
      return f;
    };
    for (uint32_t n = 0; n < 30; ++n) ASSERT_TRUE(sender.send(tagged(n)));
    Batch batch;
    size_t got = 0;
    for (int waits = 0; got < 30 && waits < 500; ++waits) {
      size_t n = socket->receive(batch);
      if (n == 0) {
        pollfd p{socket->fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
        continue;
      }
      for (size_t i = 0; i < n; ++i) {
        auto frame = batch.frame(i);
        if (frame.size() < 22 || frame[16] != (kTestEtherType >> 8)) continue;
        uint32_t sequence = 0;
        std::memcpy(&sequence, frame.data() + 18, sizeof(sequence));
        auto want = tagged(sequence);
        EXPECT_TRUE(std::equal(frame.begin(), frame.end(), want.begin(), want.end()))
            << "frame " << sequence << " of " << frame.size() << " bytes";
        ++got;
      }
      socket->release();
    }
    EXPECT_EQ(got, 30u);
    EXPECT_EQ(socket->truncated(), 0u);
  });
}

TEST_P(FrameSocketTest, ASuperFrameKeepsItsOffloadRequest) {
  withVethPair([&] {
    auto socket = FrameSocket::open("a", GetParam());
    ASSERT_TRUE(socket) << socket.error().message();
    // An IPv4 TCP super-frame of 20000 payload bytes, its checksum partial,
    // between two small frames.
    constexpr size_t kPayload = 20000;
    std::vector<uint8_t> f(14 + 20 + 20 + kPayload, 0x5a);
    std::memset(f.data(), 0x02, 12);
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t* ip = f.data() + 14;
    std::memset(ip, 0, 40);
    ip[0] = 0x45;
    uint16_t total = htons(static_cast<uint16_t>(20 + 20 + kPayload));
    std::memcpy(ip + 2, &total, 2);
    ip[8] = 64;
    ip[9] = 6;  // TCP
    const uint8_t addresses[8] = {10, 0, 0, 1, 10, 0, 0, 2};
    std::memcpy(ip + 12, addresses, 8);
    ip[20 + 12] = 5 << 4;  // data offset
    ip[20 + 13] = 0x18;    // PSH ACK
    VirtioNetHeader request{.flags = Offload::kNeedsChecksum,
                            .gso_type = Offload::kGsoTcpv4,
                            .hdr_len = 54,
                            .gso_size = 1448,
                            .csum_start = 34,
                            .csum_offset = 16};
    Sender sender;
    ASSERT_TRUE(sender.send(testFrame(60, 1)));
    ASSERT_TRUE(sender.send(f, request));
    ASSERT_TRUE(sender.send(testFrame(60, 2)));
    Batch batch;
    std::vector<size_t> lengths;
    Offload super{};
    for (int waits = 0; lengths.size() < 3 && waits < 500; ++waits) {
      size_t n = socket->receive(batch);
      for (size_t i = 0; i < n; ++i) {
        auto frame = batch.frame(i);
        bool tcp = frame.size() > 34 && frame[12] == 0x08 && frame[23] == 6;
        if (!ours(frame) && !tcp) continue;
        lengths.push_back(frame.size());
        if (tcp) {
          super = batch.offload(i);
          EXPECT_TRUE(std::equal(frame.begin() + 54, frame.end(), f.begin() + 54, f.end()));
        }
      }
      socket->release();
      if (n == 0) {
        pollfd p{socket->fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
      }
    }
    ASSERT_EQ(lengths, (std::vector<size_t>{60, f.size(), 60}));
    EXPECT_EQ(super.gsoKind(), Offload::kGsoTcpv4);
    EXPECT_EQ(super.gso_size, 1448);
    EXPECT_TRUE(super.partial());
    EXPECT_EQ(super.csum_start, 34);
    EXPECT_EQ(super.csum_offset, 16);
  });
}

TEST_P(FrameSocketTest, QueuedFramesLeaveInOrder) {
  withVethPair([&] {
    auto receiver = FrameSocket::open("a", GetParam());
    ASSERT_TRUE(receiver) << receiver.error().message();
    auto sender = FrameSocket::open("b", GetParam());
    ASSERT_TRUE(sender) << sender.error().message();
    // More than one sendmmsg's worth, each frame's bytes kept until flush.
    std::vector<std::vector<uint8_t>> frames;
    for (uint32_t i = 0; i < 3 * FrameSocket::kSendBatch + 5; ++i) {
      frames.push_back(testFrame(i % 3 == 0 ? 5000 : 60 + i, i));
    }
    size_t sent = 0;
    for (const auto& f : frames) {
      if (sender->queued() == FrameSocket::kSendBatch) sent += sender->flush();
      sender->queue(f, {});
    }
    sent += sender->flush();
    EXPECT_EQ(sent, frames.size());
    EXPECT_EQ(sender->queued(), 0u);
    uint32_t expected = 0;
    size_t got = receiveOurs(*receiver, frames.size(), [&](const Batch& batch, size_t i) {
      auto frame = batch.frame(i);
      ASSERT_LT(expected, frames.size());
      EXPECT_TRUE(
          std::equal(frame.begin(), frame.end(), frames[expected].begin(), frames[expected].end()))
          << "frame " << expected;
      ++expected;
    });
    EXPECT_EQ(got, frames.size());
  });
}

INSTANTIATE_TEST_SUITE_P(Receive, FrameSocketTest, ::testing::Values(true, false),
                         [](const auto& p) { return p.param ? "Ring" : "Recvmmsg"; });

// Queued tunnel datagrams leave in order, runs of one size as one
// UDP_SEGMENT message each, and arrive whole (coalesced by UDP_GRO or not).
TEST(TunnelSocketTest, QueuedDatagramsArriveInOrder) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root for a network namespace";
  withVethPair([&] {
    ASSERT_EQ(std::system("ip link set dev lo up"), 0);
    auto local = IpAddress::parse("127.0.0.1");
    auto remote = IpAddress::parse("127.0.0.2");
    auto elsewhere = IpAddress::parse("127.0.0.3");
    ASSERT_TRUE(local && remote && elsewhere);
    auto sender = TunnelSocket::open(*local, 6081);
    ASSERT_TRUE(sender) << sender.error().message();
    auto receiver = TunnelSocket::open(*remote, 6081);
    ASSERT_TRUE(receiver) << receiver.error().message();
    // Runs of one size, a shorter one closing a run, another remote in
    // between, and more than one flush's worth.
    std::vector<size_t> sizes;
    for (int i = 0; i < 10; ++i) sizes.push_back(100);
    sizes.push_back(50);
    for (int i = 0; i < 5; ++i) sizes.push_back(200);
    sizes.push_back(0);  // to elsewhere
    for (int i = 0; i < 70; ++i) sizes.push_back(60 + static_cast<size_t>(i / 20));
    std::vector<std::vector<uint8_t>> payloads;
    for (size_t i = 0; i < sizes.size(); ++i) {
      payloads.push_back(testFrame(std::max<size_t>(sizes[i], 18), static_cast<uint32_t>(i)));
    }
    size_t sent = 0;
    for (size_t i = 0; i < payloads.size(); ++i) {
      if (sender->queued() == TunnelSocket::kMaxSegmentsPerSend) sent += sender->flush();
      sender->queue(sizes[i] == 0 ? *elsewhere : *remote, payloads[i]);
    }
    sent += sender->flush();
    EXPECT_EQ(sent, payloads.size());
    std::vector<std::vector<uint8_t>> got;
    Batch batch;
    for (int waits = 0; got.size() < payloads.size() - 1 && waits < 300; ++waits) {
      size_t n = receiver->receive(batch);
      for (size_t i = 0; i < n; ++i) {
        auto buffer = batch.frame(i);
        size_t size = batch.segmentSize(i) != 0 ? batch.segmentSize(i) : buffer.size();
        for (size_t at = 0; at < buffer.size(); at += size) {
          auto d = buffer.subspan(at, std::min(size, buffer.size() - at));
          got.emplace_back(d.begin(), d.end());
        }
      }
      if (n == 0) {
        pollfd p{receiver->fd(), POLLIN, 0};
        ::poll(&p, 1, 10);
      }
    }
    std::vector<std::vector<uint8_t>> want;
    for (size_t i = 0; i < payloads.size(); ++i) {
      if (sizes[i] != 0) want.push_back(payloads[i]);
    }
    EXPECT_EQ(got, want);
  });
}

}  // namespace
}  // namespace canopy::agent
