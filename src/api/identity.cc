#include "api/identity.h"

#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include "model/query.h"

namespace canopy::api {
namespace {

using model::Json;

HttpResponse jsonResponse(int status, const Json& body) {
  HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

HttpResponse keystoneError(int status, const std::string& title, const std::string& message) {
  return jsonResponse(status,
                      {{"error", {{"code", status}, {"title", title}, {"message", message}}}});
}

std::string baseUrl(const HttpRequest& request) {
  std::string_view host = request.header("host");
  return "http://" + std::string(host.empty() ? "127.0.0.1:9696" : host);
}

std::string isoTime(WallTime t) {
  auto secs = std::chrono::system_clock::to_time_t(t);
  auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count() % 1000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(micros));
  return out;
}

std::string randomHex(size_t bytes) {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (uint64_t{std::random_device{}()} << 32));
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    auto b = static_cast<unsigned>(rng() & 0xff);
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

Json domain() { return {{"id", "default"}, {"name", "Default"}}; }

}  // namespace

std::string BuiltinIdentity::idFor(std::string_view kind, std::string_view name) {
  // Two FNV-1a 64 hashes with different bases: stable, well spread, not secret.
  auto fnv = [&](uint64_t h) {
    for (char c : kind) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL;
    for (char c : name) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    return h;
  };
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%016llx%016llx",
                static_cast<unsigned long long>(fnv(14695981039346656037ULL)),
                static_cast<unsigned long long>(fnv(0x84222325cbf29ce4ULL)));
  return buf;
}

Result<std::unique_ptr<BuiltinIdentity>> BuiltinIdentity::fromJson(std::string_view text,
                                                                   const Clock& clock,
                                                                   IdentityOptions options) {
  auto parsed = model::parseJson(text);
  if (!parsed || !parsed->is_object()) {
    return Error(Errc::InvalidArgument, "identity file is not a JSON object");
  }
  std::unique_ptr<BuiltinIdentity> id(new BuiltinIdentity(clock, std::move(options)));
  for (const auto& p : parsed->value("projects", Json::array())) {
    std::string name = p.is_object() ? p.value("name", "") : "";
    if (name.empty()) return Error(Errc::InvalidArgument, "identity file: a project has no name");
    id->project_names_[idFor("project", name)] = name;
  }
  for (const auto& u : parsed->value("users", Json::array())) {
    if (!u.is_object())
      return Error(Errc::InvalidArgument, "identity file: a user is not an object");
    User user;
    user.name = u.value("name", "");
    user.password = u.value("password", "");
    user.project_name = u.value("project", "");
    if (user.name.empty() || user.password.empty() || user.project_name.empty()) {
      return Error(Errc::InvalidArgument,
                   "identity file: user '" + user.name + "' needs name, password and project");
    }
    user.id = idFor("user", user.name);
    user.project_id = idFor("project", user.project_name);
    if (!id->project_names_.count(user.project_id)) {
      return Error(Errc::InvalidArgument, "identity file: user '" + user.name +
                                              "' is in unknown project '" + user.project_name +
                                              "'");
    }
    for (const auto& r : u.value("roles", Json::array({"member"}))) {
      if (r.is_string()) user.roles.push_back(r);
    }
    id->users_.push_back(std::move(user));
  }
  if (id->users_.empty()) return Error(Errc::InvalidArgument, "identity file has no users");
  return id;
}

Result<std::unique_ptr<BuiltinIdentity>> BuiltinIdentity::fromFile(const std::string& path,
                                                                   const Clock& clock,
                                                                   IdentityOptions options) {
  std::ifstream in(path);
  if (!in) return Error(Errc::NotFound, "cannot read identity file " + path);
  std::stringstream text;
  text << in.rdbuf();
  auto r = fromJson(text.str(), clock, std::move(options));
  if (!r) return r.error().withContext(path);
  return r;
}

std::unique_ptr<BuiltinIdentity> BuiltinIdentity::bootstrap(const std::string& admin_password,
                                                            const Clock& clock,
                                                            IdentityOptions options) {
  Json doc = {{"projects", {{{"name", "admin"}}}},
              {"users",
               {{{"name", "admin"},
                 {"password", admin_password},
                 {"project", "admin"},
                 {"roles", {"admin", "member", "reader"}}}}}};
  return std::move(fromJson(doc.dump(), clock, std::move(options))).value();
}

HttpResponse BuiltinIdentity::versionDocument(const std::string& base) const {
  return jsonResponse(200, {{"version",
                             {{"id", "v3.14"},
                              {"status", "stable"},
                              {"updated", "2020-04-07T00:00:00Z"},
                              {"links", {{{"rel", "self"}, {"href", base + "/v3/"}}}},
                              {"media-types",
                               {{{"base", "application/json"},
                                 {"type", "application/vnd.openstack.identity-v3+json"}}}}}}});
}

