#pragma once
// Octavia's v2 load-balancer API (service type `load-balancer`) over the
// model: load balancers, listeners, pools, members and health monitors, the
// status tree, statistics and providers, with Octavia's error bodies
// ({"faultcode", "faultstring", "debuginfo"}). Transport-free, as NeutronApi:
// the server routes requests under /load-balancer to it, with that prefix
// removed (docs/LOADBALANCING.md).
//
//   OctaviaApi lb(state, {.auth = identity.get()}, clock);
//   auto reply = lb.handle(request);   // request.path "/v2/lbaas/loadbalancers"
//
// The one provider is `canopy`: the datapath balances at layer 4 on each
// client's host (docs/LOADBALANCING.md); what needs a proxy (TLS
// termination, header insertion, cookies, L7 policies) is refused with
// Octavia's 501 for options a provider does not support.
//
// Thread-safety: handle() may be called from many threads at once.

#include <memory>
#include <string_view>

#include "api/authenticator.h"
#include "base/clock.h"
#include "http/message.h"
#include "model/network.h"
#include "state/model_state.h"

namespace canopy::octavia {

// The model's collections.
inline constexpr std::string_view kLoadBalancers = "lbaas-loadbalancers";
inline constexpr std::string_view kListeners = "lbaas-listeners";
inline constexpr std::string_view kPools = "lbaas-pools";
inline constexpr std::string_view kMembers = "lbaas-members";
inline constexpr std::string_view kHealthMonitors = "lbaas-healthmonitors";

// The VIP port's owner, as Octavia names it.
inline constexpr std::string_view kVipOwner = "Octavia";

struct OctaviaConfig {
  // Who calls; outlives the API. Null: no credentials (X-Project-Id).
  api::Authenticator* auth = nullptr;
  model::NetworkConfig network;
};

class OctaviaApi {
 public:
  OctaviaApi(state::ModelState& state, OctaviaConfig config, const Clock& clock);
  ~OctaviaApi();

  // `request.path` is below the API's root: "/", "/v2/lbaas/pools", ...
  http::HttpResponse handle(const http::HttpRequest& request);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace canopy::octavia
