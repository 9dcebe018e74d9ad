// /v2.0/floatingip-pools (Neutron's floatingip-pools extension): the
// subnets floating IPs come from, for a client to choose one.

#include <algorithm>

#include "api/detail/endpoint.h"

namespace canopy::api::detail {

// Every IPv4 subnet of an external network whose service types allow
// floating IPs (none listed: any), as {subnet_id, subnet_name, cidr,
// network_id, project_id}; read-only, for everyone.
HttpResponse serveFloatingIpPools(const ApiWriter& w, const std::vector<std::string>& parts,
                                  const HttpRequest& req) {
  if (parts.size() != 2) return unknownPath(req);
  if (req.method != "GET") return methodNotAllowed();
  Json pools = Json::array();
  w.state.read([&](const state::Tables& t) {
    for (const auto& [id, s] : t.collection("subnets")) {
      const state::Document* n = t.find("networks", s.doc.value("network_id", ""));
      if (n == nullptr || !n->doc.value("router:external", false)) continue;
      if (s.doc.value("ip_version", 4) != 4) continue;
      const Json types = s.doc.value("service_types", Json::array());
      if (!types.empty() &&
          std::find(types.begin(), types.end(), "network:floatingip") == types.end()) {
        continue;
      }
      pools.push_back({{"subnet_id", id},
                       {"subnet_name", s.doc.value("name", "")},
                       {"cidr", s.doc.value("cidr", "")},
                       {"network_id", s.doc.value("network_id", "")},
                       {"project_id", s.doc.value("project_id", "")},
                       {"tenant_id", s.doc.value("project_id", "")}});
    }
    return 0;
  });
  return json(200, {{"floatingip_pools", std::move(pools)}});
}

}  // namespace canopy::api::detail
