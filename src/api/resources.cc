#include "api/resources.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>

#include "model/ipam.h"
#include "model/port.h"
#include "model/router.h"
#include "model/security_group.h"
#include "model/subnet.h"

namespace canopy::api {
namespace {

using model::badRequest;

std::mt19937_64& rng() {
  thread_local std::mt19937_64 r(std::random_device{}());
  return r;
}

class NetworkKind final : public ResourceKind {
 public:
  explicit NetworkKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::networkSpec(); }

  bool visible(const Json& doc, const Caller& caller) const override {
    return ResourceKind::visible(doc, caller) || doc.value("shared", false) ||
           doc.value("router:external", false);
  }

  void present(Json& view, const Json& doc, const state::Tables& tables) const override {
    Json subnets = Json::array();
    for (const auto& id : tables.lookup("subnets.network", doc.value("id", ""))) {
      subnets.push_back(id);
    }
    view["subnets"] = std::move(subnets);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    doc["status"] = "ACTIVE";
    if (auto r = assignSegment(doc, ctx); !r) return r;
    return checkMtu(doc);
  }

  Result<void> update(Json& doc, const Json&, Transaction&) const override { return checkMtu(doc); }

  // Subnets go with their network (Neutron deletes them when no port uses them).
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.indexed("ports.network", "ports", id).empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on network " + id +
                       ". There are one or more ports still in use on the network.",
                   "NetworkInUse");
    }
    for (const auto& sid : ctx.tables().lookup("subnets.network", id)) {
      const state::Document* d = ctx.find("subnets", sid);
      if (d == nullptr) continue;
      ctx.guard("subnets", sid, d->mod_revision);
      ctx.remove("subnets", sid);
    }
    ctx.release(segmentClaim(doc));
    return ok();
  }

 private:
  Result<void> checkMtu(Json& doc) const {
    int max = model::defaultMtu(config_, model::stringAt(doc, "provider:network_type"));
    if (doc["mtu"].is_null()) doc["mtu"] = max;
    if (doc["mtu"].get<int64_t>() > max) {
      return model::badRequest(
          "Invalid input for operation: Requested MTU is too big, maximum is " +
          std::to_string(max) + ".");
    }
    return ok();
  }

  static std::string segmentClaim(const Json& doc) {
    return std::string(state::kPrefix) + "claims/segment/" +
           model::stringAt(doc, "provider:network_type") + "/" +
           model::stringAt(doc, "provider:physical_network") + "/" +
           std::to_string(doc["provider:segmentation_id"].is_number_integer()
                              ? doc["provider:segmentation_id"].get<int64_t>()
                              : 0);
  }

  // The network's segment: provider attributes an admin gave, checked and
  // free, or a tunnel id allocated from the configured range.
  Result<void> assignSegment(Json& doc, Transaction& ctx) const {
    auto invalid = [](const std::string& what) {
      return model::badRequest("Invalid input for operation: " + what + ".");
    };
    std::string type = doc["provider:network_type"].is_string()
                           ? doc["provider:network_type"].get<std::string>()
                           : config_.overlay;
    std::string physnet = doc["provider:physical_network"].is_string()
                              ? doc["provider:physical_network"].get<std::string>()
                              : std::string();
    const Json& given = doc["provider:segmentation_id"];
    bool tunnel = type == "geneve" || type == "vxlan";
    auto used = [&](int64_t id) {
      return !ctx.indexed("networks.segment", "networks", state::segmentKey(type, physnet, id))
                  .empty();
    };
    std::string kind_name = type == "vlan" ? "VLAN" : type == "vxlan" ? "VXLAN" : "Geneve";
    int64_t id = 0;
    if (type == "flat") {
      if (physnet.empty()) return invalid("physical_network required for flat provider network");
      if (!given.is_null()) return invalid("segmentation_id specified for flat provider network");
      if (used(0)) {
        return Error(
            Errc::Conflict,
            "Unable to create the flat network. Physical network " + physnet + " is in use.",
            "FlatNetworkInUse");
      }
    } else if (!tunnel && physnet.empty()) {
      return invalid("physical_network required for VLAN provider network");
    } else if (tunnel && !physnet.empty()) {
      return invalid("provider:physical_network specified for " + kind_name + " network");
    }
    if (type != "flat" && !given.is_null()) {
      id = given.get<int64_t>();
      int64_t max = model::maxSegmentationId(type);
      if (id < 1 || id > max) {
        return invalid("segmentation_id out of range (1 through " + std::to_string(max) + ")");
      }
      if (used(id)) {
        if (tunnel) {
          return Error(
              Errc::Conflict,
              "Unable to create the network. The tunnel ID " + std::to_string(id) + " is in use.",
              "TunnelIdInUse");
        }
        return Error(Errc::Conflict,
                     "Unable to create the network. The VLAN " + std::to_string(id) +
                         " on physical network " + physnet + " is in use.",
                     "VlanIdInUse");
      }
    } else if (type != "flat") {
      // Tunnel ids come from the configured range; there is no VLAN range.
      int64_t lo = config_.vni_min, hi = config_.vni_max;
      std::optional<int64_t> found;
      if (tunnel && lo <= hi) {
        auto span = static_cast<uint64_t>(hi - lo + 1);
        uint64_t start = rng()() % span;
        for (uint64_t i = 0; i < span && !found; ++i) {
          auto candidate = lo + static_cast<int64_t>((start + i) % span);
          if (!used(candidate)) found = candidate;
        }
      }
      if (!found) {
        return Error(Errc::Unavailable,
                     "Unable to create the network. No tenant network is available for "
                     "allocation.",
                     "NoNetworkAvailable");
      }
      id = *found;
    }
    doc["provider:network_type"] = type;
    doc["provider:physical_network"] = physnet.empty() ? Json(nullptr) : Json(physnet);
    doc["provider:segmentation_id"] = type == "flat" ? Json(nullptr) : Json(id);
    ctx.claim(segmentClaim(doc), doc.value("id", ""));
    return ok();
  }

  model::NetworkConfig config_;
};

class SubnetKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::subnetSpec(); }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    // Neutron: a subnet goes on a network the caller owns (or any, for an admin).
    if (network == nullptr || !(ctx.caller().is_admin ||
                                network->doc.value("project_id", "") == ctx.caller().project_id)) {
      return notFound(model::networkSpec(), network_id);
    }
    std::vector<model::Cidr> siblings;
    for (const Json* other : ctx.indexed("subnets.network", "subnets", network_id)) {
      if (auto c = model::Cidr::parse(other->value("cidr", ""))) siblings.push_back(*c);
    }
    if (auto r = model::completeNewSubnet(doc, siblings); !r) return r;
    ctx.touch("networks", network_id);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["gateway_ip"] == "auto") doc["gateway_ip"] = before["gateway_ip"];
    if (doc["allocation_pools"].is_null()) doc["allocation_pools"] = before["allocation_pools"];
    if (auto r = model::checkSubnetAddressing(doc); !r) return r;
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.indexed("ports.subnet", "ports", id).empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on subnet " + id +
                       ": One or more ports have an IP allocation from this subnet.",
                   "SubnetInUse");
    }
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }
};

}  // namespace

Json stamped(const Transaction& ctx, const std::string& project) {
  return {{"id", newUuid()},         {"project_id", project},   {"tenant_id", project},
          {"created_at", ctx.now()}, {"updated_at", ctx.now()}, {"revision_number", 1},
          {"tags", Json::array()}};
}

