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
#include <unordered_set>
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

  friend bool operator==(const CacheKey&, const CacheKey&) = default;
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
    Entry e{std::move(decision), std::vector<Tag>(tags.begin(), tags.end()), lru_.begin()};
    for (Tag t : e.tags) by_tag_[t].insert(key);
    entries_.emplace(key, std::move(e));
    ++stats_.inserts;
  }

  // Removes every entry tagged `tag`; how many.
  size_t invalidate(Tag tag) {
    auto t = by_tag_.find(tag);
    if (t == by_tag_.end()) return 0;
    std::vector<CacheKey> keys(t->second.begin(), t->second.end());
    size_t n = 0;
    for (const auto& k : keys) {
      if (auto it = entries_.find(k); it != entries_.end()) {
        remove(it);
        ++n;
      }
    }
    by_tag_.erase(tag);
    stats_.invalidated += n;
    return n;
  }

  void clear() {
    entries_.clear();
    lru_.clear();
    by_tag_.clear();
  }

  size_t size() const noexcept { return entries_.size(); }
  size_t capacity() const noexcept { return capacity_; }
  const CacheStats& stats() const noexcept { return stats_; }

 private:
  struct Entry {
    Decision decision;
    std::vector<Tag> tags;
    typename std::list<CacheKey>::iterator lru;
  };
  using Map = std::unordered_map<CacheKey, Entry, CacheKeyHash>;

  void remove(typename Map::iterator it) {
    for (Tag t : it->second.tags) {
      if (auto s = by_tag_.find(t); s != by_tag_.end()) {
        s->second.erase(it->first);
        if (s->second.empty()) by_tag_.erase(s);
      }
    }
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }

  const size_t capacity_;
  Map entries_;
  std::list<CacheKey> lru_;  // most recent first
  std::unordered_map<Tag, std::unordered_set<CacheKey, CacheKeyHash>> by_tag_;
  CacheStats stats_;
};

}  // namespace canopy::datapath::flowcache
