// Subnet pools: prefixes subnets are allocated from (Neutron's
// subnet_allocation, default-subnetpools, subnetpool-prefix-ops). The
// allocation itself is subnet.cc's; a pool checks its own fields, its
// address scope, one default per IP version, and what its subnets hold.

#include "model/subnet_pool.h"

#include "api/detail/rbac.h"
#include "api/detail/subnet_pools.h"
#include "api/kind.h"

namespace canopy::api {
namespace {

constexpr Extension kSubnetPoolExtensions[] = {
    {"subnet_allocation", "Subnet Allocation", "Enables allocation of subnets from a subnet pool"},
    {"default-subnetpools", "Default Subnetpools",
     "Provides ability to mark and use a subnetpool as the default."},
    {"subnetpool-prefix-ops", "Subnet Pool Prefix Operations",
     "Provides support for adjusting the prefix list of subnet pools"},
    {"rbac-subnetpool", "Add subnetpool type to RBAC", "Add subnetpool type to RBAC"},
};

Error illegalPrefixUpdate(const std::string& reason) {
  return Error(Errc::InvalidArgument, "Illegal update to prefixes: " + reason,
               "IllegalSubnetPoolPrefixUpdate");
}

class SubnetPoolKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::subnetPoolSpec(); }
  std::span<const Extension> extensions() const override { return kSubnetPoolExtensions; }

  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables);
  }

  // As Neutron shows them: prefix lengths as strings, "shared" as the
  // caller sees it.
  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& caller) const override {
    for (const char* k : {"default_prefixlen", "min_prefixlen", "max_prefixlen"}) {
      if (view[k].is_number_integer()) view[k] = std::to_string(view[k].get<int64_t>());
    }
    view["shared"] = detail::sharedWith(doc, caller.project_id, tables);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (auto r = model::completeSubnetPool(doc); !r) return r;
    if (doc.value("is_default", false)) {
      if (auto r = checkOneDefault(doc, ctx); !r) return r;
    }
    if (auto r = detail::checkPoolScope(doc, ctx); !r) return r;
    if (doc.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "subnetpool", doc, detail::kAccessShared);
    }
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (!model::poolPrefixes(doc).contains(model::poolPrefixes(before))) {
      return illegalPrefixUpdate("Existing prefixes must be a subset of the new prefixes.");
    }
    return checkUpdate(doc, before, ctx);
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.tables().lookup("subnets.subnetpool", id).empty()) {
      return Error(Errc::InvalidArgument,
                   "Unable to delete subnet pool: Subnet pool has existing allocations.",
                   "SubnetPoolDeleteError");
    }
    detail::removePolicies(ctx, id);
    return ok();
  }

  bool hasAction(std::string_view name) const override {
    return name == "add_prefixes" || name == "remove_prefixes";
  }

  // PUT .../add_prefixes and .../remove_prefixes: {"prefixes": [...]},
  // answered with the pool's prefixes after the change.
  Result<Json> action(std::string_view name, const Json& body, const state::Document& current,
                      Transaction& ctx) const override {
    auto it = body.is_object() ? body.find("prefixes") : body.end();
    const Json* given = body.is_object() && it != body.end() ? &*it : nullptr;
    if (given == nullptr || !given->is_array() || given->empty()) {
      return model::badRequest("Request body contains invalid data");
    }
    for (const auto& p : *given) {
      auto prefix = p.is_string() ? IpPrefix::parse(p.get<std::string>())
                                  : Result<IpPrefix>(model::badRequest(""));
      if (!prefix) {
        return model::badRequest("Invalid input for prefixes. Reason: '" +
                                 (p.is_string() ? p.get<std::string>() : p.dump()) +
                                 "' is not a valid IP subnet");
      }
    }
    const Json& before = current.doc;
    Json doc = before;
    std::string id = before.value("id", "");
    if (name == "add_prefixes") {
      for (const auto& p : *given) doc["prefixes"].push_back(p);
      if (auto r = checkUpdate(doc, before, ctx); !r) return std::move(r).error();
    } else {
      IpSet removed(static_cast<int>(before.value("ip_version", int64_t{4})));
      for (const auto& p : *given) {
        auto prefix = *IpPrefix::parse(p.get<std::string>());
        removed.add(IpPrefix{prefix.first(), prefix.length});
      }
      IpSet left = model::poolPrefixes(before);
      if (!left.intersects(removed)) return Json{{"prefixes", model::memberAt(before, "prefixes")}};
      for (const Json* s : ctx.indexed("subnets.subnetpool", "subnets", id)) {
        auto cidr = IpPrefix::parse(s->value("cidr", ""));
        if (cidr && removed.intersects(*cidr)) {
          return illegalPrefixUpdate(
              "One or more the prefixes to be removed is in use by a subnet.");
        }
      }
      left.remove(removed);
      Json prefixes = Json::array();
      for (const auto& p : left.cidrs()) prefixes.push_back(p.toString());
      doc["prefixes"] = std::move(prefixes);
    }
    doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
    doc["updated_at"] = ctx.now();
    ctx.guard("subnetpools", id, current.mod_revision);
    ctx.put("subnetpools", id, doc);
    return Json{{"prefixes", doc["prefixes"]}};
  }

 private:
  // One default pool per IP version among those the caller sees.
  static Result<void> checkOneDefault(const Json& doc, const Transaction& ctx) {
    for (const auto& [id, p] : ctx.tables().collection("subnetpools")) {
      if (id == doc.value("id", "") || !p.doc.value("is_default", false) ||
          p.doc["ip_version"] != doc["ip_version"] ||
          !detail::ownedOrShared(p.doc, ctx.caller(), ctx.tables())) {
        continue;
      }
      return model::badRequest(
          "Invalid input for operation: A default subnetpool for this IP family has already been "
          "set. Only one default may exist per IP family.");
    }
    return ok();
  }

  static Result<void> checkUpdate(Json& doc, const Json& before, Transaction& ctx) {
    if (auto r = model::completeSubnetPool(doc); !r) return r;
    if (doc.value("is_default", false) && !before.value("is_default", false)) {
      if (auto r = checkOneDefault(doc, ctx); !r) return r;
    }
    // A member may not change a pool in another project's address scope.
    const Json& scope_id = model::memberAt(before, "address_scope_id");
    if (scope_id.is_string() && !ctx.caller().is_admin) {
      const Json* scope = ctx.current("address-scopes", scope_id.get<std::string>());
      if (scope == nullptr || scope->value("project_id", "") != ctx.caller().project_id) {
        return Error(Errc::InvalidArgument,
                     "Illegal subnetpool update : subnetpool " + doc.value("id", "") +
                         " cannot be updated when associated with shared address scope " +
                         scope_id.get<std::string>() + ".",
                     "IllegalSubnetPoolUpdate");
      }
    }
    return detail::checkPoolScope(doc, ctx);
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeSubnetPoolKind(const model::NetworkConfig&) {
  return std::make_unique<SubnetPoolKind>();
}

}  // namespace canopy::api
