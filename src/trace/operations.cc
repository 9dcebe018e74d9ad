#include "trace/operations.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "api/neutron_api.h"
#include "http/client.h"
#include "model/agent.h"
#include "model/json.h"
#include "southbound/keys.h"
#include "trace/trace.h"

namespace canopy::trace {
namespace {

using model::stringAt;

http::HttpResponse json(int status, const Json& body) {
  http::HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    if (j > i) parts.emplace_back(path.substr(i, j - i));
    i = j + 1;
  }
  return parts;
}

// Ports that a host serves: VM ports and the router gateways it holds
// (router interfaces and floating IPs live on every host or none).
bool countsOnHost(const std::string& owner) {
  return owner != "network:router_interface" && owner != "network:floatingip";
}

}  // namespace

http::HttpResponse Operations::handle(const http::HttpRequest& request,
                                      const model::Caller& caller) {
  auto parts = splitPath(request.path);  // "canopy", "v1", ...
  if (!caller.is_admin) {
    return api::errorResponse(
        Error(Errc::PermissionDenied, "User does not have admin privileges", "AdminRequired"));
  }
  if (parts.size() == 3 && parts[2] == "trace") {
    if (request.method == "POST") return trace(request);
  } else if (parts.size() == 3 && parts[2] == "status") {
    if (request.method == "GET") return status(request);
  } else if (parts.size() == 3 && parts[2] == "metering") {
    if (request.method == "GET") return metering();
  } else {
    return api::errorResponse(
        Error(Errc::NotFound, "The resource could not be found.", "HTTPNotFound"));
  }
  http::HttpResponse r = api::errorResponse(
      Error(Errc::InvalidArgument, "The method is not allowed for the requested URL.",
            "HTTPMethodNotAllowed"));
  r.status = 405;
  return r;
}

http::HttpResponse Operations::trace(const http::HttpRequest& request) {
  auto body = model::parseJson(request.body);
  if (!body) {
    return api::errorResponse(
        Error(Errc::InvalidArgument, body.error().message(), "HTTPBadRequest"));
  }
  auto parsed = parseRequest(*body);
  if (!parsed) return api::errorResponse(parsed.error());
  // Only the copy is made under the model's lock; the datapaths run outside.
  auto captured = state_.read([&](const state::Tables& t) { return capture(t, *parsed); });
  if (!captured) return api::errorResponse(captured.error());
  if (southbound_ != nullptr) addNeighbors(*captured, southbound_->sessions());
  auto result = run(clock_, *captured, *parsed);
  if (!result) return api::errorResponse(result.error());
  return json(200, {{"trace", std::move(*result)}});
}

// The external next hops each host's agent last reported learning.
void Operations::addNeighbors(Capture& captured,
                              const std::vector<southbound::SouthboundService::SessionInfo>& all) {
  for (auto& h : captured.hosts) {
    for (const auto& s : all) {
      if (s.host != h.agent.host) continue;
      for (const auto& n : s.stats.neighbors()) {
        const std::string& ip = n.ip();
        const std::string& mac = n.mac();
        if ((ip.size() != 4 && ip.size() != 16) || mac.size() != 6) continue;
        CapturedHost::Neighbor out{.switch_key = n.switch_key()};
        out.ip.family = ip.size() == 4 ? 4 : 6;
        std::copy(ip.begin(), ip.end(), out.ip.bytes.begin());
        std::copy(mac.begin(), mac.end(), out.mac.bytes.begin());
        h.neighbors.push_back(out);
      }
    }
  }
}

void Operations::mergeReplicas(const http::HttpRequest& request, Json& agents,
                               std::map<std::string, uint64_t>& drops) const {
  auto replicas = replica_->replicas();
  if (!replicas) {
    spdlog::warn("status: the replicas: {}", replicas.error().message());
    return;
  }
  // The caller's credentials go along: every replica checks them as its own.
  std::vector<std::pair<std::string, std::string>> headers;
  for (const char* h : {"x-auth-token", "x-project-id", "x-roles"}) {
    if (!request.header(h).empty()) headers.emplace_back(h, std::string(request.header(h)));
  }
  for (const auto& r : *replicas) {
    if (r.id == replica_->id()) continue;
    auto url = http::HttpUrl::parse(r.api);
    if (!url) continue;
    auto reply = http::httpRequest(*url, "GET", url->path + "/canopy/v1/status?scope=replica", "",
                                   headers, std::chrono::seconds(3));
    if (!reply || reply->status != 200) {
      spdlog::warn("status: replica {} at {} did not answer: {}", r.id, r.api,
                   reply ? std::to_string(reply->status) : reply.error().message());
      continue;
    }
    auto body = model::parseJson(reply->body);
    if (!body) continue;
    Json theirs = model::memberAt(model::memberAt(*body, "status"), "agents");
    if (!theirs.is_array()) continue;
    for (const auto& a : theirs) {
      if (!a.is_object() || !a.value("connected", false)) continue;
      std::string host = model::stringAt(a, "host");
      for (auto& mine : agents) {
        if (model::stringAt(mine, "host") != host || mine.value("connected", false)) continue;
        for (const char* field : {"connected", "applied_version", "latest_version",
                                  "considered_revision", "packets", "outputs", "drops"}) {
          if (a.contains(field)) mine[field] = a[field];
        }
        if (auto d = a.find("drops"); d != a.end() && d->is_object()) {
          for (const auto& [reason, count] : d->items()) {
            if (count.is_number_unsigned()) drops[reason] += count.get<uint64_t>();
          }
        }
      }
    }
  }
}

