#include "store/store.h"

namespace canopy::store {

std::string prefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto last = static_cast<unsigned char>(end.back());
    if (last < 0xff) {
      end.back() = static_cast<char>(last + 1);
      return end;
    }
    end.pop_back();
  }
  return end;
}

Result<std::optional<KeyValue>> Store::get(std::string key) {
  const Op ops[] = {Op::get(std::move(key))};
  auto r = txn({}, ops, {});
  if (!r) return std::move(r).error();
  auto& kvs = r->results.at(0).kvs;
  if (kvs.empty()) return std::optional<KeyValue>();
  return std::optional<KeyValue>(std::move(kvs.front()));
}

Result<Revision> Store::put(std::string key, std::string value) {
  const Op ops[] = {Op::put(std::move(key), std::move(value))};
  auto r = txn({}, ops, {});
  if (!r) return std::move(r).error();
  return r->revision;
}

Result<int64_t> Store::del(std::string key) {
  const Op ops[] = {Op::del(std::move(key))};
  auto r = txn({}, ops, {});
  if (!r) return std::move(r).error();
  return r->results.at(0).deleted;
}

}  // namespace canopy::store
