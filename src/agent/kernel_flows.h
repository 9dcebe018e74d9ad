#pragma once
// The flows one worker has installed in the kernel fast path
// (fastpath/fast_path.h): made from what its datapath offered
// (pipeline::FlowOffer), kept in step with connection tracking, and taken
// back when the datapath's view of them may have changed.
//
//   KernelFlows flows(fast_path);
//   flows.attach(io, "tap1234");          // the interface's ingress program and socket filter
//   flows.install(datapath.offers(), ifindexOf);
//   flows.retract(datapath.retractions());  // a TCP RST seen: its flows go now
//   flows.retract(datapath.takeInvalidations());  // what changed: its flows go
//   flows.tick(conntrack, now);            // each second
//
// Installed flows leave the datapath's cache and conntrack out of their
// packets' way, so:
//   - a change to the topology (or to the neighbours learned) takes back
//     exactly the flows whose decisions it touches, by the flow cache's
//     tags (the datapath decides them again, and offers again those that
//     still qualify);
//   - each second the kernel's last use of a flow moves its connection's
//     timeouts on (ConnTrack::touch), and a flow whose connection is gone
//     or reset is taken back;
//   - an interface let go takes its flows with it.
//
// Connections set up in the kernel. A handshake the datapath allowed
// between two ports (TCP, nothing translated, no uplink: security groups
// never match the opener's source port) also leaves a template: both ways'
// flows with the opener's port left open. The programs make a later
// connection's two flows from it when its SYN comes, so that its SYN and
// SYN-ACK never reach the agent. Such a connection is the agent's again
// (adopted: into conntrack, established if the kernel carried its SYN-ACK,
// and into this bookkeeping) when its first packet reaches the agent (its
// FIN or RST: adoptFor()), each second for the rest (tick()), and before a
// change takes its template back.
//
// Thread-safety: none; it belongs to its worker (Templates are shared).

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "agent/port_io.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "datapath/conntrack/conntrack.h"
#include "datapath/pipeline/datapath.h"
#include "fastpath/fast_path.h"

namespace canopy::agent {

// An offered flow as the kernel's map has it: its key on the sending
// port's interface, and its action towards the receiving port's.
fastpath::FlowKey kernelKey(const datapath::pipeline::FlowOffer& offer, int from_ifindex);
// A key from a tunnel: the sending host's address (IPv4 or IPv6).
void setTunnelSource(fastpath::FlowKey& key, const IpAddress& sender);
// `out`: how it reaches that interface (CANOPY_FP_REDIRECT_PEER into a
// veth's peer, CANOPY_FP_REDIRECT to a tap's reader or out of an uplink,
// CANOPY_FP_ENCAP). With the offer's translation, if any.
fastpath::FlowAction kernelAction(const datapath::pipeline::FlowOffer& offer, int to_ifindex,
                                  uint8_t out);

// What a host's workers share of the fast path: the templates (one worker
// learns a template from its handshakes and keeps it, its owner; its
// connections may close through any worker's ports), and the FINs the
// kernel told the first worker of that are other workers' flows (handed
// to them). Thread-safe.
class Templates {
 public:
  // One way of a template's connections, the opener's port left 0 (the
  // forward way: at the key's port_src and the connections' src_port; the
  // reply: at port_dst and dst_port).
  struct Side {
    fastpath::FlowKey key{};
    int from_ifindex = 0, to_ifindex = 0;
    datapath::conntrack::ConnKey from_conn{}, to_conn{};
    std::vector<datapath::flowcache::Tag> tags;  // sorted
    uint32_t overhead = 0;                       // a load balancer's: Installed::overhead
  };
  struct Template {
    uint32_t id = 0;
    size_t owner = 0;
    Side forward, reply;
    // A member's template of a VIP's connections (forward.key.lb_member
    // not 0): the pin each connection gets (its tuple to the VIP, the
    // opener's port 0), its member and its listener.
    datapath::conntrack::ConnKey lb{};
    datapath::nat::LbTarget member{};
    uint64_t listener = 0;
    // Not 0: a VIP's selector (its forward key alone; no flows of its own),
    // which picks members by this table in the kernel.
    uint32_t lb_table = 0;
  };
  using Ptr = std::shared_ptr<const Template>;

