// Routers, floating IPs, quotas and network segments through the Neutron API
// handler over a real store: Neutron's rules and refusals, and that every
// port and address the L3 resources take is given back.

#include <gtest/gtest.h>

#include <set>

#include "api_fixture.h"
#include "base/ip.h"

namespace canopy::api {
namespace {

constexpr const char* kAdmin = "";  // no project header: the noauth admin

class L3Test : public ApiFixture {
 protected:
  // An external network with a /28 subnet, made by the admin.
  std::string externalNetwork(const std::string& cidr = "203.0.113.0/28") {
    auto n = call("POST", "/v2.0/networks",
                  R"({"network": {"name": "public", "router:external": true}})", kAdmin);
    EXPECT_EQ(n.status, 201) << n.body.dump();
    std::string id = n.body["network"]["id"];
    auto s = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + id + R"(", "ip_version": 4, "cidr": ")" +
                      cidr + R"("}})",
                  kAdmin);
    EXPECT_EQ(s.status, 201) << s.body.dump();
    return id;
  }
  // A project's network with one IPv4 subnet; returns {network, subnet}.
  std::pair<std::string, std::string> tenantNetwork(const std::string& cidr,
                                                    const std::string& project = "p1") {
    std::string net = createNetwork("n-" + cidr, project);
    auto s = call("POST", "/v2.0/subnets",
                  R"({"subnet": {"network_id": ")" + net + R"(", "ip_version": 4, "cidr": ")" +
                      cidr + R"("}})",
                  project);
    EXPECT_EQ(s.status, 201) << s.body.dump();
    return {net, s.body["subnet"]["id"]};
  }
  std::string createRouter(const std::string& gateway_network = "",
                           const std::string& project = "p1") {
    std::string gw = gateway_network.empty() ? ""
                                             : R"(, "external_gateway_info": {"network_id": ")" +
                                                   gateway_network + "\"}";
    auto r = call("POST", "/v2.0/routers", R"({"router": {"name": "r")" + gw + "}}", project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["router"].value("id", "");
  }
  Reply routerAction(const std::string& router, const std::string& action, const std::string& body,
                     const std::string& project = "p1") {
    return call("PUT", "/v2.0/routers/" + router + "/" + action, body, project);
  }
  std::string createPort(const std::string& network, const std::string& project = "p1") {
    auto r =
        call("POST", "/v2.0/ports", R"({"port": {"network_id": ")" + network + "\"}}", project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["port"].value("id", "");
  }
  std::string portForFip(const std::string& fip_id) {
    auto r =
        call("GET", "/v2.0/ports?device_owner=network:floatingip&device_id=" + fip_id, "", kAdmin);
    EXPECT_EQ(r.body["ports"].size(), 1u);
    return r.body["ports"].empty() ? "" : r.body["ports"][0].value("id", "");
  }
  int portCount(const std::string& query) {
    return static_cast<int>(call("GET", "/v2.0/ports?" + query, "", kAdmin).body["ports"].size());
  }
};

