#include "southbound/service.h"

#include <fmt/ranges.h>
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <set>

#include "base/log.h"
#include "model/json.h"
#include "model/port.h"
#include "southbound/keys.h"
#include "southbound/objects.h"
#include "southbound/tls.h"
#include "southbound/view.h"

namespace canopy::southbound {
namespace {

using model::Json;
using model::stringAt;

// Standby hosts per router gateway (gateway high availability).
constexpr size_t kStandbys = 2;
constexpr auto kIdleWait = std::chrono::milliseconds(500);
// Workers for every session's work: views are computed on them, and store
// writes (hellos, port reports) wait on them.
constexpr size_t kWorkers = 8;
// After this much in views written, the memory they took is given back to
// the system once no big one (a snapshot, a large delta) has been written
// for a while: malloc keeps freed memory otherwise, and a reconnect storm
// of 1,000 agents would leave the server at its peak.
constexpr uint64_t kTrimAfterBytes = 16u << 20;
constexpr size_t kBigView = 4096;
constexpr auto kTrimQuiet = std::chrono::milliseconds(500);
// How long the service waits for its streams to end when it goes.
constexpr auto kStreamsEnd = std::chrono::seconds(10);
constexpr auto kComplaintPeriod = std::chrono::seconds(10);
constexpr int kComplaints = 10;
// Load balancers' statistics: written per host at most this often.
constexpr auto kListenerStatsEvery = std::chrono::seconds(5);

// Changes one port document with `change` (false: nothing to do), through
// the model's writer path.
Result<void> updatePort(state::ModelState& state, const state::WriteOptions& options,
                        const std::string& port_id, const std::function<bool(Json&)>& change) {
  auto r = state.write(options, [&](state::Transaction& txn) -> Result<void> {
    const state::Document* d = txn.find("ports", port_id);
    if (d == nullptr) return Error(Errc::NotFound, "port " + port_id + " not found");
    Json doc = d->doc;
    if (!change(doc)) return ok();
    txn.update("ports", port_id, doc);
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

std::string addressText(const std::string& bytes) {
  IpAddress a;
  if (bytes.size() != 4 && bytes.size() != 16) return {};
  a.family = bytes.size() == 4 ? 4 : 6;
  std::copy(bytes.begin(), bytes.end(), a.bytes.begin());
  return a.toString();
}

}  // namespace

struct SouthboundService::Workers {
  boost::asio::thread_pool pool{kWorkers};
};

// One agent's stream. The reactions (gRPC's threads) hand everything to the
// session's strand, so its work runs in order, one step at a time, on the
// workers: the members below are the strand's unless they say otherwise.
class SouthboundService::Session final
    : public grpc::ServerBidiReactor<pb::AgentMessage, pb::ServerMessage>,
      public std::enable_shared_from_this<Session> {
 public:
  Session(const Clock& clock, grpc::CallbackServerContext* ctx, boost::asio::thread_pool& pool)
      : context(ctx),
        complaints(clock, kComplaintPeriod, kComplaints),
        strand_(boost::asio::make_strand(pool)) {}

  // Holds itself until gRPC is done with it; then `farewell` runs.
  void start(std::shared_ptr<Session> self,
             std::function<void(std::shared_ptr<Session>)> farewell) {
    self_ = std::move(self);
    farewell_ = std::move(farewell);
    StartRead(&in_);
  }
  // Runs `work` after the session's earlier work.
  template <typename F>
  void post(F&& work) {
    boost::asio::post(strand_, std::forward<F>(work));
  }
  // From any thread: the stream ends with `status` (once).
  void close(grpc::Status status) {
    post([self = shared_from_this(), status = std::move(status)] { self->finish(status); });
  }

  // On the strand.
  void finish(const grpc::Status& status) {
    if (finished) return;
    finished = true;
    Finish(status);
  }
  void read() {
    if (!finished) StartRead(&in_);
  }
  void write(pb::ServerMessage message) {
    out_ = std::move(message);
    writing = true;
    StartWrite(&out_);
  }

  grpc::CallbackServerContext* const context;  // until the stream is done
  std::string host, session_id;
  bool welcomed = false;
  bool finished = false;
  bool writing = false;
  ViewTracker::Cursor cursor;
  // What an agent says that the server cannot take is logged, at most
  // kComplaints lines per period: a misbehaving agent cannot flood the log.
  RateLimit complaints;
  // The load balancers' statistics last written for the host, and when.
  std::string listener_stats;
  std::optional<SteadyTime> listener_stats_at;
  std::string meter_stats;
  std::optional<SteadyTime> meter_stats_at;
  // Any thread: whether a pump is queued on the strand already.
  std::atomic<bool> pump_queued{false};

  // The function that receives what was read (set once, before the first
  // read completes).
  std::function<void(const std::shared_ptr<Session>&, pb::AgentMessage)> on_message;
  std::function<void(const std::shared_ptr<Session>&)> on_written;

 private:
  void OnReadDone(bool ok) override {
    if (!ok) {
      close(grpc::Status::OK);
      return;
    }
    post([self = shared_from_this(), m = std::move(in_)]() mutable {
      self->on_message(self, std::move(m));
    });
  }
  void OnWriteDone(bool ok) override {
    post([self = shared_from_this(), ok] {
      self->writing = false;
      self->out_ = pb::ServerMessage();  // a snapshot is big: not kept after it went
      if (!ok) {
        self->finish(grpc::Status::OK);
      } else {
        self->on_written(self);
      }
    });
  }
  void OnCancel() override { close(grpc::Status::CANCELLED); }
  void OnDone() override {
    post([self = std::move(self_), farewell = std::move(farewell_)] { farewell(self); });
  }

  boost::asio::strand<boost::asio::thread_pool::executor_type> strand_;
  pb::AgentMessage in_;
  pb::ServerMessage out_;
  std::shared_ptr<Session> self_;  // until OnDone
  std::function<void(std::shared_ptr<Session>)> farewell_;
};

SouthboundService::SouthboundService(state::ModelState& state, const Clock& clock,
                                     cluster::Replica* replica, ServiceOptions options)
    : state_(state),
      clock_(clock),
      options_(options),
      replica_(replica),
      tracker_(std::make_shared<ViewTracker>(clock)),
      workers_(std::make_unique<Workers>()) {
  {
    MutexLock lock(link_->mu);
    link_->service = this;
  }
  if (replica_ != nullptr) {
    replica_->onNewLease([link = link_](store::LeaseId lease) {
      MutexLock lock(link->mu);
      if (link->service != nullptr) link->service->renewSessions(lease);
    });
  }
  state_.observe(
      [tracker = tracker_](const std::vector<state::Change>& changes, const state::Tables& tables) {
        tracker->onChanges(changes, tables);
      });
  reconciler_ = std::thread([this] {
    while (!stopping_.load()) {
      store::Revision seen = state_.appliedRevision();
      if (leads()) {
        if (auto r = reconcile(); !r) {
          spdlog::warn("southbound: reconcile: {}", r.error().message());
        }
        if (auto r = reapOrphans(); !r) {
          spdlog::warn("southbound: agents' liveness: {}", r.error().message());
        }
      }
      state_.waitPast(seen, std::chrono::milliseconds(200));
    }
  });
  notifier_ = std::thread([this] {
    store::Revision woken = state_.appliedRevision();
    while (!stopping_.load()) {
      state_.waitPast(woken, kIdleWait);
      if (sent_bytes_.load() > kTrimAfterBytes &&
          clock_.now() - SteadyTime(SteadyTime::duration(last_big_.load())) > kTrimQuiet) {
        sent_bytes_ = 0;
        ::malloc_trim(0);
      }
      store::Revision now = state_.appliedRevision();
      if (now == woken) continue;
      woken = now;
      std::vector<std::shared_ptr<Session>> all;
      {
        MutexLock lock(mu_);
        for (const auto& [host, s] : sessions_) all.push_back(s);
      }
      for (auto& s : all) {
        if (s->pump_queued.exchange(true)) continue;  // it will see this change
        s->post([this, s] {
          s->pump_queued = false;
          pump(s);
        });
      }
    }
  });
}

SouthboundService::~SouthboundService() {
  {
    MutexLock lock(link_->mu);
    link_->service = nullptr;
  }
  stop();
  {
    MutexLock lock(mu_);
    if (!streams_done_.wait_for(mu_, kStreamsEnd,
                                [&]() CANOPY_REQUIRES(mu_) { return streams_ == 0; })) {
      spdlog::warn("southbound: {} streams did not end", streams_);
    }
  }
  workers_->pool.join();
}

state::WriteOptions SouthboundService::leaderWrites() const {
  state::WriteOptions o;
  if (replica_ != nullptr) o.fence = replica_->fence();
  return o;
}

AgentSession SouthboundService::sessionOf(const std::string& host, const std::string& id) const {
  (void)host;
  return AgentSession{.replica = replica_ != nullptr ? replica_->id() : "",
                      .id = id,
                      .lease = replica_ != nullptr ? replica_->lease() : 0};
}

void SouthboundService::renewSessions(store::LeaseId lease) {
  std::vector<std::pair<std::string, std::string>> local;  // host, session
  {
    MutexLock lock(mu_);
    for (const auto& [host, s] : sessions_) local.emplace_back(host, s->session_id);
  }
  for (const auto& [host, id] : local) {
    AgentSession session = sessionOf(host, id);
    session.lease = lease;
    if (auto r = renewSession(state_, host, session); !r) {
      spdlog::warn("southbound: agent {}: renewing its session: {}", host, r.error().message());
    }
  }
}

Result<void> SouthboundService::reapOrphans() {
  std::vector<std::string> orphans;
  state_.read([&](const state::Tables& t) {
    for (const auto& [host, d] : t.collection(kAgentsCollection)) {
      Agent a = Agent::fromJson(d.doc);
      if (a.alive && !a.is_static && t.find(kSessionsCollection, host) == nullptr) {
        orphans.push_back(host);
      }
    }
  });
  std::vector<std::string> due;
  {
    MutexLock lock(orphans_mu_);
    std::map<std::string, SteadyTime> still;
    for (const auto& host : orphans) {
      auto it = orphans_.find(host);
      SteadyTime since = it != orphans_.end() ? it->second : clock_.now();
      still[host] = since;
      if (clock_.now() - since >= kSessionGrace) due.push_back(host);
    }
    orphans_ = std::move(still);
  }
  for (const auto& host : due) {
    spdlog::info("southbound: agent {} has had no session for {} s: dead", host,
                 kSessionGrace.count());
    auto r = state_.write(leaderWrites(), [&](state::Transaction& txn) -> Result<void> {
      const state::Document* d = txn.find(kAgentsCollection, host);
      if (d == nullptr || txn.find(kSessionsCollection, host) != nullptr) return ok();
      Agent a = Agent::fromJson(d->doc);
      if (!a.alive) return ok();
      a.alive = false;
      txn.guardAbsent(kSessionsCollection, host);
      txn.update(kAgentsCollection, host, a.toJson());
      return ok();
    });
    if (!r) return std::move(r).error();
  }
  return ok();
}

void SouthboundService::stop() {
  if (stopping_.exchange(true)) return;
  {
    MutexLock lock(mu_);
    for (auto& [host, s] : sessions_)
      s->close({grpc::StatusCode::UNAVAILABLE, "the server is stopping"});
  }
  if (reconciler_.joinable()) reconciler_.join();
  if (notifier_.joinable()) notifier_.join();
}

size_t SouthboundService::connected() const {
  MutexLock lock(mu_);
  return sessions_.size();
}

std::vector<SouthboundService::SessionInfo> SouthboundService::sessions() const {
  std::vector<SessionInfo> out;
  MutexLock lock(mu_);
  for (const auto& [host, s] : sessions_) {
    SessionInfo i = info_.count(host) ? info_.at(host) : SessionInfo{};
    i.host = host;
    out.push_back(std::move(i));
  }
  return out;
}

grpc::ServerBidiReactor<pb::AgentMessage, pb::ServerMessage>* SouthboundService::Connect(
    grpc::CallbackServerContext* context) {
  auto s = std::make_shared<Session>(clock_, context, workers_->pool);
  s->on_message = [this](const std::shared_ptr<Session>& session, pb::AgentMessage m) {
    receive(session, m);
  };
  s->on_written = [this](const std::shared_ptr<Session>& session) { pump(session); };
  {
    MutexLock lock(mu_);
    ++streams_;
  }
  s->start(s, [this](std::shared_ptr<Session> session) { farewell(session); });
  return s.get();
}

bool SouthboundService::welcome(const std::shared_ptr<Session>& s, const pb::Hello& hello) {
  std::string tunnel_ip = addressText(hello.tunnel_ip());
  if (hello.host_name().empty() || hello.host_name().size() > 255 || tunnel_ip.empty()) {
    s->finish({grpc::StatusCode::INVALID_ARGUMENT,
               "hello needs a host name (at most 255 bytes) and a 4- or 16-byte tunnel address"});
    return false;
  }
  if (!peerMayBe(*s->context, hello.host_name())) {
    spdlog::warn("southbound: refused hello as '{}' from {}: its certificate names another host",
                 hello.host_name(), s->context->peer());
    s->finish({grpc::StatusCode::PERMISSION_DENIED,
               "the client certificate does not name host " + hello.host_name()});
    return false;
  }
  Agent info{
      .host = hello.host_name(),
      .tunnel_ip = tunnel_ip,
      .encapsulations = {hello.encapsulations().begin(), hello.encapsulations().end()},
      .gateway_capable = hello.gateway_capable(),
      .physical_networks = {hello.physical_networks().begin(), hello.physical_networks().end()},
      .version = hello.agent_version(),
      .fast_path = hello.fast_path(),
      .availability_zone = hello.availability_zone().empty() ? std::string(model::kDefaultZone)
                                                             : hello.availability_zone()};
  s->host = info.host;
  s->session_id = (replica_ != nullptr ? replica_->id() : std::string("local")) + "/" +
                  std::to_string(next_session_.fetch_add(1));
  s->cursor.resume_from = hello.applied_version();
  if (hello.has_held() && s->cursor.resume_from != 0) s->cursor.held = hello.held();
  // Registered before the agent is written alive: an older session of the
  // same host that is still ending then sees this one and does not write
  // the host dead after it (farewell).
  {
    MutexLock lock(mu_);
    if (stopping_.load()) {
      s->finish({grpc::StatusCode::UNAVAILABLE, "the server is stopping"});
      return false;
    }
    if (auto old = sessions_.find(s->host); old != sessions_.end()) {
      // A newer connection from the same host replaces the old one.
      old->second->close({grpc::StatusCode::ABORTED, "a newer connection of this host took over"});
    }
    sessions_[s->host] = s;
  }
  s->welcomed = true;
  auto refuse = [&](const Error& e) {
    {
      MutexLock lock(mu_);
      if (auto it = sessions_.find(s->host); it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
      }
    }
    s->welcomed = false;
    s->finish({grpc::StatusCode::UNAVAILABLE, e.message()});
    return false;
  };
  if (auto r = putAgent(state_, info, sessionOf(s->host, s->session_id)); !r) {
    return refuse(r.error());
  }
  if (leads()) {
    if (auto r = reconcile(); !r) return refuse(r.error());
  }
  spdlog::info("southbound: agent {} connected (tunnel {}, resuming from {})", s->host, tunnel_ip,
               s->cursor.resume_from);
  return true;
}

void SouthboundService::receive(const std::shared_ptr<Session>& s, const pb::AgentMessage& m) {
  if (s->finished) return;
  if (!s->welcomed) {
    if (!m.has_hello()) {
      s->finish({grpc::StatusCode::INVALID_ARGUMENT, "the first message must be a hello"});
      return;
    }
    if (!welcome(s, m.hello())) return;
    s->read();
    pump(s);
    return;
  }
  if (m.has_ack()) {
    const pb::Ack& ack = m.ack();
    if (!ack.accepted()) {
      if (s->complaints.allow()) {
        spdlog::warn("southbound: agent {} refused version {}: {}{}", s->host, ack.version(),
                     ack.reason(), s->complaints.suppressedNote());
      }
      s->cursor.resync = true;
      pump(s);
    } else {
      MutexLock lock(mu_);
      info_[s->host].applied_version = ack.version();
    }
  } else if (m.has_stats()) {
    writeListenerStats(*s, m.stats());
    writeMeterStats(*s, m.stats());
    MutexLock lock(mu_);
    info_[s->host].stats = m.stats();
  } else if (m.has_port_status()) {
    auto r = setPortStatus(s->host, m.port_status().port_id(), m.port_status().up());
    if (!r && s->complaints.allow()) {
      spdlog::warn("southbound: agent {}: port {}: {}{}", s->host, m.port_status().port_id(),
                   r.error().message(), s->complaints.suppressedNote());
    }
  } else if (m.has_member_health()) {
    auto r = setMemberHealth(s->host, m.member_health().member_id(), m.member_health().up());
    if (!r && s->complaints.allow()) {
      spdlog::warn("southbound: agent {}: load balancer member {}: {}{}", s->host,
                   m.member_health().member_id(), r.error().message(),
                   s->complaints.suppressedNote());
    }
  }
  s->read();
}

void SouthboundService::pump(const std::shared_ptr<Session>& s) {
  // One write at a time: the end of this one pumps again.
  if (s->finished || !s->welcomed || s->writing || stopping_.load()) return;
  uint64_t considered = 0;
  std::optional<pb::View> view =
      state_.readAt([&](const state::Tables& t, store::Revision revision) {
        considered = static_cast<uint64_t>(revision);
        return tracker_->next(t, considered, s->host, s->cursor);
      });
  {
    MutexLock lock(mu_);
    auto it = sessions_.find(s->host);
    if (it == sessions_.end() || it->second != s) return;  // replaced
    info_[s->host].considered_revision = considered;
    if (view) info_[s->host].latest_version = view->version();
  }
  if (view) {
    size_t bytes = view->ByteSizeLong();
    sent_bytes_ += bytes;
    if (bytes > kBigView) last_big_ = clock_.now().time_since_epoch().count();
    pb::ServerMessage message;
    *message.mutable_view() = *std::move(view);
    s->write(std::move(message));
  }
}

void SouthboundService::farewell(const std::shared_ptr<Session>& s) {
  if (s->welcomed) {
    bool last = false;
    {
      MutexLock lock(mu_);
      if (auto it = sessions_.find(s->host); it != sessions_.end() && it->second == s) {
        sessions_.erase(it);
        info_.erase(s->host);
        last = true;
      }
    }
    if (last) tracker_->disconnected(s->host);
    if (!stopping_.load()) {
      // Unless another session (here or at another replica) holds the host
      // now: guarded by the session document inside the write.
      auto r = endSession(state_, s->host, s->session_id);
      if (!r) spdlog::warn("southbound: agent {}: {}", s->host, r.error().message());
    }
    spdlog::info("southbound: agent {} disconnected", s->host);
  }
  {
    MutexLock lock(mu_);
    --streams_;
  }
  streams_done_.notify_all();
}

grpc::Status SouthboundService::GetInstance(grpc::ServerContext* context,
                                            const pb::InstanceRequest* request,
                                            pb::Instance* reply) {
  if (!peerMayBe(*context, request->host_name())) {
    return {grpc::StatusCode::PERMISSION_DENIED,
            "the client certificate does not name host " + request->host_name()};
  }
  return state_.read([&](const state::Tables& t) -> grpc::Status {
    const state::Document* port = t.find("ports", request->port_id());
    if (port == nullptr) return {grpc::StatusCode::NOT_FOUND, "no port " + request->port_id()};
    const Json& doc = port->doc;
    if (stringAt(doc, "binding:host_id") != request->host_name()) {
      return {grpc::StatusCode::PERMISSION_DENIED,
              "port " + request->port_id() + " is not bound to host " + request->host_name()};
    }
    Json extra = model::memberAt(doc, "instance_metadata");
    if (!extra.is_object()) extra = Json::object();
    reply->set_instance_id(stringAt(doc, "device_id"));
    reply->set_project_id(stringAt(doc, "project_id"));
    std::string hostname = stringAt(doc, "dns_name");
    if (hostname.empty()) hostname = extra.value("name", "");
    if (hostname.empty()) hostname = stringAt(doc, "name");
    if (hostname.empty()) {
      // As the DHCP server names it: host-<its first address, dashed>.
      Json ips = model::memberAt(doc, "fixed_ips");
      if (ips.is_array() && !ips.empty()) {
        hostname = "host-" + stringAt(ips[0], "ip_address");
        std::replace(hostname.begin(), hostname.end(), '.', '-');
        std::replace(hostname.begin(), hostname.end(), ':', '-');
      }
    }
    reply->set_hostname(hostname);
    std::string name = extra.value("name", "");
    reply->set_name(name.empty() ? hostname : name);
    for (const auto& [id, f] : t.collection("floatingips")) {
      if (stringAt(f.doc, "port_id") == request->port_id()) {
        reply->set_public_ipv4(stringAt(f.doc, "floating_ip_address"));
        break;
      }
    }
    if (auto keys = extra.find("public_keys"); keys != extra.end() && keys->is_object()) {
      for (const auto& [key_name, key] : keys->items()) {
        if (!key.is_string()) continue;
        auto* k = reply->add_public_keys();
        k->set_name(key_name);
        k->set_key(key.get<std::string>());
      }
    }
    if (auto data = extra.find("user_data"); data != extra.end() && data->is_string()) {
      reply->set_user_data(data->get<std::string>());
    }
    return grpc::Status::OK;
  });
}

Result<void> SouthboundService::setPortStatus(const std::string& host, const std::string& port_id,
                                              bool up) {
  auto r = updatePort(state_, {}, port_id, [&](Json& doc) {
    std::string bound = stringAt(doc, "binding:host_id");
    if (!bound.empty() && bound != host) return false;  // another host's port
    bool changed = false;
    std::string status = up ? "ACTIVE" : "DOWN";
    if (stringAt(doc, "status") != status) {
      doc["status"] = status;
      changed = true;
    }
    if (up && bound.empty()) {
      doc["binding:host_id"] = host;
      doc["binding:vif_type"] = model::kVifType;
      doc["binding:vif_details"] = model::vifDetails(port_id);
      changed = true;
    }
    return changed;
  });
  if (!r) return r;
  // A trunk's subports have no interface of their own: they are up when
  // their parent is.
  auto subports = state_.read([&](const state::Tables& t) {
    std::vector<std::string> out;
    for (const auto& trunk : t.lookup("trunks.port", port_id)) {
      const Json* d = docOf(t, "trunks", trunk);
      if (d == nullptr) continue;
      for (const auto& s : d->value("sub_ports", Json::array())) {
        if (s.is_object()) out.push_back(stringAt(s, "port_id"));
      }
    }
    return out;
  });
  for (const auto& id : subports) {
    auto s = updatePort(state_, {}, id, [&](Json& doc) {
      std::string status = up ? "ACTIVE" : "DOWN";
      if (stringAt(doc, "binding:host_id") != host || stringAt(doc, "status") == status) {
        return false;
      }
      doc["status"] = status;
      return true;
    });
    if (!s && s.error().code() != Errc::NotFound) return s;
  }
  return ok();
}

// What the host carried through load balancers' listeners, for Octavia's
// statistics (summed over hosts by the API): into the model, when it
// changed, at most every kListenerStatsEvery per host.
void SouthboundService::writeListenerStats(Session& s, const pb::Stats& stats) {
  if (stats.listeners().empty() && s.listener_stats.empty()) return;
  Json doc = Json::object();
  for (const auto& l : stats.listeners()) {
    doc[l.listener_id()] = {{"active_connections", l.active_connections()},
                            {"total_connections", l.total_connections()},
                            {"bytes_in", l.bytes_in()},
                            {"bytes_out", l.bytes_out()}};
  }
  std::string text = doc.dump();
  auto now = clock_.now();
  if (text == s.listener_stats ||
      (s.listener_stats_at && now - *s.listener_stats_at < kListenerStatsEvery)) {
    return;
  }
  auto r = state_.write({}, [&](state::Transaction& txn) -> Result<void> {
    txn.put(kListenerStatsCollection, s.host, Json{{"host", s.host}, {"listeners", doc}});
    return ok();
  });
  if (!r) {
    if (s.complaints.allow()) {
      spdlog::warn("southbound: agent {}: listener statistics: {}", s.host, r.error().message());
    }
    return;
  }
  s.listener_stats = std::move(text);
  s.listener_stats_at = now;
}

// What the host's metering labels counted, for the operator's totals
// (GET /canopy/v1/metering): as the listeners' statistics.
void SouthboundService::writeMeterStats(Session& s, const pb::Stats& stats) {
  if (stats.meters().empty() && s.meter_stats.empty()) return;
  Json doc = Json::object();
  for (const auto& m : stats.meters()) {
    doc[m.label_id()] = {{"packets", m.packets()}, {"bytes", m.bytes()}};
  }
  std::string text = doc.dump();
  auto now = clock_.now();
  if (text == s.meter_stats ||
      (s.meter_stats_at && now - *s.meter_stats_at < kListenerStatsEvery)) {
    return;
  }
  auto r = state_.write({}, [&](state::Transaction& txn) -> Result<void> {
    txn.put(kMeterStatsCollection, s.host, Json{{"host", s.host}, {"labels", doc}});
    return ok();
  });
  if (!r) {
    if (s.complaints.allow()) {
      spdlog::warn("southbound: agent {}: metering counts: {}", s.host, r.error().message());
    }
    return;
  }
  s.meter_stats = std::move(text);
  s.meter_stats_at = now;
}

// A member's health, from the agent of the host its port is bound to (the
// only one that checks it); written when it changes.
Result<void> SouthboundService::setMemberHealth(const std::string& host,
                                                const std::string& member_id, bool up) {
  auto r = state_.write({}, [&](state::Transaction& txn) -> Result<void> {
    const Json* m = txn.current("lbaas-members", member_id);
    if (m == nullptr) return Error(Errc::NotFound, "member " + member_id + " not found");
    const Json* port = txn.current("ports", memberPortOf(txn.tables(), *m));
    if (port == nullptr || stringAt(*port, "binding:host_id") != host) {
      return Error(Errc::PermissionDenied, "its port is not bound to this host");
    }
    std::string health = up ? "ONLINE" : "ERROR";
    if (stringAt(*m, "health") == health) return ok();
    Json changed = *m;
    changed["health"] = health;
    txn.update("lbaas-members", member_id, changed);
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

// Distributed SNAT: a lease per live host that has an uplink to the
// router's external network and a port behind the router; a host keeps its
// block while it does, the others take the lowest free ones.
Result<void> SouthboundService::leaseSnatBlocks() {
  const uint32_t size = options_.snat_block_ports;
  const uint32_t blocks = size == 0 ? 0 : (65536 - 1024) / size;
  auto block = [&](uint32_t b) {
    return Json::array({1024 + b * size, 1024 + (b + 1) * size - 1});
  };
  std::vector<std::pair<std::string, Json>> changes;  // gateway port -> leases (null: none)
  state_.read([&](const state::Tables& t) {
    std::map<std::string, std::vector<std::string>> live;  // host -> physnets
    for (const auto& [name, d] : t.collection(kAgentsCollection)) {
      Agent a = Agent::fromJson(d.doc);
      if (a.alive) live[name] = std::move(a.physical_networks);
    }
    for (const auto& [id, r] : t.collection("routers")) {
      for (const Json* p : indexedDocs(t, "ports.device", "ports", id)) {
        if (stringAt(*p, "device_owner") != "network:router_gateway") continue;
        std::string ext = stringAt(*p, "network_id");
        const state::Document* n = t.find("networks", ext);
        std::string physnet = n == nullptr ? "" : stringAt(n->doc, "provider:physical_network");
        auto info = r.doc.find("external_gateway_info");
        bool snat = info == r.doc.end() || !info->is_object() || info->value("enable_snat", true);
        Json want;  // null: central SNAT
        if (options_.distributed_snat && blocks >= 2 && snat && !physnet.empty()) {
          std::set<std::string> hosts;  // live, with the uplink, with a port behind the router
          for (const auto& net : routerNetworks(t, id)) {
            if (net == ext) continue;
            for (const Json* q : indexedDocs(t, "ports.network", "ports", net)) {
              std::string host = stringAt(*q, "binding:host_id");
              auto l = live.find(host);
              if (host.empty() || isRouterPort(stringAt(*q, "device_owner")) || l == live.end() ||
                  std::find(l->second.begin(), l->second.end(), physnet) == l->second.end()) {
                continue;
              }
              hosts.insert(host);
            }
          }
          std::vector<bool> taken(blocks, false);
          taken[0] = true;  // the gateway host's
          Json leased = Json::object();
          for (const auto& [host, range] : snatLeaseHostsOf(*p)) {
            uint32_t b = (range.first - 1024u) / std::max<uint32_t>(size, 1);
            if (!hosts.count(host) || b == 0 || b >= blocks || taken[b] ||
                block(b) != Json::array({range.first, range.second})) {
              continue;
            }
            taken[b] = true;
            leased[host] = block(b);
          }
          for (const auto& host : hosts) {
            if (leased.contains(host)) continue;
            auto free = std::find(taken.begin(), taken.end(), false);
            if (free == taken.end()) {
              spdlog::warn(
                  "southbound: router {}: no SNAT block left for {}: its VMs' traffic "
                  "goes by the gateway host",
                  id, host);
              continue;
            }
            *free = true;
            leased[host] = block(static_cast<uint32_t>(free - taken.begin()));
          }
          want = Json{{"central", block(0)}, {"hosts", std::move(leased)}};
        }
        auto have = p->find(state::kSnatLeases);
        if (have == p->end() ? !want.is_null() : *have != want) {
          changes.emplace_back(stringAt(*p, "id"), std::move(want));
        }
      }
    }
  });
  for (const auto& [port, leases] : changes) {
    spdlog::info("southbound: gateway port {}: SNAT leases {}", port,
                 leases.is_null() ? std::string("none (central)") : leases["hosts"].dump());
    auto r = updatePort(state_, leaderWrites(), port, [&, want = leases](Json& doc) {
      auto have = doc.find(state::kSnatLeases);
      if (want.is_null()) {
        if (have == doc.end()) return false;
        doc.erase(have);
        return true;
      }
      if (have != doc.end() && *have == want) return false;
      doc[state::kSnatLeases] = want;
      return true;
    });
    if (!r && r.error().code() != Errc::NotFound) return r;
  }
  return ok();
}

Result<void> SouthboundService::reconcile() {
  auto missing = state_.read([](const state::Tables& t) { return missingKeys(t); });
  if (!missing.empty()) {
    if (auto r = assignKeys(state_, missing, leaderWrites()); !r) return r;
  }
  // Gateways on hosts that cannot hold them move to one that can: alive,
  // gateway-capable, administratively up, with an uplink to the external
  // network (any, for an overlay external network), in one of the router's
  // availability zone hints (if it has any), the least loaded first. A host
  // set administratively down keeps what it holds, as Neutron's L3 agents.
  std::vector<std::pair<std::string, std::string>> moves;  // gateway port -> host
  // Gateway high availability (routers with "ha"): each gateway has up to
  // kStandbys standby hosts that fit it as its host does, kept in order
  // while they fit; the agents' BFD sessions decide which one holds it
  // when its host is down, and a gateway that moves goes to the first live
  // standby, where the datapath has it already.
  std::vector<std::pair<std::string, std::vector<std::string>>> standbys;  // port -> hosts
  state_.read([&](const state::Tables& t) {
    struct Candidate {
      std::vector<std::string> physnets;
      std::string zone;
      bool takes_new = true;  // administratively up
      int load = 0;
    };
    std::map<std::string, Candidate> hosts;
    for (const auto& [name, d] : t.collection(kAgentsCollection)) {
      Agent a = Agent::fromJson(d.doc);
      if (!a.alive || !a.gateway_capable) continue;
      hosts[name] = Candidate{.physnets = std::move(a.physical_networks),
                              .zone = a.availability_zone,
                              .takes_new = a.admin_state_up};
    }
    struct Gateway {
      const Json* port;
      std::string physnet;
      std::vector<std::string> zones;  // the router's hints; none: any
      bool ha = true;                  // false: it stays on the host it has
      std::vector<std::string> standbys{};
    };
    std::vector<Gateway> gateways;
    for (const auto& [id, r] : t.collection("routers")) {
      for (const auto& port_id : t.lookup("ports.device", id)) {
        const state::Document* p = t.find("ports", port_id);
        if (p == nullptr || stringAt(p->doc, "device_owner") != "network:router_gateway") continue;
        const state::Document* n = t.find("networks", stringAt(p->doc, "network_id"));
        Gateway g{.port = &p->doc,
                  .physnet = n == nullptr ? "" : stringAt(n->doc, "provider:physical_network"),
                  .zones = {},
                  .ha = r.doc.value("ha", true),
                  .standbys = standbyHostsOf(p->doc)};
        for (const auto& z : r.doc.value("availability_zone_hints", Json::array())) {
          if (z.is_string()) g.zones.push_back(z.get<std::string>());
        }
        gateways.push_back(std::move(g));
      }
    }
    auto fits = [](const Candidate& c, const Gateway& g) {
      bool reaches = g.physnet.empty() ||
                     std::find(c.physnets.begin(), c.physnets.end(), g.physnet) != c.physnets.end();
      bool zoned =
          g.zones.empty() || std::find(g.zones.begin(), g.zones.end(), c.zone) != g.zones.end();
      return reaches && zoned;
    };
    for (const auto& g : gateways) {
      auto it = hosts.find(stringAt(*g.port, "binding:host_id"));
      if (it != hosts.end() && fits(it->second, g)) ++it->second.load;
    }
    for (const auto& g : gateways) {
      std::string primary = stringAt(*g.port, "binding:host_id");
      auto it = hosts.find(primary);
      bool stays = (it != hosts.end() && fits(it->second, g)) || (!g.ha && !primary.empty());
      if (!stays) {
        std::string chosen;
        for (const auto& name : g.standbys) {  // the first standby that can
          auto c = hosts.find(name);
          if (c != hosts.end() && fits(c->second, g)) {
            chosen = name;
            break;
          }
        }
        if (chosen.empty()) {  // else the least loaded that takes new ones
          const Candidate* best = nullptr;
          for (const auto& [name, c] : hosts) {
            if (c.takes_new && fits(c, g) && (best == nullptr || c.load < best->load)) {
              best = &c;
              chosen = name;
            }
          }
        }
        if (chosen.empty()) continue;  // none can hold it yet
        ++hosts[chosen].load;
        moves.emplace_back(stringAt(*g.port, "id"), chosen);
        primary = chosen;
      }
      if (!g.ha) continue;
      // Its standbys: those it has that still fit, then the least loaded.
      std::vector<std::string> want;
      for (const auto& name : g.standbys) {
        auto s = hosts.find(name);
        if (name != primary && s != hosts.end() && fits(s->second, g) && want.size() < kStandbys) {
          want.push_back(name);
        }
      }
      std::vector<std::pair<int, std::string>> others;
      for (const auto& [name, c] : hosts) {
        if (name != primary && c.takes_new && fits(c, g) &&
            std::find(want.begin(), want.end(), name) == want.end()) {
          others.emplace_back(c.load, name);
        }
      }
      std::sort(others.begin(), others.end());
      for (const auto& [load, name] : others) {
        if (want.size() >= kStandbys) break;
        want.push_back(name);
      }
      if (want != g.standbys) standbys.emplace_back(stringAt(*g.port, "id"), std::move(want));
    }
  });
  // Router ports' status: interfaces are served on every host (ACTIVE); a
  // gateway is ACTIVE while a live agent holds it.
  std::vector<std::pair<std::string, std::string>> statuses;  // port -> status
  state_.read([&](const state::Tables& t) {
    for (const auto& [id, d] : t.collection("ports")) {
      std::string owner = stringAt(d.doc, "device_owner");
      std::string want;
      if (owner == "network:router_interface") {
        want = "ACTIVE";
      } else if (owner == "network:router_gateway") {
        std::string host = stringAt(d.doc, "binding:host_id");
        const state::Document* agent = t.find(kAgentsCollection, host);
        bool live = agent != nullptr && agent->doc.value("alive", false);
        want = live ? "ACTIVE" : "DOWN";
      } else {
        continue;
      }
      if (stringAt(d.doc, "status") != want) statuses.emplace_back(id, want);
    }
  });
  // Members on a host whose agent is dead are down: that agent forwarded
  // their traffic and checked them. Its successor's checks bring them back.
  std::vector<std::string> orphaned;
  state_.read([&](const state::Tables& t) {
    for (const auto& [id, m] : t.collection("lbaas-members")) {
      if (stringAt(m.doc, "health") == "ERROR") continue;
      const state::Document* port = t.find("ports", memberPortOf(t, m.doc));
      if (port == nullptr) continue;
      const state::Document* agent =
          t.find(kAgentsCollection, stringAt(port->doc, "binding:host_id"));
      if (agent != nullptr && !agent->doc.value("alive", false)) orphaned.push_back(id);
    }
  });
  for (const auto& id : orphaned) {
    auto r = state_.write(leaderWrites(), [&](state::Transaction& txn) -> Result<void> {
      const Json* m = txn.current("lbaas-members", id);
      if (m == nullptr || stringAt(*m, "health") == "ERROR") return ok();
      Json changed = *m;
      changed["health"] = "ERROR";
      txn.update("lbaas-members", id, changed);
      return ok();
    });
    if (!r) return std::move(r).error();
    spdlog::info("southbound: load balancer member {} is down: its host's agent is dead", id);
  }
  for (const auto& [port, status] : statuses) {
    auto r = updatePort(state_, leaderWrites(), port, [&, want = status](Json& doc) {
      if (stringAt(doc, "status") == want) return false;
      doc["status"] = want;
      return true;
    });
    if (!r && r.error().code() != Errc::NotFound) return r;
  }
  for (const auto& [port, hosts] : standbys) {
    spdlog::info(
        "southbound: gateway port {} stands by on {}", port,
        hosts.empty() ? std::string("no host") : fmt::format("{}", fmt::join(hosts, ", ")));
    auto r = updatePort(state_, leaderWrites(), port, [&, want = hosts](Json& doc) {
      Json list = Json::array();
      for (const auto& h : want) list.push_back(h);
      if (doc.value(state::kStandbyHosts, Json::array()) == list) return false;
      doc[state::kStandbyHosts] = list;
      return true;
    });
    if (!r && r.error().code() != Errc::NotFound) return r;
  }
  if (auto r = leaseSnatBlocks(); !r) return r;
  for (const auto& [port, host] : moves) {
    spdlog::info("southbound: gateway port {} scheduled to {}", port, host);
    auto r = updatePort(state_, leaderWrites(), port, [&, to = host](Json& doc) {
      doc["binding:host_id"] = to;
      return true;
    });
    if (!r && r.error().code() != Errc::NotFound) return r;
  }
  return ok();
}

}  // namespace canopy::southbound
