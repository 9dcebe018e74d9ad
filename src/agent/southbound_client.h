#pragma once
// The agent's end of the southbound: keeps one stream to canopy-server open
// (reconnecting with backoff; with several replicas listed, to the next one
// at once when a stream dies), says hello with the version it has applied
// and a digest of what it holds (so that another replica sends only what
// differs),
// applies each view it receives to the view it holds, hands the result to
// `on_view` and acknowledges it — or refuses it with the reason when it does
// not apply or `on_view` rejects it, after which the server sends a whole
// snapshot. Port up/down reports are queued and sent in order.
//
//   SouthboundClient client({.server = "127.0.0.1:9697", .hello = hello},
//                           [&](const HostView& v, uint64_t version) { return install(v); });
//   client.start();
//   client.reportPort(port_id, true);
//
// With the server gone the agent keeps its last view (headless); on return
// it resumes from the version it applied.
//
// Thread-safety: start/stop/reportPort/reportStats from any thread; on_view runs on the
// client's thread.

#include <grpcpp/security/credentials.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"
#include "proto/southbound.grpc.pb.h"
#include "southbound/convert.h"
#include "southbound/host_view.h"

namespace canopy::agent {

namespace pb = ::canopy::southbound::v1;
using southbound::HostView;

class SouthboundClient {
 public:
  struct Options {
    // HOST:PORT or unix:PATH; several replicas separated by commas, tried in
    // turn (a DNS name with several addresses works too: dns:///NAME:PORT).
    std::string server;
    pb::Hello hello;
    std::chrono::milliseconds max_backoff{2000};
    // Plain gRPC when null (a unix socket or loopback); see southbound/tls.h.
    std::shared_ptr<grpc::ChannelCredentials> credentials{};
  };
  using OnView = std::function<Result<void>(const HostView& view, uint64_t version)>;

  SouthboundClient(Options options, OnView on_view);
  ~SouthboundClient();

  // Before start(): the view an earlier process of this agent held (from
  // its saved view), so that the first stream resumes from `version`.
  void resume(const HostView& view, uint64_t version);
  void start();
  void stop();
  void reportPort(const std::string& port_id, bool up);
  // What a load balancer member's health monitor found (kept, and sent
  // again on every new stream, as port states are).
  void reportMemberHealth(const std::string& member_id, bool up);
  // The datapath's counters; sent now if connected, else dropped (the next
  // report supersedes it).
  void reportStats(const pb::Stats& stats);

  // What the metadata service answers for a port bound to this host (a
  // unary call of its own, with a deadline); any thread.
  Result<pb::Instance> getInstance(const std::string& port_id,
                                   std::chrono::milliseconds timeout) const;

  bool connected() const { return connected_.load(); }
  // The replica the stream goes (or will go) to.
  std::string server() const;
  uint64_t appliedVersion() const { return applied_version_.load(); }

 private:
  void run();
  // One stream; false when stopping. `served`: a view arrived on it.
  bool session(bool& served);
  // Writes the queued reports while the stream takes them.
  void flushReports() CANOPY_REQUIRES(mu_);

  struct Target {
    std::string address;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::Southbound::Stub> stub;
  };
  const Target& target() const { return targets_[current_.load() % targets_.size()]; }

  Options options_;
  OnView on_view_;
  std::vector<Target> targets_;
  std::atomic<size_t> current_{0};
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> applied_version_{0};
  HostView view_;  // the client thread's

  Mutex mu_;
  grpc::ClientContext* context_ CANOPY_GUARDED_BY(mu_) = nullptr;
  grpc::ClientReaderWriter<pb::AgentMessage, pb::ServerMessage>* stream_ CANOPY_GUARDED_BY(mu_) =
      nullptr;
  std::deque<pb::AgentMessage> reports_ CANOPY_GUARDED_BY(mu_);
  std::map<std::string, bool> member_health_ CANOPY_GUARDED_BY(mu_);  // resent on reconnect
  std::map<std::string, bool> port_state_ CANOPY_GUARDED_BY(mu_);     // resent on reconnect
};

}  // namespace canopy::agent