TEST_F(L3Test, RouterGatewayTakesAnAddressOnTheExternalNetwork) {
  std::string pub = externalNetwork();
  std::string router = createRouter(pub);
  auto shown = call("GET", "/v2.0/routers/" + router);
  ASSERT_EQ(shown.status, 200);
  const Json& r = shown.body["router"];
  EXPECT_EQ(r["status"], "ACTIVE");
  EXPECT_EQ(r["routes"], Json::array());
  const Json& gw = r["external_gateway_info"];
  EXPECT_EQ(gw["network_id"], pub);
  EXPECT_EQ(gw["enable_snat"], true);
  ASSERT_EQ(gw["external_fixed_ips"].size(), 1u);
  auto ip = IpAddress::parse(gw["external_fixed_ips"][0]["ip_address"].get<std::string>());
  ASSERT_TRUE(ip);
  EXPECT_TRUE(IpPrefix::parse("203.0.113.0/28")->contains(*ip));
  // The gateway port belongs to no project: the tenant does not see it.
  EXPECT_EQ(portCount("device_owner=network:router_gateway&device_id=" + router), 1);
  EXPECT_EQ(call("GET", "/v2.0/ports?device_id=" + router).body["ports"].size(), 0u);

  // ext-gw-mode and fixed addresses are the admin's to choose.
  expectError(call("PUT", "/v2.0/routers/" + router,
                   R"({"router": {"external_gateway_info": {"network_id": ")" + pub +
                       R"(", "enable_snat": false}}})"),
              403, "PolicyNotAuthorized");
  auto admin_set = call(
      "PUT", "/v2.0/routers/" + router,
      R"({"router": {"external_gateway_info": {"network_id": ")" + pub +
          R"(", "enable_snat": false, "external_fixed_ips": [{"ip_address": "203.0.113.9"}]}}})",
      kAdmin);
  ASSERT_EQ(admin_set.status, 200) << admin_set.body.dump();
  EXPECT_EQ(admin_set.body["router"]["external_gateway_info"]["enable_snat"], false);
  EXPECT_EQ(
      admin_set.body["router"]["external_gateway_info"]["external_fixed_ips"][0]["ip_address"],
      "203.0.113.9");
  EXPECT_EQ(portCount("device_owner=network:router_gateway"), 1);

  // Only external networks make gateways.
  auto [net, subnet] = tenantNetwork("10.0.0.0/24");
  expectError(call("PUT", "/v2.0/routers/" + router,
                   R"({"router": {"external_gateway_info": {"network_id": ")" + net + "\"}}}"),
              400, "HTTPBadRequest",
              "Bad router request: Network " + net + " is not an external network.");
  // Clearing the gateway gives its port back.
  auto cleared =
      call("PUT", "/v2.0/routers/" + router, R"({"router": {"external_gateway_info": {}}})");
  ASSERT_EQ(cleared.status, 200) << cleared.body.dump();
  EXPECT_TRUE(cleared.body["router"]["external_gateway_info"].is_null());
  EXPECT_EQ(portCount("device_owner=network:router_gateway"), 0);
}

TEST_F(L3Test, InterfaceBySubnetTakesTheGatewayAddress) {
  auto [net, subnet] = tenantNetwork("10.0.0.0/24");
  std::string router = createRouter();
  auto added = routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}");
  ASSERT_EQ(added.status, 200) << added.body.dump();
  EXPECT_EQ(added.body["id"], router);
  EXPECT_EQ(added.body["subnet_id"], subnet);
  EXPECT_EQ(added.body["network_id"], net);
  EXPECT_EQ(added.body["project_id"], "p1");
  std::string port_id = added.body["port_id"];
  auto port = call("GET", "/v2.0/ports/" + port_id).body["port"];
  EXPECT_EQ(port["device_owner"], "network:router_interface");
  EXPECT_EQ(port["device_id"], router);
  EXPECT_EQ(port["fixed_ips"][0]["ip_address"], "10.0.0.1");
  EXPECT_EQ(port["security_groups"], Json::array());

  expectError(routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}"),
              400, "HTTPBadRequest",
              "Bad router request: Router already has a port on subnet " + subnet + ".");
  auto [net2, overlapping] = tenantNetwork("10.0.0.128/25");
  expectError(
      routerAction(router, "add_router_interface", R"({"subnet_id": ")" + overlapping + "\"}"), 400,
      "HTTPBadRequest",
      "Bad router request: IpPrefix 10.0.0.128/25 of subnet " + overlapping +
          " overlaps with cidr 10.0.0.0/24 of subnet " + subnet + ".");
  expectError(routerAction(router, "add_router_interface", "{}"), 400, "HTTPBadRequest",
              "Bad router request: Either subnet_id or port_id must be specified.");
  expectError(routerAction(router, "add_router_interface",
                           R"({"subnet_id": ")" + subnet + R"(", "port_id": ")" + port_id + "\"}"),
              400, "HTTPBadRequest",
              "Bad router request: Cannot specify both subnet-id and port-id.");
  expectError(routerAction(router, "add_router_interface", R"({"subnet_id": "nope"})"), 400,
              "HTTPBadRequest");
  // Another project cannot plug the router into its subnet, nor see the router.
  auto [other_net, other_subnet] = tenantNetwork("10.9.0.0/24", "p2");
  expectError(
      routerAction(router, "add_router_interface", R"({"subnet_id": ")" + other_subnet + "\"}"),
      404, "SubnetNotFound");
  expectError(routerAction(router, "add_router_interface",
                           R"({"subnet_id": ")" + other_subnet + "\"}", "p2"),
              404, "RouterNotFound");

  // What the interface holds cannot go from under it.
  expectError(call("DELETE", "/v2.0/routers/" + router), 409, "RouterInUse",
              "Router " + router + " still has ports");
  expectError(call("DELETE", "/v2.0/ports/" + port_id), 409, "ServicePortInUse",
              "Port " + port_id +
                  " cannot be deleted directly via the port API: has device owner "
                  "network:router_interface.");
  expectError(call("DELETE", "/v2.0/subnets/" + subnet), 409, "SubnetInUse");
  expectError(call("DELETE", "/v2.0/networks/" + net), 409, "NetworkInUse");

  expectError(
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + overlapping + "\"}"),
      404, "RouterInterfaceNotFoundForSubnet",
      "Router " + router + " has no interface on subnet " + overlapping);
  auto removed =
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + subnet + "\"}");
  ASSERT_EQ(removed.status, 200) << removed.body.dump();
  EXPECT_EQ(removed.body["port_id"], port_id);
  expectError(call("GET", "/v2.0/ports/" + port_id), 404, "PortNotFound");
  // The gateway address is free again: a new interface takes it.
  auto again = routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}");
  ASSERT_EQ(again.status, 200) << again.body.dump();
  ASSERT_EQ(
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + subnet + "\"}").status,
      200);
  EXPECT_EQ(call("DELETE", "/v2.0/routers/" + router).status, 204);
  EXPECT_EQ(call("DELETE", "/v2.0/networks/" + net).status, 204);
}

