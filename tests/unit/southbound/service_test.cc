// The southbound over a real gRPC stream on loopback: agents get their
// host's view as a snapshot and then only what changed, hosts a change does
// not concern get nothing, port reports set status and binding, gateways are
// scheduled to a capable agent, a refused version is followed by a whole
// snapshot, and a reconnecting agent gets only the changes since the version
// it holds.

#include "southbound/service.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "agent/southbound_client.h"
#include "api_fixture.h"
#include "southbound/keys.h"

namespace canopy::southbound {
namespace {

using agent::SouthboundClient;
using api::Json;

template <typename Pred>
bool waitFor(Pred pred, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return pred();
}

// An agent's end that records what it was given.
struct Agent {
  Agent(const std::string& server, const std::string& host, const std::string& tunnel,
        bool gateway = false, const std::string& zone = "") {
    pb::Hello hello;
    hello.set_host_name(host);
    uint8_t ip[4] = {10, 9, 0, static_cast<uint8_t>(std::stoi(tunnel))};
    hello.set_tunnel_ip(std::string(reinterpret_cast<const char*>(ip), 4));
    hello.set_gateway_capable(gateway);
    if (gateway) hello.add_physical_networks("physnet1");
    hello.set_availability_zone(zone);
    client = std::make_unique<SouthboundClient>(
        SouthboundClient::Options{.server = server, .hello = hello},
        [this](const HostView& v, uint64_t version) -> Result<void> {
          if (refuse.exchange(false)) return Error(Errc::InvalidArgument, "refused for the test");
          MutexLock lock(mu);
          view = v;
          versions.push_back(version);
          return ok();
        });
    client->start();
  }
  size_t received() {
    MutexLock lock(mu);
    return versions.size();
  }
  HostView current() {
    MutexLock lock(mu);
    return view;
  }
  Mutex mu;
  HostView view;
  std::vector<uint64_t> versions;
  std::atomic<bool> refuse{false};
  std::unique_ptr<SouthboundClient> client;
};

class ServiceTest : public api::ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    service_ = std::make_unique<SouthboundService>(*state_, clock_, nullptr, options_);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(service_.get());
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = "127.0.0.1:" + std::to_string(port);
    net_ = createNetwork("a");
    auto s = call(
        "POST", "/v2.0/subnets",
        R"({"subnet": {"network_id": ")" + net_ + R"(", "ip_version": 4, "cidr": "10.0.0.0/24"}})");
    ASSERT_EQ(s.status, 201);
  }
  void TearDown() override {
    agents_.clear();
    service_->stop();
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    server_.reset();
    service_.reset();
    ApiFixture::TearDown();
  }
  std::string boundPort(const std::string& net, const std::string& host) {
    auto p = call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net + "\"}}");
    EXPECT_EQ(p.status, 201);
    std::string id = p.body["port"].value("id", "");
    if (!host.empty()) {
      auto b =
          call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": ")" + host + "\"}}", "");
      EXPECT_EQ(b.status, 200);
    }
    return id;
  }
  Agent& agent(const std::string& host, const std::string& tunnel, bool gateway = false,
               const std::string& zone = "") {
    agents_.push_back(std::make_unique<Agent>(address_, host, tunnel, gateway, zone));
    return *agents_.back();
  }
  // The external network "public" (flat on physnet1) with a subnet; its id.
  std::string publicNetwork() {
    auto pub = call("POST", "/v2.0/networks",
                    R"({"network": {"name": "public", "router:external": true,
                        "provider:network_type": "flat", "provider:physical_network": "physnet1"}})",
                    "");
    EXPECT_EQ(pub.status, 201) << pub.body.dump();
    std::string id = pub.body["network"].value("id", "");
    auto subnet = call(
        "POST", "/v2.0/subnets",
        R"({"subnet": {"network_id": ")" + id + R"(", "ip_version": 4, "cidr": "203.0.113.0/24"}})",
        "");
    EXPECT_EQ(subnet.status, 201) << subnet.body.dump();
    return id;
  }
  static bool hasPort(const HostView& v, const std::string& id) {
    return std::any_of(v.ports.begin(), v.ports.end(),
                       [&](const auto& p) { return p.second.id == id; });
  }

  SystemClock clock_;  // the tracker keeps a gone host's view for minutes
  ServiceOptions options_{};
  std::unique_ptr<SouthboundService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  std::string net_;
  std::vector<std::unique_ptr<Agent>> agents_;
};

