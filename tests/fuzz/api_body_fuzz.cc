// Fuzzes the Neutron API's handling of request bodies, from the bytes to
// validation to the model: a real NeutronApi over a real store, with a
// network, a subnet, a port, a router and a security group made once. An
// input's first byte picks the request (method, collection, which existing
// object), the rest is its body; a bodies' second byte picks the caller (an
// admin or a member of one of two projects) and, for member actions, which
// action.
//
// Besides crashes (ASan, UBSan), these abort: a 5xx answer (bad input must
// get a 4xx), an error answer without Neutron's error body, a success
// without a JSON body of the resource. What a create made is deleted again,
// so the model stays small and quotas never fill.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "api/neutron_api.h"
#include "base/clock.h"
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
  std::unique_ptr<canopy::api::NeutronApi> api;
  // Existing objects, by collection.
  std::map<std::string, std::string> ids;
};

World* g_world = nullptr;

void removeDir() {
  if (g_world == nullptr) return;
  g_world->api.reset();
  g_world->state.reset();
  g_world->store.reset();
  std::error_code ec;
  std::filesystem::remove_all(g_world->dir, ec);
}

HttpResponse call(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& project, bool admin) {
  HttpRequest r;
  r.method = method;
  r.path = path;
  r.body = body;
  r.headers["x-project-id"] = project;
  if (admin) r.headers["x-roles"] = "admin";
  return g_world->api->handle(r);
}