TEST_F(L3Test, InterfaceByPortAdoptsThePort) {
  auto [net, subnet] = tenantNetwork("10.1.0.0/24");
  std::string router = createRouter();
  std::string port_id = createPort(net);
  auto added = routerAction(router, "add_router_interface", R"({"port_id": ")" + port_id + "\"}");
  ASSERT_EQ(added.status, 200) << added.body.dump();
  EXPECT_EQ(added.body["subnet_id"], subnet);
  auto port = call("GET", "/v2.0/ports/" + port_id).body["port"];
  EXPECT_EQ(port["device_owner"], "network:router_interface");
  EXPECT_EQ(port["device_id"], router);

  // A port with a device already is refused.
  std::string router2 = createRouter();
  expectError(routerAction(router2, "add_router_interface", R"({"port_id": ")" + port_id + "\"}"),
              409, "PortInUse");
  expectError(
      routerAction(router2, "remove_router_interface", R"({"port_id": ")" + port_id + "\"}"), 404,
      "RouterInterfaceNotFound",
      "Router " + router2 + " does not have an interface with id " + port_id);
  auto removed =
      routerAction(router, "remove_router_interface", R"({"port_id": ")" + port_id + "\"}");
  ASSERT_EQ(removed.status, 200) << removed.body.dump();
  expectError(call("GET", "/v2.0/ports/" + port_id), 404, "PortNotFound");
}

