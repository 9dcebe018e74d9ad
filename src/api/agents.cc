// /v2.0/agents: agents register over the southbound; an admin may add a
// static VTEP (a host without a canopy-agent).

#include "api/detail/endpoint.h"
#include "model/ip.h"

namespace canopy::api::detail {

// Agents: /v2.0/agents[/<host>], admin only, in Neutron's shape. Agents
// register themselves over the southbound; POST registers a static VTEP
// (a host without a canopy-agent, such as a hardware or Linux kernel VXLAN
// endpoint: {"agent": {"host": ..., "configurations": {"tunnel_ip": ...,
// "encapsulations": ["vxlan"]}}}), which only DELETE removes.
HttpResponse serveAgents(const ApiWriter& w, const std::vector<std::string>& parts,
                         const HttpRequest& req, const Caller& caller) {
  if (!caller.is_admin) {
    return errorResponse(
        Error(Errc::PermissionDenied, "User does not have admin privileges", "AdminRequired"));
  }
  auto view = [](const Json& d) {
    bool is_static = d.value("static", false);
    return Json{{"id", d.value("id", "")},
                {"host", d.value("host", "")},
                {"agent_type", is_static ? "Static VTEP" : "Canopy agent"},
                {"binary", is_static ? "" : "canopy-agent"},
                {"topic", "N/A"},
                {"alive", d.value("alive", false)},
                {"admin_state_up", true},
                {"availability_zone", nullptr},
                {"description", ""},
                {"configurations",
                 {{"tunnel_ip", d.value("tunnel_ip", "")},
                  {"encapsulations", d.value("encapsulations", Json::array())},
                  {"gateway_capable", d.value("gateway_capable", false)},
                  {"physical_networks", d.value("physical_networks", Json::array())},
                  {"version", d.value("version", "")}}}};
  };
  auto notFound = [](const std::string& id) {
    return errorResponse(
        Error(Errc::NotFound, "Agent " + id + " could not be found.", "AgentNotFound"));
  };
  auto find = [&](const std::string& id) -> std::optional<Json> {
    return w.state.read([&](const state::Tables& t) -> std::optional<Json> {
      const state::Document* d = t.find("agents", id);
      if (d == nullptr) return std::nullopt;
      return d->doc;
    });
  };
  if (parts.size() == 2 && req.method == "GET") {
    Json list = Json::array();
    w.state.read([&](const state::Tables& t) {
      for (const auto& [id, d] : t.collection("agents")) list.push_back(view(d.doc));
      return 0;
    });
    return json(200, {{"agents", std::move(list)}});
  }
  if (parts.size() == 2 && req.method == "POST") {
    auto body = model::parseJson(req.body);
    if (!body)
      return errorResponse(Error(Errc::InvalidArgument, body.error().message(), "BadRequest"));
    const Json& a = (*body).value("agent", Json());
    std::string host = a.is_object() ? model::stringAt(a, "host") : "";
    const Json& conf = a.is_object() ? a.value("configurations", Json()) : Json();
    std::string tunnel = conf.is_object() ? model::stringAt(conf, "tunnel_ip") : "";
    if (host.empty() || host.size() > 255 || !model::IpAddress::parse(tunnel)) {
      return errorResponse(Error(Errc::InvalidArgument,
                                 "a static VTEP needs agent.host and a valid "
                                 "agent.configurations.tunnel_ip",
                                 "BadRequest"));
    }
    Json encaps = conf.value("encapsulations", Json::array({"vxlan"}));
    if (!encaps.is_array()) encaps = Json::array({"vxlan"});
    Json doc = {{"id", host},    {"host", host},  {"tunnel_ip", tunnel}, {"encapsulations", encaps},
                {"alive", true}, {"static", true}};
    auto r = w.write(caller, [&](Transaction& txn) -> Result<void> {
      const state::Document* existing = txn.find("agents", host);
      if (existing != nullptr && !existing->doc.value("static", false)) {
        return Error(Errc::Conflict, "Host " + host + " has a canopy-agent; it registers itself",
                     "AgentConflict");
      }
      txn.update("agents", host, doc);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    return json(201, {{"agent", view(doc)}});
  }
  if (parts.size() != 3) return methodNotAllowed();
  const std::string& id = parts[2];
  auto doc = find(id);
  if (!doc) return notFound(id);
  if (req.method == "GET") return json(200, {{"agent", view(*doc)}});
  if (req.method == "DELETE") {
    auto r = w.write(caller, [&](Transaction& txn) -> Result<void> {
      const state::Document* d = txn.find("agents", id);
      if (d == nullptr) {
        return Error(Errc::NotFound, "Agent " + id + " could not be found.", "AgentNotFound");
      }
      if (d->doc.value("alive", false) && !d->doc.value("static", false)) {
        return Error(Errc::Conflict, "Agent " + id + " is alive; stop it first", "AgentInUse");
      }
      txn.erase("agents", id);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    HttpResponse out;
    out.status = 204;
    return out;
  }
  return methodNotAllowed();
}

}  // namespace canopy::api::detail
