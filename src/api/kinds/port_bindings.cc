// Port bindings (Neutron's binding-extended): a compute port's active
// binding is its binding:host_id (with its vnic type, profile, vif type
// and details); /v2.0/ports/<id>/bindings also holds inactive bindings,
// made on a live migration's target host before the move and activated
// when the guest runs there (the old active binding then turns inactive,
// and Nova deletes it). The port is DOWN after an activation until the new
// host's agent forwards for it. Inactive bindings live in the port's
// document ("inactive_bindings", not shown with the port). Admin only, as
// Neutron's policy.

#include <algorithm>

#include "api/detail/bindings.h"
#include "api/detail/endpoint.h"
#include "model/agent.h"
#include "model/port.h"

namespace canopy::api {
namespace detail {

VifBinding bindingFor(const std::string& port_id, const std::string& host,
                      const std::string& vnic_type, const Transaction& ctx) {
  if (host.empty()) return {"unbound", Json::object()};
  const state::Document* agent = ctx.find("agents", host);
  if (vnic_type != "normal" || agent == nullptr || model::Agent::fromJson(agent->doc).is_static) {
    return {"binding_failed", Json::object()};
  }
  return {model::kVifType, model::vifDetails(port_id)};
}

namespace {

constexpr const char* kInactive = "inactive_bindings";

Json activeBinding(const Json& port) {
  return {{"host", port.value("binding:host_id", "")},
          {"vnic_type", port.value("binding:vnic_type", "normal")},
          {"profile", port.value("binding:profile", Json::object())},
          {"vif_type", port.value("binding:vif_type", "unbound")},
          {"vif_details", port.value("binding:vif_details", Json::object())},
          {"status", "ACTIVE"}};
}

std::vector<Json> bindingsOf(const Json& port) {
  std::vector<Json> out;
  if (!port.value("binding:host_id", "").empty()) out.push_back(activeBinding(port));
  for (const auto& b : port.value(kInactive, Json::array())) out.push_back(b);
  return out;
}

Error bindingNotFound(const std::string& port, const std::string& host) {
  return Error(Errc::NotFound,
               "Binding for port " + port + " for host " + host + " could not be found.",
               "PortBindingNotFound");
}

// The request's binding: host (on create), vnic_type, profile.
Result<Json> bindingRequest(const HttpRequest& req, bool create) {
  auto body = model::parseJson(req.body);
  if (!body) return model::badRequest(body.error().message());
  const Json& b = model::memberAt(*body, "binding");
  if (!b.is_object()) return model::badRequest("Resource body required");
  Json out = Json::object();
  for (auto it = b.begin(); it != b.end(); ++it) {
    const std::string& key = it.key();
    const Json& v = it.value();
    if (key == "host" && create) {
      if (!v.is_string() || v.get_ref<const std::string&>().empty() ||
          v.get_ref<const std::string&>().size() > 255) {
        return model::invalidInput("host", "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                                               "' is not a valid host name");
      }
    } else if (key == "vnic_type") {
      static const char* const kTypes[] = {"normal",
                                           "direct",
                                           "macvtap",
                                           "baremetal",
                                           "direct-physical",
                                           "virtio-forwarder",
                                           "smart-nic",
                                           "vdpa",
                                           "accelerator-direct",
                                           "accelerator-direct-physical",
                                           "remote-managed"};
      if (!v.is_string() ||
          std::find(std::begin(kTypes), std::end(kTypes), v) == std::end(kTypes)) {
        return model::invalidInput("vnic_type",
                                   "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                                       "' is not in the list of valid vnic types");
      }
    } else if (key == "profile") {
      if (!v.is_object())
        return model::invalidInput("profile", "'" + v.dump() + "' is not a dictionary");
    } else {
      return model::badRequest("Unrecognized attribute(s) '" + key + "'");
    }
    out[key] = v;
  }
  if (create && !out.contains("host")) {
    return model::badRequest("Failed to parse request. Required attribute 'host' not specified");
  }
  return out;
}

}  // namespace

HttpResponse servePortBindings(const ApiWriter& w, const ResourceKind& ports,
                               const std::vector<std::string>& parts, const HttpRequest& req,
                               const Caller& caller) {
  const std::string& port_id = parts[2];
  const std::string* host = parts.size() >= 5 ? &parts[4] : nullptr;
  const bool activate = parts.size() == 6 && parts[5] == "activate";
  if (parts.size() == 6 && !activate) return unknownPath(req);
  auto refused = [&] {
    return errorResponse(
        model::policyRefused("(rule:" + std::string(req.method == "GET" ? "get" : "update") +
                             "_port_binding) is disallowed by policy"));
  };
  if (!caller.is_admin) {
    // Others see no such port, or are refused if they may see it.
    bool visible = w.state.read([&](const state::Tables& t) {
      const state::Document* d = t.find("ports", port_id);
      return d != nullptr && ports.visible(d->doc, caller, t);
    });
    return visible ? refused() : errorResponse(notFound(ports.spec(), port_id));
  }
  auto compute = [&](const Json& port) -> Result<void> {
    if (port.value("device_owner", "").starts_with("compute:")) return ok();
    return Error(Errc::InvalidArgument,
                 "Invalid port " + port_id + ". Operation only valid on compute ports",
                 "BadRequest");
  };
  if (req.method == "GET" && !activate) {
    std::optional<Result<Json>> out =
        w.state.read([&](const state::Tables& t) -> std::optional<Result<Json>> {
          const state::Document* d = t.find("ports", port_id);
          if (d == nullptr) return std::nullopt;
          if (auto c = compute(d->doc); !c) return Result<Json>(std::move(c).error());
          auto all = bindingsOf(d->doc);
          if (host == nullptr) {
            Json list = Json::array();
            for (auto& b : all) {
              bool keep = true;
              for (const auto& [k, v] : req.query) {
                if ((k == "host" || k == "status" || k == "vnic_type" || k == "vif_type") &&
                    b.value(k, "") != v) {
                  keep = false;
                }
              }
              if (keep) list.push_back(std::move(b));
            }
            return Result<Json>(Json{{"bindings", std::move(list)}});
          }
          for (auto& b : all) {
            if (b.value("host", "") == *host) return Result<Json>(Json{{"binding", std::move(b)}});
          }
          return Result<Json>(bindingNotFound(port_id, *host));
        });
    if (!out) return errorResponse(notFound(ports.spec(), port_id));
    if (!*out) return errorResponse(out->error());
    return json(200, **out);
  }
  const bool create = host == nullptr && req.method == "POST";
  const bool change = host != nullptr && !activate && req.method == "PUT";
  const bool remove = host != nullptr && !activate && req.method == "DELETE";
  if (!create && !change && !remove && !(activate && req.method == "PUT")) {
    return methodNotAllowed();
  }
  Json request = Json::object();
  if (create || change) {
    auto r = bindingRequest(req, create);
    if (!r) return errorResponse(r.error());
    request = std::move(*r);
  }
  Json result;
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    auto target_port = target(ports, port_id, ctx, req, "update");
    if (!target_port) return std::move(target_port).error();
    Json doc = (*target_port)->doc;
    if (auto c = compute(doc); !c) return c;
    Json inactive = doc.value(kInactive, Json::array());
    std::string active_host = doc.value("binding:host_id", "");
    auto find = [&](const std::string& h) {
      return std::find_if(inactive.begin(), inactive.end(),
                          [&](const Json& b) { return b.value("host", "") == h; });
    };
    auto setActive = [&](const std::string& h, const std::string& vnic, const Json& profile) {
      doc["binding:host_id"] = h;
      doc["binding:vnic_type"] = vnic;
      doc["binding:profile"] = profile;
      auto vif = bindingFor(port_id, h, vnic, ctx);
      doc["binding:vif_type"] = vif.vif_type;
      doc["binding:vif_details"] = vif.vif_details;
      doc["status"] = "DOWN";  // until the host's agent forwards for it
    };
    if (create) {
      std::string h = request["host"];
      if (h == active_host || find(h) != inactive.end()) {
        return Error(Errc::Conflict,
                     "Binding for port " + port_id + " on host " + h + " already exists.",
                     "PortBindingAlreadyExists");
      }
      std::string vnic = request.value("vnic_type", "normal");
      Json profile = request.value("profile", Json::object());
      auto vif = bindingFor(port_id, h, vnic, ctx);
      if (vif.vif_type == "binding_failed") {
        return Error(
            Errc::InvalidArgument,
            "Binding for port " + port_id + " on host " + h + " could not be created or updated.",
            "PortBindingError");
      }
      if (active_host.empty()) {
        setActive(h, vnic, profile);
        result = activeBinding(doc);
      } else {
        result = {{"host", h},
                  {"vnic_type", vnic},
                  {"profile", profile},
                  {"vif_type", vif.vif_type},
                  {"vif_details", vif.vif_details},
                  {"status", "INACTIVE"}};
        inactive.push_back(result);
      }
    } else if (change) {
      if (*host == active_host) {
        setActive(*host, request.value("vnic_type", doc.value("binding:vnic_type", "normal")),
                  request.value("profile", doc.value("binding:profile", Json::object())));
        result = activeBinding(doc);
      } else {
        auto it = find(*host);
        if (it == inactive.end()) return bindingNotFound(port_id, *host);
        std::string vnic = request.value("vnic_type", it->value("vnic_type", "normal"));
        auto vif = bindingFor(port_id, *host, vnic, ctx);
        (*it)["vnic_type"] = vnic;
        (*it)["profile"] = request.value("profile", it->value("profile", Json::object()));
        (*it)["vif_type"] = vif.vif_type;
        (*it)["vif_details"] = vif.vif_details;
        result = *it;
      }
    } else if (activate) {
      if (*host == active_host) {
        return Error(Errc::Conflict,
                     "Binding for port " + port_id + " on host " + *host + " is already active.",
                     "PortBindingAlreadyActive");
      }
      auto it = find(*host);
      if (it == inactive.end()) return bindingNotFound(port_id, *host);
      Json next = *it;
      inactive.erase(it);
      if (!active_host.empty()) {
        Json old = activeBinding(doc);
        old["status"] = "INACTIVE";
        inactive.push_back(std::move(old));
      }
      setActive(*host, next.value("vnic_type", "normal"), next.value("profile", Json::object()));
      result = activeBinding(doc);
    } else {  // remove
      if (*host == active_host) {
        setActive("", doc.value("binding:vnic_type", "normal"), Json::object());
      } else {
        auto it = find(*host);
        if (it == inactive.end()) return bindingNotFound(port_id, *host);
        inactive.erase(it);
      }
    }
    doc[kInactive] = std::move(inactive);
    doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
    doc["updated_at"] = ctx.now();
    ctx.guard("ports", port_id, (*target_port)->mod_revision);
    ctx.put("ports", port_id, doc);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (remove) {
    HttpResponse out;
    out.status = 204;
    return out;
  }
  return json(create ? 201 : 200, {{"binding", std::move(result)}});
}

}  // namespace detail
}  // namespace canopy::api
