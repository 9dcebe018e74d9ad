#include "southbound/agents.h"

#include "model/json.h"
#include "southbound/keys.h"

namespace canopy::southbound {

Result<void> putAgent(state::ModelState& state, const AgentInfo& agent) {
  model::Json doc = {{"id", agent.host},
                     {"host", agent.host},
                     {"tunnel_ip", agent.tunnel_ip},
                     {"encapsulations", agent.encapsulations},
                     {"gateway_capable", agent.gateway_capable},
                     {"physical_networks", agent.physical_networks},
                     {"version", agent.version},
                     {"alive", agent.alive}};
  std::vector<store::Op> ops = {
      store::Op::put(state::documentKey(kAgentsCollection, agent.host), doc.dump())};
  auto r = state.commit({}, ops);
  if (!r) return std::move(r).error();
  return ok();
}

}  // namespace canopy::southbound
