#pragma once
// The southbound's keys: a small integer for every network, port, router,
// security group and agent host, assigned once and kept in the store, the
// same on every host (tunnel options and conntrack zones use them, like
// OVN's tunnel keys).
//
// Store layout (loaded by ModelState like every collection):
//   /canopy/v1/southbound-keys/<kind>:<id>   -> {"key": N}
//   /canopy/v1/southbound-counters/keys      -> {"next": N}
//
//   auto missing = state.read([](const auto& t) { return missingKeys(t); });
//   if (!missing.empty()) assignKeys(state, missing);
//   uint32_t k = keyOf(tables, KeyKind::Port, port_id);   // 0: none yet
//
// Thread-safety: keyOf/missingKeys read a Tables the caller holds;
// assignKeys commits through ModelState (any thread).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "state/model_state.h"

namespace canopy::southbound {

enum class KeyKind : uint8_t { Network, Port, Router, Group, Host };

inline constexpr std::string_view kKeysCollection = "southbound-keys";
inline constexpr std::string_view kCountersCollection = "southbound-counters";
inline constexpr std::string_view kAgentsCollection = "agents";
// Which replica serves each connected agent now: {"replica", "session",
// "since"}, held by the replica's lease (it goes when the replica dies).
inline constexpr std::string_view kSessionsCollection = "agent-sessions";

uint32_t keyOf(const state::Tables& tables, KeyKind kind, std::string_view id);

// What the model admits into the southbound's collections: keys and
// counters with their numbers. Others pass.
Result<void> checkStoredDocument(std::string_view collection, std::string_view id,
                                 const model::Json& doc);

// The objects (ports, networks, routers, security groups, agents) that have
// no key yet.
std::vector<std::pair<KeyKind, std::string>> missingKeys(const state::Tables& tables);

// Gives each a key, in one transaction with the counter (retried when
// another writer moved it). Objects that got a key meanwhile keep theirs.
Result<void> assignKeys(state::ModelState& state,
                        std::span<const std::pair<KeyKind, std::string>> objects,
                        const state::WriteOptions& options = {});

}  // namespace canopy::southbound