TEST_F(L3Test, ExtraRoutesNeedAConnectedNextHop) {
  auto [net, subnet] = tenantNetwork("10.2.0.0/24");
  std::string router = createRouter();
  ASSERT_EQ(
      routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}").status,
      200);
  auto setRoutes = [&](const std::string& routes) {
    return call("PUT", "/v2.0/routers/" + router, R"({"router": {"routes": )" + routes + "}}");
  };
  expectError(
      setRoutes(R"([{"destination": "192.168.0.0/16", "nexthop": "10.3.0.5"}])"), 400,
      "InvalidRoutes",
      R"(Invalid format for routes: {"destination":"192.168.0.0/16","nexthop":"10.3.0.5"}, the nexthop is not connected with router)");
  expectError(setRoutes(R"([{"destination": "192.168.0.0/16", "nexthop": "10.2.0.1"}])"), 400,
              "InvalidRoutes");
  expectError(setRoutes(R"([{"destination": "192.168.0.1/16", "nexthop": "10.2.0.5"}])"), 400,
              "HTTPBadRequest");
  expectError(setRoutes(R"([{"destination": "192.168.0.0/16"}])"), 400, "HTTPBadRequest");
  auto set = setRoutes(R"([{"destination": "192.168.0.0/16", "nexthop": "10.2.0.5"}])");
  ASSERT_EQ(set.status, 200) << set.body.dump();
  EXPECT_EQ(set.body["router"]["routes"].size(), 1u);
  expectError(call("POST", "/v2.0/routers", R"({"router": {"routes": []}})"), 400,
              "HTTPBadRequest");

  // extraroute-atomic adds and removes without touching the others.
  auto added = routerAction(
      router, "add_extraroutes",
      R"({"router": {"routes": [{"destination": "172.16.0.0/12", "nexthop": "10.2.0.6"}, {"destination": "192.168.0.0/16", "nexthop": "10.2.0.5"}]}})");
  ASSERT_EQ(added.status, 200) << added.body.dump();
  EXPECT_EQ(added.body["router"]["routes"].size(), 2u);
  auto dropped = routerAction(
      router, "remove_extraroutes",
      R"({"router": {"routes": [{"destination": "192.168.0.0/16", "nexthop": "10.2.0.5"}]}})");
  ASSERT_EQ(dropped.status, 200) << dropped.body.dump();
  ASSERT_EQ(dropped.body["router"]["routes"].size(), 1u);
  EXPECT_EQ(dropped.body["router"]["routes"][0]["destination"], "172.16.0.0/12");

  // The interface carries a route: it stays until the route goes.
  expectError(
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + subnet + "\"}"), 409,
      "RouterInterfaceInUseByRoute");
  ASSERT_EQ(setRoutes("[]").status, 200);
  EXPECT_EQ(
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + subnet + "\"}").status,
      200);
}

TEST_F(L3Test, PortForwardingsHoldTheirFloatingIpAndGoWithTheirPort) {
  std::string pub = externalNetwork();
  auto [net, subnet] = tenantNetwork("10.5.0.0/24");
  std::string router = createRouter(pub);
  ASSERT_EQ(
      routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}").status,
      200);
  std::string vm1 = createPort(net), vm2 = createPort(net);
  auto address = [&](const std::string& port) -> std::string {
    return call("GET", "/v2.0/ports/" + port).body["port"]["fixed_ips"][0]["ip_address"];
  };
  auto fip = [&] {
    return call("POST", "/v2.0/floatingips",
                R"({"floatingip": {"floating_network_id": ")" + pub + "\"}}")
        .body["floatingip"]
        .value("id", "");
  };
  std::string fip_id = fip();
  auto forward = [&](const std::string& port, const std::string& ip, int external) {
    return call("POST", "/v2.0/floatingips/" + fip_id + "/port_forwardings",
                R"({"port_forwarding": {"internal_port_id": ")" + port +
                    R"(", "internal_ip_address": ")" + ip +
                    R"(", "protocol": "tcp", "internal_port": 22, "external_port": )" +
                    std::to_string(external) + "}}");
  };
  auto made = forward(vm1, address(vm1), 2222);
  ASSERT_EQ(made.status, 201) << made.body.dump();
  auto shown = call("GET", "/v2.0/floatingips/" + fip_id).body["floatingip"];
  EXPECT_EQ(shown["router_id"], router);
  EXPECT_EQ(shown["status"], "ACTIVE");
  ASSERT_EQ(shown["port_forwardings"].size(), 1u);
  EXPECT_EQ(shown["port_forwardings"][0]["external_port"], 2222);
  // The floating IP is the forwardings': no association, no deletion.
  expectError(
      call("PUT", "/v2.0/floatingips/" + fip_id, R"({"floatingip": {"port_id": ")" + vm2 + "\"}}"),
      409, "FipInUseByPortForwarding");
  expectError(call("DELETE", "/v2.0/floatingips/" + fip_id), 409, "FipInUseByPortForwarding");
  // Neutron's checks: the port's own address, each external port once, no
  // port that has a floating IP of its own.
  expectError(forward(vm2, address(vm1), 2223), 400, "HTTPBadRequest");
  expectError(forward(vm2, address(vm2), 2222), 400, "BadRequest");
  std::string own = fip();
  ASSERT_EQ(
      call("PUT", "/v2.0/floatingips/" + own, R"({"floatingip": {"port_id": ")" + vm2 + "\"}}")
          .status,
      200);
  expectError(forward(vm2, address(vm2), 2224), 409, "PortHasBindingFloatingIP");
  // The port goes: its forwardings with it, and the floating IP is free.
  EXPECT_EQ(call("DELETE", "/v2.0/ports/" + vm1).status, 204);
  shown = call("GET", "/v2.0/floatingips/" + fip_id).body["floatingip"];
  EXPECT_EQ(shown["port_forwardings"].size(), 0u);
  EXPECT_TRUE(shown["router_id"].is_null());
  EXPECT_EQ(call("DELETE", "/v2.0/floatingips/" + fip_id).status, 204);
}

