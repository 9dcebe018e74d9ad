#include "model/attributes.h"

#include <algorithm>
#include <cctype>
#include <charconv>

#include "base/ip.h"

namespace canopy::model {
namespace {

// Python's str() of a value, as Neutron's messages show it.
std::string show(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Converts and checks one value; the reason it is invalid, or the value.
Result<Json> convert(const AttrSpec& attr, const Json& value) {
  if (value.is_null()) {
    if (attr.nullable || attr.type == AttrType::Any) return value;
    return invalidInput(
        attr.name, "'None' is not a valid " + std::string(attr.type == AttrType::Bool  ? "boolean"
                                                          : attr.type == AttrType::Int ? "integer"
                                                                                       : "value"));
  }
  Json out = value;
  switch (attr.type) {
    case AttrType::String:
      if (!value.is_string())
        return invalidInput(attr.name, "'" + show(value) + "' is not a valid string");
      if (value.get_ref<const std::string&>().size() > attr.max_len) {
        return invalidInput(attr.name, "'" + show(value) + "' exceeds maximum length of " +
                                           std::to_string(attr.max_len));
      }
      break;
    case AttrType::Bool:
      if (value.is_string()) {
        std::string s = lower(value.get<std::string>());
        if (s == "true" || s == "1") {
          out = true;
        } else if (s == "false" || s == "0") {
          out = false;
        } else {
          return invalidInput(attr.name, "'" + show(value) + "' cannot be converted to boolean");
        }
      } else if (value.is_number_integer() && (value == 0 || value == 1)) {
        out = value == 1;
      } else if (!value.is_boolean()) {
        return invalidInput(attr.name, "'" + show(value) + "' cannot be converted to boolean");
      }
      break;
    case AttrType::Int:
      if (value.is_string()) {
        const std::string& s = value.get_ref<const std::string&>();
        int64_t n = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc() || p != s.data() + s.size()) {
          return invalidInput(attr.name, "'" + s + "' is not an integer");
        }
        out = n;
      } else if (!value.is_number_integer()) {
        return invalidInput(attr.name, "'" + show(value) + "' is not an integer");
      }
      break;
    case AttrType::Uuid:
      if (!value.is_string() || !isUuid(value.get_ref<const std::string&>())) {
        return invalidInput(attr.name, "'" + show(value) + "' is not a valid UUID");
      }
      break;
    case AttrType::List:
      if (!value.is_array()) return invalidInput(attr.name, "'" + show(value) + "' is not a list");
      break;
    case AttrType::Dict:
      if (!value.is_object()) {
        return invalidInput(attr.name, "'" + show(value) + "' is not a dictionary");
      }
      break;
    case AttrType::Any:
      break;
  }
  if (attr.check) {
    if (auto reason = attr.check(out)) return invalidInput(attr.name, *reason);
  }
  return out;
}

}  // namespace

bool isUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

size_t jsonDepth(std::string_view text) {
  size_t depth = 0;
  size_t deepest = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        deepest = std::max(deepest, ++depth);
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return deepest;
}

Result<Json> parseJson(std::string_view text) {
  // Checked before parsing: copying and comparing a value recurse once per
  // level, so a deep enough body would exhaust the stack later.
  if (jsonDepth(text) > kMaxJsonDepth) {
    return Error(
        Errc::InvalidArgument,
        "Malformed request body: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels",
        "MalformedRequestBody");
  }
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Error(Errc::InvalidArgument, "Malformed request body", "MalformedRequestBody");
  }
  return j;
}

Error badRequest(std::string message) {
  return Error(Errc::InvalidArgument, std::move(message), "HTTPBadRequest");
}

Error invalidInput(std::string_view attr, std::string_view reason) {
  return badRequest("Invalid input for " + std::string(attr) + ". Reason: " + std::string(reason) +
                    ".");
}

Error policyRefused(std::string message) {
  return Error(Errc::PermissionDenied, std::move(message), "PolicyNotAuthorized");
}

const AttrSpec* ResourceSpec::find(std::string_view name) const {
  for (const auto& a : attrs) {
    if (a.name == name) return &a;
  }
  return nullptr;
}

Result<Json> validateAttributes(const ResourceSpec& spec, const Json& attributes, Action action,
                                const Caller& caller) {
  if (!attributes.is_object()) return badRequest("Body contains invalid data");
  std::vector<std::string> unknown;
  for (auto it = attributes.begin(); it != attributes.end(); ++it) {
    if (spec.find(it.key()) == nullptr) unknown.push_back(it.key());
  }
  if (!unknown.empty()) {
    std::string names;
    for (const auto& n : unknown) names += (names.empty() ? "" : ", ") + n;
    return badRequest("Unrecognized attribute(s) '" + names + "'");
  }
  Json out = Json::object();
  const char* verb = action == Action::Create ? "create" : "update";
  for (const AttrSpec& attr : spec.attrs) {
    auto it = attributes.find(attr.name);
    if (it == attributes.end()) {
      if (action == Action::Create && attr.allow_post) {
        if (!attr.default_value) {
          return badRequest("Failed to parse request. Required attribute '" + attr.name +
                            "' not specified");
        }
        out[attr.name] = *attr.default_value;
      }
      continue;
    }
    if (action == Action::Create && !attr.allow_post) {
      return badRequest("Attribute '" + attr.name + "' not allowed in POST");
    }
    if (action == Action::Update && !attr.allow_put) {
      return badRequest("Cannot update read-only attribute " + attr.name);
    }
    Json given = it->is_null() && attr.null_is_empty_list ? Json::array() : *it;
    auto value = convert(attr, given);
    if (!value) return std::move(value).error();
    if ((attr.admin_only || attr.admin_set_only) && !caller.is_admin &&
        !(action == Action::Create && attr.default_value && *value == *attr.default_value)) {
      return policyRefused("(rule:" + std::string(verb) + "_" + spec.member + ":" + attr.name +
                           ") is disallowed by policy");
    }
    out[attr.name] = std::move(*value);
  }
  return out;
}

