#include "store/store.h"

#include <set>

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

Result<void> validateBranch(std::span<const Op> ops) {
  std::set<std::string_view> written;
  std::vector<std::string_view> prefixes;
  for (const Op& op : ops) {
    switch (op.type) {
      case Op::Type::Put:
      case Op::Type::Delete:
        if (op.key.empty()) return Error(Errc::InvalidArgument, "empty key in transaction");
        if (!written.insert(op.key).second) {
          return Error(Errc::InvalidArgument,
                       "key '" + op.key + "' is written twice in one transaction branch");
        }
        break;
      case Op::Type::DeletePrefix:
        prefixes.push_back(op.key);
        break;
      case Op::Type::Get:
        if (op.key.empty()) return Error(Errc::InvalidArgument, "empty key in transaction");
        break;
      case Op::Type::GetPrefix:
        break;
    }
  }
  for (size_t i = 0; i < prefixes.size(); ++i) {
    for (std::string_view key : written) {
      if (key.starts_with(prefixes[i])) {
        return Error(Errc::InvalidArgument, "key '" + std::string(key) +
                                                "' is also deleted by prefix '" +
                                                std::string(prefixes[i]) + "' in one branch");
      }
    }
    for (size_t j = i + 1; j < prefixes.size(); ++j) {
      if (prefixes[i].starts_with(prefixes[j]) || prefixes[j].starts_with(prefixes[i])) {
        return Error(Errc::InvalidArgument, "overlapping delete prefixes in one branch");
      }
    }
  }
  return ok();
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
