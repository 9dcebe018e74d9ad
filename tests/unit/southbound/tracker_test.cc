// Incremental views: after every random API change, each host's tracked
// view equals a full recomputation, and so does what an agent holds after
// applying only the changes it was sent (also after resuming from an older
// version); changes elsewhere do no work.

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
      if (h == "h5") continue;  // a host without an agent, until one says hello
      ASSERT_TRUE(putAgent(*state_, {.host = h, .tunnel_ip = "10.9.0.1"}));
    }
  }
  void assign() {
    auto missing = state_->read([](const state::Tables& t) { return missingKeys(t); });
    if (!missing.empty()) {
      ASSERT_TRUE(assignKeys(*state_, missing));
    }
  }

  // What one agent holds: the messages it was sent, applied.
  struct Agent {
    ViewTracker::Cursor cursor;
    HostView held;
    uint64_t version = 0;
  };
  // Every host's tracked view, and what its agent holds, equal the full
  // computation.
  void check(const std::string& after) {
    for (const auto& h : hosts_) {
      state_->readAt([&](const state::Tables& t, store::Revision revision) {
        auto at = static_cast<uint64_t>(revision);
        HostView full = computeView(t, h);
        EXPECT_TRUE(tracker_.view(t, at, h) == full) << "host " << h << " after " << after;
        Agent& a = agents_[h];
        if (auto m = tracker_.next(t, at, h, a.cursor)) {
          if (m->base_version() != 0) {
            EXPECT_EQ(m->base_version(), a.version) << "host " << h << " after " << after;
          }
          EXPECT_TRUE(apply(a.held, *m)) << "host " << h << " after " << after;
          a.version = m->version();
        }
        EXPECT_TRUE(a.held == full) << "host " << h << " (agent) after " << after;
        return 0;
      });
    }
  }
  // An agent that left at some version resumes: it gets the changes since
  // (or a snapshot) and then holds the full view.
  void resume(Agent& stale, const std::string& h) {
    state_->readAt([&](const state::Tables& t, store::Revision revision) {
      ViewTracker::Cursor cursor;
      cursor.resume_from = stale.version;
      auto m = tracker_.next(t, static_cast<uint64_t>(revision), h, cursor);
      EXPECT_TRUE(m.has_value());
      if (m) {
        if (m->base_version() != 0) {
          EXPECT_EQ(m->base_version(), stale.version);
          ++resumed_;
        }
        EXPECT_TRUE(apply(stale.held, *m));
      }
      EXPECT_TRUE(stale.held == computeView(t, h)) << "host " << h << " resumed";
      return 0;
    });
  }
  std::string pick(std::mt19937_64& rng, const std::vector<std::string>& v) {
    return v.empty() ? "" : v[rng() % v.size()];
  }

  FakeClock clock_;
  ViewTracker tracker_{clock_};
  std::vector<std::string> hosts_ = {"h1", "h2", "h3", "h4", "h5"};
  std::map<std::string, Agent> agents_;
  int resumed_ = 0;
};

