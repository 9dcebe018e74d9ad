// Floating IP port forwarding (Neutron's floating-ip-port-forwarding and
// its -description, -detail, -port-ranges, and expose-port-forwarding-in-
// fip): /v2.0/floatingips/<id>/port_forwardings[/<pf>]. One unassociated
// floating IP forwards TCP or UDP ports (or ranges) to addresses of
// different ports behind its router. The forwardings live in the floating
// IP's document ("port_forwardings", each with its id), so that the
// floating IP's view and the southbound carry them; the datapath turns them
// into stateless translations (docs/DATAPATH.md, "Port forwarding").

#include <algorithm>
#include <charconv>

#include "api/detail/endpoint.h"
#include "api/detail/l3.h"
#include "api/detail/port_forwardings.h"
#include "api/kind.h"
#include "model/port.h"
#include "model/router.h"

namespace canopy::api {
namespace {

using detail::str;

std::string textOf(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Error pfNotFound(const std::string& pf, const std::string& fip) {
  return Error(Errc::NotFound,
               "Port Forwarding " + pf + " could not be found for Floating IP " + fip + ".",
               "PortForwardingNotFound");
}

Error fipNotFound(const std::string& id) {
  return Error(Errc::NotFound, "Floating IP " + id + " could not be found", "FloatingIPNotFound");
}

// A port 1-65535 (convert_to_int, type:range).
Result<int> portOf(const std::string& attr, const Json& v) {
  std::optional<int64_t> n;
  if (v.is_number_integer()) n = v.get<int64_t>();
  if (v.is_string() && !v.get_ref<const std::string&>().empty() &&
      v.get_ref<const std::string&>().size() <= 10 &&
      std::all_of(v.get_ref<const std::string&>().begin(), v.get_ref<const std::string&>().end(),
                  [](unsigned char c) { return std::isdigit(c); })) {
    n = std::stoll(v.get<std::string>());
  }
  if (!n) return model::invalidInput(attr, "'" + textOf(v) + "' is not an integer");
  if (*n < 1)
    return model::invalidInput(attr, "'" + textOf(v) + "' is too small - must be at least '1'");
  if (*n > 65535) {
    return model::invalidInput(attr,
                               "'" + textOf(v) + "' is too large - must be no more than '65535'");
  }
  return static_cast<int>(*n);
}

// "N:M" (or "N"), 1-65535, N <= M.
Result<std::pair<int, int>> rangeOf(const std::string& attr, const Json& v) {
  if (v.is_number_integer()) {
    auto p = portOf(attr, v);
    if (!p) return std::move(p).error();
    return std::make_pair(*p, *p);
  }
  std::string text = textOf(v);
  auto colon = text.find(':');
  std::string lo = text.substr(0, colon),
              hi = colon == std::string::npos ? lo : text.substr(colon + 1);
  auto a = portOf(attr, Json(lo)), b = portOf(attr, Json(hi));
  if (!a || !b || *b < *a) {
    return model::invalidInput(attr, "'" + text + "' is not a valid port range (N:M, 1-65535)");
  }
  return std::make_pair(*a, *b);
}

// The body's port_forwarding, checked and merged into `base` (an update's
// current values; on create the required ones must come).
Result<Json> checked(const HttpRequest& req, const Json& base, bool create) {
  auto body = model::parseJson(req.body);
  if (!body) return model::badRequest(body.error().message());
  const Json& given = model::memberAt(*body, "port_forwarding");
  if (!given.is_object()) return model::badRequest("Resource body required");
  Json out = base;
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "internal_port" || key == "external_port") {
      if (v.is_null()) {
        out[key] = nullptr;
        continue;
      }
      auto p = portOf(key, v);
      if (!p) return std::move(p).error();
      out[key] = *p;
      out.erase(key == "internal_port" ? "internal_port_range" : "external_port_range");
    } else if (key == "internal_port_range" || key == "external_port_range") {
      auto r = rangeOf(key, v);
      if (!r) return std::move(r).error();
      out[key] = std::to_string(r->first) + ":" + std::to_string(r->second);
      out.erase(key == "internal_port_range" ? "internal_port" : "external_port");
    } else if (key == "protocol") {
      if (v != "tcp" && v != "udp") {
        return model::invalidInput(key, "'" + textOf(v) + "' is not in ['tcp', 'udp']");
      }
      out[key] = v;
    } else if (key == "internal_ip_address") {
      auto ip = IpAddress::parse(v.is_string() ? v.get<std::string>() : std::string());
      if (!ip || ip->family != 4) {
        return model::invalidInput(key, "'" + textOf(v) + "' is not a valid IPv4 address");
      }
      out[key] = v;
    } else if (key == "internal_port_id") {
      if (!v.is_string() || !model::isUuid(v.get<std::string>())) {
        return model::invalidInput(key, "'" + textOf(v) + "' is not a valid UUID");
      }
      out[key] = v;
    } else if (key == "description") {
      if (!v.is_string() || v.get_ref<const std::string&>().size() > 255) {
        return model::invalidInput(key, "'" + textOf(v) + "' is not a string of at most 255");
      }
      out[key] = v;
    } else if (auto other = detail::checkOtherAttribute(key, v, create, {}); !other) {
      return std::move(other).error();
    }
  }
  for (const char* required : {"internal_port_id", "internal_ip_address", "protocol"}) {
    if (!out.contains(required)) {
      return model::badRequest("Failed to parse request. Required attribute '" +
                               std::string(required) + "' not specified");
    }
  }
  auto range = [&](const char* single, const char* ranged) -> std::optional<std::pair<int, int>> {
    if (out.contains(single) && out[single].is_number_integer()) {
      return std::make_pair(out[single].get<int>(), out[single].get<int>());
    }
    if (out.contains(ranged) && out[ranged].is_string()) {
      auto r = rangeOf(ranged, out[ranged]);
      if (r) return *r;
    }
    return std::nullopt;
  };
  auto in = range("internal_port", "internal_port_range");
  auto ext = range("external_port", "external_port_range");
  if (!in || !ext) {
    return model::badRequest(
        "Failed to parse request. Required attribute 'internal_port' (or "
        "'internal_port_range') and 'external_port' (or 'external_port_range') not specified");
  }
  if (in->second - in->first != ext->second - ext->first) {
    return model::badRequest(
        "Bad port_forwarding request: the internal and external port ranges must be of the same "
        "size.");
  }
  if (!out.contains("description")) out["description"] = "";
  return out;
}

std::pair<int, int> rangeIn(const Json& pf, const char* single, const char* ranged) {
  if (pf.contains(single) && pf[single].is_number_integer()) {
    return {pf[single].get<int>(), pf[single].get<int>()};
  }
  auto r = rangeOf(ranged, model::memberAt(pf, ranged));
  return r ? *r : std::make_pair(0, -1);
}

bool overlaps(std::pair<int, int> a, std::pair<int, int> b) {
  return a.first <= b.second && b.first <= a.second;
}

// A forwarding as the API shows it: its own endpoints (with its id), or in
// its floating IP's view.
Json view(const Json& pf) {
  Json v = {{"id", str(pf, "id")},
            {"protocol", str(pf, "protocol")},
            {"internal_ip_address", str(pf, "internal_ip_address")},
            {"internal_port_id", str(pf, "internal_port_id")},
            {"description", pf.value("description", "")}};
  for (const char* k :
       {"internal_port", "external_port", "internal_port_range", "external_port_range"}) {
    if (pf.contains(k)) v[k] = pf[k];
  }
  return v;
}

// Where the forwarding may go: the internal address is the port's, the
// port has no floating IP of its own, no other forwarding takes the same
// external ports or internal socket; the router that joins the port's
// subnet to the floating IP's network (the floating IP's, if it has one).
Result<std::string> checkTarget(const Json& pf, const Json& fip, const Json& others,
                                Transaction& ctx) {
  const std::string port_id = str(pf, "internal_port_id");
  const std::string ip = str(pf, "internal_ip_address");
  const Json* port = ctx.current("ports", port_id);
  if (port == nullptr || !detail::mayUse(*port, ctx.caller())) {
    return notFound(model::portSpec(), port_id);
  }
  std::string subnet;
  for (const auto& f : port->value("fixed_ips", Json::array())) {
    if (str(f, "ip_address") == ip) subnet = str(f, "subnet_id");
  }
  if (subnet.empty()) {
    return model::badRequest("Bad port_forwarding request: The internal IP " + ip +
                             " is not an address of port " + port_id + ".");
  }
  for (const Json* other : ctx.indexed("floatingips.port", "floatingips", port_id)) {
    return Error(Errc::Conflict,
                 "Cannot create port forwarding to floating IP " + str(fip, "floating_ip_address") +
                     " (" + str(fip, "id") + ") with port " + port_id + " using fixed IP " + ip +
                     ", as that port already has a binding floating IP " +
                     str(*other, "floating_ip_address") + ".",
                 "PortHasBindingFloatingIP");
  }
  const auto ext = rangeIn(pf, "external_port", "external_port_range");
  const auto in = rangeIn(pf, "internal_port", "internal_port_range");
  auto duplicate = [&](const Json& other) {
    return Error(Errc::InvalidArgument,
                 "A duplicate port forwarding entry with same attributes already exists, "
                 "conflicting values are {'floatingip_id': '" +
                     str(fip, "id") + "', 'external_port': " + view(other).dump() + "}",
                 "BadRequest");
  };
  for (const auto& other : others) {
    if (str(other, "id") == str(pf, "id") || str(other, "protocol") != str(pf, "protocol")) {
      continue;
    }
    if (overlaps(rangeIn(other, "external_port", "external_port_range"), ext)) {
      return duplicate(other);
    }
  }
  // The same internal socket, on any floating IP.
  for (const Json* f : ctx.indexed("floatingips.forwarded_port", "floatingips", port_id)) {
    const Json& list = str(*f, "id") == str(fip, "id") ? others : (*f)["port_forwardings"];
    for (const auto& other : list) {
      if (str(other, "id") == str(pf, "id") || str(other, "protocol") != str(pf, "protocol") ||
          str(other, "internal_ip_address") != ip) {
        continue;
      }
      if (overlaps(rangeIn(other, "internal_port", "internal_port_range"), in)) {
        return duplicate(other);
      }
    }
  }
  // The router: Neutron's rule for floating IPs.
  const std::string network_id = str(fip, "floating_network_id");
  for (const Json* p : ctx.indexed("ports.subnet", "ports", subnet)) {
    if (str(*p, "device_owner") != model::kOwnerRouterInterface) continue;
    const Json* router = ctx.current("routers", str(*p, "device_id"));
    if (router == nullptr) continue;
    const Json& gw = (*router)["external_gateway_info"];
    if (!gw.is_object() || str(gw, "network_id") != network_id) continue;
    const std::string id = str(*router, "id");
    if (fip.value("router_id", Json()).is_string() && str(fip, "router_id") != id) {
      return model::badRequest("Bad port_forwarding request: port " + port_id +
                               " is behind another router than the floating IP's other "
                               "forwardings.");
    }
    return id;
  }
  return Error(Errc::NotFound,
               "External network " + network_id + " is not reachable from subnet " + subnet +
                   ".  Therefore, cannot associate Port " + port_id + " with a Floating IP.",
               "ExternalGatewayForFloatingIPNotFound");
}

}  // namespace

