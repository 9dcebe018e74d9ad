// Trunks (Neutron's trunk and trunk-details): a parent port whose VM sends
// and receives VLAN-tagged frames, each VLAN a subport, a port of its own
// on its own network. /v2.0/trunks, with the actions add_subports and
// remove_subports (PUT) and get_subports (GET).
//
// A trunk's document holds its subports. The server binds each subport to
// the parent's host (device_owner trunk:subport, device_id the trunk) and
// keeps it there when the parent moves; it writes the parent's
// trunk_details (trunk-details) beside. Ports are held by one trunk at most,
// as parent or subport, by a claim in the store, so that replicas agree.
// The southbound carries each parent's subports and each subport's parent
// and VLAN; the datapath takes a tagged frame from the parent's interface as
// the subport's, and what goes to the subport out of the parent's interface
// with its tag (docs/DATAPATH.md, "Trunks"). A subport's status follows its
// parent's.

#include <algorithm>
#include <set>

#include "api/detail/endpoint.h"
#include "api/detail/trunks.h"
#include "api/kind.h"
#include "model/port.h"

namespace canopy::api {
namespace {

constexpr Extension kTrunkExtensions[] = {
    {"trunk", "Trunk Extension", "Provides support for trunk ports"},
    {"trunk-details", "Trunk port details",
     "Expose trunk port details (the trunk and its subports on the parent port)"},
};

constexpr std::string_view kOwnerSubport = "trunk:subport";

std::string textOf(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

Error invalidSubports(const std::string& reason) {
  return model::invalidInput("sub_ports", reason);
}

// Neutron's type:subports: a list of {port_id, segmentation_type,
// segmentation_id}, no port or VLAN twice. `removing`: only port_id counts.
std::optional<std::string> checkSubportList(const Json& list, bool removing) {
  if (!list.is_array()) return "'" + textOf(list) + "' is not a list";
  std::set<std::string> ports;
  std::set<std::pair<std::string, int64_t>> segments;
  for (const auto& s : list) {
    if (!s.is_object()) return "'" + textOf(s) + "' is not a dictionary";
    auto port = s.find("port_id");
    if (port == s.end() || !port->is_string() || !model::isUuid(port->get<std::string>())) {
      return "A subport needs a port_id that is a UUID: " + s.dump();
    }
    if (!ports.insert(port->get<std::string>()).second) {
      return "Duplicate port_id in the sub_ports: " + port->get<std::string>();
    }
    if (removing) continue;
    auto type = s.find("segmentation_type");
    if (type == s.end() || !type->is_string() || (*type != "vlan" && *type != "inherit")) {
      return "segmentation_type of " + port->get<std::string>() +
             " must be one of ['inherit', 'vlan']";
    }
    auto id = s.find("segmentation_id");
    if (*type == "inherit") {
      if (id != s.end() && !id->is_null() && !id->is_number_integer()) {
        return "Invalid segmentation_id: " + textOf(*id);
      }
      continue;
    }
    int64_t vid = -1;
    if (id != s.end() && id->is_number_integer()) vid = id->get<int64_t>();
    if (id != s.end() && id->is_string() && !id->get<std::string>().empty() &&
        std::all_of(id->get<std::string>().begin(), id->get<std::string>().end(),
                    [](unsigned char c) { return std::isdigit(c); }) &&
        id->get<std::string>().size() <= 5) {
      vid = std::stoll(id->get<std::string>());
    }
    if (id == s.end() || id->is_null()) {
      return "segmentation_id of " + port->get<std::string>() + " must be specified";
    }
    if (vid < 1 || vid > 4094) {
      return "Segmentation ID '" + textOf(*id) + "' is not in the range 1 to 4094";
    }
    if (!segments.insert({"vlan", vid}).second) {
      return "Duplicate segmentation ID for subports: " + std::to_string(vid);
    }
  }
  return std::nullopt;
}

const model::ResourceSpec& trunkSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "trunks", .member = "trunk", .type_name = "Trunk"};
    model::addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "admin_state_up",
                 .type = model::AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    a.push_back({.name = "port_id", .type = model::AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "status"});
    a.push_back({.name = "sub_ports",
                 .type = model::AttrType::Any,
                 .allow_post = true,
                 .default_value = Json::array(),
                 .nullable = true,
                 .check = [](const Json& v) { return checkSubportList(v, false); }});
    return s;
  }();
  return spec;
}

