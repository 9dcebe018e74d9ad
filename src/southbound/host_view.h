#pragma once
// What an agent knows, as the southbound carries it: a host's view, its
// objects by key (see view.h for how the server computes it, convert.h for
// the wire).
//
// Thread-safety: a value.

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "datapath/topology/topology.h"

namespace canopy::southbound {

namespace topology = datapath::topology;

struct HostView {
  uint32_t local_host = 0;  // the host's own key; 0 while it has none
  std::map<uint32_t, topology::Switch> switches;
  std::map<uint32_t, topology::Port> ports;
  std::map<uint32_t, topology::Router> routers;
  std::map<uint32_t, topology::SecurityGroup> groups;
  std::map<uint32_t, topology::Host> hosts;
  std::map<std::string, topology::FloatingIp> floating_ips;  // by id

  friend bool operator==(const HostView&, const HostView&) = default;

  topology::TopologyBuilder builder() const;
  size_t objects() const {
    return switches.size() + ports.size() + routers.size() + groups.size() + hosts.size() +
           floating_ips.size();
  }
};

// Which objects of a view changed (were added, changed or removed), by key.
struct ViewKeys {
  std::set<uint32_t> switches, ports, routers, groups, hosts;
  std::set<std::string> floating_ips;

  bool empty() const { return size() == 0; }
  size_t size() const {
    return switches.size() + ports.size() + routers.size() + groups.size() + hosts.size() +
           floating_ips.size();
  }
  void merge(const ViewKeys& o);
};

}  // namespace canopy::southbound
