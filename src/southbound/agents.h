#pragma once
// Agents as the server keeps them: one document per host in the "agents"
// collection (model/agent.h), written when an agent says hello and when its
// liveness changes; the views read host keys and tunnel addresses from it.
// Beside it, while an agent is connected, its session document
// ("agent-sessions": which replica serves it), held by that replica's lease:
// when the replica dies, the session document goes with its lease, and the
// leader writes the agent dead unless it reconnected elsewhere meanwhile.
//
//   putAgent(state, {.host = "compute-1", .tunnel_ip = "192.168.0.1"},
//            AgentSession{.replica = "r1", .id = "r1/7", .lease = lease});
//   endSession(state, "compute-1", "r1/7");   // dead, unless another session took over
//
// Thread-safety: through ModelState (any thread).

#include <optional>
#include <string>

#include "base/result.h"
#include "model/agent.h"
#include "state/model_state.h"

namespace canopy::southbound {

using model::Agent;

// One agent's connection to one replica.
struct AgentSession {
  std::string replica;
  std::string id;  // unique among the cluster's sessions
  store::LeaseId lease = 0;
};

// Creates or replaces the host's agent document and, with a session, its
// session document, in one write.
Result<void> putAgent(state::ModelState& state, const Agent& agent,
                      const std::optional<AgentSession>& session = std::nullopt);

// Puts the session document again (under a new lease after the old one was
// lost), if the host has no other session meanwhile.
Result<void> renewSession(state::ModelState& state, const std::string& host,
                          const AgentSession& session);

// Session `session_id` of `host` ended: its document goes and the agent is
// written dead, in one write guarded by the session document; nothing
// happens if another session (of any replica) holds the host now.
Result<void> endSession(state::ModelState& state, const std::string& host,
                        const std::string& session_id);

}  // namespace canopy::southbound
