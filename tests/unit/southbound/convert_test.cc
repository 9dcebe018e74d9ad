// Views on the wire: a snapshot applied gives the view back; a delta turns
// the old view into the new; a message with a bad address is refused and
// leaves the held view as it was.

#include "southbound/convert.h"

#include <gtest/gtest.h>

#include "testing/datapath_scenario.h"

namespace canopy::southbound {
namespace {

HostView fromScenario() {
  auto built = datapath::testing::scenario().build(1);
  EXPECT_TRUE(built);
  const auto& t = **built;
  HostView v;
  v.local_host = 1;
  for (const auto& [k, s] : t.switches()) v.switches[k] = s;
  for (const auto& [k, p] : t.ports()) v.ports[k] = p;
  for (const auto& [k, r] : t.routers()) v.routers[k] = r;
  for (const auto& [k, g] : t.groups()) v.groups[k] = g;
  for (const auto& [k, h] : t.hosts()) v.hosts[k] = h;
  for (const auto& f : t.floatingIps()) v.floating_ips[f.id] = f;
  return v;
}

TEST(Convert, SnapshotRoundTrips) {
  HostView v = fromScenario();
  v.routers.at(datapath::testing::world::kRouter).helpers = {
      {.protocol = 6, .port = 21, .kind = datapath::topology::NatHelperKind::Ftp},
      {.protocol = 17, .port = 69, .kind = datapath::topology::NatHelperKind::Tftp}};
  v.routers.at(datapath::testing::world::kRouter).meters = {
      {.id = "label-out",
       .rules = {{.remote = *IpPrefix::parse("0.0.0.0/0")},
                 {.excluded = true, .remote = *IpPrefix::parse("198.51.100.0/24")}}},
      {.id = "label-in",
       .rules = {{.ingress = true,
                  .source = *IpPrefix::parse("fd00::/8"),
                  .destination = *IpPrefix::parse("10.0.0.0/24")}}}};
  v.ports.at(datapath::testing::world::kVm1).qos = {
      .egress = datapath::topology::BandwidthLimit{10'000, 800},
      .ingress = datapath::topology::BandwidthLimit{2'147'483'647, 0},
      .dscp = 0};
  auto& gw = *v.routers.at(datapath::testing::world::kRouter).gateway;
  gw.central_first = 1024;
  gw.central_last = 3071;
  gw.leases = {{.host = 1, .first = 3072, .last = 5119}, {.host = 3, .first = 5120, .last = 7167}};
  ASSERT_FALSE(v.hosts.at(1).uplinks.empty());
  ASSERT_GT(v.objects(), 10u);
  pb::View wire = toSnapshot(v, 7);
  // Through bytes, as the stream carries it.
  pb::View parsed;
  ASSERT_TRUE(parsed.ParseFromString(wire.SerializeAsString()));
  HostView back;
  ASSERT_TRUE(apply(back, parsed));
  EXPECT_EQ(back, v);
  EXPECT_TRUE(back.builder().build(7));
}

TEST(Convert, DeltaTurnsTheOldViewIntoTheNew) {
  HostView before = fromScenario();
  HostView after = before;
  after.ports.erase(datapath::testing::world::kVm6);
  after.ports.at(datapath::testing::world::kVm1).admin_up = false;
  after.floating_ips.clear();
  after.groups.at(datapath::testing::world::kWeb).rules.pop_back();
  pb::View d = toDelta(before, after, 8, 7);
  EXPECT_EQ(d.ports_size(), 1);
  EXPECT_EQ(d.removed_ports_size(), 1);
  EXPECT_EQ(d.removed_floating_ips_size(), 1);
  EXPECT_EQ(d.groups_size(), 1);
  HostView held = before;
  ASSERT_TRUE(apply(held, d));
  EXPECT_EQ(held, after);
  EXPECT_TRUE(isEmptyDelta(toDelta(after, after, 9, 8)));
}

TEST(Convert, ABadMessageIsRefusedAndChangesNothing) {
  HostView held = fromScenario();
  HostView before = held;
  pb::View d;
  d.set_version(9);
  d.set_base_version(8);
  auto* p = d.add_ports();
  p->set_key(99);
  p->set_mac("abc");  // not 6 bytes
  auto r = apply(held, d);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("MAC of 3 bytes"), std::string::npos);
  EXPECT_EQ(held, before);
  pb::View zero;
  zero.set_version(1);
  zero.add_hosts()->set_tunnel_ip(std::string(4, '\1'));  // key 0
  EXPECT_FALSE(apply(held, zero));
  // A QoS policy past Neutron's ranges (DSCP 64, a rate over 2^31 - 1).
  for (int bad = 0; bad < 2; ++bad) {
    pb::View q = toSnapshot(fromScenario(), 10);
    auto* qos = q.mutable_ports(0)->mutable_qos();
    if (bad == 0) qos->set_dscp(64);
    if (bad == 1) qos->set_egress_kbps(uint64_t{1} << 31);
    auto refused = apply(held, q);
    ASSERT_FALSE(refused);
    EXPECT_NE(refused.error().message().find("QoS"), std::string::npos);
    EXPECT_EQ(held, before);
  }
  // An SNAT lease or central range out of 1-65535 or upside down.
  for (int bad = 0; bad < 3; ++bad) {
    pb::View q = toSnapshot(fromScenario(), 11);
    auto* gw = q.mutable_routers(0)->mutable_gateway();
    if (bad == 0) gw->mutable_central_ports()->set_last(70000);
    if (bad == 1) gw->mutable_central_ports()->set_first(0);
    if (bad == 2) {
      auto* l = gw->add_snat_leases();
      l->set_host(1);
      l->set_first(5000);
      l->set_last(4000);
    }
    auto refused = apply(held, q);
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message().find("SNAT"), std::string::npos);
    EXPECT_EQ(held, before);
  }
}

}  // namespace
}  // namespace canopy::southbound
