// `canopy topology` from fixed lists: the tree and the Graphviz text against
// tests/golden/cli/topology*.txt|dot, and the same output whatever order
// the server lists things in.

#include "cli/topology.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "fakes.h"

namespace canopy::cli {
namespace {

using testing::expectGolden;

Json ip(const char* subnet, const char* address) {
  return {{"subnet_id", subnet}, {"ip_address", address}};
}

Json port(const char* id, const char* name, const char* network, const char* owner,
          const char* device, Json ips, const char* host = "", const char* status = "ACTIVE") {
  return {{"id", id},
          {"name", name},
          {"network_id", network},
          {"device_owner", owner},
          {"device_id", device},
          {"fixed_ips", std::move(ips)},
          {"binding:host_id", host},
          {"status", status}};
}

// Two projects: the admin's external network "public"; the demo project's
// router "edge" (gateway on public, interfaces on "app" and "db"), a
// network no router joins, VMs on two hosts, a floating IP, a port with no
// address, and a second router with nothing attached.
TopologyInput world() {
  TopologyInput in;
  in.project_names = {{"p-admin", "admin"}, {"p-demo", "demo"}};
  in.networks = {
      {{"id", "n-public"},
       {"name", "public"},
       {"project_id", "p-admin"},
       {"router:external", true},
       {"provider:network_type", "flat"},
       {"provider:physical_network", "physnet1"},
       {"provider:segmentation_id", nullptr},
       {"status", "ACTIVE"}},
      {{"id", "n-app"},
       {"name", "app"},
       {"project_id", "p-demo"},
       {"status", "ACTIVE"},
       {"provider:network_type", "geneve"},
       {"provider:segmentation_id", 17}},
      {{"id", "n-db"}, {"name", "db"}, {"project_id", "p-demo"}, {"status", "ACTIVE"}},
      {{"id", "n-lab"},
       {"name", "lab"},
       {"project_id", "p-demo"},
       {"shared", true},
       {"status", "DOWN"}},
  };
  in.subnets = {
      {{"id", "s-public"},
       {"name", "public-sub"},
       {"network_id", "n-public"},
       {"cidr", "203.0.113.0/24"},
       {"gateway_ip", "203.0.113.1"},
       {"enable_dhcp", false}},
      {{"id", "s-app"},
       {"name", "app-sub"},
       {"network_id", "n-app"},
       {"cidr", "10.0.0.0/24"},
       {"gateway_ip", "10.0.0.1"},
       {"enable_dhcp", true}},
      {{"id", "s-app6"},
       {"name", "app-v6"},
       {"network_id", "n-app"},
       {"cidr", "fd00:1::/64"},
       {"gateway_ip", "fd00:1::1"},
       {"enable_dhcp", true}},
      {{"id", "s-db"},
       {"name", "db-sub"},
       {"network_id", "n-db"},
       {"cidr", "10.0.1.0/24"},
       {"gateway_ip", "10.0.1.1"}},
      {{"id", "s-lab"},
       {"name", ""},
       {"network_id", "n-lab"},
       {"cidr", "192.168.7.0/24"},
       {"gateway_ip", nullptr}},
  };
  in.ports = {
      port("p-gw", "", "n-public", "network:router_gateway", "r-edge",
           {ip("s-public", "203.0.113.10")}, "", "DOWN"),
      port("p-fip", "", "n-public", "network:floatingip", "f-1", {ip("s-public", "203.0.113.20")},
           "", "N/A"),
      port("p-if-app", "", "n-app", "network:router_interface", "r-edge",
           {ip("s-app", "10.0.0.1"), ip("s-app6", "fd00:1::1")}),
      port("p-if-db", "", "n-db", "network:router_interface", "r-edge", {ip("s-db", "10.0.1.1")}),
      port("p-web1", "web1", "n-app", "compute:nova", "vm-web1",
           {ip("s-app", "10.0.0.5"), ip("s-app6", "fd00:1::5")}, "compute-1"),
      port("p-web2", "web2", "n-app", "compute:nova", "vm-web2", {ip("s-app", "10.0.0.6")},
           "compute-2"),
      port("p-sql", "sql", "n-db", "compute:nova", "vm-sql", {ip("s-db", "10.0.1.5")}, "compute-2",
           "DOWN"),
      port("p-bare", "spare", "n-lab", "", "", Json::array(), "", "DOWN"),
      port("p-lab", "", "n-lab", "compute:nova", "vm-lab", {ip("s-lab", "192.168.7.9")}, "",
           "DOWN"),
  };
  in.routers = {
      {{"id", "r-edge"},
       {"name", "edge"},
       {"project_id", "p-demo"},
       {"status", "ACTIVE"},
       {"admin_state_up", true},
       {"external_gateway_info",
        {{"network_id", "n-public"},
         {"enable_snat", false},
         {"external_fixed_ips", {ip("s-public", "203.0.113.10")}}}}},
      {{"id", "r-idle"},
       {"name", ""},
       {"project_id", "p-demo"},
       {"status", "ACTIVE"},
       {"admin_state_up", false},
       {"external_gateway_info", nullptr}},
  };
  in.floating_ips = {
      {{"id", "f-1"}, {"floating_ip_address", "203.0.113.20"}, {"port_id", "p-web1"}},
      {{"id", "f-2"}, {"floating_ip_address", "203.0.113.21"}, {"port_id", nullptr}}};
  return in;
}

TEST(Topology, TreeGolden) {
  std::string tree = renderTopologyTree(world(), "");
  // The nesting the golden file holds, checked directly too.
  EXPECT_NE(tree.find("project demo (p-demo)\n"
                      "├── router r-idle  ACTIVE  admin down\n"
                      "├── router edge  ACTIVE  gateway public 203.0.113.10, no SNAT\n"
                      "│   ├── network app  geneve 17\n"
                      "│   │   ├── subnet app-sub  10.0.0.0/24  gateway 10.0.0.1\n"),
            std::string::npos)
      << tree;
  expectGolden("topology.txt", tree);
}

TEST(Topology, DotGolden) {
  std::string dot = renderTopologyDot(world(), "");
  EXPECT_TRUE(dot.starts_with("digraph canopy {\n"));
  EXPECT_NE(dot.find("\"router:r-edge\" -> \"network:n-public\" [style=dashed"), std::string::npos);
  expectGolden("topology.dot", dot);
}

TEST(Topology, OneProjectByNameOrId) {
  std::string demo = renderTopologyTree(world(), "demo");
  EXPECT_EQ(demo, renderTopologyTree(world(), "p-demo"));
  EXPECT_EQ(demo.find("project admin"), std::string::npos);
  expectGolden("topology_demo.txt", demo);
  // The gateway's network is drawn outside the project's cluster.
  expectGolden("topology_demo.dot", renderTopologyDot(world(), "demo"));
  EXPECT_EQ(renderTopologyTree(world(), "nobody"), "no routers or networks to show\n");
}

TEST(Topology, OrderDoesNotDependOnTheServers) {
  TopologyInput in = world();
  std::string tree = renderTopologyTree(in, ""), dot = renderTopologyDot(in, "");
  std::mt19937 rng(7);
  for (int i = 0; i < 5; ++i) {
    for (auto* list : {&in.networks, &in.subnets, &in.ports, &in.routers, &in.floating_ips}) {
      std::shuffle(list->begin(), list->end(), rng);
    }
    EXPECT_EQ(renderTopologyTree(in, ""), tree);
    EXPECT_EQ(renderTopologyDot(in, ""), dot);
  }
}

TEST(Topology, DotEscapesQuotes) {
  TopologyInput in;
  in.networks = {{{"id", "n"}, {"name", "say \"hi\"\\"}, {"project_id", "p"}}};
  EXPECT_NE(renderTopologyDot(in, "").find("label=\"network say \\\"hi\\\"\\\\\""),
            std::string::npos)
      << renderTopologyDot(in, "");
}

}  // namespace
}  // namespace canopy::cli
