#include "southbound/keys.h"

#include "model/json.h"

namespace canopy::southbound {
namespace {

std::string_view kindName(KeyKind kind) {
  switch (kind) {
    case KeyKind::Network:
      return "network";
    case KeyKind::Port:
      return "port";
    case KeyKind::Router:
      return "router";
    case KeyKind::Group:
      return "group";
    case KeyKind::Host:
      return "host";
  }
  return "?";
}

std::string keyId(KeyKind kind, std::string_view id) {
  return std::string(kindName(kind)) + ":" + std::string(id);
}

}  // namespace

uint32_t keyOf(const state::Tables& tables, KeyKind kind, std::string_view id) {
  const state::Document* d = tables.find(kKeysCollection, keyId(kind, id));
  if (d == nullptr || !d->doc.is_object()) return 0;
  auto it = d->doc.find("key");
  return it != d->doc.end() && it->is_number_unsigned() ? it->get<uint32_t>() : 0;
}

std::vector<std::pair<KeyKind, std::string>> missingKeys(const state::Tables& tables) {
  std::vector<std::pair<KeyKind, std::string>> missing;
  auto scan = [&](std::string_view collection, KeyKind kind) {
    for (const auto& [id, doc] : tables.collection(collection)) {
      if (keyOf(tables, kind, id) == 0) missing.emplace_back(kind, id);
    }
  };
  scan("networks", KeyKind::Network);
  scan("ports", KeyKind::Port);
  scan("routers", KeyKind::Router);
  scan("security-groups", KeyKind::Group);
  scan(kAgentsCollection, KeyKind::Host);
  return missing;
}

Result<void> checkStoredDocument(std::string_view collection, std::string_view /*id*/,
                                 const model::Json& doc) {
  auto number = [&](const char* field) -> Result<void> {
    auto it = doc.find(field);
    if (it == doc.end() || !it->is_number_unsigned()) {
      return Error(Errc::InvalidArgument, std::string("\"") + field + "\" is not a number");
    }
    return ok();
  };
  if (collection == kKeysCollection) return number("key");
  if (collection == kCountersCollection) return number("next");
  return ok();
}

Result<void> assignKeys(state::ModelState& state,
                        std::span<const std::pair<KeyKind, std::string>> objects,
                        const state::WriteOptions& options) {
  auto r = state.write(options, [&](state::Transaction& txn) -> Result<void> {
    const state::Document* counter = txn.find(kCountersCollection, "keys");
    uint64_t next = counter != nullptr ? counter->doc.value("next", uint64_t{1}) : 1;
    uint64_t first = next;
    for (const auto& [kind, id] : objects) {
      if (keyOf(txn.tables(), kind, id) != 0) continue;  // got one meanwhile
      std::string key_id = keyId(kind, id);
      txn.guardAbsent(kKeysCollection, key_id);
      txn.put(kKeysCollection, key_id, model::Json{{"key", next++}});
    }
    if (next != first) txn.update(kCountersCollection, "keys", model::Json{{"next", next}});
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

}  // namespace canopy::southbound
