#pragma once
// The model's documents in memory: collection -> id -> document with the
// store revision that last wrote it, plus secondary indexes declared up
// front ("ports by network", "addresses in use") and kept in step with
// every put and erase. ModelState owns one and applies the watch to it;
// readers get it const.
//
//   const Document* port = tables.find("ports", id);         // nullptr if absent
//   for (const auto& [id, d] : tables.collection("routers")) ...
//   for (const auto& id : tables.lookup("ports.network", network_id)) ...
//
// Thread-safety: none; ModelState guards it with its lock.

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "model/json.h"
#include "store/store.h"

namespace canopy::state {

using model::Json;

// A router gateway port's standby hosts, in order (gateway high
// availability): a list of host names the leader keeps in the port's
// document, not shown by the API.
inline constexpr const char* kStandbyHosts = "canopy:standby_hosts";
// Distributed SNAT: a router gateway port's ports of its first address,
// leased by the leader: {"central": [first, last], "hosts": {name: [first,
// last]}}, not shown by the API.
inline constexpr const char* kSnatLeases = "canopy:snat_leases";

// What readers derive from one version of a document and keep beside it (the
// API's serialised views), so that it is computed once per version. A new
// version of the document starts with an empty memo.
struct DocumentMemo {
  std::mutex mu;
  std::string text[2];  // by slot, e.g. [is_admin]
  bool ready[2] = {false, false};
};

struct Document {
  Json doc;
  store::Revision mod_revision = 0;
  std::shared_ptr<DocumentMemo> memo = std::make_shared<DocumentMemo>();
};

// id -> document
using Collection = std::map<std::string, Document, std::less<>>;

// A secondary index: every document of `collection` is filed under each key
// that `keys` returns for it ("ports by network", "addresses in use").
struct IndexSpec {
  std::string name;
  std::string collection;
  std::function<std::vector<std::string>(const Json&)> keys;
};

// The indexes the API and IPAM rely on:
//   subnets.network  subnet  -> its network_id
//   subnets.subnetpool          subnet -> the pool it was allocated from
//   subnetpools.address_scope   pool -> its address scope
//   rbac-policies.object        policy -> the object it shares
//   ports.network    port    -> its network_id
//   ports.router_network  a router's port -> its network_id
//   ports.device     port    -> its device_id
//   ports.host       port    -> its binding:host_id
//   ports.subnet     port    -> each subnet_id of its fixed_ips
//   ports.address    port    -> "<network_id> <ip>" for each fixed IP
//   ports.mac        port    -> "<network_id> <mac>"
//   ports.security_group               port -> each of its security groups
//   security-groups.default            a project's default group -> project_id
//   security-group-rules.group         rule -> security_group_id
//   security-group-rules.remote_group  rule -> remote_group_id
//   security-group-rules.remote_address_group  rule -> remote_address_group_id
//   <collection>.project               a quota-counted document -> project_id
std::vector<IndexSpec> defaultIndexes();

class Tables {
 public:
  using Ids = std::set<std::string, std::less<>>;
  using Collections = std::map<std::string, Collection, std::less<>>;

  explicit Tables(std::shared_ptr<const std::vector<IndexSpec>> specs = nullptr);

  // The document, or nullptr.
  const Document* find(std::string_view collection, std::string_view id) const;
  // Every document of a collection (empty if it has none).
  const Collection& collection(std::string_view name) const;
  const Collections& collections() const { return collections_; }
  // The ids filed under `key` in index `index` (empty if none).
  const Ids& lookup(std::string_view index, std::string_view key) const;
  // The declared index of that name, or nullptr.
  const IndexSpec* indexSpec(std::string_view name) const;

  void put(std::string_view collection, std::string_view id, Document doc);
  void erase(std::string_view collection, std::string_view id);

 private:
  std::shared_ptr<const std::vector<IndexSpec>> specs_;
  Collections collections_;
  // index name -> key -> ids
  std::map<std::string, std::map<std::string, Ids, std::less<>>, std::less<>> indexes_;
};

inline constexpr std::string_view kPrefix = "/canopy/v1/";

// "/canopy/v1/<collection>/<id>": where a document lives in the store.
std::string documentKey(std::string_view collection, std::string_view id);

// The "networks.segment" index's key: "<type> <physical network> <id>".
std::string segmentKey(std::string_view type, std::string_view physical_network,
                       int64_t segmentation_id);

}  // namespace canopy::state
