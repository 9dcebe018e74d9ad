// KeystoneAuth against a stand-in for an external Keystone served on a real
// socket: what it asks, what it caches and for how long, and how it words
// each failure. (The real Keystone is exercised by e2e.openstack_keystone.)

#include "api/keystone_auth.h"

#include <gtest/gtest.h>

#include <atomic>

#include "http/server.h"

namespace canopy::api {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using model::Json;

// Keystone's answers for GET /v3/auth/tokens, driven by the test.
class FakeKeystone {
 public:
  FakeKeystone() {
    auto s = http::HttpServer::start({.address = "127.0.0.1", .port = 0, .threads = 1},
                                     [this](const HttpRequest& r) { return handle(r); });
    EXPECT_TRUE(s);
    server_ = std::move(*s);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()) + "/v3"; }

  std::atomic<int> service_logins{0};
  std::atomic<int> validations{0};
  std::atomic<bool> reject_service_token{false};  // as if it expired
  std::string expires_at = "2026-01-01T01:00:00.000000Z";

 private:
  HttpResponse handle(const HttpRequest& r) {
    HttpResponse out;
    if (r.method == "POST" && r.path == "/v3/auth/tokens") {
      ++service_logins;
      auto body = Json::parse(r.body);
      if (body["auth"]["identity"]["password"]["user"]["password"] != "svc-pw") {
        out.status = 401;
        return out;
      }
      out.status = 201;
      out.headers.emplace_back("X-Subject-Token", "service-" + std::to_string(service_logins));
      out.body = Json{{"token", {{"expires_at", expires_at}}}}.dump();
      return out;
    }
    if (r.method == "GET" && r.path == "/v3/auth/tokens") {
      ++validations;
      std::string service(r.header("x-auth-token"));
      if (!service.starts_with("service-") || reject_service_token) {
        reject_service_token = false;
        out.status = 401;
        return out;
      }
      std::string subject(r.header("x-subject-token"));
      if (subject == "alice" || subject == "root" || subject == "stale") {
        Json roles = Json::array({{{"name", subject == "root" ? "admin" : "member"}}});
        out.status = 200;
        out.body =
            Json{{"token",
                  {{"expires_at", subject == "stale" ? "2025-12-31T23:00:00.000000Z" : expires_at},
                   {"project", {{"id", "p-" + subject}}},
                   {"roles", roles}}}}
                .dump();
        return out;
      }
      out.status = 404;
      return out;
    }
    out.status = 404;
    return out;
  }

  std::unique_ptr<http::HttpServer> server_;
};

KeystoneOptions options(const std::string& url) {
  return {.auth_url = url, .username = "canopy", .password = "svc-pw"};
}

TEST(KeystoneAuth, ValidatesAtKeystoneAndCaches) {
  FakeKeystone ks;
  FakeClock clock;
  auto auth = std::move(*KeystoneAuth::create(options(ks.url()), clock));
  auto alice = auth->validate("alice");
  ASSERT_TRUE(alice) << alice.error().toString();
  EXPECT_EQ(alice->project_id, "p-alice");
  EXPECT_FALSE(alice->is_admin);
  auto root = auth->validate("root");
  ASSERT_TRUE(root);
  EXPECT_TRUE(root->is_admin);
  EXPECT_EQ(ks.service_logins, 1);  // one service token for both
  EXPECT_EQ(ks.validations, 2);
  // Cached: no second question within the TTL…
  ASSERT_TRUE(auth->validate("alice"));
  EXPECT_EQ(ks.validations, 2);
  // …and asked again after it.
  clock.advance(std::chrono::seconds(301));
  ASSERT_TRUE(auth->validate("alice"));
  EXPECT_EQ(ks.validations, 3);
}

TEST(KeystoneAuth, RefusesUnknownAndExpiredTokens) {
  FakeKeystone ks;
  FakeClock clock;
  auto auth = std::move(*KeystoneAuth::create(options(ks.url()), clock));
  EXPECT_EQ(auth->validate("mallory").error().code(), Errc::Unauthenticated);
  EXPECT_EQ(auth->validate("").error().code(), Errc::Unauthenticated);
  EXPECT_EQ(auth->validate("stale").error().code(), Errc::Unauthenticated);
  // A valid token is trusted only until it expires, whatever the TTL.
  ASSERT_TRUE(auth->validate("alice"));
  clock.advance(std::chrono::minutes(59));
  ASSERT_TRUE(auth->validate("alice"));
  EXPECT_EQ(ks.validations, 4);
  ks.expires_at = "2026-01-01T00:59:00.000000Z";  // what Keystone now says
  clock.advance(std::chrono::minutes(2));
  EXPECT_EQ(auth->validate("alice").error().code(), Errc::Unauthenticated);
}

TEST(KeystoneAuth, RenewsItsServiceTokenWhenRefused) {
  FakeKeystone ks;
  FakeClock clock;
  auto auth = std::move(*KeystoneAuth::create(options(ks.url()), clock));
  ASSERT_TRUE(auth->validate("alice"));
  ks.reject_service_token = true;
  ASSERT_TRUE(auth->validate("root"));
  EXPECT_EQ(ks.service_logins, 2);
}

TEST(KeystoneAuth, CacheIsBounded) {
  FakeKeystone ks;
  FakeClock clock;
  auto o = options(ks.url());
  o.cache_size = 1;
  auto auth = std::move(*KeystoneAuth::create(o, clock));
  ASSERT_TRUE(auth->validate("alice"));
  ASSERT_TRUE(auth->validate("root"));  // evicts alice
  EXPECT_EQ(auth->cachedTokens(), 1u);
  ASSERT_TRUE(auth->validate("alice"));
  EXPECT_EQ(ks.validations, 3);
}

TEST(KeystoneAuth, UnreachableOrMisconfiguredIsUnavailable) {
  FakeClock clock;
  // Nothing listens on port 1 of loopback.
  auto gone = std::move(*KeystoneAuth::create(options("http://127.0.0.1:1/v3"), clock));
  EXPECT_EQ(gone->validate("alice").error().code(), Errc::Unavailable);

  FakeKeystone ks;
  auto o = options(ks.url());
  o.password = "wrong";
  auto refused = std::move(*KeystoneAuth::create(o, clock));
  EXPECT_EQ(refused->validate("alice").error().code(), Errc::Unavailable);

  EXPECT_FALSE(KeystoneAuth::create(options("https://127.0.0.1:5000/v3"), clock));
  EXPECT_FALSE(KeystoneAuth::create(options("http://127.0.0.1:5000/"), clock));
  EXPECT_FALSE(KeystoneAuth::create({.auth_url = ks.url()}, clock));
}

TEST(KeystoneAuth, ParsesKeystoneTimes) {
  auto t = parseKeystoneTime("2026-11-21T19:20:53.000000Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(std::chrono::system_clock::to_time_t(*t), 1795288853);
  EXPECT_TRUE(parseKeystoneTime("2026-11-21T19:20:53Z"));
  EXPECT_FALSE(parseKeystoneTime("yesterday"));
  EXPECT_FALSE(parseKeystoneTime("2026-1x-21T19:20:53Z"));
}

}  // namespace
}  // namespace canopy::api
