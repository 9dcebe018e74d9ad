#include "world.h"

namespace canopy::datapath::testing {

using namespace world;

World::World(Encapsulation encapsulation, pipeline::SlowPathLimits slow_path) {
  for (uint32_t h : {kH1, kH2, kH3}) {
    pipeline::Config c;
    c.host.host = h;
    if (h != kH3) c.host.uplinks = {"physnet1"};
    c.encapsulation = encapsulation;
    c.slow_path = slow_path;
    fabric_.addHost(h, "h" + std::to_string(h), std::move(c), nullptr);
  }
}

void World::setTopology(const topology::TopologyBuilder& b, uint64_t version) {
  auto built = b.build(version);
  if (!built) throw std::runtime_error(built.error().message());
  fabric_.setTopology(*built);
}

std::vector<World::Received> World::send(uint32_t host, const Ingress& in,
                                         std::span<const uint8_t> frame,
                                         std::vector<std::string>* trace) {
  fabric::Walk walk = fabric_.send(host, in, frame, trace != nullptr);
  if (trace != nullptr) {
    for (auto& s : walk.steps) trace->push_back(fabric_.name(s.host) + ": " + std::move(s.text));
  }
  std::vector<Received> received;
  for (auto& o : walk.outputs) {
    received.push_back({o.host, o.kind, o.port, o.uplink, std::move(o.bytes)});
  }
  return received;
}

std::string render(const std::vector<std::string>& trace,
                   const std::vector<World::Received>& received) {
  std::string s;
  for (const auto& l : trace) s += l + "\n";
  for (const auto& r : received) {
    std::string where = r.kind == Outputs::Kind::Port     ? " port " + std::to_string(r.port)
                        : r.kind == Outputs::Kind::Uplink ? " uplink " + std::to_string(r.uplink)
                                                          : " tunnel to a host not in the world";
    s += "out: h" + std::to_string(r.host) + where + ": " + describeFrame(r.bytes) + "\n";
  }
  if (received.empty()) s += "out: nothing\n";
  return s;
}

}  // namespace canopy::datapath::testing
