#include "agent/status.h"

#include <string>

namespace canopy::agent {
namespace {

using model::Json;

template <typename Counts>
Json dropsJson(const Counts& counts) {
  Json drops = Json::object();
  for (size_t r = 1; r < datapath::kDropReasonCount; ++r) {
    if (counts[r] == 0) continue;
    drops[std::string(datapath::dropReasonName(static_cast<datapath::DropReason>(r)))] = counts[r];
  }
  return drops;
}

}  // namespace

WorkerStats sumStats(const std::vector<WorkerStats>& stats) {
  WorkerStats t;
  for (const auto& s : stats) {
    t.datapath.packets += s.datapath.packets;
    t.datapath.outputs += s.datapath.outputs;
    t.datapath.answered += s.datapath.answered;
    t.datapath.simulations += s.datapath.simulations;
    t.datapath.snat_steered += s.datapath.snat_steered;
    for (const auto& [label, m] : s.datapath.meters) {
      t.datapath.meters[label].packets += m.packets;
      t.datapath.meters[label].bytes += m.bytes;
    }
    for (size_t r = 0; r < datapath::kDropReasonCount; ++r) {
      t.datapath.drops[r] += s.datapath.drops[r];
      t.io_drops[r] += s.io_drops[r];
    }
    t.cache.hits += s.cache.hits;
    t.cache.misses += s.cache.misses;
    t.cache.invalidated += s.cache.invalidated;
    t.cache_entries += s.cache_entries;
    t.send_failed += s.send_failed;
    t.super_frames += s.super_frames;
    t.segmented += s.segmented;
    t.joined += s.joined;
    t.coalesced += s.coalesced;
    t.receive_truncated += s.receive_truncated;
    for (const auto& [interface, p] : s.ports) {
      WorkerStats::Port& sum = t.ports[interface];
      sum.port_id = p.port_id;
      sum.key = p.key;
      sum.rx += p.rx;
      sum.tx += p.tx;
      for (size_t r = 0; r < datapath::kDropReasonCount; ++r) sum.drops[r] += p.drops[r];
    }
  }
  return t;
}

Json renderDatapathStatus(const WorkerStats& total, size_t connections,
                          const std::map<uint64_t, std::string>& meter_ids) {
  Json metering = Json::array();
  for (const auto& [hash, m] : total.datapath.meters) {
    auto id = meter_ids.find(hash);
    if (id == meter_ids.end()) continue;  // a label gone
    metering.push_back({{"label", id->second}, {"packets", m.packets}, {"bytes", m.bytes}});
  }
  std::array<uint64_t, datapath::kDropReasonCount> drops{};
  for (size_t r = 0; r < datapath::kDropReasonCount; ++r) {
    drops[r] = total.datapath.drops[r] + total.io_drops[r];
  }
  Json ports = Json::array();
  for (const auto& [interface, p] : total.ports) {
    ports.push_back({{"interface", interface},
                     {"port_id", p.port_id},
                     {"rx", p.rx},
                     {"tx", p.tx},
                     {"drops", dropsJson(p.drops)}});
  }
  return {{"packets", total.datapath.packets},
          {"outputs", total.datapath.outputs},
          {"answered", total.datapath.answered},
          {"simulations", total.datapath.simulations},
          {"snat_steered", total.datapath.snat_steered},
          {"drops", dropsJson(drops)},
          {"flow_cache",
           {{"entries", total.cache_entries},
            {"hits", total.cache.hits},
            {"misses", total.cache.misses},
            {"invalidated", total.cache.invalidated}}},
          {"connections", connections},
          {"metering", std::move(metering)},
          {"offload",
           {{"super_frames", total.super_frames},
            {"segmented", total.segmented},
            {"joined", total.joined},
            {"coalesced", total.coalesced}}},
          {"send_failed", total.send_failed},
          {"receive_truncated", total.receive_truncated},
          {"ports", std::move(ports)}};
}

}  // namespace canopy::agent