  // Registered with a new id; nullptr if its forward key has one already.
  Ptr add(Template t);
  void erase(uint32_t id);
  Ptr byId(uint32_t id) const;
  // The template a flow's key may have been made from (either way).
  Ptr matching(const fastpath::FlowKey& key) const;
  std::vector<Ptr> ownedBy(size_t owner) const;
  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }

  // The kernel's id of a listener's table (installed, or brought up to
  // date, with this content); 0 if it cannot be (the map full).
  uint32_t lbTable(const datapath::pipeline::LbSelector& selector, fastpath::FastPath& fp);

  // How many workers there are (before they start; 1 by default).
  void setWorkers(size_t n);
  size_t workers() const { return workers_.load(std::memory_order_relaxed); }
  // A FIN's flow, to every worker but `from`; the flows handed to `worker`
  // since it last took them.
  void hand(size_t from, const fastpath::FlowKey& key);
  std::vector<fastpath::FlowKey> handed(size_t worker);
  uint64_t handings() const { return handings_.load(std::memory_order_acquire); }

 private:
  using KeyBytes = std::array<uint8_t, sizeof(fastpath::FlowKey)>;
  static KeyBytes bytes(const fastpath::FlowKey& key);
  mutable Mutex mu_;
  uint32_t next_id_ CANOPY_GUARDED_BY(mu_) = 1;
  std::map<KeyBytes, Ptr> by_forward_ CANOPY_GUARDED_BY(mu_), by_reply_ CANOPY_GUARDED_BY(mu_);
  std::map<uint32_t, Ptr> by_id_ CANOPY_GUARDED_BY(mu_);
  std::atomic<size_t> size_{0};
  struct LbTableEntry {
    uint32_t id = 0;
    std::vector<uint16_t> members;
    bool source_only = false;
  };
  std::map<uint64_t, LbTableEntry> lb_tables_ CANOPY_GUARDED_BY(mu_);  // by listener
  uint32_t next_lb_table_ CANOPY_GUARDED_BY(mu_) = 1;
  std::atomic<size_t> workers_{1};
  std::vector<std::vector<fastpath::FlowKey>> mailboxes_ CANOPY_GUARDED_BY(mu_);
  std::atomic<uint64_t> handings_{0};
};

class KernelFlows {
 public:
  // Where tunnels leave and arrive: the host's tunnel address, the
  // interface that has it (0: tunnels stay in the agent) and the ports.
  struct Tunnels {
    IpAddress local{};
    int underlay_ifindex = 0;
    uint16_t geneve_port = 6081;
    uint16_t vxlan_port = 4789;
  };
  // `uplinks`: the interface index of each uplink (as the datapath's
  // configuration numbers them) whose ingress program and sockets' filters
  // the agent has put on, or 0 for one whose flows stay in the agent.
  // `templates` (the host's, or null: no connections set up in the
  // kernel), `worker`: this worker's index, as the templates' owner.
  // `templates`: the host's shared state (null: none, one worker); `setups`:
  // whether handshakes leave templates (connections set up in the kernel).
  KernelFlows(fastpath::FastPath& fast_path, Tunnels tunnels, std::vector<int> uplinks = {},
              Templates* templates = nullptr, size_t worker = 0, bool setups = true)
      : fp_(fast_path),
        tunnels_(tunnels),
        uplinks_(std::move(uplinks)),
        templates_(templates),
        worker_(worker),
        setups_(setups) {}
  ~KernelFlows();
  KernelFlows(const KernelFlows&) = delete;
  KernelFlows& operator=(const KernelFlows&) = delete;

  // Puts the ingress program on a VM interface (the host side of a veth,
  // or a hypervisor's tap) and the socket filter on `io`'s socket; its
  // index, or 0 when the fast path does not serve it (neither, a tap the
  // agent itself reads, or the kernel refused: logged).
  int attach(PortIo& io, const std::string& interface);
  // Its program off, its flows taken back.
  void detach(int ifindex);

