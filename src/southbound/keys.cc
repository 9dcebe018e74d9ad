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

const state::Document* find(const state::Tables& t, std::string_view collection,
                            std::string_view id) {
  auto c = t.find(collection);
  if (c == t.end()) return nullptr;
  auto d = c->second.find(id);
  return d == c->second.end() ? nullptr : &d->second;
}

}  // namespace

uint32_t keyOf(const state::Tables& tables, KeyKind kind, std::string_view id) {
  const state::Document* d = find(tables, kKeysCollection, keyId(kind, id));
  if (d == nullptr || !d->doc.is_object()) return 0;
  auto it = d->doc.find("key");
  return it != d->doc.end() && it->is_number_unsigned() ? it->get<uint32_t>() : 0;
}

std::vector<std::pair<KeyKind, std::string>> missingKeys(const state::Tables& tables) {
  std::vector<std::pair<KeyKind, std::string>> missing;
  auto scan = [&](std::string_view collection, KeyKind kind) {
    auto c = tables.find(collection);
    if (c == tables.end()) return;
    for (const auto& [id, doc] : c->second) {
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

Result<void> assignKeys(state::ModelState& state,
                        std::span<const std::pair<KeyKind, std::string>> objects) {
  const std::string counter = state::documentKey(kCountersCollection, "keys");
  for (int attempt = 0; attempt < 20; ++attempt) {
    std::vector<store::Compare> compares;
    std::vector<store::Op> ops;
    state.read([&](const state::Tables& t) {
      uint64_t next = 1;
      const state::Document* c = find(t, kCountersCollection, "keys");
      if (c != nullptr) {
        next = c->doc.value("next", uint64_t{1});
        compares.push_back(
            store::Compare::modRevisionIs(counter, store::Compare::Op::Equal, c->mod_revision));
      } else {
        compares.push_back(store::Compare::absent(counter));
      }
      for (const auto& [kind, id] : objects) {
        if (keyOf(t, kind, id) != 0) continue;
        std::string key = state::documentKey(kKeysCollection, keyId(kind, id));
        compares.push_back(store::Compare::absent(key));
        ops.push_back(store::Op::put(key, model::Json{{"key", next++}}.dump()));
      }
      ops.push_back(store::Op::put(counter, model::Json{{"next", next}}.dump()));
    });
    if (ops.size() == 1) return ok();  // every one got a key meanwhile
    auto r = state.commit(compares, ops);
    if (r) return ok();
    if (r.error().code() != Errc::Conflict) return std::move(r).error();
  }
  return Error(Errc::Unavailable, "southbound keys: the counter kept moving; try again");
}

}  // namespace canopy::southbound
