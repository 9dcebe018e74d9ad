#include "datapath/fabric/fabric.h"

#include <deque>

namespace canopy::datapath::fabric {

Datapath& Fabric::addHost(uint32_t key, std::string name, pipeline::Config config,
                          std::shared_ptr<const topology::Topology> topology) {
  Host h;
  h.name = std::move(name);
  h.topology = std::move(topology);
  h.datapath = std::make_unique<Datapath>(clock_, std::move(config));
  if (h.topology) h.datapath->setTopology(h.topology);
  Host& placed = hosts_[key] = std::move(h);
  return *placed.datapath;
}

void Fabric::setTopology(const std::shared_ptr<const topology::Topology>& topology) {
  for (auto& [key, h] : hosts_) {
    h.topology = topology;
    h.datapath->setTopology(topology);
  }
}

Datapath* Fabric::datapath(uint32_t key) {
  auto it = hosts_.find(key);
  return it == hosts_.end() ? nullptr : it->second.datapath.get();
}

const topology::Topology* Fabric::topology(uint32_t key) const {
  auto it = hosts_.find(key);
  return it == hosts_.end() ? nullptr : it->second.topology.get();
}

const std::string& Fabric::name(uint32_t key) const {
  static const std::string kNone;
  auto it = hosts_.find(key);
  return it == hosts_.end() ? kNone : it->second.name;
}

std::vector<uint32_t> Fabric::hosts() const {
  std::vector<uint32_t> keys;
  for (const auto& [key, h] : hosts_) keys.push_back(key);
  return keys;
}

Walk Fabric::send(uint32_t host, const Ingress& in, std::span<const uint8_t> frame, bool trace) {
  struct Pending {
    uint32_t host;
    Ingress in;
    std::vector<uint8_t> bytes;
  };
  std::deque<Pending> queue;
  queue.push_back({host, in, {frame.begin(), frame.end()}});
  Walk walk;
  Outputs out;
  simulator::Trace lines;
  while (!queue.empty()) {
    if (walk.hops == max_hops_) {
      walk.hops_exceeded = true;
      break;
    }
    ++walk.hops;
    Pending p = std::move(queue.front());
    queue.pop_front();
    Host& h = hosts_.at(p.host);
    out.clear();
    lines.clear();
    pipeline::Verdict v = h.datapath->process(p.in, p.bytes, out, trace ? &lines : nullptr);
    if (v.dropped()) {
      walk.drop = v.drop;
      walk.drop_host = p.host;
    }
    for (auto& l : lines) walk.steps.push_back({p.host, std::move(l)});
    for (const auto& item : out.items()) {
      auto bytes = out.bytes(item);
      Output o{.host = p.host,
               .kind = item.kind,
               .port = item.port,
               .uplink = item.uplink,
               .remote_host = item.host,
               .remote = item.remote,
               .bytes = {bytes.begin(), bytes.end()}};
      if (item.kind == Outputs::Kind::Tunnel && hosts_.contains(item.host)) {
        const topology::Host* sender = h.topology ? h.topology->findHost(p.host) : nullptr;
        queue.push_back(
            {item.host,
             Ingress::fromTunnel(item.encapsulation,
                                 sender != nullptr ? sender->tunnel_ip : topology::IpAddress{}),
             std::move(o.bytes)});
        continue;
      }
      if (item.kind == Outputs::Kind::Tunnel && trace) {
        walk.steps.push_back({p.host, "tunnel to host " + item.remote.toString() +
                                          ": no agent there to follow it (a static VTEP or an "
                                          "unknown host)"});
      }
      walk.outputs.push_back(std::move(o));
    }
  }
  return walk;
}

}  // namespace canopy::datapath::fabric
