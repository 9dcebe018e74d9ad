#pragma once
// Neutron's list semantics over documents: filters (?name=a&name=b is "a or
// b"; tags, tags-any, not-tags, not-tags-any), fields= projection, sort_key /
// sort_dir, limit / marker / page_reverse pagination with next/previous links.
//
//   auto q = ListQuery::parse(spec, request.query, caller);
//   if (!q) return q.error();                     // 400 for unknown filters etc.
//   ListResult page = q->apply(visible_docs);     // docs already policy-filtered
//
// Thread-safety: value types; apply() is pure.

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/attributes.h"

namespace canopy::model {

// A page chosen from documents: pointers into the caller's documents, in order.
struct ListSelection {
  std::vector<const Json*> items;
  std::optional<std::string> next_marker;
  std::optional<std::string> previous_marker;  // "": a link without a marker
};

struct ListResult {
  std::vector<Json> items;  // projected to the requested fields
  // Present when a page was cut: the markers for the next/previous links.
  std::optional<std::string> next_marker;
  std::optional<std::string> previous_marker;
};

class ListQuery {
 public:
  static Result<ListQuery> parse(const ResourceSpec& spec,
                                 const std::vector<std::pair<std::string, std::string>>& params,
                                 const Caller& caller);

  // Filters, sorts, pages and projects `docs` (each a visible view).
  ListResult apply(std::vector<Json> docs) const;
  // A document's value of a filter_only attribute.
  using HiddenValue = std::function<Json(const Json& doc, const std::string& attr)>;
  // Filters, sorts and pages without copying or projecting.
  ListSelection select(std::vector<const Json*> docs, const HiddenValue& hidden = {}) const;
  // A document cut to the requested fields.
  Json project(const Json& doc) const;
  bool projects() const { return !fields_.empty(); }

  std::optional<size_t> limit() const { return limit_; }
  bool pageReverse() const { return page_reverse_; }
  // The query parameters other than limit/marker/page_reverse, for links.
  const std::vector<std::pair<std::string, std::string>>& linkParams() const {
    return link_params_;
  }

 private:
  struct Filter {
    std::string attr;
    std::vector<Json> values;  // any of them matches
    bool hidden = false;       // a filter_only attribute
  };
  struct SortKey {
    std::string attr;
    bool ascending = true;
  };

  // Ports' ?fixed_ips=ip_address=...|subnet_id=...|ip_address_substr=...
  struct FixedIps {
    std::vector<std::string> ip_addresses, subnet_ids, substrings;
    bool empty() const { return ip_addresses.empty() && subnet_ids.empty() && substrings.empty(); }
    bool matches(const Json& doc) const;
  };

  bool matches(const Json& doc, const HiddenValue& hidden) const;

  std::vector<Filter> filters_;
  FixedIps fixed_ips_;
  std::vector<std::string> tags_all_, tags_any_, not_tags_all_, not_tags_any_;
  std::vector<std::string> fields_;
  std::vector<SortKey> sort_;
  std::optional<size_t> limit_;
  std::optional<std::string> marker_;
  bool page_reverse_ = false;
  std::vector<std::pair<std::string, std::string>> link_params_;
};

// Splits "a,b,c" (tag filter syntax).
std::vector<std::string> splitCommas(const std::string& text);

}  // namespace canopy::model
