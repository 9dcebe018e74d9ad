#include "model/agent.h"

#include <algorithm>

namespace canopy::model {
namespace {

std::vector<std::string> strings(const Json& doc, const char* key) {
  std::vector<std::string> out;
  auto it = doc.find(key);
  if (it == doc.end() || !it->is_array()) return out;
  for (const auto& v : *it) {
    if (v.is_string()) out.push_back(v.get<std::string>());
  }
  return out;
}

bool flag(const Json& doc, const char* key, bool fallback) {
  auto it = doc.find(key);
  return it != doc.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

Agent Agent::fromJson(const Json& doc) {
  Agent a;
  if (!doc.is_object()) return a;
  a.host = stringAt(doc, "host");
  if (a.host.empty()) a.host = stringAt(doc, "id");
  a.tunnel_ip = stringAt(doc, "tunnel_ip");
  a.encapsulations = strings(doc, "encapsulations");
  a.gateway_capable = flag(doc, "gateway_capable", false);
  a.physical_networks = strings(doc, "physical_networks");
  a.version = stringAt(doc, "version");
  a.fast_path = flag(doc, "fast_path", false);
  a.alive = flag(doc, "alive", false);
  a.is_static = flag(doc, "static", false);
  a.availability_zone = stringAt(doc, "availability_zone");
  if (a.availability_zone.empty()) a.availability_zone = kDefaultZone;
  a.description = stringAt(doc, "description");
  a.admin_state_up = flag(doc, "admin_state_up", true);
  return a;
}

Json Agent::toJson() const {
  Json doc = {{"id", host},
              {"host", host},
              {"tunnel_ip", tunnel_ip},
              {"encapsulations", encapsulations},
              {"gateway_capable", gateway_capable},
              {"physical_networks", physical_networks},
              {"version", version},
              {"alive", alive},
              {"availability_zone", availability_zone}};
  if (fast_path) doc["fast_path"] = true;
  if (is_static) doc["static"] = true;
  if (!description.empty()) doc["description"] = description;
  if (!admin_state_up) doc["admin_state_up"] = false;
  return doc;
}

bool Agent::takesGeneve() const {
  return encapsulations.empty() ||
         std::find(encapsulations.begin(), encapsulations.end(), "geneve") != encapsulations.end();
}

bool Agent::hasPhysicalNetwork(std::string_view name) const {
  return std::find(physical_networks.begin(), physical_networks.end(), name) !=
         physical_networks.end();
}

}  // namespace canopy::model