namespace detail {

Json portForwardingsView(const Json& fip) {
  Json out = Json::array();
  for (const auto& pf : fip.value("port_forwardings", Json::array())) {
    Json v = {{"id", str(pf, "id")},
              {"protocol", str(pf, "protocol")},
              {"internal_ip_address", str(pf, "internal_ip_address")},
              {"internal_port_id", str(pf, "internal_port_id")}};
    for (const char* k :
         {"internal_port", "external_port", "internal_port_range", "external_port_range"}) {
      if (pf.contains(k)) v[k] = pf[k];
    }
    out.push_back(std::move(v));
  }
  return out;
}

void removeForwardingsTo(const std::string& port_id, Transaction& ctx) {
  std::vector<Json> fips;
  for (const Json* f : ctx.indexed("floatingips.forwarded_port", "floatingips", port_id)) {
    fips.push_back(*f);
  }
  for (Json& fip : fips) {
    Json kept = Json::array();
    for (const auto& pf : fip.value("port_forwardings", Json::array())) {
      if (str(pf, "internal_port_id") != port_id) kept.push_back(pf);
    }
    fip["port_forwardings"] = kept;
    if (kept.empty()) {
      fip["router_id"] = nullptr;
      fip["status"] = "DOWN";
    }
    const std::string id = str(fip, "id");
    if (const state::Document* d = ctx.find("floatingips", id)) {
      ctx.guard("floatingips", id, d->mod_revision);
    }
    fip["revision_number"] = fip.value("revision_number", int64_t{0}) + 1;
    fip["updated_at"] = ctx.now();
    ctx.put("floatingips", id, fip);
  }
}

HttpResponse serveFloatingIpPortForwardings(const ApiWriter& w, const ResourceKind& fips,
                                            const std::vector<std::string>& parts,
                                            const HttpRequest& req, const Caller& caller) {
  const std::string& fip_id = parts[2];
  const std::string* pf_id = parts.size() == 5 ? &parts[4] : nullptr;
  if (req.method == "GET") {
    std::optional<Json> out = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
      const state::Document* f = t.find("floatingips", fip_id);
      if (f == nullptr || !fips.visible(f->doc, caller, t)) return std::nullopt;
      Json list = Json::array();
      for (const auto& pf : f->doc.value("port_forwardings", Json::array())) {
        if (pf_id != nullptr) {
          if (str(pf, "id") == *pf_id) return Json{{"port_forwarding", view(pf)}};
          continue;
        }
        bool match = true;
        for (const auto& [k, v] : req.query) {
          Json shown = view(pf);
          if (shown.contains(k) && textOf(shown[k]) != v) match = false;
        }
        if (match) list.push_back(view(pf));
      }
      if (pf_id != nullptr) return Json();
      return Json{{"port_forwardings", std::move(list)}};
    });
    if (!out) return errorResponse(fipNotFound(fip_id));
    if (out->is_null()) return errorResponse(pfNotFound(*pf_id, fip_id));
    return json(200, *out);
  }
  const bool create = pf_id == nullptr && req.method == "POST";
  const bool change = pf_id != nullptr && req.method == "PUT";
  const bool remove = pf_id != nullptr && req.method == "DELETE";
  if (!create && !change && !remove) return methodNotAllowed();
  Json result;
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    const state::Document* f = ctx.find("floatingips", fip_id);
    if (f == nullptr || !fips.visible(f->doc, ctx.caller(), ctx.tables())) {
      return fipNotFound(fip_id);
    }
    if (!canChange(f->doc, ctx.caller())) {
      return model::policyRefused(std::string("(rule:") +
                                  (create   ? "create"
                                   : change ? "update"
                                            : "delete") +
                                  "_floatingip_port_forwarding) is disallowed by policy");
    }
    Json doc = f->doc;
    Json list = doc.value("port_forwardings", Json::array());
    auto at = list.end();
    if (pf_id != nullptr) {
      at = std::find_if(list.begin(), list.end(),
                        [&](const Json& pf) { return str(pf, "id") == *pf_id; });
      if (at == list.end()) return pfNotFound(*pf_id, fip_id);
    }
    if (remove) {
      list.erase(at);
    } else {
      if (doc.value("port_id", Json()).is_string()) {
        return Error(Errc::Conflict,
                     "Cannot associate floating IP " + str(doc, "floating_ip_address") + " (" +
                         fip_id + ") with port forwardings, as it is associated with port " +
                         str(doc, "port_id") + ".",
                     "FloatingIPPortAlreadyAssociated");
      }
      auto wanted = checked(req, change ? *at : Json::object(), create);
      if (!wanted) return std::move(wanted).error();
      if (create) (*wanted)["id"] = newUuid();
      auto router = checkTarget(*wanted, doc, list, ctx);
      if (!router) return std::move(router).error();
      doc["router_id"] = *router;
      doc["status"] = "ACTIVE";
      if (create) {
        list.push_back(*wanted);
      } else {
        *at = *wanted;
      }
      result = *wanted;
    }
    if (list.empty()) {
      doc["router_id"] = nullptr;
      doc["status"] = "DOWN";
    }
    doc["port_forwardings"] = std::move(list);
    putParent(ctx, "floatingips", fip_id, std::move(doc), f->mod_revision);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (remove) return noContent();
  return json(create ? 201 : 200, {{"port_forwarding", view(result)}});
}

}  // namespace detail
}  // namespace canopy::api