Error portNotFound(const std::string& id) {
  return Error(Errc::NotFound, "Port " + id + " could not be found.", "PortNotFound");
}

Error trunkDisabled(const std::string& id) {
  return Error(Errc::Conflict, "Trunk " + id + " is currently disabled.", "TrunkDisabled");
}

// The claim that holds a port for one trunk, as parent or subport.
std::string portClaim(const std::string& port) {
  return std::string(state::kPrefix) + "claims/trunk-port/" + port;
}

// Which trunk holds a port, and how.
struct Holder {
  const Json* trunk = nullptr;
  bool parent = false;
};
Holder holderOf(const Transaction& ctx, const std::string& port) {
  for (const Json* t : ctx.indexed("trunks.port", "trunks", port)) return {t, true};
  for (const Json* t : ctx.indexed("trunks.subport", "trunks", port)) return {t, false};
  return {};
}

Error inUse(const std::string& port, const Holder& h) {
  const std::string trunk = h.trunk->value("id", "");
  if (h.parent) {
    return Error(Errc::Conflict,
                 "Port " + port + " is currently a parent port for trunk " + trunk + ".",
                 "PortInUseAsTrunkParent");
  }
  return Error(Errc::Conflict, "Port " + port + " is currently a subport for trunk " + trunk + ".",
               "PortInUseAsSubPort");
}

int64_t mtuOf(const Transaction& ctx, const Json& port) {
  const Json* net = ctx.current("networks", port.value("network_id", ""));
  if (net == nullptr) return 0;
  auto mtu = net->find("mtu");
  return mtu != net->end() && mtu->is_number_integer() ? mtu->get<int64_t>() : 0;
}

// Writes a port changed by the trunk (its binding, its trunk_details).
void putPort(Transaction& ctx, const std::string& id, Json doc) {
  doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
  doc["updated_at"] = ctx.now();
  if (const state::Document* d = ctx.find("ports", id)) ctx.guard("ports", id, d->mod_revision);
  ctx.put("ports", id, doc);
}

// The parent's trunk_details, with each subport's MAC.
void writeTrunkDetails(Transaction& ctx, const Json& trunk) {
  const std::string parent = trunk.value("port_id", "");
  const Json* port = ctx.current("ports", parent);
  if (port == nullptr) return;
  Json subs = Json::array();
  for (const auto& s : trunk.value("sub_ports", Json::array())) {
    Json entry = s;
    const Json* sp = ctx.current("ports", s.value("port_id", ""));
    entry["mac_address"] = sp != nullptr ? sp->value("mac_address", "") : "";
    subs.push_back(std::move(entry));
  }
  Json doc = *port;
  doc["trunk_details"] = {{"trunk_id", trunk.value("id", "")}, {"sub_ports", std::move(subs)}};
  putPort(ctx, parent, std::move(doc));
}

// A subport bound where its parent is (or unbound, when it leaves).
void bindSubport(Transaction& ctx, const std::string& id, const Json* trunk, const Json& parent) {
  const Json* port = ctx.current("ports", id);
  if (port == nullptr) return;
  Json doc = *port;
  if (trunk != nullptr) {
    doc["binding:host_id"] = model::memberAt(parent, "binding:host_id");
    doc["device_owner"] = kOwnerSubport;
    doc["device_id"] = trunk->value("id", "");
    // Up with its parent (the parent's host says so for both).
    doc["status"] = parent.value("status", "DOWN");
  } else {
    doc["binding:host_id"] = "";
    doc["device_owner"] = "";
    doc["device_id"] = "";
    doc["status"] = "DOWN";
  }
  putPort(ctx, id, std::move(doc));
}

