#include "agent/agent.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "agent/status.h"
#include "datapath/nat/maglev.h"
#include "datapath/packet/builder.h"
#include "model/port.h"

namespace canopy::agent {
namespace {

using datapath::pipeline::Encapsulation;
using model::Json;

// The datapath's counters go to the server every this many ticks.
constexpr uint64_t kStatsEveryTicks = 2;

// The index of the interface that has `address` (0: none).
int interfaceWith(const IpAddress& address) {
  ifaddrs* all = nullptr;
  if (::getifaddrs(&all) != 0) return 0;
  int found = 0;
  for (ifaddrs* i = all; i != nullptr && found == 0; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    const void* has = nullptr;
    if (i->ifa_addr->sa_family == AF_INET && address.family == 4) {
      has = &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
    } else if (i->ifa_addr->sa_family == AF_INET6 && address.family == 6) {
      has = &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
    }
    if (has != nullptr &&
        std::memcmp(has, address.bytes.data(), address.family == 6 ? 16 : 4) == 0) {
      found = static_cast<int>(::if_nametoindex(i->ifa_name));
    }
  }
  ::freeifaddrs(all);
  return found;
}

}  // namespace

std::vector<int> Agent::serveUplinks(
    const std::vector<std::vector<std::unique_ptr<PortIo>>>& by_worker) {
  std::vector<int> served(config_.uplinks.size(), 0);
  for (size_t u = 0; u < config_.uplinks.size(); ++u) {
    const auto& interface = config_.uplinks[u].second;
    const int ifindex = by_worker.empty() ? 0 : by_worker[0][u]->interfaceIndex();
    if (ifindex <= 0) continue;
    if (fast_path_ == nullptr) {
      fastpath::FastPath::removeLeftover(ifindex);  // an earlier agent's
      continue;
    }
    // Every worker's socket leaves the fast path's packets alone before
    // the program takes any (no flow is installed for it before then).
    bool filtered = true;
    for (const auto& uplinks : by_worker) {
      filtered = uplinks[u]->filterWith(fast_path_->socketFilter()) && filtered;
    }
    if (!filtered) {
      spdlog::warn(
          "agent: uplink {}: the fast path's socket filter: {}; its flows stay in the "
          "agent",
          interface, std::strerror(errno));
      fastpath::FastPath::removeLeftover(ifindex);
      continue;
    }
    if (auto r = fast_path_->attach(ifindex); !r) {
      spdlog::warn("agent: uplink {}: {}; its flows stay in the agent", interface,
                   r.error().message());
      continue;
    }
    served[u] = ifindex;
  }
  return served;
}

Agent::Agent(const Clock& clock, AgentConfig config, IoFactory& io)
    : clock_(clock), config_(std::move(config)), io_(io) {}

Agent::~Agent() { stop(); }

Result<std::unique_ptr<Agent>> Agent::start(const Clock& clock, AgentConfig config, IoFactory* io) {
  if (config.host_name.empty()) return Error(Errc::InvalidArgument, "the agent needs a host name");
  if (config.tunnel_ip.family == 0) {
    return Error(Errc::InvalidArgument, "the agent needs a tunnel address (--tunnel-ip)");
  }
  if (config.workers < 1 || config.workers > 64) {
    return Error(Errc::InvalidArgument, "--workers must be between 1 and 64");
  }
  std::unique_ptr<IoFactory> own;
  if (io == nullptr) {
    own = socketIo({.rx_ring = config.rx_ring});
    io = own.get();
  }
  std::unique_ptr<Agent> a(new Agent(clock, std::move(config), *io));
  a->own_io_ = std::move(own);
  const auto& c = a->config_;
  KernelFlows::Tunnels fast_tunnels{.local = c.tunnel_ip,
                                    .underlay_ifindex = 0,
                                    .geneve_port = c.geneve_port,
                                    .vxlan_port = c.vxlan_port};
  if (c.fast_path) {
    if (auto fp = fastpath::FastPath::open(/*adopt=*/true); fp) {
      a->fast_path_ = std::move(*fp);
      // What an earlier agent left runs on until this one has a view.
      a->adopted_flows_ = a->fast_path_->takeAdopted();
      if (!a->adopted_flows_.empty()) {
        spdlog::info("agent: kernel fast path: adopted {} flows the last agent installed",
                     a->adopted_flows_.size());
      }
      a->keepFastPathAlive();
      // Tunnels leave by, and arrive on, the interface with the tunnel
      // address (IPv4 or IPv6).
      int underlay = interfaceWith(c.tunnel_ip);
      canopy_fp_config fc{.geneve_port = htons(c.geneve_port),
                          .vxlan_port = htons(c.vxlan_port),
                          .underlay_ifindex = static_cast<uint32_t>(underlay),
                          .alive_until_ns = 0,  // (keepAlive()'s)
                          .half_open = c.kernel_half_open,
                          .reserved = 0};
      if (auto r = a->fast_path_->configure(fc); !r) {
        spdlog::warn("agent: kernel fast path: {}", r.error().message());
      }
      if (underlay > 0 && a->fast_path_->attach(underlay, fastpath::Hook::Underlay)) {
        fast_tunnels.underlay_ifindex = underlay;
      } else {
        spdlog::warn("agent: kernel fast path: tunnels stay in the agent (no interface with {})",
                     c.tunnel_ip.toString());
      }
      spdlog::info("agent: kernel fast path on{}",
                   fast_tunnels.underlay_ifindex > 0 ? ", tunnels too" : "");
    } else {
      a->fast_path_unavailable_ = fp.error().message();
      spdlog::warn("agent: {}: running without the kernel fast path", fp.error().message());
    }
  }
  if (a->fast_path_ == nullptr) {
    // What an agent with the fast path left on the underlay goes.
    fastpath::FastPath::removeLeftover(interfaceWith(c.tunnel_ip));
  }
  // Each worker its tunnel ports ([0] the configured encapsulation's) and
  // its share of every uplink.
  uint16_t first = c.encapsulation == Encapsulation::Geneve ? c.geneve_port : c.vxlan_port;
  uint16_t second = c.encapsulation == Encapsulation::Geneve ? c.vxlan_port : c.geneve_port;
  std::vector<std::vector<std::unique_ptr<PortIo>>> uplinks(c.workers);
  for (size_t w = 0; w < c.workers; ++w) {
    for (const auto& [physnet, interface] : c.uplinks) {
      auto u = io->openInterface(interface, w, c.workers);
      if (!u) return std::move(u).error();
      uplinks[w].push_back(std::move(*u));
    }
  }
  const std::vector<int> fast_uplinks = a->serveUplinks(uplinks);
  a->templates_.setWorkers(c.workers);
  for (size_t w = 0; w < c.workers; ++w) {
    std::vector<std::unique_ptr<TunnelIo>> tunnels;
    for (uint16_t port : {first, second}) {
      auto t = io->openTunnel(c.tunnel_ip, port, w, c.workers);
      if (!t) return std::move(t).error();
      tunnels.push_back(std::move(*t));
    }
    a->workers_.push_back(
        std::make_unique<Worker>(clock,
                                 Worker::Options{.index = w,
                                                 .encapsulation = c.encapsulation,
                                                 .busy_poll = c.busy_poll,
                                                 .tick = c.tick,
                                                 .fast_path = a->fast_path_.get(),
                                                 .fast_tunnels = fast_tunnels,
                                                 .fast_uplinks = fast_uplinks,
                                                 .templates = &a->templates_,
                                                 .fast_setups = c.fast_path_setups},
                                 a->plan_, std::move(tunnels), std::move(uplinks[w])));
  }
  Agent* self = a.get();
  if (!c.server.empty()) {
    pb::Hello hello;
    hello.set_host_name(c.host_name);
    hello.set_tunnel_ip(std::string(reinterpret_cast<const char*>(c.tunnel_ip.bytes.data()),
                                    c.tunnel_ip.family == 4 ? 4 : 16));
    hello.add_encapsulations("geneve");
    hello.add_encapsulations("vxlan");
    hello.set_gateway_capable(c.gateway_capable);
    hello.set_fast_path(a->fast_path_ != nullptr);
    hello.set_availability_zone(c.availability_zone);
    for (const auto& [physnet, interface] : c.uplinks) hello.add_physical_networks(physnet);
    hello.set_agent_version("canopy-agent 0.1.0");
    a->southbound_ = std::make_unique<SouthboundClient>(
        SouthboundClient::Options{
            .server = c.server, .hello = hello, .credentials = c.server_credentials},
        [self](const HostView& v, uint64_t version) { return self->applyView(v, version); });
  }
  for (auto& w : a->workers_) w->start();
  if (c.metadata.enabled) a->metadata_ready_ = a->startMetadata();
  if (c.bfd) {
    auto bfd = BfdService::start(
        clock,
        BfdOptions{.address = c.tunnel_ip, .timing = c.bfd_timing, .state_file = c.bfd_state_file},
        [self] {
          self->full_sync_ = true;  // a standby that came back gets everything
          self->livenessChanged();
        },
        [self](std::span<const uint8_t> records) {
          std::shared_ptr<datapath::pipeline::SharedState> shared;
          {
            MutexLock lock(self->mu_);
            shared = self->shared_;
          }
          if (shared != nullptr) shared->absorbSnatReplica(records);
        });
    if (bfd) {
      a->bfd_ = std::move(*bfd);
    } else {
      spdlog::warn("agent: no BFD (gateways with standbys stay where the server put them): {}",
                   bfd.error().message());
    }
  }
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
          attach.tap = saved_binding.value("tap", false) == true;
          attach.netns = model::stringAt(saved_binding, "netns");
          attach.automatic = saved_binding.value("automatic", false) == true;
        }
        if (auto r = a->bind(interface, port_id, attach); !r) {
          spdlog::warn("agent: saved binding {}: {}", interface, r.error().message());
        }
      }
    }
  }
  // Forwarding resumes on the last view (and the connection state it
  // adopts) before the server is reached; after the bindings, so that
  // the view's ports find their saved interfaces (an owned tap among
  // them) rather than being attached afresh.
  a->restoreView();
  if (c.watch_links) {
    auto links = LinkWatcher::start([self](const std::string& name) { self->linkChanged(name); });
    if (!links) return std::move(links).error();
    a->links_ = std::move(*links);
  }
  a->control_ = std::thread([self] { self->controlLoop(); });
  if (a->bfd_ != nullptr) a->replicator_ = std::thread([self] { self->replicateLoop(); });
  if (a->southbound_) a->southbound_->start();
  return a;
}