TEST_F(ServiceTest, SnapshotThenOnlyChangesToTheHostsConcerned) {
  std::string vm1 = boundPort(net_, "h1");
  Agent& h1 = agent("h1", "1");
  Agent& h2 = agent("h2", "2");
  ASSERT_TRUE(waitFor([&] { return hasPort(h1.current(), vm1); }));
  ASSERT_TRUE(waitFor([&] { return h2.received() >= 1; }));  // its empty view
  EXPECT_TRUE(h2.current().ports.empty());
  EXPECT_NE(h1.current().local_host, 0u);
  ASSERT_TRUE(waitFor([&] { return service_->connected() == 2; }));

  size_t h2_before = h2.received();
  std::string vm2 = boundPort(net_, "h1");
  ASSERT_TRUE(waitFor([&] { return hasPort(h1.current(), vm2); }));
  // Another network's port on a third host changes nothing for h2.
  std::string other = createNetwork("b");
  boundPort(other, "h3");
  // Once h2's view has been brought up to that change (and to the key the
  // port then gets), h2 has still been sent nothing.
  ASSERT_TRUE(waitFor([&] {
    return state_->read([&](const state::Tables& t) { return missingKeys(t).empty(); });
  }));
  auto now = static_cast<uint64_t>(state_->appliedRevision());
  ASSERT_TRUE(waitFor([&] {
    for (const auto& i : service_->sessions()) {
      if (i.host == "h2") return i.considered_revision >= now;
    }
    return false;
  }));
  EXPECT_EQ(h2.received(), h2_before);

  // vm3 bound to h2 on h1's network: both views change.
  std::string vm3 = boundPort(net_, "h2");
  ASSERT_TRUE(waitFor([&] { return hasPort(h1.current(), vm3) && hasPort(h2.current(), vm1); }));
  EXPECT_TRUE(h1.current().builder().build(1));
}

TEST_F(ServiceTest, PortReportsSetStatusAndBinding) {
  std::string vm = boundPort(net_, "");
  Agent& h1 = agent("h1", "1");
  ASSERT_TRUE(waitFor([&] { return h1.received() >= 1; }));
  h1.client->reportPort(vm, true);
  ASSERT_TRUE(waitFor([&] {
    auto p = call("GET", "/v2.0/ports/" + vm, "", "");
    return p.body["port"]["status"] == "ACTIVE" && p.body["port"]["binding:host_id"] == "h1";
  }));
  ASSERT_TRUE(waitFor([&] { return hasPort(h1.current(), vm); }));
  h1.client->reportPort(vm, false);
  ASSERT_TRUE(waitFor(
      [&] { return call("GET", "/v2.0/ports/" + vm, "", "").body["port"]["status"] == "DOWN"; }));
}

TEST_F(ServiceTest, GatewaysAreScheduledToACapableAgent) {
  std::string public_id = publicNetwork();
  ASSERT_FALSE(public_id.empty());
  auto r = call("POST", "/v2.0/routers",
                R"({"router": {"name": "r", "external_gateway_info": {"network_id": ")" +
                    public_id + "\"}}}");
  ASSERT_EQ(r.status, 201);
  agent("compute", "1");
  Agent& gw = agent("gateway", "3", /*gateway=*/true);
  auto gateway_host = [&] {
    auto p = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
    return p.body["ports"].empty() ? std::string()
                                   : p.body["ports"][0].value("binding:host_id", "");
  };
  ASSERT_TRUE(waitFor([&] { return gateway_host() == "gateway"; })) << gateway_host();
  ASSERT_TRUE(waitFor([&] {
    auto p = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
    return p.body["ports"][0].value("status", "") == "ACTIVE";
  }));
  ASSERT_TRUE(waitFor([&] { return gw.current().routers.size() == 1; }));
}

TEST_F(ServiceTest, ARefusedVersionIsFollowedByASnapshot) {
  boundPort(net_, "h1");
  Agent& h1 = agent("h1", "1");
  ASSERT_TRUE(waitFor([&] { return h1.received() >= 1; }));
  h1.refuse = true;
  std::string vm2 = boundPort(net_, "h1");
  // Refused once; the server sends the whole view again, which is taken.
  ASSERT_TRUE(waitFor([&] { return hasPort(h1.current(), vm2); }));
  EXPECT_FALSE(h1.refuse.load());
}

