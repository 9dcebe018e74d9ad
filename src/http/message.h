#pragma once
// HTTP messages as the server hands them to a handler and takes them back,
// and the URL codecs both sides use. No I/O here: the server (server.h)
// and the handlers (the Neutron API) meet on these types.
//
// Thread-safety: values; the free functions are pure.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace canopy::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // decoded path, without the query
  // Query parameters in order, decoded; a key may repeat (?name=a&name=b).
  std::vector<std::pair<std::string, std::string>> query;
  // Header names lower-cased.
  std::map<std::string, std::string> headers;
  std::string body;
  std::string remote;  // "127.0.0.1:40312"

  // The header's value, or "" if absent. `name` in lower case.
  std::string_view header(std::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers{};
};

// Percent-decoding for paths and query strings ('+' is a space in queries).
std::string urlDecode(std::string_view text, bool plus_is_space);
// Percent-encodes everything but RFC 3986's unreserved characters.
std::string urlEncode(std::string_view text);
// Splits "a=1&b=&c" into decoded pairs.
std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query);

}  // namespace canopy::http
