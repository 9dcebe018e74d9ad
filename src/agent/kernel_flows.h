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
// Thread-safety: none; it belongs to its worker.

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "agent/port_io.h"
#include "base/clock.h"
#include "datapath/conntrack/conntrack.h"
#include "datapath/pipeline/datapath.h"
#include "fastpath/fast_path.h"

namespace canopy::agent {

// An offered flow as the kernel's map has it: its key on the sending
// port's interface, and its action towards the receiving port's.
fastpath::FlowKey kernelKey(const datapath::pipeline::FlowOffer& offer, int from_ifindex);
// `out`: how it reaches that interface (CANOPY_FP_REDIRECT_PEER into a
// veth's peer, CANOPY_FP_REDIRECT to a tap's reader or out of an uplink,
// CANOPY_FP_ENCAP). With the offer's translation, if any.
fastpath::FlowAction kernelAction(const datapath::pipeline::FlowOffer& offer, int to_ifindex,
                                  uint8_t out);

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
  KernelFlows(fastpath::FastPath& fast_path, Tunnels tunnels, std::vector<int> uplinks = {})
      : fp_(fast_path), tunnels_(tunnels), uplinks_(std::move(uplinks)) {}
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
  void leave() {
    installed_.clear();
    attached_.clear();
  }
  void tick(datapath::conntrack::ConnTrack& conntrack, SteadyTime now);
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
  };
  void erase(std::map<KeyBytes, Installed>::iterator it);

  fastpath::FastPath& fp_;
  const Tunnels tunnels_;
  const std::vector<int> uplinks_;
  int uplink(uint32_t index_plus_one) const {
    return index_plus_one == 0 || index_plus_one > uplinks_.size() ? 0
                                                                   : uplinks_[index_plus_one - 1];
  }
  std::map<KeyBytes, Installed> installed_;
  uint64_t installs_ = 0;
  struct Attached {
    std::string interface;
    uint8_t out = 0;  // how the fast path delivers to it (enum canopy_fp_out)
  };
  std::map<int, Attached> attached_;  // by ifindex
};

}  // namespace canopy::agent
