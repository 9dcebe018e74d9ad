// Host views computed from the model the Neutron API wrote: each host sees
// the closure of its ports (networks, routers and the networks behind them,
// ports, groups, floating IPs, hosts) and nothing of other tenants; keys are
// assigned once and kept; a view builds into a topology the datapath runs.

#include "southbound/view.h"

#include <gtest/gtest.h>

#include <set>

#include "api_fixture.h"
#include "datapath/packet/builder.h"
#include "datapath/pipeline/datapath.h"
#include "southbound/agents.h"
#include "southbound/keys.h"

namespace canopy::southbound {
namespace {

using api::Json;

class ViewTest : public api::ApiFixture {
 protected:
  void SetUp() override {
    ApiFixture::SetUp();
    ASSERT_TRUE(putAgent(*state_, {.host = "compute-1", .tunnel_ip = "10.9.0.1"}));
    ASSERT_TRUE(putAgent(*state_, {.host = "compute-2", .tunnel_ip = "10.9.0.2"}));
    ASSERT_TRUE(putAgent(*state_, {.host = "gw-1",
                                   .tunnel_ip = "10.9.0.3",
                                   .gateway_capable = true,
                                   .physical_networks = {"physnet1"}}));
    auto pub = call("POST", "/v2.0/networks",
                    R"({"network": {"name": "public", "router:external": true,
                        "provider:network_type": "flat",
                        "provider:physical_network": "physnet1"}})",
                    "");
    ASSERT_EQ(pub.status, 201) << pub.body.dump();
    public_ = pub.body["network"]["id"];
    subnet(public_, "203.0.113.0/24", "");
    net_a_ = createNetwork("a");
    subnet_a_ = subnet(net_a_, "10.0.0.0/24", "p1");
    net_b_ = createNetwork("b");
    subnet_b_ = subnet(net_b_, "10.0.1.0/24", "p1");
    net_c_ = createNetwork("c", "p2");
    subnet(net_c_, "10.0.0.0/24", "p2");
    auto r = call("POST", "/v2.0/routers",
                  R"({"router": {"name": "r1", "external_gateway_info": {"network_id": ")" +
                      public_ + "\"}}}");
    ASSERT_EQ(r.status, 201) << r.body.dump();
    router_ = r.body["router"]["id"];
    for (const auto& s : {subnet_a_, subnet_b_}) {
      auto i = call("PUT", "/v2.0/routers/" + router_ + "/add_router_interface",
                    R"({"subnet_id": ")" + s + "\"}");
      ASSERT_EQ(i.status, 200) << i.body.dump();
    }
    vm1_ = port(net_a_, "vm1", "compute-1", "p1");
    vm2_ = port(net_b_, "vm2", "compute-2", "p1");
    vm3_ = port(net_c_, "vm3", "compute-1", "p2");
    // The gateway is scheduled to gw-1.
    auto gw = call("GET", "/v2.0/ports?device_owner=network:router_gateway", "", "");
    ASSERT_EQ(gw.body["ports"].size(), 1u);
    auto bound = call("PUT", "/v2.0/ports/" + gw.body["ports"][0]["id"].get<std::string>(),
                      R"({"port": {"binding:host_id": "gw-1"}})", "");
    ASSERT_EQ(bound.status, 200) << bound.body.dump();
    auto fip = call("POST", "/v2.0/floatingips",
                    R"({"floatingip": {"floating_network_id": ")" + public_ + R"(", "port_id": ")" +
                        vm1_ + "\"}}");
    ASSERT_EQ(fip.status, 201) << fip.body.dump();
    assign();
  }

  std::string subnet(const std::string& net, const std::string& cidr, const std::string& project) {
    auto s = call(
        "POST", "/v2.0/subnets",
        R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": 4, "cidr": ")" + cidr + "\"}}",
        project);
    EXPECT_EQ(s.status, 201) << s.body.dump();
    return s.body["subnet"].value("id", "");
  }
  // A VM port made by the project, bound to a host by the admin (as Nova
  // does with binding:host_id).
  std::string port(const std::string& net, const std::string& name, const std::string& host,
                   const std::string& project) {
    auto p =
        call("POST", "/v2.0/ports",
             R"({"port": {"network_id": ")" + net + R"(", "name": ")" + name + "\"}}", project);
    EXPECT_EQ(p.status, 201) << p.body.dump();
    std::string id = p.body["port"].value("id", "");
    auto b =
        call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": ")" + host + "\"}}", "");
    EXPECT_EQ(b.status, 200) << b.body.dump();
    return id;
  }
  void assign() {
    auto missing = state_->read([](const state::Tables& t) { return missingKeys(t); });
    ASSERT_TRUE(assignKeys(*state_, missing));
    EXPECT_TRUE(state_->read([](const state::Tables& t) { return missingKeys(t); }).empty());
  }
  HostView view(const std::string& host) {
    return state_->read([&](const state::Tables& t) { return computeView(t, host); });
  }
  uint32_t key(KeyKind kind, const std::string& id) {
    return state_->read([&](const state::Tables& t) { return keyOf(t, kind, id); });
  }
  static std::set<std::string> portIds(const HostView& v) {
    std::set<std::string> ids;
    for (const auto& [k, p] : v.ports) ids.insert(p.id);
    return ids;
  }
  static std::set<std::string> switchIds(const HostView& v) {
    std::set<std::string> ids;
    for (const auto& [k, s] : v.switches) ids.insert(s.id);
    return ids;
  }

  std::string public_, net_a_, net_b_, net_c_, subnet_a_, subnet_b_, router_, vm1_, vm2_, vm3_;
};