TEST_F(L3Test, FloatingIpIsAllocatedAssociatedAndGivenBack) {
  std::string pub = externalNetwork();
  auto [net, subnet] = tenantNetwork("10.4.0.0/24");
  std::string vm = createPort(net);

  auto created = call("POST", "/v2.0/floatingips",
                      R"({"floatingip": {"floating_network_id": ")" + pub + "\"}}");
  ASSERT_EQ(created.status, 201) << created.body.dump();
  Json fip = created.body["floatingip"];
  std::string fip_id = fip["id"];
  EXPECT_EQ(fip["status"], "DOWN");
  EXPECT_TRUE(fip["port_id"].is_null());
  EXPECT_TRUE(fip["router_id"].is_null());
  EXPECT_FALSE(fip.contains("name"));
  auto address = IpAddress::parse(fip["floating_ip_address"].get<std::string>());
  ASSERT_TRUE(address);
  EXPECT_TRUE(IpPrefix::parse("203.0.113.0/28")->contains(*address));
  EXPECT_EQ(portCount("device_owner=network:floatingip&device_id=" + fip_id), 1);

  // Not reachable: no router joins the port's subnet to the external network.
  auto associate = [&](const std::string& port) {
    return call("PUT", "/v2.0/floatingips/" + fip_id,
                R"({"floatingip": {"port_id": ")" + port + "\"}}");
  };
  expectError(associate(vm), 404, "ExternalGatewayForFloatingIPNotFound",
              "External network " + pub + " is not reachable from subnet " + subnet +
                  ".  Therefore, cannot associate Port " + vm + " with a Floating IP.");
  std::string router = createRouter(pub);
  ASSERT_EQ(
      routerAction(router, "add_router_interface", R"({"subnet_id": ")" + subnet + "\"}").status,
      200);
  auto bound = associate(vm);
  ASSERT_EQ(bound.status, 200) << bound.body.dump();
  EXPECT_EQ(bound.body["floatingip"]["port_id"], vm);
  EXPECT_EQ(bound.body["floatingip"]["router_id"], router);
  EXPECT_EQ(bound.body["floatingip"]["status"], "ACTIVE");
  std::string fixed = bound.body["floatingip"]["fixed_ip_address"];
  EXPECT_TRUE(IpPrefix::parse("10.4.0.0/24")->contains(*IpAddress::parse(fixed)));

  // One floating IP per fixed IP and external network.
  auto second = call(
      "POST", "/v2.0/floatingips",
      R"({"floatingip": {"floating_network_id": ")" + pub + R"(", "port_id": ")" + vm + "\"}}");
  expectError(second, 409, "FloatingIPPortAlreadyAssociated");
  // What the floating IP stands on stays.
  expectError(
      routerAction(router, "remove_router_interface", R"({"subnet_id": ")" + subnet + "\"}"), 409,
      "RouterInterfaceInUseByFloatingIP");
  expectError(
      call("PUT", "/v2.0/routers/" + router, R"({"router": {"external_gateway_info": null}})"), 409,
      "RouterExternalGatewayInUseByFloatingIp");
  // Policy and bad input.
  expectError(call("POST", "/v2.0/floatingips",
                   R"({"floatingip": {"floating_network_id": ")" + pub +
                       R"(", "floating_ip_address": "203.0.113.5"}})"),
              403, "PolicyNotAuthorized");
  expectError(call("POST", "/v2.0/floatingips",
                   R"({"floatingip": {"floating_network_id": ")" + net + "\"}}"),
              400, "HTTPBadRequest",
              "Bad floatingip request: Network " + net + " is not a valid external network.");
  expectError(
      call("PUT", "/v2.0/floatingips/" + fip_id,
           R"({"floatingip": {"port_id": ")" + vm + R"(", "fixed_ip_address": "10.4.0.250"}})"),
      400, "HTTPBadRequest");
  expectError(call("DELETE", "/v2.0/ports/" + portForFip(fip_id), "", kAdmin), 409,
              "ServicePortInUse");

  // Disassociating clears the binding; the same port can be bound again.
  auto freed = call("PUT", "/v2.0/floatingips/" + fip_id, R"({"floatingip": {"port_id": null}})");
  ASSERT_EQ(freed.status, 200) << freed.body.dump();
  EXPECT_TRUE(freed.body["floatingip"]["port_id"].is_null());
  EXPECT_TRUE(freed.body["floatingip"]["fixed_ip_address"].is_null());
  EXPECT_TRUE(freed.body["floatingip"]["router_id"].is_null());
  EXPECT_EQ(freed.body["floatingip"]["status"], "DOWN");
  ASSERT_EQ(associate(vm).status, 200);

  // The VM's port goes: the floating IP stays, unbound.
  ASSERT_EQ(call("DELETE", "/v2.0/ports/" + vm).status, 204);
  auto after = call("GET", "/v2.0/floatingips/" + fip_id).body["floatingip"];
  EXPECT_TRUE(after["port_id"].is_null());
  EXPECT_EQ(after["status"], "DOWN");

  ASSERT_EQ(call("DELETE", "/v2.0/floatingips/" + fip_id).status, 204);
  EXPECT_EQ(portCount("device_owner=network:floatingip"), 0);
  // The admin may ask for the same address back.
  auto exact =
      call("POST", "/v2.0/floatingips",
           R"({"floatingip": {"floating_network_id": ")" + pub + R"(", "floating_ip_address": ")" +
               fip["floating_ip_address"].get<std::string>() + "\"}}",
           kAdmin);
  ASSERT_EQ(exact.status, 201) << exact.body.dump();
}

