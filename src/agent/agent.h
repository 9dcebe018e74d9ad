#pragma once
// canopy-agent's core: the southbound client, the bindings of interfaces to
// logical ports, and one datapath worker that polls every socket (VM
// interfaces, the tunnel, the uplinks), runs the frames through the
// datapath core in batches and sends what comes out, keeping the guests'
// segmentation and checksum offloads (packet_io.h, src/agent/README.md).
//
//   auto agent = Agent::start(clock, config);     // Result<unique_ptr<Agent>>
//   (*agent)->bind("tap1234abcd-ef", port_id);
//   (*agent)->status();                             // JSON for the local API
//
// The worker owns the Datapath; new topologies and binding changes are
// handed to it through a queue and an eventfd, so it never waits on the
// control side. With the server gone it keeps forwarding on the last view.
//
// Thread-safety: bind/unbind/status from any thread.

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "agent/packet_io.h"
#include "agent/southbound_client.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "datapath/pipeline/datapath.h"
#include "model/json.h"

namespace canopy::agent {

struct AgentConfig {
  std::string host_name{};
  datapath::topology::IpAddr tunnel_ip{};
  std::string server = "127.0.0.1:6642";
  std::shared_ptr<grpc::ChannelCredentials> server_credentials{};  // null: plain gRPC
  // physical network -> interface, in the order given
  std::vector<std::pair<std::string, std::string>> uplinks{};
  bool gateway_capable = false;
  datapath::pipeline::Encapsulation encapsulation = datapath::pipeline::Encapsulation::Geneve;
  uint16_t geneve_port = 6081;
  uint16_t vxlan_port = 4789;
  // Where the bindings are kept across restarts ("": not kept).
  std::string bindings_file{};
  // Ports and uplinks received through a ring shared with the kernel
  // (packet_io.h); off, through recvmmsg.
  bool rx_ring = true;
  // After frames came, how long the worker keeps polling without sleeping:
  // under steady traffic it is not woken per batch, which costs little
  // where wake-ups are fast and saves much where they are slow (a busy
  // virtual machine's idle CPU). 0: it sleeps whenever nothing waits.
  std::chrono::microseconds busy_poll{0};
};

// How an interface is attached: an existing interface through an AF_PACKET
// socket, or a tap the agent owns (created, in the network namespace at
// `netns` or the agent's own, and removed when unbound).
struct Attach {
  bool tap = false;
  std::string netns{};
};

class Agent {
 public:
  static Result<std::unique_ptr<Agent>> start(const Clock& clock, AgentConfig config);
  ~Agent();
  void stop();

  // Binds an interface to a logical port (the agent reports it up; the
  // server binds the port to this host).
  Result<void> bind(const std::string& interface, const std::string& port_id,
                    const Attach& attach = {});
  Result<void> unbind(const std::string& interface);
  model::Json bindings() const;
  model::Json status() const;

 private:
  Agent(const Clock& clock, AgentConfig config);
  Result<void> onView(const HostView& view, uint64_t version);
  void workerLoop();
  void wake();
  void applyPending();
  void checkInterfaces();
  // Gratuitous ARP out of the uplinks for the addresses this host newly
  // serves there: its VMs' floating IPs, the gateways it holds.
  void announce(const datapath::topology::Topology& t, uint32_t host_key);
  // Sends a batch's outputs; `offloads` are its inputs' offload requests,
  // by input index (packet/offload.h).
  void forward(datapath::pipeline::Outputs& out,
               std::span<const datapath::packet::Offload> offloads);
  void sendTunnel(const datapath::pipeline::Outputs::Item& item, std::span<uint8_t> bytes,
                  datapath::packet::Offload offload);
  struct Bound;
  // Queues a frame on a port's or an uplink's socket; flushSends() sends
  // every socket's queue, each in one call where it can.
  void sendFrame(FrameSocket& socket, Bound* bound, std::span<const uint8_t> frame,
                 const datapath::packet::Offload& offload);
  void flushSocket(FrameSocket& socket, Bound* bound);
  void flushTunnel(TunnelSocket& tunnel);
  void flushSends();
  void ioDrop(datapath::DropReason why) { ++io_drops_[static_cast<size_t>(why)]; }
  void saveBindings() const;  // with mu_ held

  const Clock& clock_;
  const AgentConfig config_;
  std::unique_ptr<SouthboundClient> southbound_;
  Fd wake_fd_;
  std::atomic<bool> stopping_{false};
  std::thread worker_;

  // Shared with the worker.
  mutable Mutex mu_;
  std::shared_ptr<const datapath::topology::Topology> pending_topology_ CANOPY_GUARDED_BY(mu_);
  struct Binding {
    std::string port_id;
    Attach attach{};
  };
  std::map<std::string, Binding> bindings_ CANOPY_GUARDED_BY(mu_);  // by interface
  // Taps opened by bind(), for the worker to take.
  std::map<std::string, std::unique_ptr<FrameSocket>> opened_taps_ CANOPY_GUARDED_BY(mu_);
  // Taps unbound, for the worker to remove.
  std::vector<std::string> removed_taps_ CANOPY_GUARDED_BY(mu_);
  bool bindings_changed_ CANOPY_GUARDED_BY(mu_) = false;
  std::map<std::string, uint32_t> port_keys_ CANOPY_GUARDED_BY(mu_);  // port id -> key
  uint64_t view_version_ CANOPY_GUARDED_BY(mu_) = 0;
  model::Json worker_status_ CANOPY_GUARDED_BY(mu_);  // published by the worker

  // The worker's own.
  std::unique_ptr<datapath::pipeline::Datapath> datapath_;
  uint32_t datapath_config_host_ = 0;
  std::vector<TunnelSocket> tunnels_;  // [0] the configured encapsulation's port
  std::vector<FrameSocket> uplinks_;
  struct Bound {
    std::string port_id;
    uint32_t key = 0;
    std::unique_ptr<FrameSocket> socket;
    uint64_t rx = 0;  // frames from the VM
    uint64_t tx = 0;  // frames to it
    bool tap_gone =
        false;  // an owned tap deleted under the agent: not made again until bound again
  };
  std::map<std::string, Bound> ports_;  // by interface
  std::map<uint32_t, Bound*> by_key_;   // port key -> binding
  std::set<std::pair<datapath::topology::IpAddr, datapath::packet::MacAddress>> announced_;
  // Frames the I/O refused before or after the datapath (offload requests
  // it cannot carry), and sends the kernel refused.
  std::array<uint64_t, datapath::kDropReasonCount> io_drops_{};
  uint64_t send_failed_ = 0;
  // Sockets with frames queued by sendFrame() (and their bindings).
  std::vector<std::pair<FrameSocket*, Bound*>> sending_;
  // Offloads seen: super-frames received from ports and uplinks, those cut
  // into segments for a tunnel, those joined from a tunnel's segments before
  // the datapath, and those joined from segments on the way to a port.
  uint64_t super_frames_ = 0;
  uint64_t segmented_ = 0;
  uint64_t joined_ = 0;
  uint64_t coalesced_ = 0;
  datapath::packet::TcpCoalescer coalescer_;
  // Runs of tunnel segments being joined, one per run of a batch.
  std::vector<std::unique_ptr<datapath::packet::TcpCoalescer>> rx_runs_;
  size_t rx_runs_used_ = 0;
  datapath::packet::SegmentHeaders segments_;  // a super-frame cut for a tunnel
};

}  // namespace canopy::agent
