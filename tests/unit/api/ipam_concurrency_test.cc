// Many clients over real sockets allocate addresses from one small pool at
// once: no address is handed out twice, and exhaustion is answered with
// Neutron's IpAddressGenerationFailure, never a 500 or a lost request.

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <set>
#include <thread>

#include "api/neutron_api.h"
#include "http/server.h"
#include "store/sqlite_store.h"
#include "testing/http_client.h"
#include "testing/temp_dir.h"

namespace canopy::api {
namespace {

using model::Json;

// `frontends` API instances share one store, as replicas would: they do not
// take turns with each other, so their allocations race in the store and the
// address claims (keys created only if absent) must keep them apart.
void runPortStorm(int frontends) {
  canopy::testing::TempDir dir;
  auto store = store::SqliteStore::open({.path = dir.file("canopy.db")});
  ASSERT_TRUE(store) << store.error().toString();
  state::ModelState state(**store);
  ASSERT_TRUE(state.start());
  SystemClock clock;
  std::vector<std::unique_ptr<NeutronApi>> apis;
  std::vector<std::unique_ptr<http::HttpServer>> servers;
  for (int i = 0; i < frontends; ++i) {
    apis.push_back(std::make_unique<NeutronApi>(state, ApiConfig{}, clock));
    NeutronApi* api = apis.back().get();
    auto server = http::HttpServer::start({.address = "127.0.0.1", .port = 0, .threads = 4},
                                          [api](const HttpRequest& r) { return api->handle(r); });
    ASSERT_TRUE(server) << server.error().toString();
    servers.push_back(std::move(*server));
  }
  uint16_t port = servers[0]->port();

  canopy::testing::HttpClient setup("127.0.0.1", port);
  const std::map<std::string, std::string> project = {{"X-Project-Id", "p1"}};
  auto net = setup.request("POST", "/v2.0/networks", R"({"network": {"name": "n"}})", project);
  ASSERT_EQ(net.status, 201);
  std::string net_id = Json::parse(net.body)["network"]["id"];
  auto sub = setup.request(
      "POST", "/v2.0/subnets",
      R"({"subnet": {"network_id": ")" + net_id + R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})",
      project);
  ASSERT_EQ(sub.status, 201) << sub.body;

  constexpr int kClients = 8;
  constexpr int kPorts = 500;
  std::atomic<int> next{0};
  std::mutex mu;
  std::vector<std::string> ips;
  std::map<std::string, int> failures;  // "status type" -> count
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      canopy::testing::HttpClient client("127.0.0.1",
                                         servers[static_cast<size_t>(c % frontends)]->port());
      while (next.fetch_add(1) < kPorts) {
        auto r = client.request("POST", "/v2.0/ports",
                                R"({"port": {"network_id": ")" + net_id + R"("}})", project);
        Json body = Json::parse(r.body, nullptr, false);
        std::lock_guard lock(mu);
        if (r.status == 201) {
          ips.push_back(body["port"]["fixed_ips"][0]["ip_address"]);
        } else {
          std::string type = body.is_object() && body.contains("NeutronError")
                                 ? body["NeutronError"].value("type", "?")
                                 : r.body;
          failures[std::to_string(r.status) + " " + type]++;
        }
      }
    });
  }
  for (auto& t : clients) t.join();

  std::set<std::string> unique(ips.begin(), ips.end());
  EXPECT_EQ(unique.size(), ips.size()) << "an address was handed out twice";
  EXPECT_EQ(ips.size(), 253u);  // 10.0.0.2 - 10.0.0.254
  EXPECT_FALSE(unique.count("10.0.0.1"));
  for (auto& [what, n] : failures) std::printf("failure: %s x%d\n", what.c_str(), n);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures.begin()->first, "409 IpAddressGenerationFailure");
  EXPECT_EQ(failures.begin()->second, kPorts - 253);

  // What the API says agrees with what was handed out.
  auto list = setup.request("GET", "/v2.0/ports?fields=fixed_ips", "", project);
  EXPECT_EQ(Json::parse(list.body)["ports"].size(), 253u);
  for (auto& server : servers) server->stop();
}

TEST(IpamConcurrency, EightClientsFiveHundredPortsOneSlash24) { runPortStorm(1); }

TEST(IpamConcurrency, TwoFrontendsRaceInTheStore) { runPortStorm(2); }

}  // namespace
}  // namespace canopy::api
