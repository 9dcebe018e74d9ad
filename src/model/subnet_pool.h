#pragma once
// Neutron's subnet pools and address scopes: their attribute maps, and what
// a pool's fields mean without I/O (prefixes merged as a set, the IP
// version they give, the prefix length bounds and their defaults).

#include <vector>

#include "base/ip_set.h"
#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& addressScopeSpec();
const ResourceSpec& subnetPoolSpec();

// Completes and checks a pool (a new one, or a stored one with an update
// merged into it): prefixes non-empty, of one IP version, merged into the
// fewest CIDRs in address order; ip_version; min/max/default prefix
// lengths defaulted (8 or 64, 32 or 128, the minimum) and checked in
// Neutron's order.
Result<void> completeSubnetPool(Json& pool);

// A pool's prefixes as a set (stored pools are complete).
IpSet poolPrefixes(const Json& pool);

// Neutron's "Bad subnets request: <what>." (400 BadRequest).
Error badSubnetsRequest(std::string_view what);

}  // namespace canopy::model
