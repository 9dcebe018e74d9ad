#pragma once
// Token validation against an external Keystone (v3), as keystonemiddleware
// does for Neutron: the server holds a service token (password auth of its
// own service user) and asks Keystone about each caller's X-Auth-Token with
// GET /v3/auth/tokens. Answers are cached, bounded in count and age, never
// past the token's expiry.
//
//   KeystoneAuth auth(options, clock);
//   auto caller = auth.validate(token);   // Unauthenticated: 401; Unavailable: 503
//
// Thread-safety: validate() may be called from many threads at once; calls
// to Keystone run outside the lock.

#include <chrono>
#include <list>
#include <string>
#include <unordered_map>

#include "api/authenticator.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "http/client.h"
#include "model/attributes.h"

namespace canopy::api {

using http::HttpReply;
using http::HttpUrl;

struct KeystoneOptions {
  std::string auth_url{};  // http://HOST:PORT/v3
  std::string username{};  // the server's service user
  std::string password{};
  std::string project_name = "service";
  std::string user_domain = "Default";
  std::string project_domain = "Default";
  std::chrono::seconds cache_ttl{300};
  size_t cache_size = 10000;
  std::chrono::milliseconds timeout{5000};
};

class KeystoneAuth final : public Authenticator {
 public:
  static Result<std::unique_ptr<KeystoneAuth>> create(KeystoneOptions options, const Clock& clock);

  Result<model::Caller> validate(std::string_view token);

  // Authenticator: X-Auth-Token, validated at Keystone (cached).
  Result<model::Caller> authenticate(const http::HttpRequest& request) override {
    return validate(request.header("x-auth-token"));
  }
  http::HttpResponse unauthorized(const http::HttpRequest& request) override;

  // Where clients authenticate (for WWW-Authenticate).
  const std::string& authUrl() const { return options_.auth_url; }
  size_t cachedTokens() const;
  uint64_t keystoneCalls() const;

 private:
  KeystoneAuth(KeystoneOptions options, HttpUrl url, const Clock& clock)
      : options_(std::move(options)), url_(std::move(url)), clock_(clock) {}

  struct Entry {
    model::Caller caller;
    WallTime until;
    std::list<std::string>::iterator lru;
  };

  Result<std::string> serviceToken(bool renew);
  Result<HttpReply> call(const std::string& method, const std::string& path,
                         const std::string& body,
                         const std::vector<std::pair<std::string, std::string>>& headers);

  const KeystoneOptions options_;
  const HttpUrl url_;
  const Clock& clock_;
  mutable Mutex mu_;
  std::string service_token_ CANOPY_GUARDED_BY(mu_);
  WallTime service_expires_ CANOPY_GUARDED_BY(mu_){};
  std::unordered_map<std::string, Entry> cache_ CANOPY_GUARDED_BY(mu_);
  std::list<std::string> lru_ CANOPY_GUARDED_BY(mu_);  // most recent first
  uint64_t calls_ CANOPY_GUARDED_BY(mu_) = 0;
};

// Keystone's ISO 8601 time ("2026-11-21T19:20:53.000000Z"), or nullopt.
std::optional<WallTime> parseKeystoneTime(std::string_view text);
// The body of a password authentication scoped to a project
// (POST /v3/auth/tokens).
model::Json passwordAuthBody(std::string_view user, std::string_view password,
                             std::string_view project, std::string_view user_domain,
                             std::string_view project_domain);

}  // namespace canopy::api
