#pragma once
// Security-group logs as other kinds and the router use them
// (kinds/log.cc).
//
// Thread-safety: functions of one request's Transaction, or stateless.

#include <string>
#include <string_view>

#include "api/detail/endpoint.h"
#include "api/kind.h"

namespace canopy::api::detail {

// The logs filed under `id` in `index` ("logs.resource": a security
// group's, "logs.target": a port's) go with it.
void removeLogsOf(std::string_view index, const std::string& id, Transaction& ctx);
// GET /v2.0/log/loggable-resources (admin).
HttpResponse serveLoggableResources(const HttpRequest& req, const Caller& caller);

}  // namespace canopy::api::detail
