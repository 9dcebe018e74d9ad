#pragma once
// A small cloud for datapath tests: three hosts on a Fabric (the same wiring
// trace and the bench use: tunnel outputs become the tunnel input of the
// host they name, uplink and port outputs are collected); and one-line
// descriptions of frames for traces and failure messages. The topology they
// usually run, scenario(), is in testing/datapath_scenario.h.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "datapath/fabric/fabric.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/describe.h"
#include "datapath/packet/parser.h"
#include "datapath/pipeline/datapath.h"
#include "datapath/topology/topology.h"
#include "testing/datapath_scenario.h"

namespace canopy::datapath::testing {

using packet::Ipv4Address;
using packet::MacAddress;
using pipeline::Datapath;
using pipeline::Encapsulation;
using pipeline::Ingress;
using pipeline::Outputs;

using packet::describeFrame;

class World {
 public:
  explicit World(Encapsulation encapsulation = Encapsulation::Geneve,
                 pipeline::SlowPathLimits slow_path = {});

  void setTopology(const topology::TopologyBuilder& b, uint64_t version);
  Datapath& host(uint32_t key) { return *fabric_.datapath(key); }

  struct Received {
    uint32_t host = 0;
    Outputs::Kind kind = Outputs::Kind::Port;
    uint32_t port = 0;    // Port
    uint32_t uplink = 0;  // Uplink
    std::vector<uint8_t> bytes;
  };
  // Sends a frame in on a host and follows it through every tunnel; what
  // leaves ports and uplinks is returned. With a trace, every stage's
  // steps, prefixed with the host.
  std::vector<Received> send(uint32_t host, const Ingress& in, std::span<const uint8_t> frame,
                             std::vector<std::string>* trace = nullptr);
  std::vector<Received> fromPort(uint32_t host, uint32_t port, std::span<const uint8_t> frame,
                                 std::vector<std::string>* trace = nullptr) {
    return send(host, Ingress::fromPort(port), frame, trace);
  }
  std::vector<Received> fromOutside(uint32_t host, std::span<const uint8_t> frame,
                                    std::vector<std::string>* trace = nullptr) {
    return send(host, Ingress::fromUplink(0), frame, trace);
  }

  FakeClock clock;

 private:
  fabric::Fabric fabric_{clock};
};

// Every line of a result, for golden files: the trace and where each
// frame left.
std::string render(const std::vector<std::string>& trace,
                   const std::vector<World::Received>& received);

}  // namespace canopy::datapath::testing
