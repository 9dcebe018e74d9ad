#pragma once
// A small HTTP/1.1 server (Boost.Beast over Asio coroutines): keep-alive, many
// concurrent connections, a bounded request size, idle timeouts. It knows
// nothing of Neutron: it parses requests, calls one Handler, writes what the
// handler returns.
//
//   auto server = HttpServer::start({.address = "127.0.0.1", .port = 0},
//                                   [](const HttpRequest& r) { return HttpResponse{...}; });
//   uint16_t port = (*server)->port();
//   ...
//   (*server)->stop();   // or let it go out of scope
//
// Thread-safety: the handler is called concurrently from `threads` I/O threads
// and must be thread-safe. start() and stop() from one controlling thread.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace canopy::api {

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

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 9696;  // 0: any free port (tests)
  int threads = 2;
  size_t max_body_bytes = 1 << 20;
  int idle_timeout_seconds = 60;
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and starts serving; fails with Unavailable if the address is taken.
  static Result<std::unique_ptr<HttpServer>> start(const HttpServerOptions& options,
                                                   HttpHandler handler);
  // The bound port (useful when started on port 0).
  virtual uint16_t port() const = 0;
  // Stops accepting, closes connections and joins the I/O threads. Idempotent.
  virtual void stop() = 0;
};

// Percent-decoding for paths and query strings ('+' is a space in queries).
std::string urlDecode(std::string_view text, bool plus_is_space);
// Percent-encodes everything but RFC 3986's unreserved characters.
std::string urlEncode(std::string_view text);
// Splits "a=1&b=&c" into decoded pairs.
std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query);

}  // namespace canopy::api
