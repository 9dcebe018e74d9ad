#include "api/identity.h"

#include <gtest/gtest.h>

namespace canopy::api {
namespace {

using model::Json;

const char* kIdentity = R"({
  "projects": [{"name": "admin"}, {"name": "demo"}],
  "users": [{"name": "admin", "password": "s3cret", "project": "admin", "roles": ["admin"]},
            {"name": "alice", "password": "wonder", "project": "demo"}]})";

HttpRequest tokenRequest(const std::string& user, const std::string& password,
                         const std::string& project) {
  HttpRequest r;
  r.method = "POST";
  r.path = "/v3/auth/tokens";
  r.headers["host"] = "127.0.0.1:9696";
  r.body =
      Json{{"auth",
            {{"identity",
              {{"methods", {"password"}},
               {"password",
                {{"user",
                  {{"name", user}, {"domain", {{"name", "Default"}}}, {"password", password}}}}}}},
             {"scope", {{"project", {{"name", project}, {"domain", {{"name", "Default"}}}}}}}}}}
          .dump();
  return r;
}

std::string subjectToken(const HttpResponse& r) {
  for (auto& [k, v] : r.headers) {
    if (k == "X-Subject-Token") return v;
  }
  return "";
}

TEST(BuiltinIdentity, IssuesProjectScopedTokensWithACatalog) {
  FakeClock clock;
  auto id = BuiltinIdentity::fromJson(kIdentity, clock);
  ASSERT_TRUE(id) << id.error().toString();
  auto r = (*id)->handle(tokenRequest("alice", "wonder", "demo"));
  ASSERT_EQ(r.status, 201) << r.body;
  std::string token = subjectToken(r);
  EXPECT_EQ(token.size(), 64u);
  Json body = Json::parse(r.body)["token"];
  EXPECT_EQ(body["project"]["name"], "demo");
  EXPECT_EQ(body["project"]["id"], BuiltinIdentity::idFor("project", "demo"));
  EXPECT_EQ(body["user"]["name"], "alice");
  EXPECT_EQ(body["roles"][0]["name"], "member");
  EXPECT_EQ(body["catalog"][0]["type"], "network");
  EXPECT_EQ(body["catalog"][0]["endpoints"][0]["url"], "http://127.0.0.1:9696");
  EXPECT_EQ(body["issued_at"], "2026-01-01T00:00:00.000000Z");
  EXPECT_EQ(body["expires_at"], "2026-01-01T01:00:00.000000Z");

  auto caller = (*id)->validate(token);
  ASSERT_TRUE(caller);
  EXPECT_EQ(caller->project_id, BuiltinIdentity::idFor("project", "demo"));
  EXPECT_FALSE(caller->is_admin);
}

TEST(BuiltinIdentity, RefusesBadCredentialsAndForeignProjects) {
  FakeClock clock;
  auto id = std::move(*BuiltinIdentity::fromJson(kIdentity, clock));
  EXPECT_EQ(id->handle(tokenRequest("alice", "wrong", "demo")).status, 401);
  EXPECT_EQ(id->handle(tokenRequest("mallory", "wonder", "demo")).status, 401);
  EXPECT_EQ(id->handle(tokenRequest("alice", "wonder", "admin")).status, 401);
  HttpRequest junk = tokenRequest("alice", "wonder", "demo");
  junk.body = "{not json";
  EXPECT_EQ(id->handle(junk).status, 400);
  EXPECT_FALSE(id->validate("no-such-token"));
  EXPECT_FALSE(id->validate(""));
}

