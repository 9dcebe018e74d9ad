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
#include "http/message.h"

namespace canopy::http {

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// The answer to a request that never reached the handler (400 for a
// malformed request, 413 for a body over the limit) or that it failed on
// (500): the status and a message, formatted as the API's errors are.
using HttpErrorFormatter = std::function<HttpResponse(int status, std::string message)>;

struct HttpServerOptions {
  std::string address = "127.0.0.1";
  uint16_t port = 9696;  // 0: any free port (tests)
  int threads = 2;
  // A larger body is answered 413 (and read to its end, up to
  // max_drain_bytes, so that the client, still sending, sees the answer
  // instead of a reset connection).
  size_t max_body_bytes = 1 << 20;
  size_t max_drain_bytes = 64 << 20;
  int idle_timeout_seconds = 60;
  // A listening IPv4 TCP socket to serve instead of binding address and
  // port (one made in another network namespace); the server owns it.
  int listen_fd = -1;
  // Unset: text/plain bodies.
  HttpErrorFormatter error_response{};
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

}  // namespace canopy::http
