// Address scopes: the sets of subnet pools whose prefixes are unique
// together (Neutron's address-scope). Canopy routes between scopes as
// within one: the scope is bookkeeping for the pools and the networks'
// ipv4_address_scope/ipv6_address_scope, not a routing boundary.

#include "api/detail/rbac.h"
#include "api/kind.h"
#include "model/subnet_pool.h"

namespace canopy::api {
namespace {

constexpr Extension kAddressScopeExtensions[] = {
    {"address-scope", "Address scope", "Address scopes extension."},
    {"rbac-address-scope", "Add address_scope type to RBAC", "Add address_scope type to RBAC"},
};

class AddressScopeKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::addressScopeSpec(); }
  std::span<const Extension> extensions() const override { return kAddressScopeExtensions; }

  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables);
  }

  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller& caller) const override {
    view["shared"] = detail::sharedWith(doc, caller.project_id, tables);
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (doc.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "address_scope", doc, detail::kAccessShared);
    }
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    if (before.value("shared", false) && !doc.value("shared", false)) {
      return Error(Errc::InvalidArgument,
                   "Unable to update address scope " + doc.value("id", "") +
                       " : Shared address scope can't be unshared.",
                   "AddressScopeUpdateError");
    }
    if (doc.value("shared", false)) {
      detail::addWildcardPolicy(ctx, "address_scope", doc, detail::kAccessShared);
    }
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.tables().lookup("subnetpools.address_scope", id).empty()) {
      return Error(Errc::Conflict,
                   "Unable to complete operation on address scope " + id +
                       ". There are one or more subnet pools in use on the address scope.",
                   "AddressScopeInUse");
    }
    detail::removePolicies(ctx, id);
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeAddressScopeKind(const model::NetworkConfig&) {
  return std::make_unique<AddressScopeKind>();
}

}  // namespace canopy::api
