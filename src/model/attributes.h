#pragma once
// Declarative attribute maps, in the manner of Neutron's RESOURCE_ATTRIBUTE_MAP:
// each resource lists its attributes with type, defaults, whether they may be
// set on create (POST) or update (PUT), who may see them; one generic
// validator turns a request body into a checked, converted, defaulted
// document and words every refusal as Neutron does.
//
//   const ResourceSpec& spec = networkSpec();
//   auto doc = validateBody(spec, body, Action::Create, caller);
//   if (!doc) return doc.error();      // 400 HTTPBadRequest / 403 PolicyNotAuthorized
//
// Thread-safety: specs are immutable after construction; functions are pure.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "model/json.h"

namespace canopy::model {

enum class AttrType {
  String,  // max_len applies
  Bool,    // also accepts "true"/"false" in any case, as Neutron's converter does
  Int,     // also accepts decimal strings
  Uuid,
  List,
  Dict,
  Any,
};

enum class Action { Create, Update };

struct AttrSpec {
  std::string name;
  // null stands for [] (Neutron's convert_none_to_empty_list: routes,
  // host_routes, dns_nameservers, allowed_address_pairs, security_groups).
  bool null_is_empty_list = false;
  AttrType type = AttrType::String;
  bool allow_post = false;
  bool allow_put = false;
  bool visible = true;
  // Not shown, but lists filter on it (Neutron's is_visible False with
  // is_filter: a subnet's "shared", its network's). Its value comes from
  // the kind, not the document (ListQuery::select's `hidden`).
  bool filter_only = false;
  // No default and allowed on POST: required.
  std::optional<Json> default_value{};
  bool nullable = false;
  size_t max_len = 255;
  // Only admins may set it or see it (provider:*, binding:*).
  bool admin_only = false;
  // Everyone sees it; only admins may set it (shared, router:external). As
  // Neutron's policy engine, a create that gives it its default value is
  // not a setting.
  bool admin_set_only = false;
  // Extra check after type conversion: the reason it is invalid, or nullopt.
  std::function<std::optional<std::string>(const Json&)> check{};
};

struct ResourceSpec {
  std::string collection;  // "networks": in URLs and store keys
  std::string member;      // "network"
  // The list's key in JSON bodies when it differs from `collection`
  // ("security_groups" for /security-groups).
  std::string plural{};
  const std::string& jsonPlural() const { return plural.empty() ? collection : plural; }
  std::string type_name;  // "Network", for NotFound errors: "NetworkNotFound"
  std::vector<AttrSpec> attrs{};
  bool allow_bulk = true;

  const AttrSpec* find(std::string_view name) const;
};

// Who is asking: enough for validation and policy.
struct Caller {
  std::string project_id;
  bool is_admin = false;
  // Every role of the token (Octavia's policy names its own: a
  // load-balancer_admin administers load balancers only).
  std::vector<std::string> roles{};
};

// Checks one resource's attributes (the object inside {"network": {...}}) for
// `action`: unknown attributes, attributes not allowed for the action,
// admin-only ones, types (converting booleans and integers as Neutron does),
// lengths and checks; on create, fills defaults and reports missing required
// attributes. Errors: InvalidArgument (reason HTTPBadRequest) for bad input,
// PermissionDenied (reason PolicyNotAuthorized) for admin-only attributes.
Result<Json> validateAttributes(const ResourceSpec& spec, const Json& attributes, Action action,
                                const Caller& caller);

// Parses a request body and returns the list of resource objects it holds:
// {"network": {...}} gives one; {"networks": [...]} (bulk, create only, where
// allowed) gives several. Malformed JSON and wrong shapes are 400s.
Result<std::vector<Json>> parseBody(const ResourceSpec& spec, std::string_view body, Action action,
                                    bool& bulk);

// What a caller sees of a stored document: hidden and (for non-admins)
// admin-only attributes removed.
Json visibleView(const ResourceSpec& spec, const Json& doc, const Caller& caller);

// Whether a stored document can be what the API wrote for `spec` under `id`:
// an object whose "id" is `id` and whose attributes have their types (or
// null). What another application or a damaged store left is refused with
// the first reason, before anything reads it.
Result<void> checkStored(const ResourceSpec& spec, std::string_view id, const Json& doc);

// Converts a query-string value to the attribute's type for filtering.
Result<Json> convertFilterValue(const AttrSpec& attr, std::string_view text);

// Neutron's type:subnet_list: CIDRs with their slash, host bits allowed
// (an IPv4 one written as netaddr writes it), no duplicates; the reason a
// list is invalid, or nullopt.
std::optional<std::string> checkSubnetList(const Json& list);

// "8-4-4-4-12" hexadecimal, as Neutron's UUID validator accepts.
bool isUuid(std::string_view text);

// Neutron's error for a bad request: Errc::InvalidArgument, reason HTTPBadRequest.
Error badRequest(std::string message);
// "Invalid input for <attr>. Reason: <reason>."
Error invalidInput(std::string_view attr, std::string_view reason);
// 403 PolicyNotAuthorized.
Error policyRefused(std::string message);

// availability_zone_hints (given on create: zone names) and
// availability_zones (derived), as networks and routers have them.
void addAvailabilityZoneAttributes(std::vector<AttrSpec>& attrs);

// id, name, description, project_id, tenant_id, created_at, updated_at,
// revision_number, tags: Neutron's standard attributes.
void addStandardAttributes(std::vector<AttrSpec>& attrs);

}  // namespace canopy::model