namespace {

// The rules a new group starts with (ids, project and stamps added).
void addRules(Transaction& ctx, const std::string& project, const std::vector<Json>& rules) {
  for (const Json& r : rules) {
    Json doc = stamped(ctx, project);
    doc.update(r);
    std::string id = doc["id"];
    ctx.guardAbsent("security-group-rules", id);
    ctx.put("security-group-rules", id, doc);
  }
}

std::string defaultGroupKey(const std::string& project) {
  return std::string(state::kPrefix) + "claims/default-security-group/" + project;
}

// The project's default security group, created (with Neutron's default
// rules) on first use.
Result<std::string> ensureDefaultGroup(Transaction& ctx, const std::string& project) {
  auto existing = ctx.indexed("security-groups.default", "security-groups", project);
  if (!existing.empty()) return existing.front()->value("id", "");
  Json group = stamped(ctx, project);
  group["name"] = "default";
  group["description"] = "Default security group";
  group["tags"] = Json::array();
  group["canopy:default"] = true;
  std::string id = group["id"];
  ctx.claim(defaultGroupKey(project), id);
  ctx.guardAbsent("security-groups", id);
  ctx.put("security-groups", id, group);
  addRules(ctx, project, model::defaultGroupRules(id));
  return id;
}

class SecurityGroupKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::securityGroupSpec(); }

  void present(Json& view, const Json& doc, const state::Tables& tables) const override {
    Json rules = Json::array();
    for (const auto& id : tables.lookup("security-group-rules.group", doc.value("id", ""))) {
      if (const state::Document* d = tables.find("security-group-rules", id)) {
        rules.push_back(model::visibleView(model::securityGroupRuleSpec(), d->doc,
                                           Caller{.project_id = {}, .is_admin = true}));
      }
    }
    view["security_group_rules"] = std::move(rules);
  }
  bool derivesViews() const override { return true; }

  bool missingDefaults(const state::Tables& tables, const Caller& caller) const override {
    return tables.lookup("security-groups.default", caller.project_id).empty();
  }

  Result<void> createDefaults(Transaction& ctx) const override {
    auto r = ensureDefaultGroup(ctx, ctx.caller().project_id);
    if (!r) return std::move(r).error();
    return ok();
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string project = doc.value("project_id", "");
    if (doc.value("name", "") == "default" &&
        !ctx.indexed("security-groups.default", "security-groups", project).empty()) {
      return Error(Errc::Conflict, "Default security group already exists.",
                   "SecurityGroupDefaultAlreadyExists");
    }
    if (auto r = ensureDefaultGroup(ctx, project); !r) return std::move(r).error();
    // Every new group may send anything; nothing may come in until a rule says so.
    auto rules = model::defaultGroupRules(doc["id"]);
    rules.resize(2);  // the two egress rules
    addRules(ctx, project, rules);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction&) const override {
    if (before.value("canopy:default", false) && doc["name"] != before["name"]) {
      return Error(Errc::Conflict, "Updating default security group not allowed.",
                   "SecurityGroupCannotUpdateDefault");
    }
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.indexed("ports.security_group", "ports", id).empty()) {
      return Error(Errc::Conflict, "Security Group " + id + " in use.", "SecurityGroupInUse");
    }
    if (doc.value("canopy:default", false)) {
      if (!ctx.caller().is_admin) {
        return Error(Errc::Conflict, "Insufficient rights for removing default security group.",
                     "SecurityGroupCannotRemoveDefault");
      }
      ctx.release(defaultGroupKey(doc.value("project_id", "")));
    }
    // Its rules go with it, and so do other groups' rules that name it as remote.
    for (const char* index : {"security-group-rules.group", "security-group-rules.remote_group"}) {
      for (const auto& rid : ctx.tables().lookup(index, id)) {
        const state::Document* d = ctx.find("security-group-rules", rid);
        if (d == nullptr) continue;
        ctx.guard("security-group-rules", rid, d->mod_revision);
        ctx.remove("security-group-rules", rid);
        if (d->doc.value("security_group_id", "") != id) {
          ctx.touch("security-groups", d->doc.value("security_group_id", ""));
        }
      }
    }
    return ok();
  }
};

class SecurityGroupRuleKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::securityGroupRuleSpec(); }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (auto r = model::checkRule(doc); !r) return r;
    auto groupVisible = [&](const std::string& gid) {
      const state::Document* g = ctx.find("security-groups", gid);
      return g != nullptr &&
             (ctx.caller().is_admin || g->doc.value("project_id", "") == ctx.caller().project_id);
    };
    std::string group_id = doc.value("security_group_id", "");
    if (!groupVisible(group_id)) return notFound(model::securityGroupSpec(), group_id);
    if (doc["remote_group_id"].is_string() && !groupVisible(doc["remote_group_id"])) {
      return notFound(model::securityGroupSpec(), doc["remote_group_id"].get<std::string>());
    }
    std::string identity = model::ruleIdentity(doc);
    for (const Json* other :
         ctx.indexed("security-group-rules.group", "security-group-rules", group_id)) {
      if (model::ruleIdentity(*other) == identity) {
        return Error(
            Errc::Conflict,
            "Security group rule already exists. Rule id is " + other->value("id", "") + ".",
            "SecurityGroupRuleExists");
      }
    }
    ctx.touch("security-groups", group_id);
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    ctx.touch("security-groups", doc.value("security_group_id", ""));
    return ok();
  }
};

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
  for (const auto& g : groups) {
    std::string gid = g.get<std::string>();
    auto pending =
        ctx.indexed("security-groups.default", "security-groups", doc.value("project_id", ""));
    bool just_made = !pending.empty() && pending.front()->value("id", "") == gid;
    const state::Document* group = ctx.find("security-groups", gid);
    bool visible =
        group != nullptr &&
        (ctx.caller().is_admin || group->doc.value("project_id", "") == ctx.caller().project_id);
    if (!just_made && !visible) return notFound(model::securityGroupSpec(), gid);
  }
  return ok();
}

// Turns the requested fixed_ips (or none: automatic) into allocations,
// claiming each new address in the store and releasing those given up.
Result<Json> allocate(const Json& doc, const Json& held, Transaction& ctx, bool ipv4_only = false) {
  std::string network_id = doc.value("network_id", "");
  std::string port_id = doc.value("id", "");
  bool router_port = doc.value("device_owner", "").starts_with("network:router");
  std::vector<const Json*> subnets = ctx.indexed("subnets.network", "subnets", network_id);
  // In use: by another port (index), or already taken for this port here.
  std::set<model::IpAddress> taken;
  auto used = [&](const model::IpAddress& ip) {
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
  auto take = [&](const Json& subnet, const model::IpAddress& ip) -> Result<void> {
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
    auto cidr = model::Cidr::parse(subnet.value("cidr", ""));
    if (!cidr) return Error(Errc::Internal, "stored subnet has a bad cidr");
    if (model::isSlaac(subnet)) {
      return take(subnet, model::eui64(*cidr, doc.value("mac_address", "")));
    }
    std::optional<model::IpAddress> gateway;
    if (subnet["gateway_ip"].is_string()) {
      gateway = model::IpAddress::parse(subnet["gateway_ip"].get<std::string>())
                    .value_or(model::IpAddress());
    }
    auto ip = model::pickFreeAddress(
        subnet, [&](const model::IpAddress& a) { return (gateway && a == *gateway) || used(a); },
        rng());
    if (!ip) return noMore();
    return take(subnet, *ip);
  };

  if (doc["fixed_ips"].is_null()) {
    // Neutron's default: one address from an IPv4 subnet with room, and
    // one from each IPv6 subnet (SLAAC or the first stateful one).
    bool v4_done = false, v4_any = false, v6_stateful_done = false;
    for (const Json* s : subnets) {
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
    std::optional<model::IpAddress> ip;
    if (!ip_text.empty()) ip = *model::IpAddress::parse(ip_text);
    if (!sid.empty()) {
      subnet = subnetById(sid);
      if (subnet == nullptr) {
        return model::badRequest("Invalid input for operation: Failed to create port on network " +
                                 network_id + ", because fixed_ips included invalid subnet " + sid +
                                 ".");
      }
    } else {
      for (const Json* s : subnets) {
        if (auto c = model::Cidr::parse(s->value("cidr", "")); c && c->contains(*ip)) subnet = s;
      }
      if (subnet == nullptr) {
        return Error(Errc::InvalidArgument,
                     "IP address " + ip_text +
                         " is not a valid IP for any of the subnets on the specified network.",
                     "InvalidIpForNetwork");
      }
    }
    if (ip) {
      auto cidr = model::Cidr::parse(subnet->value("cidr", ""));
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
      mac = model::generateMac(config.mac_base, rng());
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

class PortKind final : public ResourceKind {
 public:
  explicit PortKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::portSpec(); }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    if (network == nullptr || !(ctx.caller().is_admin ||
                                network->doc.value("project_id", "") == ctx.caller().project_id ||
                                network->doc.value("shared", false))) {
      return notFound(model::networkSpec(), network_id);
    }
    return completeNewPort(doc, network->doc, ctx, config_, false);
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["port_security_enabled"].is_null()) {
      doc["port_security_enabled"] = before["port_security_enabled"];
    }
    if (doc["security_groups"].is_null()) doc["security_groups"] = before["security_groups"];
    if (auto r = checkSecurityGroups(doc, ctx); !r) return r;
    if (doc["fixed_ips"].is_null()) doc["fixed_ips"] = before["fixed_ips"];
    if (doc["fixed_ips"] != before["fixed_ips"]) {
      auto ips = allocate(doc, before["fixed_ips"], ctx);
      if (!ips) return std::move(ips).error();
      doc["fixed_ips"] = std::move(*ips);
    }
    return ok();
  }

  // Ports of routers and floating IPs go with them, not through this API;
  // a VM's port takes its floating IPs' associations with it.
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string owner = doc.value("device_owner", "");
    std::string device = doc.value("device_id", "");
    bool router_port = owner == model::kOwnerRouterInterface || owner == model::kOwnerRouterGateway;
    if ((router_port && ctx.current("routers", device) != nullptr) ||
        (owner == model::kOwnerFloatingIp && ctx.current("floatingips", device) != nullptr)) {
      return Error(Errc::Conflict,
                   "Port " + doc.value("id", "") +
                       " cannot be deleted directly via the port API: has device owner " + owner +
                       ".",
                   "ServicePortInUse");
    }
    disassociateFloatingIps(doc.value("id", ""), ctx);
    releasePortClaims(doc, ctx);
    return ok();
  }

 private:
  model::NetworkConfig config_;
};

}  // namespace

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