TEST_F(TrackerTest, IncrementalViewsEqualFullRecomputation) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("CANOPY_TEST_SEED")) seed = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("seed " + std::to_string(seed));
  std::mt19937_64 rng(seed);

  auto pub = call("POST", "/v2.0/networks",
                  R"({"network": {"name": "public", "router:external": true}})", "");
  std::string public_id = pub.body["network"]["id"];
  auto public_subnet = call("POST", "/v2.0/subnets",
                            R"({"subnet": {"network_id": ")" + public_id +
                                R"(", "ip_version": 4, "cidr": "203.0.113.0/24",)" +
                                R"( "allocation_pools": [{"start": "203.0.113.2",)" +
                                R"( "end": "203.0.113.199"}]}})",
                            "");
  std::string public_subnet_id = model::stringAt(public_subnet.body["subnet"], "id");
  std::vector<std::string> nets, subnets, ports, routers, fips, groups, rules;
  std::vector<std::string> pools, members;  // of load balancers (written as Octavia does)
  std::map<std::string, Agent> left;        // agents that went away, by host
  std::vector<std::string> labels;          // metering labels
  std::vector<std::string> policies;        // QoS policies
  std::vector<std::string> trunks;
  for (int step = 0; step < 300; ++step) {
    int op = static_cast<int>(rng() % 30);
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
      // On a port a router reaches: a few tries.
      int status = 0;
      for (int attempt = 0; attempt < 6 && status != 201; ++attempt) {
        auto f = call("POST", "/v2.0/floatingips",
                      R"({"floatingip": {"floating_network_id": ")" + public_id +
                          R"(", "port_id": ")" + pick(rng, ports) + "\"}}");
        status = f.status;
        if (status == 201) fips.push_back(model::stringAt(f.body["floatingip"], "id"));
      }
      what = "floating IP " + std::to_string(status);
    } else if (op == 9) {
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
    } else if (op == 10 && !groups.empty()) {
      // A rule naming a group that has no key yet (until assign()).
      auto g = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "r"}})");
      std::string remote = model::stringAt(g.body["security_group"], "id");
      groups.push_back(remote);
      auto r = call("POST", "/v2.0/security-group-rules",
                    R"({"security_group_rule": {"security_group_id": ")" + pick(rng, groups) +
                        R"(", "direction": "egress", "protocol": "tcp", "port_range_min": 80,)" +
                        R"( "port_range_max": 80, "remote_group_id": ")" + remote + "\"}}");
      rules.push_back(model::stringAt(r.body["security_group_rule"], "id"));
      what = "rule naming a new group";
    } else if (op == 11 && !rules.empty()) {
      size_t i = rng() % rules.size();
      call("DELETE", "/v2.0/security-group-rules/" + rules[i]);
      rules.erase(rules.begin() + static_cast<long>(i));
      what = "delete rule";
    } else if (op == 12 && !groups.empty()) {
      size_t i = rng() % groups.size();
      auto r = call("DELETE", "/v2.0/security-groups/" + groups[i]);
      if (r.status == 204) groups.erase(groups.begin() + static_cast<long>(i));
      what = "delete group " + std::to_string(r.status);
    } else if (op == 13 && !subnets.empty()) {
      call("PUT", "/v2.0/subnets/" + pick(rng, subnets),
           R"({"subnet": {"dns_nameservers": ["192.0.2.)" + std::to_string(step % 250) +
               R"("], "host_routes": [{"destination": "198.51.100.0/24", "nexthop": "10.1.0.)" +
               std::to_string(2 + step % 200) + "\"}]}}");
      what = "subnet";
    } else if (op == 14 && !ports.empty()) {
      std::string body = rng() % 2 ? R"({"port": {"security_groups": []}})"
                                   : R"({"port": {"admin_state_up": false, "name": "x"}})";
      call("PUT", "/v2.0/ports/" + pick(rng, ports), body);
      what = "port update";
    } else if (op == 15 && !fips.empty()) {
      std::string body = rng() % 2 || ports.empty()
                             ? R"({"floatingip": {"port_id": null}})"
                             : R"({"floatingip": {"port_id": ")" + pick(rng, ports) + "\"}}";
      auto r = call("PUT", "/v2.0/floatingips/" + pick(rng, fips), body);
      what = "floating IP update " + std::to_string(r.status);
    } else if (op == 16 && !routers.empty()) {
      std::string body = rng() % 2 ? R"({"router": {"external_gateway_info": {}}})"
                                   : R"({"router": {"external_gateway_info": {"network_id": ")" +
                                         public_id + R"(", "enable_snat": false}, "routes": []}})";
      auto r = call("PUT", "/v2.0/routers/" + pick(rng, routers), body, "");
      what = "router gateway " + std::to_string(r.status);
    } else if (op == 17) {
      std::string h = pick(rng, hosts_);
      if (rng() % 3 == 0) {
        ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
          txn.erase(kAgentsCollection, h);
          return ok();
        }));
        what = "agent " + h + " gone";
      } else {
        ASSERT_TRUE(putAgent(*state_, {.host = h,
                                       .tunnel_ip = "10.9.0." + std::to_string(step % 250),
                                       .encapsulations = {rng() % 2 ? "geneve" : "vxlan"}}));
        what = "agent " + h;
      }
    } else if (op == 19 && !routers.empty()) {
      // The gateway scheduled to a host.
      auto list = call(
          "GET", "/v2.0/ports?device_owner=network:router_gateway&device_id=" + pick(rng, routers),
          "", "");
      for (const auto& p : list.body["ports"]) {
        call("PUT", "/v2.0/ports/" + model::stringAt(p, "id"),
             R"({"port": {"binding:host_id": ")" + pick(rng, hosts_) + "\"}}", "");
      }
      what = "gateway scheduled";
    } else if (op == 20) {
      auto r = call(
          "PUT", "/v2.0/subnets/" + public_subnet_id,
          R"({"subnet": {"gateway_ip": "203.0.113.)" + std::to_string(200 + step % 50) + "\"}}",
          "");
      what = "external gateway IP " + std::to_string(r.status);
    } else if (op == 21 && !nets.empty()) {
      // A load balancer: its VIP port, a listener, a pool, a member.
      std::string n = std::to_string(step);
      std::string lb = "lb-" + n, listener = "listener-" + n, pool = "pool-" + n;
      auto vip = call("POST", "/v2.0/ports",
                      R"({"port": {"network_id": ")" + pick(rng, nets) +
                          R"(", "device_owner": "Octavia", "device_id": "lb-)" + lb + "\"}}",
                      "");
      std::string vip_id = model::stringAt(vip.body["port"], "id");
      ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
        txn.put("lbaas-loadbalancers", lb, Json{{"id", lb}, {"vip_port_id", vip_id}});
        txn.put("lbaas-pools", pool,
                Json{{"id", pool}, {"loadbalancer_id", lb}, {"lb_algorithm", "ROUND_ROBIN"}});
        txn.put("lbaas-listeners", listener,
                Json{{"id", listener},
                     {"loadbalancer_id", lb},
                     {"protocol", "TCP"},
                     {"protocol_port", 80},
                     {"default_pool_id", pool}});
        return ok();
      }));
      pools.push_back(pool);
      what = "load balancer";
    } else if (op == 22 && !pools.empty()) {
      // A member comes, changes or goes; or a pool's monitor.
      std::string pool = pick(rng, pools);
      int kind = static_cast<int>(rng() % 4);
      ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
        if (kind == 0 || members.empty()) {
          std::string m = "member-" + std::to_string(step);
          txn.put("lbaas-members", m,
                  Json{{"id", m},
                       {"pool_id", pool},
                       {"address", "10.1.0." + std::to_string(2 + step % 6)},
                       {"protocol_port", 8080}});
          members.push_back(m);
        } else if (kind == 1) {
          std::string m = pick(rng, members);
          if (const Json* d = txn.current("lbaas-members", m)) {
            Json changed = *d;
            changed["health"] = rng() % 2 ? "ERROR" : "ONLINE";
            changed["weight"] = static_cast<int>(rng() % 4);
            txn.update("lbaas-members", m, changed);
          }
        } else if (kind == 2) {
          txn.erase("lbaas-members", pick(rng, members));
        } else {
          std::string hm = "hm-" + pool;
          if (txn.current("lbaas-healthmonitors", hm) != nullptr) {
            txn.erase("lbaas-healthmonitors", hm);
          } else {
            txn.put("lbaas-healthmonitors", hm, Json{{"id", hm}, {"pool_id", pool}});
          }
        }
        return ok();
      }));
      what = "load balancer member";
    } else if (op == 18 && !nets.empty()) {
      call("PUT", "/v2.0/networks/" + pick(rng, nets),
           R"({"network": {"name": "renamed", "mtu": )" + std::to_string(1300 + step) + "}}");
      what = "network update";
    } else if (op == 24 || (op == 25 && labels.empty())) {
      // A metering label, the project's or shared; or one goes.
      if (!labels.empty() && rng() % 3 == 0) {
        call("DELETE", "/v2.0/metering/metering-labels/" + pick(rng, labels), "", "");
        what = "metering label gone";
      } else {
        bool shared = rng() % 2 != 0;
        auto l = call("POST", "/v2.0/metering/metering-labels",
                      std::string(R"({"metering_label": {"tenant_id": "p1", "shared": )") +
                          (shared ? "true" : "false") + "}}",
                      "");
        labels.push_back(model::stringAt(l.body["metering_label"], "id"));
        what = "metering label";
      }
    } else if (op == 25) {
      // A rule of a label (or of one gone: not found).
      call("POST", "/v2.0/metering/metering-label-rules",
           R"({"metering_label_rule": {"metering_label_id": ")" + pick(rng, labels) +
               R"(", "direction": ")" + (rng() % 2 ? "ingress" : "egress") +
               R"(", "remote_ip_prefix": "198.51.)" + std::to_string(rng() % 200) + ".0/24\"}}",
           "");
      what = "metering rule";
    } else if (op == 26 || (op == 27 && policies.empty())) {
      // A QoS policy, or a rule of one: a limit or a DSCP mark (the ports
      // under it carry them).
      if (policies.empty() || rng() % 3 == 0) {
        auto q = call("POST", "/v2.0/qos/policies", R"({"policy": {"shared": true}})", "");
        policies.push_back(model::stringAt(q.body["policy"], "id"));
        what = "QoS policy";
      } else if (rng() % 2 == 0) {
        call("POST", "/v2.0/qos/policies/" + pick(rng, policies) + "/bandwidth_limit_rules",
             R"({"bandwidth_limit_rule": {"max_kbps": )" + std::to_string(1000 + rng() % 1000) +
                 R"(, "direction": ")" + (rng() % 2 ? "ingress" : "egress") + R"("}})",
             "");
        what = "QoS limit";
      } else {
        call("POST", "/v2.0/qos/policies/" + pick(rng, policies) + "/dscp_marking_rules",
             R"({"dscp_marking_rule": {"dscp_mark": )" + std::to_string(8 * (rng() % 7)) + "}}",
             "");
        what = "QoS DSCP mark";
      }
    } else if (op == 27) {
      // A policy set on (or taken off) a network or a port.
      std::string policy =
          rng() % 4 == 0 ? std::string("null") : R"(")" + pick(rng, policies) + R"(")";
      if (rng() % 2 == 0) {
        call("PUT", "/v2.0/networks/" + pick(rng, nets),
             R"({"network": {"qos_policy_id": )" + policy + "}}", "");
        what = "network QoS policy";
      } else if (!ports.empty()) {
        call("PUT", "/v2.0/ports/" + pick(rng, ports),
             R"({"port": {"qos_policy_id": )" + policy + "}}", "");
        what = "port QoS policy";
      }
    } else if ((op == 28 || (op == 29 && trunks.empty())) && !ports.empty()) {
      // A trunk on a port (refused if the port is in one already).
      auto tr = call("POST", "/v2.0/trunks",
                     R"({"trunk": {"port_id": ")" + pick(rng, ports) + R"("}})", "");
      if (tr.status == 201) trunks.push_back(model::stringAt(tr.body["trunk"], "id"));
      what = "trunk";
    } else if (op == 29 && !ports.empty()) {
      // A subport comes (a port of any network, any VLAN) or goes.
      std::string trunk = pick(rng, trunks);
      std::string port = pick(rng, ports);
      if (rng() % 2 == 0) {
        // A new port, before (or after) it gets its key.
        auto p =
            call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + pick(rng, nets) + "\"}}");
        port = model::stringAt(p.body["port"], "id");
        if (!port.empty()) ports.push_back(port);
      }
      std::string body = R"({"sub_ports": [{"port_id": ")" + port +
                         R"(", "segmentation_type": "vlan", "segmentation_id": )" +
                         std::to_string(1 + rng() % 4) + "}]}";
      if (rng() % 3 == 0) {
        call("PUT", "/v2.0/trunks/" + trunk + "/remove_subports", body, "");
        what = "subport gone";
      } else {
        call("PUT", "/v2.0/trunks/" + trunk + "/add_subports", body, "");
        what = "subport";
      }
    } else {
      // An agent leaves, and comes back some steps later.
      std::string h = pick(rng, hosts_);
      if (auto it = left.find(h); it != left.end()) {
        resume(it->second, h);
        left.erase(it);
        what = "agent " + h + " resumed";
      } else {
        left[h] = agents_[h];
        what = "agent " + h + " left";
      }
    }
    if (std::getenv("CANOPY_TEST_VERBOSE"))
      std::fprintf(stderr, "step %d: %s\n", step, what.c_str());
    check(what + " (before keys)");
    if (rng() % 4 != 0) assign();  // keys come now, or some changes later
    check(what);
    if (HasFailure()) return;
  }
  for (auto& [h, a] : left) resume(a, h);
  EXPECT_GT(resumed_, 0) << "no agent resumed from the log";
  // A change that concerns no host's view does no work.
  uint64_t before = tracker_.recomputations();
  createNetwork("lonely");
  check("a network nobody uses");
  EXPECT_EQ(tracker_.recomputations(), before);
}