std::string made(const std::string& collection, const std::string& member,
                 const std::string& body) {
  auto r = call("POST", "/v2.0/" + collection, body, "p1", true);
  if (r.status != 201) {
    std::fprintf(stderr, "set-up: POST %s: %d %s\n", collection.c_str(), r.status, r.body.c_str());
    std::abort();
  }
  return Json::parse(r.body)[member]["id"];
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  // On tmpfs where there is one: every write commits (and syncs) the store.
  const char* base = std::filesystem::is_directory("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/canopy-fuzz-api-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_world = new World;
  g_world->dir = pattern;
  std::atexit(removeDir);
  auto store = canopy::store::SqliteStore::open({.path = pattern + "/canopy.db"});
  if (!store) std::abort();
  g_world->store = std::move(*store);
  g_world->state = std::make_unique<canopy::state::ModelState>(*g_world->store);
  if (!g_world->state->start()) std::abort();
  g_world->api = std::make_unique<canopy::api::NeutronApi>(
      *g_world->state, canopy::api::ApiConfig{}, g_world->clock);
  auto& ids = g_world->ids;
  ids["networks"] = made("networks", "network", R"({"network": {"name": "n"}})");
  ids["subnets"] = made("subnets", "subnet",
                        R"({"subnet": {"network_id": ")" + ids["networks"] +
                            R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})");
  ids["ports"] = made("ports", "port",
                      R"({"port": {"network_id": ")" + ids["networks"] +
                          R"(", "device_owner": "compute:nova", "device_id": "vm-1"}})");
  ids["routers"] = made("routers", "router", R"({"router": {"name": "r"}})");
  ids["security-groups"] =
      made("security-groups", "security_group", R"({"security_group": {"name": "g"}})");
  ids["floatingips"] = "";
  ids["security-group-rules"] = "";
  ids["address-scopes"] = made("address-scopes", "address_scope",
                               R"({"address_scope": {"name": "s", "ip_version": 4}})");
  ids["subnetpools"] = made("subnetpools", "subnetpool",
                            R"({"subnetpool": {"name": "p", "prefixes": ["10.80.0.0/16"],
                                "default_prefixlen": 24, "address_scope_id": ")" +
                                ids["address-scopes"] + "\"}}");
  ids["address-groups"] = made("address-groups", "address_group",
                               R"({"address_group": {"addresses": ["10.9.0.0/24"]}})");
  ids["rbac-policies"] =
      made("rbac-policies", "rbac_policy",
           R"({"rbac_policy": {"object_type": "network", "object_id": ")" + ids["networks"] +
               R"(", "target_tenant": "p2", "action": "access_as_shared"}})");
  ids["network-segment-ranges"] =
      made("network-segment-ranges", "network_segment_range",
           R"({"network_segment_range": {"network_type": "geneve", "minimum": 9000,
               "maximum": 9100}})");
  // The network's segment, made with it.
  HttpResponse segments = call("GET", "/v2.0/segments", "", "p1", true);
  ids["segments"] = Json::parse(segments.body)["segments"][0]["id"];
  ids["flavors"] = made("flavors", "flavor", R"({"flavor": {"service_type": "L3_ROUTER_NAT"}})");
  ids["service_profiles"] =
      made("service_profiles", "service_profile", R"({"service_profile": {"metainfo": "{}"}})");
  ids["local-ips"] =
      made("local-ips", "local_ip", R"({"local_ip": {"network_id": ")" + ids["networks"] + "\"}}");
  // A router's conntrack helper, for PUTs on the sub-resource.
  HttpResponse helper =
      call("POST", "/v2.0/routers/" + ids["routers"] + "/conntrack_helpers",
           R"({"conntrack_helper": {"helper": "ftp", "protocol": "tcp", "port": 21}})", "p1", true);
  if (helper.status != 201) std::abort();
  ids["conntrack_helpers"] = Json::parse(helper.body)["conntrack_helper"]["id"];
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const char* const kCollections[] = {"networks",
                                             "subnets",
                                             "ports",
                                             "routers",
                                             "security-groups",
                                             "security-group-rules",
                                             "floatingips",
                                             "quotas",
                                             "subnetpools",
                                             "address-scopes",
                                             "address-groups",
                                             "rbac-policies",
                                             "network-segment-ranges",
                                             "segments",
                                             "flavors",
                                             "service_profiles",
                                             "local-ips"};
  constexpr size_t kKinds = std::size(kCollections);
  uint8_t pick = data[0];
  uint8_t who = data[1];
  std::string body(reinterpret_cast<const char*>(data + 2), size - 2);
  size_t kind = pick % kKinds;
  std::string collection = kCollections[kind];
  std::string project = (who & 1) != 0 ? "p1" : "p2";
  bool admin = (who & 2) != 0;
  std::string method;
  std::string path = "/v2.0/" + collection;
  switch ((pick / kKinds) % 4) {
    case 0:
      method = "POST";
      break;
    case 1:
      method = "PUT";
      path += "/" + (collection == "quotas" ? project : g_world->ids[collection]);
      break;
    case 2: {
      // A member action: a router's interfaces and routes, a pool's
      // prefixes, an address group's addresses; or a sub-resource: a
      // router's conntrack helpers, a local IP's port associations.
      static const char* const kActions[][3] = {{"PUT", "routers", "/add_router_interface"},
                                                {"PUT", "routers", "/add_extraroutes"},
                                                {"PUT", "subnetpools", "/add_prefixes"},
                                                {"PUT", "subnetpools", "/remove_prefixes"},
                                                {"PUT", "address-groups", "/add_addresses"},
                                                {"PUT", "address-groups", "/remove_addresses"},
                                                {"POST", "routers", "/conntrack_helpers"},
                                                {"PUT", "routers", "/conntrack_helpers/"},
                                                {"POST", "local-ips", "/port_associations"},
                                                {"POST", "ports", "/bindings"},
                                                {"PUT", "ports", "/bindings/compute-1"}};
      const auto& action = kActions[(who >> 2) % std::size(kActions)];
      method = action[0];
      path = std::string("/v2.0/") + action[1] + "/" + g_world->ids[action[1]] + action[2];
      if (path.ends_with("/")) path += g_world->ids["conntrack_helpers"];
      break;
    }
    default:
      method = "PUT";
      path += "/" + g_world->ids[collection] + "/tags";
      break;
  }
  HttpResponse r = call(method, path, body, project, admin);
  if (r.status >= 500) {
    std::fprintf(stderr, "%s %s -> %d %s\n", method.c_str(), path.c_str(), r.status,
                 r.body.c_str());
    std::abort();
  }
  Json answer = r.body.empty() ? Json() : Json::parse(r.body, nullptr, false);
  if (r.status >= 400) {
    const Json& e = answer.is_object() ? answer.value("NeutronError", Json()) : Json();
    if (!e.is_object() || !e.value("type", Json()).is_string() ||
        !e.value("message", Json()).is_string() || e["message"].get<std::string>().empty()) {
      std::fprintf(stderr, "%s %s -> %d without Neutron's error body: %s\n", method.c_str(),
                   path.c_str(), r.status, r.body.c_str());
      std::abort();
    }
    return 0;
  }
  if (r.status != 204 && !answer.is_object()) {
    std::fprintf(stderr, "%s %s -> %d without a JSON body: %s\n", method.c_str(), path.c_str(),
                 r.status, r.body.c_str());
    std::abort();
  }
  // What was made goes again (one or a bulk of them).
  if (method == "POST" && r.status == 201) {
    std::vector<std::string> made_ids;
    for (const auto& [key, value] : answer.items()) {
      if (value.is_object()) made_ids.push_back(canopy::model::stringAt(value, "id"));
      if (!value.is_array()) continue;
      for (const auto& m : value) made_ids.push_back(canopy::model::stringAt(m, "id"));
    }
    for (const auto& id : made_ids) {
      if (id.empty()) continue;  // a port association: named by its port
      auto d = call("DELETE", path + "/" + id, "", "p1", true);
      if (d.status != 204 && d.status != 404 && d.status != 409) {
        std::fprintf(stderr, "DELETE %s/%s -> %d %s\n", collection.c_str(), id.c_str(), d.status,
                     d.body.c_str());
        std::abort();
      }
    }
  }
  return 0;
}
