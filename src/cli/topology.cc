#include "cli/topology.h"

#include <algorithm>
#include <set>
#include <utility>

#include "cli/client.h"
#include "cli/commands.h"

namespace canopy::cli {

namespace {

using model::stringAt;

std::string nameOrId(const Json& doc) {
  std::string name = stringAt(doc, "name");
  return name.empty() ? stringAt(doc, "id") : name;
}

bool byNameThenId(const Json* a, const Json* b) {
  return std::pair(stringAt(*a, "name"), stringAt(*a, "id")) <
         std::pair(stringAt(*b, "name"), stringAt(*b, "id"));
}

std::string joined(const std::vector<std::string>& parts, const char* sep = ", ") {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// The addresses of `port` (in `subnet_id` only, unless it is "").
std::vector<std::string> addressesOf(const Json& port, const std::string& subnet_id) {
  std::vector<std::string> out;
  for (const auto& ip : port.value("fixed_ips", Json::array())) {
    if (subnet_id.empty() || stringAt(ip, "subnet_id") == subnet_id) {
      out.push_back(stringAt(ip, "ip_address"));
    }
  }
  return out;
}

bool isRouterInterface(const Json& port) {
  return stringAt(port, "device_owner").starts_with("network:router_interface");
}

// The lists, indexed the ways the drawing walks them.
struct Index {
  std::map<std::string, const Json*> networks;
  std::map<std::string, std::vector<const Json*>> subnets_of;  // network id -> subnets
  std::map<std::string, std::vector<const Json*>> ports_of;    // network id -> ports
  std::map<std::string, std::vector<const Json*>> networks_of_router;
  std::map<std::string, std::vector<std::string>> floating_of;  // port id -> addresses
  std::set<std::string> attached;                               // networks a router joins
};

Index indexOf(const TopologyInput& in) {
  Index ix;
  for (const auto& n : in.networks) ix.networks[stringAt(n, "id")] = &n;
  for (const auto& s : in.subnets) ix.subnets_of[stringAt(s, "network_id")].push_back(&s);
  std::set<std::string> routers;
  for (const auto& r : in.routers) routers.insert(stringAt(r, "id"));
  for (const auto& p : in.ports) {
    std::string network = stringAt(p, "network_id");
    ix.ports_of[network].push_back(&p);
    std::string router = stringAt(p, "device_id");
    auto n = ix.networks.find(network);
    if (isRouterInterface(p) && routers.contains(router) && n != ix.networks.end()) {
      auto& list = ix.networks_of_router[router];
      if (std::find(list.begin(), list.end(), n->second) == list.end()) list.push_back(n->second);
      ix.attached.insert(network);
    }
  }
  for (const auto& f : in.floating_ips) {
    std::string port = stringAt(f, "port_id");
    if (!port.empty()) ix.floating_of[port].push_back(stringAt(f, "floating_ip_address"));
  }
  for (auto* m : {&ix.subnets_of, &ix.ports_of, &ix.networks_of_router}) {
    for (auto& [key, list] : *m) std::sort(list.begin(), list.end(), byNameThenId);
  }
  for (auto& [key, list] : ix.floating_of) std::sort(list.begin(), list.end());
  return ix;
}

struct Project {
  std::string id;
  std::string label;
  std::vector<const Json*> routers;
  std::vector<const Json*> networks;  // those no router joins
};

std::vector<Project> projectsOf(const TopologyInput& in, const Index& ix,
                                const std::string& filter) {
  std::map<std::string, Project> by_id;
  auto projectFor = [&](const Json& doc) -> Project& {
    std::string id = stringAt(doc, "project_id");
    Project& p = by_id[id];
    if (p.label.empty()) {
      auto name = in.project_names.find(id);
      p.id = id;
      p.label = id.empty() ? "project (none)"
                : name == in.project_names.end() || name->second == id
                    ? "project " + id
                    : "project " + name->second + " (" + id + ")";
    }
    return p;
  };
  for (const auto& r : in.routers) projectFor(r).routers.push_back(&r);
  for (const auto& n : in.networks) {
    if (!ix.attached.contains(stringAt(n, "id"))) projectFor(n).networks.push_back(&n);
  }
  std::vector<Project> out;
  for (auto& [id, p] : by_id) {
    auto name = in.project_names.find(id);
    bool wanted = filter.empty() || filter == id ||
                  (name != in.project_names.end() && name->second == filter);
    if (!wanted) continue;
    std::sort(p.routers.begin(), p.routers.end(), byNameThenId);
    std::sort(p.networks.begin(), p.networks.end(), byNameThenId);
    out.push_back(std::move(p));
  }
  std::sort(out.begin(), out.end(),
            [](const Project& a, const Project& b) { return a.label < b.label; });
  return out;
}

std::string gatewayText(const Json& router, const Index& ix) {
  const Json& gw = router.value("external_gateway_info", Json());
  if (!gw.is_object() || !gw.contains("network_id")) return {};
  auto net = ix.networks.find(stringAt(gw, "network_id"));
  std::string text =
      "gateway " + (net != ix.networks.end() ? nameOrId(*net->second) : stringAt(gw, "network_id"));
  std::vector<std::string> ips;
  for (const auto& ip : gw.value("external_fixed_ips", Json::array())) {
    ips.push_back(stringAt(ip, "ip_address"));
  }
  if (!ips.empty()) text += " " + joined(ips);
  if (!gw.value("enable_snat", true)) text += ", no SNAT";
  return text;
}

std::string routerLabel(const Json& r, const Index& ix) {
  std::vector<std::string> parts = {"router " + nameOrId(r), stringAt(r, "status")};
  if (!r.value("admin_state_up", true)) parts.emplace_back("admin down");
  if (auto gw = gatewayText(r, ix); !gw.empty()) parts.push_back(gw);
  return joined(parts, "  ");
}

std::string networkLabel(const Json& n, const char* sep = "  ") {
  std::vector<std::string> parts = {"network " + nameOrId(n)};
  if (n.value("router:external", false)) parts.emplace_back("external");
  if (n.value("shared", false)) parts.emplace_back("shared");
  std::string type = stringAt(n, "provider:network_type");
  if (!type.empty()) {
    std::string segment = type;
    std::string physnet = stringAt(n, "provider:physical_network");
    if (!physnet.empty()) segment += " " + physnet;
    const Json& id = n.value("provider:segmentation_id", Json());
    if (id.is_number()) segment += " " + id.dump();
    parts.push_back(segment);
  }
  std::string status = stringAt(n, "status");
  if (!status.empty() && status != "ACTIVE") parts.push_back(status);
  return joined(parts, sep);
}

std::string subnetLabel(const Json& s) {
  std::vector<std::string> parts = {"subnet " + nameOrId(s), stringAt(s, "cidr")};
  std::string gateway = stringAt(s, "gateway_ip");
  parts.push_back(gateway.empty() ? "no gateway" : "gateway " + gateway);
  if (!s.value("enable_dhcp", true)) parts.emplace_back("no DHCP");
  return joined(parts, "  ");
}

std::string portLabel(const Json& p, const std::vector<std::string>& ips, const Index& ix) {
  std::vector<std::string> parts = {"port " + nameOrId(p)};
  if (std::string owner = stringAt(p, "device_owner"); !owner.empty()) parts.push_back(owner);
  if (!ips.empty()) parts.push_back(joined(ips));
  if (std::string host = stringAt(p, "binding:host_id"); !host.empty()) {
    parts.push_back("host " + host);
  }
  parts.push_back(stringAt(p, "status"));
  if (auto f = ix.floating_of.find(stringAt(p, "id")); f != ix.floating_of.end()) {
    parts.push_back("floating " + joined(f->second));
  }
  return joined(parts, "  ");
}

// --- the text tree

struct Node {
  std::string label;
  std::vector<Node> children{};
};

Node networkNode(const Json& n, const Index& ix) {
  Node node{networkLabel(n)};
  std::string id = stringAt(n, "id");
  static const std::vector<const Json*> kNone;
  auto find = [&](const auto& map) -> const std::vector<const Json*>& {
    auto it = map.find(id);
    return it == map.end() ? kNone : it->second;
  };
  const auto& ports = find(ix.ports_of);
  for (const Json* s : find(ix.subnets_of)) {
    Node& sn = node.children.emplace_back(Node{subnetLabel(*s)});
    for (const Json* p : ports) {
      auto ips = addressesOf(*p, stringAt(*s, "id"));
      if (!ips.empty()) sn.children.push_back({portLabel(*p, ips, ix)});
    }
  }
  for (const Json* p : ports) {
    if (addressesOf(*p, "").empty()) node.children.push_back({portLabel(*p, {}, ix)});
  }
  return node;
}

void renderNode(const Node& n, const std::string& prefix, bool last, bool top, std::string& out) {
  out += top ? n.label + "\n" : prefix + (last ? "└── " : "├── ") + n.label + "\n";
  std::string inner = top ? "" : prefix + (last ? "    " : "│   ");
  for (size_t i = 0; i < n.children.size(); ++i) {
    renderNode(n.children[i], inner, i + 1 == n.children.size(), false, out);
  }
}

// --- Graphviz

std::string dotString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c == '\n' ? std::string("\\n") : std::string(1, c);
  }
  return out + "\"";
}

class Dot {
 public:
  explicit Dot(const Index& ix) : ix_(ix) {}

