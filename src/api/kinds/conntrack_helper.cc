// Conntrack helpers (Neutron's l3-conntrack-helper and
// expose-l3-conntrack-helper): /v2.0/routers/<id>/conntrack_helpers, the
// application-level gateways a router's NAT runs for a protocol and port.
// They live in the router's document (its `conntrack_helpers`, each with
// its id), so that the router's view and the southbound carry them.
//
// Canopy allows the helpers its datapath implements (nat/helpers.h): ftp
// over TCP and tftp over UDP. Neutron's other defaults (amanda, h323, irc,
// netbios-ns, pptp, sane, sip, snmp) are refused with Neutron's
// ConntrackHelperNotAllowed rather than stored and ignored.

#include <algorithm>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api {
namespace {

struct Allowed {
  std::string_view helper;
  std::string_view protocol;
};
constexpr Allowed kAllowed[] = {{"ftp", "tcp"}, {"tftp", "udp"}};

// Neutron's protocol names (IPTABLES_PROTOCOL_MAP) and their numbers.
constexpr std::pair<std::string_view, int> kProtocols[] = {
    {"dccp", 33}, {"icmp", 1}, {"ipv6-icmp", 58}, {"sctp", 132}, {"tcp", 6}, {"udp", 17}};

Error invalid(std::string_view attr, std::string_view reason) {
  return model::invalidInput(attr, reason);
}

// convert_to_protocol: a name (any case) or a number 0-255; numbers of the
// named protocols become their names.
Result<std::string> protocolOf(const Json& v) {
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (auto [name, number] : kProtocols) {
    if (lower == name) return std::string(name);
  }
  std::optional<int> number;
  if (v.is_number_integer()) {
    number = v.get<int64_t>() >= 0 && v.get<int64_t>() <= 255 ? std::optional<int>(v.get<int>())
                                                              : std::nullopt;
  } else if (v.is_string() && !text.empty() && text.size() <= 3 &&
             std::all_of(text.begin(), text.end(),
                         [](unsigned char c) { return std::isdigit(c); })) {
    int n = std::stoi(text);
    if (n <= 255) number = n;
  }
  if (number) {
    for (auto [name, n] : kProtocols) {
      if (n == *number) return std::string(name);
    }
    return std::to_string(*number);
  }
  return invalid("protocol", "IP protocol '" + text +
                                 "' is not supported. Only protocol names and their integer "
                                 "representation (0 to 255) are supported");
}

// convert_to_int, then type:range [1, 65535].
Result<int> portOf(const Json& v) {
  std::optional<int64_t> n;
  if (v.is_number_integer()) {
    n = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    size_t i = s.starts_with("-") ? 1 : 0;
    if (s.size() > i && s.size() <= 10 &&
        std::all_of(s.begin() + static_cast<std::ptrdiff_t>(i), s.end(),
                    [](unsigned char c) { return std::isdigit(c); })) {
      n = std::stoll(s);
    }
  }
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  if (!n) return invalid("port", "'" + text + "' is not an integer");
  if (*n < 1) return invalid("port", "'" + text + "' is too small - must be at least '1'");
  if (*n > 65535) {
    return invalid("port", "'" + text + "' is too large - must be no more than '65535'");
  }
  return static_cast<int>(*n);
}

// The body's conntrack_helper, checked; `base` holds the values it leaves
// out (an update's current ones; on create all three are required).
Result<Json> checkedHelper(const HttpRequest& req, const Json& base, bool create) {
  auto body = model::parseJson(req.body);
  if (!body) return model::badRequest(body.error().message());
  const Json& given = model::memberAt(*body, "conntrack_helper");
  if (!given.is_object()) return model::badRequest("Resource body required");
  Json out = base;
  for (auto it = given.begin(); it != given.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "protocol") {
      auto p = protocolOf(v);
      if (!p) return std::move(p).error();
      out["protocol"] = *p;
    } else if (key == "port") {
      auto p = portOf(v);
      if (!p) return std::move(p).error();
      out["port"] = *p;
    } else if (key == "helper") {
      if (!v.is_string()) return invalid("helper", "'" + v.dump() + "' is not a valid string");
      if (v.get_ref<const std::string&>().size() > 64) {
        return invalid("helper", "'" + v.get<std::string>() + "' exceeds maximum length of 64");
      }
      out["helper"] = v;
    } else if (auto other = detail::checkOtherAttribute(key, v, create, {}); !other) {
      return std::move(other).error();
    }
  }
  for (const char* required : {"protocol", "port", "helper"}) {
    if (!out.contains(required)) {
      return model::badRequest("Failed to parse request. Required attribute '" +
                               std::string(required) + "' not specified");
    }
  }
  // ConntrackHelperNotAllowed / InvalidProtocolForHelper, as Neutron checks
  // them against its allowed_conntrack_helpers.
  std::string helper = out["helper"], protocol = out["protocol"];
  std::vector<std::string> protocols;
  for (auto a : kAllowed) {
    if (a.helper == helper) protocols.emplace_back(a.protocol);
  }
  if (protocols.empty()) {
    return Error(Errc::InvalidArgument, "Conntrack Helper " + helper + " is not allowed.",
                 "ConntrackHelperNotAllowed");
  }
  if (std::find(protocols.begin(), protocols.end(), protocol) == protocols.end()) {
    std::string supported;
    for (const auto& p : protocols) supported += (supported.empty() ? "" : ", ") + p;
    return Error(Errc::InvalidArgument,
                 "Conntrack Helper " + helper + " does not support: " + protocol +
                     ". Supported protocols are: " + supported,
                 "InvalidProtocolForHelper");
  }
  return out;
}

