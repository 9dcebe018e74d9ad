// The control plane at scale, against real canopy-server replicas (started by
// bench/southbound/cluster.sh on an etcd cluster): N agents (real gRPC
// streams, one connection each, run by southbound_fleet processes) with a
// port each on one network, the worst case: every write concerns every agent.
//
// 1. API throughput: the N ports created (bound to host-i) by 8 clients
//    spread over the replicas; ports per second.
// 2. The fleet connects; memory: the replicas' resident size with the agents
//    connected and idle, minus before they came, per agent.
// 3. Rounds: a new port on the network through replica r mod R; the time
//    until every agent's view holds it (p50, p99, max over rounds), and
//    each agent's own time (p50, p99 over agents and rounds).
//
// With --layout separate, each agent's port is on a network of its own
// instead: what an agent costs the servers when its view is small (no rounds).
//
//   cluster_bench --api http://127.0.0.1:9701,... --southbound 127.0.0.1:7001,...
//       --pids 123,456 --agents 1000 --fleets 4 --rounds 30 --fleet-bin PATH

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "fleet.h"
#include "http/client.h"
#include "model/json.h"

using namespace canopy;

namespace {

// Resident memory of a process, KiB.
long rssKiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

struct Api {
  std::vector<http::HttpUrl> urls;
  Result<model::Json> call(size_t replica, const std::string& method, const std::string& path,
                           const std::string& body, int want) const {
    const auto& url = urls[replica % urls.size()];
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto r = http::httpRequest(
          url, method, url.path + path, body,
          {{"Content-Type", "application/json"}, {"X-Project-Id", "bench"}, {"X-Roles", "admin"}},
          std::chrono::seconds(30));
      if (!r) return std::move(r).error();
      if (r->status == want) return model::parseJson(r->body.empty() ? "{}" : r->body);
      if (r->status != 409 && r->status != 503) {
        return Error(Errc::Internal, method + " " + path + ": " + std::to_string(r->status) + " " +
                                         r->body.substr(0, 300));
      }
    }
    return Error(Errc::Unavailable, method + " " + path + ": gave up after 5 attempts");
  }
};

}  // namespace

