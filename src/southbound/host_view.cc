#include "southbound/host_view.h"

namespace canopy::southbound {

topology::TopologyBuilder HostView::builder() const {
  topology::TopologyBuilder b;
  for (const auto& [k, s] : switches) b.addSwitch(s);
  for (const auto& [k, p] : ports) b.addPort(p);
  for (const auto& [k, r] : routers) b.addRouter(r);
  for (const auto& [k, g] : groups) b.addGroup(g);
  for (const auto& [k, h] : hosts) b.addHost(h);
  for (const auto& [k, f] : floating_ips) b.addFloatingIp(f);
  return b;
}

void ViewKeys::merge(const ViewKeys& o) {
  switches.insert(o.switches.begin(), o.switches.end());
  ports.insert(o.ports.begin(), o.ports.end());
  routers.insert(o.routers.begin(), o.routers.end());
  groups.insert(o.groups.begin(), o.groups.end());
  hosts.insert(o.hosts.begin(), o.hosts.end());
  floating_ips.insert(o.floating_ips.begin(), o.floating_ips.end());
}

}  // namespace canopy::southbound