// Adds `wanted` (checked by checkSubportList) to `trunk`'s subports.
Result<void> addSubports(Json& trunk, const Json& wanted, Transaction& ctx) {
  const std::string trunk_id = trunk.value("id", "");
  const std::string parent_id = trunk.value("port_id", "");
  const Json* parent = ctx.current("ports", parent_id);
  if (parent == nullptr) return portNotFound(parent_id);
  Json subs = trunk.value("sub_ports", Json::array());
  for (const auto& w : wanted) {
    const std::string id = w.value("port_id", "");
    const Json* port = ctx.current("ports", id);
    if (port == nullptr || !detail::canChange(*port, ctx.caller())) return portNotFound(id);
    if (id == parent_id) return inUse(id, {&trunk, true});
    if (Holder h = holderOf(ctx, id); h.trunk != nullptr) return inUse(id, h);
    Json sub = {{"port_id", id},
                {"segmentation_type", w.value("segmentation_type", "vlan")},
                {"segmentation_id", model::memberAt(w, "segmentation_id")}};
    if (sub["segmentation_type"] == "inherit") {
      // The subport's network's own VLAN.
      const Json* net = ctx.current("networks", port->value("network_id", ""));
      if (net == nullptr || net->value("provider:network_type", Json()).is_null() ||
          (*net)["provider:network_type"] != "vlan") {
        return model::badRequest(
            "Invalid input for operation: Segmentation type 'inherit' needs the subport's "
            "network to be a VLAN network.");
      }
      sub["segmentation_type"] = "vlan";
      sub["segmentation_id"] = model::memberAt(*net, "provider:segmentation_id");
    }
    if (sub["segmentation_id"].is_string()) {
      sub["segmentation_id"] = std::stoll(sub["segmentation_id"].get<std::string>());
    }
    for (const auto& s : subs) {
      if (s["segmentation_id"] == sub["segmentation_id"]) {
        return Error(Errc::Conflict,
                     "segmentation_type vlan and segmentation_id " + sub["segmentation_id"].dump() +
                         " already in use on trunk " + trunk_id + ".",
                     "DuplicateSubPort");
      }
    }
    if (int64_t mine = mtuOf(ctx, *port), theirs = mtuOf(ctx, *parent);
        mine != 0 && theirs != 0 && mine > theirs) {
      return Error(Errc::Conflict,
                   "MTU " + std::to_string(mine) + " of subport " + id + " is greater than MTU " +
                       std::to_string(theirs) + " of trunk " + trunk_id + ".",
                   "SubPortMtuGreaterThanTrunkPortMtu");
    }
    ctx.claim(portClaim(id), trunk_id);
    subs.push_back(sub);
  }
  trunk["sub_ports"] = std::move(subs);
  for (const auto& w : wanted) bindSubport(ctx, w.value("port_id", ""), &trunk, *parent);
  return ok();
}

class TrunkKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return trunkSpec(); }
  std::span<const Extension> extensions() const override { return kTrunkExtensions; }

  // Its status follows its parent port's (ACTIVE once the parent's host
  // forwards for it).
  void present(Json& view, const Json& doc, const state::Tables& tables,
               const Caller&) const override {
    const state::Document* parent = tables.find("ports", doc.value("port_id", ""));
    view["status"] =
        parent != nullptr && parent->doc.value("status", "") == "ACTIVE" ? "ACTIVE" : "DOWN";
  }
  bool derivesViews() const override { return true; }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    const std::string parent_id = doc.value("port_id", "");
    const Json* parent = ctx.current("ports", parent_id);
    if (parent == nullptr || !detail::canChange(*parent, ctx.caller())) {
      return portNotFound(parent_id);
    }
    if (Holder h = holderOf(ctx, parent_id); h.trunk != nullptr) {
      return Error(Errc::Conflict, "Port " + parent_id + " is in use by another trunk.",
                   "TrunkPortInUse");
    }
    ctx.claim(portClaim(parent_id), doc.value("id", ""));
    doc["status"] = "DOWN";
    Json wanted = doc["sub_ports"].is_null() ? Json::array() : doc["sub_ports"];
    doc["sub_ports"] = Json::array();
    if (auto r = addSubports(doc, wanted, ctx); !r) return r;
    writeTrunkDetails(ctx, doc);
    return ok();
  }

  Result<void> update(Json& doc, const Json& before, Transaction&) const override {
    doc["sub_ports"] = model::memberAt(before, "sub_ports");
    return ok();
  }

  Result<void> remove(const Json& doc, Transaction& ctx) const override {
    const std::string id = doc.value("id", "");
    if (!doc.value("admin_state_up", true)) return trunkDisabled(id);
    const Json* parent = ctx.current("ports", doc.value("port_id", ""));
    if (parent != nullptr && !parent->value("binding:host_id", "").empty()) {
      return Error(Errc::Conflict, "Trunk " + id + " is currently in use.", "TrunkInUse");
    }
    for (const auto& s : doc.value("sub_ports", Json::array())) {
      const std::string port = s.value("port_id", "");
      ctx.release(portClaim(port));
      bindSubport(ctx, port, nullptr, Json::object());
    }
    ctx.release(portClaim(doc.value("port_id", "")));
    if (parent != nullptr) {
      Json p = *parent;
      p.erase("trunk_details");
      putPort(ctx, doc.value("port_id", ""), std::move(p));
    }
    return ok();
  }

  bool hasAction(std::string_view name) const override {
    return name == "add_subports" || name == "remove_subports";
  }

  Result<Json> action(std::string_view name, const Json& body, const state::Document& stored,
                      Transaction& ctx) const override {
    Json doc = stored.doc;
    const std::string id = doc.value("id", "");
    const Json& list = model::memberAt(body, "sub_ports");
    const bool adding = name == "add_subports";
    if (auto why = checkSubportList(list, !adding)) return invalidSubports(*why);
    if (!doc.value("admin_state_up", true)) return trunkDisabled(id);
    if (adding) {
      if (auto r = addSubports(doc, list, ctx); !r) return std::move(r).error();
    } else {
      Json subs = doc.value("sub_ports", Json::array());
      for (const auto& w : list) {
        const std::string port = w.value("port_id", "");
        auto at = std::find_if(subs.begin(), subs.end(),
                               [&](const Json& s) { return s.value("port_id", "") == port; });
        if (at == subs.end()) {
          return Error(Errc::NotFound, "SubPort " + port + " cannot be found on trunk " + id + ".",
                       "SubPortNotFound");
        }
        subs.erase(at);
        ctx.release(portClaim(port));
        bindSubport(ctx, port, nullptr, Json::object());
      }
      doc["sub_ports"] = std::move(subs);
    }
    doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
    doc["updated_at"] = ctx.now();
    ctx.guard("trunks", id, stored.mod_revision);
    ctx.put("trunks", id, doc);
    writeTrunkDetails(ctx, doc);
    Json view = model::visibleView(trunkSpec(), doc, ctx.caller());
    present(view, doc, ctx.tables(), ctx.caller());
    return view;
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeTrunkKind(const model::NetworkConfig&) {
  return std::make_unique<TrunkKind>();
}

namespace detail {

Result<void> checkTrunkPortRemoval(const Json& port, const Transaction& ctx) {
  const std::string id = port.value("id", "");
  if (Holder h = holderOf(ctx, id); h.trunk != nullptr) return inUse(id, h);
  return ok();
}

void followParentBinding(const Json& port, const Json& before, Transaction& ctx) {
  if (model::memberAt(port, "binding:host_id") == model::memberAt(before, "binding:host_id")) {
    return;
  }
  for (const Json* trunk : ctx.indexed("trunks.port", "trunks", port.value("id", ""))) {
    for (const auto& s : trunk->value("sub_ports", Json::array())) {
      bindSubport(ctx, s.value("port_id", ""), trunk, port);
    }
  }
}

HttpResponse serveTrunkSubports(const ApiWriter& w, const ResourceKind& trunks,
                                const std::string& id, const HttpRequest& req,
                                const Caller& caller) {
  if (req.method != "GET") return methodNotAllowed();
  std::optional<Json> out = w.state.read([&](const state::Tables& t) -> std::optional<Json> {
    const state::Document* d = t.find("trunks", id);
    if (d == nullptr || !trunks.visible(d->doc, caller, t)) return std::nullopt;
    return Json{{"sub_ports", d->doc.value("sub_ports", Json::array())}};
  });
  if (!out) return errorResponse(notFound(trunks.spec(), id));
  return json(200, *out);
}

}  // namespace detail
}  // namespace canopy::api
