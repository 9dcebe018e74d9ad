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
// The model's lock is held only to copy what the trace needs (capture: the
// views of the hosts the probe can reach, and where it starts); the hosts'
// datapaths, on a datapath::fabric::Fabric, run outside it, so that a long
// trace never holds up the watch and the writers behind it.
//
//   auto request = parseRequest(body);              // {"trace": {...}}
//   if (!request) return errorResponse(request.error());
//   auto captured = state.read([&](const state::Tables& t) { return capture(t, *request); });
//   if (!captured) return errorResponse(captured.error());
//   auto result = run(clock, *captured, *request);
//
// What the trace cannot know: external neighbours' MAC addresses (agents
// learn them by ARP); a placeholder stands in for them, and the step says so.
//
// Thread-safety: capture() reads a Tables the caller holds read-locked; a
// Capture is a value; run() touches nothing shared.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/result.h"
#include "model/agent.h"
#include "model/json.h"
#include "southbound/host_view.h"
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

// A host with its agent's document and its view, as the model had them.
struct CapturedHost {
  uint32_t key = 0;
  model::Agent agent{};
  southbound::HostView view{};
  // External next hops its agent learned (by ARP and neighbour
  // discovery), as it last reported them: shown as they are, not as
  // placeholders.
  struct Neighbor {
    uint32_t switch_key = 0;
    IpAddress ip{};
    datapath::packet::MacAddress mac{};
  };
  std::vector<Neighbor> neighbors{};
};

// What a trace needs from the model.
struct Capture {
  std::vector<CapturedHost> hosts;
  // Where the probe starts: a VM port on a host...
  std::string port_id{};
  std::string port_label{};  // "port vm1 (id)"
  std::string host{};        // its binding
  uint32_t port_key = 0;
  // ...or an outside host, by an uplink to this network's physical network.
  bool outside = false;
  std::string physical_network{};
  uint32_t switch_key = 0;
  // A trace that ends before it starts (an unbound port, a network without
  // uplinks): the result as is.
  std::optional<Json> finding{};
};

// Finds where the probe starts and copies the views of every host it may
// reach (the closure over the views' hosts). NotFound for a source that
// does not exist, InvalidArgument for one that cannot send this probe.
Result<Capture> capture(const state::Tables& tables, const Request& request);

// Runs a trace: {"request": ..., "steps": [{"host", "text"}], "outputs":
// [...], "verdict": "delivered" | "answered" | "dropped", "drop_reason",
// "summary", "reply": {...}}. Unavailable if the port is not in its host's
// view yet.
// The hosts' datapaths read `clock` (connection tracking's timeouts).
Result<Json> run(const Clock& clock, const Capture& captured, const Request& request);

}  // namespace canopy::trace