// A stream of one's own, to say hello with any version.
struct RawStream {
  RawStream(const std::string& server, const std::string& host, uint64_t applied,
            const HostView* held = nullptr) {
    // next() waits for a view at most this long (a view that never comes
    // fails the test instead of hanging it).
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
    stub = pb::Southbound::NewStub(channel);
    stream = stub->Connect(&context);
    pb::AgentMessage hello;
    hello.mutable_hello()->set_host_name(host);
    uint8_t ip[4] = {10, 9, 0, 7};
    hello.mutable_hello()->set_tunnel_ip(std::string(reinterpret_cast<const char*>(ip), 4));
    hello.mutable_hello()->set_applied_version(applied);
    if (held != nullptr) *hello.mutable_hello()->mutable_held() = digest(*held);
    stream->Write(hello);
  }
  ~RawStream() {
    context.TryCancel();
    stream->Finish();
  }
  pb::View next() {
    pb::ServerMessage m;
    while (stream->Read(&m)) {
      if (m.has_view()) return m.view();
    }
    return {};
  }
  void ack(uint64_t version) {
    pb::AgentMessage a;
    a.mutable_ack()->set_version(version);
    a.mutable_ack()->set_accepted(true);
    stream->Write(a);
  }
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Southbound::Stub> stub;
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<pb::AgentMessage, pb::ServerMessage>> stream;
};

// An agent that comes back with the version it holds gets only what changed
// since (the host's log), not its whole view again.
TEST_F(ServiceTest, AReconnectingAgentResumesWithTheChangesSince) {
  auto keyed = [&](const std::string& port) {
    return waitFor([&] {
      return state_->read(
          [&](const state::Tables& t) { return keyOf(t, KeyKind::Port, port) != 0; });
    });
  };
  std::string vm1 = boundPort(net_, "h1");
  ASSERT_TRUE(keyed(vm1));
  HostView held;
  uint64_t applied = 0;
  {
    RawStream first(address_, "h1", 0);
    pb::View snapshot = first.next();
    EXPECT_EQ(snapshot.base_version(), 0u);
    ASSERT_TRUE(apply(held, snapshot));
    ASSERT_TRUE(hasPort(held, vm1));
    applied = snapshot.version();
    first.ack(applied);
  }
  std::string vm2 = boundPort(net_, "h2");  // a change while h1 is away
  ASSERT_TRUE(keyed(vm2));
  RawStream resumed(address_, "h1", applied);
  pb::View delta = resumed.next();
  EXPECT_EQ(delta.base_version(), applied) << "changes since the held version, not a snapshot";
  EXPECT_EQ(delta.ports_size(), 1) << "only the new port";
  EXPECT_EQ(delta.switches_size(), 0);
  ASSERT_TRUE(apply(held, delta));
  EXPECT_TRUE(hasPort(held, vm2));
  // Writes the reconnection itself causes (the agent written alive again)
  // may follow as further deltas: the held view must reach the full one.
  auto full = [&] {
    return state_->read([](const state::Tables& t) { return computeView(t, "h1"); });
  };
  while (!(held == full())) {
    pb::View more = resumed.next();
    ASSERT_NE(more.version(), 0u) << "the stream ended before the view was whole";
    EXPECT_EQ(more.base_version(), delta.version());
    ASSERT_TRUE(apply(held, more));
    delta = std::move(more);
  }
}