int main(int argc, char** argv) {
  std::string api_list, southbound, pids_list, fleet_bin, layout = "shared";
  int agents = 1000, fleets = 4, rounds = 30, clients = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--api") api_list = argv[i + 1];
    if (a == "--southbound") southbound = argv[i + 1];
    if (a == "--pids") pids_list = argv[i + 1];
    if (a == "--fleet-bin") fleet_bin = argv[i + 1];
    if (a == "--layout") layout = argv[i + 1];
    if (a == "--agents") agents = std::stoi(argv[i + 1]);
    if (a == "--fleets") fleets = std::stoi(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
    if (a == "--clients") clients = std::stoi(argv[i + 1]);
  }
  Api api;
  for (const auto& u : bench::splitList(api_list)) {
    auto url = http::HttpUrl::parse(u);
    if (!url) {
      std::fprintf(stderr, "%s\n", url.error().message().c_str());
      return 2;
    }
    api.urls.push_back(*url);
  }
  std::vector<int> pids;
  for (const auto& p : bench::splitList(pids_list)) pids.push_back(std::stoi(p));
  if (api.urls.empty() || southbound.empty() || fleet_bin.empty() || agents <= 0) {
    std::fprintf(stderr,
                 "usage: cluster_bench --api URLS --southbound LIST --pids PIDS "
                 "--fleet-bin PATH [--agents N --fleets F --rounds R]\n");
    return 2;
  }
  auto die = [](const Error& e) {
    std::fprintf(stderr, "cluster_bench: %s\n", e.message().c_str());
    return 1;
  };

  // The project may hold every port; then the network, and one port per
  // agent, timed.
  auto quota = api.call(0, "PUT", "/v2.0/quotas/bench",
                        R"({"quota": {"port": -1, "network": -1, "subnet": -1}})", 200);
  if (!quota) return die(quota.error());
  auto net = api.call(0, "POST", "/v2.0/networks", R"({"network": {"name": "fleet"}})", 201);
  if (!net) return die(net.error());
  std::string net_id = (*net)["network"].value("id", "");
  auto subnet = api.call(
      0, "POST", "/v2.0/subnets",
      R"({"subnet": {"network_id": ")" + net_id + R"(", "ip_version": 4, "cidr": "10.0.0.0/16"}})",
      201);
  if (!subnet) return die(subnet.error());
  const bool separate = layout == "separate";
  auto portBody = [&](int host, const std::string& network) {
    return R"({"port": {"network_id": ")" + network + R"(", "binding:host_id": "host-)" +
           std::to_string(host) + "\"}}";
  };
  std::atomic<int> next{0};
  std::atomic<int> failures{0};
  auto began = bench::monotonicNs();
  std::vector<std::thread> writers;
  for (int c = 0; c < clients; ++c) {
    writers.emplace_back([&, c] {
      for (int i = next.fetch_add(1); i < agents; i = next.fetch_add(1)) {
        std::string network = net_id;
        if (separate) {
          auto n = api.call(static_cast<size_t>(c), "POST", "/v2.0/networks",
                            R"({"network": {"name": "own"}})", 201);
          if (n) network = (*n)["network"].value("id", "");
          auto sn = api.call(static_cast<size_t>(c), "POST", "/v2.0/subnets",
                             R"({"subnet": {"network_id": ")" + network +
                                 R"(", "ip_version": 4, "cidr": "10.9.0.0/24"}})",
                             201);
          if (!n || !sn) {
            failures.fetch_add(1);
            continue;
          }
        }
        auto r = api.call(static_cast<size_t>(c), "POST", "/v2.0/ports", portBody(i, network), 201);
        if (!r) {
          if (failures.fetch_add(1) == 0) std::fprintf(stderr, "%s\n", r.error().message().c_str());
        }
      }
    });
  }
  for (auto& w : writers) w.join();
  double create_s = static_cast<double>(bench::monotonicNs() - began) / 1e9;
  if (failures.load() > 0) {
    std::fprintf(stderr, "cluster_bench: %d port creations failed\n", failures.load());
    return 1;
  }

  // The fleet.
  long rss_before = 0;
  for (int p : pids) rss_before += rssKiB(p);
  std::string slots_path = "/dev/shm/canopy-fleet-" + std::to_string(::getpid());
  size_t size = sizeof(bench::FleetSlot) * static_cast<size_t>(agents);
  int fd = ::open(slots_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
  if (fd < 0 || ::ftruncate(fd, static_cast<off_t>(size)) != 0) {
    std::perror(slots_path.c_str());
    return 1;
  }
  auto* slots = static_cast<bench::FleetSlot*>(
      ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  std::vector<pid_t> children;
  int per = (agents + fleets - 1) / fleets;
  for (int f = 0; f < fleets; ++f) {
    int first = f * per;
    int count = std::min(per, agents - first);
    if (count <= 0) break;
    pid_t child = ::fork();
    if (child == 0) {
      std::string a = std::to_string(agents), fi = std::to_string(first),
                  co = std::to_string(count);
      ::execl(fleet_bin.c_str(), fleet_bin.c_str(), "--servers", southbound.c_str(), "--first",
              fi.c_str(), "--count", co.c_str(), "--slots", slots_path.c_str(), "--agents",
              a.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    children.push_back(child);
  }
  auto stopFleet = [&] {
    for (pid_t c : children) ::kill(c, SIGTERM);
    for (pid_t c : children) ::waitpid(c, nullptr, 0);
    ::unlink(slots_path.c_str());
  };
  auto everyoneHas = [&](uint32_t ports) {
    for (int i = 0; i < agents; ++i) {
      if (slots[i].ports.load() < ports) return false;
    }
    return true;
  };
  auto connect_began = bench::monotonicNs();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(600);
  const uint32_t whole = separate ? 1 : static_cast<uint32_t>(agents);
  while (!everyoneHas(whole) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!everyoneHas(whole)) {
    int short_of = 0;
    for (int i = 0; i < agents; ++i) short_of += slots[i].ports.load() < whole;
    std::fprintf(stderr, "cluster_bench: %d agents never got the whole network\n", short_of);
    stopFleet();
    return 1;
  }
  double converge_s = static_cast<double>(bench::monotonicNs() - connect_began) / 1e9;
  std::this_thread::sleep_for(std::chrono::seconds(3));  // idle
  long rss_idle = 0;
  for (int p : pids) {
    rss_idle += rssKiB(p);
    if (std::getenv("CANOPY_BENCH_VERBOSE"))
      std::fprintf(stderr, "pid %d: %ld KiB\n", p, rssKiB(p));
  }

  // Rounds.
  std::vector<double> all_ms, agent_ms;
  if (separate) rounds = 0;
  uint32_t expect = static_cast<uint32_t>(agents);
  for (int r = 0; r < rounds; ++r) {
    ++expect;
    int64_t t0 = bench::monotonicNs();
    auto made =
        api.call(static_cast<size_t>(r), "POST", "/v2.0/ports", portBody(r % agents, net_id), 201);
    if (!made) {
      stopFleet();
      return die(made.error());
    }
    int64_t posted = bench::monotonicNs();
    auto round_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!everyoneHas(expect) && std::chrono::steady_clock::now() < round_deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (!everyoneHas(expect)) {
      std::fprintf(stderr, "cluster_bench: round %d did not reach every agent in 60 s\n", r);
      stopFleet();
      return 1;
    }
    int64_t last = 0;
    for (int i = 0; i < agents; ++i) {
      int64_t at = slots[i].changed_ns.load();
      last = std::max(last, at);
      agent_ms.push_back(static_cast<double>(at - t0) / 1e6);
    }
    all_ms.push_back(static_cast<double>(last - t0) / 1e6);
    if (std::getenv("CANOPY_BENCH_VERBOSE") && all_ms.back() > 500) {
      int late = 0;
      for (int i = 0; i < agents; ++i) late += (slots[i].changed_ns.load() - t0) > 300'000'000;
      std::fprintf(stderr, "round %d: %d agents later than 300 ms; the API took %.1f ms\n", r, late,
                   static_cast<double>(posted - t0) / 1e6);
    }
    if (std::getenv("CANOPY_BENCH_VERBOSE"))
      std::fprintf(stderr, "round %d: %.1f ms\n", r, all_ms.back());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stopFleet();
  double per_agent_kib =
      static_cast<double>(rss_idle - rss_before) / static_cast<double>(std::max(agents, 1));
  std::printf(
      "{\"replicas\": %zu, \"layout\": \"%s\", \"agents\": %d, \"rounds\": %d, "
      "\"create_ports_per_s\": %.1f, "
      "\"converge_s\": %.2f, \"all_p50_ms\": %.1f, \"all_p99_ms\": %.1f, \"all_max_ms\": %.1f, "
      "\"agent_p50_ms\": %.1f, \"agent_p99_ms\": %.1f, \"server_rss_mib\": %.1f, "
      "\"server_kib_per_agent\": %.1f}\n",
      api.urls.size(), layout.c_str(), agents, rounds, agents / create_s, converge_s,
      quantile(all_ms, 0.5), quantile(all_ms, 0.99), quantile(all_ms, 1.0), quantile(agent_ms, 0.5),
      quantile(agent_ms, 0.99), static_cast<double>(rss_idle) / 1024.0, per_agent_kib);
  return 0;
}
