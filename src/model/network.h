#pragma once
// Neutron's network resource: its attribute map and the rules of its
// lifecycle that need no I/O (defaults derived from configuration).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "model/attributes.h"

namespace canopy::model {

// Deployment settings that decide network defaults.
struct NetworkConfig {
  std::string overlay = "geneve";  // "geneve" or "vxlan": tenant networks' encapsulation
  // Neutron's tenant_network_types: what a network gets when its creator
  // names no type; "vlan" takes an id from vlan_ranges. Empty: the overlay.
  std::string tenant_network_type{};
  int physical_mtu = 1500;
  // Neutron's overlay_ip_version: the tunnel endpoints' (the underlay's) IP
  // version, 4 or 6; IPv6's outer header is 20 bytes longer.
  int overlay_ip_version = 4;
  int64_t vni_min = 1;
  int64_t vni_max = 65535;
  // Ports' generated MACs: these three octets, then three random ones.
  std::string mac_base = "fa:16:3e";
  // Neutron's network_vlan_ranges: the physical networks that take VLAN
  // networks, each with the VLAN ids tenant networks get (none: ids must be
  // given). Empty: any physical network, ids always given.
  std::map<std::string, std::vector<std::pair<int64_t, int64_t>>> vlan_ranges{};
};

// "public,physnet1:100:200,physnet1:300:399": Neutron's network_vlan_ranges.
Result<std::map<std::string, std::vector<std::pair<int64_t, int64_t>>>> parseVlanRanges(
    std::string_view text);

// The MTU a network gets by default, which is also the largest it may have:
// the physical MTU less the encapsulation's overhead (none for flat and
// VLAN; VXLAN 50 bytes: outer IPv4 20, UDP 8, VXLAN 8, inner Ethernet 14;
// Geneve 82: the same with Geneve's 8 and room for Canopy's options, a
// destination of 12 bytes and up to four sender groups in 20, so that a
// full-sized frame's datagram is never fragmented on the underlay); 20
// more for each over an IPv6 underlay. An empty type is the configured
// overlay.
int defaultMtu(const NetworkConfig& config, std::string_view network_type = {});

// The largest segmentation id of a network type (VLAN 4094, tunnels 2^24 - 1).
int64_t maxSegmentationId(std::string_view network_type);

const ResourceSpec& networkSpec();

}  // namespace canopy::model
