#pragma once
// Neutron's port resource: its attribute map (with the binding and
// port-security extensions) and the shape checks of fixed_ips and
// allowed_address_pairs. Allocation lives in ipam.h; the API's port kind
// ties them to the store.

#include "model/attributes.h"

namespace canopy::model {

const ResourceSpec& portSpec();

}  // namespace canopy::model