// Metering labels' counts, summed over the hosts that counted them (each
// host's agent reports what it counted since it started; a label gone is
// left out).
http::HttpResponse Operations::metering() {
  Json labels = Json::array();
  state_.read([&](const state::Tables& t) {
    std::map<std::string, std::pair<uint64_t, uint64_t>> sums;
    for (const auto& [host, d] : t.collection(southbound::kMeterStatsCollection)) {
      auto counted = d.doc.find("labels");
      if (counted == d.doc.end() || !counted->is_object()) continue;  // not ours
      for (const auto& [label, c] : counted->items()) {
        if (!c.is_object()) continue;
        auto count = [&c = c](const char* field) -> uint64_t {
          auto it = c.find(field);
          return it != c.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
        };
        auto& sum = sums[label];
        sum.first += count("packets");
        sum.second += count("bytes");
      }
    }
    for (const auto& [id, d] : t.collection("metering-labels")) {
      auto sum = sums.find(id);
      labels.push_back({{"id", id},
                        {"name", stringAt(d.doc, "name")},
                        {"packets", sum == sums.end() ? 0 : sum->second.first},
                        {"bytes", sum == sums.end() ? 0 : sum->second.second}});
    }
  });
  return json(200, {{"metering_labels", std::move(labels)}});
}

http::HttpResponse Operations::status(const http::HttpRequest& request) {
  bool replica_only = false;  // another replica asks for this one's sessions
  for (const auto& [k, v] : request.query) {
    replica_only = replica_only || (k == "scope" && v == "replica");
  }
  std::map<std::string, southbound::SouthboundService::SessionInfo> sessions;
  if (southbound_ != nullptr) {
    for (auto& s : southbound_->sessions()) sessions[s.host] = std::move(s);
  }
  Json agents = Json::array();
  Json per_host = Json::object();
  std::map<std::string, uint64_t> drops;
  uint64_t revision = 0;
  state_.read([&](const state::Tables& t) {
    revision = static_cast<uint64_t>(state_.appliedRevision());
    for (const auto& [id, d] : t.collection("ports")) {
      if (!countsOnHost(stringAt(d.doc, "device_owner"))) continue;
      std::string host = stringAt(d.doc, "binding:host_id");
      per_host[host] = per_host.value(host, 0) + 1;
    }
    for (const auto& [host, d] : t.collection(southbound::kAgentsCollection)) {
      model::Agent agent = model::Agent::fromJson(d.doc);
      Json a = {{"host", host},
                {"tunnel_ip", agent.tunnel_ip},
                {"alive", agent.alive},
                {"static", agent.is_static},
                {"gateway_capable", agent.gateway_capable},
                {"physical_networks", agent.physical_networks},
                {"ports", per_host.value(host, 0)},
                {"connected", false},
                {"replica", nullptr},
                {"applied_version", nullptr},
                {"latest_version", nullptr},
                {"considered_revision", nullptr},
                {"drops", Json::object()}};
      if (const state::Document* s = t.find(southbound::kSessionsCollection, host)) {
        a["replica"] = stringAt(s->doc, "replica");
      }
      if (auto s = sessions.find(host); s != sessions.end()) {
        a["connected"] = true;
        a["applied_version"] = s->second.applied_version;
        a["latest_version"] = s->second.latest_version;
        a["considered_revision"] = s->second.considered_revision;
        a["packets"] = s->second.stats.packets();
        a["outputs"] = s->second.stats.outputs();
        for (const auto& [reason, count] : s->second.stats.drops()) {
          a["drops"][reason] = count;
          drops[reason] += count;
        }
      }
      agents.push_back(std::move(a));
    }
    return 0;
  });
  Json replicas = Json::array();
  if (replica_ != nullptr && !replica_only) {
    mergeReplicas(request, agents, drops);
    if (auto all = replica_->replicas()) {
      for (const auto& r : *all) {
        replicas.push_back({{"id", r.id},
                            {"api", r.api},
                            {"southbound", r.southbound},
                            {"started", r.started},
                            {"leader", r.leader}});
      }
    }
  }
  std::vector<std::pair<std::string, uint64_t>> sorted(drops.begin(), drops.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  Json top = Json::array();
  for (const auto& [reason, count] : sorted) top.push_back({{"reason", reason}, {"count", count}});
  return json(200, {{"status",
                     {{"model_revision", revision},
                      {"replica", replica_ != nullptr ? Json(replica_->id()) : Json(nullptr)},
                      {"replicas", std::move(replicas)},
                      {"agents", std::move(agents)},
                      {"ports_per_host", std::move(per_host)},
                      {"drops", std::move(top)}}}});
}

}  // namespace canopy::trace