  // Cluster `c` (or none, -1) holds the node unless it is already drawn.
  void node(int c, const std::string& id, const std::string& attrs) {
    if (!drawn_.insert(id).second) return;
    std::string line = dotString(id) + " [" + attrs + "];";
    if (c < 0) {
      loose_.push_back(line);
    } else {
      clusters_[static_cast<size_t>(c)].second.push_back(line);
    }
  }
  void edge(const std::string& from, const std::string& to, const std::string& attrs = {}) {
    std::string line =
        dotString(from) + " -> " + dotString(to) + (attrs.empty() ? "" : " [" + attrs + "]") + ";";
    if (edge_set_.insert(line).second) edges_.push_back(line);
  }
  int cluster(const std::string& label) {
    clusters_.emplace_back(label, std::vector<std::string>{});
    return static_cast<int>(clusters_.size()) - 1;
  }
  bool drawn(const std::string& id) const { return drawn_.contains(id); }

  void network(int c, const Json& n) {
    std::string id = "network:" + stringAt(n, "id");
    if (drawn(id)) return;
    node(c, id, "shape=ellipse, label=" + dotString(networkLabel(n, "\n")));
    std::string net_id = stringAt(n, "id");
    std::vector<const Json*> ports;
    if (auto it = ix_.ports_of.find(net_id); it != ix_.ports_of.end()) ports = it->second;
    if (auto it = ix_.subnets_of.find(net_id); it != ix_.subnets_of.end()) {
      for (const Json* s : it->second) {
        std::string sid = "subnet:" + stringAt(*s, "id");
        node(c, sid,
             "shape=box, label=" +
                 dotString("subnet " + nameOrId(*s) + "\n" + stringAt(*s, "cidr")));
        edge(id, sid);
        for (const Json* p : ports) {
          auto ips = addressesOf(*p, stringAt(*s, "id"));
          if (!ips.empty()) port(c, sid, *p, ips);
        }
      }
    }
    for (const Json* p : ports) {
      if (addressesOf(*p, "").empty()) port(c, id, *p, {});
    }
  }

