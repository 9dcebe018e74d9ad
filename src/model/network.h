#pragma once
// Neutron's network resource: its attribute map and the rules of its
// lifecycle that need no I/O (defaults derived from configuration).

#include <cstdint>
#include <string>

#include "model/attributes.h"

namespace canopy::model {

// Deployment settings that decide network defaults.
struct NetworkConfig {
  std::string overlay = "geneve";  // "geneve" or "vxlan": tenant networks' encapsulation
  int physical_mtu = 1500;
  int64_t vni_min = 1;
  int64_t vni_max = 65535;
  // Ports' generated MACs: these three octets, then three random ones.
  std::string mac_base = "fa:16:3e";
};

// The MTU a tenant network gets by default: the physical MTU less the overlay's
// overhead (VXLAN 50 bytes; Geneve 58 with Canopy's 8-byte option).
int defaultMtu(const NetworkConfig& config);

const ResourceSpec& networkSpec();

}  // namespace canopy::model
