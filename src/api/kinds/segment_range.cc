// Network segment ranges (Neutron's network-segment-range): the VLAN and
// tunnel ids tenant networks are given, per physical network, shared or a
// project's own. The configured ranges (--vni-min/--vni-max for the
// overlay, --vlan-ranges) are the read-only defaults; an admin adds more.

#include <algorithm>

#include "api/detail/segment_ranges.h"
#include "api/kind.h"
#include "model/network.h"

namespace canopy::api {
namespace detail {

std::vector<SegmentRange> segmentRangesFor(const state::Tables& tables,
                                           const model::NetworkConfig& config,
                                           const std::string& project,
                                           const std::string& network_type,
                                           const std::string& physical_network) {
  std::vector<SegmentRange> own, shared;
  bool vlan = network_type == "vlan";
  for (const auto& [id, d] : tables.collection("network-segment-ranges")) {
    const Json& r = d.doc;
    if (r.value("default", false) || r.value("network_type", "") != network_type) continue;
    std::string physnet = model::stringAt(r, "physical_network");
    if (vlan && !physical_network.empty() && physnet != physical_network) continue;
    SegmentRange range{physnet, r.value("minimum", int64_t{0}), r.value("maximum", int64_t{0})};
    if (r.value("shared", true)) {
      shared.push_back(range);
    } else if (model::stringAt(r, "project_id") == project) {
      own.push_back(range);
    }
  }
  // The configured defaults, shared by everyone.
  if (!vlan && network_type == config.overlay) {
    shared.push_back({"", config.vni_min, config.vni_max});
  } else if (vlan) {
    for (const auto& [physnet, ranges] : config.vlan_ranges) {
      if (!physical_network.empty() && physnet != physical_network) continue;
      for (const auto& [lo, hi] : ranges) shared.push_back({physnet, lo, hi});
    }
  }
  own.insert(own.end(), shared.begin(), shared.end());
  return own;
}

}  // namespace detail

namespace {

using model::AttrType;

constexpr Extension kSegmentRangeExtensions[] = {
    {"network-segment-range", "Neutron Network Segment Range",
     "Provides support for the network segment range management"},
};

const model::ResourceSpec& segmentRangeSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "network-segment-ranges",
                          .member = "network_segment_range",
                          .plural = "network_segment_ranges",
                          .type_name = "NetworkSegmentRange"};
    model::addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "default", .type = AttrType::Bool});
    a.push_back({.name = "shared",
                 .type = AttrType::Bool,
                 .allow_post = true,
                 .default_value = Json(true)});
    a.push_back({.name = "network_type",
                 .allow_post = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   for (const char* t : {"vlan", "vxlan", "gre", "geneve"}) {
                     if (v == t) return std::nullopt;
                   }
                   return "'" + v.get<std::string>() +
                          "' is not in ['vlan', 'vxlan', 'gre', 'geneve']";
                 }});
    a.push_back({.name = "physical_network",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || (v.is_string() && v.get<std::string>().size() <= 64)) {
                     return std::nullopt;
                   }
                   return "'" + v.dump() + "' is not a valid physical network name";
                 }});
    for (const char* name : {"minimum", "maximum"}) {
      a.push_back({.name = name,
                   .type = AttrType::Int,
                   .allow_post = true,
                   .allow_put = true,
                   .check = [](const Json& v) -> std::optional<std::string> {
                     int64_t n = v.get<int64_t>();
                     if (n >= 0 && n <= (int64_t{1} << 32) - 1) return std::nullopt;
                     return "'" + v.dump() + "' is not in range 0 through 4294967295";
                   }});
    }
    return s;
  }();
  return spec;
}

Error readOnly(const std::string& id) {
  return Error(Errc::InvalidArgument,
               "Network Segment Range " + id +
                   " is a default segment range which could not be updated or deleted.",
               "NetworkSegmentRangeDefaultReadOnly");
}

