#pragma once
// canopy-agent's control side: the southbound client, the bindings of
// interfaces to logical ports (kept in a file across restarts), status,
// and N datapath workers (worker.h) that do the forwarding. The control
// side publishes what workers run (the topology, the host's shared datapath
// state) through a SnapshotCell, sends them commands (an interface's I/O,
// the bound ports' keys, announcements) through their queues, and adds up
// what they publish every second; it never touches a packet.
//
//   auto agent = Agent::start(clock, config);     // Result<unique_ptr<Agent>>
//   (*agent)->bind("tap1234abcd-ef", port_id);
//   (*agent)->status();                             // JSON for the local API
//
// I/O comes from an IoFactory (port_io.h): the real sockets by default, a
// fake in unit tests. A view reaches it from the southbound client, or from
// applyView() (tests, or an agent without a server). With the server gone
// the workers keep forwarding on the last view.
//
// Thread-safety: every public member function from any thread.

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

#include "agent/bfd_service.h"
#include "agent/health_checker.h"
#include "agent/link_watcher.h"
#include "agent/metadata_service.h"
#include "agent/port_io.h"
#include "agent/southbound_client.h"
#include "agent/worker.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "datapath/pipeline/datapath.h"
#include "fastpath/fast_path.h"
#include "model/json.h"

namespace canopy::agent {

struct AgentConfig {
  std::string host_name{};
  IpAddress tunnel_ip{};
  // "": no server (views come through applyView()).
  std::string server = "127.0.0.1:6642";
  std::shared_ptr<grpc::ChannelCredentials> server_credentials{};  // null: plain gRPC
  // physical network -> interface, in the order given
  std::vector<std::pair<std::string, std::string>> uplinks{};
  bool gateway_capable = false;
  std::string availability_zone;  // "": the default zone
  datapath::pipeline::Encapsulation encapsulation = datapath::pipeline::Encapsulation::Geneve;
  uint16_t geneve_port = 6081;
  uint16_t vxlan_port = 4789;
  // Where the bindings are kept across restarts ("": not kept).
  std::string bindings_file{};
  // Hitless restarts: the connection state (conntrack, SNAT, load
  // balancers' pins, local IPs) kept in shared memory in this file
  // (datapath/persist/state_file.h), and the last view in `view_file`, both
  // adopted by the agent's next process ("": not kept).
  std::string state_file{};
  std::string view_file{};
  // Gateway high availability: BFD sessions with the other hosts of the
  // view when a router's gateway has standby hosts, which decide where it
  // is held; its SNAT mappings go to the standbys. Off: the server's
  // choice holds it (as with one gateway host).
  bool bfd = false;
  // The kernel fast path (eBPF): flows the datapath decided run in the
  // kernel. Without BPF it says why in the log and status, and the agent
  // runs without.
  bool fast_path = false;
  // Connections set up in the kernel from templates (KernelFlows).
  bool fast_path_setups = true;
  // How long the kernel goes on carrying installed flows after the agent's
  // last sign of life (it renews it each tick): across a restart, whose
  // successor adopts them, or a crash. The programs stay when the agent
  // exits; after this they leave every packet to the host.
  std::chrono::seconds fast_path_headless{30};
  std::string bfd_state_file{};
  bfd::Timing bfd_timing{};
  // Security-group logging: the file its records are appended to ("": the
  // agent's own log only), and their limits.
  std::string security_group_log{};
  datapath::pipeline::LogLimits log_limits{};
  // Slow-path protection per port (none by default here; canopy-agent's
  // flags set it).
  datapath::pipeline::SlowPathLimits slow_path{};
  // How many connections set up in the kernel fast path (from templates) a
  // port may have waiting for their answer; beyond, its SYNs go to the
  // agent (and its limits). 0: no bound.
  uint32_t kernel_half_open = 1024;
  // Ports and uplinks received through a ring shared with the kernel
  // (packet_io.h); off, through recvmmsg.
  bool rx_ring = true;
  // After frames came, how long the worker keeps polling without sleeping:
  // under steady traffic it is not woken per batch, which costs little
  // where wake-ups are fast and saves much where they are slow (a busy
  // virtual machine's idle CPU). 0: it sleeps whenever nothing waits.
  std::chrono::microseconds busy_poll{0};
  // Datapath workers, each on its own thread with its share of every
  // interface and tunnel port (the kernel spreads flows over them).
  size_t workers = 1;
  // How often the control side adds up the workers' stats and looks at the
  // bound interfaces.
  std::chrono::milliseconds tick{1000};
  // Follow the kernel's link events (link_watcher.h), so that a VM's tap
  // is attached as soon as it appears rather than at the next tick.
  bool watch_links = false;
  // The metadata service on this host (metadata_service.h); off in the
  // agent's unit tests, on by default in canopy-agent.
  MetadataOptions metadata{.enabled = false};
};

// How an interface is attached: an existing interface through an AF_PACKET
// socket, or a tap the agent owns (created, in the network namespace at
// `netns` or the agent's own, and removed when unbound).
struct Attach {
  bool tap = false;
  std::string netns{};
  // Made by the agent itself: the tap "tap" + the first 11 characters of a
  // port bound to this host (binding:vif_type "bridge": libvirt makes the
  // tap on the port's bridge), unbound when the port leaves the host.
  bool automatic = false;
};

// The interface name of a port's tap, as Nova's libvirt driver makes it.
std::string tapNameOf(const std::string& port_id);

// The health checks this host runs: the members (of listeners with a
// monitor) whose ports are bound to it, IPv4.
std::vector<HealthCheck> healthChecksOf(const datapath::topology::Topology& t, uint32_t host);

class Agent {
 public:
  // `io`: where interfaces and tunnel ports are opened (null: the real
  // sockets); it outlives the agent.
  static Result<std::unique_ptr<Agent>> start(const Clock& clock, AgentConfig config,
                                              IoFactory* io = nullptr);
  ~Agent();
  void stop();

