#pragma once
// The JSON type of the control plane (nlohmann::json). Documents in the store
// and bodies of the API are this type; parse errors are caught at the edge
// (parseJson) and never cross a module boundary as exceptions.

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "base/result.h"

namespace canopy::model {

using Json = nlohmann::json;

// The deepest nesting of arrays and objects `parseJson` accepts: far more
// than any Neutron or Keystone body has, far less than what exhausts a
// thread's stack when a value is copied (each level recurses).
inline constexpr size_t kMaxJsonDepth = 64;

// Parses `text`; InvalidArgument (reason MalformedRequestBody) when it is not
// JSON or nests deeper than kMaxJsonDepth.
Result<Json> parseJson(std::string_view text);

// How deeply arrays and objects nest in `text` (JSON or not), by a linear
// scan that skips strings.
size_t jsonDepth(std::string_view text);

// A string member, or "" when it is absent, null or not a string (where
// Json::value would throw).
inline std::string stringAt(const Json& doc, std::string_view key) {
  if (!doc.is_object()) return {};
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// A member, or null when it is absent or `doc` is not an object (where a
// const operator[] is undefined behaviour): for stored documents, which
// may come from an older version without the member.
inline const Json& memberAt(const Json& doc, std::string_view key) {
  static const Json kNull;
  if (!doc.is_object()) return kNull;
  auto it = doc.find(key);
  return it != doc.end() ? *it : kNull;
}

}  // namespace canopy::model