Error notFound(const model::ResourceSpec& spec, std::string_view id) {
  std::string message = spec.type_name + " " + std::string(id) + " could not be found.";
  if (spec.type_name == "SecurityGroup") {
    message = "Security group " + std::string(id) + " does not exist";
  } else if (spec.type_name == "SecurityGroupRule") {
    message = "Security group rule " + std::string(id) + " does not exist";
  } else if (spec.type_name == "Router") {
    message = "Router " + std::string(id) + " could not be found";
  } else if (spec.type_name == "FloatingIP") {
    message = "Floating IP " + std::string(id) + " could not be found";
  }
  return Error(Errc::NotFound, std::move(message), spec.type_name + "NotFound");
}

std::string newUuid() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (static_cast<uint64_t>(std::random_device{}()) << 32));
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

bool ResourceKind::visible(const Json& doc, const Caller& caller) const {
  return caller.is_admin || doc.value("project_id", "") == caller.project_id;
}

std::vector<std::unique_ptr<ResourceKind>> makeResourceKinds(const model::NetworkConfig& config) {
  std::vector<std::unique_ptr<ResourceKind>> kinds;
  kinds.push_back(std::make_unique<NetworkKind>(config));
  kinds.push_back(std::make_unique<SubnetKind>());
  kinds.push_back(std::make_unique<PortKind>(config));
  kinds.push_back(std::make_unique<SecurityGroupKind>());
  kinds.push_back(std::make_unique<SecurityGroupRuleKind>());
  kinds.push_back(makeRouterKind(config));
  kinds.push_back(makeFloatingIpKind(config));
  return kinds;
}

}  // namespace canopy::api
