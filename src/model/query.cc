#include "model/query.h"

#include <algorithm>
#include <charconv>

namespace canopy::model {
namespace {

bool hasTag(const Json& doc, const std::string& tag) {
  auto it = doc.find("tags");
  if (it == doc.end() || !it->is_array()) return false;
  return std::find(it->begin(), it->end(), Json(tag)) != it->end();
}

// Orders JSON values the way a user expects within one attribute: nulls
// first, then by value (numbers numerically, strings bytewise).
int compareValues(const Json& a, const Json& b) {
  if (a.is_null() || b.is_null()) return a.is_null() == b.is_null() ? 0 : (a.is_null() ? -1 : 1);
  if (a < b) return -1;
  if (b < a) return 1;
  return 0;
}

}  // namespace

std::vector<std::string> splitCommas(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string::npos) comma = text.size();
    if (comma > start) out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

Result<ListQuery> ListQuery::parse(const ResourceSpec& spec,
                                   const std::vector<std::pair<std::string, std::string>>& params,
                                   const Caller& caller) {
  ListQuery q;
  std::vector<std::string> sort_keys, sort_dirs;
  for (const auto& [key, value] : params) {
    if (key == "limit") {
      size_t n = 0;
      auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || p != value.data() + value.size()) {
        return badRequest("Bad limit request: Limit must be an integer 0 or greater and not '" +
                          value + "'");
      }
      if (n > 0) q.limit_ = n;
      continue;
    }
    if (key == "marker") {
      q.marker_ = value;
      continue;
    }
    if (key == "page_reverse") {
      q.page_reverse_ = value == "True" || value == "true" || value == "1";
      continue;
    }
    q.link_params_.emplace_back(key, value);
    if (key == "fields") {
      for (auto& f : splitCommas(value)) q.fields_.push_back(f);
    } else if (key == "sort_key") {
      sort_keys.push_back(value);
    } else if (key == "sort_dir") {
      if (value != "asc" && value != "desc") {
        return badRequest("Bad sort_dir request: sort_dir must be 'asc' or 'desc' and not '" +
                          value + "'");
      }
      sort_dirs.push_back(value);
    } else if (key == "tags") {
      for (auto& t : splitCommas(value)) q.tags_all_.push_back(t);
    } else if (key == "tags-any") {
      for (auto& t : splitCommas(value)) q.tags_any_.push_back(t);
    } else if (key == "not-tags") {
      for (auto& t : splitCommas(value)) q.not_tags_all_.push_back(t);
    } else if (key == "not-tags-any") {
      for (auto& t : splitCommas(value)) q.not_tags_any_.push_back(t);
    } else if (key == "fixed_ips" && spec.find("fixed_ips") != nullptr) {
      // ?fixed_ips=ip_address=10.0.0.3&fixed_ips=subnet_id=<id>: ports with
      // one address that has every kind of property named (any of its values).
      auto eq = value.find('=');
      std::string what = eq == std::string::npos ? "" : value.substr(0, eq);
      std::string wanted = eq == std::string::npos ? "" : value.substr(eq + 1);
      if (what == "ip_address") {
        q.fixed_ips_.ip_addresses.push_back(wanted);
      } else if (what == "subnet_id") {
        q.fixed_ips_.subnet_ids.push_back(wanted);
      } else if (what == "ip_address_substr") {
        q.fixed_ips_.substrings.push_back(wanted);
      } else {
        return badRequest("Invalid input for fixed_ips. Reason: '" + value +
                          "' is not of the form ip_address=, subnet_id= or ip_address_substr=.");
      }
    } else {
      const AttrSpec* attr = spec.find(key);
      if (attr == nullptr || (!attr->visible && !attr->filter_only) ||
          (attr->admin_only && !caller.is_admin)) {
        return badRequest("[" + key + "] is invalid attribute for filtering");
      }
      auto converted = convertFilterValue(*attr, value);
      if (!converted) return std::move(converted).error();
      const std::string& name = key;
      auto existing = std::find_if(q.filters_.begin(), q.filters_.end(),
                                   [&](const Filter& f) { return f.attr == name; });
      if (existing == q.filters_.end()) {
        q.filters_.push_back({name, {std::move(*converted)}, attr->filter_only});
      } else {
        existing->values.push_back(std::move(*converted));
      }
    }
  }
  if (!sort_dirs.empty() && sort_dirs.size() != sort_keys.size()) {
    return badRequest("The number of sort_keys and sort_dirs must be same");
  }
  for (size_t i = 0; i < sort_keys.size(); ++i) {
    const AttrSpec* attr = spec.find(sort_keys[i]);
    if (attr == nullptr || !attr->visible || attr->type == AttrType::List ||
        attr->type == AttrType::Dict) {
      return badRequest("'" + sort_keys[i] + "' is an invalid attribute for sort key");
    }
    q.sort_.push_back({sort_keys[i], sort_dirs.empty() || sort_dirs[i] == "asc"});
  }
  return q;
}

