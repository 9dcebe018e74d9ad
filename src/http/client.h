#pragma once
// A blocking HTTP/1.1 client (Boost.Beast) for the server's own calls out,
// such as token validation at Keystone: one request per connection, a
// deadline on the whole exchange, plain http only.
//
//   auto url = HttpUrl::parse("http://127.0.0.1:5000/v3");
//   auto r = httpRequest(*url, "GET", "/v3/auth/tokens", {}, {{"X-Auth-Token", t}}, 5s);
//
// Thread-safety: free functions; each call has its own connection.

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"

namespace canopy::http {

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string path;  // without a trailing slash; "" for the root

  // "http://host[:port][/path]"; https is refused with a clear error.
  static Result<HttpUrl> parse(std::string_view text);
  std::string toString() const;
};

struct HttpReply {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;

  std::string header(std::string_view name) const;  // case-insensitive; "" if absent
};

// Errc::Unavailable when the server cannot be reached or does not answer
// in time.
Result<HttpReply> httpRequest(const HttpUrl& url, const std::string& method,
                              const std::string& target, const std::string& body,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              std::chrono::milliseconds timeout);

}  // namespace canopy::http
