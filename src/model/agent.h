#pragma once
// The agents collection's document, one per host: written by the southbound
// when a canopy-agent says hello and when its liveness changes, or by an
// admin for a static VTEP (a host without a canopy-agent). Its one reader
// and one writer of JSON; everything else (views, gateway placement, trace,
// /v2.0/agents, status) takes an Agent.
//
//   Agent a = Agent::fromJson(doc);         // tolerant: bad fields take defaults
//   if (a.alive && a.takesGeneve()) ...
//   txn.update("agents", a.host, a.toJson());
//
// Thread-safety: a value type.

#include <string>
#include <string_view>
#include <vector>

#include "model/json.h"

namespace canopy::model {

// Neutron's default availability zone.
inline constexpr std::string_view kDefaultZone = "nova";

struct Agent {
  std::string host{};
  std::string tunnel_ip{};
  // "geneve", "vxlan": what its tunnels take. None said: Geneve.
  std::vector<std::string> encapsulations{};
  bool gateway_capable = false;
  std::vector<std::string> physical_networks{};  // with an uplink on this host
  std::string version{};
  bool fast_path = false;  // its established flows run in the kernel
  bool alive = true;
  bool is_static = false;  // a static VTEP, registered through the API
  std::string availability_zone{kDefaultZone};
  // What an admin says of the agent (PUT /v2.0/agents/<host>); the agent's
  // own hello keeps them. An agent that is administratively down keeps
  // the gateways it holds but is given no new ones.
  std::string description{};
  bool admin_state_up = true;

  // A document as stored; a field that is missing or of the wrong type
  // takes its default (the store may hold documents of older versions).
  static Agent fromJson(const Json& doc);
  Json toJson() const;

  bool takesGeneve() const;
  bool hasPhysicalNetwork(std::string_view name) const;
};

}  // namespace canopy::model
