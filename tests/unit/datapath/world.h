#pragma once
// A small cloud for datapath tests: hosts, each with its own Datapath, wired
// together as the agents will be: tunnel outputs become the tunnel input of
// the host they name, uplink and port outputs are collected. Plus a topology
// with two tenants that overlap, a router with a gateway and a floating IP,
// and one-line descriptions of frames for traces and failure messages.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/clock.h"
#include "datapath/packet/builder.h"
#include "datapath/packet/parser.h"
#include "datapath/pipeline/datapath.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::testing {

using packet::Ipv4Address;
using packet::MacAddress;
using pipeline::Datapath;
using pipeline::Encapsulation;
using pipeline::Ingress;
using pipeline::Outputs;
using topology::IpAddr;
using topology::IpPrefix;

inline MacAddress mac(uint8_t a, uint8_t b) { return {{0xfa, 0x16, 0x3e, 0x00, a, b}}; }
inline IpPrefix prefix(const char* text) { return *IpPrefix::parse(text); }
inline IpAddr ip(const char* text) { return *IpAddr::parse(text); }
inline Ipv4Address v4(const char* text) {
  IpAddr a = ip(text);
  return Ipv4Address::of(a.bytes[0], a.bytes[1], a.bytes[2], a.bytes[3]);
}

// One line for a frame: Ethernet, then ARP or IP and its transport.
std::string describeFrame(std::span<const uint8_t> frame);

// The scenario's names, to keep tests readable.
namespace world {
inline constexpr uint32_t kH1 = 1, kH2 = 2, kH3 = 3;
inline constexpr uint32_t kNet1 = 1, kNet2 = 2, kNetB = 3, kPublic = 100;
inline constexpr uint32_t kVm1 = 11, kVm2 = 12, kVm3 = 13, kVm5 = 15, kVm6 = 16, kVmB = 21;
inline constexpr uint32_t kRouter = 1;
inline constexpr uint32_t kDefault = 1, kWeb = 2, kDefaultB = 3;
inline const MacAddress kOutsideMac{{0x52, 0x54, 0x00, 0x00, 0x00, 0x01}};
inline const MacAddress kRouterNet1Mac = mac(1, 1), kRouterNet2Mac = mac(1, 2),
                        kGatewayMac = mac(1, 0);
}  // namespace world

// Tenant A: net1 (10.0.0.0/24, VNI 101) with vm1 and vm5 on h1, vm2 on h2,
// vm6 on h3; net2 (10.0.1.0/24, VNI 102, MTU 1400) with vm3 on h1; router
// r1 joining them, its gateway on "public" (203.0.113.0/24, physnet1)
// held by h2 with SNAT; floating IP 203.0.113.50 for vm3. Groups: default
// (egress all, ingress from default) on vm1, vm2, vm5, vm6; web (ingress
// tcp 80 and icmp from anywhere, egress all) on vm3. Tenant B: net-b with
// the same 10.0.0.0/24 (VNI 201), vmb on h1 with 10.0.0.5 too.
topology::TopologyBuilder scenario();

class World {
 public:
  explicit World(Encapsulation encapsulation = Encapsulation::Geneve);

  void setTopology(const topology::TopologyBuilder& b, uint64_t version);
  Datapath& host(uint32_t key) { return *hosts_.at(key); }

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
  Encapsulation encapsulation_;
  std::map<uint32_t, std::unique_ptr<Datapath>> hosts_;
  std::shared_ptr<const topology::Topology> topology_;
};

// Every line of a result, for golden files: the trace and where each
// frame left.
std::string render(const std::vector<std::string>& trace,
                   const std::vector<World::Received>& received);

}  // namespace canopy::datapath::testing