TEST_F(ViewTest, AHostSeesTheClosureOfItsPorts) {
  HostView v = view("compute-1");
  EXPECT_EQ(v.local_host, key(KeyKind::Host, "compute-1"));
  EXPECT_EQ(switchIds(v), (std::set<std::string>{net_a_, net_b_, net_c_, public_}));
  EXPECT_EQ(portIds(v), (std::set<std::string>{vm1_, vm2_, vm3_}));
  ASSERT_EQ(v.routers.size(), 1u);
  const auto& r = v.routers.begin()->second;
  EXPECT_EQ(r.id, router_);
  EXPECT_EQ(r.interfaces.size(), 2u);
  ASSERT_TRUE(r.gateway.has_value());
  EXPECT_EQ(r.gateway->host, key(KeyKind::Host, "gw-1"));
  EXPECT_EQ(r.gateway->nexthop, *IpAddress::parse("203.0.113.1"));
  EXPECT_EQ(v.floating_ips.size(), 1u);
  EXPECT_EQ(v.hosts.size(), 3u);  // itself, compute-2 (vm2), gw-1 (the gateway)
  // Each project's default group, whose ingress rule names itself.
  EXPECT_EQ(v.groups.size(), 2u);
  const auto& sw_public = v.switches.at(key(KeyKind::Network, public_));
  EXPECT_EQ(sw_public.physical_network, "physnet1");
  EXPECT_GE(sw_public.vni, kInternalVniBase);
  EXPECT_TRUE(v.builder().build(1)) << v.builder().build(1).error().message();
}

TEST_F(ViewTest, OtherTenantsStayOutOfAHostWithoutTheirPorts) {
  HostView v = view("compute-2");
  EXPECT_EQ(switchIds(v), (std::set<std::string>{net_a_, net_b_, public_}));
  EXPECT_EQ(portIds(v), (std::set<std::string>{vm1_, vm2_}));
  EXPECT_EQ(v.groups.size(), 1u);
  EXPECT_TRUE(v.builder().build(1));
}

TEST_F(ViewTest, TheGatewayHostSeesTheRouterAndTheNetworksBehindIt) {
  HostView v = view("gw-1");
  EXPECT_EQ(switchIds(v), (std::set<std::string>{net_a_, net_b_, public_}));
  EXPECT_EQ(portIds(v), (std::set<std::string>{vm1_, vm2_}));
  EXPECT_EQ(v.routers.size(), 1u);
  EXPECT_TRUE(v.builder().build(1));
  EXPECT_TRUE(view("nobody").ports.empty());
}

TEST_F(ViewTest, KeysAreAssignedOnceAndUnique) {
  uint32_t vm1 = key(KeyKind::Port, vm1_);
  EXPECT_NE(vm1, 0u);
  std::string vm4 = port(net_a_, "vm4", "compute-2", "p1");
  EXPECT_EQ(key(KeyKind::Port, vm4), 0u);
  assign();
  EXPECT_EQ(key(KeyKind::Port, vm1_), vm1);
  std::set<uint32_t> seen;
  state_->read([&](const state::Tables& t) {
    for (const auto& [id, d] : t.collection(kKeysCollection)) {
      EXPECT_TRUE(seen.insert(d.doc["key"].get<uint32_t>()).second) << id;
    }
  });
  EXPECT_GE(seen.size(), 14u);
}

