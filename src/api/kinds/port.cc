// Ports: IPAM, MACs, security groups, bindings; floating IPs let go with them.

#include "model/port.h"

#include "api/detail/addresses.h"
#include "api/detail/bindings.h"
#include "api/detail/local_ips.h"
#include "api/detail/logs.h"
#include "api/detail/port_forwardings.h"
#include "api/detail/qos.h"
#include "api/detail/rbac.h"
#include "api/detail/trunks.h"
#include "api/kind.h"
#include "model/dhcp_options.h"
#include "model/ipam.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using model::badRequest;

using detail::allocate;
using detail::checkSecurityGroups;
using detail::completeNewPort;
using detail::macKey;
using detail::releasePortClaims;

constexpr Extension kPortExtensions[] = {
    {"allowed-address-pairs", "Allowed Address Pairs", "Provides allowed address pairs"},
    {"binding", "Port Binding", "Expose port bindings of a virtual port to external application"},
    {"binding-extended", "Port Bindings Extended",
     "Expose port bindings of a virtual port to external application (active and inactive, for "
     "live migration)"},
    {"port-security", "Port Security", "Provides port security"},
    {"tag-ports-during-bulk-creation", "Tag Ports During Bulk Creation",
     "Allow to tag ports during bulk creation"},
    {"extra_dhcp_opt", "Neutron Extra DHCP options",
     "Extra options configuration for DHCP. For example PXE boot options to DHCP clients can be "
     "specified (e.g. tftp-server, server-ip-address, bootfile-name)"},
    {"dns-integration", "DNS Integration",
     "Provides integration with DNS (Canopy's DHCP server gives each port its dns_name)."},
    {"dns-domain-ports", "dns_domain for ports",
     "Allows the DNS domain to be specified for a network port."},
    {"port-mac-address-regenerate", "Neutron Port MAC address regenerate",
     "Network port MAC address regenerate"},
    {"canopy-instance-metadata", "Instance metadata on ports",
     "What the metadata service at 169.254.169.254 answers for the port's instance without Nova: "
     "its name, public keys and user data (instance_metadata)"},
};

