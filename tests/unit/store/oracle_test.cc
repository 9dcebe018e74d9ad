// Differential test: random transactions applied to each backend and to a
// trivial in-memory model of etcd's semantics must agree on every response,
// on the final contents and on the whole watch history. The seed is printed;
// CANOPY_SEED=<n> replays a failure.

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <random>

#include "store_fixture.h"

namespace canopy::store {
namespace {

class Model {
 public:
  // Starts from what the store holds (etcd's layout key) at its revision.
  Model(const std::vector<KeyValue>& existing, Revision revision) : rev_(revision) {
    for (const auto& kv : existing) kv_[kv.key] = kv;
  }

  TxnResponse txn(std::span<const Compare> compares, std::span<const Op> success,
                  std::span<const Op> failure) {
    TxnResponse r;
    r.succeeded = true;
    for (const Compare& c : compares) {
      if (!holds(c)) {
        r.succeeded = false;
        break;
      }
    }
    Revision next = rev_ + 1;
    bool changed = false;
    for (const Op& op : r.succeeded ? success : failure) {
      OpResult out;
      switch (op.type) {
        case Op::Type::Put: {
          auto it = kv_.find(op.key);
          KeyValue kv{op.key, op.value, it == kv_.end() ? next : it->second.create_revision, next,
                      it == kv_.end() ? 1 : it->second.version + 1};
          kv_[op.key] = kv;
          history_.push_back({Event::Type::Put, kv});
          changed = true;
          break;
        }
        case Op::Type::Delete:
          if (kv_.erase(op.key) != 0) {
            history_.push_back({Event::Type::Delete, {op.key, "", 0, next, 0}});
            out.deleted = 1;
            changed = true;
          }
          break;
        case Op::Type::DeletePrefix:
          for (auto it = kv_.lower_bound(op.key);
               it != kv_.end() && it->first.starts_with(op.key);) {
            history_.push_back({Event::Type::Delete, {it->first, "", 0, next, 0}});
            it = kv_.erase(it);
            ++out.deleted;
            changed = true;
          }
          break;
        case Op::Type::Get:
          if (auto it = kv_.find(op.key); it != kv_.end()) out.kvs.push_back(it->second);
          break;
        case Op::Type::GetPrefix:
          for (auto it = kv_.lower_bound(op.key); it != kv_.end() && it->first.starts_with(op.key);
               ++it) {
            out.kvs.push_back(it->second);
          }
          break;
      }
      r.results.push_back(std::move(out));
    }
    if (changed) rev_ = next;
    r.revision = rev_;
    return r;
  }

  std::vector<KeyValue> all() const {
    std::vector<KeyValue> out;
    for (auto& [k, v] : kv_) out.push_back(v);
    return out;
  }
  const std::vector<Event>& history() const { return history_; }
  const KeyValue* find(const std::string& key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
  }

 private:
  bool holds(const Compare& c) const {
    const KeyValue* kv = find(c.key);
    int cmp = 0;
    if (c.target == Compare::Target::Value) {
      if (kv == nullptr) return false;
      cmp = kv->value < c.value ? -1 : (kv->value > c.value ? 1 : 0);
    } else {
      int64_t actual = kv == nullptr                                 ? 0
                       : c.target == Compare::Target::Version        ? kv->version
                       : c.target == Compare::Target::CreateRevision ? kv->create_revision
                                                                     : kv->mod_revision;
      cmp = actual < c.number ? -1 : (actual > c.number ? 1 : 0);
    }
    switch (c.op) {
      case Compare::Op::Equal:
        return cmp == 0;
      case Compare::Op::NotEqual:
        return cmp != 0;
      case Compare::Op::Less:
        return cmp < 0;
      case Compare::Op::Greater:
        return cmp > 0;
    }
    return false;
  }

  std::map<std::string, KeyValue> kv_;
  Revision rev_ = 0;
  std::vector<Event> history_;
};

bool sameResults(const std::vector<OpResult>& a, const std::vector<OpResult>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].kvs != b[i].kvs || a[i].deleted != b[i].deleted) return false;
  }
  return true;
}

