#pragma once
// Octavia's resources as the API accepts them: attribute maps (types,
// defaults, what POST and PUT may set) for the generic validator
// (model/attributes.h), the enumerations, and what the `canopy` provider
// does with each option.
//
// Thread-safety: immutable values.

#include <string>
#include <string_view>

#include "model/attributes.h"

namespace canopy::octavia {

// One resource: its spec, its collection in the model, its name in
// Octavia's messages ("Load Balancer 5b2c... not found.").
struct Resource {
  model::ResourceSpec spec;
  std::string_view store;  // the model's collection
  std::string_view name;
  // Attributes kept in the document that the API does not show.
  std::vector<std::string> internal{};
};

const Resource& loadBalancerResource();
const Resource& listenerResource();
const Resource& poolResource();
const Resource& memberResource();
const Resource& healthMonitorResource();

// Octavia's layer-4 families: listeners of one family on one port of a
// load balancer conflict (HTTP, HTTPS, TERMINATED_HTTPS and TCP are TCP).
std::string_view l4Family(std::string_view protocol);
// Whether a pool of `pool` protocol may serve a listener of `listener`
// protocol (Octavia's VALID_LISTENER_POOL_PROTOCOL_MAP).
bool poolServesListener(std::string_view pool, std::string_view listener);

// What the `canopy` provider refuses, as Octavia's 501 "Provider 'canopy'
// does not support a requested option: <why>"; nullopt when supported.
std::optional<std::string> unsupportedListener(const model::Json& listener);
std::optional<std::string> unsupportedPool(const model::Json& pool);
std::optional<std::string> unsupportedMonitor(const model::Json& monitor);
std::optional<std::string> unsupportedMember(const model::Json& member);

inline constexpr std::string_view kProvider = "canopy";

}  // namespace canopy::octavia