TEST(BuiltinIdentity, ProjectsAreListedToAdminsAndShownToMembers) {
  FakeClock clock;
  auto id = std::move(*BuiltinIdentity::fromJson(kIdentity, clock));
  std::string admin = subjectToken(id->handle(tokenRequest("admin", "s3cret", "admin")));
  std::string alice = subjectToken(id->handle(tokenRequest("alice", "wonder", "demo")));
  auto get = [&](const std::string& path, const std::string& token,
                 std::vector<std::pair<std::string, std::string>> query = {}) {
    HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = std::move(query);
    r.headers["host"] = "127.0.0.1:9696";
    if (!token.empty()) r.headers["x-auth-token"] = token;
    return id->handle(r);
  };
  auto all = get("/v3/projects", admin);
  ASSERT_EQ(all.status, 200) << all.body;
  EXPECT_EQ(Json::parse(all.body)["projects"].size(), 2u);
  auto named = get("/v3/projects", admin, {{"name", "demo"}});
  ASSERT_EQ(Json::parse(named.body)["projects"].size(), 1u);
  std::string demo = BuiltinIdentity::idFor("project", "demo");
  EXPECT_EQ(Json::parse(named.body)["projects"][0]["id"], demo);
  EXPECT_EQ(get("/v3/projects", alice).status, 403);
  EXPECT_EQ(get("/v3/projects", "").status, 401);
  EXPECT_EQ(get("/v3/projects/" + demo, alice).status, 200);
  EXPECT_EQ(get("/v3/projects/" + BuiltinIdentity::idFor("project", "admin"), alice).status, 404);
  EXPECT_EQ(get("/v3/projects/demo", admin).status, 404);
}

TEST(BuiltinIdentity, TokensExpireAndCanBeRevoked) {
  FakeClock clock;
  auto id = BuiltinIdentity::bootstrap("pw", clock, {.token_ttl = std::chrono::seconds(60)});
  std::string token = subjectToken(id->handle(tokenRequest("admin", "pw", "admin")));
  auto caller = id->validate(token);
  ASSERT_TRUE(caller);
  EXPECT_TRUE(caller->is_admin);

  // Validation as keystonemiddleware does it.
  HttpRequest check;
  check.method = "GET";
  check.path = "/v3/auth/tokens";
  check.headers["x-auth-token"] = token;
  check.headers["x-subject-token"] = token;
  EXPECT_EQ(id->handle(check).status, 200);

  clock.advance(std::chrono::seconds(61));
  auto expired = id->validate(token);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code(), Errc::Unauthenticated);
  EXPECT_EQ(id->handle(check).status, 401);

  std::string fresh = subjectToken(id->handle(tokenRequest("admin", "pw", "admin")));
  HttpRequest revoke = check;
  revoke.method = "DELETE";
  revoke.headers["x-auth-token"] = fresh;
  revoke.headers["x-subject-token"] = fresh;
  EXPECT_EQ(id->handle(revoke).status, 204);
  EXPECT_FALSE(id->validate(fresh));
}

TEST(BuiltinIdentity, VersionDiscoveryPointsAtItself) {
  FakeClock clock;
  auto id = BuiltinIdentity::bootstrap("pw", clock);
  HttpRequest r;
  r.method = "GET";
  r.path = "/v3/";
  r.headers["host"] = "canopy:9696";
  auto v = Json::parse(id->handle(r).body)["version"];
  EXPECT_EQ(v["id"], "v3.14");
  EXPECT_EQ(v["links"][0]["href"], "http://canopy:9696/v3/");
}

TEST(BuiltinIdentity, BadIdentityFilesAreRefusedClearly) {
  FakeClock clock;
  EXPECT_FALSE(BuiltinIdentity::fromJson("[]", clock));
  EXPECT_FALSE(BuiltinIdentity::fromJson(R"({"users": []})", clock));
  auto orphan = BuiltinIdentity::fromJson(
      R"({"projects": [], "users": [{"name": "a", "password": "p", "project": "x"}]})", clock);
  ASSERT_FALSE(orphan);
  EXPECT_NE(orphan.error().message().find("unknown project 'x'"), std::string::npos);
  auto missing = BuiltinIdentity::fromFile("/nonexistent/identity.json", clock);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
}

}  // namespace
}  // namespace canopy::api
