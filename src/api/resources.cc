#include "api/resources.h"

#include <algorithm>

#include "model/subnet.h"

namespace canopy::api {
namespace {

using model::badRequest;

class NetworkKind final : public ResourceKind {
 public:
  explicit NetworkKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return model::networkSpec(); }

  bool visible(const Json& doc, const Caller& caller) const override {
    return ResourceKind::visible(doc, caller) || doc.value("shared", false) ||
           doc.value("router:external", false);
  }

  void present(Json& view, const Json& doc, const state::Tables& tables) const override {
    Json subnets = Json::array();
    if (auto t = tables.find("subnets"); t != tables.end()) {
      for (const auto& [id, d] : t->second) {
        if (d.doc.value("network_id", "") == doc.value("id", "")) subnets.push_back(id);
      }
    }
    view["subnets"] = std::move(subnets);
  }

  Result<void> create(Json& doc, WriteContext&) const override {
    doc["status"] = "ACTIVE";
    if (doc["mtu"].is_null()) doc["mtu"] = model::defaultMtu(config_);
    return ok();
  }

  Result<void> update(Json& doc, const Json&, WriteContext&) const override {
    if (doc["mtu"].is_null()) doc["mtu"] = model::defaultMtu(config_);
    return ok();
  }

  // Subnets go with their network (Neutron deletes them when no port uses them).
  Result<void> remove(const Json& doc, WriteContext& ctx) const override {
    std::string id = doc.value("id", "");
    if (auto t = ctx.tables().find("subnets"); t != ctx.tables().end()) {
      for (const auto& [sid, d] : t->second) {
        if (d.doc.value("network_id", "") != id) continue;
        ctx.guard("subnets", sid, d.mod_revision);
        ctx.remove("subnets", sid);
      }
    }
    return ok();
  }

 private:
  model::NetworkConfig config_;
};

class SubnetKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::subnetSpec(); }

  Result<void> create(Json& doc, WriteContext& ctx) const override {
    std::string network_id = doc.value("network_id", "");
    const state::Document* network = ctx.find("networks", network_id);
    // Neutron: a subnet goes on a network the caller owns (or any, for an admin).
    if (network == nullptr || !(ctx.caller().is_admin ||
                                network->doc.value("project_id", "") == ctx.caller().project_id)) {
      return notFound(model::networkSpec(), network_id);
    }
    std::vector<model::Cidr> siblings;
    for (const Json* other : ctx.all("subnets")) {
      if (other->value("network_id", "") != network_id) continue;
      if (auto c = model::Cidr::parse(other->value("cidr", ""))) siblings.push_back(*c);
    }
    if (auto r = model::completeNewSubnet(doc, siblings); !r) return r;
    ctx.touch("networks", network_id);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, WriteContext& ctx) const override {
    if (doc["gateway_ip"] == "auto") doc["gateway_ip"] = before["gateway_ip"];
    if (doc["allocation_pools"].is_null()) doc["allocation_pools"] = before["allocation_pools"];
    if (auto r = model::checkSubnetAddressing(doc); !r) return r;
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }

  Result<void> remove(const Json& doc, WriteContext& ctx) const override {
    ctx.touch("networks", doc.value("network_id", ""));
    return ok();
  }
};

}  // namespace

Error notFound(const model::ResourceSpec& spec, std::string_view id) {
  return Error(Errc::NotFound, spec.type_name + " " + std::string(id) + " could not be found.",
               spec.type_name + "NotFound");
}

bool ResourceKind::visible(const Json& doc, const Caller& caller) const {
  return caller.is_admin || doc.value("project_id", "") == caller.project_id;
}

const state::Document* WriteContext::find(std::string_view collection, std::string_view id) const {
  auto t = tables_.find(collection);
  if (t == tables_.end()) return nullptr;
  auto d = t->second.find(id);
  return d == t->second.end() ? nullptr : &d->second;
}

std::vector<const Json*> WriteContext::all(std::string_view collection) const {
  std::vector<const Json*> out;
  if (auto t = tables_.find(collection); t != tables_.end()) {
    for (const auto& [id, d] : t->second) out.push_back(&d.doc);
  }
  if (auto p = pending_.find(std::string(collection)); p != pending_.end()) {
    for (const auto& [id, doc] : p->second) out.push_back(&doc);
  }
  return out;
}

void WriteContext::guard(std::string_view collection, const std::string& id,
                         store::Revision mod_revision) {
  std::string key = state::documentKey(collection, id);
  for (const auto& c : compares_) {
    if (c.key == key) return;
  }
  compares_.push_back(store::Compare::modRevisionIs(key, store::Compare::Op::Equal, mod_revision));
}

void WriteContext::guardAbsent(std::string_view collection, const std::string& id) {
  compares_.push_back(store::Compare::absent(state::documentKey(collection, id)));
}

void WriteContext::put(std::string_view collection, const std::string& id, const Json& doc) {
  std::string key = state::documentKey(collection, id);
  writes_.insert_or_assign(key, store::Op::put(key, doc.dump()));
  pending_[std::string(collection)][id] = doc;
}

void WriteContext::remove(std::string_view collection, const std::string& id) {
  std::string key = state::documentKey(collection, id);
  writes_.insert_or_assign(key, store::Op::del(key));
}

void WriteContext::touch(std::string_view collection, const std::string& id) {
  const state::Document* d = find(collection, id);
  if (d == nullptr) return;
  std::string key = state::documentKey(collection, id);
  if (writes_.count(key) != 0) return;  // already written by this request
  guard(collection, id, d->mod_revision);
  Json doc = d->doc;
  doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
  doc["updated_at"] = now_;
  writes_.insert_or_assign(key, store::Op::put(key, doc.dump()));
}

std::vector<store::Op> WriteContext::ops() const {
  std::vector<store::Op> out;
  out.reserve(writes_.size());
  for (const auto& [key, op] : writes_) out.push_back(op);
  return out;
}

std::vector<std::unique_ptr<ResourceKind>> makeResourceKinds(const model::NetworkConfig& config) {
  std::vector<std::unique_ptr<ResourceKind>> kinds;
  kinds.push_back(std::make_unique<NetworkKind>(config));
  kinds.push_back(std::make_unique<SubnetKind>());
  return kinds;
}

}  // namespace canopy::api
