// The client against a scripted server: Keystone tokens and the catalog,
// error bodies, name resolution.

#include "cli/client.h"

#include <gtest/gtest.h>

#include "fakes.h"

namespace canopy::cli {
namespace {

using testing::FakeTransport;
using testing::reply;
using testing::SentRequest;

constexpr const char* kNetId = "5b3a8f6e-0c1d-4e2f-8a9b-0c1d2e3f4a5b";

Json catalog(const std::string& region = "RegionOne") {
  auto endpoints = [&](const std::string& url) {
    Json list = Json::array();
    for (const char* iface : {"internal", "public"}) {
      list.push_back({{"interface", iface}, {"region", region}, {"url", url}});
    }
    return list;
  };
  return Json::array({{{"type", "identity"}, {"endpoints", endpoints("http://keystone:5000/v3/")}},
                      {{"type", "network"}, {"endpoints", endpoints("http://neutron:9797")}}});
}

// Keystone on keystone:5000 that issues "tok-1" for alice/pw in project demo.
Result<http::HttpReply> keystone(const SentRequest& r) {
  if (r.method == "POST" && r.target == "/v3/auth/tokens") {
    Json auth = r.json()["auth"];
    if (auth["identity"]["password"]["user"]["password"] != "pw") {
      return reply(401, {{"error",
                          {{"code", 401},
                           {"title", "Unauthorized"},
                           {"message", "The request you have made requires authentication."}}}});
    }
    return reply(
        201,
        {{"token", {{"project", {{"id", "p-demo"}, {"name", "demo"}}}, {"catalog", catalog()}}}},
        {{"X-Subject-Token", "tok-1"}});
  }
  return reply(200, {{"networks", Json::array()}});
}

Credentials password(const std::string& pw = "pw") {
  return {.auth_type = "password",
          .auth_url = "http://keystone:5000/v3",
          .username = "alice",
          .password = pw,
          .project_name = "demo",
          .user_domain_name = "Default",
          .project_domain_name = "Default"};
}

TEST(Client, PasswordTokenAndTheCatalogsNetworkEndpoint) {
  FakeTransport t(keystone);
  auto client = Client::connect(password(), t);
  ASSERT_TRUE(client) << client.error().toString();
  EXPECT_EQ((*client)->projectId(), "p-demo");
  EXPECT_EQ((*client)->endpoint().toString(), "http://neutron:9797");

  const SentRequest& auth = t.sent.at(0);
  EXPECT_EQ(auth.host, "keystone");
  EXPECT_EQ(auth.port, 5000);
  EXPECT_EQ(
      auth.json(),
      (Json{{"auth",
             {{"identity",
               {{"methods", {"password"}},
                {"password",
                 {{"user",
                   {{"name", "alice"}, {"password", "pw"}, {"domain", {{"name", "Default"}}}}}}}}},
              {"scope", {{"project", {{"name", "demo"}, {"domain", {{"name", "Default"}}}}}}}}}}));

  ASSERT_TRUE((*client)->list(kNetworks));
  const SentRequest& list = t.sent.at(1);
  EXPECT_EQ(list.host, "neutron");
  EXPECT_EQ(list.port, 9797);
  EXPECT_EQ(list.target, "/v2.0/networks");
  EXPECT_EQ(list.header("X-Auth-Token"), "tok-1");
}

TEST(Client, AuthUrlWithoutVersionAndAnExplicitEndpoint) {
  FakeTransport t(keystone);
  Credentials c = password();
  c.auth_url = "http://keystone:5000/";
  c.endpoint = "http://other:1234/prefix";
  auto client = Client::connect(c, t);
  ASSERT_TRUE(client) << client.error().toString();
  EXPECT_EQ(t.sent.at(0).target, "/v3/auth/tokens");
  EXPECT_EQ((*client)->endpoint().toString(), "http://other:1234/prefix");
  ASSERT_TRUE((*client)->get("/v2.0/networks"));
  EXPECT_EQ(t.sent.at(1).target, "/prefix/v2.0/networks");
}

TEST(Client, WrongPasswordShowsKeystonesMessage) {
  FakeTransport t(keystone);
  auto client = Client::connect(password("wrong"), t);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().code(), Errc::Unauthenticated);
  EXPECT_EQ(client.error().message(),
            "authenticating at http://keystone:5000/v3: The request you have made requires "
            "authentication. (HTTP 401)");
}

TEST(Client, RegionMustMatchAndTheCatalogMustHaveANetwork) {
  FakeTransport t(keystone);
  Credentials c = password();
  c.region_name = "Elsewhere";
  auto client = Client::connect(c, t);
  ASSERT_FALSE(client);
  EXPECT_EQ(client.error().message(),
            "authenticating at http://keystone:5000/v3: the token's catalog has no public network "
            "endpoint in region Elsewhere");
}

TEST(Client, NoAuthSendsNoTokenAndAProjectWhenGiven) {
  FakeTransport t([](const SentRequest&) { return reply(200, {{"networks", Json::array()}}); });
  auto client = Client::connect(
      {.auth_type = "none", .project_id = "p1", .endpoint = "http://127.0.0.1:9696"}, t);
  ASSERT_TRUE(client);
  EXPECT_TRUE(t.sent.empty());
  ASSERT_TRUE((*client)->list(kNetworks, {{"name", "a b&c"}}));
  EXPECT_EQ(t.sent.at(0).target, "/v2.0/networks?name=a%20b%26c");
  EXPECT_EQ(t.sent.at(0).header("X-Auth-Token"), "");
  EXPECT_EQ(t.sent.at(0).header("X-Project-Id"), "p1");
}

TEST(Client, UnreachableServerIsSaidPlainly) {
  FakeTransport t([](const SentRequest&) -> Result<http::HttpReply> {
    return Error(Errc::Unavailable, "GET 127.0.0.1:9/v2.0/networks: Connection refused");
  });
  auto client = Client::connect({.auth_type = "none", .endpoint = "http://127.0.0.1:9"}, t);
  ASSERT_TRUE(client);
  auto r = (*client)->get("/v2.0/networks");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::Unavailable);
  EXPECT_EQ(r.error().message(),
            "cannot reach http://127.0.0.1:9 (GET 127.0.0.1:9/v2.0/networks: Connection refused)");
}

