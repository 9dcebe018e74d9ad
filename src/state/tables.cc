#include "state/tables.h"

#include <algorithm>

#include "model/quota.h"

namespace canopy::state {

Tables::Tables(std::shared_ptr<const std::vector<IndexSpec>> specs) : specs_(std::move(specs)) {}

const Document* Tables::find(std::string_view collection, std::string_view id) const {
  auto c = collections_.find(collection);
  if (c == collections_.end()) return nullptr;
  auto d = c->second.find(id);
  return d == c->second.end() ? nullptr : &d->second;
}

const Collection& Tables::collection(std::string_view name) const {
  static const Collection kEmpty;
  auto c = collections_.find(name);
  return c == collections_.end() ? kEmpty : c->second;
}

const Tables::Ids& Tables::lookup(std::string_view index, std::string_view key) const {
  static const Ids kEmpty;
  auto i = indexes_.find(index);
  if (i == indexes_.end()) return kEmpty;
  auto k = i->second.find(key);
  return k == i->second.end() ? kEmpty : k->second;
}

const IndexSpec* Tables::indexSpec(std::string_view name) const {
  if (specs_ == nullptr) return nullptr;
  for (const auto& spec : *specs_) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

void Tables::erase(std::string_view collection, std::string_view id) {
  auto t = collections_.find(collection);
  if (t == collections_.end()) return;
  auto d = t->second.find(id);
  if (d == t->second.end()) return;
  if (specs_ != nullptr) {
    for (const auto& spec : *specs_) {
      if (spec.collection != collection) continue;
      auto& index = indexes_[spec.name];
      for (const auto& key : spec.keys(d->second.doc)) {
        auto k = index.find(key);
        if (k == index.end()) continue;
        k->second.erase(std::string(id));
        if (k->second.empty()) index.erase(k);
      }
    }
  }
  t->second.erase(d);
  if (t->second.empty()) collections_.erase(t);
}

void Tables::put(std::string_view collection, std::string_view id, Document doc) {
  erase(collection, id);
  if (specs_ != nullptr) {
    for (const auto& spec : *specs_) {
      if (spec.collection != collection) continue;
      auto& index = indexes_[spec.name];
      for (auto& key : spec.keys(doc.doc)) index[key].insert(std::string(id));
    }
  }
  auto c = collections_.find(collection);
  if (c == collections_.end())
    c = collections_.emplace(std::string(collection), Collection{}).first;
  c->second.insert_or_assign(std::string(id), std::move(doc));
}

std::vector<IndexSpec> defaultIndexes() {
  auto field = [](const char* name) {
    return [name](const Json& d) {
      std::vector<std::string> keys;
      if (auto it = d.find(name); it != d.end() && it->is_string()) keys.push_back(*it);
      return keys;
    };
  };
  auto fixedIps = [](const char* name, bool with_network) {
    return [name, with_network](const Json& d) {
      std::vector<std::string> keys;
      auto ips = d.find("fixed_ips");
      if (ips == d.end() || !ips->is_array()) return keys;
      for (const auto& f : *ips) {
        std::string v = f.value(name, "");
        keys.push_back(with_network ? d.value("network_id", "") + " " + v : v);
      }
      return keys;
    };
  };
  std::vector<IndexSpec> specs = {
      {"subnets.network", "subnets", field("network_id")},
      {"segments.network", "segments", field("network_id")},
      {"local-ips.port", "local-ips", field("local_port_id")},
      {"local-ip-associations.local_ip", "local-ip-associations", field("local_ip_id")},
      {"local-ip-associations.port", "local-ip-associations", field("fixed_port_id")},
      {"subnets.subnetpool", "subnets", field("subnetpool_id")},
      {"subnetpools.address_scope", "subnetpools", field("address_scope_id")},
      {"rbac-policies.object", "rbac-policies", field("object_id")},
      {"ports.device", "ports", field("device_id")},
      {"ports.host", "ports", field("binding:host_id")},
      // A router gateway's standby hosts (gateway high availability).
      {"ports.standby_host", "ports",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto hosts = d.find(kStandbyHosts);
         if (hosts == d.end() || !hosts->is_array()) return keys;
         for (const auto& h : *hosts) {
           if (h.is_string()) keys.push_back(h);
         }
         return keys;
       }},
      {"floatingips.port", "floatingips", field("port_id")},
      {"floatingips.router", "floatingips", field("router_id")},
      {"lbaas-listeners.loadbalancer", "lbaas-listeners", field("loadbalancer_id")},
      {"lbaas-pools.loadbalancer", "lbaas-pools", field("loadbalancer_id")},
      {"lbaas-members.pool", "lbaas-members", field("pool_id")},
      {"lbaas-members.address", "lbaas-members", field("address")},
      {"lbaas-healthmonitors.pool", "lbaas-healthmonitors", field("pool_id")},
      {"metering-label-rules.label", "metering-label-rules", field("metering_label_id")},
      {"metering-labels.project", "metering-labels", field("project_id")},
      {"qos-policies.default", "qos-policies",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto is_default = d.find("is_default");
         if (is_default != d.end() && is_default->is_boolean() && is_default->get<bool>()) {
           auto project = d.find("project_id");
           if (project != d.end() && project->is_string()) keys.push_back(*project);
         }
         return keys;
       }},
      {"networks.qos_policy", "networks", field("qos_policy_id")},
      {"trunks.port", "trunks", field("port_id")},
      {"logs.resource", "logs", field("resource_id")},
      {"logs.target", "logs", field("target_id")},
      // Logs of every port of their project (no group, no port named).
      {"logs.project_wide", "logs",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto group = d.find("resource_id"), port = d.find("target_id");
         auto project = d.find("project_id");
         if ((group == d.end() || group->is_null()) && (port == d.end() || port->is_null()) &&
             project != d.end() && project->is_string()) {
           keys.push_back(*project);
         }
         return keys;
       }},
      // The ports a floating IP's port forwardings go to.
      {"floatingips.forwarded_port", "floatingips",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto pfs = d.find("port_forwardings");
         if (pfs == d.end() || !pfs->is_array()) return keys;
         for (const auto& pf : *pfs) {
           auto port = pf.is_object() ? pf.find("internal_port_id") : pf.end();
           if (pf.is_object() && port != pf.end() && port->is_string()) keys.push_back(*port);
         }
         std::sort(keys.begin(), keys.end());
         keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
         return keys;
       }},
      {"trunks.subport", "trunks",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto subs = d.find("sub_ports");
         if (subs == d.end() || !subs->is_array()) return keys;
         for (const auto& s : *subs) {
           auto port = s.is_object() ? s.find("port_id") : s.end();
           if (s.is_object() && port != s.end() && port->is_string()) keys.push_back(*port);
         }
         return keys;
       }},
      {"ports.qos_policy", "ports", field("qos_policy_id")},
      {"metering-labels.shared", "metering-labels",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto shared = d.find("shared");
         if (shared != d.end() && shared->is_boolean() && shared->get<bool>()) keys.push_back("");
         return keys;
       }},
      {"networks.segment", "networks",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto type = d.find("provider:network_type");
         if (type == d.end() || !type->is_string()) return keys;
         auto physnet = d.find("provider:physical_network");
         auto id = d.find("provider:segmentation_id");
         keys.push_back(
             segmentKey(type->get_ref<const std::string&>(),
                        physnet != d.end() && physnet->is_string() ? std::string(*physnet) : "",
                        id != d.end() && id->is_number_integer() ? id->get<int64_t>() : 0));
         return keys;
       }},
      {"ports.network", "ports", field("network_id")},
      {"ports.router_network", "ports",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto owner = d.find("device_owner");
         auto net = d.find("network_id");
         if (owner != d.end() && owner->is_string() &&
             owner->get_ref<const std::string&>().rfind("network:router_", 0) == 0 &&
             net != d.end() && net->is_string()) {
           keys.push_back(*net);
         }
         return keys;
       }},
      {"ports.subnet", "ports", fixedIps("subnet_id", false)},
      {"ports.address", "ports", fixedIps("ip_address", true)},
      {"security-group-rules.group", "security-group-rules", field("security_group_id")},
      {"security-group-rules.remote_group", "security-group-rules", field("remote_group_id")},
      {"security-group-rules.remote_address_group", "security-group-rules",
       field("remote_address_group_id")},
      {"security-groups.default", "security-groups",
       [](const Json& d) {
         std::vector<std::string> keys;
         if (d.value("canopy:default", false)) keys.push_back(d.value("project_id", ""));
         return keys;
       }},
      {"ports.security_group", "ports",
       [](const Json& d) {
         std::vector<std::string> keys;
         auto groups = d.find("security_groups");
         if (groups == d.end() || !groups->is_array()) return keys;
         for (const auto& g : *groups) {
           if (g.is_string()) keys.push_back(g);
         }
         return keys;
       }},
      {"ports.mac", "ports",
       [](const Json& d) {
         return std::vector<std::string>{d.value("network_id", "") + " " +
                                         d.value("mac_address", "")};
       }},
  };
  // Resources counted against quotas, by project.
  for (const auto& quota : model::quotaResources()) {
    specs.push_back({quota.collection + ".project", quota.collection, field("project_id")});
  }
  return specs;
}

std::string segmentKey(std::string_view type, std::string_view physical_network,
                       int64_t segmentation_id) {
  std::string key(type);
  key += ' ';
  key += physical_network;
  key += ' ';
  key += std::to_string(segmentation_id);
  return key;
}

std::string documentKey(std::string_view collection, std::string_view id) {
  std::string key(kPrefix);
  key += collection;
  key += '/';
  key += id;
  return key;
}

}  // namespace canopy::state