Json BuiltinIdentity::tokenBody(const Token& token, const std::string& base) const {
  const User& u = *token.user;
  Json roles = Json::array();
  for (const auto& r : u.roles) roles.push_back({{"id", idFor("role", r)}, {"name", r}});
  auto endpoints = [&](const std::string& service, const std::string& url) {
    Json list = Json::array();
    for (const char* iface : {"public", "internal", "admin"}) {
      list.push_back({{"id", idFor("endpoint", service + iface)},
                      {"interface", iface},
                      {"region", options_.region},
                      {"region_id", options_.region},
                      {"url", url}});
    }
    return list;
  };
  Json catalog = {{{"type", "network"},
                   {"name", "neutron"},
                   {"id", idFor("service", "network")},
                   {"endpoints", endpoints("network", base)}},
                  {{"type", "identity"},
                   {"name", "keystone"},
                   {"id", idFor("service", "identity")},
                   {"endpoints", endpoints("identity", base + "/v3/")}}};
  if (!options_.load_balancer_path.empty()) {
    catalog.push_back(
        {{"type", "load-balancer"},
         {"name", "octavia"},
         {"id", idFor("service", "load-balancer")},
         {"endpoints", endpoints("load-balancer", base + options_.load_balancer_path)}});
  }
  return {
      {"token",
       {{"methods", {"password"}},
        {"user",
         {{"id", u.id}, {"name", u.name}, {"domain", domain()}, {"password_expires_at", nullptr}}},
        {"audit_ids", {token.audit_id}},
        {"expires_at", isoTime(token.expires)},
        {"issued_at", isoTime(token.issued)},
        {"project", {{"id", u.project_id}, {"name", u.project_name}, {"domain", domain()}}},
        {"is_domain", false},
        {"roles", roles},
        {"catalog", std::move(catalog)}}}};
}

HttpResponse BuiltinIdentity::issue(const HttpRequest& request, const std::string& base) {
  auto body = model::parseJson(request.body);
  const Json* auth =
      body && body->is_object() && body->contains("auth") ? &(*body)["auth"] : nullptr;
  if (auth == nullptr || !auth->is_object()) {
    return keystoneError(400, "Bad Request", "Expecting to find auth in request body.");
  }
  Json identity = auth->value("identity", Json::object());
  Json methods = identity.value("methods", Json::array());
  if (!methods.is_array() || methods.size() != 1 || methods[0] != "password") {
    return keystoneError(401, "Unauthorized", "Only password authentication is supported.");
  }
  Json user = identity.value("password", Json::object()).value("user", Json::object());
  std::string name = user.value("name", "");
  std::string uid = user.value("id", "");
  std::string password = user.value("password", "");
  const User* found = nullptr;
  for (const auto& u : users_) {
    if ((!uid.empty() && u.id == uid) || (uid.empty() && u.name == name)) found = &u;
  }
  if (found == nullptr || found->password != password) {
    return keystoneError(401, "Unauthorized", "The request you have made requires authentication.");
  }
  // Scope: the user's project (by name or id), or unscoped meaning the same.
  Json scope = auth->value("scope", Json::object());
  if (scope.is_object() && scope.contains("project")) {
    Json p = scope["project"];
    bool ok = p.value("id", "") == found->project_id || p.value("name", "") == found->project_name;
    if (!ok) {
      return keystoneError(
          401, "Unauthorized",
          "User " + found->id + " has no access to project " + p.value("name", p.value("id", "")));
    }
  }
  Token token{found, clock_.wallNow(), clock_.wallNow() + options_.token_ttl, randomHex(16)};
  std::string value = randomHex(32);
  {
    MutexLock lock(mu_);
    // Drop expired tokens as new ones come, so the table stays bounded.
    WallTime now = clock_.wallNow();
    std::erase_if(tokens_, [&](const auto& kv) { return kv.second.expires <= now; });
    tokens_.emplace(value, token);
  }
  HttpResponse r = jsonResponse(201, tokenBody(token, base));
  r.headers.emplace_back("X-Subject-Token", value);
  return r;
}

Result<model::Caller> BuiltinIdentity::validate(std::string_view token) {
  MutexLock lock(mu_);
  auto it = tokens_.find(std::string(token));
  if (it == tokens_.end() || it->second.expires <= clock_.wallNow()) {
    return Error(Errc::Unauthenticated, "The request you have made requires authentication.");
  }
  const User& u = *it->second.user;
  model::Caller caller;
  caller.project_id = u.project_id;
  caller.is_admin = std::find(u.roles.begin(), u.roles.end(), "admin") != u.roles.end();
  caller.roles = u.roles;
  return caller;
}

HttpResponse BuiltinIdentity::check(const HttpRequest& request, const std::string& base,
                                    bool head) {
  if (!validate(request.header("x-auth-token"))) return keystoneUnauthorized(request);
  std::string subject(request.header("x-subject-token"));
  std::optional<Token> token;
  {
    MutexLock lock(mu_);
    auto it = tokens_.find(subject);
    if (it != tokens_.end() && it->second.expires > clock_.wallNow()) token = it->second;
  }
  if (!token) {
    HttpResponse r = keystoneError(404, "Not Found", "Could not find token: " + subject + ".");
    if (head) r.body.clear();
    return r;
  }
  HttpResponse r = jsonResponse(200, tokenBody(*token, base));
  r.headers.emplace_back("X-Subject-Token", subject);
  if (head) r.body.clear();
  return r;
}

