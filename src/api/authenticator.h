#pragma once
// How the API learns who calls it: an Authenticator turns a request's
// credentials into a Caller (project, admin or not), says how to answer a
// caller it does not know (401 naming where to get a token), and may serve
// paths of its own (the builtin identity service's /v3).
//
//   std::unique_ptr<Authenticator> auth = noAuth();       // or identity, keystone
//   NeutronApi api(state, {.auth = auth.get()}, clock);
//
// Implementations: noAuth() (below; for tests and trusted set-ups),
// BuiltinIdentity (identity.h), KeystoneAuth (keystone_auth.h).
//
// Thread-safety: every member function from many threads at once.

#include <memory>
#include <optional>

#include "base/result.h"
#include "http/message.h"
#include "model/attributes.h"

namespace canopy::api {

class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // The caller, or Unauthenticated (answered with unauthorized()), or
  // another error (Unavailable when an external Keystone cannot be asked).
  virtual Result<model::Caller> authenticate(const http::HttpRequest& request) = 0;
  // The 401 for a request without valid credentials.
  virtual http::HttpResponse unauthorized(const http::HttpRequest& request) = 0;
  // A response for paths the authenticator serves itself (/v3 of the
  // builtin identity service); nullopt for every other path.
  virtual std::optional<http::HttpResponse> serve(const http::HttpRequest& /*request*/) {
    return std::nullopt;
  }
};

// No credentials: the project comes from the X-Project-Id (or X-Tenant-Id)
// header and the roles from X-Roles ("admin" makes an admin); without a
// project the caller is an admin of project "admin" (what the openstack
// client gets with --os-auth-type none). For tests and trusted set-ups only.
std::unique_ptr<Authenticator> noAuth();

}  // namespace canopy::api
