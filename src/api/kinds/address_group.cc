// Address groups (Neutron's address-group): sets of CIDRs that security
// group rules name as remote_address_group_id. The southbound expands such
// a rule into one rule per CIDR of the rule's IP version, so that the
// datapath enforces it as it does remote_ip_prefix.

#include "api/detail/rbac.h"
#include "api/kind.h"
#include "base/ip.h"
#include "model/security_group.h"

namespace canopy::api {
namespace {

constexpr Extension kAddressGroupExtensions[] = {
    {"address-group", "Address group", "Support address group"},
    {"security-groups-remote-address-group",
     "Remote address group id field for security group rules",
     "Add new field of remote address group id in security group rules"},
    {"rbac-address-group", "Add address_group type to RBAC",
     "Add address_group type to network RBAC"},
};

Json joined(const Json& addresses) {
  std::string out = "[";
  for (const auto& a : addresses) {
    if (out.size() > 1) out += ", ";
    out += "'" + a.get<std::string>() + "'";
  }
  return out + "]";
}

class AddressGroupKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return model::addressGroupSpec(); }
  std::span<const Extension> extensions() const override { return kAddressGroupExtensions; }

  bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const override {
    return detail::ownedOrShared(doc, caller, tables);
  }

  // Neutron does not show "shared" on an address group, so a project it is
  // shared with cannot read what it would change: not found.
  Access access(const Json& doc, const Caller& caller, const state::Tables& tables,
                std::string_view verb) const override {
    auto a = ResourceKind::access(doc, caller, tables, verb);
    return a == Access::Refused ? Access::Hidden : a;
  }

  Result<void> create(Json& doc, Transaction&) const override {
    doc["addresses"] = model::normalizeAddresses(doc["addresses"]);
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (!ctx.tables().lookup("security-group-rules.remote_address_group", id).empty()) {
      return Error(Errc::Conflict,
                   "Address group " + id + " is in use on one or more security group rules.",
                   "AddressGroupInUse");
    }
    detail::removePolicies(ctx, id);
    return ok();
  }

  bool hasAction(std::string_view name) const override {
    return name == "add_addresses" || name == "remove_addresses";
  }

  // PUT .../add_addresses and .../remove_addresses: {"addresses": [...]},
  // answered with the whole group.
  Result<Json> action(std::string_view name, const Json& body, const state::Document& current,
                      Transaction& ctx) const override {
    const Json* given =
        body.is_object() && body.contains("addresses") ? &body["addresses"] : nullptr;
    if (given == nullptr || !given->is_array()) {
      return model::badRequest("Request body contains invalid data");
    }
    // As Neutron reads them here: an address alone is its /32 or /128.
    Json requested = Json::array();
    for (const auto& a : *given) {
      std::string text = a.is_string() ? a.get<std::string>() : a.dump();
      Result<IpPrefix> prefix = IpPrefix::parse(text);
      if (!prefix) {
        auto ip = IpAddress::parse(text);
        if (!ip) return model::invalidInput("addresses", "'" + text + "' is not a valid IP subnet");
        prefix = IpPrefix{*ip, static_cast<uint8_t>(ip->isV4() ? 32 : 128)};
      }
      requested.push_back(prefix->toString());
    }
    requested = model::normalizeAddresses(requested);
    Json doc = current.doc;
    std::string id = doc.value("id", "");
    Json present = Json::array(), absent = Json::array();
    for (const auto& a : requested) {
      const Json& have = doc["addresses"];
      (std::find(have.begin(), have.end(), a) != have.end() ? present : absent).push_back(a);
    }
    if (name == "add_addresses") {
      if (!present.empty()) {
        return Error(Errc::InvalidArgument,
                     "Addresses " + joined(present).get<std::string>() +
                         " already exist in the address group " + id + ".",
                     "AddressesAlreadyExist");
      }
      for (const auto& a : absent) doc["addresses"].push_back(a);
    } else {
      if (!absent.empty()) {
        return Error(Errc::NotFound,
                     "Addresses " + joined(absent).get<std::string>() +
                         " not found in the address group " + id + ".",
                     "AddressesNotFound");
      }
      Json kept = Json::array();
      for (const auto& a : doc["addresses"]) {
        if (std::find(present.begin(), present.end(), a) == present.end()) kept.push_back(a);
      }
      doc["addresses"] = std::move(kept);
    }
    doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
    doc["updated_at"] = ctx.now();
    ctx.guard("address-groups", id, current.mod_revision);
    ctx.put("address-groups", id, doc);
    return Json{{"address_group", model::visibleView(spec(), doc, ctx.caller())}};
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeAddressGroupKind(const model::NetworkConfig&) {
  return std::make_unique<AddressGroupKind>();
}

}  // namespace canopy::api
