#pragma once
// Neutron's subnet resource: its attribute map, and the addressing rules that
// need no I/O: CIDR, gateway, allocation pools (defaults and checks), DNS
// servers, host routes, IPv6 modes, overlap with the network's other subnets.

#include <vector>

#include "base/ip.h"
#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& subnetSpec();

// Checks a subnet being created (attributes already validated by type) and
// fills what Neutron derives: cidr normalised, gateway_ip (first host unless
// given or null), allocation_pools (the CIDR less network, broadcast and
// gateway, unless given). `siblings` are the network's other subnets' CIDRs.
Result<void> completeNewSubnet(Json& subnet, const std::vector<IpPrefix>& siblings);

// Checks a subnet after an update was merged into it (gateway and pools may
// have changed; cidr cannot).
Result<void> checkSubnetAddressing(const Json& subnet);

// The allocation pools of a subnet as address ranges, in order.
struct IpRange {
  IpAddress first;
  IpAddress last;
};
std::vector<IpRange> allocationPools(const Json& subnet);

}  // namespace canopy::model