Result<std::vector<Json>> parseBody(const ResourceSpec& spec, std::string_view body, Action action,
                                    bool& bulk) {
  bulk = false;
  if (body.empty()) return badRequest("Resource body required");
  auto parsed = parseJson(body);
  if (!parsed) return std::move(parsed).error();
  if (!parsed->is_object()) return badRequest("Body contains invalid data");
  if (auto one = parsed->find(spec.member); one != parsed->end()) {
    return std::vector<Json>{*one};
  }
  if (auto many = parsed->find(spec.jsonPlural()); many != parsed->end()) {
    if (action != Action::Create || !spec.allow_bulk) {
      return badRequest("Bulk operation not supported");
    }
    if (!many->is_array() || many->empty()) {
      return badRequest("Resources required");
    }
    bulk = true;
    std::vector<Json> out;
    for (auto& item : *many) {
      if (!item.is_object()) return badRequest("Body contains invalid data");
      // Items may come bare or wrapped: [{"name": ..}] or [{"network": {..}}].
      if (item.size() == 1 && item.contains(spec.member) && item[spec.member].is_object()) {
        out.push_back(item[spec.member]);
      } else {
        out.push_back(item);
      }
    }
    return out;
  }
  return badRequest("Unable to find '" + spec.member + "' in request body");
}

void addAvailabilityZoneAttributes(std::vector<AttrSpec>& attrs) {
  attrs.push_back({.name = "availability_zone_hints",
                   .null_is_empty_list = true,
                   .type = AttrType::List,
                   .allow_post = true,
                   .default_value = Json::array(),
                   .check = [](const Json& hints) -> std::optional<std::string> {
                     for (const auto& h : hints) {
                       if (!h.is_string() || h.get_ref<const std::string&>().empty() ||
                           h.get_ref<const std::string&>().size() > 255) {
                         return "'" + h.dump() + "' is not a valid availability zone name";
                       }
                     }
                     return std::nullopt;
                   }});
  attrs.push_back({.name = "availability_zones", .type = AttrType::List});
}

std::optional<std::string> checkSubnetList(const Json& list) {
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& v = list[i];
    std::string text = v.is_string() ? v.get<std::string>() : v.dump();
    auto p = v.is_string() ? IpPrefix::parse(text) : Result<IpPrefix>(badRequest(""));
    if (!p) return "'" + text + "' is not a valid IP subnet";
    if (text.find('/') == std::string::npos ||
        (p->version() == 4 && p->address.toString() + "/" + std::to_string(p->length) != text)) {
      IpPrefix network{p->first(), p->length};
      return "'" + text + "' isn't a recognized IP subnet cidr, '" + network.toString() +
             "' is recommended";
    }
    for (size_t j = 0; j < i; ++j) {
      if (list[j] == v) return "Duplicate items in the list: '" + text + "'";
    }
  }
  return std::nullopt;
}

Result<void> checkStored(const ResourceSpec& spec, std::string_view id, const Json& doc) {
  if (!doc.is_object()) return Error(Errc::InvalidArgument, "not a JSON object");
  if (spec.find("id") != nullptr) {
    auto it = doc.find("id");
    if (it == doc.end() || !it->is_string() || it->get_ref<const std::string&>() != id) {
      return Error(Errc::InvalidArgument, "its \"id\" is not its key's id");
    }
  }
  for (const AttrSpec& a : spec.attrs) {
    auto it = doc.find(a.name);
    if (it == doc.end() || it->is_null()) continue;
    bool fits = true;
    switch (a.type) {
      case AttrType::String:
      case AttrType::Uuid:
        fits = it->is_string();
        break;
      case AttrType::Bool:
        fits = it->is_boolean();
        break;
      case AttrType::Int:
        fits = it->is_number();
        break;
      case AttrType::List:
        fits = it->is_array();
        break;
      case AttrType::Dict:
        fits = it->is_object();
        break;
      case AttrType::Any:
        break;
    }
    if (!fits) return Error(Errc::InvalidArgument, "\"" + a.name + "\" has the wrong type");
  }
  return ok();
}

Json visibleView(const ResourceSpec& spec, const Json& doc, const Caller& caller) {
  Json out = Json::object();
  for (const AttrSpec& attr : spec.attrs) {
    if (!attr.visible || (attr.admin_only && !caller.is_admin)) continue;
    if (auto it = doc.find(attr.name); it != doc.end()) out[attr.name] = *it;
  }
  return out;
}

Result<Json> convertFilterValue(const AttrSpec& attr, std::string_view text) {
  switch (attr.type) {
    case AttrType::Bool:
    case AttrType::Int:
      return convert(AttrSpec{.name = attr.name, .type = attr.type}, Json(std::string(text)));
    default:
      return Json(std::string(text));
  }
}

}  // namespace canopy::model
