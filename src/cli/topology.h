#pragma once
// `canopy topology`: the logical network drawn from the API's lists, built
// on the client. Each project holds its routers (gateway network and
// external addresses), under each router the networks it has interfaces on,
// and the project's networks that no router joins; under each network its
// subnets (range, gateway) and under each subnet the ports with an address
// in it (name or id, device owner, addresses, host, status, floating IPs).
// Siblings are ordered by name, then id, so the output is stable.
//
//   TopologyInput in{.networks = ..., .subnets = ..., .ports = ..., .routers = ...};
//   std::cout << renderTopologyTree(in, "");     // or renderTopologyDot (Graphviz)
//
// Thread-safety: pure functions.

#include <map>
#include <string>
#include <vector>

#include "model/json.h"

namespace canopy::cli {

using model::Json;

struct TopologyInput {
  std::vector<Json> networks;
  std::vector<Json> subnets;
  std::vector<Json> ports;
  std::vector<Json> routers;
  std::vector<Json> floating_ips;
  std::map<std::string, std::string> project_names;  // id -> name, where known
};

// `project`: only that project (id or name); "" for all.
std::string renderTopologyTree(const TopologyInput& input, const std::string& project);
std::string renderTopologyDot(const TopologyInput& input, const std::string& project);

}  // namespace canopy::cli