bool ListQuery::FixedIps::matches(const Json& doc) const {
  auto in = [](const std::vector<std::string>& any, const std::string& v) {
    return any.empty() || std::find(any.begin(), any.end(), v) != any.end();
  };
  auto it = doc.find("fixed_ips");
  if (it == doc.end() || !it->is_array()) return false;
  for (const auto& f : *it) {
    std::string ip = f.value("ip_address", ""), subnet = f.value("subnet_id", "");
    bool substring = substrings.empty() ||
                     std::any_of(substrings.begin(), substrings.end(),
                                 [&](const auto& s) { return ip.find(s) != std::string::npos; });
    if (in(ip_addresses, ip) && in(subnet_ids, subnet) && substring) return true;
  }
  return false;
}

bool ListQuery::matches(const Json& doc, const HiddenValue& hidden) const {
  if (!fixed_ips_.empty() && !fixed_ips_.matches(doc)) return false;
  for (const Filter& f : filters_) {
    Json derived;
    if (f.hidden) {
      if (!hidden) return false;
      derived = Json::object({{f.attr, hidden(doc, f.attr)}});
    }
    const Json& source = f.hidden ? derived : doc;
    auto it = source.find(f.attr);
    if (it == source.end()) return false;
    bool any = false;
    for (const Json& v : f.values) {
      // Lists match when they contain the value; nulls match "" or "None".
      if (it->is_array() ? std::find(it->begin(), it->end(), v) != it->end()
                         : (*it == v || (it->is_null() && (v == "" || v == "None")))) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  for (auto& t : tags_all_) {
    if (!hasTag(doc, t)) return false;
  }
  if (!tags_any_.empty() &&
      std::none_of(tags_any_.begin(), tags_any_.end(), [&](auto& t) { return hasTag(doc, t); })) {
    return false;
  }
  if (!not_tags_all_.empty() && std::all_of(not_tags_all_.begin(), not_tags_all_.end(),
                                            [&](auto& t) { return hasTag(doc, t); })) {
    return false;
  }
  for (auto& t : not_tags_any_) {
    if (hasTag(doc, t)) return false;
  }
  return true;
}

ListSelection ListQuery::select(std::vector<const Json*> docs, const HiddenValue& hidden) const {
  std::erase_if(docs, [&](const Json* d) { return !matches(*d, hidden); });
  // Sort by the keys asked for, then by id so that markers are stable.
  auto sort = sort_;
  sort.push_back({"id", sort_.empty() ? true : sort_.back().ascending});
  std::stable_sort(docs.begin(), docs.end(), [&](const Json* a, const Json* b) {
    for (const SortKey& k : sort) {
      static const Json kNull;
      auto ia = a->find(k.attr);
      auto ib = b->find(k.attr);
      int c = compareValues(ia == a->end() ? kNull : *ia, ib == b->end() ? kNull : *ib);
      if (c != 0) return k.ascending ? c < 0 : c > 0;
    }
    return false;
  });

  ListSelection out;
  size_t begin = 0, end = docs.size();
  if (marker_) {
    auto at = std::find_if(docs.begin(), docs.end(),
                           [&](const Json* d) { return d->value("id", "") == *marker_; });
    size_t pos = at == docs.end() ? docs.size() : static_cast<size_t>(at - docs.begin());
    if (page_reverse_) {
      end = at == docs.end() ? docs.size() : pos;
    } else {
      begin = at == docs.end() ? 0 : pos + 1;
    }
  }
  if (limit_) {
    if (page_reverse_) {
      if (end - begin > *limit_) begin = end - *limit_;
    } else if (end - begin > *limit_) {
      end = begin + *limit_;
    }
  }
  // Neutron's link rules: a page shorter than the limit has no link onward
  // in its direction of travel; the link back is always there.
  if (limit_ && begin < end) {
    bool full = end - begin == *limit_;
    if (!page_reverse_ || full) out.previous_marker = docs[begin]->value("id", "");
    if (page_reverse_ || full) out.next_marker = docs[end - 1]->value("id", "");
    if (page_reverse_ && !full) out.previous_marker.reset();
    if (!page_reverse_ && !full) out.next_marker.reset();
  } else if (limit_ && marker_ && !page_reverse_) {
    // Past the last page: still a way back, to the end (no marker).
    out.previous_marker = "";
  }
  out.items.assign(docs.begin() + static_cast<std::ptrdiff_t>(begin),
                   docs.begin() + static_cast<std::ptrdiff_t>(end));
  return out;
}

Json ListQuery::project(const Json& doc) const {
  if (fields_.empty()) return doc;
  Json projected = Json::object();
  for (const auto& f : fields_) {
    if (auto it = doc.find(f); it != doc.end()) projected[f] = *it;
  }
  return projected;
}

ListResult ListQuery::apply(std::vector<Json> docs) const {
  std::vector<const Json*> pointers;
  pointers.reserve(docs.size());
  for (const auto& d : docs) pointers.push_back(&d);
  ListSelection selection = select(std::move(pointers));
  ListResult out;
  out.next_marker = std::move(selection.next_marker);
  out.previous_marker = std::move(selection.previous_marker);
  for (const Json* d : selection.items) out.items.push_back(project(*d));
  return out;
}

}  // namespace canopy::model