  // Installs the offered flows whose ports both have an attached interface
  // (`ifindexOf`: a port key's, 0 for none), or whose uplink is served.
  void install(std::span<const datapath::pipeline::FlowOffer> offers,
               const std::function<int(uint32_t port)>& ifindexOf);
  // Takes back the flows of these connections.
  void retract(std::span<const datapath::conntrack::ConnKey> connections);
  // Takes back the flows with any of these tags (all of them, with all).
  void retract(datapath::pipeline::Invalidations invalidated);
  void flush();
  // Forgets its flows and interfaces, leaving them in the kernel (for the
  // next agent to adopt).
  // (Its connections made in the kernel are adopted first, so that the
  // next agent finds them in the connection state it takes over.)
  void leave() {
    adoptMade(/*leaving=*/true);
    installed_.clear();
    by_connection_.clear();
    attached_.clear();
  }
  void tick(datapath::conntrack::ConnTrack& conntrack, SteadyTime now);
  // The connection tracking that connections made in the kernel are adopted
  // into (the host's; null: none yet, nothing is learned or adopted).
  void useConntrack(datapath::conntrack::ConnTrack* conntrack, const Clock* clock) {
    conntrack_ = conntrack;
    clock_ = clock;
  }
  // What keeps the router SNAT mappings of its flows alive (the host's
  // SharedState::snatKeepAlive; null: flows are kept by their connections
  // alone), and its local IPs' translations (SharedState::localIpKeepAlive).
  using KeepAlive = std::function<bool(const datapath::conntrack::ConnKey& tuple, bool used)>;
  void useSnat(KeepAlive keep_alive) { snat_keep_alive_ = std::move(keep_alive); }
  void useLocalIp(KeepAlive keep_alive) { local_ip_keep_alive_ = std::move(keep_alive); }
  // What keeps the load balancers' pins of its flows alive and counts
  // their bytes (the host's SharedState::lbKeepAlive; null: none).
  using LbKeepAlive = std::function<bool(const datapath::conntrack::ConnKey& forward, bool used,
                                         uint64_t bytes_in, uint64_t bytes_out)>;
  void useLb(LbKeepAlive keep_alive) { lb_keep_alive_ = std::move(keep_alive); }
  // What pins the connections the kernel set up to a VIP's member (the
  // host's SharedState::lbImport; null: none, and no VIP's connections are
  // set up in the kernel).
  using LbImport = std::function<bool(const datapath::conntrack::ConnKey& forward,
                                      const datapath::nat::LbTarget& member, uint64_t listener)>;
  void useLbImport(LbImport import) { lb_import_ = std::move(import); }
  // What closes a pin when the kernel carried its connection's FIN (the
  // host's SharedState::lbClose; null: a pinned connection's FINs are the
  // agent's to see).
  using LbClose = std::function<void(const datapath::conntrack::ConnKey& forward)>;
  void useLbClose(LbClose close) { lb_close_ = std::move(close); }
  // A frame about to reach the datapath, as it came in on `ifindex` (from
  // a tunnel on the underlay: its sender and VNI too): if a template's
  // connection the agent has not adopted yet (its FIN, its RST), adopted
  // now, so that conntrack knows it.
  void adoptFor(std::span<const uint8_t> frame, int ifindex, const IpAddress& tunnel_src = {},
                uint32_t vni = 0);
  size_t templates() const;
  // FINs the kernel carried (the programs' events; one worker takes them):
  // conntrack follows each connection's close, and a closed connection's
  // flows are taken back. A descriptor to poll for them (-1: none).
  int eventsFd() { return fp_.eventsFd(); }
  void takeEvents();
  // The FINs the first worker handed to this one (its flows).
  void takeHanded();
  size_t size() const { return installed_.size(); }
  uint64_t installs() const { return installs_; }