TEST_F(ViewTest, AViewRunsInTheDatapath) {
  HostView v = view("compute-1");
  auto topology = v.builder().build(1);
  ASSERT_TRUE(topology);
  datapath::pipeline::Config c;
  c.host.host = v.local_host;
  FakeClock clock;
  datapath::pipeline::Datapath dp(clock, std::move(c));
  dp.setTopology(*topology);
  const auto& vm1 = v.ports.at(key(KeyKind::Port, vm1_));
  const auto& vm2 = v.ports.at(key(KeyKind::Port, vm2_));
  const auto& router = v.routers.begin()->second;
  const topology::RouterInterface* on_a = nullptr;
  for (const auto& i : router.interfaces) {
    if (i.switch_key == vm1.switch_key) on_a = &i;
  }
  ASSERT_NE(on_a, nullptr);
  auto v4 = [](const IpAddress& ip) { return datapath::packet::Ipv4Address::of(ip); };
  auto frame = datapath::packet::PacketBuilder()
                   .eth(vm1.mac, on_a->mac)
                   .ipv4(v4(vm1.ips[0]), v4(vm2.ips[0]))
                   .icmp(8, 0, 1, 1)
                   .build();
  datapath::pipeline::Outputs out;
  datapath::simulator::Trace trace;
  dp.process(datapath::pipeline::Ingress::fromPort(vm1.key), frame, out, &trace);
  ASSERT_EQ(out.items().size(), 1u) << ::testing::PrintToString(trace);
  EXPECT_EQ(out.items()[0].kind, datapath::pipeline::Outputs::Kind::Tunnel);
  EXPECT_EQ(out.items()[0].host, key(KeyKind::Host, "compute-2"));
  EXPECT_EQ(out.items()[0].remote, *IpAddress::parse("10.9.0.2"));
}

}  // namespace
}  // namespace canopy::southbound