  std::string text() const {
    std::string out =
        "digraph canopy {\n  rankdir=LR;\n  node [fontsize=10];\n  edge [fontsize=9];\n";
    for (size_t i = 0; i < clusters_.size(); ++i) {
      out += "  subgraph cluster_" + std::to_string(i) +
             " {\n    label=" + dotString(clusters_[i].first) + ";\n";
      for (const auto& line : clusters_[i].second) out += "    " + line + "\n";
      out += "  }\n";
    }
    for (const auto& line : loose_) out += "  " + line + "\n";
    for (const auto& line : edges_) out += "  " + line + "\n";
    return out + "}\n";
  }

 private:
  void port(int c, const std::string& parent, const Json& p, const std::vector<std::string>& ips) {
    std::string id = "port:" + stringAt(p, "id");
    std::string label = "port " + nameOrId(p);
    if (std::string owner = stringAt(p, "device_owner"); !owner.empty()) label += "\n" + owner;
    if (std::string host = stringAt(p, "binding:host_id"); !host.empty()) label += "\nhost " + host;
    node(c, id, "shape=box, style=rounded, label=" + dotString(label));
    edge(parent, id, ips.empty() ? "" : "label=" + dotString(joined(ips)));
  }

  const Index& ix_;
  std::vector<std::pair<std::string, std::vector<std::string>>> clusters_;
  std::vector<std::string> loose_;
  std::vector<std::string> edges_;
  std::set<std::string> drawn_;
  std::set<std::string> edge_set_;
};

}  // namespace