Error referenced(const std::string& id) {
  return Error(Errc::Conflict,
               "Network Segment Range " + id + " is referenced by one or more tenant networks.",
               "NetworkSegmentRangeReferencedByProject");
}

class SegmentRangeKind final : public ResourceKind {
 public:
  explicit SegmentRangeKind(model::NetworkConfig config) : config_(std::move(config)) {}

  const model::ResourceSpec& spec() const override { return segmentRangeSpec(); }
  std::span<const Extension> extensions() const override { return kSegmentRangeExtensions; }

  // Admin only, as Neutron's policy.
  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }

  // The configured ranges, kept as the default documents.
  bool missingDefaults(const state::Tables& tables, const Caller& caller) const override {
    return caller.is_admin && storedDefaults(tables) != configuredDefaults();
  }

  Result<void> createDefaults(Transaction& ctx) const override {
    std::vector<Json> wanted = configuredDefaults();
    for (const auto& [id, d] : ctx.tables().collection("network-segment-ranges")) {
      if (!d.doc.value("default", false)) continue;
      Json key = identity(d.doc);
      if (std::find(wanted.begin(), wanted.end(), key) != wanted.end()) {
        std::erase(wanted, key);
        continue;
      }
      ctx.guard("network-segment-ranges", id, d.mod_revision);
      ctx.remove("network-segment-ranges", id);
    }
    for (Json& range : wanted) {
      Json doc = stamped(ctx, "");
      doc.update(range);
      doc["name"] = "";
      doc["description"] = "";
      doc["project_id"] = nullptr;
      doc["tenant_id"] = nullptr;
      std::string id = doc["id"];
      ctx.guardAbsent("network-segment-ranges", id);
      ctx.put("network-segment-ranges", id, doc);
    }
    return ok();
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_network_segment_range) is disallowed by policy");
    }
    std::string type = doc.value("network_type", "");
    if (type == "gre") {
      return model::badRequest("Network type gre does not support network segment ranges.");
    }
    doc["default"] = false;
    if (doc["physical_network"] == "") doc["physical_network"] = nullptr;
    if (type == "vlan" && !doc["physical_network"].is_string()) {
      return model::badRequest(
          "Invalid input for operation: physical_network is required for a VLAN range.");
    }
    if (type != "vlan" && !doc["physical_network"].is_null()) {
      return model::badRequest(
          "Invalid input for operation: physical_network is for VLAN "
          "ranges only.");
    }
    if (doc.value("shared", true)) {
      doc["project_id"] = nullptr;
      doc["tenant_id"] = nullptr;
    }
    if (auto r = checkBounds(doc); !r) return r;
    return checkOverlap(doc, ctx);
  }

  Result<void> update(Json& doc, const Json& before, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (before.value("default", false)) return readOnly(id);
    // As Neutron: while networks hold ids in the range, it may only grow.
    auto [lo, hi] = allocated(before, ctx.tables());
    if (lo > 0 && (doc["minimum"].get<int64_t>() >= lo || doc["maximum"].get<int64_t>() <= hi)) {
      return referenced(id);
    }
    if (auto r = checkBounds(doc); !r) return r;
    return checkOverlap(doc, ctx);
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    std::string id = doc.value("id", "");
    if (doc.value("default", false)) return readOnly(id);
    if (allocated(doc, ctx.tables()).first > 0) return referenced(id);
    return ok();
  }

  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

 private:
  static Json identity(const Json& r) {
    return {{"network_type", r.value("network_type", "")},
            {"physical_network", r.value("physical_network", Json())},
            {"minimum", r.value("minimum", int64_t{0})},
            {"maximum", r.value("maximum", int64_t{0})},
            {"default", true},
            {"shared", true}};
  }

  std::vector<Json> configuredDefaults() const {
    std::vector<Json> out;
    out.push_back(identity({{"network_type", config_.overlay},
                            {"physical_network", nullptr},
                            {"minimum", config_.vni_min},
                            {"maximum", config_.vni_max}}));
    for (const auto& [physnet, ranges] : config_.vlan_ranges) {
      for (const auto& [lo, hi] : ranges) {
        out.push_back(identity({{"network_type", "vlan"},
                                {"physical_network", physnet},
                                {"minimum", lo},
                                {"maximum", hi}}));
      }
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static std::vector<Json> storedDefaults(const state::Tables& tables) {
    std::vector<Json> out;
    for (const auto& [id, d] : tables.collection("network-segment-ranges")) {
      if (d.doc.value("default", false)) out.push_back(identity(d.doc));
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  static Result<void> checkBounds(const Json& doc) {
    std::string type = doc.value("network_type", "");
    int64_t lo = doc.value("minimum", int64_t{0}), hi = doc.value("maximum", int64_t{0});
    int64_t max = model::maxSegmentationId(type);
    std::string text = std::to_string(lo) + ":" + std::to_string(hi);
    if (lo < 1 || hi > max || lo > hi) {
      if (type == "vlan") {
        return Error(Errc::InvalidArgument,
                     "Invalid network VLAN range: '" + text + "' - '" +
                         (lo > hi ? "End of VLAN range is less than start of VLAN range"
                                  : "VLAN ids must be within 1 and 4094") +
                         "'.",
                     "NetworkVlanRangeError");
      }
      return Error(Errc::InvalidArgument,
                   "Invalid network tunnel range: '" + text + "' - " +
                       (lo > hi ? std::string("End of tunnel range is less than start of tunnel "
                                              "range")
                                : type + " id " + std::to_string(lo < 1 ? lo : hi) +
                                      " is not a valid " + type + " id") +
                       ".",
                   "NetworkTunnelRangeError");
    }
    return ok();
  }

  static Result<void> checkOverlap(const Json& doc, const Transaction& ctx) {
    std::string overlapping;
    for (const auto& [id, d] : ctx.tables().collection("network-segment-ranges")) {
      const Json& r = d.doc;
      if (id == doc.value("id", "") || r.value("default", false) ||
          r.value("network_type", "") != doc.value("network_type", "") ||
          r.value("physical_network", Json()) != doc.value("physical_network", Json())) {
        continue;
      }
      if (doc["minimum"].get<int64_t>() <= r.value("maximum", int64_t{0}) &&
          doc["maximum"].get<int64_t>() >= r.value("minimum", int64_t{0})) {
        overlapping += (overlapping.empty() ? "" : ", ") + id;
      }
    }
    if (overlapping.empty()) return ok();
    return Error(Errc::Conflict,
                 "Network segment range overlaps with range(s) with id " + overlapping,
                 "NetworkSegmentRangeOverlaps");
  }

  // The lowest and highest ids networks hold in the range (0, 0: none).
  static std::pair<int64_t, int64_t> allocated(const Json& range, const state::Tables& tables) {
    int64_t lo = 0, hi = 0;
    std::string type = range.value("network_type", "");
    Json physnet = range.value("physical_network", Json());
    int64_t min = range.value("minimum", int64_t{0}), max = range.value("maximum", int64_t{0});
    for (const auto& [id, n] : tables.collection("networks")) {
      if (n.doc.value("provider:network_type", "") != type) continue;
      if (type == "vlan" && n.doc.value("provider:physical_network", Json()) != physnet) continue;
      const Json& seg = n.doc["provider:segmentation_id"];
      if (!seg.is_number_integer()) continue;
      int64_t v = seg.get<int64_t>();
      if (v < min || v > max) continue;
      lo = lo == 0 ? v : std::min(lo, v);
      hi = std::max(hi, v);
    }
    return {lo, hi};
  }

  model::NetworkConfig config_;
};

}  // namespace

std::unique_ptr<ResourceKind> makeSegmentRangeKind(const model::NetworkConfig& config) {
  return std::make_unique<SegmentRangeKind>(config);
}

}  // namespace canopy::api
