#pragma once
// The resource commands as data: for each Neutron resource, the words that
// name it (`security group rule`), its collection, its list columns and its
// options, each saying for which verbs it exists and how its value lands in
// the request body (create/set/unset) or the list query. One generic
// implementation (commands_resources.cc) turns these into create, list,
// show, set, unset and delete.
//
//   OptionList()
//       .text("--description", "description", "a description", kCreate | kSet)
//       .toggle("--dhcp", "--no-dhcp", "enable_dhcp", "DHCP on (default)", "DHCP off",
//               kCreate | kSet)
//       .reference("--network", "network_id", kNetworks, "its network", kCreate | kList,
//                  kCreate /* required */);
//
// Thread-safety: the table is built once and read only.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cli/client.h"

namespace canopy::cli {

enum Verb : unsigned { kCreate = 1, kSet = 2, kUnset = 4, kList = 8, kShow = 16, kDelete = 32 };
inline constexpr unsigned kAllVerbs = kCreate | kSet | kUnset | kList | kShow | kDelete;

// What options build: a member body (create/set/unset) or list filters.
struct Edit {
  Verb verb;
  Client& client;
  const Json& current;  // set/unset: the resource as it is now; null otherwise
  Json body = Json::object();
  Query query{};
};

enum class Arity { Flag, One, Many };

using Apply = std::function<Result<void>(Edit&, const std::vector<std::string>& values)>;

struct OptionDef {
  std::string flags{};    // CLI11 names, e.g. "--network"
  std::string metavar{};  // "" for a flag
  std::string help{};
  unsigned verbs = 0;
  Arity arity = Arity::One;
  unsigned required = 0;  // verbs for which it must be given
  std::string group{};    // options of one group exclude each other
  Apply apply{};          // values: the one given (One), all (Many), none (Flag)
};

// Parses one repeatable value ("destination=CIDR,gateway=IP") into a list item.
using ItemParser = std::function<Result<Json>(Edit&, const std::string&)>;

class OptionList {
 public:
  // A string attribute; as a list filter, ?attr=value.
  OptionList& text(std::string flags, std::string attr, std::string help, unsigned verbs,
                   unsigned required = 0, std::string metavar = "TEXT");
  OptionList& integer(std::string flags, std::string attr, std::string help, unsigned verbs,
                      std::string metavar = "N");
  // A flag that sets attr to `value`.
  OptionList& constant(std::string flags, std::string attr, Json value, std::string help,
                       unsigned verbs, std::string group = {});
  // Two flags that set a boolean attribute to true or false.
  OptionList& toggle(const std::string& on, const std::string& off, const std::string& attr,
                     const std::string& help_on, const std::string& help_off, unsigned verbs);
  // A resource named by id or name, sent as its id.
  OptionList& reference(std::string flags, std::string attr, const Collection& collection,
                        std::string help, unsigned verbs, unsigned required = 0,
                        std::string metavar = "NAME_OR_ID");
  // A repeatable list item: create sets the list, set appends to it, unset
  // removes the items given (an item matches when every key given agrees).
  OptionList& items(std::string flags, std::string attr, std::string metavar, std::string help,
                    unsigned verbs, ItemParser parse);
  // A flag that empties a list before `items` of the same attr append to it.
  OptionList& clear(std::string flags, std::string attr, std::string help, unsigned verbs);
  OptionList& custom(OptionDef option);

  const std::vector<OptionDef>& options() const { return options_; }

 private:
  std::vector<OptionDef> options_;
};

// "42" -> 42; InvalidArgument names `what` (an option) otherwise.
Result<int64_t> parseInteger(const std::string& what, const std::string& text);

// "a=1,b=2" -> {a: 1, b: 2}; each key must be one of `allowed`; keys in
// `needed` must be there.
Result<std::map<std::string, std::string>> parseKeyValues(const std::string& text,
                                                          const std::vector<std::string>& allowed,
                                                          const std::vector<std::string>& needed);

// destination=CIDR,gateway=IP -> {"destination", "nexthop"}.
Result<Json> parseRoute(const std::string& text);

struct Column {
  std::string header{};
  std::string field{};  // the attribute shown, or "" when `compute` makes the cell
  std::function<std::string(const Json&)> compute = nullptr;
};

// The positional argument of create (NAME, or the network of a floating IP)
// or of list (the group of rules).
struct Positional {
  std::string name{};  // "NAME"
  std::string help{};
  Apply apply{};  // called with the one value
  bool required = true;
};

struct ResourceDef {
  std::vector<std::string> words{};  // {"security", "group", "rule"}
  const Collection* collection = nullptr;
  std::string about{};  // --help of the resource's command
  unsigned verbs = kAllVerbs;
  std::vector<Column> columns{};
  Json create_defaults = Json::object();
  Positional create_positional{};
  Positional list_positional{};  // name "" when list takes none
  OptionList options{};
};

const std::vector<ResourceDef>& resourceDefs();

// A row of list columns for one item.
std::vector<std::string> rowFor(const std::vector<Column>& columns, const Json& item);

}  // namespace canopy::cli
