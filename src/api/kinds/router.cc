// Routers: interfaces and the gateway as ports the router owns, extra routes.

#include "model/router.h"

#include <algorithm>

#include "api/detail/endpoint.h"
#include "api/detail/l3.h"
#include "api/detail/rbac.h"
#include "api/detail/zones.h"
#include "api/kind.h"
#include "model/port.h"
#include "model/subnet.h"

namespace canopy::api {
namespace {

using model::badRequest;

using namespace detail;

constexpr Extension kRouterExtensions[] = {
    {"router", "Neutron L3 Router",
     "Router abstraction for basic L3 forwarding between L2 Neutron networks and access to "
     "external networks via a NAT gateway."},
    {"ext-gw-mode", "Neutron L3 Configurable external gateway mode",
     "Extension of the router abstraction for specifying whether SNAT should occur on the "
     "external gateway"},
    {"extraroute", "Neutron Extra Route", "Extra routes configuration for L3 router"},
    {"extraroute-atomic", "Atomically add/remove extra routes",
     "Edit extra routes of a router on server side by atomically adding/removing extra routes"},
    {"dvr", "Distributed Virtual Router",
     "Enables configuration of Distributed Virtual Routers (every Canopy router is one)."},
    {"l3-ha", "HA Router extension",
     "Adds HA capability to routers (a Canopy router's gateway fails over between gateway "
     "hosts)."},
    {"l3-conntrack-helper", "L3 Conntrack helper",
     "Allow adding CT target rules for conntrack helper (Canopy's datapath: ftp and tftp)"},
    {"expose-l3-conntrack-helper", "Expose CT target rules for conntrack helper",
     "Expose the conntrack helper in the router's details"},
};

class RouterKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kRouterExtensions; }
  explicit RouterKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::routerSpec(); }

  // Its zones: its gateway host's.
  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& /*caller*/) const override {
    std::vector<std::string> hosts;
    for (const auto& port_id : tables.lookup("ports.device", doc.value("id", ""))) {
      const state::Document* p = tables.find("ports", port_id);
      if (p != nullptr && p->doc.value("device_owner", "") == model::kOwnerRouterGateway) {
        hosts.push_back(p->doc.value("binding:host_id", ""));
      }
    }
    view["availability_zones"] = detail::hostZones(tables, hosts);
    view["conntrack_helpers"] = routerHelpersView(doc);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (auto r = canopyMeaning(doc); !r) return r;
    if (auto r = detail::checkZoneHints(doc["availability_zone_hints"], ctx); !r) return r;
    doc["status"] = "ACTIVE";
    doc["routes"] = Json::array();
    doc["conntrack_helpers"] = Json::array();
    Json wanted = doc["external_gateway_info"];
    doc["external_gateway_info"] = nullptr;
    return setGateway(doc, wanted, ctx, "create");
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (auto r = canopyMeaning(doc, &before); !r) return r;
    if (doc["external_gateway_info"] != model::memberAt(before, "external_gateway_info")) {
      Json wanted = doc["external_gateway_info"];
      doc["external_gateway_info"] = model::memberAt(before, "external_gateway_info");
      if (auto r = setGateway(doc, wanted, ctx, "update"); !r) return r;
    }
    if (doc["routes"] != model::memberAt(before, "routes")) {
      auto routes = checkRoutes(doc, doc["routes"], ctx);
      if (!routes) return std::move(routes).error();
      doc["routes"] = std::move(*routes);
    }
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = str(doc, "id");
    if (!routerPorts(ctx, id, model::kOwnerRouterInterface).empty()) {
      return Error(Errc::Conflict, "Router " + id + " still has ports", "RouterInUse");
    }
    Json copy = doc;
    return setGateway(copy, nullptr, ctx, "delete");
  }

  bool hasAction(std::string_view name) const override {
    return name == "add_router_interface" || name == "remove_router_interface" ||
           name == "add_extraroutes" || name == "remove_extraroutes";
  }

  Result<Json> action(std::string_view name, const Json& body, const state::Document& stored,
                      Transaction& ctx) const override {
    if (name == "add_extraroutes" || name == "remove_extraroutes") {
      return changeRoutes(name == "add_extraroutes", body, stored, ctx);
    }
    if (!body.is_object()) return badRequest("Body contains invalid data");
    std::string subnet_id = str(body, "subnet_id");
    std::string port_id = str(body, "port_id");
    for (auto it = body.begin(); it != body.end(); ++it) {
      if (it.key() != "subnet_id" && it.key() != "port_id") {
        return badRouter("Unrecognized attribute(s) '" + it.key() + "'");
      }
      if (!it.value().is_string() || !model::isUuid(it.value().get<std::string>())) {
        return model::invalidInput(it.key(), "'" + it.value().dump() + "' is not a valid UUID");
      }
    }
    if (name == "add_router_interface") {
      if (subnet_id.empty() && port_id.empty()) {
        return badRouter("Either subnet_id or port_id must be specified");
      }
      if (!subnet_id.empty() && !port_id.empty()) {
        return badRouter("Cannot specify both subnet-id and port-id");
      }
      return port_id.empty() ? addInterfaceBySubnet(stored.doc, subnet_id, ctx)
                             : addInterfaceByPort(stored.doc, port_id, ctx);
    }
    if (subnet_id.empty() && port_id.empty()) {
      return badRouter("Either subnet_id or port_id must be specified");
    }
    return removeInterface(stored.doc, subnet_id, port_id, ctx);
  }

 private:
  // Canopy's meaning of distributed and ha (model/router.cc): every router
  // is distributed; ha (the default) lets the gateway fail over to another
  // gateway host, ha false keeps it on the host it was given (a single
  // failure router, down while that host is). As Neutron, ha changes only
  // on a router that is administratively down.
  static Result<void> canopyMeaning(Json& doc, const Json* before = nullptr) {
    if (doc["distributed"].is_null()) doc["distributed"] = true;
    if (doc["distributed"] == false) {
      return model::badRequest(
          "Canopy routers are always distributed (each host routes for its own ports): "
          "distributed cannot be false.");
    }
    if (doc["ha"].is_null())
      doc["ha"] = before != nullptr ? model::memberAt(*before, "ha") : Json(true);
    if (before != nullptr && doc["ha"] != model::memberAt(*before, "ha") &&
        doc.value("admin_state_up", true)) {
      return badRouter(
          "Cannot change HA attribute of active routers. Please set router admin_state_up to "
          "False prior to upgrade");
    }
    return ok();
  }

  // What add/remove_router_interface answer.
  static Json interfaceInfo(const Json& router, const Json& port, const std::string& subnet_id) {
    Json subnet_ids = Json::array();
    for (const auto& s : portSubnets(port)) subnet_ids.push_back(s);
    return {{"id", str(router, "id")},
            {"tenant_id", str(router, "project_id")},
            {"project_id", str(router, "project_id")},
            {"port_id", str(port, "id")},
            {"network_id", str(port, "network_id")},
            {"subnet_id", subnet_id},
            {"subnet_ids", std::move(subnet_ids)}};
  }

  // A new interface's subnets may not overlap those the router already has.
  static Result<void> checkNoOverlap(const Json& router, const std::vector<std::string>& subnets,
                                     Transaction& ctx) {
    std::string router_id = str(router, "id");
    for (const Json* p : ctx.indexed("ports.device", "ports", router_id)) {
      for (const auto& existing : portSubnets(*p)) {
        for (const auto& sid : subnets) {
          if (sid == existing) {
            return badRouter("Router already has a port on subnet " + sid);
          }
          auto a = subnetCidr(ctx, sid), b = subnetCidr(ctx, existing);
          if (a && b && a->overlaps(*b)) {
            return badRouter("IpPrefix " + a->toString() + " of subnet " + sid +
                             " overlaps with cidr " + b->toString() + " of subnet " + existing);
          }
        }
      }
    }
    return ok();
  }

  Result<Json> addInterfaceBySubnet(const Json& router, const std::string& subnet_id,
                                    Transaction& ctx) const {
    const Json* subnet = ctx.current("subnets", subnet_id);
    const Json* network = subnet ? ctx.current("networks", str(*subnet, "network_id")) : nullptr;
    if (subnet == nullptr || network == nullptr ||
        !(mayUse(*subnet, ctx.caller()) ||
          detail::sharedWith(*network, ctx.caller().project_id, ctx.tables()))) {
      return notFound(model::subnetSpec(), subnet_id);
    }
    if (!(*subnet)["gateway_ip"].is_string()) {
      return badRouter("Subnet for router interface must have a gateway IP");
    }
    if (auto r = checkNoOverlap(router, {subnet_id}, ctx); !r) return std::move(r).error();
    Json fixed = Json::array();
    fixed.push_back({{"subnet_id", subnet_id}, {"ip_address", (*subnet)["gateway_ip"]}});
    auto port = createServicePort({.project_id = str(router, "project_id"),
                                   .network_id = str(*subnet, "network_id"),
                                   .device_owner = std::string(model::kOwnerRouterInterface),
                                   .device_id = str(router, "id"),
                                   .fixed_ips = std::move(fixed)},
                                  ctx, config_);
    if (!port) return std::move(port).error();
    ctx.touch("routers", str(router, "id"));
    return interfaceInfo(router, *port, subnet_id);
  }

  Result<Json> addInterfaceByPort(const Json& router, const std::string& port_id,
                                  Transaction& ctx) const {
    const state::Document* stored = ctx.find("ports", port_id);
    if (stored == nullptr || !mayUse(stored->doc, ctx.caller())) {
      return notFound(model::portSpec(), port_id);
    }
    Json port = stored->doc;
    if (!str(port, "device_id").empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on port " + port_id + " for network " +
                       str(port, "network_id") + ". Port already has an attached device " +
                       str(port, "device_id") + ".",
                   "PortInUse");
    }
    auto subnets = portSubnets(port);
    if (subnets.empty()) return badRouter("Router port must have at least one fixed IP");
    int v4 = 0;
    for (const auto& sid : subnets) {
      if (auto c = subnetCidr(ctx, sid); c && c->version() == 4) ++v4;
    }
    if (v4 > 1) return badRouter("Cannot have multiple IPv4 subnets on router port");
    if (auto r = checkNoOverlap(router, subnets, ctx); !r) return std::move(r).error();
    port["device_owner"] = model::kOwnerRouterInterface;
    port["device_id"] = str(router, "id");
    port["revision_number"] = port.value("revision_number", int64_t{0}) + 1;
    port["updated_at"] = ctx.now();
    ctx.guard("ports", port_id, stored->mod_revision);
    ctx.put("ports", port_id, port);
    ctx.touch("routers", str(router, "id"));
    return interfaceInfo(router, port, subnets.front());
  }

  Result<Json> removeInterface(const Json& router, const std::string& subnet_id,
                               const std::string& port_id, Transaction& ctx) const {
    std::string router_id = str(router, "id");
    const Json* port = nullptr;
    for (const Json* p : routerPorts(ctx, router_id, model::kOwnerRouterInterface)) {
      auto subnets = portSubnets(*p);
      bool on_subnet = std::find(subnets.begin(), subnets.end(), subnet_id) != subnets.end();
      if (!port_id.empty() ? str(*p, "id") == port_id : on_subnet) port = p;
    }
    if (port == nullptr && !port_id.empty()) {
      return Error(Errc::NotFound,
                   "Router " + router_id + " does not have an interface with id " + port_id,
                   "RouterInterfaceNotFound");
    }
    if (port == nullptr) {
      return Error(Errc::NotFound,
                   "Router " + router_id + " has no interface on subnet " + subnet_id,
                   "RouterInterfaceNotFoundForSubnet");
    }
    auto subnets = portSubnets(*port);
    if (!subnet_id.empty() &&
        std::find(subnets.begin(), subnets.end(), subnet_id) == subnets.end()) {
      return Error(Errc::Conflict,
                   "Subnet " + subnet_id + " could not be found on port " + port_id + ".",
                   "SubnetMismatchForPort");
    }
    // What still needs the interface: routes through it, floating IPs behind it.
    for (const auto& sid : subnets) {
      auto cidr = subnetCidr(ctx, sid);
      if (!cidr) continue;
      auto inUse = [&](const char* what, const char* reason) {
        return Error(Errc::Conflict,
                     "Router interface for subnet " + sid + " on router " + router_id +
                         " cannot be deleted, as it is required by one or more " + what + ".",
                     reason);
      };
      for (const auto& r : router.value("routes", Json::array())) {
        auto hop = IpAddress::parse(str(r, "nexthop"));
        if (hop && cidr->contains(*hop)) return inUse("routes", "RouterInterfaceInUseByRoute");
      }
      for (const Json* f : ctx.indexed("floatingips.router", "floatingips", router_id)) {
        auto fixed = IpAddress::parse(str(*f, "fixed_ip_address"));
        if (fixed && cidr->contains(*fixed) && isBehind(*f, sid, ctx)) {
          return inUse("floating IPs", "RouterInterfaceInUseByFloatingIP");
        }
      }
    }
    Json info = interfaceInfo(router, *port, subnet_id.empty() ? subnets.front() : subnet_id);
    removePort(Json(*port), ctx);
    ctx.touch("routers", router_id);
    return info;
  }

  // Whether a floating IP's port has its fixed IP on this subnet.
  static bool isBehind(const Json& fip, const std::string& subnet_id, const Transaction& ctx) {
    const Json* port = ctx.current("ports", str(fip, "port_id"));
    if (port == nullptr) return false;
    for (const auto& f : port->value("fixed_ips", Json::array())) {
      if (str(f, "subnet_id") == subnet_id &&
          str(f, "ip_address") == str(fip, "fixed_ip_address")) {
        return true;
      }
    }
    return false;
  }

  // extraroute: each next hop on a subnet the router is connected to, and
  // not one of the router's own addresses.
  static Result<Json> checkRoutes(const Json& router, const Json& wanted, Transaction& ctx) {
    auto routes = model::normaliseRoutes(wanted);
    if (!routes) return std::move(routes).error();
    std::string router_id = str(router, "id");
    if (routes->size() > model::kMaxRoutes) {
      return badRequest("Unable to complete operation for " + router_id +
                        ". The number of routes exceeds the maximum " +
                        std::to_string(model::kMaxRoutes) + ".");
    }
    std::vector<IpPrefix> connected;
    std::vector<std::string> own;
    for (const Json* p : ctx.indexed("ports.device", "ports", router_id)) {
      for (const auto& f : p->value("fixed_ips", Json::array())) {
        own.push_back(str(f, "ip_address"));
        if (auto c = subnetCidr(ctx, str(f, "subnet_id"))) connected.push_back(*c);
      }
    }
    for (const auto& r : *routes) {
      auto invalid = [&](const std::string& reason) {
        return Error(Errc::InvalidArgument,
                     "Invalid format for routes: " + r.dump() + ", " + reason, "InvalidRoutes");
      };
      auto hop = IpAddress::parse(str(r, "nexthop"));
      auto destination = IpPrefix::parse(str(r, "destination"));
      if (destination->version() != hop->version()) {
        return invalid("the nexthop and destination are not of the same IP version");
      }
      if (std::find(own.begin(), own.end(), hop->toString()) != own.end()) {
        return invalid("the nexthop is used by router");
      }
      if (std::none_of(connected.begin(), connected.end(),
                       [&](const IpPrefix& c) { return c.contains(*hop); })) {
        return invalid("the nexthop is not connected with router");
      }
    }
    return routes;
  }

  // extraroute-atomic: PUT add_extraroutes / remove_extraroutes.
  Result<Json> changeRoutes(bool add, const Json& body, const state::Document& stored,
                            Transaction& ctx) const {
    if (!body.is_object() || !body.contains("router") || !body["router"].is_object() ||
        body["router"].size() != 1 || !body["router"].contains("routes")) {
      return badRequest("Body must be {\"router\": {\"routes\": [...]}}");
    }
    auto given = model::normaliseRoutes(body["router"]["routes"]);
    if (!given) return std::move(given).error();
    Json doc = stored.doc;
    Json routes = Json::array();
    for (const auto& r : doc.value("routes", Json::array())) {
      bool dropped = !add && std::find(given->begin(), given->end(), r) != given->end();
      if (!dropped) routes.push_back(r);
    }
    if (add) {
      for (const auto& r : *given) {
        if (std::find(routes.begin(), routes.end(), r) == routes.end()) routes.push_back(r);
      }
    }
    if (routes != doc["routes"]) {
      auto checked = checkRoutes(doc, routes, ctx);
      if (!checked) return std::move(checked).error();
      doc["routes"] = std::move(*checked);
      doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
      doc["updated_at"] = ctx.now();
      std::string id = str(doc, "id");
      ctx.guard("routers", id, stored.mod_revision);
      ctx.put("routers", id, doc);
    }
    Json view = model::visibleView(spec(), doc, ctx.caller());
    view["conntrack_helpers"] = routerHelpersView(doc);
    return Json{{"router", std::move(view)}};
  }

  // Sets, changes or clears (null or {}) the router's external gateway:
  // its port on the external network and external_gateway_info.
  Result<void> setGateway(Json& router, const Json& wanted, Transaction& ctx,
                          const char* verb) const {
    std::string router_id = str(router, "id");
    Json current = router["external_gateway_info"];
    bool clear = wanted.is_null() || wanted.empty();
    if (clear && current.is_null()) return ok();
    if (!clear && !ctx.caller().is_admin) {
      for (const char* attr : {"enable_snat", "external_fixed_ips"}) {
        if (wanted.contains(attr)) {
          return model::policyRefused("(rule:" + std::string(verb) +
                                      "_router:external_gateway_info:" + attr +
                                      ") is disallowed by policy");
        }
      }
    }
    std::string network_id = clear ? std::string() : str(wanted, "network_id");
    if (!clear) {
      auto network = visibleNetwork(ctx, network_id);
      if (!network) return std::move(network).error();
      if (!(*network)->value("router:external", false)) {
        return badRouter("Network " + network_id + " is not an external network");
      }
    }
    auto gateways = routerPorts(ctx, router_id, model::kOwnerRouterGateway);
    const Json* old_port = gateways.empty() ? nullptr : gateways.front();
    bool same_network = !current.is_null() && str(current, "network_id") == network_id;
    if (!current.is_null() && !same_network) {
      // Floating IPs reach their ports through this gateway.
      if (!ctx.indexed("floatingips.router", "floatingips", router_id).empty()) {
        return Error(Errc::Conflict,
                     "Gateway cannot be updated for router " + router_id +
                         ", since a gateway to external network " + str(current, "network_id") +
                         " is required by one or more floating IPs.",
                     "RouterExternalGatewayInUseByFloatingIp");
      }
      if (old_port != nullptr) removePort(Json(*old_port), ctx);
    }
    if (clear) {
      router["external_gateway_info"] = nullptr;
      return ok();
    }
    bool enable_snat = wanted.contains("enable_snat") ? wanted["enable_snat"].get<bool>()
                       : current.is_null()            ? true
                                                      : current.value("enable_snat", true);
    Json fixed_ips;
    if (same_network && old_port != nullptr) {
      fixed_ips = (*old_port)["fixed_ips"];
      if (wanted.contains("external_fixed_ips")) {
        Json port = *old_port;
        port["fixed_ips"] = wanted["external_fixed_ips"];
        auto ips = reallocatePort(port, (*old_port)["fixed_ips"], ctx);
        if (!ips) return std::move(ips).error();
        port["fixed_ips"] = *ips;
        fixed_ips = std::move(*ips);
        const state::Document* d = ctx.find("ports", str(port, "id"));
        if (d != nullptr) ctx.guard("ports", str(port, "id"), d->mod_revision);
        ctx.put("ports", str(port, "id"), port);
      }
    } else {
      auto port = createServicePort(
          {.project_id = {},
           .network_id = network_id,
           .device_owner = std::string(model::kOwnerRouterGateway),
           .device_id = router_id,
           .fixed_ips = wanted.contains("external_fixed_ips") ? wanted["external_fixed_ips"]
                                                              : Json(nullptr)},
          ctx, config_);
      if (!port) return std::move(port).error();
      fixed_ips = (*port)["fixed_ips"];
    }
    // As Neutron: a gateway on an external network without subnets has no
    // address (and no way out until one comes).
    if (fixed_ips.empty() && !ctx.indexed("subnets.network", "subnets", network_id).empty()) {
      return badRequest("Unable to find any IP address on external network " + network_id + ".");
    }
    router["external_gateway_info"] = {{"network_id", network_id},
                                       {"enable_snat", enable_snat},
                                       {"external_fixed_ips", fixed_ips}};
    return ok();
  }

  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makeRouterKind(const model::NetworkConfig& config) {
  return std::make_unique<RouterKind>(config);
}

}  // namespace canopy::api