  // Binds an interface to a logical port (the agent reports it up; the
  // server binds the port to this host). Conflict if the view has the port
  // bound to another host (its traffic would be dropped here).
  Result<void> bind(const std::string& interface, const std::string& port_id,
                    const Attach& attach = {});
  Result<void> unbind(const std::string& interface);
  model::Json bindings() const;
  model::Json status() const;
  // Installs a host view, as the southbound client does with each one.
  Result<void> applyView(const HostView& view, uint64_t version);
  // An interface appeared, changed or went ("": any may have): its port is
  // attached or detached now rather than at the next tick.
  void linkChanged(const std::string& interface);
  // A BFD session went up or down (or a hold time passed): the gateways'
  // holders are chosen again and, if any changed, the datapath follows.
  void livenessChanged();
  size_t workers() const { return workers_.size(); }

 private:
  Agent(const Clock& clock, AgentConfig config, IoFactory& io);
  struct Binding {
    std::string port_id;
    Attach attach{};
    bool open = false;      // the workers have its I/O
    bool tap_gone = false;  // an owned tap deleted under the agent: not made again until bound
  };
  // Gives every worker its I/O on a bound interface (a tap already opened:
  // `tap`); false (logged) if it cannot be opened now.
  bool openFor(const std::string& interface, Binding& b, std::unique_ptr<PortIo> tap)
      CANOPY_REQUIRES(mu_);
  void closeFor(const std::string& interface, bool remove_tap) CANOPY_REQUIRES(mu_);
  // The bound interfaces and their keys, to every worker.
  void publishPorts() CANOPY_REQUIRES(mu_);
  // Gratuitous ARP out of the uplinks for the addresses this host newly
  // serves there: its VMs' floating IPs, the gateways it holds.
  void announce(const datapath::topology::Topology& t, uint32_t host_key) CANOPY_REQUIRES(mu_);
  void controlLoop();
  void tick(uint64_t ticks);
  // Writes the security-group log records the datapaths kept since the last
  // tick to the log file and the agent's log.
  void writeSecurityGroupLog();
  // Attaches the taps of ports bound to this host that exist and are not
  // bound yet; detaches the automatic bindings of ports that left.
  void autoBind();
  void saveBindings() const CANOPY_REQUIRES(mu_);
  // Which host holds each router gateway that has standby hosts (router
  // key -> host key), as this host's BFD sessions see them.
  // `held`: the holders chosen last time (this host keeps what it holds
  // while it is connected, whatever its sessions' age).
  std::map<uint32_t, uint32_t> electGateways(const HostView& view,
                                             const std::map<uint32_t, uint32_t>& held) const;
  // Where the datapath has each router gateway held now (router -> host).
  std::map<uint32_t, uint32_t> heldNow() const;
  // Sends the SNAT mappings made since (or all of them) to the standby
  // hosts of the gateways this host holds; runs on replicator_.
  void replicateLoop();
  // Writes the last view to config_.view_file if it changed since.
  void saveView();
  // The view an earlier process saved, applied; the southbound resumes from
  // it. False (logged) if there is none to use.
  bool restoreView();
  // The state file for the host `host_key`'s shared state (null: none).
  std::shared_ptr<datapath::persist::StateFile> stateFileFor(uint32_t host_key)
      CANOPY_REQUIRES(mu_);

