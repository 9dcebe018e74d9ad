#pragma once
// The agent's I/O without a network: frames a test hands in come out of a
// worker's receive(), and what a worker sends is kept for the test to read.
// Each fake is readable (its eventfd) while frames wait, so the worker's
// poll wakes as it would for a socket.
//
//   FakeIo io;
//   io.addInterface("vm1");
//   auto agent = Agent::start(clock, config, &io);
//   io.port("vm1", 0)->inject(frame);             // into worker 0's share
//   auto sent = io.port("vm1", 0)->waitSent(1);   // what left through it
//
// Thread-safety: inject()/sent()/waitSent() from the test's thread, the rest
// from the agent's.

#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "agent/port_io.h"

namespace canopy::agent::testing {

using Bytes = std::vector<uint8_t>;

// Frames in and out, shared by a fake and the test.
class FakeQueue {
 public:
  FakeQueue() : fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  int fd() const { return fd_.get(); }

  void inject(Bytes frame, IpAddress source = {}) {
    std::lock_guard lock(mu_);
    in_.push_back({std::move(frame), source});
    uint64_t one = 1;
    (void)!::write(fd_.get(), &one, sizeof(one));
  }
  // Up to `max` frames waiting, into the batch's slots.
  size_t take(Batch& batch) {
    std::lock_guard lock(mu_);
    size_t n = 0;
    while (n < Batch::kFrames && !in_.empty()) {
      auto& [frame, source] = in_.front();
      std::copy(frame.begin(), frame.end(), batch.slot(n));
      batch.set(n, batch.slot(n), frame.size(), {}, 0, source);
      in_.pop_front();
      ++n;
    }
    batch.resize(n);
    if (in_.empty()) {
      uint64_t drained;
      (void)!::read(fd_.get(), &drained, sizeof(drained));
    }
    return n;
  }
  void sent(Bytes frame, IpAddress remote = {}) {
    {
      std::lock_guard lock(mu_);
      out_.push_back({std::move(frame), remote});
    }
    cv_.notify_all();
  }
  // What was sent so far, once there are at least `count` (or the time is up).
  std::vector<std::pair<Bytes, IpAddress>> waitSent(
      size_t count, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return out_.size() >= count; });
    return out_;
  }
  size_t sentCount() {
    std::lock_guard lock(mu_);
    return out_.size();
  }

 private:
  Fd fd_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<Bytes, IpAddress>> in_;
  std::vector<std::pair<Bytes, IpAddress>> out_;
};

class FakePort final : public PortIo {
 public:
  explicit FakePort(std::shared_ptr<FakeQueue> q, bool tap = false) : q_(std::move(q)), tap_(tap) {}
  int fd() const override { return q_->fd(); }
  size_t receive(Batch& batch) override { return q_->take(batch); }
  void release() override {}
  size_t flush() override {
    size_t n = std::exchange(queued_, 0);
    for (size_t i = 0; i < n; ++i) {
      q_->sent({queue_frames_[i].begin(), queue_frames_[i].end()});
    }
    return n;
  }
  bool send(std::span<const uint8_t> frame, const datapath::packet::Offload&) override {
    q_->sent({frame.begin(), frame.end()});
    return true;
  }
  bool tap() const override { return tap_; }

 private:
  std::shared_ptr<FakeQueue> q_;
  bool tap_;
};

class FakeTunnel final : public TunnelIo {
 public:
  explicit FakeTunnel(std::shared_ptr<FakeQueue> q) : q_(std::move(q)) {}
  int fd() const override { return q_->fd(); }
  size_t receive(Batch& batch) override { return q_->take(batch); }
  void release() override {}
  size_t flush() override {
    size_t n = std::exchange(queued_, 0);
    for (size_t i = 0; i < n; ++i) {
      q_->sent({queue_payloads_[i].begin(), queue_payloads_[i].end()}, queue_remotes_[i]);
    }
    return n;
  }
  size_t sendGather(const IpAddress& remote, const datapath::packet::SegmentHeaders& h,
                    std::span<const uint8_t> frame) override {
    for (size_t i = 0; i < h.count; ++i) {
      auto header = h.header(i);
      auto payload = h.payloadOf(frame, i);
      Bytes d(header.begin(), header.end());
      d.insert(d.end(), payload.begin(), payload.end());
      q_->sent(std::move(d), remote);
    }
    return h.count;
  }
  size_t maxPayload() const override { return 1500 - 28; }

