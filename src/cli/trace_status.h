#pragma once
// `canopy trace` and `canopy status`: the client side of canopy-server's
// admin endpoints POST /canopy/v1/trace and GET /canopy/v1/status (they
// hang from the same root as /v2.0). Building the request and rendering
// the answer are pure functions, so tests check them against golden text.
//
//   TraceArgs a{.port = "vm1", .tcp = "80", .to = "10.0.0.7"};
//   auto body = traceRequest(a, resolve);         // {"trace": {...}}
//   std::cout << renderTrace(answer["trace"]);
//   std::cout << renderStatus(answer["status"]);
//
// Thread-safety: pure functions.

#include <functional>
#include <string>

#include "base/result.h"
#include "cli/client.h"

namespace canopy::cli {

// The command line of `canopy trace`, as typed (names not yet ids).
struct TraceArgs {
  std::string port{};       // --port: name or id
  std::string device_id{};  // --device-id
  std::string ip{};         // --ip, with --network
  std::string network{};    // --network: name or id
  std::string tcp{};        // --tcp PORT
  std::string udp{};        // --udp PORT
  bool icmp = false;
  bool arp = false;
  bool dhcp = false;
  std::string to{};           // --to IP: destination (not for DHCP)
  std::string source_port{};  // --source-port N (tcp, udp)
  std::string ttl{};          // --ttl N
  bool reply = false;
};

// Names to ids (Client::findId in the command; a table in tests).
using Resolver = std::function<Result<std::string>(const Collection&, const std::string&)>;

// The request body; InvalidArgument says which options do not go together.
Result<Json> traceRequest(const TraceArgs& args, const Resolver& resolve);

// The "trace" object of the answer:
//   trace: REQUEST
//     HOST  STEP
//     HOST  out: port NAME (ID): FRAME
//   verdict: SUMMARY
// and, when the answer has one, a blank line and the reply under "reply:".
std::string renderTrace(const Json& trace);

// The "status" object of the answer: the agents table, unbound ports and
// the ten most frequent drop reasons.
std::string renderStatus(const Json& status);

}  // namespace canopy::cli