void Agent::stop() {
  {
    MutexLock lock(stop_mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (replicator_.joinable()) replicator_.join();
  links_.reset();
  health_.reset();
  metadata_.reset();  // before the southbound it asks
  if (southbound_) southbound_->stop();
  if (control_.joinable()) control_.join();
  for (auto& w : workers_) w->stop();
  // The kernel goes on carrying the installed flows, for the next process
  // to adopt (or for fast_path_headless at most).
  for (auto& w : workers_) w->leaveFastPath();
  if (fast_path_ != nullptr) fast_path_->leave();
  bfd_.reset();  // its sessions kept for the next process
  saveView();    // the next process starts from it
}

namespace {
// How long a host's BFD session must have been up before it is trusted to
// hold a gateway again (and how long a host that comes back must be
// connected before it holds one): the holder sends it its SNAT mappings
// meanwhile.
constexpr auto kGatewayHold = std::chrono::seconds(2);
}  // namespace

std::map<uint32_t, uint32_t> Agent::electGateways(const HostView& view,
                                                  const std::map<uint32_t, uint32_t>& held) const {
  std::map<uint32_t, uint32_t> out;
  if (bfd_ == nullptr) return out;
  const uint32_t self = view.local_host;
  const SteadyTime now = clock_.now();
  const auto connected = bfd_->connectedSince();
  const bool cut_off = bfd_->cutOff();
  const bool self_qualified = connected && now - *connected >= kGatewayHold;
  for (const auto& [key, r] : view.routers) {
    if (!r.gateway || r.gateway->standbys.empty()) continue;
    std::vector<uint32_t> candidates{r.gateway->host};
    for (uint32_t h : r.gateway->standbys) {
      if (h != 0 && std::find(candidates.begin(), candidates.end(), h) == candidates.end()) {
        candidates.push_back(h);
      }
    }
    auto upSince = [&](uint32_t c) { return c == self ? connected : bfd_->upSince(c); };
    std::optional<uint32_t> holder;
    auto was = held.find(key);
    const bool holding = was != held.end() && was->second == self;
    if (holding && !cut_off && self == candidates.front()) {
      holder = self;  // the first choice, and not cut off: it keeps it
    } else if (holding && !cut_off && !self_qualified) {
      // Holding, and its sessions just started (gateway high availability
      // just turned on): it keeps it until they have been up a while.
      holder = self;
    } else if (self_qualified) {
      // The first that is up and has been for the hold time (this host
      // counts itself so), else the first up.
      for (uint32_t c : candidates) {
        auto since = upSince(c);
        if (since && now - *since >= kGatewayHold) {
          holder = c;
          break;
        }
      }
      for (uint32_t c : candidates) {
        if (!holder && upSince(c)) holder = c;
      }
    } else {
      // Just connected (or cut off): never itself; the first other that is up.
      for (uint32_t c : candidates) {
        if (!holder && c != self && upSince(c)) holder = c;
      }
    }
    if (!holder) {
      // Nobody up: the server's choice, unless that is this host, which
      // is then cut off (or just started) and holds nothing.
      holder = r.gateway->host;
      if (*holder == self) {
        holder = 0;
        for (uint32_t c : candidates) {
          if (*holder == 0 && c != self) holder = c;
        }
      }
    }
    out[key] = *holder;
  }
  return out;
}

std::map<uint32_t, uint32_t> Agent::heldNow() const {
  std::map<uint32_t, uint32_t> held;
  if (auto plan = plan_.load(); plan != nullptr && plan->topology != nullptr) {
    for (const auto& [key, r] : plan->topology->routers()) {
      if (r.gateway) held[key] = r.gateway->host;
    }
  }
  return held;
}

void Agent::livenessChanged() {
  std::shared_ptr<const HostView> view;
  uint64_t version = 0;
  std::map<uint32_t, uint32_t> elected;
  {
    MutexLock lock(mu_);
    view = latest_view_;
    version = latest_version_;
    elected = elected_;
  }
  if (view == nullptr || electGateways(*view, heldNow()) == elected) return;
  if (auto r = applyView(*view, version); !r) {
    spdlog::warn("agent: view with the gateways' new holders refused: {}", r.error().message());
  }
}

void Agent::replicateLoop() {
  auto last_full = std::chrono::steady_clock::now();
  for (;;) {
    {
      MutexLock lock(stop_mu_);
      stop_cv_.wait_for(stop_mu_, std::chrono::milliseconds(50), [&] { return stopping_; });
      if (stopping_) return;
    }
    std::shared_ptr<datapath::pipeline::SharedState> shared;
    std::vector<uint32_t> targets;
    {
      MutexLock lock(mu_);
      shared = shared_;
      targets = replica_targets_;
    }
    // Hold times pass: every host looks within this period of the moment
    // a session's hold ends, so that the one that lets a gateway go and the
    // one that takes it do so together.
    livenessChanged();
    if (shared == nullptr || targets.empty() || bfd_ == nullptr) continue;
    auto now = std::chrono::steady_clock::now();
    // Every mapping now and then (and when a standby came back); what
    // changed since, in between.
    bool full = full_sync_.exchange(false) || now - last_full >= std::chrono::seconds(5);
    std::vector<uint8_t> records = shared->takeSnatReplica();
    if (full) {
      records = shared->snatRecords();
      last_full = now;
    }
    constexpr size_t kPerDatagram = 25 * datapath::nat::SnatTable::kRecordBytes;
    for (size_t at = 0; at < records.size(); at += kPerDatagram) {
      size_t n = std::min(kPerDatagram, records.size() - at);
      bfd_->sendReplica(targets, std::span<const uint8_t>(records.data() + at, n));
    }
  }
}

std::shared_ptr<datapath::persist::StateFile> Agent::stateFileFor(uint32_t host_key) {
  if (config_.state_file.empty() || host_key == 0) return nullptr;
  if (state_file_tried_) {
    // The file is the first host key's; a host given a new key (deleted
    // and registered again) starts without one.
    if (state_file_ != nullptr) {
      spdlog::warn("agent: this host's key changed; its connection state is no longer kept");
      state_file_.reset();
    }
    return nullptr;
  }
  state_file_tried_ = true;
  datapath::conntrack::Limits conntrack;
  // Room for every table at its limit: the file is sparse, only what is
  // used takes memory.
  size_t slots = conntrack.max_connections + (1 << 18) * 2 + (1 << 16) * 2;
  auto file =
      datapath::persist::StateFile::open(config_.state_file, {.owner = host_key, .slots = slots});
  if (!file) {
    spdlog::warn("agent: connection state not kept across restarts: {}", file.error().message());
    return nullptr;
  }
  state_file_ = std::move(*file);
  return state_file_;
}

void Agent::saveView() {
  if (config_.view_file.empty()) return;
  MutexLock saving(save_mu_);
  std::shared_ptr<const HostView> view;
  uint64_t version = 0;
  {
    MutexLock lock(mu_);
    if (view_saved_ || latest_view_ == nullptr) return;
    view = latest_view_;
    version = latest_version_;
    view_saved_ = true;
  }
  pb::SavedView saved;
  saved.set_host_name(config_.host_name);
  *saved.mutable_view() = southbound::toSnapshot(*view, version);
  // Whole or not at all: a new file, then renamed over the old one.
  const std::string tmp = config_.view_file + ".new";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !saved.SerializeToOstream(&out) || !out.flush()) {
      spdlog::warn("agent: cannot save the view to {}", tmp);
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, config_.view_file, ec);
  if (ec) spdlog::warn("agent: cannot save the view to {}: {}", config_.view_file, ec.message());
}

bool Agent::restoreView() {
  if (config_.view_file.empty()) return false;
  std::ifstream in(config_.view_file, std::ios::binary);
  if (!in) return false;
  pb::SavedView saved;
  if (!saved.ParseFromIstream(&in)) {
    spdlog::warn("agent: saved view {} does not parse; waiting for the server's",
                 config_.view_file);
    return false;
  }
  if (saved.host_name() != config_.host_name) {
    spdlog::warn("agent: saved view {} is host '{}''s, not this one's; waiting for the server's",
                 config_.view_file, saved.host_name());
    return false;
  }
  HostView view;
  uint64_t version = saved.view().version();
  if (auto r = southbound::apply(view, saved.view()); !r || version == 0) {
    spdlog::warn("agent: saved view {} does not apply ({}); waiting for the server's",
                 config_.view_file, r ? "no version" : r.error().message());
    return false;
  }
  if (auto r = applyView(view, version); !r) {
    spdlog::warn("agent: saved view {} refused: {}; waiting for the server's", config_.view_file,
                 r.error().message());
    return false;
  }
  {
    MutexLock lock(mu_);
    view_saved_ = true;  // it is what the file holds
  }
  if (southbound_) southbound_->resume(view, version);
  spdlog::info("agent: forwarding on the saved view (version {}, {} objects) until the server's",
               version, view.objects());
  return true;
}

bool Agent::startMetadata() {
  const MetadataOptions& o = config_.metadata;
  metadata_handler_ = std::make_unique<MetadataHandler>(
      clock_, o,
      [this](datapath::simulator::MetadataPeer peer) -> std::optional<MetadataRequester> {
        auto plan = plan_.load();
        if (plan == nullptr || plan->topology == nullptr) return std::nullopt;
        const auto* p = plan->topology->findPort(peer.port);
        if (p == nullptr || p->host == 0 || p->host != plan->config.host.host) return std::nullopt;
        uint8_t index = 0;
        for (const auto& ip : p->ips) {
          if (ip.family != 4) continue;
          if (index++ == peer.index) return MetadataRequester{p->id, ip.toString()};
        }
        return std::nullopt;
      },
      [this](const std::string& port_id) -> Result<pb::Instance> {
        if (!southbound_) return Error(Errc::Unavailable, "no server to ask");
        return southbound_->getInstance(port_id, std::chrono::seconds(5));
      });
  auto service = MetadataService::start(o, *metadata_handler_);
  if (!service) {
    spdlog::warn("agent: no metadata service: {}", service.error().message());
    return false;
  }
  auto tap = io_.openTap(o.interface, (*service)->netnsPath());
  if (!tap) {
    spdlog::warn("agent: no metadata service: {}", tap.error().message());
    return false;
  }
  if (auto r = (*service)->configureInterface(); !r) {
    spdlog::warn("agent: no metadata service: {}", r.error().message());
    return false;
  }
  const size_t n = workers_.size();
  size_t reader = std::hash<std::string>{}(o.interface) % n;
  std::vector<std::unique_ptr<PortIo>> ios(n);
  for (size_t w = 0; w < n; ++w) {
    if (w == reader) continue;
    auto io = io_.shareTap(**tap);
    if (!io) {
      spdlog::warn("agent: no metadata service: {}", io.error().message());
      return false;
    }
    ios[w] = std::move(*io);
  }
  ios[reader] = std::move(*tap);
  for (size_t w = 0; w < n; ++w) workers_[w]->adopt(o.interface, std::move(ios[w]), w == reader);
  health_ = std::make_unique<HealthChecker>((*service)->netnsPath(),
                                            [this](const std::string& member, bool up) {
                                              if (southbound_)
                                                southbound_->reportMemberHealth(member, up);
                                            });
  metadata_ = std::move(*service);
  {
    MutexLock lock(mu_);
    publishPorts();
  }
  spdlog::info("agent: metadata service at 169.254.169.254:80 ({})",
               o.nova_url.empty() ? "answered from the ports" : "proxied to Nova at " + o.nova_url);
  return true;
}

Result<void> Agent::applyView(const HostView& view, uint64_t version) {
  MutexLock applying(apply_mu_);
  if (bfd_ != nullptr) {
    // Sessions with every other host of the view while a gateway in it
    // has standbys (the hosts that send to it see it fail; its holders see
    // each other, and whether they are cut off). Set first: a restarted
    // agent's sessions resume from its saved ones before it chooses.
    std::map<uint32_t, IpAddress> peers;
    bool ha = std::any_of(view.routers.begin(), view.routers.end(), [](const auto& r) {
      return r.second.gateway && !r.second.gateway->standbys.empty();
    });
    if (ha) {
      for (const auto& [key, h] : view.hosts) {
        if (key != view.local_host && h.tunnel_ip.family == config_.tunnel_ip.family) {
          peers[key] = h.tunnel_ip;
        }
      }
    }
    bfd_->setPeers(peers);
  }
  // Gateways with standby hosts are held where BFD says.
  std::map<uint32_t, uint32_t> elected = electGateways(view, heldNow());
  const HostView* source = &view;
  HostView held;
  if (!elected.empty()) {
    held = view;
    for (const auto& [router, holder] : elected) {
      auto r = held.routers.find(router);
      if (r != held.routers.end() && r->second.gateway) r->second.gateway->host = holder;
    }
    source = &held;
  }
  auto built = source->builder().build(version);
  if (!built) return std::move(built).error();
  std::shared_ptr<const datapath::topology::Topology> topology = *built;
  std::vector<std::string> arrived;  // bound ports that are newly this host's
  uint32_t here = 0;                 // this host's key
  {
    MutexLock lock(mu_);
    // The datapaths learn the host's key from the view; a new key (the
    // first view) means new datapaths around a new shared state.
    uint32_t host_key = 0;
    for (const auto& [k, h] : topology->hosts()) {
      if (h.name == config_.host_name) host_key = k;
    }
    datapath::pipeline::Config c;
    c.host.host = host_key;
    for (const auto& [physnet, interface] : config_.uplinks) c.host.uplinks.push_back(physnet);
    c.encapsulation = config_.encapsulation;
    c.host.metadata = metadata_ready_;
    c.security_group_log = config_.log_limits;
    c.slow_path = config_.slow_path;
    c.offer_flows = fast_path_ != nullptr;
    here = host_key;
    if (shared_ == nullptr || host_key != host_key_) {
      shared_ = std::make_shared<datapath::pipeline::SharedState>(clock_, c, workers_.size(),
                                                                  stateFileFor(host_key));
      host_key_ = host_key;
      if (const auto* file = shared_->stateFile(); file != nullptr) {
        const auto& a = shared_->adopted();
        spdlog::info(
            "agent: state file {}: adopted {} connections, {} SNAT mappings, {} load-balanced "
            "connections, {} local-IP translations, {} zones, {} neighbours ({} records not read)",
            file->path(), a.connections, a.snat, a.lb, a.local_ip, a.zones, a.neighbors,
            a.unreadable);
      }
    }
    latest_view_ = std::make_shared<const HostView>(view);
    latest_version_ = version;
    view_saved_ = false;
    for (const auto& [router, holder] : elected) {
      if (auto was = elected_.find(router); was == elected_.end() || was->second != holder) {
        spdlog::info("agent: router {}'s gateway is held by host {}{}", router, holder,
                     holder == host_key ? " (this one)" : "");
      }
    }
    elected_ = elected;
    // The standbys of the gateways held here get their SNAT mappings.
    std::vector<uint32_t> targets;
    for (const auto& [key, r] : view.routers) {
      auto e = elected.find(key);
      if (!r.gateway || e == elected.end() || e->second != host_key) continue;
      for (uint32_t h : std::vector<uint32_t>{r.gateway->host}) {
        if (h != host_key) targets.push_back(h);
      }
      for (uint32_t h : r.gateway->standbys) {
        if (h != host_key) targets.push_back(h);
      }
    }
    std::sort(targets.begin(), targets.end());
    targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
    if (targets != replica_targets_) full_sync_ = true;
    replica_targets_ = targets;
    shared_->replicateSnat(!targets.empty());
    plan_.store(std::make_shared<const WorkerPlan>(WorkerPlan{
        .generation = ++plan_generation_, .topology = topology, .shared = shared_, .config = c}));
    port_keys_.clear();
    for (const auto& [key, p] : view.ports) port_keys_[p.id] = key;
    // Ports bound here: their taps are attached when they appear; a port
    // that newly arrives here (a migration's target) while its interface
    // is bound already is up again.
    std::map<std::string, std::string> expected;
    port_hosts_.clear();
    for (const auto& [key, p] : view.ports) {
      auto h = topology->hosts().find(p.host);
      if (h == topology->hosts().end()) continue;
      port_hosts_[p.id] = h->second.name;
      if (p.host == host_key) expected[tapNameOf(p.id)] = p.id;
    }
    for (const auto& [interface, b] : bindings_) {
      bool here_now =
          port_hosts_.count(b.port_id) != 0 && port_hosts_[b.port_id] == config_.host_name;
      bool here_before = false;
      for (const auto& [i, port] : expected_) here_before = here_before || port == b.port_id;
      if (here_now && !here_before && b.open) arrived.push_back(b.port_id);
    }
    expected_ = std::move(expected);
    view_version_ = version;
    publishPorts();  // keys may have arrived for bound ports
    announce(*topology, host_key);
  }
  for (auto& w : workers_) w->wake();
  if (health_ != nullptr) health_->setChecks(healthChecksOf(*topology, here));

  spdlog::debug("agent: view version {} ({} objects)", version, view.objects());
  if (southbound_) {
    for (const auto& port : arrived) southbound_->reportPort(port, true);
  }
  autoBind();
  return ok();
}

namespace {

// The metering labels a plan's topology has, by their ids' hashes (as the
// datapath counts them).
std::map<uint64_t, std::string> meterIds(const std::shared_ptr<const WorkerPlan>& plan) {
  std::map<uint64_t, std::string> ids;
  if (plan == nullptr || plan->topology == nullptr) return ids;
  for (const auto& [key, r] : plan->topology->routers()) {
    for (const auto& m : r.meters) ids[datapath::nat::stableHash(m.id)] = m.id;
  }
  return ids;
}

}  // namespace

std::string tapNameOf(const std::string& port_id) { return "tap" + port_id.substr(0, 11); }

std::vector<HealthCheck> healthChecksOf(const datapath::topology::Topology& t, uint32_t host) {
  std::vector<HealthCheck> checks;
  std::set<std::string> seen;
  for (const auto& [key, vip] : t.ports()) {
    for (const auto& l : vip.listeners) {
      if (!l.monitor) continue;
      for (const auto& m : l.members) {
        const auto* p = t.findPort(m.port_key);
        if (p == nullptr || p->host != host || host == 0 || m.address.family != 4 ||
            !seen.insert(m.id).second) {
          continue;
        }
        // Its port's address as the metadata namespace names it.
        uint8_t index = 0;
        std::optional<datapath::packet::Ipv4Address> target;
        for (const auto& ip : p->ips) {
          if (ip.family != 4) continue;
          if (ip == m.address) target = datapath::simulator::metadataAddressOf({p->key, index});
          ++index;
        }
        if (!target) continue;
        checks.push_back(
            {.member_id = m.id, .target = *target, .port = m.port, .monitor = *l.monitor});
      }
    }
  }
  return checks;
}

void Agent::linkChanged(const std::string& interface) {
  {
    MutexLock lock(mu_);
    // Only a tap this host waits for, or one it has bound, matters.
    if (!interface.empty() && expected_.count(interface) == 0 && bindings_.count(interface) == 0) {
      return;
    }
  }
  {
    MutexLock lock(stop_mu_);
    links_changed_ = true;
  }
  stop_cv_.notify_all();
}

void Agent::autoBind() {
  std::vector<std::pair<std::string, std::string>> to_bind;    // interface, port
  std::vector<std::pair<std::string, std::string>> to_unbind;  // interface, port
  {
    MutexLock lock(mu_);
    std::set<std::string> bound_ports;
    for (const auto& [i, b] : bindings_) bound_ports.insert(b.port_id);
    for (const auto& [interface, port] : expected_) {
      // Bound already, by hand under this name or another: left as it is.
      if (bindings_.count(interface) != 0 || bound_ports.count(port) != 0) continue;
      if (io_.exists(interface)) to_bind.emplace_back(interface, port);
    }
    for (const auto& [interface, b] : bindings_) {
      auto e = expected_.find(interface);
      if (b.attach.automatic && (e == expected_.end() || e->second != b.port_id)) {
        to_unbind.emplace_back(interface, b.port_id);
      }
    }
  }
  for (const auto& [interface, port] : to_unbind) {
    spdlog::info("agent: {}: its port left this host", interface);
    if (auto r = unbind(interface); !r) spdlog::warn("agent: {}", r.error().message());
    // The port's own bridge, which os-vif made for it and leaves behind.
    if (std::string bridge = model::bridgeNameOf(port); io_.exists(bridge)) {
      if (auto r = io_.removeBridge(bridge); !r) spdlog::warn("agent: {}", r.error().message());
    }
  }
  for (const auto& [interface, port] : to_bind) {
    if (auto r = bind(interface, port, Attach{.automatic = true}); !r) {
      spdlog::warn("agent: {}: {}", interface, r.error().message());
    }
  }
}

bool Agent::openFor(const std::string& interface, Binding& b, std::unique_ptr<PortIo> tap) {
  const size_t n = workers_.size();
  std::vector<std::unique_ptr<PortIo>> ios(n);
  // A tap is read by one worker (chosen by its name) and written by all.
  size_t reader = std::hash<std::string>{}(interface) % n;
  if (b.attach.tap && tap == nullptr) return false;  // made again only by a bind
  for (size_t w = 0; w < n; ++w) {
    if (b.attach.tap && w == reader) continue;  // the tap itself, below
    auto io = b.attach.tap ? io_.shareTap(*tap) : io_.openInterface(interface, w, n);
    if (!io) {
      spdlog::warn("agent: {}: {}", interface, io.error().message());
      return false;
    }
    ios[w] = std::move(*io);
  }
  if (b.attach.tap) ios[reader] = std::move(tap);
  for (size_t w = 0; w < n; ++w) {
    workers_[w]->adopt(interface, std::move(ios[w]), !b.attach.tap || w == reader);
  }
  b.open = true;
  b.tap_gone = false;
  return true;
}

void Agent::closeFor(const std::string& interface, bool remove_tap) {
  for (auto& w : workers_) w->drop(interface, remove_tap);
}

void Agent::publishPorts() {
  std::map<std::string, PortBinding> ports;
  for (const auto& [interface, b] : bindings_) {
    auto k = port_keys_.find(b.port_id);
    ports[interface] = {b.port_id, k == port_keys_.end() ? 0 : k->second};
  }
  if (metadata_ != nullptr) ports[config_.metadata.interface] = {.metadata = true};
  for (auto& w : workers_) w->setPorts(ports);
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
  {
    MutexLock lock(mu_);
    for (const auto& [i, b] : bindings_) {
      if (b.port_id == port_id && i != interface) {
        return Error(Errc::Conflict, "port " + port_id + " is already bound to " + i);
      }
    }
    if (auto h = port_hosts_.find(port_id);
        h != port_hosts_.end() && h->second != config_.host_name) {
      return Error(Errc::Conflict, "port " + port_id + " is bound to host " + h->second +
                                       " (its binding:host_id): its traffic would not come "
                                       "here; bind it there, or clear its binding:host_id first");
    }
    if (auto old = bindings_.find(interface);
        old != bindings_.end() && old->second.attach.tap != attach.tap) {
      return Error(Errc::Conflict, interface + " is bound as " +
                                       (old->second.attach.tap ? "a tap" : "an interface") +
                                       "; unbind it first");
    }
  }
  std::unique_ptr<PortIo> tap;
  if (attach.tap) {
    // Created (or attached to) now, so that a failure is the caller's answer.
    auto t = io_.openTap(interface, attach.netns);
    if (!t) return std::move(t).error();
    tap = std::move(*t);
  } else if (!io_.exists(interface)) {
    return Error(Errc::NotFound, "interface " + interface + " does not exist");
  }
  {
    MutexLock lock(mu_);
    Binding& b = bindings_[interface];
    bool same = b.port_id == port_id && b.open;
    b.port_id = port_id;
    b.attach = attach;
    if (!same || tap != nullptr) {
      if (b.open) closeFor(interface, false);
      b.open = false;
      openFor(interface, b, std::move(tap));  // or again at the next tick
    }
    publishPorts();
    saveBindings();
  }
  if (southbound_) southbound_->reportPort(port_id, true);
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
    // An owned tap goes with its binding.
    closeFor(interface, it->second.attach.tap);
    bindings_.erase(it);
    publishPorts();
    saveBindings();
  }
  if (southbound_) southbound_->reportPort(port_id, false);
  return ok();
}

