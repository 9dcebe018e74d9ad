#include "cluster/replica.h"

#include <spdlog/spdlog.h>

#include <ctime>
#include <thread>

#include "model/json.h"

namespace canopy::cluster {
namespace {

using model::Json;
using model::stringAt;

std::string now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

}  // namespace

Result<std::unique_ptr<Replica>> Replica::start(store::Store& store, Options options) {
  if (options.id.empty() || options.id.find('/') != std::string::npos) {
    return Error(Errc::InvalidArgument,
                 "a replica id must be non-empty and without '/' (got '" + options.id + "')");
  }
  std::unique_ptr<Replica> r(new Replica(store, std::move(options)));
  {
    MutexLock lock(r->mu_);
    r->api_ = r->options_.api;
    r->started_ = now();
  }
  // A replica restarted after kill -9 finds its old entry until the old
  // lease ends: wait that long, then refuse (another live replica has the id).
  auto deadline = std::chrono::steady_clock::now() + 2 * r->options_.ttl + std::chrono::seconds(1);
  for (;;) {
    auto reg = r->register_();
    if (reg) break;
    if (reg.error().code() != Errc::Conflict || std::chrono::steady_clock::now() > deadline) {
      return std::move(reg).error();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  r->campaign();
  r->thread_ = std::thread([p = r.get()] { p->run(); });
  return r;
}

Replica::~Replica() { stop(); }

void Replica::stop() {
  {
    MutexLock lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  setLeading(false, 0);
  if (auto l = lease_.load(); l != 0) {
    if (auto r = store_.revokeLease(l); !r) {
      spdlog::warn("cluster: revoking lease {}: {}", l, r.error().message());
    }
  }
}

Result<void> Replica::register_() {
  auto lease = store_.grantLease(options_.ttl);
  if (!lease) return std::move(lease).error().withContext("cluster: granting this replica's lease");
  const std::string key = std::string(kReplicasPrefix) + options_.id;
  std::string doc = entry();
  // Registered only if no live replica holds the id (its lease would keep
  // it) or it is ours from before a lost lease.
  const store::Compare free[] = {store::Compare::absent(key)};
  const store::Op put[] = {store::Op::put(key, doc, *lease)};
  const store::Op read[] = {store::Op::get(key)};
  auto r = store_.txn(free, put, read);
  if (!r) return std::move(r).error();
  if (!r->succeeded) {
    (void)store_.revokeLease(*lease);
    return Error(Errc::Conflict, "cluster: another live replica is registered as '" + options_.id +
                                     "' (" + key + "); give each replica its own --replica-id");
  }
  lease_.store(*lease);
  renewed_ = std::chrono::steady_clock::now();
  return ok();
}

std::string Replica::entry() const {
  MutexLock lock(mu_);
  Json doc = {{"id", options_.id},
              {"api", api_},
              {"southbound", options_.southbound},
              {"started", started_}};
  return doc.dump();
}

Result<void> Replica::advertise(std::string api) {
  {
    MutexLock lock(mu_);
    api_ = std::move(api);
  }
  const std::string key = std::string(kReplicasPrefix) + options_.id;
  const store::Op put[] = {store::Op::put(key, entry(), lease_.load())};
  auto r = store_.txn({}, put, {});
  if (!r) return std::move(r).error();
  return ok();
}

void Replica::run() {
  auto period =
      std::max(std::chrono::milliseconds(options_.ttl) / 4, std::chrono::milliseconds(100));
  for (;;) {
    {
      MutexLock lock(mu_);
      cv_.wait_for(mu_, period, [&]() CANOPY_REQUIRES(mu_) { return stopping_; });
      if (stopping_) return;
    }
    tick();
  }
}

void Replica::tick() {
  auto renewed = store_.keepAlive(lease_.load());
  if (renewed) {
    renewed_ = std::chrono::steady_clock::now();
  } else if (renewed.error().code() == Errc::NotFound) {
    // The lease ended (paused past the TTL, cut from the store): everything
    // it held is gone. Start again with a new one.
    spdlog::warn("cluster: replica {} lost its lease ({}); registering again", options_.id,
                 renewed.error().message());
    setLeading(false, 0);
    if (auto r = register_(); !r) {
      spdlog::error("cluster: {}", r.error().message());
      return;
    }
    std::vector<std::function<void(store::LeaseId)>> listeners;
    {
      MutexLock lock(mu_);
      listeners = lease_listeners_;
    }
    for (const auto& l : listeners) l(lease_.load());
  } else {
    spdlog::warn("cluster: renewing lease: {}", renewed.error().message());
    // The lease may run out while the store does not answer: stop leading
    // before it does, so that two leaders never act at once.
    if (std::chrono::steady_clock::now() - renewed_ > options_.ttl / 2) setLeading(false, 0);
    return;
  }
  campaign();
}

void Replica::campaign() {
  const std::string key(kLeaderKey);
  const store::Compare vacant[] = {store::Compare::absent(key)};
  const store::Op take[] = {store::Op::put(key, options_.id, lease_.load())};
  const store::Op read[] = {store::Op::get(key)};
  auto r = store_.txn(vacant, take, read);
  if (!r) {
    spdlog::warn("cluster: election: {}", r.error().message());
    return;
  }
  if (r->succeeded) {
    setLeading(true, r->revision);
    return;
  }
  const auto& kvs = r->results.at(0).kvs;
  if (kvs.empty()) return;  // vacated meanwhile: the next tick takes it
  const store::KeyValue& held = kvs.front();
  {
    MutexLock lock(mu_);
    leader_ = held.value;
  }
  // Ours from this lease (a lost lease took the key with it).
  setLeading(held.value == options_.id, held.create_revision);
}

void Replica::setLeading(bool leading, store::Revision term) {
  std::vector<std::function<void(bool)>> listeners;
  {
    MutexLock lock(mu_);
    if (leading) {
      term_ = term;
      leader_ = options_.id;
    }
    if (leading_.exchange(leading) == leading) return;
    listeners = leadership_listeners_;
  }
  spdlog::info("cluster: replica {} {} (term {})", options_.id,
               leading ? "leads" : "no longer leads", term);
  for (const auto& l : listeners) l(leading);
}

std::optional<store::Compare> Replica::fence() const {
  MutexLock lock(mu_);
  if (!leading_.load() || term_ == 0) return std::nullopt;
  return store::Compare{std::string(kLeaderKey),
                        store::Compare::Target::CreateRevision,
                        store::Compare::Op::Equal,
                        term_,
                        {}};
}

std::string Replica::leader() const {
  MutexLock lock(mu_);
  return leader_;
}

Result<std::vector<ReplicaInfo>> Replica::replicas() const {
  auto range = store_.range(kReplicasPrefix);
  if (!range) return std::move(range).error();
  std::string leader_id = leader();
  std::vector<ReplicaInfo> out;
  for (const auto& kv : range->kvs) {
    auto parsed = model::parseJson(kv.value);
    if (!parsed || !parsed->is_object()) {
      spdlog::warn("cluster: {} is not a replica's entry; skipped", kv.key);
      continue;
    }
    const Json& doc = *parsed;
    ReplicaInfo info{.id = kv.key.substr(kReplicasPrefix.size()),
                     .api = stringAt(doc, "api"),
                     .southbound = stringAt(doc, "southbound"),
                     .started = stringAt(doc, "started"),
                     .leader = false};
    info.leader = info.id == leader_id;
    out.push_back(std::move(info));
  }
  return out;
}

void Replica::onLeadership(std::function<void(bool)> listener) {
  bool now_leading = false;
  {
    MutexLock lock(mu_);
    leadership_listeners_.push_back(listener);
    now_leading = leading_.load();
  }
  if (now_leading) listener(true);
}

void Replica::onNewLease(std::function<void(store::LeaseId)> listener) {
  MutexLock lock(mu_);
  lease_listeners_.push_back(std::move(listener));
}

}  // namespace canopy::cluster
