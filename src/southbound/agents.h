#pragma once
// Agents as the server keeps them: one document per host in the "agents"
// collection, written when an agent says hello and when its liveness
// changes; the views read host keys and tunnel addresses from it.
//
//   putAgent(state, {.host = "compute-1", .tunnel_ip = "192.168.0.1"});
//
// Thread-safety: through ModelState (any thread).

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "state/model_state.h"

namespace canopy::southbound {

struct AgentInfo {
  std::string host{};
  std::string tunnel_ip{};
  std::vector<std::string> encapsulations{};
  bool gateway_capable = false;
  std::vector<std::string> physical_networks{};
  std::string version{};
  bool alive = true;
};

// Creates or replaces the host's agent document. `still_wanted`, if given,
// is asked inside the write (serialised with every other writer of this
// server): false leaves the document as it is.
Result<void> putAgent(state::ModelState& state, const AgentInfo& agent,
                      const std::function<bool()>& still_wanted = {});

}  // namespace canopy::southbound
