#pragma once
// Neutron's port resource: its attribute map (with the binding and
// port-security extensions) and the shape checks of fixed_ips and
// allowed_address_pairs. Allocation lives in ipam.h; the API's port kind
// ties them to the store.

#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& portSpec();

// What a port bound to a host with a canopy-agent gets: binding:vif_type
// "bridge" with a bridge of its own, "cbr" + the port id's first 11
// characters (vif_details bridge_name). Nova's libvirt driver plugs it
// with no Canopy code: os-vif's linux_bridge plugin makes the bridge and
// libvirt the tap "tap" + the same 11 characters on it, which the host's
// agent attaches to. (Nova's "tap" type does not plug with libvirt 6 and
// later: Nova creates the tap, then libvirt refuses an existing one.)
inline constexpr const char* kVifType = "bridge";
Json vifDetails(const std::string& port_id);
std::string bridgeNameOf(const std::string& port_id);

}  // namespace canopy::model
