#include "agent/agent.h"

#include <net/if.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "datapath/packet/builder.h"
#include "datapath/packet/tunnel.h"

namespace canopy::agent {
namespace {

using datapath::DropReason;
using datapath::packet::Offload;
using datapath::pipeline::Datapath;
using datapath::pipeline::Encapsulation;
using datapath::pipeline::Ingress;
using datapath::pipeline::Outputs;
using model::Json;

// The datapath's counters go to the server every this many one-second ticks.
constexpr uint64_t kStatsEveryTicks = 2;

}  // namespace

Agent::Agent(const Clock& clock, AgentConfig config) : clock_(clock), config_(std::move(config)) {}

Agent::~Agent() { stop(); }

Result<std::unique_ptr<Agent>> Agent::start(const Clock& clock, AgentConfig config) {
  if (config.host_name.empty()) return Error(Errc::InvalidArgument, "the agent needs a host name");
  if (config.tunnel_ip.family == 0) {
    return Error(Errc::InvalidArgument, "the agent needs a tunnel address (--tunnel-ip)");
  }
  std::unique_ptr<Agent> a(new Agent(clock, std::move(config)));
  a->wake_fd_ = Fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (a->wake_fd_.get() < 0)
    return Error(Errc::Internal, std::string("eventfd: ") + std::strerror(errno));
  const auto& c = a->config_;
  uint16_t first = c.encapsulation == Encapsulation::Geneve ? c.geneve_port : c.vxlan_port;
  uint16_t second = c.encapsulation == Encapsulation::Geneve ? c.vxlan_port : c.geneve_port;
  for (uint16_t port : {first, second}) {
    auto t = TunnelSocket::open(c.tunnel_ip, port);
    if (!t) return std::move(t).error();
    a->tunnels_.push_back(std::move(*t));
  }
  for (const auto& [physnet, interface] : c.uplinks) {
    auto u = FrameSocket::open(interface, c.rx_ring);
    if (!u) return std::move(u).error();
    a->uplinks_.push_back(std::move(*u));
  }
  pb::Hello hello;
  hello.set_host_name(c.host_name);
  hello.set_tunnel_ip(std::string(reinterpret_cast<const char*>(c.tunnel_ip.bytes.data()),
                                  c.tunnel_ip.family == 4 ? 4 : 16));
  hello.add_encapsulations("geneve");
  hello.add_encapsulations("vxlan");
  hello.set_gateway_capable(c.gateway_capable);
  for (const auto& [physnet, interface] : c.uplinks) hello.add_physical_networks(physnet);
  hello.set_agent_version("canopy-agent 0.1.0");
  Agent* self = a.get();
  a->southbound_ = std::make_unique<SouthboundClient>(
      SouthboundClient::Options{
          .server = c.server, .hello = hello, .credentials = c.server_credentials},
      [self](const HostView& v, uint64_t version) { return self->onView(v, version); });
  // Bindings of an earlier run come back (and are reported up again).
  if (!c.bindings_file.empty()) {
    std::ifstream in(c.bindings_file);
    std::stringstream text;
    text << in.rdbuf();
    if (auto saved = model::parseJson(text.str()); saved && saved->is_object()) {
      for (const auto& [interface, saved_binding] : saved->items()) {
        // A port id, or {"port_id", "tap", "netns"} for an owned tap.
        std::string port_id;
        Attach attach;
        if (saved_binding.is_string()) {
          port_id = saved_binding.get<std::string>();
        } else if (saved_binding.is_object()) {
          port_id = model::stringAt(saved_binding, "port_id");
          attach.tap = saved_binding.value("tap", false);
          attach.netns = model::stringAt(saved_binding, "netns");
        }
        if (auto r = a->bind(interface, port_id, attach); !r) {
          spdlog::warn("agent: saved binding {}: {}", interface, r.error().message());
        }
      }
    }
  }
  a->worker_ = std::thread([self] { self->workerLoop(); });
  a->southbound_->start();
  return a;
}

void Agent::stop() {
  if (stopping_.exchange(true)) return;
  if (southbound_) southbound_->stop();
  wake();
  if (worker_.joinable()) worker_.join();
}

void Agent::wake() {
  uint64_t one = 1;
  if (wake_fd_.get() >= 0) (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

Result<void> Agent::onView(const HostView& view, uint64_t version) {
  auto built = view.builder().build(version);
  if (!built) return std::move(built).error();
  {
    MutexLock lock(mu_);
    pending_topology_ = *built;
    port_keys_.clear();
    for (const auto& [key, p] : view.ports) port_keys_[p.id] = key;
    view_version_ = version;
    bindings_changed_ = true;  // keys may have arrived for bound ports
  }
  wake();
  spdlog::debug("agent: view version {} ({} objects)", version, view.objects());
  return ok();
}

Result<void> Agent::bind(const std::string& interface, const std::string& port_id,
                         const Attach& attach) {
  if (interface.empty() || interface.size() >= IFNAMSIZ) {
    return Error(Errc::InvalidArgument, "interface name '" + interface + "' is not valid");
  }
  if (port_id.empty()) return Error(Errc::InvalidArgument, "a port id is needed");
  if (!attach.netns.empty() && !attach.tap) {
    return Error(Errc::InvalidArgument, "a network namespace is only for a tap");
  }
  std::unique_ptr<FrameSocket> tap;
  {
    MutexLock lock(mu_);
    for (const auto& [i, b] : bindings_) {
      if (b.port_id == port_id && i != interface) {
        return Error(Errc::Conflict, "port " + port_id + " is already bound to " + i);
      }
    }
    if (auto old = bindings_.find(interface);
        old != bindings_.end() && old->second.attach.tap != attach.tap) {
      return Error(Errc::Conflict, interface + " is bound as " +
                                       (old->second.attach.tap ? "a tap" : "an interface") +
                                       "; unbind it first");
    }
  }
  if (attach.tap) {
    // Created (or attached to) now, so that a failure is the caller's answer.
    auto s = FrameSocket::openTap(interface, attach.netns);
    if (!s) return std::move(s).error();
    tap = std::make_unique<FrameSocket>(std::move(*s));
  } else if (if_nametoindex(interface.c_str()) == 0) {
    return Error(Errc::NotFound, "interface " + interface + " does not exist");
  }
  {
    MutexLock lock(mu_);
    bindings_[interface] = {port_id, attach};
    if (tap != nullptr) opened_taps_[interface] = std::move(tap);
    bindings_changed_ = true;
    saveBindings();
  }
  southbound_->reportPort(port_id, true);
  wake();
  spdlog::info("agent: {} bound to port {}", interface, port_id);
  return ok();
}

Result<void> Agent::unbind(const std::string& interface) {
  std::string port_id;
  {
    MutexLock lock(mu_);
    auto it = bindings_.find(interface);
    if (it == bindings_.end()) return Error(Errc::NotFound, interface + " is not bound");
    port_id = it->second.port_id;
    if (it->second.attach.tap) {
      removed_taps_.push_back(interface);
      opened_taps_.erase(interface);
    }
    bindings_.erase(it);
    bindings_changed_ = true;
    saveBindings();
  }
  southbound_->reportPort(port_id, false);
  wake();
  return ok();
}

void Agent::saveBindings() const {
  if (config_.bindings_file.empty()) return;
  Json out = Json::object();
  for (const auto& [i, b] : bindings_) {
    if (b.attach.tap) {
      out[i] = {{"port_id", b.port_id}, {"tap", true}, {"netns", b.attach.netns}};
    } else {
      out[i] = b.port_id;
    }
  }
  // Written whole, then renamed: a crash leaves the old file or the new.
  std::string tmp = config_.bindings_file + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out.dump(2) << "\n";
    if (!f) {
      spdlog::warn("agent: cannot write {}", tmp);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, config_.bindings_file, ec);
  if (ec) spdlog::warn("agent: cannot write {}: {}", config_.bindings_file, ec.message());
}

Json Agent::bindings() const {
  MutexLock lock(mu_);
  Json out = Json::array();
  for (const auto& [i, b] : bindings_) {
    auto k = port_keys_.find(b.port_id);
    Json entry = {{"interface", i},
                  {"port_id", b.port_id},
                  {"in_view", k != port_keys_.end()},
                  // A tap the agent owns exists while it is bound (wherever it is).
                  {"exists", b.attach.tap || if_nametoindex(i.c_str()) != 0}};
    if (b.attach.tap) {
      entry["tap"] = true;
      if (!b.attach.netns.empty()) entry["netns"] = b.attach.netns;
    }
    out.push_back(std::move(entry));
  }
  return out;
}

Json Agent::status() const {
  Json out = {{"host", config_.host_name},
              {"tunnel_ip", config_.tunnel_ip.toString()},
              {"server", config_.server},
              {"connected", southbound_->connected()},
              {"view_version", southbound_->appliedVersion()}};
  out["bindings"] = bindings();
  MutexLock lock(mu_);
  out["datapath"] = worker_status_;
  return out;
}

void Agent::applyPending() {
  std::shared_ptr<const datapath::topology::Topology> topology;
  std::map<std::string, Binding> bindings;
  std::map<std::string, uint32_t> keys;
  std::map<std::string, std::unique_ptr<FrameSocket>> taps;
  std::vector<std::string> removed;
  bool rebind = false;
  {
    MutexLock lock(mu_);
    topology = std::move(pending_topology_);
    pending_topology_ = nullptr;
    if (bindings_changed_) {
      bindings = bindings_;
      keys = port_keys_;
      taps = std::move(opened_taps_);
      opened_taps_.clear();
      removed = std::move(removed_taps_);
      removed_taps_.clear();
      rebind = true;
      bindings_changed_ = false;
    }
  }
  if (topology != nullptr) {
    // The datapath learns its host key from the first view.
    const datapath::topology::Host* self = nullptr;
    for (const auto& [k, h] : topology->hosts()) {
      if (h.name == config_.host_name) self = &h;
    }
    uint32_t host_key = self != nullptr ? self->key : 0;
    if (datapath_ == nullptr || host_key != datapath_config_host_) {
      datapath::pipeline::Config c;
      c.host.host = host_key;
      for (const auto& [physnet, interface] : config_.uplinks) c.host.uplinks.push_back(physnet);
      c.encapsulation = config_.encapsulation;
      datapath_ = std::make_unique<Datapath>(clock_, std::move(c));
      datapath_config_host_ = host_key;
    }
    announce(*topology, host_key);
    datapath_->setTopology(std::move(topology));
  }
  if (!rebind) return;
  for (const auto& interface : removed) {
    // An owned tap unbound (and not bound again meanwhile) goes away.
    auto it = ports_.find(interface);
    if (it == ports_.end() || it->second.socket == nullptr || !it->second.socket->tap()) continue;
    if (bindings.count(interface) && bindings.at(interface).attach.tap) continue;
    if (auto r = it->second.socket->removeTap(); !r) {
      spdlog::warn("agent: {}: {}", interface, r.error().message());
    }
    it->second.socket.reset();
  }
  for (auto it = ports_.begin(); it != ports_.end();) {
    auto b = bindings.find(it->first);
    if (b == bindings.end() || b->second.port_id != it->second.port_id) {
      it = ports_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [interface, binding] : bindings) {
    Bound& b = ports_[interface];
    b.port_id = binding.port_id;
    auto k = keys.find(binding.port_id);
    b.key = k == keys.end() ? 0 : k->second;
    if (auto t = taps.find(interface); t != taps.end()) {
      b.socket = std::move(t->second);  // bound again: the new file
      b.tap_gone = false;
    }
    if (b.socket == nullptr && !b.tap_gone) {
      auto s = binding.attach.tap ? FrameSocket::openTap(interface, binding.attach.netns)
                                  : FrameSocket::open(interface, config_.rx_ring);
      if (!s) {
        spdlog::warn("agent: {}: {}", interface, s.error().message());
        continue;
      }
      b.socket = std::make_unique<FrameSocket>(std::move(*s));
    }
  }
  by_key_.clear();
  for (auto& [interface, b] : ports_) {
    if (b.key != 0 && b.socket != nullptr) by_key_[b.key] = &b;
  }
}

void Agent::announce(const datapath::topology::Topology& t, uint32_t host_key) {
  using datapath::topology::IpAddr;
  struct Served {
    IpAddr ip;
    datapath::packet::MacAddress mac;
    const datapath::topology::Switch* sw;
  };
  std::vector<Served> served;
  for (const auto& f : t.floatingIps()) {
    const auto* port = t.findPort(f.port_key);
    const auto* router = t.findRouter(f.router_key);
    if (port == nullptr || port->host != host_key || router == nullptr || !router->gateway)
      continue;
    served.push_back({f.external, port->mac, t.findSwitch(router->gateway->switch_key)});
  }
  for (const auto& [key, r] : t.routers()) {
    if (!r.gateway || r.gateway->host != host_key) continue;
    for (const auto& ip : r.gateway->ips) {
      served.push_back({ip, r.gateway->mac, t.findSwitch(r.gateway->switch_key)});
    }
  }
  std::set<std::pair<IpAddr, datapath::packet::MacAddress>> now;
  for (const auto& s : served) {
    if (s.sw == nullptr || s.ip.family != 4) continue;
    now.insert({s.ip, s.mac});
    if (announced_.count({s.ip, s.mac})) continue;
    for (size_t u = 0; u < config_.uplinks.size(); ++u) {
      if (config_.uplinks[u].first != s.sw->physical_network) continue;
      auto a = datapath::packet::Ipv4Address::of(s.ip.bytes[0], s.ip.bytes[1], s.ip.bytes[2],
                                                 s.ip.bytes[3]);
      datapath::packet::PacketBuilder b;
      b.eth(s.mac, datapath::packet::MacAddress::broadcast());
      if (s.sw->vlan != 0) b.vlan(s.sw->vlan);
      auto frame = b.arp(1, s.mac, a, datapath::packet::MacAddress{}, a).build();
      uplinks_[u].send(frame);
      spdlog::info("agent: announced {} at {} on {}", s.ip.toString(), s.mac.toString(),
                   config_.uplinks[u].second);
    }
  }
  announced_ = std::move(now);
}

void Agent::checkInterfaces() {
  std::vector<std::string> gone;
  for (const auto& [interface, b] : ports_) {
    if (b.socket == nullptr) continue;
    // An owned tap is looked at through its file: its interface is wherever
    // the VM's namespace is, and goes with it.
    if (b.socket->tap() ? !b.socket->attached() : if_nametoindex(interface.c_str()) == 0) {
      gone.push_back(interface);
    }
  }
  for (const auto& interface : gone) {
    spdlog::warn("agent: interface {} disappeared; port {} is down", interface,
                 ports_[interface].port_id);
    southbound_->reportPort(ports_[interface].port_id, false);
    Bound& b = ports_[interface];
    b.tap_gone = b.socket->tap();
    b.socket.reset();
    {
      MutexLock lock(mu_);
      bindings_changed_ = true;  // reopened if it comes back
    }
  }
}

void Agent::forward(Outputs& out, std::span<const Offload> offloads) {
  // Complete TCP segments for one port (a tunnel brings them one by one)
  // are joined into super-frames on their way, as GRO would: one send and
  // one pass through the guest's stack instead of dozens.
  FrameSocket* run_socket = nullptr;
  Bound* run_bound = nullptr;
  auto flush = [&] {
    if (coalescer_.empty()) return;
    Offload joined;
    auto frame = coalescer_.finish(joined);
    if (coalescer_.segments() > 1) ++coalesced_;
    sendFrame(*run_socket, run_bound, frame, joined);
    flushSocket(*run_socket, run_bound);  // before the coalescer's bytes are reused
    coalescer_.clear();
  };
  for (const auto& item : out.items()) {
    auto bytes = out.mutableBytes(item);
    // A forwarded frame leaves with its input's request, fixed up for its
    // final headers; what the datapath made is complete as it is.
    Offload offload{};
    if (!item.generated && item.input < offloads.size()) offload = offloads[item.input];
    FrameSocket* socket = nullptr;
    Bound* bound = nullptr;
    if (item.kind == Outputs::Kind::Port) {
      if (auto it = by_key_.find(item.port); it != by_key_.end() && it->second->socket) {
        bound = it->second;
        socket = bound->socket.get();
      }
    } else if (item.kind == Outputs::Kind::Uplink && item.uplink < uplinks_.size()) {
      socket = &uplinks_[item.uplink];
    }
    if (item.kind == Outputs::Kind::Port && socket != nullptr && offload.none()) {
      if (run_socket == socket && coalescer_.add(bytes)) continue;
      flush();
      if (coalescer_.add(bytes)) {
        run_socket = socket;
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
    if (socket == nullptr) continue;
    if (!offload.none()) {
      // NAT, a TTL or a VLAN tag may have changed what the partial
      // checksum covers and where it lies: rewritten from the final headers.
      if (auto why = datapath::packet::setPartialChecksum(bytes, offload);
          why != DropReason::None) {
        ioDrop(why);
        continue;
      }
    }
    sendFrame(*socket, bound, bytes, offload);
  }
  flush();
  flushSends();
}

void Agent::sendFrame(FrameSocket& socket, Bound* bound, std::span<const uint8_t> frame,
                      const Offload& offload) {
  if (socket.queued() == 0) {
    sending_.emplace_back(&socket, bound);
  } else if (socket.queued() == FrameSocket::kSendBatch) {
    flushSocket(socket, bound);  // and stays among sending_
  }
  socket.queue(frame, offload);
}

void Agent::flushSocket(FrameSocket& socket, Bound* bound) {
  size_t queued = socket.queued();
  size_t sent = socket.flush();
  send_failed_ += queued - sent;
  if (bound != nullptr) bound->tx += sent;
}

void Agent::flushTunnel(TunnelSocket& tunnel) {
  size_t queued = tunnel.queued();
  if (queued != 0) send_failed_ += queued - tunnel.flush();
}

void Agent::flushSends() {
  for (auto [socket, bound] : sending_) {
    if (socket->queued() != 0) flushSocket(*socket, bound);
  }
  sending_.clear();
  for (auto& tunnel : tunnels_) flushTunnel(tunnel);
}

void Agent::sendTunnel(const Outputs::Item& item, std::span<uint8_t> bytes, Offload offload) {
  // [0] is the configured encapsulation's socket, [1] the other's.
  TunnelSocket& tunnel = tunnels_[item.encapsulation == config_.encapsulation ? 0 : 1];
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
  if (tunnel.queued() == TunnelSocket::kMaxSegmentsPerSend) flushTunnel(tunnel);
  tunnel.queue(item.remote, bytes);
}

void Agent::workerLoop() {
  Batch batch;
  Outputs out;
  std::vector<Datapath::Input> inputs;
  std::vector<Offload> offloads;  // by input, for frames from ports and uplinks
  auto last_tick = std::chrono::steady_clock::now();
  auto busy_poll_until = last_tick;
  uint64_t ticks = 0;
  while (!stopping_.load()) {
    // What to poll: wake-up, tunnels, uplinks, ports.
    std::vector<pollfd> fds;
    fds.push_back({wake_fd_.get(), POLLIN, 0});
    for (const auto& t : tunnels_) fds.push_back({t.fd(), POLLIN, 0});
    for (const auto& u : uplinks_) fds.push_back({u.fd(), POLLIN, 0});
    std::vector<Bound*> polled;
    for (auto& [interface, b] : ports_) {
      if (b.socket == nullptr) continue;
      fds.push_back({b.socket->fd(), POLLIN, 0});
      polled.push_back(&b);
    }
    bool spinning = busy_poll_until > std::chrono::steady_clock::now();
    int n = ::poll(fds.data(), fds.size(), spinning ? 0 : 200);
    if (n < 0 && errno != EINTR) {
      spdlog::error("agent: poll: {}", std::strerror(errno));
      return;
    }
    size_t at = 0;
    if (fds[at++].revents != 0) {
      uint64_t drained;
      while (::read(wake_fd_.get(), &drained, sizeof(drained)) > 0) {
      }
      applyPending();
      continue;  // the socket set may have changed
    }
    // Frames of a port or an uplink, each with its offload request:
    // kept for the way out if the datapath can carry it.
    auto add_frame = [&](size_t i, const Ingress& ingress) {
      auto frame = batch.mutableFrame(i);
      if (frame.empty()) return;  // cut short on receive
      Offload offload = batch.offload(i);
      if (auto why = datapath::packet::acceptOffload(frame, offload); why != DropReason::None) {
        ioDrop(why);
        return;
      }
      if (offload.gso()) ++super_frames_;
      inputs.push_back({ingress, frame, offload.segmentSize(), frame});
      offloads.push_back(offload);
    };
    // Tunnel datagrams, a coalesced run cut back into its datagrams. As GRO
    // would, consecutive TCP segments of one flow behind the same tunnel
    // header are joined first into one super-frame (behind that header),
    // which passes the datapath once instead of once per segment.
    auto add_datagrams = [&](size_t i, const Ingress& ingress, Encapsulation e) {
      auto buffer = batch.mutableFrame(i);
      size_t size = batch.segmentSize(i);
      if (size == 0) size = buffer.size();
      datapath::packet::TcpCoalescer* joining = nullptr;
      std::span<uint8_t> first;  // the run's first datagram
      auto end_run = [&] {
        if (joining == nullptr) return;
        if (joining->segments() > 1) {
          Offload o;
          auto joined = joining->finish(o);
          inputs.push_back({ingress, joined, o.gso_size, joined});
          offloads.push_back(o);
          ++joined_;
        } else {
          inputs.push_back({ingress, first, 0, first});
          offloads.push_back({});
        }
        joining = nullptr;
      };
      size_t header_length = 0;  // the run's tunnel header
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
        bool joinable = why == DropReason::None && !tunnel.control && size < buffer.size();
        auto header = datagram.first(joinable ? tunnel.inner_offset : 0);
        auto inner = datagram.subspan(header.size());
        end_run();
        if (joinable) {
          if (rx_runs_used_ == rx_runs_.size()) {
            rx_runs_.push_back(std::make_unique<datapath::packet::TcpCoalescer>());
          }
          auto& run = *rx_runs_[rx_runs_used_];
          run.clear();
          if (run.add(inner, header)) {
            ++rx_runs_used_;
            joining = &run;
            first = datagram;
            header_length = header.size();
            continue;
          }
        }
        inputs.push_back({ingress, datagram, 0, datagram});
        offloads.push_back({});
      }
      end_run();
    };
    bool received = false;
    auto run = [&](auto& socket, auto add_inputs) {
      while (socket.receive(batch) > 0) {
        if (datapath_ == nullptr) continue;  // no view yet
        inputs.clear();
        offloads.clear();
        rx_runs_used_ = 0;
        for (size_t i = 0; i < batch.size(); ++i) add_inputs(i);
        out.clear();
        datapath_->processBatch(inputs, out);
        forward(out, offloads);
        socket.release();
        received = true;
        if (batch.size() < Batch::kFrames) break;
      }
    };
    for (size_t t = 0; t < tunnels_.size(); ++t, ++at) {
      if (fds[at].revents == 0) continue;
      Encapsulation e = (t == 0) == (config_.encapsulation == Encapsulation::Geneve)
                            ? Encapsulation::Geneve
                            : Encapsulation::Vxlan;
      run(tunnels_[t],
          [&](size_t i) { add_datagrams(i, Ingress::fromTunnel(e, batch.source(i)), e); });
    }
    for (size_t u = 0; u < uplinks_.size(); ++u, ++at) {
      if (fds[at].revents == 0) continue;
      run(uplinks_[u],
          [&](size_t i) { add_frame(i, Ingress::fromUplink(static_cast<uint32_t>(u))); });
    }
    bool port_error = false;  // a port's device may be gone: looked at now, not in a second
    for (Bound* b : polled) {
      short revents = fds[at++].revents;
      if (revents == 0 || b->socket == nullptr) continue;
      if ((revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) port_error = true;
      uint32_t key = b->key;
      if (key == 0) {
        while (b->socket->receive(batch) > 0) {
        }  // not in the view yet: nowhere to send it
        b->socket->release();
        continue;
      }
      Bound* bound = b;
      run(*b->socket, [&, bound](size_t i) {
        if (i == 0) bound->rx += batch.size();
        add_frame(i, Ingress::fromPort(key));
      });
    }
    if (port_error) checkInterfaces();
    auto now = std::chrono::steady_clock::now();
    if (received) busy_poll_until = now + config_.busy_poll;
    if (now - last_tick >= std::chrono::seconds(1)) {
      last_tick = now;
      if (datapath_ != nullptr) datapath_->sweep();
      checkInterfaces();
      Json s = Json::object();
      if (datapath_ != nullptr) {
        const auto& c = datapath_->counters();
        Json drops = Json::object();
        for (size_t r = 1; r < datapath::kDropReasonCount; ++r) {
          if (uint64_t count = c.drops[r] + io_drops_[r]; count != 0) {
            drops[std::string(datapath::dropReasonName(static_cast<datapath::DropReason>(r)))] =
                count;
          }
        }
        const auto& cs = datapath_->cacheStats();
        s = {{"packets", c.packets},
             {"outputs", c.outputs},
             {"answered", c.answered},
             {"simulations", c.simulations},
             {"drops", drops},
             {"flow_cache",
              {{"entries", datapath_->cacheSize()},
               {"hits", cs.hits},
               {"misses", cs.misses},
               {"invalidated", cs.invalidated}}},
             {"connections", datapath_->connections().size()},
             {"offload",
              {{"super_frames", super_frames_},
               {"segmented", segmented_},
               {"joined", joined_},
               {"coalesced", coalesced_}}},
             {"send_failed", send_failed_}};
        // Frames larger than a receive slot (over 64 KiB: BIG TCP), left out.
        uint64_t truncated = 0;
        for (const auto& u : uplinks_) truncated += u.truncated();
        for (const auto& [interface, b] : ports_) {
          if (b.socket != nullptr) truncated += b.socket->truncated();
        }
        s["receive_truncated"] = truncated;
      }
      Json ports = Json::array();
      for (const auto& [interface, b] : ports_) {
        Json port_drops = Json::object();
        if (datapath_ != nullptr) {
          if (auto d = datapath_->portDrops().find(b.key); d != datapath_->portDrops().end()) {
            for (size_t r = 1; r < datapath::kDropReasonCount; ++r) {
              if (d->second[r] == 0) continue;
              port_drops[std::string(
                  datapath::dropReasonName(static_cast<datapath::DropReason>(r)))] = d->second[r];
            }
          }
        }
        ports.push_back({{"interface", interface},
                         {"port_id", b.port_id},
                         {"rx", b.rx},
                         {"tx", b.tx},
                         {"drops", std::move(port_drops)}});
      }
      s["ports"] = std::move(ports);
      if (++ticks % kStatsEveryTicks == 0 && datapath_ != nullptr) {
        pb::Stats stats;
        stats.set_packets(datapath_->counters().packets);
        stats.set_outputs(datapath_->counters().outputs);
        for (const auto& [reason, count] : s["drops"].items()) {
          (*stats.mutable_drops())[reason] = count.get<uint64_t>();
        }
        stats.set_bound_ports(static_cast<uint32_t>(ports_.size()));
        southbound_->reportStats(stats);
      }
      MutexLock lock(mu_);
      worker_status_ = std::move(s);
    }
  }
}

}  // namespace canopy::agent
