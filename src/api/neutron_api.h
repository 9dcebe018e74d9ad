#pragma once
// Neutron's v2.0 REST API over the in-memory model: routing, authentication
// (an Authenticator), policy, the generic create/list/show/update/delete of
// resources, and Neutron's error bodies. Transport-free: it maps an
// HttpRequest to an HttpResponse, so tests drive it with or without sockets.
//
//   NeutronApi api(state, {.auth = identity.get()}, clock);
//   auto server = HttpServer::start(options, [&](const HttpRequest& r) { return api.handle(r); });
//
// Thread-safety: handle() may be called from many threads at once.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "api/authenticator.h"
#include "base/clock.h"
#include "http/message.h"
#include "model/attributes.h"
#include "model/network.h"
#include "state/model_state.h"

namespace canopy::api {

using http::HttpRequest;
using http::HttpResponse;

struct ApiConfig {
  // Who calls (authenticator.h); it outlives the API. Null: no credentials
  // (noAuth(): the X-Project-Id header names the project).
  Authenticator* auth = nullptr;
  model::NetworkConfig network;
  // Canopy's own endpoints under /canopy/v1/ (trace, status), called once
  // the caller is authenticated; unset: those paths are not found.
  std::function<HttpResponse(const HttpRequest&, const model::Caller&)> canopy{};
};

class NeutronApi {
 public:
  NeutronApi(state::ModelState& state, ApiConfig config, const Clock& clock);
  ~NeutronApi();

  HttpResponse handle(const HttpRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The HTTP status of an error's code (400 for InvalidArgument, 404 for
// NotFound, ...), shared with Octavia's API.
int httpStatus(Errc code);
// Splits "/v2.0/networks/abc" into ["v2.0", "networks", "abc"], dropping a
// ".json" suffix on the last segment.
std::vector<std::string> splitPath(std::string_view path);

// Neutron's error body and status for an Error.
HttpResponse errorResponse(const Error& error);
// The same for what the HTTP server answers itself (a malformed request, a
// body over the limit, a failed handler): http::HttpServerOptions::error_response.
HttpResponse transportError(int status, std::string message);

}  // namespace canopy::api
