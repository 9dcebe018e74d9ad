// /v2.0/agents: agents register over the southbound; an admin may add a
// static VTEP (a host without a canopy-agent), describe an agent and set it
// administratively down (it then keeps its gateways but is given no new
// ones). DHCP is answered by the agent of each port's host: the agents
// serving a network's DHCP are those with its ports bound.

#include <set>

#include "api/detail/endpoint.h"
#include "base/ip.h"
#include "model/agent.h"

namespace canopy::api::detail {

namespace {

// An agent in Neutron's shape.
Json view(const Json& d) {
  model::Agent a = model::Agent::fromJson(d);
  return Json{{"id", a.host},
              {"host", a.host},
              {"agent_type", a.is_static ? "Static VTEP" : "Canopy agent"},
              {"binary", a.is_static ? "" : "canopy-agent"},
              {"topic", "N/A"},
              {"alive", a.alive},
              {"admin_state_up", a.admin_state_up},
              {"availability_zone", a.availability_zone},
              {"description", a.description},
              {"configurations",
               {{"tunnel_ip", a.tunnel_ip},
                {"encapsulations", a.encapsulations},
                {"gateway_capable", a.gateway_capable},
                {"physical_networks", a.physical_networks},
                {"fast_path", a.fast_path},
                {"version", a.version}}}};
}

bool agentAttribute(const std::string& name) {
  for (const char* a :
       {"id", "host", "agent_type", "binary", "topic", "alive", "availability_zone",
        "configurations", "heartbeat_timestamp", "created_at", "started_at", "resources_synced"}) {
    if (name == a) return true;
  }
  return false;
}

// A PUT's body: {"agent": {...}} with only what an admin may change.
Result<Json> agentChanges(const std::string& body) {
  auto parsed = model::parseJson(body);
  if (!parsed) return Error(Errc::InvalidArgument, parsed.error().message(), "HTTPBadRequest");
  const Json& agent = model::memberAt(*parsed, "agent");
  if (!agent.is_object()) {
    return model::badRequest("Resource body required");
  }
  Json changes = Json::object();
  for (auto it = agent.begin(); it != agent.end(); ++it) {
    if (it.key() == "description") {
      if (!it->is_string() || it->get_ref<const std::string&>().size() > 255) {
        return model::badRequest("Invalid input for description. Reason: '" + it->dump() +
                                 "' is not a valid string (at most 255 characters).");
      }
    } else if (it.key() == "admin_state_up") {
      if (!it->is_boolean()) {
        return model::badRequest("Invalid input for admin_state_up. Reason: '" + it->dump() +
                                 "' cannot be converted to boolean.");
      }
    } else if (agentAttribute(it.key())) {
      return model::badRequest("Cannot update read-only attribute " + it.key());
    } else {
      return model::badRequest("Unrecognized attribute(s) '" + it.key() + "'");
    }
    changes[it.key()] = *it;
  }
  return changes;
}

}  // namespace

// Agents: /v2.0/agents[/<host>], admin only, in Neutron's shape. Agents
// register themselves over the southbound; POST registers a static VTEP
// (a host without a canopy-agent, such as a hardware or Linux kernel VXLAN
// endpoint: {"agent": {"host": ..., "configurations": {"tunnel_ip": ...,
// "encapsulations": ["vxlan"]}}}), which only DELETE removes.
HttpResponse serveAgents(const ApiWriter& w, const std::vector<std::string>& parts,
                         const HttpRequest& req, const Caller& caller) {
  if (!caller.is_admin) {
    // As Neutron's policy: agents are the admin's; a list shows a member
    // none of them, a GET of one finds nothing, anything else is refused.
    if (req.method == "GET" && parts.size() == 2) return json(200, {{"agents", Json::array()}});
    if (req.method == "GET" && parts.size() == 3) {
      return errorResponse(
          Error(Errc::NotFound, "Agent " + parts[2] + " could not be found.", "AgentNotFound"));
    }
    return errorResponse(
        Error(Errc::PermissionDenied, "User does not have admin privileges", "AdminRequired"));
  }

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
    if (host.empty() || host.size() > 255 || !IpAddress::parse(tunnel)) {
      return errorResponse(Error(Errc::InvalidArgument,
                                 "a static VTEP needs agent.host and a valid "
                                 "agent.configurations.tunnel_ip",
                                 "BadRequest"));
    }
    model::Agent vtep{.host = host, .tunnel_ip = tunnel, .alive = true, .is_static = true};
    for (const auto& e : conf.value("encapsulations", Json::array({"vxlan"}))) {
      if (e != "vxlan" && e != "geneve") {
        return errorResponse(Error(Errc::InvalidArgument,
                                   "agent.configurations.encapsulations takes \"vxlan\" and "
                                   "\"geneve\"",
                                   "BadRequest"));
      }
      vtep.encapsulations.push_back(e.get<std::string>());
    }
    if (vtep.encapsulations.empty()) vtep.encapsulations = {"vxlan"};
    Json doc = vtep.toJson();
    auto r = w.write(caller, [&](Transaction& txn) -> Result<void> {
      const state::Document* existing = txn.find("agents", host);
      if (existing != nullptr && !model::Agent::fromJson(existing->doc).is_static) {
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
  if (req.method == "PUT") {
    auto changes = agentChanges(req.body);
    if (!changes) return errorResponse(changes.error());
    Json updated;
    auto r = w.write(caller, [&](Transaction& txn) -> Result<void> {
      const state::Document* d = txn.find("agents", id);
      if (d == nullptr) {
        return Error(Errc::NotFound, "Agent " + id + " could not be found.", "AgentNotFound");
      }
      model::Agent a = model::Agent::fromJson(d->doc);
      if (auto it = changes->find("description"); it != changes->end()) a.description = *it;
      if (auto it = changes->find("admin_state_up"); it != changes->end()) a.admin_state_up = *it;
      updated = a.toJson();
      txn.guard("agents", id, d->mod_revision);
      txn.put("agents", id, updated);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    return json(200, {{"agent", view(updated)}});
  }
  if (req.method == "DELETE") {
    auto r = w.write(caller, [&](Transaction& txn) -> Result<void> {
      const state::Document* d = txn.find("agents", id);
      if (d == nullptr) {
        return Error(Errc::NotFound, "Agent " + id + " could not be found.", "AgentNotFound");
      }
      model::Agent a = model::Agent::fromJson(d->doc);
      if (a.alive && !a.is_static) {
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

HttpResponse serveNetworkDhcpAgents(const ApiWriter& w, const std::string& network,
                                    const HttpRequest& req, const Caller& caller) {
  if (req.method != "GET") return methodNotAllowed();
  if (!caller.is_admin) {
    return errorResponse(model::policyRefused("(rule:get_dhcp-agents) is disallowed by policy"));
  }
  std::optional<Json> agents = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
    if (t.find("networks", network) == nullptr) return std::nullopt;
    std::set<std::string> hosts;
    for (const auto& port_id : t.lookup("ports.network", network)) {
      const state::Document* p = t.find("ports", port_id);
      if (p == nullptr) continue;
      std::string host = model::stringAt(p->doc, "binding:host_id");
      if (!host.empty()) hosts.insert(std::move(host));
    }
    Json list = Json::array();
    for (const auto& host : hosts) {
      if (const state::Document* a = t.find("agents", host)) list.push_back(view(a->doc));
    }
    return list;
  });
  if (!agents) {
    return errorResponse(
        Error(Errc::NotFound, "Network " + network + " could not be found.", "NetworkNotFound"));
  }
  return json(200, {{"agents", std::move(*agents)}});
}

}  // namespace canopy::api::detail