namespace canopy::southbound {
namespace {

// A rule naming an address group admits the group's addresses, as the
// datapath enforces it; a change of the addresses changes what it admits.
TEST_F(ViewTest, AddressGroupsBecomeRulesTheDatapathEnforces) {
  auto ag = call("POST", "/v2.0/address-groups",
                 R"({"address_group": {"name": "admins", "addresses": ["10.0.0.0/24"]}})");
  ASSERT_EQ(ag.status, 201) << ag.body.dump();
  std::string ag_id = ag.body["address_group"]["id"];
  auto sg = call("POST", "/v2.0/security-groups", R"({"security_group": {"name": "ssh"}})");
  ASSERT_EQ(sg.status, 201);
  std::string sg_id = sg.body["security_group"]["id"];
  auto rule = call("POST", "/v2.0/security-group-rules",
                   R"({"security_group_rule": {"security_group_id": ")" + sg_id +
                       R"(", "direction": "ingress", "ethertype": "IPv4", "protocol": "tcp",
                       "port_range_min": 22, "port_range_max": 22,
                       "remote_address_group_id": ")" +
                       ag_id + "\"}}");
  ASSERT_EQ(rule.status, 201) << rule.body.dump();
  auto p = call("POST", "/v2.0/ports",
                R"({"port": {"network_id": ")" + net_a_ + R"(", "name": "vm4",
                    "security_groups": [")" +
                    sg_id + "\"]}}");
  ASSERT_EQ(p.status, 201) << p.body.dump();
  std::string vm4 = p.body["port"]["id"];
  ASSERT_EQ(
      call("PUT", "/v2.0/ports/" + vm4, R"({"port": {"binding:host_id": "compute-1"}})", "").status,
      200);
  assign();

  auto ssh = [&]() {
    HostView v = view("compute-1");
    auto topology = v.builder().build(1);
    EXPECT_TRUE(topology);
    datapath::pipeline::Config c;
    c.host.host = v.local_host;
    FakeClock clock;
    datapath::pipeline::Datapath dp(clock, std::move(c));
    dp.setTopology(*topology);
    const auto& from = v.ports.at(key(KeyKind::Port, vm1_));
    const auto& to = v.ports.at(key(KeyKind::Port, vm4));
    auto v4 = [](const IpAddress& ip) { return datapath::packet::Ipv4Address::of(ip); };
    auto frame = datapath::packet::PacketBuilder()
                     .eth(from.mac, to.mac)
                     .ipv4(v4(from.ips[0]), v4(to.ips[0]))
                     .tcp(40000, 22, 0x02)
                     .build();
    datapath::pipeline::Outputs out;
    dp.process(datapath::pipeline::Ingress::fromPort(from.key), frame, out, nullptr);
    return out.items().size() == 1 && out.items()[0].port == to.key;
  };
  EXPECT_TRUE(ssh());
  auto removed = call("PUT", "/v2.0/address-groups/" + ag_id + "/remove_addresses",
                      R"({"addresses": ["10.0.0.0/24"]})");
  ASSERT_EQ(removed.status, 200) << removed.body.dump();
  EXPECT_EQ(removed.body["address_group"]["addresses"], Json::array());
  EXPECT_FALSE(ssh());
  ASSERT_EQ(call("PUT", "/v2.0/address-groups/" + ag_id + "/add_addresses",
                 R"({"addresses": ["10.0.0.0/28"]})")
                .status,
            200);
  EXPECT_EQ(ssh(), view("compute-1").ports.at(key(KeyKind::Port, vm1_)).ips[0] <
                       *IpAddress::parse("10.0.0.16"));
  // A group in use stays.
  EXPECT_EQ(call("DELETE", "/v2.0/address-groups/" + ag_id).status, 409);
}

// Nova binds a port by its host: on a host with a Canopy agent it gets the
// tap binding that Nova's libvirt driver plugs; DOWN until that host's
// agent reports it, also after it moves.
TEST_F(ViewTest, APortBoundByNovaGetsItsBridgeBinding) {
  auto p = call("POST", "/v2.0/ports",
                R"({"port": {"network_id": ")" + net_a_ +
                    R"(", "binding:host_id": "compute-1", "device_owner": "compute:nova"}})",
                "");
  ASSERT_EQ(p.status, 201) << p.body.dump();
  EXPECT_EQ(p.body["port"]["binding:vif_type"], "bridge");
  EXPECT_EQ(p.body["port"]["binding:vif_details"]["port_filter"], true);
  EXPECT_EQ(p.body["port"]["status"], "DOWN");
  std::string id = p.body["port"]["id"];
  EXPECT_EQ(p.body["port"]["binding:vif_details"]["bridge_name"], "cbr" + id.substr(0, 11));
  auto moved = call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": "nowhere"}})", "");
  ASSERT_EQ(moved.status, 200) << moved.body.dump();
  EXPECT_EQ(moved.body["port"]["binding:vif_type"], "binding_failed");
  auto cleared = call("PUT", "/v2.0/ports/" + id, R"({"port": {"binding:host_id": ""}})", "");
  EXPECT_EQ(cleared.body["port"]["binding:vif_type"], "unbound");
  auto direct =
      call("PUT", "/v2.0/ports/" + id,
           R"({"port": {"binding:host_id": "compute-2", "binding:vnic_type": "direct"}})", "");
  EXPECT_EQ(direct.body["port"]["binding:vif_type"], "binding_failed");
}