// Another replica (a second service on the same model, its own tracker)
// never served h1: given the digest of what h1 holds, it sends nothing for an
// agent that is current and only what changed for one that is behind.
TEST_F(ServiceTest, AnAgentMovingToAnotherReplicaGetsNoSnapshot) {
  SouthboundService other(*state_, clock_);
  grpc::ServerBuilder b;
  int port = 0;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  b.RegisterService(&other);
  auto other_server = b.BuildAndStart();
  ASSERT_NE(other_server, nullptr);
  std::string replica2 = "127.0.0.1:" + std::to_string(port);
  auto keyed = [&](const std::string& id) {
    return waitFor([&] {
      return state_->read([&](const state::Tables& t) { return keyOf(t, KeyKind::Port, id) != 0; });
    });
  };
  auto full = [&] {
    return state_->read([](const state::Tables& t) { return computeView(t, "h1"); });
  };
  std::string vm1 = boundPort(net_, "h1");
  ASSERT_TRUE(keyed(vm1));
  HostView held;
  uint64_t applied = 0;
  {
    RawStream first(address_, "h1", 0);
    while (applied == 0 || !(held == full())) {
      pb::View v = first.next();
      ASSERT_NE(v.version(), 0u);
      ASSERT_TRUE(apply(held, v));
      applied = v.version();
      first.ack(applied);
    }
  }
  {
    RawStream moved(replica2, "h1", applied, &held);
    pb::View v = moved.next();
    EXPECT_EQ(v.base_version(), applied) << "a delta on what h1 holds, not a snapshot";
    EXPECT_EQ(v.ports_size() + v.switches_size() + v.routers_size() + v.groups_size(), 0)
        << "h1 is current: nothing to send";
    ASSERT_TRUE(apply(held, v));
    applied = v.version();
    moved.ack(applied);
    EXPECT_TRUE(held == full());
  }
  std::string vm2 = boundPort(net_, "h2");  // a change while h1 is away
  ASSERT_TRUE(keyed(vm2));
  RawStream back(replica2, "h1", applied, &held);
  pb::View v = back.next();
  EXPECT_EQ(v.base_version(), applied);
  EXPECT_EQ(v.ports_size(), 1) << "only the new port";
  EXPECT_EQ(v.switches_size(), 0);
  ASSERT_TRUE(apply(held, v));
  EXPECT_TRUE(hasPort(held, vm2));
  other.stop();
  other_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

TEST_F(ServiceTest, AgentsThatLeaveAreMarkedDead) {
  agent("h1", "1");
  ASSERT_TRUE(waitFor([&] { return service_->connected() == 1; }));
  agents_.clear();
  ASSERT_TRUE(waitFor([&] {
    return state_->read([](const state::Tables& t) {
      const state::Document* a = t.find(kAgentsCollection, "h1");
      return a != nullptr && a->doc.value("alive", true) == false;
    });
  }));
}

// A router's zone hints choose its gateway's host; without ha the gateway
// stays on its host when that host's agent goes, with ha it moves.
TEST_F(ServiceTest, GatewaysFollowZoneHintsAndHa) {
  std::string public_id = publicNetwork();
  ASSERT_FALSE(public_id.empty());
  agent("gw-a", "3", /*gateway=*/true, "az1");
  agent("gw-b", "4", /*gateway=*/true, "az2");
  // The zones are there once both agents' registrations are stored.
  Reply zones;
  ASSERT_TRUE(waitFor([&] {
    zones = call("GET", "/v2.0/availability_zones?resource=router");
    return zones.status == 200 && zones.body["availability_zones"].size() == 2;
  })) << zones.body.dump();
  EXPECT_EQ(zones.body["availability_zones"][0]["state"], "available");
  expectError(call("POST", "/v2.0/routers",
                   R"({"router": {"name": "r", "availability_zone_hints": ["az9"]}})"),
              404, "AvailabilityZoneNotFound");
  auto router = [&](const std::string& name, const std::string& extra) {
    auto r = call("POST", "/v2.0/routers",
                  R"({"router": {"name": ")" + name + R"(", "external_gateway_info":
                      {"network_id": ")" +
                      public_id + "\"}" + extra + "}}",
                  "");
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["router"].value("id", "");
  };
  std::string pinned = router("pinned", R"(, "availability_zone_hints": ["az2"], "ha": false)");
  std::string mobile = router("mobile", R"(, "availability_zone_hints": ["az2", "az1"])");
  auto host = [&](const std::string& id) {
    auto p = call("GET", "/v2.0/ports?device_owner=network:router_gateway&device_id=" + id, "", "");
    return p.body["ports"].empty() ? std::string()
                                   : p.body["ports"][0].value("binding:host_id", "");
  };
  ASSERT_TRUE(waitFor([&] { return host(pinned) == "gw-b" && !host(mobile).empty(); }));
  EXPECT_EQ(call("GET", "/v2.0/routers/" + pinned, "", "").body["router"]["availability_zones"],
            Json({"az2"}));
  // gw-b goes: the HA router's gateway moves to az1, the other stays.
  std::string before = host(mobile);
  agents_.erase(agents_.begin() + 1);
  ASSERT_TRUE(waitFor([&] { return host(mobile) == "gw-a"; })) << before;
  EXPECT_EQ(host(pinned), "gw-b");
}

// Gateway high availability: an HA router's gateway has standby hosts
// (every other fitting gateway host, up to two), which the agents' views
// carry and whose views include the router; when its host's agent goes, it
// moves to its first standby, where the datapath has it already.
TEST_F(ServiceTest, HaGatewaysHaveStandbysAndMoveToTheFirst) {
  std::string public_id = publicNetwork();
  ASSERT_FALSE(public_id.empty());
  agent("gw-a", "3", /*gateway=*/true);
  agent("gw-b", "4", /*gateway=*/true);
  agent("gw-c", "5", /*gateway=*/true);
  auto r = call("POST", "/v2.0/routers",
                R"({"router": {"name": "r", "external_gateway_info": {"network_id": ")" +
                    public_id + "\"}}}");
  ASSERT_EQ(r.status, 201);
  auto host = [&] {
    auto p = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
    return p.body["ports"].empty() ? std::string()
                                   : p.body["ports"][0].value("binding:host_id", "");
  };
  // Every gateway agent sees the router, its host first, the others standing by.
  auto standbys = [&](Agent& a) {
    std::vector<std::string> names;
    HostView v = a.current();
    if (v.routers.size() != 1 || !v.routers.begin()->second.gateway) return names;
    for (uint32_t k : v.routers.begin()->second.gateway->standbys) {
      auto h = v.hosts.find(k);
      names.push_back(h == v.hosts.end() ? "?" : h->second.name);
    }
    return names;
  };
  std::string primary;
  ASSERT_TRUE(waitFor([&] {
    primary = host();
    if (primary.empty()) return false;
    for (auto& a : agents_) {
      if (standbys(*a).size() != 2) return false;
    }
    return true;
  })) << primary;
  std::vector<std::string> order = standbys(*agents_[0]);
  EXPECT_EQ(std::count(order.begin(), order.end(), primary), 0);
  // Its host's agent goes: the first standby takes it, the other stands by.
  size_t at = primary == "gw-a" ? 0 : primary == "gw-b" ? 1 : 2;
  agents_.erase(agents_.begin() + static_cast<long>(at));
  ASSERT_TRUE(waitFor([&] { return host() == order[0]; })) << host();
  ASSERT_TRUE(waitFor([&] {
    for (auto& a : agents_) {
      if (standbys(*a) != std::vector<std::string>{order[1]}) return false;
    }
    return true;
  }));
}

class DistributedSnatTest : public ServiceTest {
 protected:
  void SetUp() override {
    options_ = {.distributed_snat = true, .snat_block_ports = 2048};
    ServiceTest::SetUp();
  }
};

// Each live host with an uplink and a port behind the router leases a block
// of the gateway address's ports; the lease returns when its agent goes.
TEST_F(DistributedSnatTest, HostsWithUplinksAndPortsBehindTheRouterLeaseBlocks) {
  std::string public_id = publicNetwork();
  ASSERT_FALSE(public_id.empty());
  auto subnets = call("GET", "/v2.0/subnets?network_id=" + net_, "", "");
  ASSERT_EQ(subnets.body["subnets"].size(), 1u);
  auto r = call("POST", "/v2.0/routers",
                R"({"router": {"name": "r", "external_gateway_info": {"network_id": ")" +
                    public_id + "\"}}}");
  ASSERT_EQ(r.status, 201);
  std::string router = r.body["router"].value("id", "");
  auto i = call("PUT", "/v2.0/routers/" + router + "/add_router_interface",
                R"({"subnet_id": ")" + subnets.body["subnets"][0].value("id", "") + "\"}");
  ASSERT_EQ(i.status, 200) << i.body.dump();
  agent("gw-a", "3", /*gateway=*/true);
  agent("c1", "4", /*gateway=*/true);  // an uplink to physnet1
  agent("c2", "5");                    // none
  boundPort(net_, "c1");
  boundPort(net_, "c2");
  // The leases as a host's view has them: host name -> ports.
  auto leases = [&](Agent& a) {
    std::map<std::string, std::pair<int, int>> out;
    HostView v = a.current();
    if (v.routers.size() != 1 || !v.routers.begin()->second.gateway) return out;
    const auto& gw = *v.routers.begin()->second.gateway;
    out["(central)"] = {gw.central_first, gw.central_last};
    for (const auto& l : gw.leases) {
      auto h = v.hosts.find(l.host);
      out[h == v.hosts.end() ? "?" : h->second.name] = {l.first, l.last};
    }
    return out;
  };
  using Leases = std::map<std::string, std::pair<int, int>>;
  const Leases want{{"(central)", {1024, 3071}}, {"c1", {3072, 5119}}};
  ASSERT_TRUE(waitFor([&] { return leases(*agents_[0]) == want && leases(*agents_[1]) == want; }))
      << leases(*agents_[0]).size();
  // c1's agent goes: its lease returns.
  agents_.erase(agents_.begin() + 1);
  ASSERT_TRUE(waitFor([&] { return leases(*agents_[0]) == Leases{{"(central)", {1024, 3071}}}; }));
  // The API shows nothing of it.
  auto gw = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
  EXPECT_EQ(gw.body.dump().find("canopy:"), std::string::npos) << gw.body.dump();
}

