// Segments (Neutron's segment and standard-attr-segment): each network's
// segment, the VLAN, tunnel id or flat physical network its provider
// attributes name, shown as a resource of its own with a name and a
// description an admin may change. A Canopy network has exactly one
// segment: it is made and removed with its network, and a second one
// (Neutron's routed provider networks) is refused.

#include <algorithm>

#include "api/detail/segments.h"
#include "api/kind.h"

namespace canopy::api {
namespace detail {

void addSegment(Transaction& ctx, const Json& network) {
  Json segment = stamped(ctx, "");
  segment.erase("tags");
  segment.erase("project_id");
  segment.erase("tenant_id");
  segment["network_id"] = network.value("id", "");
  segment["name"] = nullptr;
  segment["description"] = "";
  segment["network_type"] = model::memberAt(network, "provider:network_type");
  segment["physical_network"] = model::memberAt(network, "provider:physical_network");
  segment["segmentation_id"] = model::memberAt(network, "provider:segmentation_id");
  std::string id = segment["id"];
  ctx.guardAbsent("segments", id);
  ctx.put("segments", id, segment);
}

void removeSegments(Transaction& ctx, const std::string& network_id) {
  for (const auto& id : ctx.tables().lookup("segments.network", network_id)) {
    if (const state::Document* d = ctx.find("segments", id)) {
      ctx.guard("segments", id, d->mod_revision);
      ctx.remove("segments", id);
    }
  }
}

}  // namespace detail

namespace {

using model::AttrType;

constexpr Extension kSegmentExtensions[] = {
    {"segment", "Segment", "Segments extension."},
    {"standard-attr-segment", "Standard Attribute Segment Extension",
     "Add standard attributes to Segment resource"},
};

const model::ResourceSpec& segmentSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "segments", .member = "segment", .type_name = "Segment"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "network_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "name",
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back(
        {.name = "description", .allow_post = true, .allow_put = true, .default_value = Json("")});
    a.push_back({.name = "network_type", .allow_post = true, .max_len = 32});
    a.push_back({.name = "physical_network",
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .max_len = 64});
    a.push_back({.name = "segmentation_id",
                 .type = AttrType::Int,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back({.name = "created_at"});
    a.push_back({.name = "updated_at"});
    a.push_back({.name = "revision_number", .type = AttrType::Int});
    return s;
  }();
  return spec;
}

class SegmentKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return segmentSpec(); }
  std::span<const Extension> extensions() const override { return kSegmentExtensions; }

  // Admin only, as Neutron's policy.
  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_segment) is disallowed by policy");
    }
    std::string network = doc.value("network_id", "");
    if (ctx.find("networks", network) == nullptr) {
      return Error(Errc::NotFound, "Network " + network + " could not be found.",
                   "NetworkNotFound");
    }
    return model::badRequest(
        "Invalid input for operation: network " + network +
        " has its segment; a Canopy network has exactly one (routed provider networks are not "
        "supported).");
  }

  Result<void> remove(const Json& doc, Transaction&) const override {
    return Error(Errc::Conflict,
                 "Segment '" + doc.value("id", "") + "' cannot be deleted: it is the segment of " +
                     "network " + doc.value("network_id", "") + ", which goes with it.",
                 "SegmentInUse");
  }

  // Networks made before segments were documents get theirs.
  bool missingDefaults(const state::Tables& tables, const Caller& caller) const override {
    return caller.is_admin && !unsegmented(tables).empty();
  }
  Result<void> createDefaults(Transaction& ctx) const override {
    for (const Json* network : unsegmented(ctx.tables())) detail::addSegment(ctx, *network);
    return ok();
  }

 private:
  static std::vector<const Json*> unsegmented(const state::Tables& tables) {
    std::vector<const Json*> out;
    for (const auto& [id, d] : tables.collection("networks")) {
      if (tables.lookup("segments.network", id).empty()) out.push_back(&d.doc);
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeSegmentKind(const model::NetworkConfig&) {
  return std::make_unique<SegmentKind>();
}

}  // namespace canopy::api
