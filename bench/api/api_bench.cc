// API load: port-create latency (p50/p99) and throughput with N concurrent
// keep-alive clients, then GET /v2.0/ports latency with 1,000 and 10,000
// ports in the model. Runs canopy-server's store, model and API in-process
// on a loopback port, or drives a server already running at --url (a
// canopy-server or a neutron-server, in noauth mode, on loopback). Bounded in
// count: --ports creates at most that many; lists fill up to --max-list.
// The last line is a JSON summary for bench/api/run.sh.
//
//   build/release/bin/api_bench [--clients 8] [--ports 2000] [--max-list 10000]
//                               [--url http://127.0.0.1:9696]

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "api/neutron_api.h"
#include "http/client.h"
#include "http/server.h"
#include "store/sqlite_store.h"
#include "testing/http_client.h"

namespace {

using Clock = std::chrono::steady_clock;
using canopy::model::Json;

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

std::string stringArg(int argc, char** argv, const char* name, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return argv[i + 1];
  }
  return fallback;
}

int intArg(int argc, char** argv, const char* name, int fallback) {
  std::string v = stringArg(argc, argv, name, "");
  return v.empty() ? fallback : std::atoi(v.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::warn);
  const int clients = std::clamp(intArg(argc, argv, "--clients", 8), 1, 64);
  const int ports = std::clamp(intArg(argc, argv, "--ports", 2000), 1, 20000);
  const int max_list = std::clamp(intArg(argc, argv, "--max-list", 10000), 0, 20000);
  const std::string url = stringArg(argc, argv, "--url", "");

  std::string dir = std::filesystem::temp_directory_path() / "canopy-api-bench-XXXXXX";
  const char* base = std::getenv("CANOPY_BENCH_DIR");
  if (base != nullptr) dir = std::string(base) + "/canopy-api-bench-XXXXXX";
  if (::mkdtemp(dir.data()) == nullptr) return 1;
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};

  std::unique_ptr<canopy::store::Store> store;
  std::unique_ptr<canopy::state::ModelState> state;
  canopy::SystemClock clock;
  std::unique_ptr<canopy::api::NeutronApi> api;
  std::unique_ptr<canopy::http::HttpServer> server;
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  if (!url.empty()) {
    auto parsed = canopy::http::HttpUrl::parse(url);
    if (!parsed || parsed->host != "127.0.0.1") {
      std::fprintf(stderr, "api_bench: --url must be http://127.0.0.1:PORT\n");
      return 2;
    }
    port = parsed->port;
  } else {
    auto opened = canopy::store::SqliteStore::open({.path = dir + "/canopy.db"});
    if (!opened) return 1;
    store = std::move(*opened);
    state = std::make_unique<canopy::state::ModelState>(*store);
    if (!state->start()) return 1;
    api = std::make_unique<canopy::api::NeutronApi>(*state, canopy::api::ApiConfig{}, clock);
    auto started = canopy::http::HttpServer::start(
        {.address = "127.0.0.1", .port = 0, .threads = 2},
        [&](const canopy::http::HttpRequest& r) { return api->handle(r); });
    if (!started) return 1;
    server = std::move(*started);
    port = server->port();
  }

  // Neutron's noauth takes the project from X-Project-Id and roles from X-Roles.
  const std::map<std::string, std::string> project = {{"X-Project-Id", "bench"},
                                                      {"X-Roles", "member"}};
  canopy::testing::HttpClient setup(host, port);
  // Neutron's default port quota (500) would stop the fill: lift it.
  auto quota = setup.request("PUT", "/v2.0/quotas/bench", R"({"quota": {"port": -1}})",
                             {{"X-Project-Id", "admin"}, {"X-Roles", "admin"}});
  if (quota.status != 200) {
    std::fprintf(stderr, "api_bench: quota: HTTP %d %s\n", quota.status, quota.body.c_str());
    return 1;
  }
  auto net = setup.request("POST", "/v2.0/networks", R"({"network": {"name": "bench"}})", project);
  if (net.status != 201) {
    std::fprintf(stderr, "api_bench: network create: HTTP %d %s\n", net.status, net.body.c_str());
    return 1;
  }
  std::string net_id = Json::parse(net.body)["network"]["id"];
  setup.request(
      "POST", "/v2.0/subnets",
      R"({"subnet": {"network_id": ")" + net_id + R"(", "ip_version": 4, "cidr": "10.0.0.0/16"}})",
      project);

  // Port creation under load.
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<double> latencies_ms;
  int errors = 0;
  auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&] {
      canopy::testing::HttpClient client(host, port);
      std::vector<double> mine;
      int my_errors = 0;
      while (next.fetch_add(1) < ports) {
        auto t0 = Clock::now();
        auto r = client.request("POST", "/v2.0/ports",
                                R"({"port": {"network_id": ")" + net_id + R"("}})", project);
        mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        if (r.status != 201) ++my_errors;
      }
      std::lock_guard lock(mu);
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
      errors += my_errors;
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "port create, %d clients, %d ports: %.0f ports/s, p50 %.2f ms, p99 %.2f ms, %d errors\n",
      clients, ports, ports / seconds, percentile(latencies_ms, 0.5),
      percentile(latencies_ms, 0.99), errors);
  std::fflush(stdout);
  Json summary = {{"clients", clients},
                  {"ports", ports},
                  {"create_per_s", ports / seconds},
                  {"create_p50_ms", percentile(latencies_ms, 0.5)},
                  {"create_p99_ms", percentile(latencies_ms, 0.99)},
                  {"create_errors", errors}};

  // Listing: fill up to 1,000 and 10,000 ports (bounded by --max-list).
  int have = ports;
  for (int target : {1000, 10000}) {
    if (target > max_list) break;
    if (target > ports) {
      canopy::testing::HttpClient filler(host, port);
      std::string bulk;
      while (have < target) {
        int n = std::min(100, target - have);
        bulk = R"({"ports": [)";
        for (int i = 0; i < n; ++i) {
          bulk += (i ? "," : "") + std::string(R"({"network_id": ")") + net_id + "\"}";
        }
        bulk += "]}";
        if (filler.request("POST", "/v2.0/ports", bulk, project).status != 201) break;
        have += n;
      }
    }
    canopy::testing::HttpClient reader(host, port);
    std::vector<double> list_ms;
    size_t count = 0;
    for (int i = 0; i < 20; ++i) {
      auto t0 = Clock::now();
      auto r = reader.request("GET", "/v2.0/ports", "", project);
      list_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      if (i == 0) count = Json::parse(r.body)["ports"].size();
    }
    std::printf("GET /v2.0/ports with %zu ports: p50 %.1f ms, p99 %.1f ms\n", count,
                percentile(list_ms, 0.5), percentile(list_ms, 0.99));
    std::fflush(stdout);
    summary["list" + std::to_string(target) + "_count"] = count;
    summary["list" + std::to_string(target) + "_p50_ms"] = percentile(list_ms, 0.5);
    summary["list" + std::to_string(target) + "_p99_ms"] = percentile(list_ms, 0.99);
  }
  if (server) server->stop();
  std::printf("%s\n", summary.dump().c_str());
  return 0;
}