// An agent an admin sets down keeps its gateways but takes no new ones; what
// the admin said of it outlives the agent's own reconnection.
TEST_F(ServiceTest, AnAgentSetDownTakesNoNewGateways) {
  std::string public_id = publicNetwork();
  ASSERT_FALSE(public_id.empty());
  agent("gw-a", "3", /*gateway=*/true);
  Reply agents;
  ASSERT_TRUE(waitFor([&] {
    agents = call("GET", "/v2.0/agents", "", "");
    return agents.body["agents"].size() == 1;
  })) << agents.body.dump();
  auto router = [&](const std::string& name) {
    auto r = call("POST", "/v2.0/routers",
                  R"({"router": {"name": ")" + name +
                      R"(", "external_gateway_info": {"network_id": ")" + public_id + "\"}}}",
                  "");
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["router"].value("id", "");
  };
  auto host = [&](const std::string& id) {
    auto p = call("GET", "/v2.0/ports?device_owner=network:router_gateway&device_id=" + id, "", "");
    return p.body["ports"].empty() ? std::string()
                                   : p.body["ports"][0].value("binding:host_id", "");
  };
  std::string first = router("first");
  ASSERT_TRUE(waitFor([&] { return host(first) == "gw-a"; }));
  auto down = call("PUT", "/v2.0/agents/gw-a",
                   R"({"agent": {"admin_state_up": false, "description": "draining"}})", "");
  ASSERT_EQ(down.status, 200) << down.body.dump();
  EXPECT_EQ(down.body["agent"]["admin_state_up"], false);
  EXPECT_EQ(down.body["agent"]["description"], "draining");
  expectError(call("PUT", "/v2.0/agents/gw-a", R"({"agent": {"host": "x"}})", ""), 400,
              "HTTPBadRequest", "Cannot update read-only attribute host");
  expectError(call("PUT", "/v2.0/agents/gw-a", R"({"agent": {"admin_state_up": "no"}})", ""), 400,
              "HTTPBadRequest");
  expectError(call("PUT", "/v2.0/agents/gw-a", R"({"agent": {"description": "x"}})"), 403,
              "AdminRequired");
  agent("gw-b", "4", /*gateway=*/true);
  std::string second = router("second");
  ASSERT_TRUE(waitFor([&] { return host(second) == "gw-b"; }));
  EXPECT_EQ(host(first), "gw-a");  // kept
  // gw-a reconnects: the admin's word stays.
  agents_.erase(agents_.begin());
  ASSERT_TRUE(waitFor([&] {
    return !call("GET", "/v2.0/agents/gw-a", "", "").body["agent"].value("alive", true);
  }));
  agent("gw-a", "3", /*gateway=*/true);
  ASSERT_TRUE(waitFor([&] {
    agents = call("GET", "/v2.0/agents/gw-a", "", "");
    return agents.body["agent"].value("alive", false);
  }));
  EXPECT_EQ(agents.body["agent"]["admin_state_up"], false);
  EXPECT_EQ(agents.body["agent"]["description"], "draining");
}

}  // namespace
}  // namespace canopy::southbound
