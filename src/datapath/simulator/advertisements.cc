#include "datapath/simulator/advertisements.h"

#include <algorithm>

#include "datapath/simulator/replies.h"

namespace canopy::datapath::simulator {
namespace {

uint64_t fingerprintOf(const std::vector<std::vector<uint8_t>>& frames) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (const auto& f : frames) {
    for (uint8_t b : f) h = (h ^ b) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
  }
  return h;
}

}  // namespace

std::vector<AdvertisementSchedule::Due> AdvertisementSchedule::due(const topology::Topology& t,
                                                                   std::span<const uint32_t> ports,
                                                                   SteadyTime now) {
  static const IpAddress all_nodes{6, {0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}};
  static const packet::MacAddress all_nodes_mac{{0x33, 0x33, 0, 0, 0, 1}};
  std::vector<Due> out;
  std::map<uint32_t, State> kept;
  std::map<uint32_t, std::vector<std::vector<uint8_t>>> by_switch;  // computed once per switch
  for (uint32_t key : ports) {
    const topology::Port* p = t.findPort(key);
    if (p == nullptr || !p->admin_up) continue;
    auto [at, fresh] = by_switch.try_emplace(p->switch_key);
    if (fresh) {
      if (const topology::Switch* sw = t.findSwitch(p->switch_key)) {
        for (const auto& a : advertisersOn(t, *sw)) {
          at->second.push_back(
              routerAdvertisement(*sw, a.mac, a.subnets, all_nodes_mac, all_nodes));
        }
      }
    }
    const auto& frames = at->second;
    if (frames.empty()) continue;
    State s = ports_.count(key) != 0 ? ports_[key] : State{now, 0, 0};
    uint64_t fingerprint = fingerprintOf(frames);
    if (fingerprint != s.fingerprint) s = State{now, 0, fingerprint};
    if (now >= s.next) {
      for (const auto& f : frames) out.push_back({key, f});
      ++s.sent;
      std::chrono::milliseconds wait;
      if (s.sent < kInitialAdvertisements) {
        wait = std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
            4000, std::chrono::milliseconds(kInitialInterval).count())(random_));
      } else {
        wait = std::chrono::milliseconds(std::uniform_int_distribution<int64_t>(
            kMinAdvertisementInterval * 1000, kMaxAdvertisementInterval * 1000)(random_));
      }
      s.next = now + wait;
    }
    kept[key] = s;
  }
  ports_ = std::move(kept);
  return out;
}

}  // namespace canopy::datapath::simulator