TEST_F(L3Test, FloatingIpsRunOutWithNeutronsError) {
  std::string pub = externalNetwork("198.51.100.0/29");  // 5 usable addresses
  int made = 0;
  Reply last{};
  for (int i = 0; i < 10; ++i) {
    last = call("POST", "/v2.0/floatingips",
                R"({"floatingip": {"floating_network_id": ")" + pub + "\"}}");
    if (last.status != 201) break;
    ++made;
  }
  EXPECT_EQ(made, 5);
  expectError(last, 409, "IpAddressGenerationFailure");
}

TEST_F(L3Test, QuotasLimitEachProject) {
  auto defaults = call("GET", "/v2.0/quotas/p1");
  ASSERT_EQ(defaults.status, 200);
  EXPECT_EQ(defaults.body["quota"]["network"], 100);
  EXPECT_EQ(defaults.body["quota"]["port"], 500);
  EXPECT_EQ(defaults.body["quota"]["router"], 10);

  expectError(call("PUT", "/v2.0/quotas/p1", R"({"quota": {"network": 2}})"), 403, "AdminRequired");
  expectError(call("GET", "/v2.0/quotas/p2"), 403, "NotAuthorized");
  expectError(call("PUT", "/v2.0/quotas/p1", R"({"quota": {"network": -2}})", kAdmin), 400,
              "HTTPBadRequest");
  expectError(call("PUT", "/v2.0/quotas/p1", R"({"quota": {"gizmo": 2}})", kAdmin), 400,
              "HTTPBadRequest", "Unrecognized attribute(s) 'gizmo'");
  auto set = call("PUT", "/v2.0/quotas/p1", R"({"quota": {"network": "2", "router": 0}})", kAdmin);
  ASSERT_EQ(set.status, 200) << set.body.dump();
  EXPECT_EQ(set.body["quota"]["network"], 2);
  EXPECT_EQ(set.body["quota"]["subnet"], 100);

  createNetwork("a");
  createNetwork("b");
  expectError(call("POST", "/v2.0/networks", R"({"network": {"name": "c"}})"), 409, "OverQuota",
              "Quota exceeded for resources: ['network'].");
  expectError(call("POST", "/v2.0/routers", R"({"router": {"name": "r"}})"), 409, "OverQuota");
  createNetwork("other", "p2");  // p2 keeps the defaults

  auto details = call("GET", "/v2.0/quotas/p1/details");
  ASSERT_EQ(details.status, 200);
  EXPECT_EQ(details.body["quota"]["network"]["limit"], 2);
  EXPECT_EQ(details.body["quota"]["network"]["used"], 2);
  auto list = call("GET", "/v2.0/quotas", "", kAdmin);
  ASSERT_EQ(list.body["quotas"].size(), 1u);
  EXPECT_EQ(list.body["quotas"][0]["project_id"], "p1");

  // Bulk creation is all or nothing against the quota.
  ASSERT_EQ(call("PUT", "/v2.0/quotas/p1", R"({"quota": {"network": 3}})", kAdmin).status, 200);
  expectError(call("POST", "/v2.0/networks", R"({"networks": [{"name": "x"}, {"name": "y"}]})"),
              409, "OverQuota");
  EXPECT_EQ(call("GET", "/v2.0/networks?project_id=p1").body["networks"].size(), 2u);

  EXPECT_EQ(call("DELETE", "/v2.0/quotas/p1", "", kAdmin).status, 204);
  EXPECT_EQ(call("GET", "/v2.0/quotas/p1").body["quota"]["network"], 100);
  EXPECT_EQ(call("GET", "/v2.0/quotas/p1/default").body["quota"]["router"], 10);
}

