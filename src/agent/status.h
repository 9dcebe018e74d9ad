#pragma once
// The agent's status as the local API and the metrics endpoint show it: the
// workers' stats added up, rendered as JSON.
//
//   WorkerStats total = sumStats(stats);            // one per worker
//   Json datapath = renderDatapathStatus(total, connections);
//
// Thread-safety: pure functions.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "agent/worker.h"
#include "model/json.h"

namespace canopy::agent {

// Every counter added up; ports by interface, their counts added up.
WorkerStats sumStats(const std::vector<WorkerStats>& stats);

// {"packets", "outputs", "answered", "simulations", "drops": {reason: n},
//  "flow_cache": {...}, "connections", "offload": {...}, "send_failed",
//  "receive_truncated", "ports": [{"interface", "port_id", "rx", "tx",
//  "drops"}]}; zero drop counts are left out.
// `meter_ids`: the metering labels the host knows, by their ids' hashes
// (the datapath counts by hash); others are left out.
model::Json renderDatapathStatus(const WorkerStats& total, size_t connections,
                                 const std::map<uint64_t, std::string>& meter_ids = {});

}  // namespace canopy::agent
