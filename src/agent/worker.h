#pragma once
// One datapath worker of the agent: its Datapath (flow cache and counters
// of its own; conntrack, SNAT and neighbours shared with the host's other
// workers), its I/O (its share of every port, uplink and tunnel port), and
// the offload handling of what it receives and sends. It runs to
// completion over batches on its own thread and never waits on the control
// side, which reaches it only through:
//
//   - the plan (a snapshot published through SnapshotCell: the topology,
//     the shared state, the datapath's configuration), looked at once per
//     batch;
//   - commands (adopt an interface's I/O, drop one, the bound ports' keys,
//     a frame to send out of an uplink), queued and read once per batch;
//   - its stats, which it publishes every second (when the first worker
//     also sends the routers' periodic advertisements to the ports).
//
//   Worker w({.index = 0, ...}, plan, std::move(tunnels), std::move(uplinks));
//   w.start();
//   w.adopt("tap1", std::move(io), /*receive=*/true);
//   w.setPorts({{"tap1", {"port-id", 7}}});
//   WorkerStats s = w.stats();
//
// Thread-safety: the public member functions may be called from any
// thread; everything else belongs to the worker's thread.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "agent/kernel_flows.h"
#include "agent/port_io.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "base/snapshot_cell.h"
#include "datapath/pipeline/datapath.h"
#include "datapath/simulator/advertisements.h"

namespace canopy::agent {

// What the control side wants every worker to run, replaced whole.
struct WorkerPlan {
  uint64_t generation = 0;  // bumped with every change
  std::shared_ptr<const datapath::topology::Topology> topology{};
  // The host's shared datapath state and the configuration its datapaths
  // are made with; a new one (the host's key changed) means new datapaths.
  std::shared_ptr<datapath::pipeline::SharedState> shared{};
  datapath::pipeline::Config config{};
};

// A bound port as workers know it: its logical port and key (0 while the
// view has none: frames from it are dropped); or the host's metadata
// interface (no port: what comes from it is the metadata service's).
struct PortBinding {
  std::string port_id{};
  uint32_t key = 0;
  bool metadata = false;
};

// What a worker has done, published each second (and summed over workers
// by the control side).
struct WorkerStats {
  datapath::pipeline::Counters datapath{};
  datapath::flowcache::CacheStats cache{};
  size_t cache_entries = 0;
  std::array<uint64_t, datapath::kDropReasonCount> io_drops{};  // refused by the I/O
  uint64_t send_failed = 0;
  uint64_t super_frames = 0;  // received from ports and uplinks
  uint64_t segmented = 0;     // cut into segments for a tunnel
  uint64_t joined = 0;        // joined from a tunnel's segments
  uint64_t coalesced = 0;     // joined on the way to a port
  uint64_t receive_truncated = 0;
  size_t kernel_flows = 0;       // installed in the kernel fast path
  uint64_t kernel_installs = 0;  // flows installed since the start
  size_t kernel_templates = 0;   // templates it learned, in the kernel
  struct Port {
    std::string port_id;
    uint32_t key = 0;
    uint64_t rx = 0;  // frames from the VM
    uint64_t tx = 0;  // frames to it
    datapath::pipeline::Datapath::PortDrops drops{};
  };
  std::map<std::string, Port> ports{};  // by interface
};

class Worker {
 public:
  struct Options {
    size_t index = 0;
    datapath::pipeline::Encapsulation encapsulation = datapath::pipeline::Encapsulation::Geneve;
    // After frames came, how long it keeps polling without sleeping.
    std::chrono::microseconds busy_poll{0};
    // How often it publishes its stats and looks at its ports' devices.
    std::chrono::milliseconds tick{1000};
    // The kernel fast path (the agent's, outliving the worker), or null.
    fastpath::FastPath* fast_path = nullptr;
    KernelFlows::Tunnels fast_tunnels{};
    std::vector<int> fast_uplinks{};  // KernelFlows' `uplinks`
    Templates* templates = nullptr;   // the host's shared fast-path state (KernelFlows')
    bool fast_setups = true;          // connections set up in the kernel (KernelFlows' `setups`)
  };
  // `tunnels`: [0] the configured encapsulation's port, [1] the other's.
  // `uplinks`: by index, as the datapath's configuration names them.
  Worker(const Clock& clock, Options options, const SnapshotCell<WorkerPlan>& plan,
         std::vector<std::unique_ptr<TunnelIo>> tunnels,
         std::vector<std::unique_ptr<PortIo>> uplinks);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();
  // Leaves the flows this worker installed, and the programs, in the kernel
  // (for the next agent); after stop().
  void leaveFastPath();
  void stop();
  // The plan changed, or a command waits: looked at now, not at the next
  // frame or tick.
  void wake();

