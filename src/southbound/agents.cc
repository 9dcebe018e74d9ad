#include "southbound/agents.h"

#include "model/json.h"
#include "southbound/keys.h"

namespace canopy::southbound {

Result<void> putAgent(state::ModelState& state, const Agent& agent,
                      const std::function<bool()>& still_wanted) {
  auto r = state.write({}, [&](state::Transaction& txn) -> Result<void> {
    if (still_wanted && !still_wanted()) return ok();
    const state::Document* current = txn.find(kAgentsCollection, agent.host);
    // What an admin said of the agent stays.
    Agent merged = agent;
    if (current != nullptr) {
      Agent before = Agent::fromJson(current->doc);
      merged.description = before.description;
      merged.admin_state_up = before.admin_state_up;
    }
    model::Json doc = merged.toJson();
    if (current != nullptr && current->doc == doc) return ok();  // nothing changes
    txn.update(kAgentsCollection, agent.host, doc);
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

}  // namespace canopy::southbound
