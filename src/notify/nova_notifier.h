#pragma once
// Tells Nova what happens to its instances' ports, as Neutron's nova
// notifier does (neutron/notifiers/nova.py), through Nova's
// os-server-external-events:
//
// - network-vif-plugged (completed) when a port of an instance turns ACTIVE
//   (its host's agent forwards for it): what Nova waits for before it lets
//   a new VM run; failed when it turns ERROR;
// - network-vif-unplugged when an ACTIVE port goes DOWN;
// - network-vif-deleted when an instance's port is deleted;
// - network-changed when its fixed IPs change, or a floating IP is
//   associated with it or leaves it (Nova refreshes its network info).
//
// Events are gathered from the model's changes (ModelState::observe) and
// sent in batches every `interval` from a thread of the notifier's own, with
// a service token from Keystone (its catalog gives Nova's endpoint unless
// one is configured). A Nova that is down or slow never holds up the API:
// the queue is bounded (events past it are dropped and counted), a failed
// batch is retried at the next rounds up to `attempts` times, and an event
// for an instance Nova does not know (404) is dropped, as Neutron does. The
// token is never logged.
//
//   auto n = NovaNotifier::start(state, {.url = "http://nova:8774/v2.1", ...}, clock);
//
// Thread-safety: stats() from any thread; the notifier stops when destroyed.

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/mutex.h"
#include "base/result.h"
#include "model/json.h"
#include "state/model_state.h"

namespace canopy::notify {

struct NovaOptions {
  // Nova's compute endpoint ("http://HOST:8774/v2.1"); "": from Keystone's
  // catalog (service type "compute", `endpoint_type`, `region`).
  std::string url{};
  // Keystone v3 ("http://HOST:5000/v3") and the user whose token is sent;
  // an empty auth_url sends no token (a Nova without authentication).
  std::string auth_url{};
  std::string username{};
  std::string password{};
  std::string project_name = "service";
  std::string user_domain = "Default";
  std::string project_domain = "Default";
  std::string region{};
  std::string endpoint_type = "public";
  std::chrono::milliseconds interval{2000};  // Neutron's send_events_interval
  std::chrono::milliseconds timeout{10000};
  size_t max_pending = 10000;
  int attempts = 5;
  // Whether this server sends events now: with several replicas, only the
  // leader does (each sees every change). None: always.
  std::function<bool()> active{};
};

struct NovaEvent {
  std::string name;         // network-vif-plugged, ...
  std::string server_uuid;  // the instance: the port's device_id
  std::string tag;          // the port's id
  std::string status = "completed";

  friend bool operator==(const NovaEvent&, const NovaEvent&) = default;
};

// The events one change of the model calls for (`tables`: the model after
// it, for a floating IP's port).
std::vector<NovaEvent> novaEventsFor(const state::Change& change, const state::Tables& tables);

class NovaNotifier {
 public:
  static Result<std::unique_ptr<NovaNotifier>> start(state::ModelState& state, NovaOptions options,
                                                     const Clock& clock);
  ~NovaNotifier();
  NovaNotifier(const NovaNotifier&) = delete;
  NovaNotifier& operator=(const NovaNotifier&) = delete;

  struct Stats {
    uint64_t sent = 0;     // events Nova took
    uint64_t dropped = 0;  // past the queue, unknown to Nova, or out of attempts
    uint64_t failed_calls = 0;
    size_t pending = 0;
  };
  Stats stats() const;

 private:
  // What the model's observer (which may outlive the notifier) and the
  // sending thread share.
  struct Queue {
    explicit Queue(size_t max) : max_pending(max) {}
    const size_t max_pending;
    Mutex mu;
    CondVar cv;
    bool stopping CANOPY_GUARDED_BY(mu) = false;
    std::deque<std::pair<NovaEvent, int>> pending CANOPY_GUARDED_BY(mu);  // event, attempts
    Stats stats CANOPY_GUARDED_BY(mu);
    void add(std::vector<NovaEvent> events);
  };

  NovaNotifier(NovaOptions options, const Clock& clock);
  void run();
  // One batch to Nova; what to try again.
  std::vector<std::pair<NovaEvent, int>> send(std::vector<std::pair<NovaEvent, int>> batch);
  // A token ("" without Keystone) and Nova's URL, renewed when `renew` or
  // close to expiry.
  Result<void> authenticate(bool renew);

  const NovaOptions options_;
  const Clock& clock_;
  std::shared_ptr<Queue> queue_;
  // Used by the sending thread only.
  std::string token_;
  std::string nova_url_;
  WallTime token_expires_{};
  std::thread thread_;
};

}  // namespace canopy::notify
