#pragma once
// The kernel fast path's loader: the eBPF programs of bpf/fastpath.bpf.c
// (built with the agent, loaded by it), attached to interfaces, and the
// flows it installs in their map.
//
//   auto fp = FastPath::open();             // Result: why not, if it cannot
//   fp->attach(ifindex);                    // tc clsact ingress
//   setsockopt(port_fd, SOL_SOCKET, SO_ATTACH_BPF, &filter_fd, ...)  // socketFilter()
//   fp->install(key, action);               // the flow runs in the kernel
//   fp->remove(key);                        // back to the agent
//
// The userspace datapath stays the authority: an installed flow is one it
// decided; what the programs do not take goes to the agent as before. A
// FastPath detaches what it attached when it goes.
//
// Thread-safety: the map operations may be called from any thread (the
// kernel's map is); attach() and detach() from one.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "fastpath/bpf/fastpath.h"

namespace canopy::fastpath {

using FlowKey = canopy_fp_key;
using FlowAction = canopy_fp_action;
using Template = canopy_fp_template;
using Event = canopy_fp_event;
using LbTable = canopy_fp_lb_table;

// The maps' layouts leave no padding implicit: what the agent and the
// programs write is every byte of what the kernel hashes and compares.
static_assert(std::has_unique_object_representations_v<FlowKey>);
static_assert(std::has_unique_object_representations_v<FlowAction>);
static_assert(std::has_unique_object_representations_v<Template>);
static_assert(std::has_unique_object_representations_v<Event>);
static_assert(std::has_unique_object_representations_v<LbTable>);

struct Counters {
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t slow = 0;  // a flow, but the packet was the agent's
  uint64_t not_ip = 0;
  uint64_t malformed = 0;
  uint64_t redirect_failed = 0;
  uint64_t no_route = 0;      // into a tunnel without a route or neighbour
  uint64_t tunnel_in = 0;     // decapsulated (among the hits)
  uint64_t handed_back = 0;   // taken, then given to the agent (not encapsulated twice)
  uint64_t made = 0;          // connections set up in the kernel, from templates
  uint64_t made_limited = 0;  // a port over its bound on those: its SYN to the agent
};

// Which program an interface gets.
enum class Hook : uint8_t {
  Port,      // a VM's interface: its flows out (to a port, or into a tunnel)
  Underlay,  // where tunnels arrive: their flows in
};

class FastPath {
 public:
  // Loads the programs and creates the maps. An error names why not: built
  // without BPF, no permission, the verifier's refusal (with its log's
  // last line). With `adopt`, the maps of programs an earlier agent left on
  // this namespace's interfaces are taken over if they have the same
  // layout, so that its flows keep running (adopted()); else new ones are
  // made. The programs carry flows for as long as keepAlive() says, or for
  // ever until it is first called.
  static Result<std::unique_ptr<FastPath>> open(bool adopt = false);
  ~FastPath();
  FastPath(const FastPath&) = delete;
  FastPath& operator=(const FastPath&) = delete;

  // The tunnels' UDP ports and underlay interface, for the programs.
  Result<void> configure(const canopy_fp_config& config);
  // The agent's sign of life: installed flows are carried until this
  // CLOCK_MONOTONIC time (ns), and after it left to the host.
  Result<void> keepAlive(uint64_t until_ns);
  // The flows an earlier agent installed, found in the maps taken over at
  // open(), and handed out once.
  std::vector<FlowKey> takeAdopted();
  // A connection the earlier agent's programs made from one of its
  // templates (among the flows adopted): its opener's flow, where that
  // flow goes, and its answer's key. The agent whose programs made it may
  // have died before it knew of it; the next one takes it into its
  // connection tracking (the templates themselves go at open(): this agent
  // did not decide them). Handed out once.
  struct MadeConnection {
    FlowKey forward{};
    FlowAction action{};  // the opener's flow's, as it was at open()
    FlowKey reply{};
  };
  std::vector<MadeConnection> takeAdoptedMade();
  // Leaves the programs on their interfaces and the flows in the maps when
  // this object goes (for the next agent to adopt); detach() still works.
  void leave();
  // Takes a program an earlier agent left off an interface (one of
  // Canopy's, at its place: ingress, handle 1, priority 1); what a host
  // running without the fast path does with each interface it serves.
  static void removeLeftover(int ifindex);
  // An ingress program on an interface (a clsact qdisc added if it has
  // none); detach() takes it off again.
  Result<void> attach(int ifindex, Hook hook = Hook::Port);
  void detach(int ifindex);
  // The socket filter's program, for SO_ATTACH_BPF on the interface's
  // AF_PACKET socket.
  int socketFilter() const;

  // A flow's action installed (or replaced); InvalidArgument when the map
  // is full.
  Result<void> install(const FlowKey& key, const FlowAction& action);
  void remove(const FlowKey& key);
  // Several at once (keys not installed are passed over).
  void remove(std::span<const FlowKey> keys);
  // A flow's action with its counters as the kernel has them.
  std::optional<FlowAction> find(const FlowKey& key) const;
  // Every installed flow (the kernel's and the agent's), read in batches.
  void forEachFlow(const std::function<void(const FlowKey&, const FlowAction&)>& f) const;

  // A template (keyed by its opener's flow, source port 0), from which the
  // programs make a new connection's flows; InvalidArgument when the map
  // is full.
  Result<void> installTemplate(const FlowKey& key, const Template& t);
  void removeTemplate(const FlowKey& key);
  // A load balancer's Maglev table (id not 0), which VIPs' selector
  // templates (Template::lb_table) pick new connections' members by;
  // InvalidArgument when the map is full.
  Result<void> installLbTable(uint32_t id, const LbTable& table);
  void removeLbTable(uint32_t id);

  // What the programs tell the agent (a FIN a flow carried): a descriptor
  // to poll for them (-1: none), and those waiting, each to `f`; how many.
  // From one thread.
  int eventsFd();
  size_t takeEvents(const std::function<void(const Event&)>& f);
  size_t flows() const;
  Counters counters() const;

 private:
  struct Impl;
  explicit FastPath(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace canopy::fastpath
