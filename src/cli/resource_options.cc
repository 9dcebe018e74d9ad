// The option builders of resource_def.h: how each kind of option turns its
// values into body attributes or list filters.

#include <algorithm>
#include <charconv>

#include "cli/output.h"
#include "cli/resource_def.h"

namespace canopy::cli {

namespace {

// The query text of a filter value: booleans as the API spells them.
std::string filterText(const Json& value) {
  return value.is_string() ? value.get<std::string>() : value.dump();
}

// The list an edit starts from: what an earlier option of this edit made, or
// the resource's current list.
Json baseList(const Edit& edit, const std::string& attr) {
  if (edit.body.contains(attr)) return edit.body[attr];
  if (edit.verb != kCreate && edit.current.is_object() && edit.current.contains(attr) &&
      edit.current[attr].is_array()) {
    return edit.current[attr];
  }
  return Json::array();
}

bool matches(const Json& given, const Json& item) {
  if (!given.is_object() || !item.is_object()) return given == item;
  for (auto it = given.begin(); it != given.end(); ++it) {
    if (!item.contains(it.key()) || item[it.key()] != it.value()) return false;
  }
  return true;
}

}  // namespace

OptionList& OptionList::custom(OptionDef option) {
  options_.push_back(std::move(option));
  return *this;
}

OptionList& OptionList::text(std::string flags, std::string attr, std::string help, unsigned verbs,
                             unsigned required, std::string metavar) {
  return custom({.flags = std::move(flags),
                 .metavar = std::move(metavar),
                 .help = std::move(help),
                 .verbs = verbs,
                 .required = required,
                 .apply = [attr](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                   if (e.verb == kList) {
                     e.query.emplace_back(attr, v.back());
                   } else {
                     e.body[attr] = v.back();
                   }
                   return ok();
                 }});
}

OptionList& OptionList::integer(std::string flags, std::string attr, std::string help,
                                unsigned verbs, std::string metavar) {
  return custom(
      {.flags = flags,
       .metavar = std::move(metavar),
       .help = std::move(help),
       .verbs = verbs,
       .apply = [attr, flags](Edit& e, const std::vector<std::string>& v) -> Result<void> {
         auto n = parseInteger(flags, v.back());
         if (!n) return n.error();
         if (e.verb == kList) {
           e.query.emplace_back(attr, v.back());
         } else {
           e.body[attr] = *n;
         }
         return ok();
       }});
}

OptionList& OptionList::constant(std::string flags, std::string attr, Json value, std::string help,
                                 unsigned verbs, std::string group) {
  return custom({.flags = std::move(flags),
                 .help = std::move(help),
                 .verbs = verbs,
                 .arity = Arity::Flag,
                 .group = std::move(group),
                 .apply = [attr, value](Edit& e, const std::vector<std::string>&) -> Result<void> {
                   if (e.verb == kList) {
                     e.query.emplace_back(attr, filterText(value));
                   } else {
                     e.body[attr] = value;
                   }
                   return ok();
                 }});
}

OptionList& OptionList::toggle(const std::string& on, const std::string& off,
                               const std::string& attr, const std::string& help_on,
                               const std::string& help_off, unsigned verbs) {
  constant(on, attr, true, help_on, verbs, attr);
  return constant(off, attr, false, help_off, verbs, attr);
}

OptionList& OptionList::reference(std::string flags, std::string attr, const Collection& collection,
                                  std::string help, unsigned verbs, unsigned required,
                                  std::string metavar) {
  const Collection* c = &collection;
  return custom({.flags = std::move(flags),
                 .metavar = std::move(metavar),
                 .help = std::move(help),
                 .verbs = verbs,
                 .required = required,
                 .apply = [attr, c](Edit& e, const std::vector<std::string>& v) -> Result<void> {
                   auto id = e.client.findId(*c, v.back());
                   if (!id) return id.error();
                   if (e.verb == kList) {
                     e.query.emplace_back(attr, *id);
                   } else {
                     e.body[attr] = *id;
                   }
                   return ok();
                 }});
}

OptionList& OptionList::items(std::string flags, std::string attr, std::string metavar,
                              std::string help, unsigned verbs, ItemParser parse) {
  return custom(
      {.flags = std::move(flags),
       .metavar = std::move(metavar),
       .help = std::move(help),
       .verbs = verbs,
       .arity = Arity::Many,
       .apply = [attr, parse](Edit& e, const std::vector<std::string>& values) -> Result<void> {
         Json list = baseList(e, attr);
         for (const auto& text : values) {
           auto item = parse(e, text);
           if (!item) return item.error();
           if (e.verb != kUnset) {
             list.push_back(std::move(*item));
             continue;
           }
           auto before = list.size();
           Json kept = Json::array();
           for (auto& existing : list) {
             if (!matches(*item, existing)) kept.push_back(std::move(existing));
           }
           if (kept.size() == before) {
             return Error(Errc::NotFound, "'" + text + "' is not in " + attr);
           }
           list = std::move(kept);
         }
         e.body[attr] = std::move(list);
         return ok();
       }});
}

OptionList& OptionList::clear(std::string flags, std::string attr, std::string help,
                              unsigned verbs) {
  return constant(std::move(flags), std::move(attr), Json::array(), std::move(help), verbs);
}

Result<int64_t> parseInteger(const std::string& what, const std::string& text) {
  int64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
    return Error(Errc::InvalidArgument, what + ": '" + text + "' is not a whole number");
  }
  return value;
}

Result<std::map<std::string, std::string>> parseKeyValues(const std::string& text,
                                                          const std::vector<std::string>& allowed,
                                                          const std::vector<std::string>& needed) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = std::min(text.find(',', start), text.size());
    std::string part = text.substr(start, comma - start);
    size_t eq = part.find('=');
    std::string key = part.substr(0, eq);
    if (eq == std::string::npos ||
        std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string keys;
      for (const auto& k : allowed) keys += (keys.empty() ? "" : ", ") + k;
      return Error(Errc::InvalidArgument,
                   "'" + text + "': expected KEY=VALUE pairs separated by commas, keys " + keys);
    }
    out[key] = part.substr(eq + 1);
    start = comma + 1;
  }
  for (const auto& k : needed) {
    if (!out.contains(k))
      return Error(Errc::InvalidArgument, "'" + text + "': " + k + "= is missing");
  }
  return out;
}

Result<Json> parseRoute(const std::string& text) {
  auto kv = parseKeyValues(text, {"destination", "gateway"}, {"destination", "gateway"});
  if (!kv) return kv.error();
  return Json{{"destination", (*kv)["destination"]}, {"nexthop", (*kv)["gateway"]}};
}

std::vector<std::string> rowFor(const std::vector<Column>& columns, const Json& item) {
  std::vector<std::string> row;
  for (const auto& c : columns) {
    if (c.compute) {
      row.push_back(c.compute(item));
    } else {
      row.push_back(item.contains(c.field) ? formatCell(item[c.field]) : std::string());
    }
  }
  return row;
}

}  // namespace canopy::cli
