#include "southbound/agents.h"

#include "model/json.h"
#include "southbound/keys.h"

namespace canopy::southbound {

Result<void> putAgent(state::ModelState& state, const AgentInfo& agent,
                      const std::function<bool()>& still_wanted) {
  model::Json doc = {{"id", agent.host},
                     {"host", agent.host},
                     {"tunnel_ip", agent.tunnel_ip},
                     {"encapsulations", agent.encapsulations},
                     {"gateway_capable", agent.gateway_capable},
                     {"physical_networks", agent.physical_networks},
                     {"version", agent.version},
                     {"alive", agent.alive}};
  auto r = state.write({}, [&](state::Transaction& txn) -> Result<void> {
    if (still_wanted && !still_wanted()) return ok();
    const state::Document* current = txn.find(kAgentsCollection, agent.host);
    if (current != nullptr && current->doc == doc) return ok();  // nothing changes
    txn.update(kAgentsCollection, agent.host, doc);
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

}  // namespace canopy::southbound
