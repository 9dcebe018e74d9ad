#include "notify/nova_notifier.h"

#include <spdlog/spdlog.h>

#include <set>

#include "api/keystone_auth.h"
#include "http/client.h"
#include "model/json.h"

namespace canopy::notify {
namespace {

using model::Json;
using model::stringAt;

bool isInstancePort(const Json& port) {
  return stringAt(port, "device_owner").starts_with("compute:") &&
         !stringAt(port, "device_id").empty();
}

NovaEvent event(std::string name, const Json& port, std::string status = "completed") {
  return {std::move(name), stringAt(port, "device_id"), stringAt(port, "id"), std::move(status)};
}

// A floating IP's change: network-changed for the instance ports it left
// and joined.
void floatingIpEvents(const state::Change& c, const state::Tables& tables,
                      std::vector<NovaEvent>& out) {
  std::string before = c.before ? stringAt(*c.before, "port_id") : "";
  std::string after = c.after ? stringAt(*c.after, "port_id") : "";
  if (before == after) return;
  for (const std::string& id : {before, after}) {
    if (id.empty()) continue;
    const state::Document* port = tables.find("ports", id);
    if (port != nullptr && isInstancePort(port->doc)) {
      out.push_back(event("network-changed", port->doc));
    }
  }
}

}  // namespace

std::vector<NovaEvent> novaEventsFor(const state::Change& c, const state::Tables& tables) {
  std::vector<NovaEvent> out;
  if (c.collection == "floatingips") {
    floatingIpEvents(c, tables, out);
    return out;
  }
  if (c.collection != "ports") return out;
  if (!c.after) {
    if (c.before && isInstancePort(*c.before))
      out.push_back(event("network-vif-deleted", *c.before));
    return out;
  }
  const Json& now = *c.after;
  if (!isInstancePort(now)) return out;
  std::string was = c.before ? stringAt(*c.before, "status") : "";
  std::string is = stringAt(now, "status");
  if (is != was) {
    if (is == "ACTIVE") {
      out.push_back(event("network-vif-plugged", now));
    } else if (is == "ERROR") {
      out.push_back(event("network-vif-plugged", now, "failed"));
    } else if (is == "DOWN" && was == "ACTIVE") {
      out.push_back(event("network-vif-unplugged", now));
    }
  }
  if (c.before && isInstancePort(*c.before) &&
      model::memberAt(*c.before, "fixed_ips") != model::memberAt(now, "fixed_ips")) {
    out.push_back(event("network-changed", now));
  }
  return out;
}

void NovaNotifier::Queue::add(std::vector<NovaEvent> events) {
  if (events.empty()) return;
  {
    MutexLock lock(mu);
    for (auto& e : events) {
      if (pending.size() >= max_pending) {
        ++stats.dropped;
        continue;
      }
      pending.emplace_back(std::move(e), 0);
    }
  }
  cv.notify_all();
}

Result<std::unique_ptr<NovaNotifier>> NovaNotifier::start(state::ModelState& state,
                                                          NovaOptions options, const Clock& clock) {
  if (options.url.empty() && options.auth_url.empty()) {
    return Error(Errc::InvalidArgument, "the Nova notifier needs Nova's URL or Keystone's");
  }
  if (!options.url.empty()) {
    if (auto u = http::HttpUrl::parse(options.url); !u) return std::move(u).error();
  }
  if (!options.auth_url.empty()) {
    if (auto u = http::HttpUrl::parse(options.auth_url); !u) return std::move(u).error();
  }
  std::unique_ptr<NovaNotifier> n(new NovaNotifier(std::move(options), clock));
  state.observe([queue = n->queue_, active = n->options_.active](
                    const std::vector<state::Change>& changes, const state::Tables& tables) {
    if (active && !active()) return;
    std::vector<NovaEvent> events;
    for (const auto& c : changes) {
      auto more = novaEventsFor(c, tables);
      events.insert(events.end(), more.begin(), more.end());
    }
    queue->add(std::move(events));
  });
  n->thread_ = std::thread([self = n.get()] { self->run(); });
  return n;
}

NovaNotifier::NovaNotifier(NovaOptions options, const Clock& clock)
    : options_(std::move(options)),
      clock_(clock),
      queue_(std::make_shared<Queue>(options_.max_pending)) {}

NovaNotifier::~NovaNotifier() {
  {
    MutexLock lock(queue_->mu);
    queue_->stopping = true;
  }
  queue_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
}

NovaNotifier::Stats NovaNotifier::stats() const {
  MutexLock lock(queue_->mu);
  Stats s = queue_->stats;
  s.pending = queue_->pending.size();
  return s;
}

void NovaNotifier::run() {
  for (;;) {
    std::vector<std::pair<NovaEvent, int>> batch;
    {
      MutexLock lock(queue_->mu);
      // Events gather for an interval (Neutron's batching), then go together.
      while (!queue_->stopping && queue_->pending.empty()) queue_->cv.wait(queue_->mu);
      auto until = std::chrono::steady_clock::now() + options_.interval;
      while (!queue_->stopping &&
             queue_->cv.wait_until(queue_->mu, until) != std::cv_status::timeout) {
      }
      if (queue_->stopping) return;
      batch.assign(queue_->pending.begin(), queue_->pending.end());
      queue_->pending.clear();
    }
    auto again = send(std::move(batch));
    MutexLock lock(queue_->mu);
    for (auto& [e, attempts] : again) {
      if (attempts >= options_.attempts || queue_->pending.size() >= queue_->max_pending) {
        ++queue_->stats.dropped;
        spdlog::warn("nova notifier: {} for instance {} (port {}) dropped after {} attempts",
                     e.name, e.server_uuid, e.tag, attempts);
        continue;
      }
      queue_->pending.emplace_back(std::move(e), attempts);
    }
  }
}

Result<void> NovaNotifier::authenticate(bool renew) {
  if (options_.auth_url.empty()) {
    nova_url_ = options_.url;
    return ok();
  }
  if (!renew && !token_.empty() && clock_.wallNow() + std::chrono::minutes(1) < token_expires_) {
    return ok();
  }
  auto url = http::HttpUrl::parse(options_.auth_url);
  if (!url) return std::move(url).error();
  Json body = api::passwordAuthBody(options_.username, options_.password, options_.project_name,
                                    options_.user_domain, options_.project_domain);
  auto r = http::httpRequest(*url, "POST", url->path + "/auth/tokens", body.dump(),
                             {{"Content-Type", "application/json"}}, options_.timeout);
  if (!r) return std::move(r).error();
  if (r->status != 201) {
    return Error(Errc::Unavailable, "Keystone refused the Nova notifier's user '" +
                                        options_.username + "': HTTP " + std::to_string(r->status));
  }
  auto parsed = model::parseJson(r->body);
  if (!parsed || !(*parsed)["token"].is_object()) {
    return Error(Errc::Unavailable, "Keystone's token answer is not JSON");
  }
  const Json& token = (*parsed)["token"];
  std::string nova = options_.url;
  if (nova.empty()) {
    // Nova's endpoint from the catalog: service type compute, the interface
    // and region configured.
    for (const auto& service : token.value("catalog", Json::array())) {
      if (stringAt(service, "type") != "compute") continue;
      for (const auto& e : service.value("endpoints", Json::array())) {
        if (stringAt(e, "interface") != options_.endpoint_type) continue;
        if (!options_.region.empty() && stringAt(e, "region_id") != options_.region &&
            stringAt(e, "region") != options_.region) {
          continue;
        }
        nova = stringAt(e, "url");
        break;
      }
    }
    if (nova.empty()) {
      return Error(Errc::Unavailable,
                   "Keystone's catalog has no " + options_.endpoint_type + " compute endpoint" +
                       (options_.region.empty() ? "" : " in " + options_.region));
    }
  }
  token_ = r->header("X-Subject-Token");
  nova_url_ = nova;
  token_expires_ = api::parseKeystoneTime(stringAt(token, "expires_at"))
                       .value_or(clock_.wallNow() + std::chrono::minutes(5));
  return ok();
}

std::vector<std::pair<NovaEvent, int>> NovaNotifier::send(
    std::vector<std::pair<NovaEvent, int>> batch) {
  for (auto& [e, attempts] : batch) ++attempts;
  bool renewed = false;
  for (;;) {
    if (auto a = authenticate(renewed); !a) {
      spdlog::warn("nova notifier: {}", a.error().message());
      MutexLock lock(queue_->mu);
      ++queue_->stats.failed_calls;
      return batch;
    }
    auto url = http::HttpUrl::parse(nova_url_);
    if (!url) {
      spdlog::warn("nova notifier: Nova's URL '{}': {}", nova_url_, url.error().message());
      return batch;
    }
    Json events = Json::array();
    for (const auto& [e, attempts] : batch) {
      events.push_back(
          {{"name", e.name}, {"server_uuid", e.server_uuid}, {"tag", e.tag}, {"status", e.status}});
    }
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"}, {"Accept", "application/json"}};
    if (!token_.empty()) headers.emplace_back("X-Auth-Token", token_);
    auto r = http::httpRequest(*url, "POST", url->path + "/os-server-external-events",
                               Json{{"events", events}}.dump(), headers, options_.timeout);
    if (r && r->status == 401 && !renewed && !options_.auth_url.empty()) {
      renewed = true;  // the token expired early: once more with a new one
      continue;
    }
    if (!r || r->status >= 500 || r->status == 401 || r->status == 403) {
      spdlog::warn("nova notifier: {} events not taken: {}", batch.size(),
                   r ? "HTTP " + std::to_string(r->status) : r.error().message());
      MutexLock lock(queue_->mu);
      ++queue_->stats.failed_calls;
      return batch;
    }
    // 200: all taken; 207: each event has its code; 404: no instance known.
    uint64_t taken = 0, unknown = 0;
    if (r->status == 200 || r->status == 207) {
      auto answer = model::parseJson(r->body);
      const Json& each =
          answer && answer->is_object() ? model::memberAt(*answer, "events") : Json();
      for (size_t i = 0; i < batch.size(); ++i) {
        int code = each.is_array() && i < each.size() ? each[i].value("code", 200) : r->status;
        if (code == 200) {
          ++taken;
        } else {
          ++unknown;
          spdlog::info("nova notifier: Nova did not take {} for instance {} (port {}): {}",
                       batch[i].first.name, batch[i].first.server_uuid, batch[i].first.tag, code);
        }
      }
    } else {
      unknown = batch.size();
      spdlog::info("nova notifier: Nova answered {} events with HTTP {}", batch.size(), r->status);
    }
    MutexLock lock(queue_->mu);
    queue_->stats.sent += taken;
    queue_->stats.dropped += unknown;
    return {};
  }
}

}  // namespace canopy::notify