TEST_P(StoreTest, AgreesWithATrivialModelOnRandomTransactions) {
  uint64_t seed = std::random_device{}();
  if (const char* s = std::getenv("CANOPY_SEED")) seed = std::strtoull(s, nullptr, 10);
  SCOPED_TRACE("replay with CANOPY_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](uint64_t n) { return rng() % n; };

  // Point writes go to /p/*, prefix deletes to /q/ (and its sub-prefixes), so
  // branches never write a key twice; reads go anywhere.
  const std::vector<std::string> p_keys = {"/p/a", "/p/b", "/p/c", "/p/\xff", "/p/a/x"};
  const std::vector<std::string> q_keys = {"/q/1", "/q/2", "/q/2/z"};
  const std::vector<std::string> prefixes = {"/q/", "/q/2", ""};
  auto existing = must(store().range(""));
  Model model(existing.kvs, existing.revision);

  auto randomBranch = [&]() {
    std::vector<Op> ops;
    std::vector<std::string> keys = p_keys;
    std::shuffle(keys.begin(), keys.end(), rng);
    size_t n = pick(4);
    for (size_t i = 0; i < n; ++i) {
      switch (pick(5)) {
        case 0:
        case 1:
          ops.push_back(Op::put(keys[i], std::to_string(pick(3))));
          break;
        case 2:
          ops.push_back(Op::del(keys[i]));
          break;
        case 3:
          ops.push_back(Op::get(pick(2) ? keys[i] : q_keys[pick(q_keys.size())]));
          break;
        default:
          ops.push_back(Op::getPrefix(prefixes[pick(prefixes.size())]));
          break;
      }
    }
    if (pick(4) == 0)
      ops.push_back(Op::deletePrefix(pick(2) ? "/q/" : "/q/2"));
    else if (pick(3) == 0)
      ops.push_back(Op::put(q_keys[pick(q_keys.size())] + "/new", "q"));
    return ops;
  };

  for (int step = 0; step < 300; ++step) {
    if (pick(8) == 0) {
      // Fill /q/ so that prefix deletes have work to do.
      std::vector<Op> fill;
      for (auto& k : q_keys) fill.push_back(Op::put(k, "fill"));
      model.txn({}, fill, {});
      must(store().txn({}, fill, {}));
      continue;
    }
    std::vector<Compare> compares;
    for (size_t i = 0, n = pick(3); i < n; ++i) {
      std::string key = pick(2) ? p_keys[pick(p_keys.size())] : q_keys[pick(q_keys.size())];
      auto op = static_cast<Compare::Op>(pick(4));
      const KeyValue* kv = model.find(key);
      switch (pick(4)) {
        case 0:
          compares.push_back(Compare::valueIs(key, op, std::to_string(pick(3))));
          break;
        case 1:
          compares.push_back(Compare::versionIs(key, op, kv ? kv->version : 0));
          break;
        case 2:
          compares.push_back(
              Compare::modRevisionIs(key, op, (kv ? kv->mod_revision : 0) + int64_t(pick(2))));
          break;
        default:
          compares.push_back(
              Compare{key, Compare::Target::CreateRevision, op, kv ? kv->create_revision : 0, {}});
          break;
      }
    }
    auto success = randomBranch();
    auto failure = randomBranch();
    auto want = model.txn(compares, success, failure);
    auto got = must(store().txn(compares, success, failure));
    ASSERT_EQ(got.succeeded, want.succeeded) << "step " << step;
    ASSERT_EQ(got.revision, want.revision) << "step " << step;
    ASSERT_TRUE(sameResults(got.results, want.results)) << "step " << step;
    if (step % 75 == 74) reopen();
  }

  EXPECT_EQ(must(store().range("")).kvs, model.all());
  auto w = must(store().watch("", r(1)));
  std::vector<Event> events;
  while (events.size() < model.history().size()) {
    auto batch = must(w->next(std::chrono::seconds(1)));
    ASSERT_FALSE(batch.empty());
    events.insert(events.end(), batch.begin(), batch.end());
  }
  EXPECT_EQ(events, model.history());
}

}  // namespace
}  // namespace canopy::store