void Agent::saveBindings() const {
  if (config_.bindings_file.empty()) return;
  Json out = Json::object();
  for (const auto& [i, b] : bindings_) {
    if (b.attach.tap) {
      out[i] = {{"port_id", b.port_id}, {"tap", true}, {"netns", b.attach.netns}};
    } else if (b.attach.automatic) {
      out[i] = {{"port_id", b.port_id}, {"automatic", true}};
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
                  {"exists", b.attach.tap || io_.exists(i)},
                  // Its workers have its I/O (what they forward through).
                  {"attached", b.open}};
    if (b.attach.tap) {
      entry["tap"] = true;
      if (!b.attach.netns.empty()) entry["netns"] = b.attach.netns;
    }
    if (b.attach.automatic) entry["automatic"] = true;
    out.push_back(std::move(entry));
  }
  return out;
}

Json Agent::status() const {
  std::vector<WorkerStats> stats;
  for (const auto& w : workers_) stats.push_back(w->stats());
  size_t connections = 0;
  uint64_t logged = 0, suppressed = 0;
  Json state = nullptr;
  uint32_t host_key = 0;
  {
    MutexLock lock(mu_);
    host_key = host_key_;
    if (shared_ != nullptr) {
      connections = shared_->conntrack().size();
      logged = shared_->securityGroupLogWritten();
      suppressed = shared_->securityGroupLogSuppressed();
      if (const auto* file = shared_->stateFile(); file != nullptr) {
        const auto& a = shared_->adopted();
        state = {{"file", file->path()},
                 {"records", file->used()},
                 {"capacity", file->capacity()},
                 {"full", file->full()},
                 {"adopted",
                  {{"connections", a.connections},
                   {"snat", a.snat},
                   {"load_balancer", a.lb},
                   {"local_ip", a.local_ip},
                   {"zones", a.zones},
                   {"neighbors", a.neighbors},
                   {"unreadable", a.unreadable}}}};
        if (!file->setAside().empty()) state["set_aside"] = file->setAside();
      }
    }
  }
  Json out = {{"host", config_.host_name},
              {"tunnel_ip", config_.tunnel_ip.toString()},
              {"server", southbound_ != nullptr ? southbound_->server() : config_.server},
              {"connected", southbound_ != nullptr && southbound_->connected()},
              {"view_version", southbound_ != nullptr ? southbound_->appliedVersion() : 0},
              {"host_key", host_key},
              {"workers", workers_.size()}};
  out["bindings"] = bindings();
  out["datapath"] = renderDatapathStatus(sumStats(stats), connections, meterIds(plan_.load()));
  out["datapath"]["security_group_log"] = {
      {"file", config_.security_group_log}, {"written", logged}, {"suppressed", suppressed}};
  out["datapath"]["state"] = state;
  Json fast = {{"state", fast_path_ != nullptr ? "on" : config_.fast_path ? "unavailable" : "off"}};
  if (!fast_path_unavailable_.empty()) fast["reason"] = fast_path_unavailable_;
  if (fast_path_ != nullptr) {
    size_t flows = 0;
    uint64_t installs = 0;
    for (const auto& s : stats) {
      flows += s.kernel_flows;
      installs += s.kernel_installs;
    }
    auto k = fast_path_->counters();
    fast["flows"] = flows;
    fast["installed"] = installs;
    fast["hits"] = k.hits;
    fast["misses"] = k.misses;
    fast["to_agent"] = k.slow + k.not_ip + k.malformed;
    fast["redirect_failed"] = k.redirect_failed;
    fast["tunnel_in"] = k.tunnel_in;
    fast["no_route"] = k.no_route;
    fast["handed_back"] = k.handed_back;
    fast["setups"] = config_.fast_path_setups ? "kernel" : "agent";
    fast["made"] = k.made;
    fast["made_limited"] = k.made_limited;
    size_t templates = 0;
    for (const auto& s : stats) templates += s.kernel_templates;
    fast["templates"] = templates;
  }
  out["fast_path"] = fast;
  if (bfd_ != nullptr) out["bfd"] = bfd_->statusJson();
  // Where each router gateway of the view is held, as this host's datapath
  // sends to it (BFD's choice for those with standbys).
  Json held = Json::object();
  if (auto plan = plan_.load(); plan != nullptr && plan->topology != nullptr) {
    for (const auto& [key, r] : plan->topology->routers()) {
      if (r.gateway) held[std::to_string(key)] = r.gateway->host;
    }
  }
  out["gateways_held_by"] = held;
  if (metadata_ready_) out["metadata"] = metadata_handler_->statusJson();
  if (health_ != nullptr) out["health_checks"] = health_->statusJson();
  return out;
}

