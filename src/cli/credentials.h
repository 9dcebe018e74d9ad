#pragma once
// Where `canopy` finds who the caller is and which server to ask, as the
// openstack client does: a clouds.yaml entry (--os-cloud / OS_CLOUD), then
// OS_* environment variables, then --os-* flags, each overriding the one
// before it.
//
//   CredentialInputs in{.flags = parsed_flags, .env = environment};
//   in.clouds_files = cloudsSearchPath(in.env);
//   auto creds = resolveCredentials(in);
//   if (!creds) return creds.error();   // names what is missing and how to give it
//
// Thread-safety: pure functions (loading a clouds file reads it, nothing else).

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace canopy::cli {

// Resolved credentials. auth_type is "password" (a Keystone v3 token, and the
// `network` endpoint from its catalog unless `endpoint` overrides it) or
// "none" (requests go straight to `endpoint` without a token).
struct Credentials {
  std::string auth_type{};
  std::string auth_url{};
  std::string username{};
  std::string password{};
  std::string project_name{};
  std::string project_id{};  // with auth none: sent as X-Project-Id when given
  std::string user_domain_name{};
  std::string project_domain_name{};
  std::string region_name{};
  std::string endpoint{};

  friend bool operator==(const Credentials&, const Credentials&) = default;
};

// One setting as each source names it. The flag is "--os-" + the clouds
// key with '_' written '-'.
struct CredentialField {
  std::string_view key;  // clouds.yaml key, e.g. "auth_url"
  std::string_view env;  // e.g. "OS_AUTH_URL"
  bool in_auth_section;  // clouds.yaml: under `auth:` rather than beside it
  std::string Credentials::*member;
  std::string_view help;
};

// Every setting, in the order --help lists them.
const std::vector<CredentialField>& credentialFields();
std::string flagName(const CredentialField& field);  // "--os-auth-url"

using Settings = std::map<std::string, std::string>;  // key or env name -> value

struct CredentialInputs {
  Settings flags{};     // by clouds key ("auth_url"); only those given on the command line
  Settings env{};       // the process environment, by variable name
  std::string cloud{};  // --os-cloud; OS_CLOUD is read from env when empty
  std::vector<std::string> clouds_files{};  // searched in order; the first that exists is read
};

// OS_CLIENT_CONFIG_FILE, ./clouds.yaml, ~/.config/openstack/clouds.yaml,
// /etc/openstack/clouds.yaml.
std::vector<std::string> cloudsSearchPath(const Settings& env);

// The settings of cloud `name` in a clouds.yaml (or JSON) text, by clouds key.
// NotFound when the file has no such cloud; InvalidArgument when it does not
// parse.
Result<Settings> parseCloud(std::string_view yaml_text, const std::string& name);

Result<Credentials> resolveCredentials(const CredentialInputs& inputs);

}  // namespace canopy::cli
