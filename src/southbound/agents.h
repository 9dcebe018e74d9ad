#pragma once
// Agents as the server keeps them: one document per host in the "agents"
// collection (model/agent.h), written when an agent says hello and when its
// liveness changes; the views read host keys and tunnel addresses from it.
//
//   putAgent(state, {.host = "compute-1", .tunnel_ip = "192.168.0.1"});
//
// Thread-safety: through ModelState (any thread).

#include <functional>
#include <string>
#include <vector>

#include "base/result.h"
#include "model/agent.h"
#include "state/model_state.h"

namespace canopy::southbound {

using model::Agent;

// Creates or replaces the host's agent document. `still_wanted`, if given,
// is asked inside the write (serialised with every other writer of this
// server): false leaves the document as it is.
Result<void> putAgent(state::ModelState& state, const Agent& agent,
                      const std::function<bool()>& still_wanted = {});

}  // namespace canopy::southbound
