// Fuzzes Octavia's API's handling of request bodies and queries, from the
// bytes to validation to the model: a real OctaviaApi over a real store with
// a network and subnet, and a load balancer with a listener, a pool, a
// member and a health monitor made once. An input's first byte picks the
// request (method, resource, which existing object), its second the caller
// (an admin, or a member of one of two projects); the rest is the body (or,
// for lists, the query string).
//
// Besides crashes (ASan, UBSan), these abort: a 5xx answer other than the
// provider's 501 (bad input must get a 4xx), an error without Octavia's
// fault body, a success without the resource's JSON. What a create made is
// deleted again, so the model stays small.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "api/neutron_api.h"
#include "base/clock.h"
#include "http/message.h"
#include "octavia/octavia_api.h"
#include "state/model_state.h"
#include "store/sqlite_store.h"

namespace {

using canopy::http::HttpRequest;
using canopy::http::HttpResponse;
using canopy::model::Json;

struct World {
  std::string dir;
  canopy::FakeClock clock;
  std::unique_ptr<canopy::store::Store> store;
  std::unique_ptr<canopy::state::ModelState> state;
  std::unique_ptr<canopy::api::NeutronApi> neutron;
  std::unique_ptr<canopy::octavia::OctaviaApi> api;
  std::map<std::string, std::string> ids;  // existing objects, by collection
};

World* g_world = nullptr;

void removeDir() {
  if (g_world == nullptr) return;
  g_world->api.reset();
  g_world->neutron.reset();
  g_world->state.reset();
  g_world->store.reset();
  std::error_code ec;
  std::filesystem::remove_all(g_world->dir, ec);
}

HttpRequest request(const std::string& method, const std::string& path, const std::string& body,
                    const std::string& project, bool admin) {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.body = body;
  r.headers["x-project-id"] = project;
  if (admin) r.headers["x-roles"] = "admin";
  return r;
}

std::string made(bool neutron, const std::string& path, const std::string& member,
                 const std::string& body) {
  auto r = request("POST", path, body, "p1", true);
  HttpResponse out = neutron ? g_world->neutron->handle(r) : g_world->api->handle(r);
  if (out.status != 201) {
    std::fprintf(stderr, "set-up: POST %s: %d %s\n", path.c_str(), out.status, out.body.c_str());
    std::abort();
  }
  return Json::parse(out.body)[member]["id"];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/canopy-fuzz-lb-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_world = new World;
  g_world->dir = pattern;
  std::atexit(removeDir);
  auto store = canopy::store::SqliteStore::open({.path = pattern + "/canopy.db"});
  if (!store) std::abort();
  g_world->store = std::move(*store);
  g_world->state = std::make_unique<canopy::state::ModelState>(*g_world->store);
  if (!g_world->state->start()) std::abort();
  g_world->neutron = std::make_unique<canopy::api::NeutronApi>(
      *g_world->state, canopy::api::ApiConfig{}, g_world->clock);
  g_world->api = std::make_unique<canopy::octavia::OctaviaApi>(
      *g_world->state, canopy::octavia::OctaviaConfig{}, g_world->clock);
  auto& ids = g_world->ids;
  ids["networks"] = made(true, "/v2.0/networks", "network", R"({"network": {"name": "n"}})");
  ids["subnets"] = made(true, "/v2.0/subnets", "subnet",
                        R"({"subnet": {"network_id": ")" + ids["networks"] +
                            R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})");
  ids["loadbalancers"] = made(false, "/v2/lbaas/loadbalancers", "loadbalancer",
                              R"({"loadbalancer": {"vip_subnet_id": ")" + ids["subnets"] + "\"}}");
  ids["listeners"] = made(false, "/v2/lbaas/listeners", "listener",
                          R"({"listener": {"protocol": "TCP", "protocol_port": 80,
                              "loadbalancer_id": ")" +
                              ids["loadbalancers"] + "\"}}");
  ids["pools"] = made(false, "/v2/lbaas/pools", "pool",
                      R"({"pool": {"protocol": "TCP", "lb_algorithm": "ROUND_ROBIN",
                          "listener_id": ")" +
                          ids["listeners"] + "\"}}");
  ids["members"] = made(false, "/v2/lbaas/pools/" + ids["pools"] + "/members", "member",
                        R"({"member": {"address": "10.0.0.9", "protocol_port": 80}})");
  ids["healthmonitors"] = made(false, "/v2/lbaas/healthmonitors", "healthmonitor",
                               R"({"healthmonitor": {"type": "TCP", "delay": 5, "timeout": 3,
                                   "max_retries": 3, "pool_id": ")" +
                                   ids["pools"] + "\"}}");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* const kKinds[][2] = {{"loadbalancers", "loadbalancer"},
                                          {"listeners", "listener"},
                                          {"pools", "pool"},
                                          {"members", "member"},
                                          {"healthmonitors", "healthmonitor"}};
  constexpr size_t kCount = std::size(kKinds);
  uint8_t pick = data[0];
  uint8_t who = data[1];
  std::string rest(reinterpret_cast<const char*>(data + 2), size - 2);
  const auto& kind = kKinds[pick % kCount];
  std::string collection = kind[0], member = kind[1];
  auto& ids = g_world->ids;
  std::string path = collection == "members" ? "/v2/lbaas/pools/" + ids["pools"] + "/members"
                                             : "/v2/lbaas/" + collection;
  std::string method = "POST";
  HttpRequest r = request(method, path, rest, (who & 1) != 0 ? "p1" : "p2", (who & 2) != 0);
  switch ((pick / kCount) % 3) {
    case 0:
      break;
    case 1:
      r.method = "PUT";
      r.path += "/" + ids[collection];
      break;
    default:
      // A list with the bytes as its query.
      r.method = "GET";
      r.body.clear();
      r.query = canopy::http::parseQuery(rest);
      break;
  }
  HttpResponse out = g_world->api->handle(r);
  Json body = out.body.empty() ? Json() : Json::parse(out.body, nullptr, false);
  if (out.status >= 500 && out.status != 501) {
    std::fprintf(stderr, "%s %s -> %d %s\n", r.method.c_str(), r.path.c_str(), out.status,
                 out.body.c_str());
    std::abort();
  }
  if (out.status >= 400) {
    if (!body.is_object() || !body.contains("faultstring") || !body.contains("faultcode")) {
      std::fprintf(stderr, "an error without a fault body: %d %s\n", out.status, out.body.c_str());
      std::abort();
    }
    return 0;
  }
  bool listed = r.method == "GET";
  if (!body.is_object() || !body.contains(listed ? collection : member)) {
    std::fprintf(stderr, "a success without the resource: %d %s\n", out.status, out.body.c_str());
    std::abort();
  }
  if (r.method == "POST") {
    std::string id = body[member].value("id", "");
    std::string at =
        collection == "members" ? path + "/" + id : "/v2/lbaas/" + collection + "/" + id;
    HttpRequest remove = request("DELETE", at, "", "p1", true);
    remove.query = {{"cascade", "true"}};
    HttpResponse gone = g_world->api->handle(remove);
    if (gone.status != 204) {
      std::fprintf(stderr, "DELETE %s -> %d %s\n", at.c_str(), gone.status, gone.body.c_str());
      std::abort();
    }
  }
  return 0;
}
