#pragma once
// Canopy's own API for operators, beside Neutron's (served under the same
// authentication, admin only):
//
//   POST /canopy/v1/trace    a probe through the datapath (trace.h)
//   GET  /canopy/v1/status   agents (alive, connected, view version applied
//                            against the latest), ports per host, and the
//                            drop reasons agents report, most frequent first
//
//   Operations ops(state, &southbound, clock);
//   NeutronApi api(state, {.canopy = [&](auto& r, auto& c) { return ops.handle(r, c); }}, clock);
//
// Thread-safety: handle() may be called from many threads at once.

#include "base/clock.h"
#include "cluster/replica.h"
#include "http/message.h"
#include "model/attributes.h"
#include "southbound/service.h"
#include "state/model_state.h"
#include "trace/trace.h"

namespace canopy::trace {

class Operations {
 public:
  // `southbound` may be null (a server without agents): status then shows
  // no connected agents.
  // `replica` (may be null): status then merges what every replica of the
  // cluster knows of its own agents' sessions.
  Operations(state::ModelState& state, const southbound::SouthboundService* southbound,
             const Clock& clock, const cluster::Replica* replica = nullptr)
      : state_(state), southbound_(southbound), clock_(clock), replica_(replica) {}

  http::HttpResponse handle(const http::HttpRequest& request, const model::Caller& caller);

 private:
  http::HttpResponse trace(const http::HttpRequest& request);
  http::HttpResponse status(const http::HttpRequest& request);
  http::HttpResponse metering();
  // What the other replicas say of their agents' sessions, merged into
  // `agents` (by host) and `drops`.
  void mergeReplicas(const http::HttpRequest& request, model::Json& agents,
                     std::map<std::string, uint64_t>& drops) const;
  static void addNeighbors(Capture& captured,
                           const std::vector<southbound::SouthboundService::SessionInfo>& all);

  state::ModelState& state_;
  const southbound::SouthboundService* southbound_;
  const Clock& clock_;
  const cluster::Replica* replica_ = nullptr;
};

}  // namespace canopy::trace
