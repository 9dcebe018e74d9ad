#include "cli/credentials.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace canopy::cli {

const std::vector<CredentialField>& credentialFields() {
  static const std::vector<CredentialField> fields = {
      {"auth_type", "OS_AUTH_TYPE", false, &Credentials::auth_type,
       "password (a Keystone v3 token) or none (no token; needs --os-endpoint)"},
      {"auth_url", "OS_AUTH_URL", true, &Credentials::auth_url,
       "Keystone v3 URL, e.g. http://127.0.0.1:9696/v3"},
      {"username", "OS_USERNAME", true, &Credentials::username, "user name"},
      {"password", "OS_PASSWORD", true, &Credentials::password, "password"},
      {"project_name", "OS_PROJECT_NAME", true, &Credentials::project_name,
       "project the token is scoped to"},
      {"project_id", "OS_PROJECT_ID", true, &Credentials::project_id,
       "project id (password: the scope; none: sent as X-Project-Id)"},
      {"user_domain_name", "OS_USER_DOMAIN_NAME", true, &Credentials::user_domain_name,
       "domain of the user (default: Default)"},
      {"project_domain_name", "OS_PROJECT_DOMAIN_NAME", true, &Credentials::project_domain_name,
       "domain of the project (default: Default)"},
      {"region_name", "OS_REGION_NAME", false, &Credentials::region_name,
       "region of the network endpoint in the catalog (default: any)"},
      {"endpoint", "OS_ENDPOINT", true, &Credentials::endpoint,
       "the server's API root, e.g. http://127.0.0.1:9696 (auth none; with a password it "
       "overrides the catalog)"},
  };
  return fields;
}

std::string flagName(const CredentialField& field) {
  std::string flag = "--os-" + std::string(field.key);
  for (char& c : flag) {
    if (c == '_') c = '-';
  }
  return flag;
}

std::vector<std::string> cloudsSearchPath(const Settings& env) {
  std::vector<std::string> paths;
  if (auto it = env.find("OS_CLIENT_CONFIG_FILE"); it != env.end() && !it->second.empty()) {
    paths.push_back(it->second);
  }
  paths.emplace_back("clouds.yaml");
  if (auto it = env.find("HOME"); it != env.end() && !it->second.empty()) {
    paths.push_back(it->second + "/.config/openstack/clouds.yaml");
  }
  paths.emplace_back("/etc/openstack/clouds.yaml");
  return paths;
}

Result<Settings> parseCloud(std::string_view yaml_text, const std::string& name) {
  try {
    YAML::Node root = YAML::Load(std::string(yaml_text));
    YAML::Node clouds = root.IsMap() ? root["clouds"] : YAML::Node();
    if (!clouds || !clouds.IsMap()) {
      return Error(Errc::InvalidArgument, "no 'clouds:' mapping at the top");
    }
    YAML::Node cloud = clouds[name];
    if (!cloud || !cloud.IsMap()) {
      return Error(Errc::NotFound, "no cloud '" + name + "'");
    }
    YAML::Node auth = cloud["auth"];
    Settings out;
    for (const auto& f : credentialFields()) {
      std::string key(f.key);
      // Either place is accepted: openstacksdk itself moves keys between them.
      for (const YAML::Node& section : {f.in_auth_section ? auth : cloud, cloud, auth}) {
        if (section && section.IsMap() && section[key] && section[key].IsScalar()) {
          out.emplace(key, section[key].as<std::string>());
          break;
        }
      }
    }
    return out;
  } catch (const YAML::Exception& e) {
    return Error(Errc::InvalidArgument, e.what());
  }
}

namespace {

Result<Settings> loadCloud(const std::vector<std::string>& files, const std::string& name) {
  for (const auto& path : files) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) return Error(Errc::Unavailable, "cannot read " + path);
    auto cloud = parseCloud(text.str(), name);
    if (!cloud) return cloud.error().withContext(path);
    return cloud;
  }
  std::string searched;
  for (const auto& path : files) searched += (searched.empty() ? "" : ", ") + path;
  return Error(Errc::NotFound,
               "cloud '" + name + "' asked for, but no clouds file was found (" + searched + ")");
}

}  // namespace

Result<Credentials> resolveCredentials(const CredentialInputs& inputs) {
  Credentials c;
  std::string cloud = inputs.cloud;
  if (cloud.empty()) {
    if (auto it = inputs.env.find("OS_CLOUD"); it != inputs.env.end()) cloud = it->second;
  }
  if (!cloud.empty()) {
    auto settings = loadCloud(inputs.clouds_files, cloud);
    if (!settings) return settings.error();
    for (const auto& f : credentialFields()) {
      if (auto it = settings->find(std::string(f.key)); it != settings->end()) {
        c.*f.member = it->second;
      }
    }
  }
  for (const auto& f : credentialFields()) {
    if (auto it = inputs.env.find(std::string(f.env));
        it != inputs.env.end() && !it->second.empty()) {
      c.*f.member = it->second;
    }
    if (auto it = inputs.flags.find(std::string(f.key)); it != inputs.flags.end()) {
      c.*f.member = it->second;
    }
  }
  if (c.auth_type.empty()) {
    c.auth_type = c.auth_url.empty() && !c.endpoint.empty() ? "none" : "password";
  }
  if (c.auth_type == "v3password") c.auth_type = "password";
  if (c.auth_type == "none" || c.auth_type == "noauth") {
    c.auth_type = "none";
    if (c.endpoint.empty()) {
      return Error(Errc::InvalidArgument,
                   "auth type none needs the server's endpoint: set OS_ENDPOINT or --os-endpoint "
                   "(e.g. http://127.0.0.1:9696)");
    }
    return c;
  }
  if (c.auth_type != "password") {
    return Error(Errc::InvalidArgument,
                 "auth type '" + c.auth_type + "' is not supported; use password or none");
  }
  std::string missing;
  for (auto [value, name] :
       {std::pair{&c.auth_url, "OS_AUTH_URL"}, std::pair{&c.username, "OS_USERNAME"},
        std::pair{&c.password, "OS_PASSWORD"}}) {
    if (value->empty()) missing += (missing.empty() ? "" : ", ") + std::string(name);
  }
  if (!missing.empty()) {
    return Error(Errc::InvalidArgument,
                 "no credentials: missing " + missing +
                     ". Give OS_* variables (as in an openrc), --os-cloud NAME with a "
                     "clouds.yaml, --os-* flags, or OS_AUTH_TYPE=none with OS_ENDPOINT");
  }
  if (c.user_domain_name.empty()) c.user_domain_name = "Default";
  if (c.project_domain_name.empty()) c.project_domain_name = "Default";
  return c;
}

}  // namespace canopy::cli
