// Southbound fan-out: N agents (real gRPC streams on loopback, lightweight,
// in this process), each with a port on one shared network, so that every
// change to that network concerns all of them. Measures the time from an
// API write (a new port on the network) returning to every agent having
// applied the view that contains it; p50, p90 and max over the rounds.
// Each agent also builds its datapath topology from every view it gets, as
// canopy-agent does (--program off: it only keeps the view).
//
//   fanout_bench [--agents 50] [--rounds 20] [--program on|off]

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "agent/southbound_client.h"
#include "api/neutron_api.h"
#include "southbound/keys.h"
#include "southbound/service.h"
#include "store/sqlite_store.h"

using namespace canopy;
using Clock_ = std::chrono::steady_clock;

namespace {

struct Agent {
  std::unique_ptr<agent::SouthboundClient> client;
  // The largest port key of its current view: keys are handed out in
  // increasing order, so the view holds a new port once this reaches its key.
  std::atomic<uint32_t> max_port_key{0};
};

}  // namespace

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);  // stdout carries the result alone
  int agents = 50, rounds = 20;
  bool program = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--program") program = std::string(argv[i + 1]) != "off";
    if (a == "--agents") agents = std::stoi(argv[i + 1]);
    if (a == "--rounds") rounds = std::stoi(argv[i + 1]);
  }
  auto dir =
      std::filesystem::temp_directory_path() / ("canopy-fanout-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto store = store::SqliteStore::open({.path = (dir / "canopy.db").string()});
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().message().c_str());
    return 1;
  }
  state::ModelState state(**store);
  if (!state.start()) return 1;
  SystemClock clock;
  api::ApiConfig config;
  api::NeutronApi neutron(state, std::move(config), clock);
  auto call = [&](const std::string& method, const std::string& path, const std::string& body,
                  const std::string& project) {
    http::HttpRequest r;
    r.method = method;
    r.path = path;
    r.body = body;
    if (!project.empty()) r.headers["x-project-id"] = project;
    r.headers["host"] = "bench:9696";
    auto out = neutron.handle(r);
    return model::Json::parse(out.body.empty() ? "{}" : out.body);
  };
  southbound::SouthboundService service(state, clock);
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&service);
  auto server = b.BuildAndStart();

  std::string net =
      call("POST", "/v2.0/networks", R"({"network": {"name": "shared"}})", "p")["network"]["id"];
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": 4, "cidr": "10.0.0.0/16"}})",
       "p");
  auto boundPort = [&](const std::string& host) {
    std::string id = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"}}",
                          "p")["port"]["id"];
    call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": ")" + host + "\"}}", "");
    return id;
  };
  std::vector<std::unique_ptr<Agent>> fleet;
  for (int i = 0; i < agents; ++i) {
    std::string host = "host-" + std::to_string(i);
    boundPort(host);
    auto a = std::make_unique<Agent>();
    southbound::v1::Hello hello;
    hello.set_host_name(host);
    uint8_t ip[4] = {10, 200, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    hello.set_tunnel_ip(std::string(reinterpret_cast<const char*>(ip), 4));
    Agent* raw = a.get();
    a->client = std::make_unique<agent::SouthboundClient>(
        agent::SouthboundClient::Options{.server = "127.0.0.1:" + std::to_string(port),
                                         .hello = hello},
        [raw, program](const southbound::HostView& v, uint64_t version) -> Result<void> {
          if (program) {
            // What canopy-agent does with a view: the datapath's topology.
            auto built = v.builder().build(version);
            if (!built) return std::move(built).error();
          }
          raw->max_port_key = v.ports.empty() ? 0 : v.ports.rbegin()->first;
          return ok();
        });
    a->client->start();
    fleet.push_back(std::move(a));
  }
  auto allHave = [&](const std::string& id) {
    uint32_t key = state.read([&](const state::Tables& t) {
      return southbound::keyOf(t, southbound::KeyKind::Port, id);
    });
    if (key == 0) return false;
    return std::all_of(fleet.begin(), fleet.end(),
                       [&](const auto& a) { return a->max_port_key.load() >= key; });
  };
  // Everyone connected and holding the others' ports.
  std::string warm = boundPort("host-0");
  auto deadline = Clock_::now() + std::chrono::seconds(60);
  while (!allHave(warm) && Clock_::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  if (!allHave(warm)) {
    std::fprintf(stderr, "agents did not converge\n");
    return 1;
  }
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r) {
    auto begin = Clock_::now();
    std::string id = boundPort("host-" + std::to_string(r % agents));
    while (!allHave(id)) std::this_thread::sleep_for(std::chrono::microseconds(200));
    ms.push_back(std::chrono::duration<double, std::milli>(Clock_::now() - begin).count());
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms[std::min(ms.size() - 1, static_cast<size_t>(q * static_cast<double>(ms.size())))];
  };
  std::printf(
      "{\"agents\": %d, \"rounds\": %d, \"program\": %s, \"p50_ms\": %.1f, \"p90_ms\": %.1f, "
      "\"max_ms\": %.1f}\n",
      agents, rounds, program ? "true" : "false", at(0.5), at(0.9), ms.back());
  for (auto& a : fleet) a->client->stop();
  service.stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  state.stop();
  std::filesystem::remove_all(dir);
  return 0;
}
