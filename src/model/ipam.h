#pragma once
// Address and MAC allocation, without I/O: which free address a port gets
// from a subnet's pools, SLAAC addresses, MAC generation and validation.
// Uniqueness across concurrent writers is the store's job (a key per
// allocated address, created only if absent); these functions only choose.

#include <functional>
#include <optional>
#include <random>
#include <string>

#include "model/json.h"
#include "model/subnet.h"

namespace canopy::model {

// A free address from the subnet's allocation pools (one for which `used`
// is false), found by scanning from a random point so that concurrent
// allocators rarely collide; nullopt when the pools are full (or no free one
// turned up within kMaxProbes, for huge pools that are nearly full).
inline constexpr uint64_t kMaxProbes = uint64_t{1} << 22;
std::optional<IpAddress> pickFreeAddress(const Json& subnet,
                                         const std::function<bool(const IpAddress&)>& used,
                                         std::mt19937_64& rng);

// True if the subnet hands out addresses by SLAAC (EUI-64 from the MAC).
bool isSlaac(const Json& subnet);
// The EUI-64 address of `mac` in a /64 (RFC 4291 appendix A).
IpAddress eui64(const IpPrefix& prefix, const std::string& mac);

// "fa:16:3e:12:34:56" normalised to lower case; InvalidArgument if not a
// unicast MAC in that form (dashes accepted).
Result<std::string> parseMac(std::string_view text);
// The base's first three octets plus three random ones.
std::string generateMac(const std::string& base, std::mt19937_64& rng);

}  // namespace canopy::model
