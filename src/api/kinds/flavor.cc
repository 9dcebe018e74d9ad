// Flavors and service profiles (Neutron's flavors): the operator's catalog
// of service offerings. A flavor names a service type Canopy serves
// (L3_ROUTER_NAT, or FLAVORS itself) and the service profiles behind it; a
// profile names a driver of Canopy's (the service providers' names,
// kinds/service_provider.cc) or carries only metainfo. Canopy has one
// implementation of each service, so no resource takes a flavor yet
// (l3-flavors is not advertised): the catalog is what is served.

#include <algorithm>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api {
namespace {

using model::AttrType;

constexpr Extension kFlavorExtensions[] = {
    {"flavors", "Neutron Service Flavors", "Flavor specification for Neutron advanced services."},
};

// The service types a flavor may be for, and the drivers a profile may
// name: those Canopy serves.
constexpr std::string_view kServiceTypes[] = {"FLAVORS", "L3_ROUTER_NAT"};
constexpr std::string_view kDrivers[] = {"canopy"};

std::optional<std::string> checkUuidList(const Json& v) {
  if (!v.is_array()) return "'" + v.dump() + "' is not a list";
  for (const Json& id : v) {
    if (!id.is_string() || !model::isUuid(id.get<std::string>())) {
      return "'" + (id.is_string() ? id.get<std::string>() : id.dump()) + "' is not a valid UUID";
    }
  }
  return std::nullopt;
}

void addOwner(std::vector<model::AttrSpec>& a) {
  a.push_back(
      {.name = "project_id", .allow_post = true, .visible = false, .default_value = Json("")});
  a.push_back(
      {.name = "tenant_id", .allow_post = true, .visible = false, .default_value = Json("")});
}

const model::ResourceSpec& flavorSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "flavors", .member = "flavor", .type_name = "Flavor"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "name", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back(
        {.name = "description", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back({.name = "service_type", .allow_post = true});
    a.push_back({.name = "service_profiles",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json::array(),
                 .check = checkUuidList});
    a.push_back({.name = "enabled",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    addOwner(a);
    return s;
  }();
  return spec;
}

const model::ResourceSpec& serviceProfileSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "service_profiles",
                          .member = "service_profile",
                          .type_name = "ServiceProfile"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "description",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .max_len = 1024});
    a.push_back({.name = "driver",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .max_len = 1024});
    a.push_back({.name = "metainfo",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(""),
                 .max_len = 4096});
    a.push_back({.name = "enabled",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    addOwner(a);
    return s;
  }();
  return spec;
}

Error profileNotFound(const std::string& id) {
  return Error(Errc::NotFound, "Service Profile " + id + " could not be found.",
               "ServiceProfileNotFound");
}

// The profiles a flavor lists exist (an admin's catalog: no other check).
Result<void> checkProfiles(const Json& flavor, const Transaction& ctx) {
  for (const Json& id : flavor.value("service_profiles", Json::array())) {
    if (ctx.find("service_profiles", id.get<std::string>()) == nullptr) {
      return profileNotFound(id.get<std::string>());
    }
  }
  return ok();
}

class FlavorKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return flavorSpec(); }
  std::span<const Extension> extensions() const override { return kFlavorExtensions; }

  // Everyone reads the catalog; only admins change it.
  bool visible(const Json&, const Caller&, const state::Tables&) const override { return true; }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Refused;
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_flavor) is disallowed by policy");
    }
    std::string type = doc.value("service_type", "");
    if (std::find(std::begin(kServiceTypes), std::end(kServiceTypes), type) ==
        std::end(kServiceTypes)) {
      return Error(Errc::InvalidArgument, "Invalid service type " + type + ".",
                   "InvalidFlavorServiceType");
    }
    return checkProfiles(doc, ctx);
  }

  Result<void> update(Json& doc, const Json&, Transaction& ctx) const override {
    return checkProfiles(doc, ctx);
  }
};

class ServiceProfileKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return serviceProfileSpec(); }

  // Admin only, as Neutron's policy.
  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_service_profile) is disallowed by policy");
    }
    if (doc.value("driver", "").empty() && doc.value("metainfo", "").empty()) {
      return Error(Errc::InvalidArgument, "Service Profile needs either a driver or metainfo.",
                   "ServiceProfileEmpty");
    }
    return checkDriver(doc);
  }

  Result<void> update(Json& doc, const Json&, Transaction&) const override {
    return checkDriver(doc);
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    for (const auto& [fid, f] : ctx.tables().collection("flavors")) {
      for (const Json& p : f.doc.value("service_profiles", Json::array())) {
        if (p == id) {
          return Error(Errc::Conflict,
                       "Service Profile " + id + " is used by some service instance.",
                       "ServiceProfileInUse");
        }
      }
    }
    return ok();
  }

 private:
  static Result<void> checkDriver(const Json& doc) {
    std::string driver = doc.value("driver", "");
    if (driver.empty() ||
        std::find(std::begin(kDrivers), std::end(kDrivers), driver) != std::end(kDrivers)) {
      return ok();
    }
    return Error(Errc::NotFound, "Service Profile driver " + driver + " could not be found.",
                 "ServiceProfileDriverNotFound");
  }
};

}  // namespace

namespace detail {

HttpResponse serveFlavorProfiles(const ApiWriter& w, const ResourceKind& flavors,
                                 const std::vector<std::string>& parts, const HttpRequest& req,
                                 const Caller& caller) {
  const std::string& flavor = parts[2];
  if (!caller.is_admin) {
    return errorResponse(
        model::policyRefused("(rule:create_flavor_service_profile) is disallowed by policy"));
  }
  if (parts.size() == 4 && req.method == "POST") {
    auto body = model::parseJson(req.body);
    if (!body) return errorResponse(model::badRequest(body.error().message()));
    const Json& profile = model::memberAt(*body, "service_profile");
    const Json& id = profile.is_object() ? model::memberAt(profile, "id") : profile;
    if (!id.is_string() || !model::isUuid(id.get<std::string>())) {
      return errorResponse(model::badRequest("Invalid input for id. Reason: '" +
                                             (id.is_string() ? id.get<std::string>() : id.dump()) +
                                             "' is not a valid UUID."));
    }
    std::string sp = id;
    auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
      auto f = target(flavors, flavor, ctx, req, "update");
      if (!f) return std::move(f).error();
      if (ctx.find("service_profiles", sp) == nullptr) return profileNotFound(sp);
      Json doc = (*f)->doc;
      Json& bound = doc["service_profiles"];
      if (!bound.is_array()) bound = Json::array();
      if (std::find(bound.begin(), bound.end(), Json(sp)) != bound.end()) {
        return Error(Errc::Conflict,
                     "Service Profile " + sp + " is already associated with flavor " + flavor + ".",
                     "FlavorServiceProfileBindingExists");
      }
      bound.push_back(sp);
      ctx.guard("flavors", flavor, (*f)->mod_revision);
      ctx.put("flavors", flavor, doc);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    return json(201, {{"service_profile", {{"id", sp}}}});
  }
  if (parts.size() != 5) return methodNotAllowed();
  const std::string& sp = parts[4];
  if (req.method == "GET" || req.method == "DELETE") {
    bool remove = req.method == "DELETE";
    auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
      auto f = target(flavors, flavor, ctx, req, remove ? "update" : "get");
      if (!f) return std::move(f).error();
      Json doc = (*f)->doc;
      Json& bound = doc["service_profiles"];
      auto it = bound.is_array() ? std::find(bound.begin(), bound.end(), Json(sp)) : bound.end();
      if (!bound.is_array() || it == bound.end()) {
        return Error(Errc::NotFound,
                     "Service Profile " + sp + " is not associated with flavor " + flavor + ".",
                     "FlavorServiceProfileBindingNotFound");
      }
      if (!remove) return ok();
      bound.erase(it);
      ctx.guard("flavors", flavor, (*f)->mod_revision);
      ctx.put("flavors", flavor, doc);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    if (!remove) {
      return json(200, {{"service_profile", {{"service_profile_id", sp}, {"flavor_id", flavor}}}});
    }
    HttpResponse out;
    out.status = 204;
    return out;
  }
  return methodNotAllowed();
}

}  // namespace detail

std::unique_ptr<ResourceKind> makeFlavorKind(const model::NetworkConfig&) {
  return std::make_unique<FlavorKind>();
}

std::unique_ptr<ResourceKind> makeServiceProfileKind(const model::NetworkConfig&) {
  return std::make_unique<ServiceProfileKind>();
}

}  // namespace canopy::api
