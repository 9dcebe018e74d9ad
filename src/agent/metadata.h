#pragma once
// What the metadata service answers a guest at 169.254.169.254 when Canopy
// runs without Nova: the instance's basics from its port, in the two
// layouts cloud-init reads (OpenStack's /openstack/... and EC2's
// /latest/meta-data/...); and, with Nova, the signature of the instance id
// that Nova's metadata API checks (X-Instance-ID-Signature, as
// neutron-metadata-agent signs it).
//
//   auto a = metadataAnswer(instance, "/openstack/latest/meta_data.json");
//   if (a) respond(200, a->content_type, a->body); else respond(404);
//
// Thread-safety: pure functions.

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace canopy::agent {

struct InstanceMetadata {
  std::string instance_id;  // the port's device_id (a UUID)
  std::string project_id;
  std::string name;      // the instance's name
  std::string hostname;  // the port's DNS name, else the name
  std::string local_ipv4;
  std::string public_ipv4;  // its floating IP, if any
  std::string availability_zone = "nova";
  std::vector<std::pair<std::string, std::string>> public_keys;  // name, OpenSSH key
  std::optional<std::string> user_data;
};

struct MetadataAnswer {
  std::string content_type;
  std::string body;
};

// The answer at `path` (without the query), or nullopt: not found.
std::optional<MetadataAnswer> metadataAnswer(const InstanceMetadata& instance,
                                             std::string_view path);

// HMAC-SHA256 of the instance id with the shared secret, in lower-case hex.
std::string instanceSignature(std::string_view secret, std::string_view instance_id);

}  // namespace canopy::agent
