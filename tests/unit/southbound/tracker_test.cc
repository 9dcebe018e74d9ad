// Incremental views: after every random API change, each host's tracked
// view (recomputed only when a change touches what it was computed from)
// equals a full recomputation; and changes elsewhere recompute nothing.

#include "southbound/tracker.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "api_fixture.h"
#include "southbound/agents.h"
#include "southbound/keys.h"

namespace canopy::southbound {
namespace {

using api::Json;

class TrackerTest : public api::ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    state_->observe([this](const std::vector<state::Change>& c, const state::Tables& t) {
      tracker_.onChanges(c, t);
    });
    for (const auto& h : hosts_) {
      ASSERT_TRUE(putAgent(*state_, {.host = h, .tunnel_ip = "10.9.0.1"}));
    }
  }
  void assign() {
    auto missing = state_->read([](const state::Tables& t) { return missingKeys(t); });
    if (!missing.empty()) {
      ASSERT_TRUE(assignKeys(*state_, missing));
    }
  }
  // Every host's tracked view equals the full computation.
  void check(const std::string& after) {
    for (const auto& h : hosts_) {
      state_->read([&](const state::Tables& t) {
        HostView tracked = tracker_.view(t, h);
        HostView full = computeView(t, h);
        EXPECT_TRUE(tracked == full) << "host " << h << " after " << after;
        return 0;
      });
    }
  }
  std::string pick(std::mt19937_64& rng, const std::vector<std::string>& v) {
    return v.empty() ? "" : v[rng() % v.size()];
  }

  ViewTracker tracker_;
  std::vector<std::string> hosts_ = {"h1", "h2", "h3", "h4"};
};

TEST_F(TrackerTest, IncrementalViewsEqualFullRecomputation) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("CANOPY_TEST_SEED")) seed = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);

  auto pub = call("POST", "/v2.0/networks",
                  R"({"network": {"name": "public", "router:external": true}})", "");
  std::string public_id = pub.body["network"]["id"];
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + public_id +
           R"(", "ip_version": 4, "cidr": "203.0.113.0/24"}})",
       "");
  std::vector<std::string> nets, subnets, ports, routers, fips, groups;
  for (int step = 0; step < 160; ++step) {
    int op = static_cast<int>(rng() % 10);
    std::string what;
    if (op == 0 || nets.size() < 2) {
      std::string n = createNetwork("n" + std::to_string(step));
      nets.push_back(n);
      auto s = call("POST", "/v2.0/subnets",
                    R"({"subnet": {"network_id": ")" + n + R"(", "ip_version": 4, "cidr": "10.)" +
                        std::to_string(nets.size()) + R"(.0.0/24"}})");
      subnets.push_back(model::stringAt(s.body["subnet"], "id"));
      what = "network";
    } else if (op <= 2) {
      auto p =
          call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + pick(rng, nets) + "\"}}");
      std::string id = model::stringAt(p.body["port"], "id");
      if (!id.empty()) ports.push_back(id);
      call("PUT", "/v2.0/ports/" + id,
           R"({"port": {"binding:host_id": ")" + pick(rng, hosts_) + "\"}}", "");
      what = "port";
    } else if (op == 3 && !ports.empty()) {
      call("PUT", "/v2.0/ports/" + pick(rng, ports),
           R"({"port": {"binding:host_id": ")" + pick(rng, hosts_) + "\"}}", "");
      what = "move";
    } else if (op == 4 && !ports.empty()) {
      size_t i = rng() % ports.size();
      call("DELETE", "/v2.0/ports/" + ports[i]);
      ports.erase(ports.begin() + static_cast<long>(i));
      what = "delete port";
    } else if (op == 5) {
      auto r =
          call("POST", "/v2.0/routers",
               R"({"router": {"external_gateway_info": {"network_id": ")" + public_id + "\"}}}");
      routers.push_back(model::stringAt(r.body["router"], "id"));
      what = "router";
    } else if (op == 6 && !routers.empty()) {
      call("PUT", "/v2.0/routers/" + pick(rng, routers) + "/add_router_interface",
           R"({"subnet_id": ")" + pick(rng, subnets) + "\"}");
      what = "interface";
    } else if (op == 7 && !routers.empty()) {
      call("PUT", "/v2.0/routers/" + pick(rng, routers) + "/remove_router_interface",
           R"({"subnet_id": ")" + pick(rng, subnets) + "\"}");
      what = "remove interface";
    } else if (op == 8 && !ports.empty()) {
      auto f = call("POST", "/v2.0/floatingips",
                    R"({"floatingip": {"floating_network_id": ")" + public_id +
                        R"(", "port_id": ")" + pick(rng, ports) + "\"}}");
      what = "floating IP " + std::to_string(f.status);
    } else {
      auto g = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "g"}})");
      std::string gid = model::stringAt(g.body["security_group"], "id");
      groups.push_back(gid);
      call("POST", "/v2.0/security-group-rules",
           R"({"security_group_rule": {"security_group_id": ")" + gid +
               R"(", "direction": "ingress", "remote_group_id": ")" + pick(rng, groups) + "\"}}");
      if (!ports.empty()) {
        call("PUT", "/v2.0/ports/" + pick(rng, ports),
             R"({"port": {"security_groups": [")" + gid + "\"]}}");
      }
      what = "group";
    }
    check(what + " (before keys)");
    assign();
    check(what);
    if (HasFailure()) return;
  }
  // A change that concerns no host's view recomputes none.
  uint64_t before = tracker_.recomputations();
  createNetwork("lonely");
  check("a network nobody uses");
  EXPECT_EQ(tracker_.recomputations(), before);
}

}  // namespace
}  // namespace canopy::southbound
