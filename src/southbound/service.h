#pragma once
// The server's end of the southbound: one gRPC stream per agent.
//
//   agent -> Hello (host, tunnel address, uplinks, gateway capability, the
//            version it has applied)
//   server -> View: a snapshot, or the changes since the version the agent
//            last acknowledged (when it resumes with that version)
//   agent -> Ack per version (accepted, or refused with a reason: the next
//            view is then a whole snapshot), PortStatus up/down
//
// After each change of the model, the views it concerns are brought up to
// date incrementally (tracker.h) and only the objects that changed are
// sent; hosts whose view did not change get nothing. An agent that resumes
// from a version the host's log still covers gets only the changes since. A reconciler gives new
// objects their keys and schedules each router's gateway to a live gateway-capable agent that has
// an uplink to its external network. Port reports set the port's status and, for a port bound to no
// host yet, its binding:host_id.
//
// With several replicas (cluster/replica.h) any replica serves any agent;
// the reconciler runs on the leader only, its writes fenced by the leader's
// term. Each connected agent has a session document held by its replica's
// lease (agents.h): an agent whose replica died without it reconnecting
// elsewhere is written dead by the leader after kSessionGrace.
//
//   SouthboundService service(state, clock);
//   grpc::ServerBuilder b; b.RegisterService(&service); ...
//   service.stop();   // before the gRPC server shuts down
//
// Streams cost no thread of their own: each is a gRPC reactor whose work
// (the hello, port reports, bringing its view up to date and writing it)
// runs in order on a small pool of workers, and one thread wakes every
// session's writer after each change of the model.
//
// Thread-safety: gRPC calls Connect() and the reactions on its threads;
// everything else on the workers; the shared maps are guarded by mu_.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "cluster/replica.h"
#include "proto/southbound.grpc.pb.h"
#include "southbound/agents.h"
#include "southbound/convert.h"
#include "southbound/tracker.h"
#include "southbound/view.h"
#include "state/model_state.h"

namespace canopy::southbound {

// What each host carried through load balancers' listeners (one document
// per host: {"host", "listeners": {id: counters}}), for Octavia's statistics.
inline constexpr std::string_view kListenerStatsCollection = "lbaas-listener-stats";
// What each host's metering labels counted, one document per host.
inline constexpr std::string_view kMeterStatsCollection = "metering-label-stats";

// How the deployment's routers translate.
struct ServiceOptions {
  // Distributed SNAT: every live host with an uplink to a router's
  // external network and a port behind the router leases a block of
  // `snat_block_ports` of its gateway address's ports (1024-65535; the
  // first block is the gateway host's, for the others) and translates its
  // own VMs' traffic. Off: the gateway host translates it all.
  bool distributed_snat = false;
  uint16_t snat_block_ports = 2048;
};

class SouthboundService final
    : public pb::Southbound::WithCallbackMethod_Connect<pb::Southbound::Service> {
 public:
  // `replica` (may be null: a single server that always leads) outlives
  // the service.
  SouthboundService(state::ModelState& state, const Clock& clock,
                    cluster::Replica* replica = nullptr, ServiceOptions options = {});
  ~SouthboundService() override;

  grpc::ServerBidiReactor<pb::AgentMessage, pb::ServerMessage>* Connect(
      grpc::CallbackServerContext* context) override;
  // What a port's metadata service answers (the port's device_id, project,
  // names, floating IP, and the keys and user data of its
  // instance_metadata): only to the agent of the host it is bound to.
  grpc::Status GetInstance(grpc::ServerContext* context, const pb::InstanceRequest* request,
                           pb::Instance* reply) override;

  // Ends every stream, the reconciler and the notifier.
  void stop();

  // Gives keys to new objects and schedules unscheduled gateways, once.
  Result<void> reconcile();
  Result<void> leaseSnatBlocks();

  // How many agents are connected now.
  size_t connected() const;

  // How long an agent marked alive may have no session (its replica died,
  // or the server restarted) before the leader writes it dead: time to
  // reconnect to another replica.
  static constexpr std::chrono::seconds kSessionGrace{10};

  // The agents connected now: the latest view version sent to each, the
  // last it applied, and the datapath counters it last reported.
  struct SessionInfo {
    std::string host;
    uint64_t latest_version = 0;
    uint64_t applied_version = 0;
    // The model revision the host's view was last brought up to (whether
    // or not that sent anything).
    uint64_t considered_revision = 0;
    pb::Stats stats;
  };
  std::vector<SessionInfo> sessions() const;
  // How many times host views were brought up to date (a change touches
  // only the views it concerns).
  uint64_t recomputations() const { return tracker_->recomputations(); }

 private:
  class Session;
  struct Workers;
  // The hello: the agent written alive, the session registered. False:
  // the stream was finished with the reason.
  bool welcome(const std::shared_ptr<Session>& s, const pb::Hello& hello);
  void receive(const std::shared_ptr<Session>& s, const pb::AgentMessage& m);
  // Brings the session's view up to date and writes what it lacks.
  void pump(const std::shared_ptr<Session>& s);
  // After the stream's end: the session unregistered, the agent's session
  // document ended.
  void farewell(const std::shared_ptr<Session>& s);
  Result<void> setPortStatus(const std::string& host, const std::string& port_id, bool up);
  Result<void> setMemberHealth(const std::string& host, const std::string& member_id, bool up);
  void writeListenerStats(Session& s, const pb::Stats& stats);
  void writeMeterStats(Session& s, const pb::Stats& stats);
  bool leads() const { return replica_ == nullptr || replica_->leading(); }
  state::WriteOptions leaderWrites() const;
  AgentSession sessionOf(const std::string& host, const std::string& id) const;
  // Agents alive without a session for kSessionGrace are written dead.
  Result<void> reapOrphans();
  void renewSessions(store::LeaseId lease);

  state::ModelState& state_;
  // Shared with the model's observer, which may outlive the service.
  const Clock& clock_;
  const ServiceOptions options_;
  cluster::Replica* replica_;
  // What the replica's listener reaches: nulled when the service goes.
  struct Link {
    Mutex mu;
    SouthboundService* service CANOPY_GUARDED_BY(mu) = nullptr;
  };
  std::shared_ptr<Link> link_ = std::make_shared<Link>();
  std::atomic<uint64_t> next_session_{1};
  Mutex orphans_mu_;
  std::map<std::string, SteadyTime> orphans_ CANOPY_GUARDED_BY(orphans_mu_);  // since when
  std::shared_ptr<ViewTracker> tracker_;
  std::atomic<bool> stopping_{false};
  std::unique_ptr<Workers> workers_;
  std::thread reconciler_;
  std::thread notifier_;                      // wakes every session after each change
  std::atomic<uint64_t> sent_bytes_{0};       // views written since memory was last trimmed
  std::atomic<SteadyTime::rep> last_big_{0};  // when the last big one was written
  mutable Mutex mu_;
  std::map<std::string, std::shared_ptr<Session>> sessions_ CANOPY_GUARDED_BY(mu_);
  std::map<std::string, SessionInfo> info_ CANOPY_GUARDED_BY(mu_);  // of the sessions_
  // Streams not done yet (registered or not): the service waits for them.
  size_t streams_ CANOPY_GUARDED_BY(mu_) = 0;
  CondVar streams_done_;
};

}  // namespace canopy::southbound