class PortKind final : public ResourceKind {
 public:
  std::span<const Extension> extensions() const override { return kPortExtensions; }
  explicit PortKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::portSpec(); }

  // As Neutron's policy: a port is seen (and deleted) by its project and by
  // its network's owner; changed by its project.
  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return ResourceKind::visible(doc, caller, tables) || networkOwner(doc, caller, tables);
  }

  Access access(const Json& doc, const Caller& caller, const state::Tables& tables,
                std::string_view verb) const override {
    auto a = ResourceKind::access(doc, caller, tables, verb);
    if (a == Access::Refused && verb == "delete" && networkOwner(doc, caller, tables)) {
      return Access::Allowed;
    }
    return a;
  }

  void presentOwn(Json& view, const Json& doc) const override {
    std::string domain = doc.value("dns_domain", "");
    view["dns_assignment"] =
        model::dnsAssignment(doc, domain.empty() ? model::kDefaultDnsDomain : domain);
  }

  // New extra DHCP options merge into the port's (a null value removes one).
  void prepareUpdate(Json& changes, const Json& before) const override {
    if (changes.contains("extra_dhcp_opts")) {
      changes["extra_dhcp_opts"] = model::mergeExtraDhcpOpts(
          before.value("extra_dhcp_opts", Json::array()), changes["extra_dhcp_opts"]);
    }
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    doc["extra_dhcp_opts"] = model::normalizeExtraDhcpOpts(doc["extra_dhcp_opts"]);
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    if (network == nullptr || !detail::ownedOrShared(network->doc, ctx.caller(), ctx.tables())) {
      return notFound(model::networkSpec(), network_id);
    }
    if (auto r = checkOwnerOnly(doc, nullptr, ctx); !r) return r;
    if (auto r = detail::checkQosPolicy(doc, nullptr, ctx, false); !r) return r;
    if (auto r = checkPairsNeedSecurity(doc, nullptr); !r) return r;
    if (auto r = completeNewPort(doc, network->doc, ctx, config_, false); !r) return r;
    bindTo(doc, ctx);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (auto r = checkOwnerOnly(doc, &before, ctx); !r) return r;
    if (auto r = detail::checkQosPolicy(doc, &before, ctx, false); !r) return r;
    if (auto r = changeMac(doc, before, ctx); !r) return r;
    if (auto r = checkPairsNeedSecurity(doc, &before); !r) return r;
    if (doc["port_security_enabled"].is_null()) {
      doc["port_security_enabled"] = model::memberAt(before, "port_security_enabled");
    }
    if (doc["security_groups"].is_null())
      doc["security_groups"] = model::memberAt(before, "security_groups");
    if (auto r = checkSecurityGroups(doc, ctx); !r) return r;
    if (doc["fixed_ips"].is_null()) doc["fixed_ips"] = model::memberAt(before, "fixed_ips");
    if (doc["fixed_ips"] != model::memberAt(before, "fixed_ips")) {
      auto ips = allocate(doc, model::memberAt(before, "fixed_ips"), ctx);
      if (!ips) return std::move(ips).error();
      doc["fixed_ips"] = std::move(*ips);
    }
    if (doc["binding:host_id"] != model::memberAt(before, "binding:host_id") ||
        doc["binding:vnic_type"] != model::memberAt(before, "binding:vnic_type")) {
      bindTo(doc, ctx);
      detail::followParentBinding(doc, before, ctx);
      // Down until the new host's agent says its datapath forwards for it.
      if (doc["binding:host_id"] != model::memberAt(before, "binding:host_id")) {
        doc["status"] = "DOWN";
      }
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
    if (auto r = detail::checkLocalIpPort(doc, ctx); !r) return r;
    if (auto r = detail::checkTrunkPortRemoval(doc, ctx); !r) return r;
    disassociateFloatingIps(doc.value("id", ""), ctx);
    detail::removeForwardingsTo(doc.value("id", ""), ctx);
    detail::removeLogsOf("logs.target", doc.value("id", ""), ctx);
    detail::removeLocalIpAssociations(doc.value("id", ""), ctx);
    releasePortClaims(doc, ctx);
    return ok();
  }

 private:
  // The active binding's type and details follow its host (detail/bindings.h).
  static void bindTo(Json& doc, const Transaction& ctx) {
    auto b = detail::bindingFor(doc.value("id", ""), doc.value("binding:host_id", ""),
                                doc.value("binding:vnic_type", "normal"), ctx);
    doc["binding:vif_type"] = b.vif_type;
    doc["binding:vif_details"] = b.vif_details;
  }

  // Allowed address pairs relax port security: a port without it has none.
  static Result<void> checkPairsNeedSecurity(const Json& doc, const Json* before) {
    const Json& security = doc["port_security_enabled"].is_null() && before != nullptr
                               ? model::memberAt(*before, "port_security_enabled")
                               : doc["port_security_enabled"];
    if (security == false && !doc.value("allowed_address_pairs", Json::array()).empty()) {
      return Error(Errc::Conflict,
                   "Port Security must be enabled in order to have allowed address pairs on a "
                   "port.",
                   "AddressPairAndPortSecurityRequired");
    }
    return ok();
  }

  static bool networkOwner(const Json& port, const Caller& caller, const state::Tables& tables) {
    const state::Document* n = tables.find("networks", port.value("network_id", ""));
    return n != nullptr && n->doc.value("project_id", "") == caller.project_id;
  }

  // What only an admin or the network's owner may set on a port (Neutron's
  // create_port:<attr> and update_port:<attr> rules): its MAC, chosen
  // addresses, allowed address pairs and port security. `before` is null on
  // create, where only what the request gave counts.
  static Result<void> checkOwnerOnly(const Json& doc, const Json* before, const Transaction& ctx) {
    if (ctx.caller().is_admin || networkOwner(doc, ctx.caller(), ctx.tables())) return ok();
    const char* verb = before == nullptr ? "create_port" : "update_port";
    auto refuse = [&](const char* attr) {
      return model::policyRefused("(rule:" + std::string(verb) + " and rule:" + verb + ":" + attr +
                                  ") is disallowed by policy");
    };
    auto changed = [&](const char* attr) {
      return before != nullptr && doc.contains(attr) && model::memberAt(*before, attr) != doc[attr];
    };
    if (before == nullptr ? !doc["allowed_address_pairs"].empty()
                          : changed("allowed_address_pairs")) {
      return refuse("allowed_address_pairs");
    }
    if (before == nullptr ? doc["mac_address"].is_string() : changed("mac_address")) {
      return refuse("mac_address");
    }
    if (before == nullptr
            ? doc["port_security_enabled"].is_boolean()
            : changed("port_security_enabled") && !doc["port_security_enabled"].is_null()) {
      return refuse("port_security_enabled");
    }
    if (before == nullptr || changed("fixed_ips")) {
      for (const auto& f : doc.value("fixed_ips", Json::array())) {
        if (f.is_object() && f.contains("ip_address")) return refuse("fixed_ips:ip_address");
      }
    }
    return ok();
  }

  // A MAC given null is regenerated (port-mac-address-regenerate).
  Result<void> changeMac(Json& doc, const Json& before, Transaction& ctx) const {
    if (doc["mac_address"].is_null()) {
      if (!ctx.caller().is_admin) {
        return model::policyRefused("(rule:update_port:mac_address) is disallowed by policy");
      }
      std::string network_id = doc.value("network_id", "");
      for (int attempt = 0; attempt < 16 && doc["mac_address"].is_null(); ++attempt) {
        std::string mac = model::generateMac(config_.mac_base, randomEngine());
        if (ctx.indexed("ports.mac", "ports", network_id + " " + mac).empty()) {
          doc["mac_address"] = mac;
        }
      }
      if (doc["mac_address"].is_null()) {
        return Error(Errc::Conflict, "Unable to generate a unique MAC address.",
                     "MacAddressGenerationFailure");
      }
    }
    auto mac = model::parseMac(doc["mac_address"].get<std::string>());
    doc["mac_address"] = *mac;
    if (doc["mac_address"] == model::memberAt(before, "mac_address")) return ok();
    std::string id = doc.value("id", ""), network_id = doc.value("network_id", "");
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:update_port:mac_address) is disallowed by policy");
    }
    if (!doc.value("binding:host_id", "").empty()) {
      return Error(
          Errc::Conflict,
          "Unable to complete operation on port " + id + ", port is already bound, port type: " +
              doc.value("binding:vif_type", model::kVifType) + ", old_mac " +
              before.value("mac_address", "") + ", new_mac " + doc.value("mac_address", "") + ".",
          "PortBound");
    }
    if (!ctx.indexed("ports.mac", "ports", network_id + " " + doc.value("mac_address", ""))
             .empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation for network " + network_id + ". The mac address " +
                       doc.value("mac_address", "") + " is in use.",
                   "MacAddressInUse");
    }
    ctx.release(macKey(network_id, before.value("mac_address", "")));
    ctx.claim(macKey(network_id, doc["mac_address"]), id);
    return ok();
  }

  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makePortKind(const model::NetworkConfig& config) {
  return std::make_unique<PortKind>(config);
}

}  // namespace canopy::api