TEST(Client, ErrorBodiesGiveTheServersMessage) {
  struct Case {
    int status;
    std::string body;
    std::string message;
    Errc code;
  };
  std::vector<Case> cases = {
      {409,
       R"({"NeutronError": {"type": "NetworkInUse", "message": "Unable to complete operation on network n.", "detail": ""}})",
       "Unable to complete operation on network n. (HTTP 409)", Errc::Conflict},
      {401, R"({"error": {"code": 401, "message": "Not you."}})", "Not you. (HTTP 401)",
       Errc::Unauthenticated},
      {502, "Bad gateway\nmore", "Bad gateway (HTTP 502)", Errc::Internal},
      {404, "", "the server answered with no message (HTTP 404)", Errc::NotFound},
      {403, "{}", "{} (HTTP 403)", Errc::PermissionDenied},
  };
  for (const auto& c : cases) {
    Error e = errorFromReply({.status = c.status, .body = c.body, .headers = {}});
    EXPECT_EQ(e.message(), c.message);
    EXPECT_EQ(e.code(), c.code) << c.message;
  }
  EXPECT_EQ(errorFromReply({.status = 409, .body = cases[0].body, .headers = {}}).reason(),
            "NetworkInUse");
}

// A server with networks "blue" (once) and "twin" (twice).
Result<http::HttpReply> networks(const SentRequest& r) {
  Json blue = {{"id", kNetId}, {"name", "blue"}};
  if (r.target == std::string("/v2.0/networks/") + kNetId) return reply(200, {{"network", blue}});
  if (r.target == "/v2.0/networks?name=blue") return reply(200, {{"networks", {blue}}});
  if (r.target == "/v2.0/networks?name=twin") {
    return reply(
        200, {{"networks", {{{"id", "t1"}, {"name", "twin"}}, {{"id", "t2"}, {"name", "twin"}}}}});
  }
  if (r.target.starts_with("/v2.0/networks?name="))
    return reply(200, {{"networks", Json::array()}});
  return reply(404, {{"NeutronError", {{"message", "Network x could not be found."}}}});
}

TEST(Client, NamesAndIdsResolve) {
  FakeTransport t(networks);
  auto client = Client::connect({.auth_type = "none", .endpoint = "http://h:1"}, t);
  ASSERT_TRUE(client);
  Client& c = **client;
  EXPECT_EQ(c.findId(kNetworks, "blue").value(), kNetId);
  EXPECT_EQ(c.findId(kNetworks, kNetId).value(), kNetId);
  EXPECT_EQ(t.sent.back().target, std::string("/v2.0/networks/") + kNetId);  // one request by id

  auto twin = c.find(kNetworks, "twin");
  ASSERT_FALSE(twin);
  EXPECT_EQ(twin.error().message(),
            "More than one network is called 'twin' (t1, t2); name it by id.");
  auto missing = c.find(kNetworks, "nope");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  EXPECT_EQ(missing.error().message(), "Network 'nope' could not be found.");
  // An id that is not there is looked up as a name too, then reported.
  auto gone = c.find(kNetworks, "00000000-0000-0000-0000-000000000000");
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.error().message(),
            "Network '00000000-0000-0000-0000-000000000000' could not be found.");
  // Rules have no name: only their id.
  auto rule = c.find(kSecurityGroupRules, "r1");
  ASSERT_FALSE(rule);
  EXPECT_EQ(rule.error().message(), "Security group rule r1 could not be found.");
  EXPECT_EQ(t.sent.back().target, "/v2.0/security-group-rules/r1");
}

TEST(Client, QueryEncoding) {
  EXPECT_EQ(urlEncode("a-b_c.d~e"), "a-b_c.d~e");
  EXPECT_EQ(urlEncode("binding:host_id"), "binding%3Ahost_id");
  EXPECT_EQ(withQuery("/v2.0/ports", {{"network_id", "n"}, {"device_id", "d"}}),
            "/v2.0/ports?network_id=n&device_id=d");
  EXPECT_EQ(withQuery("/x?a=1", {{"b", "2"}}), "/x?a=1&b=2");
}

}  // namespace
}  // namespace canopy::cli