TEST_F(L3Test, TenantNetworksGetTunnelIdsFromTheRange) {
  shutdown();
  ApiConfig config;
  config.network.vni_min = 100;
  config.network.vni_max = 101;
  boot(std::move(config));
  auto a = call("POST", "/v2.0/networks", R"({"network": {"name": "a"}})", kAdmin);
  auto b = call("POST", "/v2.0/networks", R"({"network": {"name": "b"}})", "p1");
  ASSERT_EQ(a.status, 201);
  ASSERT_EQ(b.status, 201);
  EXPECT_EQ(a.body["network"]["provider:network_type"], "geneve");
  EXPECT_TRUE(a.body["network"]["provider:physical_network"].is_null());
  std::string b_id = b.body["network"]["id"];
  auto b_seen = call("GET", "/v2.0/networks/" + b_id, "", kAdmin).body["network"];
  std::set<int64_t> ids = {a.body["network"]["provider:segmentation_id"].get<int64_t>(),
                           b_seen["provider:segmentation_id"].get<int64_t>()};
  EXPECT_EQ(ids, (std::set<int64_t>{100, 101}));
  expectError(call("POST", "/v2.0/networks", R"({"network": {"name": "c"}})"), 503,
              "NoNetworkAvailable");
  // Deleting a network frees its id.
  ASSERT_EQ(call("DELETE", "/v2.0/networks/" + b_id).status, 204);
  EXPECT_EQ(call("POST", "/v2.0/networks", R"({"network": {"name": "c"}})").status, 201);
}