 private:
  std::shared_ptr<FakeQueue> q_;
};

// Opens fakes; each (interface or tunnel port, worker) its own queue.
class FakeIo final : public IoFactory {
 public:
  void addInterface(const std::string& name) {
    std::lock_guard lock(mu_);
    interfaces_.insert(name);
  }
  void removeInterface(const std::string& name) {
    std::lock_guard lock(mu_);
    interfaces_.erase(name);
  }
  // The queue behind worker `worker`'s I/O on an interface (or tap).
  std::shared_ptr<FakeQueue> port(const std::string& interface, size_t worker) {
    return queue(interface + "#" + std::to_string(worker));
  }
  std::shared_ptr<FakeQueue> tunnel(uint16_t port, size_t worker) {
    return queue("udp:" + std::to_string(port) + "#" + std::to_string(worker));
  }
  // How many times an interface was opened (for any worker).
  size_t opened(const std::string& interface) {
    std::lock_guard lock(mu_);
    return opens_.count(interface) ? opens_.at(interface) : 0;
  }

  bool exists(const std::string& interface) override {
    std::lock_guard lock(mu_);
    return interfaces_.count(interface) != 0;
  }
  Result<std::unique_ptr<PortIo>> openInterface(const std::string& interface, size_t worker,
                                                size_t) override {
    if (!exists(interface)) return Error(Errc::Unavailable, "interface " + interface + ": gone");
    {
      std::lock_guard lock(mu_);
      ++opens_[interface];
    }
    return std::unique_ptr<PortIo>(std::make_unique<FakePort>(port(interface, worker)));
  }
  Result<std::unique_ptr<PortIo>> openTap(const std::string& interface,
                                          const std::string&) override {
    // A tap's one queue: read by one worker, written by all.
    auto q = queue(interface + "#tap");
    auto io = std::make_unique<FakePort>(q, /*tap=*/true);
    std::lock_guard lock(mu_);
    tap_queues_[interface] = q;
    return std::unique_ptr<PortIo>(std::move(io));
  }
  Result<std::unique_ptr<PortIo>> shareTap(PortIo& tap) override {
    auto* fake = dynamic_cast<FakePort*>(&tap);
    if (fake == nullptr) return Error(Errc::Internal, "not a fake tap");
    std::lock_guard lock(mu_);
    for (auto& [name, q] : tap_queues_) {
      if (q->fd() == fake->fd())
        return std::unique_ptr<PortIo>(std::make_unique<FakePort>(q, true));
    }
    return Error(Errc::NotFound, "unknown tap");
  }
  Result<std::unique_ptr<TunnelIo>> openTunnel(const IpAddress&, uint16_t port, size_t worker,
                                               size_t) override {
    return std::unique_ptr<TunnelIo>(std::make_unique<FakeTunnel>(tunnel(port, worker)));
  }
  std::shared_ptr<FakeQueue> tapQueue(const std::string& name) {
    std::lock_guard lock(mu_);
    return tap_queues_.count(name) ? tap_queues_.at(name) : nullptr;
  }

 private:
  std::shared_ptr<FakeQueue> queue(const std::string& name) {
    std::lock_guard lock(mu_);
    auto& q = queues_[name];
    if (q == nullptr) q = std::make_shared<FakeQueue>();
    return q;
  }
  std::mutex mu_;
  std::set<std::string> interfaces_;
  std::map<std::string, std::shared_ptr<FakeQueue>> queues_;
  std::map<std::string, size_t> opens_;
  std::map<std::string, std::shared_ptr<FakeQueue>> tap_queues_;
};

}  // namespace canopy::agent::testing