HttpResponse BuiltinIdentity::revoke(const HttpRequest& request) {
  if (!validate(request.header("x-auth-token"))) return keystoneUnauthorized(request);
  std::string subject(request.header("x-subject-token"));
  MutexLock lock(mu_);
  if (tokens_.erase(subject) == 0) {
    return keystoneError(404, "Not Found", "Could not find token: " + subject + ".");
  }
  HttpResponse r;
  r.status = 204;
  return r;
}

HttpResponse BuiltinIdentity::handle(const HttpRequest& request) {
  std::string base = baseUrl(request);
  std::string path = request.path;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  if (path == "/v3") {
    if (request.method == "GET") return versionDocument(base);
  } else if (path == "/v3/auth/tokens") {
    if (request.method == "POST") return issue(request, base);
    if (request.method == "GET") return check(request, base, false);
    if (request.method == "HEAD") return check(request, base, true);
    if (request.method == "DELETE") return revoke(request);
  } else if (path == "/v3/projects" || path.starts_with("/v3/projects/")) {
    if (request.method == "GET") return projects(request, base, path);
  } else {
    return keystoneError(404, "Not Found", "The resource could not be found.");
  }
  return keystoneError(405, "Method Not Allowed", "The method is not allowed for this URL.");
}

// GET /v3/projects[?name=] (admins) and /v3/projects/<id> (admins and members):
// what clients use to turn a project name into an id.
HttpResponse BuiltinIdentity::projects(const HttpRequest& request, const std::string& base,
                                       const std::string& path) {
  auto caller = validate(request.header("x-auth-token"));
  if (!caller) return keystoneUnauthorized(request);
  auto project = [&](const std::string& id, const std::string& name) {
    return Json{{"id", id},
                {"name", name},
                {"domain_id", "default"},
                {"enabled", true},
                {"is_domain", false},
                {"parent_id", "default"},
                {"description", ""},
                {"tags", Json::array()},
                {"links", {{"self", base + "/v3/projects/" + id}}}};
  };
  auto forbidden = [] {
    return keystoneError(403, "Forbidden",
                         "You are not authorized to perform the requested action: "
                         "identity:list_projects.");
  };
  if (path == "/v3/projects") {
    if (!caller->is_admin) return forbidden();
    std::string wanted;
    for (const auto& [key, value] : request.query) {
      if (key == "name") wanted = value;
    }
    Json list = Json::array();
    for (const auto& [id, name] : project_names_) {
      if (wanted.empty() || wanted == name) list.push_back(project(id, name));
    }
    return jsonResponse(
        200,
        {{"projects", std::move(list)},
         {"links", {{"self", base + "/v3/projects"}, {"next", nullptr}, {"previous", nullptr}}}});
  }
  std::string id = path.substr(std::string_view("/v3/projects/").size());
  auto it = project_names_.find(id);
  if (it == project_names_.end() || !(caller->is_admin || caller->project_id == id)) {
    // Keystone answers 404 for a name given where an id is expected.
    return keystoneError(404, "Not Found", "Could not find project: " + id + ".");
  }
  return jsonResponse(200, {{"project", project(it->first, it->second)}});
}

HttpResponse keystoneUnauthorized(const HttpRequest& request) {
  return keystoneUnauthorized(baseUrl(request) + "/v3");
}

HttpResponse keystoneUnauthorized(const std::string& auth_uri) {
  HttpResponse r =
      keystoneError(401, "Unauthorized", "The request you have made requires authentication.");
  r.headers.emplace_back("WWW-Authenticate", "Keystone uri=\"" + auth_uri + "\"");
  return r;
}

HttpResponse BuiltinIdentity::unauthorized(const HttpRequest& request) {
  return keystoneUnauthorized(request);
}

std::optional<HttpResponse> BuiltinIdentity::serve(const HttpRequest& request) {
  if (request.path != "/v3" && !request.path.starts_with("/v3/")) return std::nullopt;
  return handle(request);
}

namespace {

class NoAuth final : public Authenticator {
 public:
  Result<model::Caller> authenticate(const HttpRequest& req) override {
    model::Caller caller;
    std::string_view project = req.header("x-project-id");
    if (project.empty()) project = req.header("x-tenant-id");
    std::string_view roles = req.header("x-roles");
    caller.project_id = project.empty() ? std::string("admin") : std::string(project);
    caller.is_admin = project.empty() || roles.find("admin") != std::string_view::npos;
    for (auto& role : model::splitCommas(std::string(roles)))
      caller.roles.push_back(std::move(role));
    return caller;
  }
  HttpResponse unauthorized(const HttpRequest& request) override {
    return keystoneUnauthorized(request);
  }
};

}  // namespace

std::unique_ptr<Authenticator> noAuth() { return std::make_unique<NoAuth>(); }

}  // namespace canopy::api
