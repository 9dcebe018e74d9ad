#pragma once
// Unsolicited router advertisements (RFC 4861 6.2.4) to a host's ports:
// each port on a switch where a router advertises gets the advertisements
// to all nodes, as if the router were on every host (it is: distributed).
// A port first seen, or whose advertisement changed (a subnet added, a
// mode or MTU changed), gets the first three at most 16 s apart; then one
// every 30 to 100 s, at random (Neutron's radvd intervals). Solicited ones
// are the simulator's.
//
//   AdvertisementSchedule schedule(seed);
//   for (auto& due : schedule.due(topology, bound_port_keys, clock.now()))
//     send(due.port, due.frame);
//
// Thread-safety: one owner (a worker).

#include <cstdint>
#include <map>
#include <random>
#include <span>
#include <vector>

#include "base/clock.h"
#include "datapath/topology/topology.h"

namespace canopy::datapath::simulator {

class AdvertisementSchedule {
 public:
  explicit AdvertisementSchedule(uint64_t seed = 1) : random_(seed) {}

  struct Due {
    uint32_t port = 0;
    std::vector<uint8_t> frame{};
  };
  // The advertisements due at `now` to `ports` (this host's, as keys);
  // ports not named are forgotten.
  std::vector<Due> due(const topology::Topology& t, std::span<const uint32_t> ports,
                       SteadyTime now);

  static constexpr int kInitialAdvertisements = 3;
  static constexpr std::chrono::seconds kInitialInterval{16};

 private:
  struct State {
    SteadyTime next{};
    int sent = 0;
    uint64_t fingerprint = 0;
  };
  std::map<uint32_t, State> ports_{};
  std::mt19937_64 random_;
};

}  // namespace canopy::datapath::simulator
