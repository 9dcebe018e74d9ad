// Ports' addresses and claims (detail/addresses.h), and the ports the
// server makes for other resources (kind.h).

#include "api/detail/addresses.h"

#include <algorithm>
#include <set>

#include "api/detail/rbac.h"
#include "model/ipam.h"
#include "model/network.h"
#include "model/port.h"
#include "model/security_group.h"
#include "model/subnet.h"

namespace canopy::api {
namespace detail {

using model::badRequest;

std::string ipKey(const std::string& network_id, const std::string& ip) {
  return std::string(state::kPrefix) + "claims/ip/" + network_id + "/" + ip;
}
std::string macKey(const std::string& network_id, const std::string& mac) {
  return std::string(state::kPrefix) + "claims/mac/" + network_id + "/" + mac;
}

Result<void> checkSecurityGroups(const Json& doc, const Transaction& ctx) {
  const Json& groups = doc["security_groups"];
  if (!groups.empty() && doc["port_security_enabled"] == false) {
    return Error(Errc::Conflict,
                 "Port security must be enabled and port must have an IP address in order to "
                 "use security groups.",
                 "PortSecurityAndIPRequiredForSecurityGroups");
  }
  bool stateful = false, stateless = false;
  for (const auto& g : groups) {
    std::string gid = g.get<std::string>();
    auto pending =
        ctx.indexed("security-groups.default", "security-groups", doc.value("project_id", ""));
    bool just_made = !pending.empty() && pending.front()->value("id", "") == gid;
    const state::Document* group = ctx.find("security-groups", gid);
    // The port's project may use its own groups and those shared with it.
    bool visible =
        group != nullptr &&
        (ctx.caller().is_admin || group->doc.value("project_id", "") == ctx.caller().project_id ||
         detail::sharedWith(group->doc, doc.value("project_id", ""), ctx.tables()));
    if (!just_made && !visible) return notFound(model::securityGroupSpec(), gid);
    (group == nullptr || group->doc.value("stateful", true) ? stateful : stateless) = true;
  }
  if (stateful && stateless) {
    return Error(Errc::Conflict,
                 "Error Cannot apply both stateful and stateless security groups on the same "
                 "port at the same time while attempting the operation on port " +
                     doc.value("id", "") + " while attempting the operation.",
                 "SecurityGroupConflict");
  }
  return ok();
}

// Turns the requested fixed_ips (or none: automatic) into allocations,
// claiming each new address in the store and releasing those given up.
Result<Json> allocate(const Json& doc, const Json& held, Transaction& ctx, bool ipv4_only) {
  std::string network_id = doc.value("network_id", "");
  std::string port_id = doc.value("id", "");
  std::string owner = doc.value("device_owner", "");
  bool router_port = owner.starts_with("network:router");
  std::vector<const Json*> subnets = ctx.indexed("subnets.network", "subnets", network_id);
  // subnet-service-types: automatic addresses come from subnets that list
  // no service types or this port's device owner (or, for DHCP ports, any
  // with DHCP on).
  std::vector<const Json*> serving = subnets;
  std::erase_if(serving, [&](const Json* s) {
    const Json& types = model::memberAt(*s, "service_types");
    return !(!types.is_array() || types.empty() ||
             std::find(types.begin(), types.end(), Json(owner)) != types.end() ||
             (owner == "network:dhcp" && s->value("enable_dhcp", false)));
  });
  // In use: by another port (index), or already taken for this port here.
  std::set<IpAddress> taken;
  auto used = [&](const IpAddress& ip) {
    if (taken.count(ip)) return true;
    for (const Json* p : ctx.indexed("ports.address", "ports", network_id + " " + ip.toString())) {
      if (p->value("id", "") != port_id) return true;
    }
    return false;
  };
  std::set<std::string> held_ips;
  for (const auto& f : held) held_ips.insert(f.value("ip_address", ""));

  auto subnetById = [&](const std::string& sid) -> const Json* {
    for (const Json* s : subnets) {
      if (s->value("id", "") == sid) return s;
    }
    return nullptr;
  };
  auto noMore = [&] {
    return Error(Errc::Conflict, "No more IP addresses available on network " + network_id + ".",
                 "IpAddressGenerationFailure");
  };

  Json out = Json::array();
  auto take = [&](const Json& subnet, const IpAddress& ip) -> Result<void> {
    std::string text = ip.toString();
    std::string sid = subnet.value("id", "");
    bool is_gateway = subnet["gateway_ip"].is_string() && subnet["gateway_ip"] == text;
    if (used(ip) || (is_gateway && !router_port)) {
      return Error(Errc::Conflict, "IP address " + text + " already allocated in subnet " + sid,
                   "IpAddressAlreadyAllocated");
    }
    taken.insert(ip);
    out.push_back({{"subnet_id", sid}, {"ip_address", text}});
    if (!held_ips.count(text)) ctx.claim(ipKey(network_id, text), port_id);
    return ok();
  };
  auto takeAny = [&](const Json& subnet) -> Result<void> {
    auto cidr = IpPrefix::parse(subnet.value("cidr", ""));
    if (!cidr) return Error(Errc::Internal, "stored subnet has a bad cidr");
    if (model::isSlaac(subnet)) {
      return take(subnet, model::eui64(*cidr, doc.value("mac_address", "")));
    }
    std::optional<IpAddress> gateway;
    if (subnet["gateway_ip"].is_string()) {
      gateway = IpAddress::parse(subnet["gateway_ip"].get<std::string>()).value_or(IpAddress());
    }
    auto ip = model::pickFreeAddress(
        subnet, [&](const IpAddress& a) { return (gateway && a == *gateway) || used(a); },
        randomEngine());
    if (!ip) return noMore();
    return take(subnet, *ip);
  };

  if (doc["fixed_ips"].is_null()) {
    // Neutron's default: one address from an IPv4 subnet with room, and
    // one from each IPv6 subnet (SLAAC or the first stateful one).
    if (serving.empty() && !subnets.empty()) {
      return Error(Errc::InvalidArgument,
                   "No valid service subnet for the given device owner, network " + network_id +
                       ", device owner " + owner + ".",
                   "IpAddressGenerationFailureNoMatchingSubnet");
    }
    bool v4_done = false, v4_any = false, v6_stateful_done = false;
    for (const Json* s : serving) {
      int version = s->value("ip_version", 4);
      if (version == 4) {
        v4_any = true;
        if (v4_done) continue;
        if (takeAny(*s)) v4_done = true;
      } else if (ipv4_only) {
        continue;
      } else if (model::isSlaac(*s)) {
        if (auto r = takeAny(*s); !r) return r.error();
      } else if (!v6_stateful_done) {
        if (takeAny(*s)) v6_stateful_done = true;
      }
    }
    if (v4_any && !v4_done) return noMore();
    return out;
  }

  for (const auto& f : doc["fixed_ips"]) {
    std::string sid = f.value("subnet_id", "");
    std::string ip_text = f.value("ip_address", "");
    const Json* subnet = nullptr;
    std::optional<IpAddress> ip;
    if (!ip_text.empty()) ip = *IpAddress::parse(ip_text);
    if (!sid.empty()) {
      subnet = subnetById(sid);
      if (subnet == nullptr) {
        return model::badRequest("Invalid input for operation: Failed to create port on network " +
                                 network_id + ", because fixed_ips included invalid subnet " + sid +
                                 ".");
      }
    } else {
      for (const Json* s : subnets) {
        if (auto c = IpPrefix::parse(s->value("cidr", "")); c && c->contains(*ip)) subnet = s;
      }
      if (subnet == nullptr) {
        return Error(Errc::InvalidArgument,
                     "IP address " + ip_text +
                         " is not a valid IP for any of the subnets on the specified network.",
                     "InvalidIpForNetwork");
      }
    }
    if (ip) {
      auto cidr = IpPrefix::parse(subnet->value("cidr", ""));
      if (!cidr || !cidr->contains(*ip)) {
        return Error(Errc::InvalidArgument,
                     "IP address " + ip_text + " is not a valid IP for the specified subnet.",
                     "InvalidIpForSubnet");
      }
      if (auto r = take(*subnet, *ip); !r) return r.error();
    } else if (auto r = takeAny(*subnet); !r) {
      return r.error();
    }
  }
  // Addresses given up go back to the pool.
  std::set<std::string> kept;
  for (const auto& f : out) kept.insert(f.value("ip_address", ""));
  for (const auto& ip : held_ips) {
    if (!kept.count(ip)) ctx.release(ipKey(network_id, ip));
  }
  return out;
}

void releasePortClaims(const Json& port, Transaction& ctx) {
  std::string network_id = port.value("network_id", "");
  for (const auto& f : port.value("fixed_ips", Json::array())) {
    ctx.release(ipKey(network_id, f.value("ip_address", "")));
  }
  ctx.release(macKey(network_id, port.value("mac_address", "")));
}

// Completes a new port on `network`: MAC, port security, security groups,
// addresses, with their claims.
Result<void> completeNewPort(Json& doc, const Json& network, Transaction& ctx,
                             const model::NetworkConfig& config, bool ipv4_only) {
  std::string network_id = doc.value("network_id", "");
  std::string id = doc["id"];
  // MAC: given and free, or generated.
  auto macUsed = [&](const std::string& mac) {
    return !ctx.indexed("ports.mac", "ports", network_id + " " + mac).empty();
  };
  if (doc["mac_address"].is_string()) {
    std::string mac = *model::parseMac(doc["mac_address"].get<std::string>());
    if (macUsed(mac)) {
      return Error(Errc::Conflict,
                   "Unable to complete operation for network " + network_id + ". The mac address " +
                       mac + " is in use.",
                   "MacAddressInUse");
    }
    doc["mac_address"] = mac;
  } else {
    std::string mac;
    do {
      mac = model::generateMac(config.mac_base, randomEngine());
    } while (macUsed(mac));
    doc["mac_address"] = mac;
  }
  ctx.claim(macKey(network_id, doc["mac_address"]), id);

  if (doc["port_security_enabled"].is_null()) {
    doc["port_security_enabled"] = network.value("port_security_enabled", true);
  }
  if (doc["security_groups"].is_null()) {
    doc["security_groups"] = Json::array();
    if (doc["port_security_enabled"] == true) {
      auto group = ensureDefaultGroup(ctx, doc.value("project_id", ""));
      if (!group) return std::move(group).error();
      doc["security_groups"].push_back(*group);
    }
  }
  if (auto r = checkSecurityGroups(doc, ctx); !r) return r;
  auto ips = allocate(doc, Json::array(), ctx, ipv4_only);
  if (!ips) return std::move(ips).error();
  doc["fixed_ips"] = std::move(*ips);
  doc["status"] = "DOWN";
  doc["binding:vif_type"] = "unbound";
  doc["binding:vif_details"] = Json::object();
  return ok();
}

}  // namespace detail

using detail::allocate;
using detail::completeNewPort;
using detail::releasePortClaims;

Result<Json> createServicePort(const ServicePort& port, Transaction& ctx,
                               const model::NetworkConfig& config) {
  const Json* network = ctx.current("networks", port.network_id);
  if (network == nullptr) return notFound(model::networkSpec(), port.network_id);
  Json request = {{"network_id", port.network_id},
                  {"device_owner", port.device_owner},
                  {"device_id", port.device_id},
                  {"fixed_ips", port.fixed_ips},
                  {"security_groups", Json::array()}};
  auto doc = model::validateAttributes(model::portSpec(), request, model::Action::Create,
                                       Caller{.project_id = {}, .is_admin = true});
  if (!doc) return std::move(doc).error();
  doc->update(stamped(ctx, port.project_id));
  if (auto r = completeNewPort(*doc, *network, ctx, config, port.ipv4_only); !r) {
    return std::move(r).error();
  }
  std::string id = (*doc)["id"];
  ctx.guardAbsent("ports", id);
  ctx.put("ports", id, *doc);
  return std::move(*doc);
}

void removePort(const Json& port, Transaction& ctx) {
  std::string id = port.value("id", "");
  if (const state::Document* d = ctx.find("ports", id)) ctx.guard("ports", id, d->mod_revision);
  ctx.remove("ports", id);
  releasePortClaims(port, ctx);
}

Result<Json> reallocatePort(const Json& port, const Json& held, Transaction& ctx) {
  return allocate(port, held, ctx);
}

}  // namespace canopy::api