void Agent::announce(const datapath::topology::Topology& t, uint32_t host_key) {
  struct Served {
    IpAddress ip;
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
  std::set<std::pair<IpAddress, datapath::packet::MacAddress>> now;
  for (const auto& s : served) {
    if (s.sw == nullptr || s.ip.family != 4) continue;
    now.insert({s.ip, s.mac});
    if (announced_.count({s.ip, s.mac})) continue;
    for (size_t u = 0; u < config_.uplinks.size(); ++u) {
      if (config_.uplinks[u].first != s.sw->physical_network) continue;
      auto a = datapath::packet::Ipv4Address::of(s.ip);
      datapath::packet::PacketBuilder b;
      b.eth(s.mac, datapath::packet::MacAddress::broadcast());
      if (s.sw->vlan != 0) b.vlan(s.sw->vlan);
      workers_[0]->sendOnUplink(u, b.arp(1, s.mac, a, datapath::packet::MacAddress{}, a).build());
      spdlog::info("agent: announced {} at {} on {}", s.ip.toString(), s.mac.toString(),
                   config_.uplinks[u].second);
    }
  }
  announced_ = std::move(now);
}

void Agent::controlLoop() {
  uint64_t ticks = 0;
  // Real time, as the wait is (the agent's clock may be a test's).
  auto next = std::chrono::steady_clock::now() + config_.tick;
  for (;;) {
    bool links = false;
    {
      MutexLock lock(stop_mu_);
      stop_cv_.wait_for(stop_mu_, config_.tick, [&] { return stopping_ || links_changed_; });
      if (stopping_) return;
      links = links_changed_;
      links_changed_ = false;
    }
    if (links) autoBind();
    if (auto now = std::chrono::steady_clock::now(); now >= next) {
      next = now + config_.tick;
      tick(++ticks);
    }
  }
}

namespace {
// The learned neighbours an agent reports (for `canopy trace`), at most.
constexpr size_t kReportedNeighbors = 256;
}  // namespace

namespace {
// UTC, to the millisecond: 2026-12-06T16:20:00.123Z.
std::string utc(WallTime t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const std::time_t seconds = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[40];
  std::snprintf(out, sizeof out, "%s.%03dZ", text, static_cast<int>(ms.count() % 1000));
  return out;
}

// One security-group log record as the log file and the agent's log have
// it: a line of key=value pairs, as Neutron's log drivers write them.
std::string logLine(const datapath::pipeline::SecurityGroupLogRecord& r) {
  auto address = [](const IpAddress& ip, uint16_t port, uint8_t protocol) {
    std::string a = ip.family == 6 ? "[" + ip.toString() + "]" : ip.toString();
    return protocol == 6 || protocol == 17 ? a + ":" + std::to_string(port) : a;
  };
  std::string protocol = r.protocol == 6    ? "tcp"
                         : r.protocol == 17 ? "udp"
                         : r.protocol == 1  ? "icmp"
                         : r.protocol == 58 ? "ipv6-icmp"
                                            : std::to_string(r.protocol);
  std::string line = utc(r.time) + " action=" + (r.accepted ? "ACCEPT" : "DROP") +
                     " direction=" + (r.egress ? "egress" : "ingress") + " port=" + r.port_id +
                     " protocol=" + protocol +
                     " src=" + address(r.source, r.source_port, r.protocol) +
                     " dst=" + address(r.destination, r.destination_port, r.protocol);
  if (r.protocol == 1 || r.protocol == 58) {
    line +=
        " type=" + std::to_string(r.source_port) + " code=" + std::to_string(r.destination_port);
  }
  return line;
}
}  // namespace

void Agent::writeSecurityGroupLog() {
  std::shared_ptr<datapath::pipeline::SharedState> shared;
  {
    MutexLock lock(mu_);
    shared = shared_;
  }
  if (shared == nullptr) return;
  auto records = shared->takeSecurityGroupLog();
  if (records.empty()) return;
  std::ofstream file;
  if (!config_.security_group_log.empty()) {
    file.open(config_.security_group_log, std::ios::app);
    if (!file) {
      spdlog::warn("agent: cannot append to {}", config_.security_group_log);
    }
  }
  for (const auto& r : records) {
    std::string line = logLine(r);
    spdlog::info("security group: {}", line);
    if (file) file << line << '\n';
  }
}

void Agent::keepFastPathAlive() {
  if (fast_path_ == nullptr) return;
  const auto until = std::chrono::steady_clock::now() + config_.fast_path_headless;
  static_cast<void>(fast_path_->keepAlive(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(until.time_since_epoch()).count())));
}