// binding-extended, as Nova live-migrates: an inactive binding on the
// target host, activated (the old one turns inactive, the port DOWN until
// the new host's agent says so), then the old one deleted.
TEST_F(ViewTest, ALiveMigrationMovesTheActiveBinding) {
  auto p = call("POST", "/v2.0/ports",
                R"({"port": {"network_id": ")" + net_a_ +
                    R"(", "binding:host_id": "compute-1", "device_owner": "compute:nova"}})",
                "");
  ASSERT_EQ(p.status, 201) << p.body.dump();
  std::string id = p.body["port"]["id"];
  std::string base = "/v2.0/ports/" + id + "/bindings";
  auto list = call("GET", base, "", "");
  ASSERT_EQ(list.status, 200) << list.body.dump();
  ASSERT_EQ(list.body["bindings"].size(), 1u);
  EXPECT_EQ(list.body["bindings"][0]["host"], "compute-1");
  EXPECT_EQ(list.body["bindings"][0]["status"], "ACTIVE");
  EXPECT_EQ(list.body["bindings"][0]["vif_type"], "bridge");

  auto made = call("POST", base, R"({"binding": {"host": "compute-2"}})", "");
  ASSERT_EQ(made.status, 201) << made.body.dump();
  EXPECT_EQ(made.body["binding"]["status"], "INACTIVE");
  EXPECT_EQ(made.body["binding"]["vif_type"], "bridge");
  EXPECT_EQ(call("POST", base, R"({"binding": {"host": "compute-2"}})", "").status, 409);
  EXPECT_EQ(
      call("POST", base, R"({"binding": {"host": "nowhere"}})", "").body["NeutronError"]["type"],
      "PortBindingError");
  // The port is still compute-1's until the activation.
  EXPECT_EQ(call("GET", "/v2.0/ports/" + id, "", "").body["port"]["binding:host_id"], "compute-1");
  auto on = call("PUT", base + "/compute-2/activate", "", "");
  ASSERT_EQ(on.status, 200) << on.body.dump();
  EXPECT_EQ(on.body["binding"]["status"], "ACTIVE");
  auto port = call("GET", "/v2.0/ports/" + id, "", "").body["port"];
  EXPECT_EQ(port["binding:host_id"], "compute-2");
  EXPECT_EQ(port["status"], "DOWN");
  EXPECT_FALSE(port.contains("inactive_bindings"));
  EXPECT_EQ(call("PUT", base + "/compute-2/activate", "", "").body["NeutronError"]["type"],
            "PortBindingAlreadyActive");
  EXPECT_EQ(call("GET", base + "/compute-1", "", "").body["binding"]["status"], "INACTIVE");
  // compute-2's view now has the port as its own.
  assign();
  HostView v = view("compute-2");
  bool here = false;
  for (const auto& [key, vp] : v.ports) here = here || (vp.id == id && vp.host == v.local_host);
  EXPECT_TRUE(here);
  EXPECT_EQ(call("DELETE", base + "/compute-1", "", "").status, 204);
  EXPECT_EQ(call("GET", base + "/compute-1", "", "").body["NeutronError"]["type"],
            "PortBindingNotFound");
  EXPECT_EQ(call("GET", base, "", "").body["bindings"].size(), 1u);
  // The network's owner sees the port but not its bindings (admin only); a
  // port that is no instance's has no bindings.
  EXPECT_EQ(call("GET", base, "", "p1").status, 403);
  EXPECT_EQ(call("GET", base, "", "p2").status, 404);
  auto dhcp_like =
      call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + net_a_ + "\"}}", "");
  std::string other = dhcp_like.body["port"]["id"];
  EXPECT_EQ(call("GET", "/v2.0/ports/" + other + "/bindings", "", "").status, 400);
}

// A router's conntrack helpers reach the hosts that route for it.
TEST_F(ViewTest, ARouterCarriesItsConntrackHelpers) {
  auto h = call("POST", "/v2.0/routers/" + router_ + "/conntrack_helpers",
                R"({"conntrack_helper": {"helper": "tftp", "protocol": "udp", "port": 69}})", "p1");
  ASSERT_EQ(h.status, 201) << h.body.dump();
  HostView v = view("compute-1");
  ASSERT_EQ(v.routers.size(), 1u);
  const auto& helpers = v.routers.begin()->second.helpers;
  ASSERT_EQ(helpers.size(), 1u);
  EXPECT_EQ(helpers[0].protocol, 17);
  EXPECT_EQ(helpers[0].port, 69);
  EXPECT_EQ(helpers[0].kind, topology::NatHelperKind::Tftp);
}

// A local IP association travels with its port: the port's host answers
// the local IP with it.
TEST_F(ViewTest, APortCarriesItsLocalIps) {
  auto lip =
      call("POST", "/v2.0/local_ips", R"({"local_ip": {"network_id": ")" + net_a_ + R"("}})", "p1");
  ASSERT_EQ(lip.status, 201) << lip.body.dump();
  // (Its address allocated, as the fixture's ports' are: a fixed one could be theirs.)
  const std::string address = lip.body["local_ip"]["local_ip_address"];
  auto a = call(
      "POST",
      "/v2.0/local_ips/" + lip.body["local_ip"]["id"].get<std::string>() + "/port_associations",
      R"({"port_association": {"fixed_port_id": ")" + vm1_ + "\"}}", "p1");
  ASSERT_EQ(a.status, 201) << a.body.dump();
  assign();
  HostView v = view("compute-1");
  const auto& port = v.ports.at(key(KeyKind::Port, vm1_));
  ASSERT_EQ(port.local_ips.size(), 1u);
  EXPECT_EQ(port.local_ips[0].local, *IpAddress::parse(address));
  EXPECT_EQ(port.local_ips[0].fixed.toString(), a.body["port_association"]["fixed_ip"]);
}

}  // namespace
}  // namespace canopy::southbound
