#pragma once
// What subnets and subnet pools share: a pool's address scope rules, and a
// subnet's CIDR allocated from a pool (Neutron's subnet_alloc).
//
// Thread-safety: functions of one request's Transaction.

#include "api/kind.h"

namespace canopy::api::detail {

// A pool's address scope: one the caller sees, of the pool's IP version,
// whose other pools share no prefix with this one, and on whose networks no
// subnet of that version stays outside the scope.
Result<void> checkPoolScope(const Json& pool, const Transaction& ctx);

// Resolves a new subnet's pool (subnetpool_id, use_default_subnetpool) and,
// when it has one, the CIDR it gets from it (prefixlen or the pool's
// default; a given cidr must be free in the pool). Leaves a subnet without
// a pool as it is; drops the request-only attributes.
Result<void> allocateFromPool(Json& subnet, const Transaction& ctx);

// Neutron's rules for pools on one network: subnets of one IP version come
// from one pool, or from pools of one address scope.
Result<void> checkNetworkPools(const Json& subnet, const Transaction& ctx);

// The address scope of a network's subnets of `version` (null if none).
Json networkAddressScope(const state::Tables& tables, const std::string& network_id, int version);

}  // namespace canopy::api::detail