  const Clock& clock_;
  const AgentConfig config_;
  IoFactory& io_;
  std::unique_ptr<IoFactory> own_io_;  // when none was given
  std::unique_ptr<SouthboundClient> southbound_;
  SnapshotCell<WorkerPlan> plan_{nullptr};
  // (Before the workers, which use it: it goes after them.)
  std::unique_ptr<fastpath::FastPath> fast_path_;
  // Its workers' templates: connections set up in the kernel.
  Templates templates_;
  std::string fast_path_unavailable_;  // why not, when asked for
  // Flows an earlier agent left in the maps this one took over, taken back
  // a few ticks after it has a view (its own offers install again what
  // still holds), and the ticks counted towards that.
  std::vector<fastpath::FlowKey> adopted_flows_;
  int adopted_ticks_ = 0;
  void keepFastPathAlive();
  // The uplinks' ingress program, once every worker's socket on each has
  // the fast path's filter: each uplink's interface index, 0 for one that
  // stays in the agent (also without the fast path, whose leftover program
  // it takes off).
  std::vector<int> serveUplinks(const std::vector<std::vector<std::unique_ptr<PortIo>>>& by_worker);
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread control_;
  Mutex stop_mu_;
  CondVar stop_cv_;
  bool stopping_ CANOPY_GUARDED_BY(stop_mu_) = false;
  bool links_changed_ CANOPY_GUARDED_BY(stop_mu_) = false;
  std::unique_ptr<LinkWatcher> links_;
  // The metadata service, when it could be set up (then the datapaths
  // serve it).
  std::unique_ptr<MetadataHandler> metadata_handler_;
  std::unique_ptr<MetadataService> metadata_;
  bool metadata_ready_ = false;  // set before the first view, then read only
  // Load balancers' health checks of the members on this host, in the
  // metadata service's namespace (null without it).
  std::unique_ptr<HealthChecker> health_;
  // Sets up the service, its namespace and its tap; false (logged) if it cannot.
  bool startMetadata();

  mutable Mutex mu_;
  std::map<std::string, Binding> bindings_ CANOPY_GUARDED_BY(mu_);    // by interface
  std::map<std::string, uint32_t> port_keys_ CANOPY_GUARDED_BY(mu_);  // port id -> key
  // The view's ports bound to hosts: port id -> host name.
  std::map<std::string, std::string> port_hosts_ CANOPY_GUARDED_BY(mu_);
  // The taps of the ports bound to this host: interface -> port id.
  std::map<std::string, std::string> expected_ CANOPY_GUARDED_BY(mu_);
  uint64_t view_version_ CANOPY_GUARDED_BY(mu_) = 0;
  uint64_t plan_generation_ CANOPY_GUARDED_BY(mu_) = 0;
  uint32_t host_key_ CANOPY_GUARDED_BY(mu_) = 0;
  std::shared_ptr<datapath::pipeline::SharedState> shared_ CANOPY_GUARDED_BY(mu_);
  std::set<std::pair<IpAddress, datapath::packet::MacAddress>> announced_ CANOPY_GUARDED_BY(mu_);
  // The state file, once opened (for the first host key the view gave).
  std::shared_ptr<datapath::persist::StateFile> state_file_ CANOPY_GUARDED_BY(mu_);
  bool state_file_tried_ CANOPY_GUARDED_BY(mu_) = false;
  // The last view applied, for saveView().
  std::shared_ptr<const HostView> latest_view_ CANOPY_GUARDED_BY(mu_);
  uint64_t latest_version_ CANOPY_GUARDED_BY(mu_) = 0;
  bool view_saved_ CANOPY_GUARDED_BY(mu_) = true;
  Mutex save_mu_;   // one saveView() at a time
  Mutex apply_mu_;  // one applyView() at a time (the southbound's, BFD's, a tick's)
  std::unique_ptr<BfdService> bfd_;
  std::map<uint32_t, uint32_t> elected_ CANOPY_GUARDED_BY(mu_);  // router -> holder
  std::vector<uint32_t> replica_targets_ CANOPY_GUARDED_BY(mu_);
  std::atomic<bool> full_sync_{true};
  std::thread replicator_;
};

}  // namespace canopy::agent
