#pragma once
// Keeps each host's view up to date incrementally, and what changed in it
// version by version, so that an agent gets only the objects that changed.
//
// A batch of model changes is reduced to the ids it touches (touchedBy);
// a host whose view was built from none of them does no work at all. A
// concerned host re-evaluates only the touched objects and those that
// depend on them: a network that enters or leaves its closure brings or
// takes its ports, a switch that changes its routers, a port that comes or
// goes its floating IPs and its security groups' closure, an object that
// gets its key those that name it. The work is the change's size, not the
// view's; the result equals computeView (view.h), which tests check after
// random API changes.
//
// Hosts whose closure is the same (the same networks and routers: on a big
// flat network, every host) share one view, kept once and brought up to
// date once per change, as ovsdb-server shares one monitor among clients
// with the same conditions: a host costs its place, not a copy of its view.
// A host that sees something no other can (its own ports on an external
// network, or a host named by nothing but itself) has a view of its own.
// A host whose closure changes moves to another view; what it is sent is
// then the difference between the two.
//
// Versions are the model's revisions. Each view keeps a short log of the
// keys each version changed; an agent that resumes from a version the log
// still covers gets only the changes since (also after a reconnect). One
// that resumes where the log does not reach (it comes from another replica,
// or this one restarted) gets the objects that differ from the digest of
// what it holds: nothing at all when it is current.
//
//   state.observe([&](const auto& changes, const auto& t) { tracker.onChanges(changes, t); });
//   ViewTracker::Cursor cursor{.resume_from = hello.applied_version()};
//   auto message = state.readAt([&](const auto& t, auto revision) {
//     return tracker.next(t, revision, "compute-1", cursor);   // nullopt: nothing new
//   });
//
// Thread-safety: all methods from any thread; next() and view() with the
// model read-locked at `revision` (ModelState::readAt). Each host and each
// view has its own lock, so the sessions of different hosts bring their
// views up to date in parallel; onChanges() runs with the model
// write-locked, when no next() can. Locks are taken in the order hosts_mu_,
// a host's, views_mu_, a view's.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "southbound/convert.h"
#include "southbound/view.h"
#include "state/model_state.h"

namespace canopy::southbound {

// What a batch of changes touches, by id: a port its id, its networks,
// hosts, router and groups (before and after); a subnet its network; a
// floating IP its id, router and port; a rule its group and remote group; a
// key the object it names (and, for a port, where the port is); an agent
// its host.
struct Touched {
  std::set<std::string, std::less<>> networks, routers, groups, ports, hosts, floating_ips;
  bool everything = false;  // the model was reloaded

  bool empty() const;
  void merge(const Touched& other);
};
Touched touchedBy(const std::vector<state::Change>& changes, const state::Tables& tables);

class ViewTracker {
  struct View;  // a view, shared or a host's own, and its lock

 public:
  // One session's place: what it was last sent.
  struct Cursor {
    uint64_t resume_from = 0;  // the version the agent says it holds
    // What it holds, object by object (Hello.held): when this server has no
    // log back to resume_from (another replica served the agent, or this
    // one restarted), only the objects that differ are sent.
    std::optional<pb::ViewDigest> held;
    bool resync = false;  // set to send a whole snapshot next
    bool sent = false;
    uint64_t version = 0;  // the last sent
    uint32_t local_host = 0;
    // The view it came from, and that view's version then.
    std::shared_ptr<View> from;
    uint64_t from_version = 0;
  };

  // `clock` times how long a disconnected host's view is kept.
  explicit ViewTracker(const Clock& clock);
  ~ViewTracker();

  void onChanges(const std::vector<state::Change>& changes, const state::Tables& tables);

  // Brings the host's view to `revision` and returns what the session has
  // not had yet: a snapshot, or the changes since its version; nullopt when
  // it is up to date.
  std::optional<pb::View> next(const state::Tables& tables, uint64_t revision,
                               const std::string& host, Cursor& cursor);

  // The host's view at `revision` (a copy; for tests and tools).
  HostView view(const state::Tables& tables, uint64_t revision, const std::string& host);

  // The host's agent left: its view is kept (and kept up to date, at the
  // cost of the changes) for a while, so that a reconnect resumes.
  void disconnected(const std::string& host);

  // How many times a view was brought up to date.
  uint64_t recomputations() const;
  // How many views are kept (hosts that share one count once).
  size_t views() const;

  // How long a disconnected host's view is kept.
  static constexpr std::chrono::minutes kKeepDisconnected{10};

 private:
  struct Entry;
  struct Host;  // where a host is, and its lock
  std::shared_ptr<Host> placeOf(const std::string& host);
  std::shared_ptr<View> viewNamed(const std::string& signature, const std::string* own,
                                  const ViewClosure* closure);

  const Clock& clock_;
  mutable Mutex hosts_mu_;  // the map; each host has its lock
  std::map<std::string, std::shared_ptr<Host>> hosts_ CANOPY_GUARDED_BY(hosts_mu_);
  mutable Mutex views_mu_;  // the map; each view has its lock
  // By signature: shared views by their closure, own views by their host.
  std::map<std::string, std::weak_ptr<View>> views_ CANOPY_GUARDED_BY(views_mu_);
  std::atomic<uint64_t> recomputations_{0};
};

}  // namespace canopy::southbound