void Agent::tick(uint64_t ticks) {
  keepFastPathAlive();
  if (!adopted_flows_.empty()) {
    bool view = false;
    {
      MutexLock lock(mu_);
      view = shared_ != nullptr;
    }
    // Decided again by this agent's datapath from its next packets.
    // (By the first worker, which takes the connections the kernel set up
    // among them into conntrack first.)
    if (view && ++adopted_ticks_ >= 3) {
      workers_.front()->handBack(std::exchange(adopted_flows_, {}), fast_path_->takeAdoptedMade());
    }
  }
  writeSecurityGroupLog();
  saveView();
  std::vector<WorkerStats> stats;
  for (const auto& w : workers_) stats.push_back(w->stats());
  std::vector<std::string> gone;
  for (const auto& w : workers_) {
    auto g = w->takeGone();
    gone.insert(gone.end(), g.begin(), g.end());
  }
  std::vector<std::pair<std::string, bool>> reports;  // port id, up
  {
    MutexLock lock(mu_);
    // Interfaces gone (an owned tap deleted, a veth removed): their port is
    // down; an interface that comes back is opened again, a tap only when
    // bound again.
    for (auto& [interface, b] : bindings_) {
      bool lost =
          b.open && (b.attach.tap ? std::find(gone.begin(), gone.end(), interface) != gone.end()
                                  : !io_.exists(interface));
      if (lost) {
        spdlog::warn("agent: interface {} disappeared; port {} is down", interface, b.port_id);
        closeFor(interface, false);
        b.open = false;
        b.tap_gone = b.attach.tap;
        reports.emplace_back(b.port_id, false);
      } else if (!b.open && !b.attach.tap && io_.exists(interface)) {
        if (openFor(interface, b, nullptr)) reports.emplace_back(b.port_id, true);
      }
    }
  }
  autoBind();
  if (southbound_ == nullptr) return;
  for (const auto& [port, up] : reports) southbound_->reportPort(port, up);
  if (ticks % kStatsEveryTicks != 0) return;
  WorkerStats total = sumStats(stats);
  pb::Stats s;
  s.set_packets(total.datapath.packets);
  s.set_outputs(total.datapath.outputs);
  for (size_t r = 1; r < datapath::kDropReasonCount; ++r) {
    if (uint64_t count = total.datapath.drops[r] + total.io_drops[r]; count != 0) {
      (*s.mutable_drops())[std::string(
          datapath::dropReasonName(static_cast<datapath::DropReason>(r)))] = count;
    }
  }
  s.set_bound_ports(static_cast<uint32_t>(
      std::count_if(total.ports.begin(), total.ports.end(),
                    [](const auto& p) { return !p.second.port_id.empty(); })));
  std::shared_ptr<datapath::pipeline::SharedState> shared;
  {
    MutexLock lock(mu_);
    shared = shared_;
  }
  if (shared != nullptr) {
    if (auto counters = shared->lbCounters(); !counters.empty()) {
      auto plan = plan_.load();
      std::map<uint64_t, std::string> ids;  // the listeners it knows, by hash
      if (plan != nullptr && plan->topology != nullptr) {
        for (const auto& [key, p] : plan->topology->ports()) {
          for (const auto& l : p.listeners) ids[datapath::nat::stableHash(l.id)] = l.id;
        }
      }
      for (const auto& [hash, c] : counters) {
        auto id = ids.find(hash);
        if (id == ids.end()) continue;  // a listener gone
        pb::ListenerStats* x = s.add_listeners();
        x->set_listener_id(id->second);
        x->set_active_connections(c.active);
        x->set_total_connections(c.total);
        x->set_bytes_in(c.bytes_in);
        x->set_bytes_out(c.bytes_out);
      }
    }
    if (!total.datapath.meters.empty()) {
      auto ids = meterIds(plan_.load());
      for (const auto& [hash, m] : total.datapath.meters) {
        auto id = ids.find(hash);
        if (id == ids.end()) continue;  // a label gone
        pb::MeterStats* x = s.add_meters();
        x->set_label_id(id->second);
        x->set_packets(m.packets);
        x->set_bytes(m.bytes);
      }
    }
    for (const auto& n : shared->neighborList(kReportedNeighbors)) {
      pb::Neighbor* x = s.add_neighbors();
      x->set_switch_key(n.switch_key);
      x->set_ip(std::string(n.ip.bytes.begin(), n.ip.bytes.begin() + (n.ip.family == 4 ? 4 : 16)));
      x->set_mac(std::string(n.mac.bytes.begin(), n.mac.bytes.end()));
    }
  }
  southbound_->reportStats(s);
}

}  // namespace canopy::agent
