#include "agent/metadata.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdio>

#include "model/json.h"

namespace canopy::agent {
namespace {

using model::Json;

// The OpenStack layout's versions, oldest first, as Nova lists them.
constexpr std::string_view kOpenStackVersions[] = {
    "2012-08-10", "2013-04-04", "2013-10-17", "2015-10-15", "2016-06-30",
    "2016-10-06", "2017-02-22", "2018-08-27", "2020-10-14", "latest"};
// The EC2 layout's, as Nova lists them.
constexpr std::string_view kEc2Versions[] = {"1.0",        "2007-01-19", "2007-03-01", "2007-08-29",
                                             "2007-10-10", "2007-12-15", "2008-02-01", "2008-09-01",
                                             "2009-04-04", "latest"};

MetadataAnswer text(std::string body) { return {"text/plain", std::move(body)}; }

std::string lines(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : "\n") + i;
  return out;
}

template <size_t N>
bool known(const std::string_view (&versions)[N], std::string_view v) {
  for (auto x : versions) {
    if (x == v) return true;
  }
  return false;
}

std::optional<MetadataAnswer> openstack(const InstanceMetadata& m, std::string_view rest) {
  if (rest.empty() || rest == "/") {
    std::vector<std::string> v(std::begin(kOpenStackVersions), std::end(kOpenStackVersions));
    return text(lines(v));
  }
  rest.remove_prefix(1);
  auto slash = rest.find('/');
  std::string_view version = rest.substr(0, slash);
  std::string_view file = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  if (!known(kOpenStackVersions, version)) return std::nullopt;
  if (file.empty()) {
    std::vector<std::string> files = {"meta_data.json", "network_data.json", "vendor_data.json",
                                      "vendor_data2.json"};
    if (m.user_data) files.push_back("user_data");
    return text(lines(files));
  }
  if (file == "meta_data.json") {
    Json keys = Json::object();
    Json key_list = Json::array();
    for (const auto& [name, key] : m.public_keys) {
      keys[name] = key;
      key_list.push_back({{"name", name}, {"type", "ssh"}, {"data", key}});
    }
    Json doc = {{"uuid", m.instance_id},
                {"name", m.name},
                {"hostname", m.hostname},
                {"launch_index", 0},
                {"availability_zone", m.availability_zone},
                {"project_id", m.project_id},
                {"public_keys", keys},
                {"keys", key_list},
                {"meta", Json::object()},
                {"devices", Json::array()}};
    return MetadataAnswer{"application/json", doc.dump()};
  }
  if (file == "user_data") {
    if (!m.user_data) return std::nullopt;
    return MetadataAnswer{"application/octet-stream", *m.user_data};
  }
  if (file == "vendor_data.json" || file == "vendor_data2.json") {
    return MetadataAnswer{"application/json", "{}"};
  }
  if (file == "network_data.json") {
    // The guest configures its interface by DHCP: no links to describe.
    return MetadataAnswer{
        "application/json",
        Json{{"links", Json::array()}, {"networks", Json::array()}, {"services", Json::array()}}
            .dump()};
  }
  return std::nullopt;
}

std::optional<MetadataAnswer> ec2(const InstanceMetadata& m, std::string_view version,
                                  std::string_view rest) {
  if (!known(kEc2Versions, version)) return std::nullopt;
  if (rest.empty() || rest == "/") {
    std::vector<std::string> items = {"meta-data/"};
    if (m.user_data) items.push_back("user-data");
    return text(lines(items));
  }
  if (rest == "/user-data") {
    if (!m.user_data) return std::nullopt;
    return MetadataAnswer{"application/octet-stream", *m.user_data};
  }
  if (!rest.starts_with("/meta-data")) return std::nullopt;
  rest.remove_prefix(std::string_view("/meta-data").size());
  if (rest.size() > 1 && rest.back() == '/') rest.remove_suffix(1);
  std::vector<std::pair<std::string, std::string>> items = {
      {"ami-id", "ami-00000001"},      {"ami-launch-index", "0"},
      {"hostname", m.hostname},        {"instance-id", m.instance_id},
      {"instance-type", "m1.canopy"},  {"local-hostname", m.hostname},
      {"local-ipv4", m.local_ipv4},    {"placement/availability-zone", m.availability_zone},
      {"public-hostname", m.hostname},
  };
  if (!m.public_ipv4.empty()) items.emplace_back("public-ipv4", m.public_ipv4);
  if (rest.empty() || rest == "/") {
    std::vector<std::string> names;
    for (const auto& [k, v] : items) {
      auto slash = k.find('/');
      std::string top = slash == std::string::npos ? k : k.substr(0, slash + 1);
      if (names.empty() || names.back() != top) names.push_back(top);
    }
    if (!m.public_keys.empty()) names.push_back("public-keys/");
    return text(lines(names));
  }
  rest.remove_prefix(1);
  for (const auto& [k, v] : items) {
    if (rest == k) return text(v);
  }
  if (rest == "placement") return text("availability-zone");
  if (rest.starts_with("public-keys") && !m.public_keys.empty()) {
    rest.remove_prefix(std::string_view("public-keys").size());
    if (rest.empty() || rest == "/") {
      std::vector<std::string> keys;
      for (size_t i = 0; i < m.public_keys.size(); ++i) {
        keys.push_back(std::to_string(i) + "=" + m.public_keys[i].first);
      }
      return text(lines(keys));
    }
    for (size_t i = 0; i < m.public_keys.size(); ++i) {
      std::string at = "/" + std::to_string(i);
      if (rest == at || rest == at + "/") return text("openssh-key");
      if (rest == at + "/openssh-key") return text(m.public_keys[i].second);
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<MetadataAnswer> metadataAnswer(const InstanceMetadata& m, std::string_view path) {
  if (path.empty() || path == "/") {
    std::vector<std::string> v(std::begin(kEc2Versions), std::end(kEc2Versions));
    return text(lines(v));
  }
  if (path == "/openstack" || path.starts_with("/openstack/")) {
    return openstack(m, path.substr(std::string_view("/openstack").size()));
  }
  path.remove_prefix(1);
  auto slash = path.find('/');
  std::string_view version = path.substr(0, slash);
  return ec2(m, version, slash == std::string_view::npos ? "" : path.substr(slash));
}

std::string instanceSignature(std::string_view secret, std::string_view instance_id) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int length = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(instance_id.data()), instance_id.size(),
       digest.data(), &length);
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    char b[3];
    std::snprintf(b, sizeof(b), "%02x", digest[i]);
    hex += b;
  }
  return hex;
}

}  // namespace canopy::agent