 private:
  using KeyBytes = std::array<uint8_t, sizeof(fastpath::FlowKey)>;
  struct Installed {
    fastpath::FlowKey key;
    int from_ifindex = 0, to_ifindex = 0;
    datapath::conntrack::ConnKey from_conn{}, to_conn{};
    std::vector<datapath::flowcache::Tag> tags;  // sorted
    uint64_t last_used_ns = 0;                   // the kernel's, when last looked at
    int idle_ticks = 0;                          // since it was last used
    datapath::conntrack::ConnKey snat{};         // its router SNAT mapping's (FlowOffer::snat)
    datapath::conntrack::ConnKey lb{};           // its load balancer's pin (FlowOffer::lb)
    bool lb_reply = false;
    uint16_t lb_member = 0;  // FlowOffer::lb_member and lb_selector
    std::shared_ptr<const datapath::pipeline::LbSelector> lb_selector{};
    datapath::conntrack::ConnKey local_ip{};  // its local IP's translation (FlowOffer::local_ip)
    uint64_t packets = 0, bytes = 0;          // the kernel's counters, when last counted (lb)
    uint32_t overhead = 0;  // what the kernel counts of a packet beyond its IP packet
  };
  void erase(std::map<KeyBytes, Installed>::iterator it);
  // A flow's load balancer's pin (if any): whether it is live, moved on if
  // `used`; the bytes the kernel carried since the last look counted.
  bool keepPin(Installed& f, const fastpath::FlowAction& kernel, bool used);
  // Into, and out of, the bookkeeping alone (not the kernel's map).
  void remember(Installed flow);
  void forget(std::map<KeyBytes, Installed>::iterator it);
  static KeyBytes bytes(const fastpath::FlowKey& key) {
    KeyBytes b;
    std::memcpy(b.data(), &key, sizeof(key));
    return b;
  }
  // The flow an offer becomes in the kernel (false: none; it stays in the
  // agent).
  bool kernelFlow(const datapath::pipeline::FlowOffer& o,
                  const std::function<int(uint32_t port)>& ifindexOf, Installed& flow,
                  fastpath::FlowAction& action);
  // A template from a handshake's two flows (the opening one, then its
  // answer's), if they may make others.
  void learn(const Installed& forward, const fastpath::FlowAction& forward_action,
             const Installed& reply, const fastpath::FlowAction& reply_action);
  // The selector of a VIP's connections from the client of `forward` (a
  // member's template just learned from it), if none yet.
  void learnSelector(const Installed& forward);
  // A connection made from a template (either of its flows, as the kernel
  // has it) taken into conntrack and, with `keep`, into this bookkeeping;
  // else its flows leave the kernel.
  // (`answered`: known to be, without asking the kernel.)
  void adopt(const fastpath::FlowKey& key, const fastpath::FlowAction& action, bool keep,
             bool answered = false);
  // The templates owned here that `gone` says go, with their connections
  // (adopted, then out of the kernel).
  void dropTemplates(const std::function<bool(const Templates::Template&)>& gone);
  // Made connections not adopted yet: answered ones adopted (`leaving`:
  // all), ones left unanswered for long taken out of the kernel (into
  // conntrack, as SYN sent).
  void adoptMade(bool leaving = false);
  // A FIN flow `key` carried (`handed`: by the first worker, whose events
  // they are).
  void finished(const fastpath::FlowKey& key, bool handed = false);

  fastpath::FastPath& fp_;
  const Tunnels tunnels_;
  const std::vector<int> uplinks_;
  int uplink(uint32_t index_plus_one) const {
    return index_plus_one == 0 || index_plus_one > uplinks_.size() ? 0
                                                                   : uplinks_[index_plus_one - 1];
  }
  std::map<KeyBytes, Installed> installed_;
  // The installed flows of each connection (by its key in either direction,
  // the smaller of the two's bytes).
  std::unordered_map<datapath::conntrack::ConnKey, std::vector<KeyBytes>,
                     datapath::conntrack::ConnKeyHash>
      by_connection_;
  uint64_t installs_ = 0;
  Templates* const templates_;
  // While events are taken: the flows to take out of the kernel, at once
  // after.
  bool batching_ = false;
  std::vector<fastpath::FlowKey> removals_;
  const size_t worker_;
  const bool setups_;
  uint64_t handings_seen_ = 0;
  datapath::conntrack::ConnTrack* conntrack_ = nullptr;
  const Clock* clock_ = nullptr;
  KeepAlive snat_keep_alive_;
  KeepAlive local_ip_keep_alive_;
  LbKeepAlive lb_keep_alive_;
  LbImport lb_import_;
  LbClose lb_close_;
  struct Attached {
    std::string interface;
    uint8_t out = 0;  // how the fast path delivers to it (enum canopy_fp_out)
  };
  std::map<int, Attached> attached_;  // by ifindex
};

}  // namespace canopy::agent
