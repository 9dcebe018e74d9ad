#pragma once
// `canopy trace`: where would this packet go, and why? The server runs the
// datapath itself (pipeline + simulator, the code every agent runs) over the
// views its agents hold, computed from the current model, and returns each
// step in Neutron's terms: port security, the security-group rule that
// allowed or dropped the packet, switches, routers and routes, NAT, hosts
// and tunnels, and the verdict.
//
// A probe starts at a VM port (by port id, by device id, or by its address
// on a network) or at an outside host on an external network (an address no
// port has). As the guest would, it first resolves its next hop by ARP,
// through the same datapath. Each host a packet reaches gets its own
// Datapath with that host's view, so a trace across a tunnel runs the
// receiving host's ingress security group as that host would. With `reply`,
// the answer of whoever received the probe is traced back through the same
// connection-tracking state, which shows stateful behaviour (an allowed
// reply, NAT undone).
//
//   auto request = parseRequest(body);              // {"trace": {...}}
//   if (!request) return errorResponse(request.error());
//   auto result = state.read([&](const state::Tables& t) { return run(t, *request); });
//
// What the trace cannot know: external neighbours' MAC addresses (agents
// learn them by ARP); a placeholder stands in for them, and the step says so.
//
// Thread-safety: pure functions over a Tables the caller holds read-locked.

#include <cstdint>
#include <string>

#include "base/result.h"
#include "model/json.h"
#include "state/model_state.h"

namespace canopy::trace {

using model::Json;

struct Source {
  std::string port_id{};
  std::string device_id{};
  std::string ip_address{};  // with network_id
  std::string network_id{};
};

enum class Protocol : uint8_t { Tcp, Udp, Icmp, Arp, Dhcp };

struct Probe {
  Protocol protocol = Protocol::Icmp;
  std::string destination_ip{};   // all but DHCP
  uint16_t destination_port = 0;  // TCP and UDP
  uint16_t source_port = 0;       // 0: a default
  uint8_t ttl = 64;
};

struct Request {
  Source source{};
  Probe probe{};
  bool reply = false;
};

// Checks a request body, {"trace": {"source": {...}, "packet": {...},
// "reply": false}}. InvalidArgument (HTTPBadRequest) names what is wrong.
Result<Request> parseRequest(const Json& body);

// Runs a trace: {"request": ..., "steps": [{"host", "text"}], "outputs":
// [...], "verdict": "delivered" | "answered" | "dropped", "drop_reason",
// "summary", "reply": {...}}. NotFound for a source that does not exist,
// InvalidArgument for one that cannot send this probe.
Result<Json> run(const state::Tables& tables, const Request& request);

}  // namespace canopy::trace
