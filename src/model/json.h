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

// Parses `text`; InvalidArgument with the parser's position on failure.
Result<Json> parseJson(std::string_view text);

// A string member, or "" when it is absent, null or not a string (where
// Json::value would throw).
inline std::string stringAt(const Json& doc, std::string_view key) {
  if (!doc.is_object()) return {};
  auto it = doc.find(key);
  return it != doc.end() && it->is_string() ? it->get<std::string>() : std::string();
}

}  // namespace canopy::model