Error helperNotFound(const std::string& id) {
  return Error(Errc::NotFound, "Conntrack Helper " + id + " could not be found.",
               "ConntrackHelperNotFound");
}

// Two helpers of a router may not share protocol and port (Neutron's
// unique constraint): BadRequest naming the values.
Result<void> checkUnique(const Json& helpers, const Json& wanted, const std::string& router) {
  for (const auto& h : helpers) {
    if (h.value("id", "") == wanted.value("id", "")) continue;
    if (h.value("protocol", "") == wanted.value("protocol", "") &&
        h.value("port", 0) == wanted.value("port", 0)) {
      // The plugin's BadRequest, as Neutron names it.
      return Error(Errc::InvalidArgument,
                   "A duplicate conntrack helper entry with same attributes already exists, "
                   "conflicting values are {'router_id': '" +
                       router + "', 'protocol': '" + h.value("protocol", "") +
                       "', 'port': " + std::to_string(h.value("port", 0)) + ", 'helper': '" +
                       h.value("helper", "") + "'}",
                   "BadRequest");
    }
  }
  return ok();
}

Json helperView(const Json& h, const HttpRequest& req) {
  return detail::selectFields({{"id", h.value("id", "")},
                               {"protocol", h.value("protocol", "")},
                               {"port", h.value("port", 0)},
                               {"helper", h.value("helper", "")}},
                              req);
}

bool matchesFilters(const Json& h, const HttpRequest& req) {
  for (const auto& [k, v] : req.query) {
    if (k == "id" || k == "protocol" || k == "helper") {
      if (h.value(k, "") != v) return false;
    } else if (k == "port") {
      if (std::to_string(h.value("port", 0)) != v) return false;
    }
  }
  return true;
}

}  // namespace

namespace detail {

Json routerHelpersView(const Json& router) {
  Json out = Json::array();
  for (const auto& h : router.value("conntrack_helpers", Json::array())) {
    out.push_back({{"protocol", h.value("protocol", "")},
                   {"port", h.value("port", 0)},
                   {"helper", h.value("helper", "")}});
  }
  return out;
}

HttpResponse serveConntrackHelpers(const ApiWriter& w, const ResourceKind& routers,
                                   const std::vector<std::string>& parts, const HttpRequest& req,
                                   const Caller& caller) {
  const std::string& router_id = parts[2];
  const std::string* helper_id = parts.size() == 5 ? &parts[4] : nullptr;
  auto routerNotFound = [&] { return errorResponse(notFound(routers.spec(), router_id)); };
  if (req.method == "GET") {
    // The router's owner (or an admin) sees its helpers.
    std::optional<Json> out = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
      const state::Document* r = t.find("routers", router_id);
      if (r == nullptr || !routers.visible(r->doc, caller, t) || !canChange(r->doc, caller)) {
        return std::nullopt;
      }
      Json list = Json::array();
      for (const auto& h : r->doc.value("conntrack_helpers", Json::array())) {
        if (helper_id != nullptr) {
          if (h.value("id", "") == *helper_id)
            return Json{{"conntrack_helper", helperView(h, req)}};
        } else if (matchesFilters(h, req)) {
          list.push_back(helperView(h, req));
        }
      }
      if (helper_id != nullptr) return Json();
      return Json{{"conntrack_helpers", std::move(list)}};
    });
    if (!out) return routerNotFound();
    if (out->is_null()) return errorResponse(helperNotFound(*helper_id));
    return json(200, *out);
  }
  const bool create = helper_id == nullptr && req.method == "POST";
  const bool change = helper_id != nullptr && req.method == "PUT";
  const bool remove = helper_id != nullptr && req.method == "DELETE";
  if (!create && !change && !remove) return methodNotAllowed();
  Json result;
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    auto router = target(routers, router_id, ctx, req, "update");
    if (!router) return std::move(router).error();
    Json doc = (*router)->doc;
    Json helpers = doc.value("conntrack_helpers", Json::array());
    auto at = helpers.end();
    if (helper_id != nullptr) {
      at = std::find_if(helpers.begin(), helpers.end(),
                        [&](const Json& h) { return h.value("id", "") == *helper_id; });
      if (at == helpers.end()) return helperNotFound(*helper_id);
    }
    if (remove) {
      helpers.erase(at);
    } else {
      Json base = change ? *at : Json::object();
      auto wanted = checkedHelper(req, base, create);
      if (!wanted) return std::move(wanted).error();
      if (create) (*wanted)["id"] = newUuid();
      if (auto u = checkUnique(helpers, *wanted, router_id); !u) return u;
      if (create) {
        helpers.push_back(*wanted);
      } else {
        *at = *wanted;
      }
      result = *wanted;
    }
    doc["conntrack_helpers"] = std::move(helpers);
    putParent(ctx, "routers", router_id, std::move(doc), (*router)->mod_revision);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (remove) return noContent();
  HttpRequest plain;  // the answer to a write shows every field
  return json(create ? 201 : 200, {{"conntrack_helper", helperView(result, plain)}});
}

}  // namespace detail
}  // namespace canopy::api
