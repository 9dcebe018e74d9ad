// Floating IPs: a port on the external network holding the address,
// associated with a fixed IP behind a router.

#include <algorithm>

#include "api/detail/l3.h"
#include "api/detail/port_forwardings.h"
#include "api/kind.h"
#include "model/port.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using model::badRequest;

using namespace detail;

constexpr Extension kFloatingIpExtensions[] = {
    {"fip-port-details", "Floating IP Port Details Extension",
     "Add port_details attribute to Floating IP resource"},
    {"floating-ip-port-forwarding", "Floating IP Port Forwarding",
     "Allow the floating IP to forward its ports to internal ports (TCP and UDP, in the "
     "datapath)"},
    {"floating-ip-port-forwarding-description",
     "Floating IP Port Forwarding new attribute "
     "description",
     "Add a description field to Port Forwarding rules"},
    {"floating-ip-port-forwarding-detail", "Floating IP Port Forwarding detail",
     "Add the id and internal_port_id of each port forwarding to the floating IP"},
    {"floating-ip-port-forwarding-port-ranges", "Floating IP Port Forwarding support port ranges",
     "Allow port ranges (external_port_range, internal_port_range) in port forwardings"},
    {"expose-port-forwarding-in-fip", "Expose port forwardings in floating IP",
     "Expose port forwardings of a floating IP in its view"},
};

class FloatingIpKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kFloatingIpExtensions; }
  explicit FloatingIpKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::floatingIpSpec(); }

  // fip-port-details: the associated port as its owner sees it.
  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& /*caller*/) const override {
    view["port_forwardings"] = detail::portForwardingsView(doc);
    view["port_details"] = nullptr;
    if (!doc.value("port_id", Json()).is_string()) return;
    const state::Document* port = tables.find("ports", doc["port_id"].get<std::string>());
    if (port == nullptr) return;
    Json details = Json::object();
    for (const char* key : {"name", "network_id", "mac_address", "admin_state_up", "status",
                            "device_id", "device_owner"}) {
      details[key] = port->doc.value(key, Json());
    }
    view["port_details"] = std::move(details);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    std::string network_id = str(doc, "floating_network_id");
    auto network = visibleNetwork(ctx, network_id);
    if (!network) return std::move(network).error();
    if (!(*network)->value("router:external", false)) {
      return badFloatingIp("Network " + network_id + " is not a valid external network");
    }
    if (!ctx.caller().is_admin && doc["floating_ip_address"].is_string()) {
      return model::policyRefused(
          "(rule:create_floatingip:floating_ip_address) is disallowed by policy");
    }
    // The address: given, or from the given subnet, or from any IPv4 subnet.
    std::string subnet_id = str(doc, "subnet_id");
    bool has_v4 = false;
    for (const Json* s : ctx.indexed("subnets.network", "subnets", network_id)) {
      if (s->value("ip_version", 4) == 4) has_v4 = true;
    }
    if (!has_v4) {
      return badFloatingIp("Network " + network_id + " does not contain any IPv4 subnet");
    }
    Json fixed = nullptr;
    if (!subnet_id.empty()) {
      const Json* subnet = ctx.current("subnets", subnet_id);
      if (subnet == nullptr || str(*subnet, "network_id") != network_id) {
        return badFloatingIp("Subnet " + subnet_id + " is not on network " + network_id);
      }
      if (subnet->value("ip_version", 4) != 4) {
        return badFloatingIp("Subnet " + subnet_id + " is not an IPv4 subnet");
      }
      fixed = Json::array({{{"subnet_id", subnet_id}}});
    }
    if (doc["floating_ip_address"].is_string()) {
      Json entry = {{"ip_address", doc["floating_ip_address"]}};
      if (!subnet_id.empty()) entry["subnet_id"] = subnet_id;
      fixed = Json::array({entry});
    }
    auto port = createServicePort({.project_id = {},
                                   .network_id = network_id,
                                   .device_owner = std::string(model::kOwnerFloatingIp),
                                   .device_id = str(doc, "id"),
                                   .fixed_ips = std::move(fixed),
                                   .ipv4_only = true},
                                  ctx, config_);
    if (!port) return std::move(port).error();
    const Json& address = (*port)["fixed_ips"].front();
    doc["floating_ip_address"] = address["ip_address"];
    doc["subnet_id"] = address["subnet_id"];
    doc["canopy:port_id"] = (*port)["id"];
    return associate(doc, Json::object(), ctx);
  }

  // As Neutron: a body without port_id keeps the association, unless it is
  // empty, which disassociates.
  void prepareUpdate(Json& changes, const Json& /*before*/) const override {
    if (changes.empty()) changes["port_id"] = nullptr;
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (doc["port_id"].is_string() && !before.value("port_forwardings", Json::array()).empty()) {
      return inUseByForwarding(doc);
    }
    // A new port with no address named: the address is chosen again.
    if (doc["port_id"] != model::memberAt(before, "port_id") &&
        doc["fixed_ip_address"] == model::memberAt(before, "fixed_ip_address")) {
      doc["fixed_ip_address"] = nullptr;
    }
    return associate(doc, before, ctx);
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    if (!doc.value("port_forwardings", Json::array()).empty()) return inUseByForwarding(doc);
    releaseBinding(doc, ctx);
    if (const Json* port = ctx.current("ports", str(doc, "canopy:port_id"))) {
      removePort(Json(*port), ctx);
    }
    return ok();
  }

 private:
  static Error inUseByForwarding(const Json& fip) {
    return Error(Errc::Conflict,
                 "Floating IP " + str(fip, "id") + " in use by port forwarding resources.",
                 "FipInUseByPortForwarding");
  }

  static void releaseBinding(const Json& fip, Transaction& ctx) {
    if (!fip.value("port_id", Json()).is_string()) return;
    ctx.release(bindingKey(str(fip, "floating_network_id"), str(fip, "port_id"),
                           str(fip, "fixed_ip_address")));
  }

  // Associates the floating IP with doc["port_id"] (or none): the fixed IP,
  // the router that reaches it from the external network, the claim.
  Result<void> associate(Json& doc, const Json& before, Transaction& ctx) const {
    std::string network_id = str(doc, "floating_network_id");
    std::string port_id = str(doc, "port_id");
    bool unchanged = before.value("port_id", Json()) == doc["port_id"] &&
                     before.value("fixed_ip_address", Json()) == doc["fixed_ip_address"];
    if (unchanged && !before.empty()) return ok();
    releaseBinding(before, ctx);
    if (port_id.empty()) {
      if (doc["fixed_ip_address"].is_string()) {
        return badFloatingIp("fixed_ip_address cannot be specified without a port_id");
      }
      doc["port_id"] = nullptr;
      doc["router_id"] = nullptr;
      doc["status"] = "DOWN";
      return ok();
    }
    // A port the caller sees: its own, or one on its network (which is
    // then refused below as another project's).
    const Json* port = ctx.current("ports", port_id);
    const Json* port_network = port ? ctx.current("networks", str(*port, "network_id")) : nullptr;
    if (port == nullptr || !(mayUse(*port, ctx.caller()) ||
                             (port_network != nullptr &&
                              str(*port_network, "project_id") == ctx.caller().project_id))) {
      return notFound(model::portSpec(), port_id);
    }
    if (str(*port, "project_id") != str(doc, "project_id") && !ctx.caller().is_admin) {
      return badFloatingIp("Cannot create floating IP and bind it to Port " + port_id +
                           ", since that port is owned by a different tenant");
    }
    std::string owner = str(*port, "device_owner");
    if (owner.starts_with("network:")) {
      return badFloatingIp("Port " + port_id + " has owner " + owner +
                           " and therefore cannot be assigned to a floating IP");
    }
    // The fixed IPv4 address behind the floating IP.
    std::vector<Json> v4;
    for (const auto& f : port->value("fixed_ips", Json::array())) {
      auto ip = IpAddress::parse(str(f, "ip_address"));
      if (ip && ip->version() == 4) v4.push_back(f);
    }
    const Json* fixed = nullptr;
    if (doc["fixed_ip_address"].is_string()) {
      for (const auto& f : v4) {
        if (f["ip_address"] == doc["fixed_ip_address"]) fixed = &f;
      }
      if (fixed == nullptr) {
        return badFloatingIp("Port " + port_id + " does not have fixed ip " +
                             doc["fixed_ip_address"].get<std::string>());
      }
    } else if (v4.empty()) {
      return badFloatingIp("Port " + port_id + " does not have any IPv4 address");
    } else if (v4.size() > 1) {
      return badFloatingIp("Port " + port_id +
                           " has multiple fixed IPv4 addresses. Must provide a specific IPv4 "
                           "address when assigning a floating IP");
    } else {
      fixed = &v4.front();
    }
    std::string fixed_ip = str(*fixed, "ip_address");
    std::string subnet_id = str(*fixed, "subnet_id");
    // Neutron's rule: a router with an interface on the port's subnet and
    // its gateway on the floating IP's network.
    std::string router_id;
    for (const Json* p : ctx.indexed("ports.subnet", "ports", subnet_id)) {
      if (str(*p, "device_owner") != model::kOwnerRouterInterface) continue;
      const Json* router = ctx.current("routers", str(*p, "device_id"));
      if (router == nullptr) continue;
      const Json& gw = (*router)["external_gateway_info"];
      if (gw.is_object() && str(gw, "network_id") == network_id) {
        router_id = str(*router, "id");
        break;
      }
    }
    if (router_id.empty()) {
      return Error(Errc::NotFound,
                   "External network " + network_id + " is not reachable from subnet " + subnet_id +
                       ".  Therefore, cannot associate Port " + port_id + " with a Floating IP.",
                   "ExternalGatewayForFloatingIPNotFound");
    }
    for (const Json* other : ctx.indexed("floatingips.port", "floatingips", port_id)) {
      if (str(*other, "id") != str(doc, "id") && str(*other, "fixed_ip_address") == fixed_ip &&
          str(*other, "floating_network_id") == network_id) {
        return Error(Errc::Conflict,
                     "Cannot associate floating IP " + str(doc, "floating_ip_address") + " (" +
                         str(doc, "id") + ") with port " + port_id + " using fixed IP " + fixed_ip +
                         ", as that fixed IP already has a floating IP on external "
                         "network " +
                         network_id + ".",
                     "FloatingIPPortAlreadyAssociated");
      }
    }
    ctx.claim(bindingKey(network_id, port_id, fixed_ip), str(doc, "id"));
    doc["fixed_ip_address"] = fixed_ip;
    doc["router_id"] = router_id;
    doc["status"] = "ACTIVE";
    return ok();
  }

  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makeFloatingIpKind(const model::NetworkConfig& config) {
  return std::make_unique<FloatingIpKind>(config);
}

}  // namespace canopy::api
