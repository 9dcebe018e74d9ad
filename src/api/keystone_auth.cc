#include "api/keystone_auth.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <ctime>

#include "api/identity.h"

namespace canopy::api {
namespace {

using model::Json;

Error unauthenticated() {
  return Error(Errc::Unauthenticated, "The request you have made requires authentication.");
}

}  // namespace

std::optional<WallTime> parseKeystoneTime(std::string_view text) {
  // YYYY-MM-DDTHH:MM:SS[.ffffff][Z|+00:00]
  if (text.size() < 19 || text[4] != '-' || text[7] != '-' || text[10] != 'T' || text[13] != ':' ||
      text[16] != ':') {
    return std::nullopt;
  }
  auto number = [&](size_t pos, size_t len) -> int {
    int v = -1;
    auto [end, ec] = std::from_chars(text.data() + pos, text.data() + pos + len, v);
    return ec == std::errc() && end == text.data() + pos + len ? v : -1;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;
  tm.tm_mon = number(5, 2) - 1;
  tm.tm_mday = number(8, 2);
  tm.tm_hour = number(11, 2);
  tm.tm_min = number(14, 2);
  tm.tm_sec = number(17, 2);
  if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mday < 1 || tm.tm_hour < 0 || tm.tm_min < 0 ||
      tm.tm_sec < 0) {
    return std::nullopt;
  }
  std::time_t t = timegm(&tm);
  return std::chrono::system_clock::from_time_t(t);
}

Result<std::unique_ptr<KeystoneAuth>> KeystoneAuth::create(KeystoneOptions options,
                                                           const Clock& clock) {
  auto url = HttpUrl::parse(options.auth_url);
  if (!url) return std::move(url).error();
  if (!url->path.ends_with("/v3")) {
    return Error(Errc::InvalidArgument,
                 "keystone auth URL '" + options.auth_url + "' should end in /v3");
  }
  if (options.username.empty() || options.password.empty()) {
    return Error(Errc::InvalidArgument, "keystone auth needs a service user name and password");
  }
  if (options.cache_size == 0) options.cache_size = 1;
  return std::unique_ptr<KeystoneAuth>(new KeystoneAuth(std::move(options), *url, clock));
}

size_t KeystoneAuth::cachedTokens() const {
  MutexLock lock(mu_);
  return cache_.size();
}

uint64_t KeystoneAuth::keystoneCalls() const {
  MutexLock lock(mu_);
  return calls_;
}

Result<HttpReply> KeystoneAuth::call(
    const std::string& method, const std::string& path, const std::string& body,
    const std::vector<std::pair<std::string, std::string>>& headers) {
  {
    MutexLock lock(mu_);
    ++calls_;
  }
  auto r = httpRequest(url_, method, url_.path + path, body, headers, options_.timeout);
  if (!r) {
    return Error(Errc::Unavailable, "identity service unavailable: " + r.error().message());
  }
  return r;
}

Result<std::string> KeystoneAuth::serviceToken(bool renew) {
  {
    MutexLock lock(mu_);
    // Renewed a minute before it expires.
    if (!renew && !service_token_.empty() &&
        clock_.wallNow() + std::chrono::minutes(1) < service_expires_) {
      return service_token_;
    }
  }
  Json body = passwordAuthBody(options_.username, options_.password, options_.project_name,
                               options_.user_domain, options_.project_domain);
  auto r = call("POST", "/auth/tokens", body.dump(), {});
  if (!r) return std::move(r).error();
  if (r->status != 201) {
    spdlog::error("keystone: service user '{}' cannot authenticate at {}: HTTP {}",
                  options_.username, options_.auth_url, r->status);
    return Error(Errc::Unavailable, "identity service refused the service credentials");
  }
  std::string token = r->header("X-Subject-Token");
  auto parsed = model::parseJson(r->body);
  std::optional<WallTime> expires;
  if (parsed && (*parsed)["token"].is_object()) {
    expires = parseKeystoneTime(model::stringAt((*parsed)["token"], "expires_at"));
  }
  MutexLock lock(mu_);
  service_token_ = token;
  service_expires_ = expires.value_or(clock_.wallNow() + std::chrono::minutes(5));
  return token;
}

Json passwordAuthBody(std::string_view user, std::string_view password, std::string_view project,
                      std::string_view user_domain, std::string_view project_domain) {
  return {
      {"auth",
       {{"identity",
         {{"methods", {"password"}},
          {"password",
           {{"user",
             {{"name", user}, {"domain", {{"name", user_domain}}}, {"password", password}}}}}}},
        {"scope", {{"project", {{"name", project}, {"domain", {{"name", project_domain}}}}}}}}}};
}

Result<model::Caller> KeystoneAuth::validate(std::string_view token_view) {
  if (token_view.empty()) return unauthenticated();
  std::string token(token_view);
  WallTime now = clock_.wallNow();
  {
    MutexLock lock(mu_);
    if (auto it = cache_.find(token); it != cache_.end()) {
      if (now < it->second.until) {
        lru_.splice(lru_.begin(), lru_, it->second.lru);
        return it->second.caller;
      }
      lru_.erase(it->second.lru);
      cache_.erase(it);
    }
  }
  Result<HttpReply> reply = Error(Errc::Internal, "not asked");
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto service = serviceToken(attempt > 0);
    if (!service) return std::move(service).error();
    reply =
        call("GET", "/auth/tokens", {}, {{"X-Auth-Token", *service}, {"X-Subject-Token", token}});
    if (!reply) return std::move(reply).error();
    if (reply->status != 401) break;  // 401: our own token lapsed; renew it once
  }
  if (reply->status == 404 || reply->status == 401) return unauthenticated();
  if (reply->status != 200) {
    return Error(Errc::Unavailable,
                 "identity service answered HTTP " + std::to_string(reply->status));
  }
  auto parsed = model::parseJson(reply->body);
  if (!parsed || !(*parsed)["token"].is_object()) {
    return Error(Errc::Unavailable, "identity service sent a malformed token body");
  }
  const Json& body = (*parsed)["token"];
  auto expires = parseKeystoneTime(model::stringAt(body, "expires_at"));
  std::string project = body.contains("project") ? model::stringAt(body["project"], "id") : "";
  if (project.empty() || !expires || *expires <= now) return unauthenticated();
  model::Caller caller{.project_id = project, .is_admin = false};
  if (body.contains("roles") && body["roles"].is_array()) {
    for (const auto& role : body["roles"]) {
      std::string name = model::stringAt(role, "name");
      if (name == "admin") caller.is_admin = true;
      caller.roles.push_back(std::move(name));
    }
  }
  MutexLock lock(mu_);
  WallTime until = std::min(*expires, now + options_.cache_ttl);
  if (auto it = cache_.find(token); it != cache_.end()) {
    lru_.erase(it->second.lru);
    cache_.erase(it);
  }
  while (cache_.size() >= options_.cache_size) {
    cache_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(token);
  cache_.emplace(token, Entry{.caller = caller, .until = until, .lru = lru_.begin()});
  return caller;
}

http::HttpResponse KeystoneAuth::unauthorized(const http::HttpRequest&) {
  return keystoneUnauthorized(options_.auth_url);
}

}  // namespace canopy::api
