// Local IPs (Neutron's local_ip): an IPv4 address of a network that each
// host answers with a port of its own. A port associated with the local IP
// (/v2.0/local_ips/<id>/port_associations) receives, on its host, what the
// host's other ports on its network send to the local IP: the datapath
// translates the destination to the port's fixed IP and the replies' source
// back (the client's address is kept), and answers ARP for the local IP
// with the port's MAC. Hosts without an association send to the address's
// own port. IPv4 only (as Neutron's agent); ip_mode "translate" only
// ("passthrough" is refused: no datapath does it).

#include <algorithm>

#include "api/detail/endpoint.h"
#include "api/detail/local_ips.h"
#include "api/detail/rbac.h"
#include "api/kind.h"
#include "base/ip.h"

namespace canopy::api {
namespace {

using model::AttrType;

constexpr std::string_view kOwnerLocalIp = "network:local_ip";
constexpr const char* kAssociations = "local-ip-associations";

constexpr Extension kLocalIpExtensions[] = {
    {"local_ip", "Local IP", "Support Local IP"},
};

std::optional<std::string> checkAddressOrNull(const Json& v) {
  if (v.is_null() || (v.is_string() && IpAddress::parse(v.get<std::string>()))) return std::nullopt;
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not a valid IP address";
}

const model::ResourceSpec& localIpSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "local-ips",
                          .member = "local_ip",
                          .plural = "local_ips",
                          .type_name = "LocalIP"};
    model::addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "local_port_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || (v.is_string() && model::isUuid(v.get<std::string>()))) {
                     return std::nullopt;
                   }
                   return "'" + v.dump() + "' is not a valid UUID";
                 }});
    a.push_back({.name = "network_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || (v.is_string() && model::isUuid(v.get<std::string>()))) {
                     return std::nullopt;
                   }
                   return "'" + v.dump() + "' is not a valid UUID";
                 }});
    a.push_back({.name = "local_ip_address",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = checkAddressOrNull});
    a.push_back({.name = "ip_mode",
                 .allow_post = true,
                 .default_value = Json("translate"),
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v == "translate") return std::nullopt;
                   if (v == "passthrough") return "ip_mode passthrough is not supported";
                   return "'" + v.get<std::string>() + "' is not in ['translate', 'passthrough']";
                 }});
    return s;
  }();
  return spec;
}

Error localIpError(const char* type, std::string message) {
  return Error(Errc::InvalidArgument, std::move(message), type);
}

// The address of `port` the local IP (or association) takes: `wanted` if
// given and the port's, else its only one.
Result<std::string> portAddress(const Json& port, const Json& wanted) {
  std::string id = port.value("id", "");
  std::vector<std::string> ips;
  for (const auto& f : port.value("fixed_ips", Json::array()))
    ips.push_back(f.value("ip_address", ""));
  if (ips.empty()) {
    return localIpError("LocalIPNoIP", "Specified Port " + id + " has no fixed IPs configured.");
  }
  if (wanted.is_string()) {
    auto want = IpAddress::parse(wanted.get<std::string>());
    for (const auto& ip : ips) {
      auto have = IpAddress::parse(ip);
      if (want && have && *have == *want) return ip;
    }
    return localIpError("LocalIPRequestedIPNotFound", "Specified Port " + id +
                                                          " does not have requested IP address: " +
                                                          wanted.get<std::string>() + ".");
  }
  if (ips.size() > 1) {
    return localIpError(
        "LocalIPNoRequestedIP",
        "Specified Port " + id +
            " has several IPs, should specify exact IP address to use for Local IP.");
  }
  return ips.front();
}

Result<void> ipv4Only(const std::string& address) {
  auto ip = IpAddress::parse(address);
  if (ip && ip->family == 4) return ok();
  return model::badRequest("Bad local_ip request: " + address +
                           " is not an IPv4 address; Canopy's local IPs are IPv4.");
}

