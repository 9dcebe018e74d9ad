#include "world.h"

#include <deque>

namespace canopy::datapath::testing {

using namespace world;

World::World(Encapsulation encapsulation) : encapsulation_(encapsulation) {
  for (uint32_t h : {kH1, kH2, kH3}) {
    pipeline::Config c;
    c.host.host = h;
    if (h != kH3) c.host.uplinks = {"physnet1"};
    c.encapsulation = encapsulation;
    hosts_[h] = std::make_unique<Datapath>(clock, std::move(c));
  }
}

void World::setTopology(const topology::TopologyBuilder& b, uint64_t version) {
  auto built = b.build(version);
  if (!built) throw std::runtime_error(built.error().message());
  topology_ = *built;
  for (auto& [key, dp] : hosts_) dp->setTopology(topology_);
}

std::vector<World::Received> World::send(uint32_t host, const Ingress& in,
                                         std::span<const uint8_t> frame,
                                         std::vector<std::string>* trace) {
  struct Pending {
    uint32_t host;
    Ingress in;
    std::vector<uint8_t> bytes;
  };
  std::deque<Pending> queue;
  queue.push_back({host, in, {frame.begin(), frame.end()}});
  std::vector<Received> received;
  for (int steps = 0; !queue.empty() && steps < 64; ++steps) {
    Pending p = std::move(queue.front());
    queue.pop_front();
    Outputs out;
    std::vector<std::string> lines;
    hosts_.at(p.host)->process(p.in, p.bytes, out, trace != nullptr ? &lines : nullptr);
    const std::string prefix = "h" + std::to_string(p.host) + ": ";
    if (trace != nullptr) {
      for (auto& l : lines) trace->push_back(prefix + l);
    }
    for (const auto& item : out.items()) {
      auto bytes = out.bytes(item);
      if (item.kind == Outputs::Kind::Tunnel) {
        const auto* sender = topology_->findHost(p.host);
        queue.push_back({item.host,
                         Ingress::fromTunnel(encapsulation_, sender->tunnel_ip),
                         {bytes.begin(), bytes.end()}});
        continue;
      }
      received.push_back({p.host, item.kind, item.port, item.uplink, {bytes.begin(), bytes.end()}});
    }
  }
  return received;
}

std::string render(const std::vector<std::string>& trace,
                   const std::vector<World::Received>& received) {
  std::string s;
  for (const auto& l : trace) s += l + "\n";
  for (const auto& r : received) {
    s += "out: h" + std::to_string(r.host) +
         (r.kind == Outputs::Kind::Port ? " port " + std::to_string(r.port)
                                        : " uplink " + std::to_string(r.uplink)) +
         ": " + describeFrame(r.bytes) + "\n";
  }
  if (received.empty()) s += "out: nothing\n";
  return s;
}

}  // namespace canopy::datapath::testing
