#pragma once
// Several hosts' datapaths wired as their agents wire them: what a host
// sends into a tunnel, the host it names receives from that tunnel (from
// the sender's tunnel address); what leaves by a port or an uplink is
// collected. `canopy trace` follows a probe across the cloud on one, the
// datapath's tests run their multi-host scenarios on one, and the datapath
// bench measures a frame's cost on both ends of a tunnel with one.
//
//   Fabric fabric(clock);
//   fabric.addHost(1, "compute-1", config, topology);
//   fabric.addHost(2, "compute-2", config2, topology);
//   Walk walk = fabric.send(1, Ingress::fromPort(7), frame, /*trace=*/true);
//   for (const auto& o : walk.outputs) ...   // left by a port or an uplink
//   if (walk.drop != DropReason::None) ...   // and the last drop on the way
//
// Thread-safety: none; one thread runs a fabric.

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/clock.h"
#include "datapath/pipeline/datapath.h"

namespace canopy::datapath::fabric {

using pipeline::Datapath;
using pipeline::Ingress;
using pipeline::Outputs;

// One line of a trace, by the host that wrote it.
struct Step {
  uint32_t host = 0;
  std::string text;
};

// A frame that left the fabric: by a port or an uplink, or into a tunnel to
// a host the fabric does not have (a static VTEP).
struct Output {
  uint32_t host = 0;  // where it left
  Outputs::Kind kind = Outputs::Kind::Port;
  uint32_t port = 0;             // Port
  uint32_t uplink = 0;           // Uplink
  uint32_t remote_host = 0;      // Tunnel
  topology::IpAddress remote{};  // Tunnel
  std::vector<uint8_t> bytes;
};

struct Walk {
  std::vector<Step> steps;  // with send(..., trace = true)
  std::vector<Output> outputs;
  // The last drop on the way (a flood may drop for one port and deliver to
  // another), and on which host.
  DropReason drop = DropReason::None;
  uint32_t drop_host = 0;
  size_t hops = 0;             // frames processed, the first included
  bool hops_exceeded = false;  // a loop, cut at the limit
};

class Fabric {
 public:
  explicit Fabric(const Clock& clock, size_t max_hops = 64) : clock_(clock), max_hops_(max_hops) {}

  // Adds host `key` (its key in the topology, config.host.host) with its
  // own datapath over `topology`.
  Datapath& addHost(uint32_t key, std::string name, pipeline::Config config,
                    std::shared_ptr<const topology::Topology> topology);
  // Every host's topology at once (a scenario's next version).
  void setTopology(const std::shared_ptr<const topology::Topology>& topology);

  Datapath* datapath(uint32_t key);  // nullptr if the fabric has no such host
  const topology::Topology* topology(uint32_t key) const;
  const std::string& name(uint32_t key) const;  // "" if none
  std::vector<uint32_t> hosts() const;

  // Sends a frame in on `host` and follows it through every tunnel.
  Walk send(uint32_t host, const Ingress& in, std::span<const uint8_t> frame, bool trace = false);

 private:
  struct Host {
    std::string name;
    std::shared_ptr<const topology::Topology> topology;
    std::unique_ptr<Datapath> datapath;
  };

  const Clock& clock_;
  const size_t max_hops_;
  std::map<uint32_t, Host> hosts_;
};

}  // namespace canopy::datapath::fabric
