// What routers and floating IPs share (detail/l3.h), and floating IPs let
// go with their port (kind.h).

#include "api/detail/l3.h"

#include <algorithm>

#include "api/detail/rbac.h"
#include "model/network.h"

namespace canopy::api {
namespace detail {

using model::badRequest;

Error badRouter(const std::string& message) {
  return badRequest("Bad router request: " + message + ".");
}
Error badFloatingIp(const std::string& message) {
  return badRequest("Bad floatingip request: " + message + ".");
}

// The claim that keeps one floating IP per fixed IP and external network.
std::string bindingKey(const std::string& network_id, const std::string& port_id,
                       const std::string& fixed_ip) {
  return std::string(state::kPrefix) + "claims/floatingip/" + network_id + "/" + port_id + "/" +
         fixed_ip;
}

// The ports a router owns with this device owner.
std::vector<const Json*> routerPorts(const Transaction& ctx, const std::string& router_id,
                                     std::string_view owner) {
  std::vector<const Json*> out;
  for (const Json* p : ctx.indexed("ports.device", "ports", router_id)) {
    if (str(*p, "device_owner") == owner) out.push_back(p);
  }
  return out;
}

// Subnet ids of a port's fixed IPs.
std::vector<std::string> portSubnets(const Json& port) {
  std::vector<std::string> out;
  for (const auto& f : port.value("fixed_ips", Json::array())) {
    std::string sid = str(f, "subnet_id");
    if (std::find(out.begin(), out.end(), sid) == out.end()) out.push_back(sid);
  }
  return out;
}

std::optional<IpPrefix> subnetCidr(const Transaction& ctx, const std::string& subnet_id) {
  const Json* s = ctx.current("subnets", subnet_id);
  if (s == nullptr) return std::nullopt;
  auto c = IpPrefix::parse(str(*s, "cidr"));
  if (!c) return std::nullopt;
  return *c;
}

bool mayUse(const Json& doc, const Caller& caller) {
  return caller.is_admin || str(doc, "project_id") == caller.project_id;
}

// A network the caller may see (its own, shared or external), or NotFound.
Result<const Json*> visibleNetwork(const Transaction& ctx, const std::string& id) {
  const Json* network = ctx.current("networks", id);
  if (network == nullptr || !(ownedOrShared(*network, ctx.caller(), ctx.tables()) ||
                              externalTo(*network, ctx.caller().project_id, ctx.tables()))) {
    return notFound(model::networkSpec(), id);
  }
  return network;
}

}  // namespace detail

using detail::bindingKey;
using detail::str;

void disassociateFloatingIps(const std::string& port_id, Transaction& ctx) {
  std::vector<Json> fips;
  for (const Json* f : ctx.indexed("floatingips.port", "floatingips", port_id)) fips.push_back(*f);
  for (Json& fip : fips) {
    std::string id = str(fip, "id");
    ctx.release(bindingKey(str(fip, "floating_network_id"), port_id, str(fip, "fixed_ip_address")));
    fip["port_id"] = nullptr;
    fip["fixed_ip_address"] = nullptr;
    fip["router_id"] = nullptr;
    fip["status"] = "DOWN";
    fip["revision_number"] = fip.value("revision_number", int64_t{0}) + 1;
    fip["updated_at"] = ctx.now();
    if (const state::Document* d = ctx.find("floatingips", id)) {
      ctx.guard("floatingips", id, d->mod_revision);
    }
    ctx.put("floatingips", id, fip);
  }
}

}  // namespace canopy::api