class LocalIpKind final : public ResourceKind {
 public:
  explicit LocalIpKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return localIpSpec(); }
  std::span<const Extension> extensions() const override { return kLocalIpExtensions; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    const Json& port_id = doc["local_port_id"];
    const Json& network_id = doc["network_id"];
    if (port_id.is_string()) {
      // The port wins over a network given with it, as in Neutron.
      const Json* port = ctx.current("ports", port_id.get<std::string>());
      if (port == nullptr || !visiblePort(*port, ctx)) {
        return model::badRequest("Bad local_ip request: Port " + port_id.get<std::string>() +
                                 " not found.");
      }
      auto address = portAddress(*port, doc["local_ip_address"]);
      if (!address) return std::move(address).error();
      if (auto r = ipv4Only(*address); !r) return r;
      doc["network_id"] = port->value("network_id", "");
      doc["local_ip_address"] = *address;
      return ok();
    }
    if (!network_id.is_string()) {
      return localIpError("LocalIPPortOrNetworkRequired",
                          "Either Port ID or Network ID must be specified for Local IP create.");
    }
    std::string network = network_id.get<std::string>();
    const state::Document* net = ctx.find("networks", network);
    if (net == nullptr || !(detail::ownedOrShared(net->doc, ctx.caller(), ctx.tables()) ||
                            detail::externalTo(net->doc, ctx.caller().project_id, ctx.tables()))) {
      return Error(Errc::NotFound, "Network " + network + " could not be found.",
                   "NetworkNotFound");
    }
    Json fixed = nullptr;
    if (doc["local_ip_address"].is_string()) {
      if (auto r = ipv4Only(doc["local_ip_address"]); !r) return r;
      fixed = Json::array({{{"ip_address", doc["local_ip_address"]}}});
    }
    bool has_v4 = false;
    for (const Json* s : ctx.indexed("subnets.network", "subnets", network)) {
      if (s->value("ip_version", 4) == 4) has_v4 = true;
    }
    if (!has_v4) {
      return model::badRequest("Bad local_ip request: Network " + network +
                               " does not contain any IPv4 subnet");
    }
    auto port = createServicePort({.project_id = doc.value("project_id", ""),
                                   .network_id = network,
                                   .device_owner = std::string(kOwnerLocalIp),
                                   .device_id = doc.value("id", ""),
                                   .fixed_ips = std::move(fixed),
                                   .ipv4_only = true},
                                  ctx, config_);
    if (!port) return std::move(port).error();
    doc["local_port_id"] = (*port)["id"];
    doc["local_ip_address"] = (*port)["fixed_ips"].front()["ip_address"];
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.tables().lookup("local-ip-associations.local_ip", id).empty()) {
      return Error(Errc::Conflict,
                   "Local IP " + id + " is still associated with one or more ports.",
                   "LocalIPInUse");
    }
    const Json* port = ctx.current("ports", doc.value("local_port_id", ""));
    if (port != nullptr && port->value("device_owner", "") == kOwnerLocalIp &&
        port->value("device_id", "") == id) {
      removePort(Json(*port), ctx);
    }
    return ok();
  }

 private:
  static bool visiblePort(const Json& port, const Transaction& ctx) {
    return ctx.caller().is_admin || port.value("project_id", "") == ctx.caller().project_id;
  }

  model::NetworkConfig config_;
};

}  // namespace

