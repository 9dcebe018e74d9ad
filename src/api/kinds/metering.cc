// Metering (Neutron's metering and metering_source_and_destination_fields):
// labels, each with rules, that count the traffic crossing routers' external
// gateways. A label counts on every router of its project, or of every
// project when shared; a packet counts for a label when one of its rules of
// the packet's direction matches and none of its excluded ones does
// (docs/DATAPATH.md, "Metering"). Admin only, as Neutron's policy.

#include "api/kind.h"
#include "base/ip.h"

namespace canopy::api {
namespace {

using model::AttrType;

constexpr Extension kMeteringExtensions[] = {
    {"metering", "Neutron Metering", "Neutron Metering extension."},
    {"metering_source_and_destination_fields",
     "Neutron Metering with source and destination filtering",
     "Neutron Metering extension that enables the use of source and destination IP prefixes."},
};

void addOwner(std::vector<model::AttrSpec>& a) {
  a.push_back({.name = "project_id", .allow_post = true, .default_value = Json("")});
  a.push_back({.name = "tenant_id", .allow_post = true, .default_value = Json("")});
}

// Neutron's type:subnet (host bits allowed, as netaddr keeps them).
std::optional<std::string> checkPrefix(const Json& v) {
  if (v.is_null()) return std::nullopt;
  std::string text = v.is_string() ? v.get<std::string>() : v.dump();
  if (v.is_string() && text.find('/') != std::string::npos && IpPrefix::parse(text)) {
    return std::nullopt;
  }
  return "'" + text + "' is not a valid IP subnet";
}

const model::ResourceSpec& labelSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "metering-labels",
                          .member = "metering_label",
                          .plural = "metering_labels",
                          .type_name = "MeteringLabel"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "name", .allow_post = true, .default_value = Json("")});
    a.push_back(
        {.name = "description", .allow_post = true, .default_value = Json(""), .max_len = 1024});
    addOwner(a);
    a.push_back({.name = "shared",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .default_value = Json(false)});
    return s;
  }();
  return spec;
}

const model::ResourceSpec& ruleSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "metering-label-rules",
                          .member = "metering_label_rule",
                          .plural = "metering_label_rules",
                          .type_name = "MeteringLabelRule"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "metering_label_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "direction",
                 .allow_post = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v == "ingress" || v == "egress") return std::nullopt;
                   return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
                          "' is not in ['ingress', 'egress']";
                 }});
    a.push_back({.name = "excluded",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .default_value = Json(false)});
    for (const char* prefix : {"remote_ip_prefix", "source_ip_prefix", "destination_ip_prefix"}) {
      a.push_back({.name = prefix,
                   .type = AttrType::Any,
                   .allow_post = true,
                   .default_value = Json(nullptr),
                   .nullable = true,
                   .check = checkPrefix});
    }
    addOwner(a);
    return s;
  }();
  return spec;
}

Error labelNotFound(const std::string& id) {
  return Error(Errc::NotFound, "Metering label " + id + " does not exist", "MeteringLabelNotFound");
}

class MeteringLabelKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return labelSpec(); }
  std::span<const Extension> extensions() const override { return kMeteringExtensions; }

  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

  Result<void> create(Json&, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_metering_label) is disallowed by policy");
    }
    return ok();
  }

  // Its rules go with it.
  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    for (const auto& id : ctx.tables().lookup("metering-label-rules.label", doc.value("id", ""))) {
      if (const state::Document* d = ctx.find("metering-label-rules", id)) {
        ctx.guard("metering-label-rules", id, d->mod_revision);
        ctx.remove("metering-label-rules", id);
      }
    }
    return ok();
  }
};

class MeteringLabelRuleKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return ruleSpec(); }

  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_metering_label_rule) is disallowed by policy");
    }
    std::string label = doc.value("metering_label_id", "");
    if (ctx.current("metering-labels", label) == nullptr) return labelNotFound(label);
    const bool remote = !doc["remote_ip_prefix"].is_null();
    const bool filters =
        !doc["source_ip_prefix"].is_null() || !doc["destination_ip_prefix"].is_null();
    if (!remote && !filters) {
      return model::badRequest(
          "Bad metering_label_rule request: You must define at least one of the following "
          "parameters 'remote_ip_prefix', or 'source_ip_prefix' or 'destination_ip_prefix'.");
    }
    if (remote && filters) {
      return model::badRequest(
          "Bad metering_label_rule request: Cannot use 'remote-ip-prefix' in conjunction with "
          "'source-ip-prefix' or 'destination-ip-prefix'.");
    }
    if (!remote) return ok();
    // Neutron's check: no two remote prefixes of a label, direction and
    // exclusion overlap.
    auto mine = IpPrefix::parse(doc.value("remote_ip_prefix", ""));
    for (const Json* other :
         ctx.indexed("metering-label-rules.label", "metering-label-rules", label)) {
      if (other->value("direction", "") != doc.value("direction", "") ||
          other->value("excluded", false) != doc.value("excluded", false) ||
          !(*other)["remote_ip_prefix"].is_string()) {
        continue;
      }
      auto theirs = IpPrefix::parse((*other)["remote_ip_prefix"].get<std::string>());
      if (mine && theirs && mine->address.family == theirs->address.family &&
          (mine->contains(theirs->address) || theirs->contains(mine->address))) {
        return Error(Errc::Conflict,
                     "Metering label rule with remote_ip_prefix " +
                         doc.value("remote_ip_prefix", "") + " overlaps another.",
                     "MeteringLabelRuleOverlaps");
      }
    }
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeMeteringLabelKind(const model::NetworkConfig&) {
  return std::make_unique<MeteringLabelKind>();
}
std::unique_ptr<ResourceKind> makeMeteringLabelRuleKind(const model::NetworkConfig&) {
  return std::make_unique<MeteringLabelRuleKind>();
}

}  // namespace canopy::api
