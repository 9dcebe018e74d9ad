// Subnets: CIDR, pools, gateway and routes checked against the network's
// other subnets.

#include "model/subnet.h"

#include "api/detail/addresses.h"
#include "api/detail/rbac.h"
#include "api/detail/subnet_pools.h"
#include "api/kind.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using model::badRequest;

constexpr Extension kSubnetExtensions[] = {
    {"subnet-service-types", "Subnet service types",
     "Provides ability to set the subnet service_types field"},
};

class SubnetKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kSubnetExtensions; }
  const model::ResourceSpec& spec() const override { return model::subnetSpec(); }

  // Its own, or on a network shared with the caller.
  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    if (ResourceKind::visible(doc, caller, tables)) return true;
    const state::Document* n = tables.find("networks", doc.value("network_id", ""));
    return n != nullptr && detail::sharedWith(n->doc, caller.project_id, tables);
  }

  // ?shared=: its network's, as the caller sees it.
  Json hiddenValue(const Json& doc, const std::string& attr, const state::Tables& tables,
                   const Caller& caller) const override {
    if (attr != "shared") return nullptr;
    const state::Document* n = tables.find("networks", doc.value("network_id", ""));
    return n != nullptr && detail::sharedWith(n->doc, caller.project_id, tables);
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    // Neutron: a subnet goes on a network the caller owns or that is
    // shared with it (or any, for an admin).
    if (network == nullptr || !detail::ownedOrShared(network->doc, ctx.caller(), ctx.tables())) {
      return notFound(model::networkSpec(), network_id);
    }
    if (auto r = detail::allocateFromPool(doc, ctx); !r) return r;
    std::vector<IpPrefix> siblings;
    for (const Json* other : ctx.indexed("subnets.network", "subnets", network_id)) {
      if (auto c = IpPrefix::parse(other->value("cidr", ""))) siblings.push_back(*c);
    }
    if (auto r = model::completeNewSubnet(doc, siblings); !r) return r;
    if (auto r = detail::checkNetworkPools(doc, ctx); !r) return r;
    ctx.touch("networks", network_id);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["gateway_ip"] == "auto") doc["gateway_ip"] = model::memberAt(before, "gateway_ip");
    if (doc["allocation_pools"].is_null())
      doc["allocation_pools"] = model::memberAt(before, "allocation_pools");
    if (auto r = model::checkSubnetAddressing(doc); !r) return r;
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }

  // As Neutron: a subnet whose addresses ports chose themselves (IPv6
  // SLAAC or DHCPv6-stateless) goes with those addresses, unless a router
  // has an interface on it; any other allocation keeps it.
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    std::string mode = doc.value("ipv6_address_mode", Json()).is_string()
                           ? doc["ipv6_address_mode"].get<std::string>()
                           : "";
    bool auto_addressed = mode == "slaac" || mode == "dhcpv6-stateless";
    std::vector<Json> ports;
    for (const Json* p : ctx.indexed("ports.subnet", "ports", id)) {
      if (!auto_addressed || p->value("device_owner", "") == model::kOwnerRouterInterface) {
        return Error(Errc::Conflict,
                     "Unable to complete operation on subnet " + id +
                         ": One or more ports have an IP allocation from this subnet.",
                     "SubnetInUse");
      }
      ports.push_back(*p);
    }
    for (Json& port : ports) {
      Json kept = Json::array();
      for (const auto& f : port["fixed_ips"]) {
        if (f.value("subnet_id", "") == id) {
          ctx.release(detail::ipKey(port.value("network_id", ""), f.value("ip_address", "")));
        } else {
          kept.push_back(f);
        }
      }
      port["fixed_ips"] = std::move(kept);
      port["revision_number"] = port.value("revision_number", int64_t{0}) + 1;
      port["updated_at"] = ctx.now();
      std::string port_id = port.value("id", "");
      if (const state::Document* d = ctx.find("ports", port_id)) {
        ctx.guard("ports", port_id, d->mod_revision);
      }
      ctx.put("ports", port_id, port);
    }
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeSubnetKind(const model::NetworkConfig&) {
  return std::make_unique<SubnetKind>();
}

}  // namespace canopy::api
