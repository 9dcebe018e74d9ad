#pragma once
// Keeps each connected host's view and recomputes it only when a change
// touches something it was computed from (view.h's ViewDeps): a change
// concerns only the hosts whose view it can change, and the others do no
// work at all.
//
//   state.observe([&](const auto& changes, const auto& t) { tracker.onChanges(changes, t); });
//   HostView v = state.read([&](const auto& t) { return tracker.view(t, "compute-1"); });
//
// What a change touches: a port its id, its networks, hosts, router and
// groups (before and after); a subnet its network; a floating IP its router
// and port; a rule its group and remote group; a key the object it names
// (and, for a port, where the port is); an agent its host.
//
// Thread-safety: all methods from any thread (one mutex).

#include <map>
#include <string>
#include <vector>

#include "base/mutex.h"
#include "southbound/view.h"
#include "state/model_state.h"

namespace canopy::southbound {

class ViewTracker {
 public:
  void onChanges(const std::vector<state::Change>& changes, const state::Tables& tables);
  // The host's view, recomputed if it is new or something it depends on
  // changed (`recomputed` tells which).
  HostView view(const state::Tables& tables, const std::string& host, bool* recomputed = nullptr);
  void forget(const std::string& host);
  uint64_t recomputations() const;

 private:
  struct Entry {
    HostView view;
    ViewDeps deps;
    bool dirty = true;
  };
  mutable Mutex mu_;
  std::map<std::string, Entry> hosts_ CANOPY_GUARDED_BY(mu_);
  uint64_t recomputations_ CANOPY_GUARDED_BY(mu_) = 0;
};

// What a batch of changes touches, in ViewDeps' terms (exposed for tests).
ViewDeps touchedBy(const std::vector<state::Change>& changes, const state::Tables& tables);

}  // namespace canopy::southbound
