#pragma once
// The exact-match flow cache: the simulator's decision for a flow (its key
// plus the conntrack state it was decided under), tagged with every topology
// object the decision depended on. A topology change invalidates the
// entries of the objects it touched, by tag, never the whole cache. Bounded:
// the least recently used entry makes room.
//
//   FlowCache<Actions> cache(65536);
//   if (const Actions* a = cache.find(key)) return execute(*a);
//   auto [actions, tags] = simulate(packet);
//   cache.insert(key, actions, tags);
//   ...
//   cache.invalidate(tagOf(port_id));        // that port changed
//
// Thread-safety: none; each datapath worker owns its cache (a shard).

#include <cstdint>
#include <cstring>
#include <list>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "datapath/packet/parser.h"

namespace canopy::datapath::flowcache {

// A topology object a decision depended on (a hash of its kind and id).
using Tag = uint64_t;

// A flow and what else its decision depends on: the conntrack state bits
// and zone it was decided under. Fixed layout, compared and hashed as bytes.
struct CacheKey {
  packet::FlowKey flow;
  uint32_t context = 0;
  uint32_t reserved = 0;

  friend bool operator==(const CacheKey& a, const CacheKey& b) { return packet::sameBytes(a, b); }
};
static_assert(sizeof(CacheKey) == 72);
static_assert(std::has_unique_object_representations_v<CacheKey>);

struct CacheKeyHash {
  size_t operator()(const CacheKey& k) const noexcept {
    return static_cast<size_t>(packet::flowKeyHash(k.flow) ^
                               (uint64_t{k.context} * 0x9e3779b97f4a7c15ULL));
  }
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t inserts = 0;
  uint64_t evictions = 0;
  uint64_t invalidated = 0;
};

template <typename Decision>
class FlowCache {
 public:
  explicit FlowCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // The cached decision, or nullptr (a miss). Valid until the next insert
  // or invalidate.
  const Decision* find(const CacheKey& key) noexcept {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      ++stats_.misses;
      return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    ++stats_.hits;
    return &it->second.decision;
  }

  // Caches (or replaces) the decision for `key`, tagged with `tags`.
  void insert(const CacheKey& key, Decision decision, std::span<const Tag> tags) {
    if (auto old = entries_.find(key); old != entries_.end()) remove(old);
    while (entries_.size() >= capacity_) {
      remove(entries_.find(lru_.back()));
      ++stats_.evictions;
    }
    lru_.push_front(key);
    uint64_t id = ++next_id_;
    auto [it, inserted] = entries_.emplace(key, Entry{std::move(decision), id, lru_.begin()});
    by_id_.emplace(id, &it->first);
    for (Tag t : tags) {
      auto& ids = by_tag_[t];
      ids.push_back(id);
      // Ids of entries gone by eviction stay until the list doubles.
      if (ids.size() >= 64 && (ids.size() & (ids.size() - 1)) == 0) compact(ids);
    }
    ++stats_.inserts;
  }

  // Removes every entry tagged `tag`; how many.
  size_t invalidate(Tag tag) {
    auto t = by_tag_.find(tag);
    if (t == by_tag_.end()) return 0;
    std::vector<uint64_t> ids = std::move(t->second);
    by_tag_.erase(t);
    size_t n = 0;
    for (uint64_t id : ids) {
      auto k = by_id_.find(id);
      if (k == by_id_.end()) continue;  // already gone
      remove(entries_.find(*k->second));
      ++n;
    }
    stats_.invalidated += n;
    return n;
  }

  void clear() {
    entries_.clear();
    lru_.clear();
    by_tag_.clear();
    by_id_.clear();
  }

  size_t size() const noexcept { return entries_.size(); }
  size_t capacity() const noexcept { return capacity_; }
  const CacheStats& stats() const noexcept { return stats_; }

 private:
  struct Entry {
    Decision decision;
    uint64_t id;  // never reused: what the tag lists hold
    typename std::list<CacheKey>::iterator lru;
  };
  using Map = std::unordered_map<CacheKey, Entry, CacheKeyHash>;

  void remove(typename Map::iterator it) {
    by_id_.erase(it->second.id);
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  void compact(std::vector<uint64_t>& ids) {
    std::erase_if(ids, [&](uint64_t id) { return !by_id_.count(id); });
  }

  const size_t capacity_;
  Map entries_;
  std::list<CacheKey> lru_;  // most recent first
  // A tag's entries by id (possibly some that are gone), and each live
  // entry's key by id: an insert appends to a few vectors instead of
  // hashing its key into a set per tag.
  std::unordered_map<Tag, std::vector<uint64_t>> by_tag_;
  std::unordered_map<uint64_t, const CacheKey*> by_id_;
  uint64_t next_id_ = 0;
  CacheStats stats_;
};

}  // namespace canopy::datapath::flowcache