std::string renderTopologyTree(const TopologyInput& input, const std::string& project) {
  Index ix = indexOf(input);
  std::string out;
  for (const Project& p : projectsOf(input, ix, project)) {
    Node root{p.label};
    for (const Json* r : p.routers) {
      Node& rn = root.children.emplace_back(Node{routerLabel(*r, ix)});
      if (auto it = ix.networks_of_router.find(stringAt(*r, "id"));
          it != ix.networks_of_router.end()) {
        for (const Json* n : it->second) rn.children.push_back(networkNode(*n, ix));
      }
    }
    for (const Json* n : p.networks) root.children.push_back(networkNode(*n, ix));
    renderNode(root, "", true, true, out);
  }
  return out.empty() ? "no routers or networks to show\n" : out;
}

std::string renderTopologyDot(const TopologyInput& input, const std::string& project) {
  Index ix = indexOf(input);
  Dot dot(ix);
  std::vector<std::pair<std::string, const Json*>> gateways;  // router node, its router
  for (const Project& p : projectsOf(input, ix, project)) {
    int c = dot.cluster(p.label);
    for (const Json* r : p.routers) {
      std::string rid = "router:" + stringAt(*r, "id");
      dot.node(c, rid,
               "shape=box, style=bold, label=" +
                   dotString("router " + nameOrId(*r) + "\n" + stringAt(*r, "status")));
      if (auto it = ix.networks_of_router.find(stringAt(*r, "id"));
          it != ix.networks_of_router.end()) {
        for (const Json* n : it->second) {
          dot.network(c, *n);
          std::vector<std::string> ips;
          for (const Json* port : ix.ports_of.find(stringAt(*n, "id"))->second) {
            if (isRouterInterface(*port) && stringAt(*port, "device_id") == stringAt(*r, "id")) {
              for (const auto& ip : addressesOf(*port, "")) ips.push_back(ip);
            }
          }
          dot.edge(rid, "network:" + stringAt(*n, "id"), "label=" + dotString(joined(ips)));
        }
      }
      gateways.emplace_back(rid, r);
    }
    for (const Json* n : p.networks) dot.network(c, *n);
  }
  for (const auto& [rid, r] : gateways) {
    const Json& gw = r->value("external_gateway_info", Json());
    if (!gw.is_object() || !gw.contains("network_id")) continue;
    std::string net = stringAt(gw, "network_id");
    std::string nid = "network:" + net;
    if (!dot.drawn(nid)) {
      auto it = ix.networks.find(net);
      dot.node(-1, nid,
               "shape=ellipse, label=" + dotString(it != ix.networks.end()
                                                       ? networkLabel(*it->second, "\n")
                                                       : "network " + net));
    }
    std::vector<std::string> ips;
    for (const auto& ip : gw.value("external_fixed_ips", Json::array())) {
      ips.push_back(stringAt(ip, "ip_address"));
    }
    dot.edge(rid, nid, "style=dashed, label=" + dotString(joined({"gateway", joined(ips)}, " ")));
  }
  return dot.text();
}

void addTopologyCommand(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand(
      "topology", "Draw projects, routers, networks, subnets and ports as a tree (or Graphviz)");
  struct Args {
    bool dot = false;
    std::string project;
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag("--dot", args->dot, "Graphviz instead of a tree (e.g. | dot -Tsvg > net.svg)");
  cmd->add_option("--project", args->project, "only this project (id, or name if known)");
  std::ostream& out = ctx.out;
  onRun(*cmd, ctx, [args, &out](Client& client) -> Result<void> {
    TopologyInput in;
    struct Source {
      const Collection* collection;
      std::vector<Json>* into;
    };
    for (auto [collection, into] :
         {Source{&kNetworks, &in.networks}, Source{&kSubnets, &in.subnets},
          Source{&kPorts, &in.ports}, Source{&kRouters, &in.routers},
          Source{&kFloatingIps, &in.floating_ips}}) {
      auto items = client.list(*collection);
      if (!items) return items.error();
      *into = std::move(*items);
    }
    for (auto& [id, name] : client.projectNames()) in.project_names[id] = name;
    out << (args->dot ? renderTopologyDot(in, args->project)
                      : renderTopologyTree(in, args->project));
    return ok();
  });
}

}  // namespace canopy::cli