// A load balancer's VIP port carries its enabled listeners with their
// pools' members: up unless disabled or found down by an enabled monitor.
TEST_F(TrackerTest, AVipPortCarriesItsListenersAndMembers) {
  std::string net = createNetwork("n");
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": 4, "cidr": "10.1.0.0/24"}})");
  auto client = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"}}");
  call("PUT", "/v2.0/ports/" + model::stringAt(client.body["port"], "id"),
       R"({"port": {"binding:host_id": "h1"}})", "");
  auto vip = call("POST", "/v2.0/ports",
                  R"({"port": {"network_id": ")" + net +
                      R"(", "device_owner": "Octavia", "device_id": "lb-lb1"}})",
                  "");
  std::string vip_id = model::stringAt(vip.body["port"], "id");
  ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
    txn.put("lbaas-loadbalancers", "lb1", Json{{"id", "lb1"}, {"vip_port_id", vip_id}});
    txn.put("lbaas-pools", "p1",
            Json{{"id", "p1"},
                 {"loadbalancer_id", "lb1"},
                 {"lb_algorithm", "SOURCE_IP_PORT"},
                 {"session_persistence", {{"type", "SOURCE_IP"}}}});
    txn.put("lbaas-listeners", "l1",
            Json{{"id", "l1"},
                 {"loadbalancer_id", "lb1"},
                 {"protocol", "HTTP"},
                 {"protocol_port", 80},
                 {"allowed_cidrs", {"10.1.0.0/24"}},
                 {"default_pool_id", "p1"}});
    txn.put("lbaas-listeners", "l2",
            Json{{"id", "l2"},
                 {"loadbalancer_id", "lb1"},
                 {"protocol", "UDP"},
                 {"protocol_port", 53},
                 {"admin_state_up", false}});
    txn.put("lbaas-members", "m1",
            Json{{"id", "m1"},
                 {"pool_id", "p1"},
                 {"address", "10.1.0.20"},
                 {"protocol_port", 8080},
                 {"weight", 3},
                 {"health", "ERROR"}});
    txn.put("lbaas-members", "m2",
            Json{{"id", "m2"},
                 {"pool_id", "p1"},
                 {"address", "10.1.0.10"},
                 {"protocol_port", 8080},
                 {"backup", true},
                 {"admin_state_up", false}});
    return ok();
  }));
  assign();
  check("load balancer");
  auto listeners = [&] {
    return state_->read([&](const state::Tables& t) {
      HostView v = computeView(t, "h1");
      for (const auto& [key, p] : v.ports) {
        if (p.id == vip_id) return p.listeners;
      }
      return std::vector<topology::LbListener>{};
    });
  };
  auto l = listeners();
  ASSERT_EQ(l.size(), 1u) << "the disabled listener is left out";
  EXPECT_EQ(l[0].id, "l1");
  EXPECT_EQ(l[0].protocol, 6) << "HTTP is balanced as TCP";
  EXPECT_EQ(l[0].port, 80);
  EXPECT_EQ(l[0].algorithm, topology::LbAlgorithm::SourceIpPort);
  EXPECT_TRUE(l[0].source_ip_persistence);
  ASSERT_EQ(l[0].allowed_cidrs.size(), 1u);
  ASSERT_EQ(l[0].members.size(), 2u);
  EXPECT_EQ(l[0].members[0].address.toString(), "10.1.0.10") << "in address order";
  EXPECT_TRUE(l[0].members[0].backup);
  EXPECT_FALSE(l[0].members[0].up) << "disabled";
  EXPECT_EQ(l[0].members[1].weight, 3);
  EXPECT_TRUE(l[0].members[1].up) << "no monitor: its health is not looked at";

  ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
    txn.put("lbaas-healthmonitors", "hm1", Json{{"id", "hm1"}, {"pool_id", "p1"}});
    return ok();
  }));
  check("monitor");
  EXPECT_FALSE(listeners()[0].members[1].up) << "found down by its monitor";
  ASSERT_TRUE(state_->write({}, [&](state::Transaction& txn) -> Result<void> {
    txn.erase("lbaas-members", "m2");
    return ok();
  }));
  check("member deleted");
  EXPECT_EQ(listeners()[0].members.size(), 1u);
}

