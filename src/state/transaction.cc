#include "state/transaction.h"

#include <algorithm>
#include <ctime>

namespace canopy::state {

const Json* Transaction::current(std::string_view collection, std::string_view id) const {
  if (auto p = pending_.find(collection); p != pending_.end()) {
    if (auto d = p->second.find(std::string(id)); d != p->second.end()) {
      return d->second ? &*d->second : nullptr;
    }
  }
  const Document* d = find(collection, id);
  return d == nullptr ? nullptr : &d->doc;
}

std::vector<const Json*> Transaction::indexed(std::string_view index, std::string_view collection,
                                              const std::string& key) const {
  std::vector<const Json*> out;
  auto p = pending_.find(collection);
  const Collection& stored = tables_.collection(collection);
  for (const auto& id : tables_.lookup(index, key)) {
    if (p != pending_.end() && p->second.count(id)) continue;  // rewritten here
    if (auto d = stored.find(id); d != stored.end()) out.push_back(&d->second.doc);
  }
  const IndexSpec* spec = tables_.indexSpec(index);
  if (p != pending_.end() && spec != nullptr) {
    for (const auto& [id, doc] : p->second) {
      if (!doc) continue;
      auto keys = spec->keys(*doc);
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) out.push_back(&*doc);
    }
  }
  return out;
}

void Transaction::guard(std::string_view collection, const std::string& id,
                        store::Revision mod_revision) {
  std::string key = documentKey(collection, id);
  for (const auto& c : compares_) {
    if (c.key == key) return;
  }
  compares_.push_back(store::Compare::modRevisionIs(key, store::Compare::Op::Equal, mod_revision));
}

void Transaction::guardAbsent(std::string_view collection, const std::string& id) {
  std::string key = documentKey(collection, id);
  for (const auto& c : compares_) {
    if (c.key == key) return;
  }
  compares_.push_back(store::Compare::absent(key));
}

void Transaction::guardRead(std::string_view collection, const std::string& id) {
  if (const Document* d = find(collection, id); d != nullptr) {
    guard(collection, id, d->mod_revision);
  } else {
    guardAbsent(collection, id);
  }
}

void Transaction::put(std::string_view collection, const std::string& id, const Json& doc,
                      store::LeaseId lease) {
  std::string key = documentKey(collection, id);
  writes_.insert_or_assign(key, store::Op::put(key, doc.dump(), lease));
  pending_[std::string(collection)][id] = doc;
}

void Transaction::remove(std::string_view collection, const std::string& id) {
  std::string key = documentKey(collection, id);
  writes_.insert_or_assign(key, store::Op::del(key));
  pending_[std::string(collection)][id] = std::nullopt;
}

void Transaction::update(std::string_view collection, const std::string& id, const Json& doc) {
  guardRead(collection, id);
  put(collection, id, doc);
}

void Transaction::erase(std::string_view collection, const std::string& id) {
  guardRead(collection, id);
  remove(collection, id);
}

void Transaction::claim(const std::string& key, const std::string& value) {
  compares_.push_back(store::Compare::absent(key));
  writes_.insert_or_assign(key, store::Op::put(key, value));
}

void Transaction::release(const std::string& key) {
  writes_.insert_or_assign(key, store::Op::del(key));
}

void Transaction::touch(std::string_view collection, const std::string& id) {
  const Document* d = find(collection, id);
  if (d == nullptr) return;
  std::string key = documentKey(collection, id);
  if (writes_.count(key) != 0) return;  // already written by this transaction
  guard(collection, id, d->mod_revision);
  Json doc = d->doc;
  doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
  doc["updated_at"] = now_;
  writes_.insert_or_assign(key, store::Op::put(key, doc.dump()));
}

std::vector<store::Op> Transaction::ops() const {
  std::vector<store::Op> out;
  out.reserve(writes_.size());
  for (const auto& [key, op] : writes_) out.push_back(op);
  return out;
}

std::string timestamp(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace canopy::state
