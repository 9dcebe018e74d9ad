#include "southbound/agents.h"

#include "model/json.h"
#include "southbound/keys.h"
#include "state/transaction.h"

namespace canopy::southbound {
namespace {

model::Json sessionDoc(const AgentSession& s) {
  return {{"replica", s.replica}, {"session", s.id}};
}

// The agent's document with what an admin said of it kept; false when it
// would not change.
bool merged(const state::Transaction& txn, const Agent& agent, model::Json& out) {
  const state::Document* current = txn.find(kAgentsCollection, agent.host);
  Agent m = agent;
  if (current != nullptr) {
    Agent before = Agent::fromJson(current->doc);
    m.description = before.description;
    m.admin_state_up = before.admin_state_up;
  }
  out = m.toJson();
  return current == nullptr || current->doc != out;
}

}  // namespace

Result<void> putAgent(state::ModelState& state, const Agent& agent,
                      const std::optional<AgentSession>& session) {
  auto r = state.write({}, [&](state::Transaction& txn) -> Result<void> {
    model::Json doc;
    if (merged(txn, agent, doc)) txn.update(kAgentsCollection, agent.host, doc);
    if (session) {
      const state::Document* held = txn.find(kSessionsCollection, agent.host);
      txn.guard(kSessionsCollection, agent.host, held != nullptr ? held->mod_revision : 0);
      txn.put(kSessionsCollection, agent.host, sessionDoc(*session), session->lease);
    }
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

Result<void> renewSession(state::ModelState& state, const std::string& host,
                          const AgentSession& session) {
  auto r = state.write({}, [&](state::Transaction& txn) -> Result<void> {
    const state::Document* held = txn.find(kSessionsCollection, host);
    if (held != nullptr && model::stringAt(held->doc, "session") != session.id) return ok();
    if (held == nullptr) {
      txn.guardAbsent(kSessionsCollection, host);
    } else {
      txn.guard(kSessionsCollection, host, held->mod_revision);
    }
    txn.put(kSessionsCollection, host, sessionDoc(session), session.lease);
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

Result<void> endSession(state::ModelState& state, const std::string& host,
                        const std::string& session_id) {
  auto r = state.write({}, [&](state::Transaction& txn) -> Result<void> {
    const state::Document* held = txn.find(kSessionsCollection, host);
    if (held != nullptr && model::stringAt(held->doc, "session") != session_id) return ok();
    if (held != nullptr) {
      txn.erase(kSessionsCollection, host);
    } else {
      txn.guardAbsent(kSessionsCollection, host);  // no session came meanwhile
    }
    const state::Document* current = txn.find(kAgentsCollection, host);
    if (current == nullptr) return ok();
    Agent a = Agent::fromJson(current->doc);
    if (!a.alive) return ok();
    a.alive = false;
    txn.update(kAgentsCollection, host, a.toJson());
    return ok();
  });
  if (!r) return std::move(r).error();
  return ok();
}

}  // namespace canopy::southbound
