#pragma once
// The builtin identity service: the Keystone v3 calls the openstack client
// and keystoneauth need (version discovery, password authentication to a
// project, token validation and revocation), with users, projects and roles
// from a JSON file or a bootstrap admin. canopy-server serves it under /v3 and
// lists itself as the `network` endpoint in the catalog.
//
//   auto id = BuiltinIdentity::fromFile("identity.json", clock);
//   auto caller = id->validate(token);           // for /v2.0 requests
//   HttpResponse r = id->handle(request);        // for /v3 requests
//
// Identity file:
//   {"projects": [{"name": "admin"}, {"name": "demo"}],
//    "users": [{"name": "admin", "password": "…", "project": "admin", "roles": ["admin"]},
//              {"name": "alice", "password": "…", "project": "demo", "roles": ["member"]}]}
// Ids are derived from names, so resources keep their project across restarts.
// Tokens live in memory: a restarted server asks clients to authenticate again.
//
// Thread-safety: handle() and validate() from any thread.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "api/authenticator.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "http/message.h"
#include "model/attributes.h"

namespace canopy::api {

using http::HttpRequest;
using http::HttpResponse;

struct IdentityOptions {
  std::chrono::seconds token_ttl{3600};
  std::string region = "RegionOne";
  // The catalog also lists Octavia's load-balancer service, under this path
  // of the server ("/load-balancer"); empty: not listed.
  std::string load_balancer_path{};
};

class BuiltinIdentity final : public Authenticator {
 public:
  static Result<std::unique_ptr<BuiltinIdentity>> fromFile(const std::string& path,
                                                           const Clock& clock,
                                                           IdentityOptions options = {});
  static Result<std::unique_ptr<BuiltinIdentity>> fromJson(std::string_view json,
                                                           const Clock& clock,
                                                           IdentityOptions options = {});
  // One user "admin" with role admin in project "admin".
  static std::unique_ptr<BuiltinIdentity> bootstrap(const std::string& admin_password,
                                                    const Clock& clock,
                                                    IdentityOptions options = {});

  // Requests under /v3.
  HttpResponse handle(const HttpRequest& request);
  // The caller a token stands for; Unauthenticated if unknown or expired.
  Result<model::Caller> validate(std::string_view token);

  // Authenticator: X-Auth-Token, validated here; /v3 served here.
  Result<model::Caller> authenticate(const HttpRequest& request) override {
    return validate(request.header("x-auth-token"));
  }
  HttpResponse unauthorized(const HttpRequest& request) override;
  std::optional<HttpResponse> serve(const HttpRequest& request) override;

  // Keystone's stable id for a name (32 hex digits).
  static std::string idFor(std::string_view kind, std::string_view name);

 private:
  struct User {
    std::string id, name, password, project_id, project_name;
    std::vector<std::string> roles;
  };
  struct Token {
    const User* user;
    WallTime issued;
    WallTime expires;
    std::string audit_id;
  };

  BuiltinIdentity(const Clock& clock, IdentityOptions options)
      : clock_(clock), options_(std::move(options)) {}

  HttpResponse versionDocument(const std::string& base) const;
  HttpResponse issue(const HttpRequest& request, const std::string& base);
  HttpResponse check(const HttpRequest& request, const std::string& base, bool head);
  HttpResponse revoke(const HttpRequest& request);
  HttpResponse projects(const HttpRequest& request, const std::string& base,
                        const std::string& path);
  model::Json tokenBody(const Token& token, const std::string& base) const;

  const Clock& clock_;
  IdentityOptions options_;
  std::vector<User> users_;
  std::map<std::string, std::string> project_names_;  // id -> name
  Mutex mu_;
  std::map<std::string, Token> tokens_ CANOPY_GUARDED_BY(mu_);
};

// Keystone's 401, as keystonemiddleware words it for services.
HttpResponse keystoneUnauthorized(const HttpRequest& request);
// The same, naming the identity service at `auth_uri` (http://HOST:PORT/v3).
HttpResponse keystoneUnauthorized(const std::string& auth_uri);

}  // namespace canopy::api