TEST_F(TrackerTest, HostsWithTheSameClosureShareOneView) {
  auto bind = [&](const std::string& net, const std::string& host) {
    auto p = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"}}", "");
    std::string id = model::stringAt(p.body["port"], "id");
    // Binding is an administrator's.
    call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": ")" + host + "\"}}", "");
    return id;
  };
  std::string n1 = createNetwork("n1");
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + n1 + R"(", "ip_version": 4, "cidr": "10.1.0.0/24"}})");
  for (const auto& h : hosts_) bind(n1, h);
  assign();
  check("every host on n1");
  EXPECT_EQ(tracker_.views(), 1u);

  // A change is brought into the shared view once, not once per host.
  uint64_t before = tracker_.recomputations();
  bind(n1, "h1");
  assign();
  check("another port on n1");
  EXPECT_EQ(tracker_.recomputations(), before + 1);

  // A host that joins another network moves to a view of its own closure
  // and is sent only the difference.
  std::string n2 = createNetwork("n2");
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + n2 + R"(", "ip_version": 4, "cidr": "10.2.0.0/24"}})");
  bind(n2, "h2");
  assign();
  uint64_t held = agents_["h2"].version;
  state_->readAt([&](const state::Tables& t, store::Revision revision) {
    auto m = tracker_.next(t, static_cast<uint64_t>(revision), "h2", agents_["h2"].cursor);
    EXPECT_TRUE(m.has_value());
    if (m) {
      EXPECT_EQ(m->base_version(), held) << "a snapshot instead of the difference";
      EXPECT_TRUE(apply(agents_["h2"].held, *m));
      agents_["h2"].version = m->version();
    }
    return 0;
  });
  check("h2 on n2 too");
  EXPECT_EQ(tracker_.views(), 2u);

  // An agent that comes back with the version it was sent last resumes.
  Agent stale = agents_["h3"];
  bind(n1, "h4");
  assign();
  check("a port for h4");
  resume(stale, "h3");
  EXPECT_EQ(resumed_, 1);

  // A port of its own on an external network: only its view shows it.
  auto pub = call("POST", "/v2.0/networks",
                  R"({"network": {"name": "public", "router:external": true}})", "");
  std::string public_id = pub.body["network"]["id"];
  call("POST", "/v2.0/subnets",
       R"({"subnet": {"network_id": ")" + public_id +
           R"(", "ip_version": 4, "cidr": "203.0.113.0/24"}})",
       "");
  bind(public_id, "h3");
  assign();
  check("h3 on the external network");
  EXPECT_EQ(tracker_.views(), 3u);
}

}  // namespace
}  // namespace canopy::southbound
