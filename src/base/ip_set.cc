#include "base/ip_set.h"

#include <algorithm>

namespace canopy {

void IpSet::add(const IpPrefix& prefix) {
  if (prefix.version() != version_) return;
  addRange(prefix.first().value(), prefix.last().value());
}

void IpSet::remove(const IpPrefix& prefix) {
  if (prefix.version() != version_) return;
  removeRange(prefix.first().value(), prefix.last().value());
}

void IpSet::remove(const IpSet& other) {
  if (other.version_ != version_) return;
  for (const Range& r : other.ranges_) removeRange(r.first, r.last);
}

void IpSet::addRange(U128 first, U128 last) {
  std::vector<Range> out;
  out.reserve(ranges_.size() + 1);
  bool placed = false;
  for (const Range& r : ranges_) {
    // Disjoint and not adjacent (careful at the ends of the address space).
    bool before = r.last < first && r.last + 1 != first;
    bool after = last < r.first && last + 1 != r.first;
    if (before) {
      out.push_back(r);
    } else if (after) {
      if (!placed) out.push_back({first, last});
      placed = true;
      out.push_back(r);
    } else {
      first = std::min(first, r.first);
      last = std::max(last, r.last);
    }
  }
  if (!placed) out.push_back({first, last});
  ranges_ = std::move(out);
}

void IpSet::removeRange(U128 first, U128 last) {
  std::vector<Range> out;
  out.reserve(ranges_.size() + 1);
  for (const Range& r : ranges_) {
    if (r.last < first || last < r.first) {
      out.push_back(r);
      continue;
    }
    if (r.first < first) out.push_back({r.first, first - 1});
    if (last < r.last) out.push_back({last + 1, r.last});
  }
  ranges_ = std::move(out);
}

bool IpSet::intersects(const IpPrefix& prefix) const {
  if (prefix.version() != version_) return false;
  U128 first = prefix.first().value(), last = prefix.last().value();
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [&](const Range& r) { return !(r.last < first || last < r.first); });
}

bool IpSet::intersects(const IpSet& other) const {
  if (other.version_ != version_) return false;
  for (const Range& a : ranges_) {
    for (const Range& b : other.ranges_) {
      if (!(a.last < b.first || b.last < a.first)) return true;
    }
  }
  return false;
}

bool IpSet::contains(const IpPrefix& prefix) const {
  if (prefix.version() != version_) return false;
  U128 first = prefix.first().value(), last = prefix.last().value();
  return std::any_of(ranges_.begin(), ranges_.end(),
                     [&](const Range& r) { return r.first <= first && last <= r.last; });
}

bool IpSet::contains(const IpSet& other) const {
  if (other.version_ != version_) return other.empty();
  return std::all_of(other.ranges_.begin(), other.ranges_.end(), [&](const Range& o) {
    return std::any_of(ranges_.begin(), ranges_.end(),
                       [&](const Range& r) { return r.first <= o.first && o.last <= r.last; });
  });
}

std::vector<IpPrefix> IpSet::cidrs() const {
  const int bits = version_ == 4 ? 32 : 128;
  auto mask = [](int host) { return host == 128 ? ~U128{0} : (U128{1} << host) - 1; };
  std::vector<IpPrefix> out;
  for (const Range& r : ranges_) {
    U128 at = r.first;
    while (true) {
      // The largest block at `at` that is aligned and ends inside the range
      // (an aligned block's end cannot overflow).
      int host = 0;
      while (host < bits && (at & mask(host + 1)) == 0 && at + mask(host + 1) <= r.last) ++host;
      out.push_back({IpAddress::fromValue(version_, at), static_cast<uint8_t>(bits - host)});
      U128 block_last = at + mask(host);
      if (block_last >= r.last) break;
      at = block_last + 1;
    }
  }
  return out;
}

}  // namespace canopy
