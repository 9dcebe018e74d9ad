#include "agent/worker.h"

#include <arpa/inet.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <utility>

#include "datapath/packet/parser.h"
#include "datapath/packet/tunnel.h"

namespace canopy::agent {
namespace {

// Batches of one source (a port, an uplink, a tunnel) a worker takes in a
// turn before it looks at the others.
constexpr size_t kBatchesPerTurn = 4;

using datapath::DropReason;
using datapath::packet::Offload;
using datapath::pipeline::Datapath;
using datapath::pipeline::Encapsulation;
using datapath::pipeline::Ingress;
using datapath::pipeline::Outputs;

// How long poll() waits when nothing comes (ticks and commands wake it).
constexpr int kIdlePollMs = 200;

}  // namespace

struct Worker::Command {
  enum class Kind : uint8_t { Adopt, Drop, SetPorts, Send, HandBack };
  Kind kind = Kind::Adopt;
  std::string interface {};
  std::unique_ptr<PortIo> io{};
  bool flag = false;  // Adopt: receive; Drop: remove the tap
  std::map<std::string, PortBinding> ports{};
  size_t uplink = 0;
  std::vector<uint8_t> frame{};
  std::vector<fastpath::FlowKey> flows{};
  std::vector<fastpath::FastPath::MadeConnection> made{};
};

Worker::Worker(const Clock& clock, Options options, const SnapshotCell<WorkerPlan>& plan,
               std::vector<std::unique_ptr<TunnelIo>> tunnels,
               std::vector<std::unique_ptr<PortIo>> uplinks)
    : clock_(clock),
      options_(options),
      plan_(plan),
      wake_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      tunnels_(std::move(tunnels)),
      uplinks_(std::move(uplinks)) {
  CANOPY_CHECK_MSG(wake_fd_.get() >= 0, "eventfd for a worker");
  if (options_.fast_path != nullptr) {
    kernel_flows_ = std::make_unique<KernelFlows>(*options_.fast_path, options_.fast_tunnels,
                                                  options_.fast_uplinks, options_.templates,
                                                  options_.index, options_.fast_setups);
  }
}

Worker::~Worker() { stop(); }

void Worker::start() {
  thread_ = std::thread([this] { loop(); });
}

void Worker::leaveFastPath() {
  if (kernel_flows_ != nullptr) kernel_flows_->leave();
}

void Worker::stop() {
  if (stopping_.exchange(true)) return;
  wake();
  if (thread_.joinable()) thread_.join();
}

void Worker::wake() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

void Worker::push(Command command) {
  {
    MutexLock lock(mu_);
    commands_.push_back(std::move(command));
  }
  has_commands_.store(true, std::memory_order_release);
  wake();
}

void Worker::adopt(const std::string& interface, std::unique_ptr<PortIo> io, bool receive) {
  push(
      {.kind = Command::Kind::Adopt, .interface = interface, .io = std::move(io), .flag = receive});
}

void Worker::drop(const std::string& interface, bool remove) {
  push({.kind = Command::Kind::Drop, .interface = interface, .flag = remove});
}

void Worker::setPorts(std::map<std::string, PortBinding> ports) {
  push({.kind = Command::Kind::SetPorts, .ports = std::move(ports)});
}

void Worker::sendOnUplink(size_t uplink, std::vector<uint8_t> frame) {
  push({.kind = Command::Kind::Send, .uplink = uplink, .frame = std::move(frame)});
}

void Worker::handBack(std::vector<fastpath::FlowKey> adopted,
                      std::vector<fastpath::FastPath::MadeConnection> made) {
  push({.kind = Command::Kind::HandBack, .flows = std::move(adopted), .made = std::move(made)});
}

WorkerStats Worker::stats() const {
  MutexLock lock(mu_);
  return published_;
}

std::vector<std::string> Worker::takeGone() {
  MutexLock lock(mu_);
  return std::exchange(gone_, {});
}

void Worker::applyCommands() {
  if (!has_commands_.exchange(false, std::memory_order_acquire)) return;
  std::vector<Command> commands;
  {
    MutexLock lock(mu_);
    commands.swap(commands_);
  }
  for (auto& c : commands) {
    switch (c.kind) {
      case Command::Kind::Adopt: {
        Bound& b = ports_[c.interface];
        leaveFastPath(b);
        b.io = std::move(c.io);
        b.receive = c.flag;
        if (kernel_flows_ != nullptr && b.receive && b.io != nullptr) {
          b.fast_ifindex = kernel_flows_->attach(*b.io, c.interface);
        } else if (kernel_flows_ == nullptr && b.receive && b.io != nullptr) {
          // An earlier agent's program, which this one would not keep in step.
          fastpath::FastPath::removeLeftover(b.io->interfaceIndex());
        }
        break;
      }
      case Command::Kind::Drop: {
        auto it = ports_.find(c.interface);
        if (it == ports_.end() || it->second.io == nullptr) break;
        leaveFastPath(it->second);
        if (c.flag) {
          if (auto r = it->second.io->removeTap(); !r) {
            spdlog::warn("agent: {}: {}", c.interface, r.error().message());
          }
        }
        it->second.io.reset();
        break;
      }
      case Command::Kind::SetPorts: {
        for (auto it = ports_.begin(); it != ports_.end();) {
          if (c.ports.count(it->first)) {
            ++it;
          } else {
            leaveFastPath(it->second);
            it = ports_.erase(it);
          }
        }
        for (auto& [interface, binding] : c.ports) {
          Bound& b = ports_[interface];
          if (b.binding.port_id != binding.port_id) b.rx = b.tx = 0;
          b.binding = binding;
        }
        break;
      }
      case Command::Kind::Send:
        if (c.uplink < uplinks_.size()) uplinks_[c.uplink]->send(c.frame);
        break;
      case Command::Kind::HandBack:
        hand_back_ = true;
        hand_back_flows_.insert(hand_back_flows_.end(), c.flows.begin(), c.flows.end());
        hand_back_made_.insert(hand_back_made_.end(), c.made.begin(), c.made.end());
        break;
    }
  }
  index();
}

void Worker::leaveFastPath(Bound& b) {
  if (kernel_flows_ != nullptr && b.fast_ifindex != 0) kernel_flows_->detach(b.fast_ifindex);
  b.fast_ifindex = 0;
}

void Worker::index() {
  by_key_.clear();
  metadata_ = nullptr;
  for (auto& [interface, b] : ports_) {
    if (b.io == nullptr) continue;
    if (b.binding.metadata) metadata_ = &b;
    if (b.binding.key != 0) by_key_[b.binding.key] = &b;
  }
}

void Worker::followPlan() {
  auto plan = plan_.load();
  if (plan == nullptr || plan->generation == generation_) return;
  generation_ = plan->generation;
  if (plan->shared != shared_ || datapath_ == nullptr) {
    shared_ = plan->shared;
    if (kernel_flows_ != nullptr) {
      kernel_flows_->useConntrack(shared_ != nullptr ? &shared_->conntrack() : nullptr, &clock_);
      auto* shared = shared_.get();
      kernel_flows_->useSnat(shared == nullptr ? KernelFlows::KeepAlive{}
                                               : [shared](const auto& c, bool used) {
                                                   return shared->snatKeepAlive(c, used);
                                                 });
      kernel_flows_->useLocalIp(shared == nullptr ? KernelFlows::KeepAlive{}
                                                  : [shared](const auto& c, bool used) {
                                                      return shared->localIpKeepAlive(c, used);
                                                    });
      kernel_flows_->useLb(shared == nullptr
                               ? KernelFlows::LbKeepAlive{}
                               : [shared](const auto& c, bool used, uint64_t in, uint64_t out) {
                                   return shared->lbKeepAlive(c, used, in, out);
                                 });
      kernel_flows_->useLbImport(
          shared == nullptr ? KernelFlows::LbImport{}
                            : [shared](const auto& c, const auto& member, uint64_t listener) {
                                return shared->lbImport(c, member, listener, /*closing=*/false);
                              });
      kernel_flows_->useLbClose(shared == nullptr
                                    ? KernelFlows::LbClose{}
                                    : [shared](const auto& c) { shared->lbClose(c); });
    }
    if (shared_ == nullptr) return;
    datapath_ = std::make_unique<Datapath>(clock_, plan->config, shared_);
  }
  if (plan->topology != nullptr && plan->topology.get() != datapath_->topology()) {
    datapath_->setTopology(plan->topology);
    // Installed flows whose decisions it changed are decided again.
    if (kernel_flows_ != nullptr) kernel_flows_->retract(datapath_->takeInvalidations());
  }
}

void Worker::handBackAdopted() {
  hand_back_ = false;
  auto portAt = [&](uint32_t ifindex) -> uint32_t {
    for (const auto& [interface, b] : ports_) {
      if (ifindex != 0 && b.fast_ifindex == static_cast<int>(ifindex)) return b.binding.key;
    }
    return 0;
  };
  size_t imported = 0;
  for (const auto& m : std::exchange(hand_back_made_, {})) {
    const fastpath::FlowKey& k = m.forward;
    // From a port here, or from a tunnel; to a port here, or into one.
    const uint32_t from = k.tunnel_family == 0 ? portAt(k.ifindex) : 0;
    const uint32_t to = m.action.out != CANOPY_FP_ENCAP ? portAt(m.action.ifindex) : 0;
    if (from == 0 && to == 0) continue;
    datapath::conntrack::ConnKey tuple;
    std::memcpy(tuple.src.data(), k.ip_src, sizeof(k.ip_src));
    std::memcpy(tuple.dst.data(), k.ip_dst, sizeof(k.ip_dst));
    tuple.src_port = ntohs(k.port_src);
    tuple.dst_port = ntohs(k.port_dst);
    tuple.protocol = k.protocol;
    tuple.family = k.family;
    auto answer = options_.fast_path != nullptr ? options_.fast_path->find(m.reply) : std::nullopt;
    datapath_->importConnection(from, to, tuple, answer && answer->packets > 0);
    ++imported;
  }
  auto flows = std::exchange(hand_back_flows_, {});
  if (options_.fast_path != nullptr)
    options_.fast_path->remove(std::span<const fastpath::FlowKey>(flows));
  spdlog::info(
      "agent: kernel fast path: {} adopted flows handed back to the datapath ({} connections the "
      "kernel set up among them taken into conntrack)",
      flows.size(), imported);
}

void Worker::loop() {
  std::vector<pollfd> fds;
  std::vector<Bound*> polled;
  auto last_tick = clock_.now();
  auto busy_poll_until = last_tick;
  while (!stopping_.load()) {
    applyCommands();
    followPlan();
    if (hand_back_ && datapath_ != nullptr) handBackAdopted();
    // What to poll: wake-up, tunnels, uplinks, the ports it receives from.
    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    for (const auto& t : tunnels_) fds.push_back({t->fd(), POLLIN, 0});
    for (const auto& u : uplinks_) fds.push_back({u->fd(), POLLIN, 0});
    for (auto& [interface, b] : ports_) {
      if (b.io == nullptr || !b.receive || b.io->fd() < 0) continue;
      fds.push_back({b.io->fd(), POLLIN, 0});
      polled.push_back(&b);
    }
    // (The kernel fast path's events: the first worker's.)
    const int events =
        kernel_flows_ != nullptr && options_.index == 0 ? kernel_flows_->eventsFd() : -1;
    if (events >= 0) fds.push_back({events, POLLIN, 0});
    bool spinning = busy_poll_until > clock_.now();
    int n = ::poll(fds.data(), fds.size(), spinning ? 0 : kIdlePollMs);
    if (n < 0 && errno != EINTR) {
      spdlog::error("agent: worker {}: poll: {}", options_.index, std::strerror(errno));
      return;
    }
    size_t at = 0;
    if (fds[at++].revents != 0) {
      uint64_t drained;
      while (::read(wake_fd_.get(), &drained, sizeof(drained)) > 0) {
      }
      continue;  // commands, the plan: the I/O set may have changed
    }
    received_ = false;
    for (size_t t = 0; t < tunnels_.size(); ++t, ++at) {
      if (fds[at].revents != 0) receiveTunnel(t);
    }
    for (size_t u = 0; u < uplinks_.size(); ++u, ++at) {
      if (fds[at].revents != 0) {
        receive(*uplinks_[u], nullptr, Ingress::fromUplink(static_cast<uint32_t>(u)));
      }
    }
    for (Bound* b : polled) {
      short revents = fds[at++].revents;
      if (revents == 0 || b->io == nullptr) continue;
      if ((revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) port_error_ = true;
      if (b->binding.metadata) {
        receive(*b->io, b, Ingress::fromMetadata());
        continue;
      }
      if (b->binding.key == 0) {
        while (b->io->receive(batch_) > 0) {
        }  // not in the view yet: nowhere to send it
        b->io->release();
        continue;
      }
      receive(*b->io, b, Ingress::fromPort(b->binding.key));
    }
    // (Whatever woke it: the kernel wakes it only for a batch of events.)
    if (events >= 0) kernel_flows_->takeEvents();
    // (Those of its flows the first worker handed to it.)
    if (kernel_flows_ != nullptr && options_.index != 0) kernel_flows_->takeHanded();
    auto now = clock_.now();
    if (received_) busy_poll_until = now + options_.busy_poll;
    if (port_error_ || now - last_tick >= options_.tick) {
      if (now - last_tick >= options_.tick) last_tick = now;
      port_error_ = false;
      tick();
    }
  }
}

// Frames of a port or an uplink, each with its offload request: kept for
// the way out if the datapath can carry it.
void Worker::receive(PortIo& io, Bound* bound, const Ingress& ingress) {
  // A few batches a turn: a port (or uplink) that always has more, a guest
  // flooding, does not keep the worker from its neighbours' ports; what it
  // has left waits for the next turn (or overflows its own ring). A port
  // over its slow-path limits (most of a batch dropped for them) gets one.
  for (size_t turn = 0; turn < kBatchesPerTurn && io.receive(batch_) > 0; ++turn) {
    if (datapath_ == nullptr) continue;  // no view yet
    const uint64_t limited_before = bound != nullptr ? slowPathDrops(bound->binding.key) : 0;
    if (bound != nullptr) bound->rx += batch_.size();
    inputs_.clear();
    offloads_.clear();
    rx_runs_used_ = 0;
    for (size_t i = 0; i < batch_.size(); ++i) {
      auto frame = batch_.mutableFrame(i);
      if (frame.empty()) continue;  // cut short on receive
      Offload offload = batch_.offload(i);
      if (auto why = datapath::packet::acceptOffload(frame, offload); why != DropReason::None) {
        ioDrop(why);
        continue;
      }
      if (offload.gso()) ++super_frames_;
      // (A connection the kernel set up, first met here: conntrack's now.)
      if (kernel_flows_ != nullptr && bound != nullptr && bound->fast_ifindex > 0) {
        kernel_flows_->adoptFor(frame, bound->fast_ifindex);
      }
      inputs_.push_back({ingress, frame, offload.segmentSize(), frame});
      offloads_.push_back(offload);
    }
    runBatch();
    io.release();
    received_ = true;
    if (batch_.size() < Batch::kFrames) break;
    if (bound != nullptr &&
        slowPathDrops(bound->binding.key) - limited_before >= batch_.size() / 2) {
      break;
    }
  }
}

uint64_t Worker::slowPathDrops(uint32_t port) const {
  const auto& drops = datapath_->portDrops();
  auto it = drops.find(port);
  if (it == drops.end()) return 0;
  uint64_t n = 0;
  for (DropReason why :
       {DropReason::FlowSetupRateLimited, DropReason::ArpRateLimited, DropReason::NdRateLimited,
        DropReason::DhcpRateLimited, DropReason::IcmpRateLimited}) {
    n += it->second[static_cast<size_t>(why)];
  }
  return n;
}

// Tunnel datagrams, a coalesced run cut back into its datagrams. As GRO
// would, consecutive TCP segments of one flow behind the same tunnel header
// are joined first into one super-frame (behind that header), which passes
// the datapath once instead of once per segment.
namespace {

// A peer's kernel fast path sends a guest's super-frame behind one tunnel
// header (UDP-tunnel GSO), and through a virtual underlay it arrives whole:
// one datagram whose inner IP packet spans it, longer than a datagram can
// be on the underlay, not a run of datagrams. Its request (a TCP or UDP
// super-frame, the checksum partial, counted from the inner frame), or none
// if `datagram` is not one. The segment size is `mss` if the socket told it
// (it does only for UDP_SEGMENT runs), else what fills an underlay datagram
// (`max_payload`), as this agent's own segments into the tunnel do: the
// sender's kernel cut no larger ones.
std::optional<Offload> wholeSuperFrame(std::span<uint8_t> datagram, Encapsulation e, size_t mss,
                                       size_t max_payload) {
  datapath::packet::TunnelInfo tunnel;
  auto why = e == Encapsulation::Geneve ? datapath::packet::parseGeneve(datagram, tunnel)
                                        : datapath::packet::parseVxlan(datagram, tunnel);
  if (why != DropReason::None || tunnel.control) return std::nullopt;
  auto inner = datagram.subspan(tunnel.inner_offset);
  datapath::packet::ParsedPacket p;
  if (datapath::packet::parse(inner, p) != DropReason::None || p.l3_end != inner.size() ||
      p.payload_offset == 0) {
    return std::nullopt;
  }
  if (mss == 0) {
    const size_t overhead = tunnel.inner_offset + p.payload_offset;
    if (max_payload <= overhead + 64) return std::nullopt;
    mss = max_payload - overhead;
  }
  if (inner.size() <= p.payload_offset + mss) return std::nullopt;
  Offload o;
  const bool v4 = p.key.eth_type == datapath::packet::ethertype::kIpv4;
  if (p.key.ip_proto == datapath::packet::ipproto::kTcp) {
    o.gso_type = v4 ? Offload::kGsoTcpv4 : Offload::kGsoTcpv6;
  } else if (p.key.ip_proto == datapath::packet::ipproto::kUdp) {
    o.gso_type = Offload::kGsoUdpL4;
  } else {
    return std::nullopt;
  }
  o.gso_size = static_cast<uint16_t>(mss);
  if (datapath::packet::setPartialChecksum(inner, p, o) != DropReason::None) return std::nullopt;
  return o;
}

}  // namespace

void Worker::receiveTunnel(size_t t) {
  TunnelIo& io = *tunnels_[t];
  Encapsulation e = (t == 0) == (options_.encapsulation == Encapsulation::Geneve)
                        ? Encapsulation::Geneve
                        : Encapsulation::Vxlan;
  for (size_t turn = 0; turn < kBatchesPerTurn && io.receive(batch_) > 0; ++turn) {
    if (datapath_ == nullptr) continue;  // no view yet
    inputs_.clear();
    offloads_.clear();
    rx_runs_used_ = 0;
    // A run of consecutive TCP segments of one flow from one host is joined
    // into a super-frame before the datapath, as GRO would: whether the
    // sender's kernel cut them (UDP_SEGMENT, read back as one buffer) or its
    // fast path's tunnel GSO was cut on the way (datagrams one by one).
    datapath::packet::TcpCoalescer* joining = nullptr;
    std::span<uint8_t> first;  // the run's first datagram
    Ingress run_ingress = Ingress::fromTunnel(e, {});
    size_t header_length = 0;  // the run's tunnel header
    auto end_run = [&] {
      if (joining == nullptr) return;
      if (joining->segments() > 1) {
        Offload o;
        auto joined = joining->finish(o);
        inputs_.push_back({run_ingress, joined, o.gso_size, joined});
        offloads_.push_back(o);
        ++joined_;
      } else {
        inputs_.push_back({run_ingress, first, 0, first});
        offloads_.push_back(datapath::packet::leftPartial(first.subspan(header_length)));
      }
      joining = nullptr;
    };
    for (size_t i = 0; i < batch_.size(); ++i) {
      Ingress ingress = Ingress::fromTunnel(e, batch_.source(i));
      if (joining != nullptr && !(ingress.source == run_ingress.source)) end_run();
      auto buffer = batch_.mutableFrame(i);
      size_t size = batch_.segmentSize(i);
      if (size == 0) size = buffer.size();
      if (size < buffer.size() || buffer.size() > io.maxPayload()) {
        if (auto whole =
                wholeSuperFrame(buffer, e, size < buffer.size() ? size : 0, io.maxPayload())) {
          end_run();
          inputs_.push_back({ingress, buffer, whole->gso_size, buffer});
          offloads_.push_back(*whole);
          ++joined_;  // (a super-frame out of the tunnel, as if joined here)
          continue;
        }
      }
      for (size_t from = 0; from < buffer.size(); from += size) {
        auto datagram = buffer.subspan(from, std::min(size, buffer.size() - from));
        // Behind the same header bytes as the run's: no need to parse it again.
        if (joining != nullptr && datagram.size() > header_length &&
            joining->add(datagram.subspan(header_length), datagram.first(header_length))) {
          continue;
        }
        datapath::packet::TunnelInfo tunnel;
        auto why = e == Encapsulation::Geneve ? datapath::packet::parseGeneve(datagram, tunnel)
                                              : datapath::packet::parseVxlan(datagram, tunnel);
        const bool data = why == DropReason::None && !tunnel.control;
        auto header = datagram.first(data ? tunnel.inner_offset : 0);
        auto inner = datagram.subspan(header.size());
        end_run();
        if (data && kernel_flows_ != nullptr) {
          kernel_flows_->adoptFor(inner, options_.fast_tunnels.underlay_ifindex, ingress.source,
                                  tunnel.vni);
        }
        if (data) {
          if (rx_runs_used_ == rx_runs_.size()) {
            rx_runs_.push_back(std::make_unique<datapath::packet::TcpCoalescer>());
          }
          auto& run = *rx_runs_[rx_runs_used_];
          run.clear();
          if (run.add(inner, header)) {
            ++rx_runs_used_;
            joining = &run;
            first = datagram;
            run_ingress = ingress;
            header_length = header.size();
            continue;
          }
        }
        inputs_.push_back({ingress, datagram, 0, datagram});
        // (A checksum another host's kernel left partial is finished where
        // this frame leaves, as a guest's is.)
        offloads_.push_back(data ? datapath::packet::leftPartial(inner) : Offload{});
      }
    }
    end_run();
    runBatch();
    io.release();
    received_ = true;
    if (batch_.size() < Batch::kFrames) break;
  }
}

void Worker::runBatch() {
  out_.clear();
  datapath_->processBatch(inputs_, out_);
  // A handshake's flows before its SYN-ACK goes on, so that the next
  // packets (the last ACK, the first data) find them; the others after
  // their packets, which they must not overtake.
  installOffers(/*early=*/true);
  forward(out_, offloads_);
  installOffers(/*early=*/false);
}

void Worker::installOffers(bool early) {
  if (kernel_flows_ == nullptr) return;
  if (!early) {
    kernel_flows_->retract(datapath_->takeInvalidations());  // (neighbours learned)
    auto& retracted = datapath_->retractions();
    kernel_flows_->retract(retracted);
    retracted.clear();
  }
  auto& offers = datapath_->offers();
  if (offers.empty()) return;
  auto these = offers.begin();
  if (early) {
    these = std::stable_partition(offers.begin(), offers.end(),
                                  [](const datapath::pipeline::FlowOffer& o) { return !o.early; });
  }
  if (these == offers.end()) return;
  kernel_flows_->install(std::span(these, offers.end()), [&](uint32_t port) {
    auto it = by_key_.find(port);
    return it == by_key_.end() ? 0 : it->second->fast_ifindex;
  });
  offers.erase(these, offers.end());
}

void Worker::forward(Outputs& out, std::span<const Offload> offloads) {
  // Complete TCP segments for one port (a tunnel brings them one by one)
  // are joined into super-frames on their way, as GRO would: one send and
  // one pass through the guest's stack instead of dozens.
  PortIo* run_io = nullptr;
  Bound* run_bound = nullptr;
  auto flush = [&] {
    if (coalescer_.empty()) return;
    Offload joined;
    auto frame = coalescer_.finish(joined);
    if (coalescer_.segments() > 1) ++coalesced_;
    sendFrame(*run_io, run_bound, frame, joined);
    flushPort(*run_io, run_bound);  // before the coalescer's bytes are reused
    coalescer_.clear();
  };
  for (const auto& item : out.items()) {
    auto bytes = out.mutableBytes(item);
    // A forwarded frame leaves with its input's request, fixed up for its
    // final headers; what the datapath made is complete as it is.
    Offload offload{};
    if (!item.generated && item.input < offloads.size()) offload = offloads[item.input];
    PortIo* io = nullptr;
    Bound* bound = nullptr;
    if (item.kind == Outputs::Kind::Port) {
      if (auto it = by_key_.find(item.port); it != by_key_.end() && it->second->io) {
        bound = it->second;
        io = bound->io.get();
      }
    } else if (item.kind == Outputs::Kind::Uplink && item.uplink < uplinks_.size()) {
      io = uplinks_[item.uplink].get();
    } else if (item.kind == Outputs::Kind::Metadata && metadata_ != nullptr) {
      bound = metadata_;
      io = bound->io.get();
    }
    if (item.kind == Outputs::Kind::Port && io != nullptr && offload.none()) {
      if (run_io == io && coalescer_.add(bytes)) continue;
      flush();
      if (coalescer_.add(bytes)) {
        run_io = io;
        run_bound = bound;
        continue;
      }
    } else {
      flush();  // what goes out keeps the batch's order
    }
    if (item.kind == Outputs::Kind::Tunnel) {
      sendTunnel(item, bytes, offload);
      continue;
    }
    if (io == nullptr) continue;
    if (!offload.none()) {
      // NAT, a TTL or a VLAN tag may have changed what the partial
      // checksum covers and where it lies: rewritten from the final headers.
      if (auto why = datapath::packet::setPartialChecksum(bytes, offload);
          why != DropReason::None) {
        ioDrop(why);
        continue;
      }
    }
    sendFrame(*io, bound, bytes, offload);
  }
  flush();
  flushSends();
}

void Worker::sendFrame(PortIo& io, Bound* bound, std::span<const uint8_t> frame,
                       const Offload& offload) {
  if (io.queued() == 0) {
    sending_.emplace_back(&io, bound);
  } else if (io.queued() == PortIo::kSendBatch) {
    flushPort(io, bound);  // and stays among sending_
  }
  io.queue(frame, offload);
}

void Worker::flushPort(PortIo& io, Bound* bound) {
  size_t queued = io.queued();
  size_t sent = io.flush();
  send_failed_ += queued - sent;
  if (bound != nullptr) bound->tx += sent;
}

void Worker::flushTunnel(TunnelIo& tunnel) {
  size_t queued = tunnel.queued();
  if (queued != 0) send_failed_ += queued - tunnel.flush();
}

void Worker::flushSends() {
  for (auto [io, bound] : sending_) {
    if (io->queued() != 0) flushPort(*io, bound);
  }
  sending_.clear();
  for (auto& tunnel : tunnels_) flushTunnel(*tunnel);
}

void Worker::sendTunnel(const Outputs::Item& item, std::span<uint8_t> bytes, Offload offload) {
  // [0] is the configured encapsulation's socket, [1] the other's.
  TunnelIo& tunnel = *tunnels_[item.encapsulation == options_.encapsulation ? 0 : 1];
  auto inner = bytes.subspan(item.inner_offset);
  if (offload.gso()) {
    // Nobody segments a super-frame inside a datagram: cut here into
    // complete segments, each behind the same tunnel header and small
    // enough that its datagram needs no IP fragmentation, and send the run
    // in UDP_SEGMENT calls.
    datapath::packet::ParsedPacket p;
    if (auto why = datapath::packet::parse(inner, p); why != DropReason::None) {
      ioDrop(why);
      return;
    }
    size_t mss = offload.gso_size;
    size_t overhead = item.inner_offset + p.payload_offset;
    if (tunnel.maxPayload() > overhead + 64) mss = std::min(mss, tunnel.maxPayload() - overhead);
    if (auto why = datapath::packet::segmentHeaders(inner, offload, mss,
                                                    bytes.first(item.inner_offset), segments_);
        why != DropReason::None) {
      ioDrop(why);
      return;
    }
    ++segmented_;
    flushTunnel(tunnel);  // what was queued before it leaves before it
    // Each datagram gathered from its headers and its payload where it lies.
    if (tunnel.sendGather(item.remote, segments_, inner) < segments_.count) ++send_failed_;
    return;
  }
  if (offload.partial()) {
    // Nobody finishes a checksum inside a datagram either.
    if (auto why = datapath::packet::setPartialChecksum(inner, offload); why != DropReason::None) {
      ioDrop(why);
      return;
    }
    if (auto why =
            datapath::packet::completeChecksum(inner, offload.csum_start, offload.csum_offset);
        why != DropReason::None) {
      ioDrop(why);
      return;
    }
  }
  if (tunnel.queued() == TunnelIo::kMaxSegmentsPerSend) flushTunnel(tunnel);
  tunnel.queue(item.remote, bytes);
}

void Worker::advertise() {
  const auto* topology = datapath_ == nullptr ? nullptr : datapath_->topology();
  if (options_.index != 0 || topology == nullptr) return;
  std::vector<uint32_t> keys;
  for (const auto& [key, b] : by_key_) keys.push_back(key);
  for (const auto& due : advertisements_.due(*topology, keys, clock_.now())) {
    Bound* b = by_key_.at(due.port);
    sendFrame(*b->io, b, due.frame, Offload{});
  }
  flushSends();
}

void Worker::tick() {
  // Expired connections and SNAT mappings go (a bounded amount of work; with
  // one worker the shared state is this worker's alone, so it is done here).
  if (datapath_ != nullptr) datapath_->sweep();
  if (kernel_flows_ != nullptr && shared_ != nullptr) {
    if (options_.index == 0) kernel_flows_->takeEvents();
    kernel_flows_->takeHanded();
    kernel_flows_->tick(shared_->conntrack(), clock_.now());
  }
  advertise();
  // An owned tap deleted under the agent: reported once, its I/O let go.
  std::vector<std::string> gone;
  for (auto& [interface, b] : ports_) {
    if (b.io != nullptr && b.io->tap() && !b.io->attached()) {
      gone.push_back(interface);
      b.io.reset();
    }
  }
  if (!gone.empty()) index();
  WorkerStats s;
  if (datapath_ != nullptr) {
    s.datapath = datapath_->counters();
    s.cache = datapath_->cacheStats();
    s.cache_entries = datapath_->cacheSize();
  }
  s.io_drops = io_drops_;
  s.kernel_flows = kernel_flows_ != nullptr ? kernel_flows_->size() : 0;
  s.kernel_installs = kernel_flows_ != nullptr ? kernel_flows_->installs() : 0;
  s.kernel_templates = kernel_flows_ != nullptr ? kernel_flows_->templates() : 0;
  s.send_failed = send_failed_;
  s.super_frames = super_frames_;
  s.segmented = segmented_;
  s.joined = joined_;
  s.coalesced = coalesced_;
  for (const auto& u : uplinks_) s.receive_truncated += u->truncated();
  for (const auto& [interface, b] : ports_) {
    if (b.io != nullptr) s.receive_truncated += b.io->truncated();
    WorkerStats::Port& p = s.ports[interface];
    p.port_id = b.binding.port_id;
    p.key = b.binding.key;
    p.rx = b.rx;
    p.tx = b.tx;
    if (datapath_ != nullptr && b.binding.key != 0) {
      if (auto d = datapath_->portDrops().find(b.binding.key); d != datapath_->portDrops().end()) {
        p.drops = d->second;
      }
    }
  }
  MutexLock lock(mu_);
  gone_.insert(gone_.end(), gone.begin(), gone.end());
  published_ = std::move(s);
}

}  // namespace canopy::agent
