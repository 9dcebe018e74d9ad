// /v2.0/quotas: per-project limits, defaults and usage.

#include "api/detail/endpoint.h"
#include "model/quota.h"

namespace canopy::api::detail {

// Quotas: /v2.0/quotas[/<project>[/default|/details]].
HttpResponse serveQuotas(const ApiWriter& w, const std::vector<std::string>& parts,
                         const HttpRequest& req, const Caller& caller) {
  auto adminOnly = [] {
    return errorResponse(
        Error(Errc::PermissionDenied, "User does not have admin privileges", "AdminRequired"));
  };
  auto limitsOf = [&](const std::string& project) {
    return w.state.read([&](const state::Tables& tables) {
      const state::Document* d = tables.find("quotas", project);
      return model::quotaLimits(d != nullptr ? &d->doc : nullptr);
    });
  };
  if (parts.size() == 2) {
    if (req.method != "GET") return methodNotAllowed();
    if (!caller.is_admin) return adminOnly();
    Json list = Json::array();
    w.state.read([&](const state::Tables& tables) {
      for (auto& [project, d] : tables.collection("quotas")) {
        Json q = model::quotaLimits(&d.doc);
        q["project_id"] = project;
        q["tenant_id"] = project;
        list.push_back(std::move(q));
      }
      return 0;
    });
    return json(200, {{"quotas", std::move(list)}});
  }
  const std::string& project = parts[2];
  if (!caller.is_admin && project != caller.project_id) {
    return errorResponse(Error(Errc::PermissionDenied, "Not authorized.", "NotAuthorized"));
  }
  if (parts.size() == 4) {
    if (req.method != "GET") return methodNotAllowed();
    if (parts[3] == "default") return json(200, {{"quota", model::quotaLimits(nullptr)}});
    if (parts[3] != "details") return unknownPath(req);
    Json limits = limitsOf(project);
    Json details = Json::object();
    w.state.read([&](const state::Tables& tables) {
      for (const auto& r : model::quotaResources()) {
        auto used = static_cast<int64_t>(tables.lookup(r.collection + ".project", project).size());
        details[r.name] = {{"limit", limits[r.name]}, {"used", used}, {"reserved", 0}};
      }
      return 0;
    });
    return json(200, {{"quota", std::move(details)}});
  }
  if (req.method == "GET") return json(200, {{"quota", limitsOf(project)}});
  if (req.method != "PUT" && req.method != "DELETE") return methodNotAllowed();
  if (!caller.is_admin) return adminOnly();
  Json given;
  if (req.method == "PUT") {
    auto body = model::parseJson(req.body);
    if (!body) return errorResponse(body.error());
    auto checked = model::checkQuotaUpdate(*body);
    if (!checked) return errorResponse(checked.error());
    given = std::move(*checked);
  }
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    const state::Document* stored = ctx.find("quotas", project);
    if (stored != nullptr) ctx.guard("quotas", project, stored->mod_revision);
    if (req.method == "DELETE") {
      if (stored != nullptr) ctx.remove("quotas", project);
      return ok();
    }
    if (stored == nullptr) ctx.guardAbsent("quotas", project);
    Json doc = stored != nullptr ? stored->doc : Json::object();
    doc.update(given);
    ctx.put("quotas", project, doc);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (req.method == "DELETE") {
    HttpResponse out;
    out.status = 204;
    return out;
  }
  return json(200, {{"quota", limitsOf(project)}});
}

}  // namespace canopy::api::detail