  // Takes an interface's I/O (replacing any it had); `receive`: polled for
  // frames, else only sent through.
  void adopt(const std::string& interface, std::unique_ptr<PortIo> io, bool receive);
  // Lets an interface's I/O go (an owned tap's device removed when `remove`).
  void drop(const std::string& interface, bool remove);
  // The bound interfaces and their ports: the whole set (I/O of interfaces
  // not named is let go).
  void setPorts(std::map<std::string, PortBinding> ports);
  // A frame out of an uplink (a gratuitous ARP).
  void sendOnUplink(size_t uplink, std::vector<uint8_t> frame);
  // The flows an earlier agent left in the kernel, handed back to the
  // datapath (taken out of the kernel) once this worker has a datapath;
  // first, the connections the kernel set up among them (`made`: from its
  // templates; the earlier agent may have died before it knew of them)
  // are taken into conntrack, so that their next packets are known.
  void handBack(std::vector<fastpath::FlowKey> adopted,
                std::vector<fastpath::FastPath::MadeConnection> made);

  // The last published stats.
  WorkerStats stats() const;
  // Interfaces whose I/O said their device is gone (an owned tap deleted)
  // since the last call; their I/O is let go.
  std::vector<std::string> takeGone();

 private:
  struct Command;
  struct Bound;
  void loop();
  void applyCommands();
  void followPlan();
  void handBackAdopted();
  void receive(PortIo& io, Bound* bound, const datapath::pipeline::Ingress& ingress);
  void receiveTunnel(size_t t);
  void runBatch();
  // The datapath's offers into the kernel: the early ones (a handshake's),
  // or all that are left, after the batch's retractions.
  void installOffers(bool early);
  // The packets of a port dropped so far by its slow-path limits.
  uint64_t slowPathDrops(uint32_t port) const;
  void forward(datapath::pipeline::Outputs& out,
               std::span<const datapath::packet::Offload> offloads);
  void sendTunnel(const datapath::pipeline::Outputs::Item& item, std::span<uint8_t> bytes,
                  datapath::packet::Offload offload);
  void sendFrame(PortIo& io, Bound* bound, std::span<const uint8_t> frame,
                 const datapath::packet::Offload& offload);
  void flushPort(PortIo& io, Bound* bound);
  void flushTunnel(TunnelIo& tunnel);
  void flushSends();
  void tick();
  void push(Command command);
  void ioDrop(datapath::DropReason why) { ++io_drops_[static_cast<size_t>(why)]; }

  const Clock& clock_;
  const Options options_;
  const SnapshotCell<WorkerPlan>& plan_;
  Fd wake_fd_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;

  // From the control side.
  mutable Mutex mu_;
  std::vector<Command> commands_ CANOPY_GUARDED_BY(mu_);
  std::atomic<bool> has_commands_{false};
  WorkerStats published_ CANOPY_GUARDED_BY(mu_);
  std::vector<std::string> gone_ CANOPY_GUARDED_BY(mu_);

  // The worker's own.
  uint64_t generation_ = 0;
  std::shared_ptr<datapath::pipeline::SharedState> shared_;
  std::unique_ptr<datapath::pipeline::Datapath> datapath_;
  // The routers' unsolicited advertisements to the bound ports (the first
  // worker sends them).
  datapath::simulator::AdvertisementSchedule advertisements_;
  void advertise();
  std::vector<std::unique_ptr<TunnelIo>> tunnels_;
  std::vector<std::unique_ptr<PortIo>> uplinks_;
  struct Bound {
    PortBinding binding{};
    std::unique_ptr<PortIo> io{};
    bool receive = false;
    int fast_ifindex = 0;  // served by the kernel fast path
    uint64_t rx = 0;
    uint64_t tx = 0;
  };
  std::map<std::string, Bound> ports_;  // by interface
  // handBack()'s, until there is a datapath.
  bool hand_back_ = false;
  std::vector<fastpath::FlowKey> hand_back_flows_;
  std::vector<fastpath::FastPath::MadeConnection> hand_back_made_;
  std::unique_ptr<KernelFlows> kernel_flows_;
  // Before a binding's I/O goes: its interface off the fast path.
  void leaveFastPath(Bound& b);
  std::map<uint32_t, Bound*> by_key_;  // port key -> binding with I/O
  Bound* metadata_ = nullptr;          // the metadata interface, with I/O
  void index();

  // The batch being run: frames in, their offload requests, frames out.
  Batch batch_;
  std::vector<datapath::pipeline::Datapath::Input> inputs_;
  std::vector<datapath::packet::Offload> offloads_;
  datapath::pipeline::Outputs out_;
  // Runs of tunnel segments being joined, one per run of a batch.
  std::vector<std::unique_ptr<datapath::packet::TcpCoalescer>> rx_runs_;
  size_t rx_runs_used_ = 0;
  datapath::packet::TcpCoalescer coalescer_;   // segments for one port, joined
  datapath::packet::SegmentHeaders segments_;  // a super-frame cut for a tunnel
  // I/O with frames queued by sendFrame() (and their bindings).
  std::vector<std::pair<PortIo*, Bound*>> sending_;
  bool received_ = false;
  bool port_error_ = false;  // a port's device may be gone: looked at now

  std::array<uint64_t, datapath::kDropReasonCount> io_drops_{};
  uint64_t send_failed_ = 0;
  uint64_t super_frames_ = 0;
  uint64_t segmented_ = 0;
  uint64_t joined_ = 0;
  uint64_t coalesced_ = 0;
};

}  // namespace canopy::agent