namespace detail {

Result<void> checkLocalIpPort(const Json& port, const Transaction& ctx) {
  std::string id = port.value("id", "");
  if (port.value("device_owner", "") == kOwnerLocalIp &&
      ctx.current("local-ips", port.value("device_id", "")) != nullptr) {
    return Error(Errc::Conflict,
                 "Port " + id +
                     " cannot be deleted directly via the port API: has device owner "
                     "network:local_ip.",
                 "ServicePortInUse");
  }
  if (!ctx.tables().lookup("local-ips.port", id).empty()) {
    return Error(Errc::Conflict,
                 "Port " + id +
                     " cannot be deleted directly via the port API: still referenced by Local "
                     "IPs.",
                 "ServicePortInUse");
  }
  return ok();
}

void removeLocalIpAssociations(const std::string& port_id, Transaction& ctx) {
  for (const auto& id : ctx.tables().lookup("local-ip-associations.port", port_id)) {
    if (const state::Document* d = ctx.find(kAssociations, id)) {
      ctx.guard(kAssociations, id, d->mod_revision);
      ctx.remove(kAssociations, id);
    }
  }
}

namespace {

// An association as the API shows it: the fixed port's host is where its
// local IP is answered.
Json associationView(const Json& a, const state::Tables& tables) {
  std::string host;
  if (const state::Document* p = tables.find("ports", a.value("fixed_port_id", ""))) {
    host = p->doc.value("binding:host_id", "");
  }
  return {{"local_ip_id", a.value("local_ip_id", "")},
          {"local_ip_address", a.value("local_ip_address", "")},
          {"fixed_port_id", a.value("fixed_port_id", "")},
          {"fixed_ip", a.value("fixed_ip", "")},
          {"host", host}};
}

const state::Document* findAssociation(const state::Tables& tables, const std::string& local_ip,
                                       const std::string& port) {
  for (const auto& id : tables.lookup("local-ip-associations.local_ip", local_ip)) {
    const state::Document* d = tables.find(kAssociations, id);
    if (d != nullptr && d->doc.value("fixed_port_id", "") == port) return d;
  }
  return nullptr;
}

Error associationNotFound(const std::string& local_ip, const std::string& port) {
  return Error(Errc::NotFound,
               "Local IP " + local_ip + " association with port " + port + " could not be found.",
               "LocalIPAssociationNotFound");
}

}  // namespace

HttpResponse serveLocalIpAssociations(const ApiWriter& w, const ResourceKind& local_ips,
                                      const std::vector<std::string>& parts, const HttpRequest& req,
                                      const Caller& caller) {
  const std::string& local_ip = parts[2];
  // The parent's owner (or an admin) may see and change its associations.
  auto parent = [&](const state::Tables& t) -> const state::Document* {
    const state::Document* d = t.find("local-ips", local_ip);
    if (d == nullptr || !local_ips.visible(d->doc, caller, t)) return nullptr;
    return d;
  };
  auto lipNotFound = [&] { return errorResponse(notFound(local_ips.spec(), local_ip)); };
  if (req.method == "GET") {
    std::optional<Json> out = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
      if (parent(t) == nullptr) return std::nullopt;
      if (parts.size() == 5) {
        const state::Document* a = findAssociation(t, local_ip, parts[4]);
        if (a == nullptr) return Json();
        return Json{{"port_association", associationView(a->doc, t)}};
      }
      Json list = Json::array();
      for (const auto& id : t.lookup("local-ip-associations.local_ip", local_ip)) {
        if (const state::Document* a = t.find(kAssociations, id)) {
          list.push_back(associationView(a->doc, t));
        }
      }
      return Json{{"port_associations", std::move(list)}};
    });
    if (!out) return lipNotFound();
    if (out->is_null()) return errorResponse(associationNotFound(local_ip, parts[4]));
    return json(200, *out);
  }
  if (parts.size() == 4 && req.method == "POST") {
    auto body = model::parseJson(req.body);
    if (!body) return errorResponse(model::badRequest(body.error().message()));
    const Json& a = model::memberAt(*body, "port_association");
    if (!a.is_object()) return errorResponse(model::badRequest("Resource body required"));
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (it.key() != "fixed_port_id" && it.key() != "fixed_ip" && it.key() != "project_id" &&
          it.key() != "tenant_id") {
        return errorResponse(model::badRequest("Unrecognized attribute(s) '" + it.key() + "'"));
      }
    }
    const Json& port_id = model::memberAt(a, "fixed_port_id");
    if (!port_id.is_string() || !model::isUuid(port_id.get<std::string>())) {
      return errorResponse(
          model::badRequest("Invalid input for fixed_port_id. Reason: '" +
                            (port_id.is_string() ? port_id.get<std::string>() : port_id.dump()) +
                            "' is not a valid UUID."));
    }
    const Json& wanted = model::memberAt(a, "fixed_ip");
    if (auto why = checkAddressOrNull(wanted)) {
      return errorResponse(model::badRequest("Invalid input for fixed_ip. Reason: " + *why + "."));
    }
    Json made;
    auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
      auto lip = target(local_ips, local_ip, ctx, req, "update");
      if (!lip) return std::move(lip).error();
      std::string port = port_id;
      const Json* p = ctx.current("ports", port);
      if (p == nullptr || !(caller.is_admin || p->value("project_id", "") == caller.project_id)) {
        return model::badRequest("Bad local_ip_port_association request: Port " + port +
                                 " not found.");
      }
      if (findAssociation(ctx.tables(), local_ip, port) != nullptr) {
        return Error(Errc::Conflict,
                     "Local IP " + local_ip + " is already associated with port " + port + ".",
                     "LocalIPAssociationExists");
      }
      auto fixed = portAddress(*p, wanted);
      if (!fixed) return std::move(fixed).error();
      if (auto v4 = ipv4Only(*fixed); !v4) return v4;
      made = stamped(ctx, (*lip)->doc.value("project_id", ""));
      made.erase("tags");
      made["local_ip_id"] = local_ip;
      made["local_ip_address"] = (*lip)->doc.value("local_ip_address", "");
      made["fixed_port_id"] = port;
      made["fixed_ip"] = *fixed;
      std::string id = made["id"];
      ctx.guardAbsent(kAssociations, id);
      ctx.put(kAssociations, id, made);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    Json view = w.state.read([&](const state::Tables& t) { return associationView(made, t); });
    return json(201, {{"port_association", std::move(view)}});
  }
  if (parts.size() == 5 && req.method == "DELETE") {
    auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
      auto lip = target(local_ips, local_ip, ctx, req, "update");
      if (!lip) return std::move(lip).error();
      const state::Document* a = findAssociation(ctx.tables(), local_ip, parts[4]);
      if (a == nullptr) return associationNotFound(local_ip, parts[4]);
      std::string id = a->doc.value("id", "");
      ctx.guard(kAssociations, id, a->mod_revision);
      ctx.remove(kAssociations, id);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    HttpResponse out;
    out.status = 204;
    return out;
  }
  return methodNotAllowed();
}

}  // namespace detail

std::unique_ptr<ResourceKind> makeLocalIpKind(const model::NetworkConfig& config) {
  return std::make_unique<LocalIpKind>(config);
}

}  // namespace canopy::api
