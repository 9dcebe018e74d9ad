// Where `canopy` finds credentials: clouds.yaml, then OS_* variables, then
// --os-* flags.

#include "cli/credentials.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/temp_dir.h"

namespace canopy::cli {
namespace {

constexpr const char* kClouds = R"(# a comment
clouds:
  canopy:
    auth_type: password
    region_name: RegionOne
    auth:
      auth_url: "http://127.0.0.1:9696/v3"
      username: alice
      password: 's3cret: with colon'
      project_name: demo
      user_domain_name: Default
      project_domain_name: Default
  local:
    auth_type: none
    auth:
      endpoint: http://127.0.0.1:9696
  flow: {auth_type: none, endpoint: "http://10.0.0.1:9696"}
)";

TEST(Credentials, NoAuthFromEnvironment) {
  auto c = resolveCredentials(
      {.env = {{"OS_AUTH_TYPE", "none"}, {"OS_ENDPOINT", "http://127.0.0.1:9696"}}});
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->auth_type, "none");
  EXPECT_EQ(c->endpoint, "http://127.0.0.1:9696");
}

TEST(Credentials, AnEndpointAloneMeansNoAuth) {
  auto c = resolveCredentials({.env = {{"OS_ENDPOINT", "http://h:1"}}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->auth_type, "none");
}

TEST(Credentials, PasswordFromAnOpenrcWithDomainDefaults) {
  auto c = resolveCredentials({.env = {{"OS_AUTH_URL", "http://h:9696/v3"},
                                       {"OS_USERNAME", "alice"},
                                       {"OS_PASSWORD", "pw"},
                                       {"OS_PROJECT_NAME", "demo"},
                                       {"OS_IDENTITY_API_VERSION", "3"}}});
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(*c, (Credentials{.auth_type = "password",
                             .auth_url = "http://h:9696/v3",
                             .username = "alice",
                             .password = "pw",
                             .project_name = "demo",
                             .project_id = "",
                             .user_domain_name = "Default",
                             .project_domain_name = "Default",
                             .region_name = "",
                             .endpoint = ""}));
}

TEST(Credentials, FlagsWinOverTheEnvironment) {
  auto c = resolveCredentials(
      {.flags = {{"username", "bob"}, {"password", "bob-pw"}},
       .env = {
           {"OS_AUTH_URL", "http://h:9696/v3"}, {"OS_USERNAME", "alice"}, {"OS_PASSWORD", "pw"}}});
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->password, "bob-pw");
  EXPECT_EQ(c->auth_url, "http://h:9696/v3");
}

TEST(Credentials, MissingPiecesAreNamed) {
  auto c = resolveCredentials({.env = {{"OS_AUTH_URL", "http://h/v3"}, {"OS_USERNAME", "a"}}});
  ASSERT_FALSE(c);
  EXPECT_NE(c.error().message().find("missing OS_PASSWORD."), std::string::npos)
      << c.error().message();
  auto none = resolveCredentials({.env = {{"OS_AUTH_TYPE", "none"}}});
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message().find("OS_ENDPOINT"), std::string::npos);
  auto odd = resolveCredentials({.env = {{"OS_AUTH_TYPE", "token"}}});
  ASSERT_FALSE(odd);
  EXPECT_EQ(odd.error().message(), "auth type 'token' is not supported; use password or none");
}

TEST(Credentials, CloudsYamlSubset) {
  auto c = parseCloud(kClouds, "canopy");
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(*c, (Settings{{"auth_type", "password"},
                          {"auth_url", "http://127.0.0.1:9696/v3"},
                          {"username", "alice"},
                          {"password", "s3cret: with colon"},
                          {"project_name", "demo"},
                          {"user_domain_name", "Default"},
                          {"project_domain_name", "Default"},
                          {"region_name", "RegionOne"}}));
  auto local = parseCloud(kClouds, "local");
  ASSERT_TRUE(local);
  EXPECT_EQ(local->at("endpoint"), "http://127.0.0.1:9696");
  auto flow = parseCloud(kClouds, "flow");
  ASSERT_TRUE(flow);
  EXPECT_EQ(flow->at("endpoint"), "http://10.0.0.1:9696");
  EXPECT_EQ(parseCloud(kClouds, "other").error().code(), Errc::NotFound);
  EXPECT_EQ(parseCloud("clouds: [", "x").error().code(), Errc::InvalidArgument);
  EXPECT_EQ(parseCloud("other: {}", "x").error().message(), "no 'clouds:' mapping at the top");
  // JSON is YAML too.
  auto json = parseCloud(R"({"clouds": {"j": {"auth": {"username": "u"}}}})", "j");
  ASSERT_TRUE(json);
  EXPECT_EQ(json->at("username"), "u");
}

TEST(Credentials, CloudFromTheFirstFileFoundThenEnvironmentOnTop) {
  testing::TempDir dir;
  std::ofstream(dir.file("clouds.yaml")) << kClouds;
  CredentialInputs in{.env = {{"OS_CLOUD", "canopy"}, {"OS_PROJECT_NAME", "other"}},
                      .clouds_files = {dir.file("missing.yaml"), dir.file("clouds.yaml")}};
  auto c = resolveCredentials(in);
  ASSERT_TRUE(c) << c.error().toString();
  EXPECT_EQ(c->username, "alice");
  EXPECT_EQ(c->project_name, "other");
  EXPECT_EQ(c->region_name, "RegionOne");
  in.cloud = "local";  // --os-cloud wins over OS_CLOUD
  auto local = resolveCredentials(in);
  ASSERT_TRUE(local);
  EXPECT_EQ(local->auth_type, "none");

  in.cloud = "nowhere";
  auto missing = resolveCredentials(in);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message(), dir.file("clouds.yaml") + ": no cloud 'nowhere'");
  in.clouds_files = {dir.file("missing.yaml")};
  EXPECT_EQ(
      resolveCredentials(in).error().message(),
      "cloud 'nowhere' asked for, but no clouds file was found (" + dir.file("missing.yaml") + ")");
}

TEST(Credentials, SearchPathAsOpenstackSdk) {
  EXPECT_EQ(
      cloudsSearchPath({{"HOME", "/home/op"}, {"OS_CLIENT_CONFIG_FILE", "/x.yaml"}}),
      (std::vector<std::string>{"/x.yaml", "clouds.yaml", "/home/op/.config/openstack/clouds.yaml",
                                "/etc/openstack/clouds.yaml"}));
  EXPECT_EQ(cloudsSearchPath({}),
            (std::vector<std::string>{"clouds.yaml", "/etc/openstack/clouds.yaml"}));
}

TEST(Credentials, FlagNamesFollowTheCloudsKeys) {
  std::vector<std::string> flags;
  for (const auto& f : credentialFields()) flags.push_back(flagName(f));
  EXPECT_EQ(flags, (std::vector<std::string>{
                       "--os-auth-type", "--os-auth-url", "--os-username", "--os-password",
                       "--os-project-name", "--os-project-id", "--os-user-domain-name",
                       "--os-project-domain-name", "--os-region-name", "--os-endpoint"}));
}

}  // namespace
}  // namespace canopy::cli