TEST_F(L3Test, ProviderNetworksAreCheckedAndUnique) {
  auto create = [&](const std::string& attrs) {
    return call("POST", "/v2.0/networks", R"({"network": {"name": "p", )" + attrs + "}}", kAdmin);
  };
  auto vlan = create(
      R"("provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42)");
  ASSERT_EQ(vlan.status, 201) << vlan.body.dump();
  EXPECT_EQ(vlan.body["network"]["mtu"], 1500);
  EXPECT_EQ(vlan.body["network"]["provider:segmentation_id"], 42);
  expectError(
      create(
          R"("provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 42)"),
      409, "VlanIdInUse",
      "Unable to create the network. The VLAN 42 on physical network physnet1 is in use.");
  EXPECT_EQ(
      create(
          R"("provider:network_type": "vlan", "provider:physical_network": "physnet2", "provider:segmentation_id": 42)")
          .status,
      201);
  expectError(
      create(
          R"("provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 4095)"),
      400, "HTTPBadRequest",
      "Invalid input for operation: segmentation_id out of range (1 through 4094).");
  expectError(create(R"("provider:network_type": "flat")"), 400, "HTTPBadRequest",
              "Invalid input for operation: physical_network required for flat provider network.");
  ASSERT_EQ(create(R"("provider:network_type": "flat", "provider:physical_network": "ext")").status,
            201);
  expectError(create(R"("provider:network_type": "flat", "provider:physical_network": "ext")"), 409,
              "FlatNetworkInUse");
  ASSERT_EQ(create(R"("provider:network_type": "vxlan", "provider:segmentation_id": 7000)").status,
            201);
  expectError(create(R"("provider:network_type": "vxlan", "provider:segmentation_id": 7000)"), 409,
              "TunnelIdInUse");
  auto vx = create(R"("provider:network_type": "vxlan", "provider:segmentation_id": 7001)");
  EXPECT_EQ(vx.body["network"]["mtu"], 1450);
  expectError(create(R"("provider:network_type": "geneve", "provider:physical_network": "x")"), 400,
              "HTTPBadRequest");
  expectError(
      create(
          R"("provider:network_type": "vlan", "provider:physical_network": "physnet1", "provider:segmentation_id": 43, "mtu": 9000)"),
      400, "HTTPBadRequest",
      "Invalid input for operation: Requested MTU is too big, maximum is 1500.");
  // Tenants may not choose.
  expectError(call("POST", "/v2.0/networks", R"({"network": {"provider:network_type": "vlan"}})"),
              403, "PolicyNotAuthorized");
}

TEST_F(L3Test, ResourcesAndExtensionsListWhatIsServed) {
  auto r = call("GET", "/v2.0/");
  ASSERT_EQ(r.status, 200);
  std::set<std::string> names;
  for (const auto& res : r.body["resources"]) names.insert(res["name"]);
  EXPECT_EQ(names, (std::set<std::string>{"network",
                                          "subnet",
                                          "port",
                                          "security_group",
                                          "security_group_rule",
                                          "router",
                                          "floatingip",
                                          "network_ip_availability",
                                          "address_scope",
                                          "subnetpool",
                                          "rbac_policy",
                                          "address_group",
                                          "service_provider",
                                          "availability_zone",
                                          "network_segment_range",
                                          "segment",
                                          "flavor",
                                          "service_profile",
                                          "local_ip",
                                          "metering_label",
                                          "metering_label_rule",
                                          "policy",
                                          "trunk",
                                          "log"}));
  for (const char* alias : {"router", "extraroute", "extraroute-atomic", "ext-gw-mode", "quotas",
                            "quota_details", "binding", "allowed-address-pairs"}) {
    EXPECT_EQ(call("GET", std::string("/v2.0/extensions/") + alias).status, 200) << alias;
  }
}

}  // namespace
}  // namespace canopy::api

namespace canopy::api {
namespace {

// Lists serve cached views: each caller still sees only what it may, and a
// change shows at once.
TEST_F(L3Test, ListedViewsFollowTheCallerAndTheVersion) {
  auto [net, subnet] = tenantNetwork("10.5.0.0/24");
  std::string port = createPort(net);
  for (int round = 0; round < 2; ++round) {  // the second round is served from the cache
    auto member = call("GET", "/v2.0/ports?id=" + port).body["ports"][0];
    EXPECT_FALSE(member.contains("binding:host_id"));
    auto admin = call("GET", "/v2.0/ports?id=" + port, "", kAdmin).body["ports"][0];
    EXPECT_TRUE(admin.contains("binding:host_id"));
  }
  ASSERT_EQ(call("PUT", "/v2.0/ports/" + port, R"({"port": {"name": "renamed"}})").status, 200);
  EXPECT_EQ(call("GET", "/v2.0/ports?id=" + port).body["ports"][0]["name"], "renamed");
  auto fields = call("GET", "/v2.0/ports?id=" + port + "&fields=name&fields=id");
  EXPECT_EQ(fields.body["ports"][0].size(), 2u);
}

}  // namespace
}  // namespace canopy::api
