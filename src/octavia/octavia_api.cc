#include "octavia/octavia_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <set>

#include "api/detail/rbac.h"
#include "api/kind.h"
#include "api/neutron_api.h"
#include "base/ip.h"
#include "model/json.h"
#include "model/query.h"
#include "octavia/resources.h"

namespace canopy::octavia {
namespace {

using http::HttpRequest;
using http::HttpResponse;
using model::Caller;
using model::Json;
using model::stringAt;
using state::Transaction;

// Octavia's 501 for what a provider does not do.
constexpr std::string_view kNotImplemented = "NotImplemented";

Error badRequest(std::string detail) {
  return Error(Errc::InvalidArgument, std::move(detail), "ValidationException");
}
Error validation(std::string detail) { return badRequest("Validation failure: " + detail); }
Error notFound(std::string_view name, std::string_view id) {
  return Error(Errc::NotFound, std::string(name) + " " + std::string(id) + " not found.");
}
Error conflict(std::string message) { return Error(Errc::Conflict, std::move(message)); }
Error forbidden() {
  return Error(Errc::PermissionDenied, "Policy does not allow this request to be performed.");
}
Error unsupported(const std::string& why) {
  return Error(
      Errc::Internal,
      "Provider '" + std::string(kProvider) + "' does not support a requested option: " + why,
      std::string(kNotImplemented));
}

int statusOf(const Error& e) {
  if (e.reason() == kNotImplemented) return 501;
  if (e.code() == Errc::PreconditionFailed) return 409;
  return api::httpStatus(e.code());
}

HttpResponse reply(int status, const Json& body) {
  HttpResponse r;
  r.status = status;
  // Messages may quote what the caller sent, which need not be UTF-8.
  if (!body.is_null()) r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

HttpResponse fault(const Error& e) {
  int status = statusOf(e);
  return reply(status, {{"faultcode", status < 500 ? "Client" : "Server"},
                        {"faultstring", e.message()},
                        {"debuginfo", nullptr}});
}

bool truthy(std::string_view v) {
  std::string s(v);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s == "true" || s == "1" || s == "yes" || s == "on" || s == "y" || s == "t";
}

// The versions GET / lists: Octavia's, up to the one whose features Canopy
// serves (2.11: batch member updates that only add; 2.12: listeners'
// allowed_cidrs; 2.13: SOURCE_IP_PORT). Flavors (2.6) are not served, nor
// availability zones (2.14): their paths are not found.
constexpr std::pair<const char*, const char*> kVersions[] = {
    {"v2.0", "2016-12-11T00:00:00Z"},  {"v2.1", "2018-04-20T00:00:00Z"},
    {"v2.2", "2018-07-31T00:00:00Z"},  {"v2.3", "2018-12-18T00:00:00Z"},
    {"v2.4", "2018-12-19T00:00:00Z"},  {"v2.5", "2019-01-21T00:00:00Z"},
    {"v2.6", "2019-01-25T00:00:00Z"},  {"v2.7", "2018-01-25T12:00:00Z"},
    {"v2.8", "2019-02-12T00:00:00Z"},  {"v2.9", "2019-03-04T00:00:00Z"},
    {"v2.10", "2019-03-05T00:00:00Z"}, {"v2.11", "2019-06-24T00:00:00Z"},
    {"v2.12", "2019-09-11T00:00:00Z"}, {"v2.13", "2019-09-13T00:00:00Z"}};

std::vector<const Json*> docsOf(const state::Tables& t, std::string_view collection) {
  std::vector<const Json*> out;
  for (const auto& [id, d] : t.collection(collection)) out.push_back(&d.doc);
  return out;
}

std::vector<const Json*> whereIs(const state::Tables& t, std::string_view collection,
                                 const char* field, const std::string& value) {
  std::vector<const Json*> out;
  for (const auto& [id, d] : t.collection(collection)) {
    if (stringAt(d.doc, field) == value) out.push_back(&d.doc);
  }
  return out;
}

Json idList(const std::vector<const Json*>& docs) {
  Json out = Json::array();
  for (const Json* d : docs) out.push_back({{"id", stringAt(*d, "id")}});
  return out;
}

}  // namespace

struct OctaviaApi::Impl {
  Impl(state::ModelState& s, OctaviaConfig c, const Clock& k)
      : state(s),
        config(std::move(c)),
        own_auth(config.auth == nullptr ? api::noAuth() : nullptr),
        auth(config.auth != nullptr ? *config.auth : *own_auth),
        clock(k) {}

  state::ModelState& state;
  OctaviaConfig config;
  std::unique_ptr<api::Authenticator> own_auth;
  api::Authenticator& auth;
  const Clock& clock;

  // --- status -------------------------------------------------------------

  // A pool's health monitor (admin state aside), or nullptr.
  static const Json* monitorOf(const state::Tables& t, const std::string& pool) {
    auto m = whereIs(t, kHealthMonitors, "pool_id", pool);
    return m.empty() ? nullptr : m.front();
  }

  // Operating status as Octavia derives it: from members' health checks
  // (reported by agents into the member's "health"), upwards.
  static std::string memberStatus(const state::Tables& t, const Json& m) {
    if (!m.value("admin_state_up", true)) return "OFFLINE";
    const Json* hm = monitorOf(t, stringAt(m, "pool_id"));
    if (hm == nullptr || !hm->value("admin_state_up", true)) return "NO_MONITOR";
    std::string health = stringAt(m, "health");
    return health.empty() ? "OFFLINE" : health;
  }
  static std::string poolStatus(const state::Tables& t, const Json& p) {
    if (!p.value("admin_state_up", true)) return "OFFLINE";
    // A pool no listener uses serves nothing.
    if (whereIs(t, kListeners, "default_pool_id", stringAt(p, "id")).empty()) return "OFFLINE";
    int members = 0, down = 0;
    for (const Json* m : whereIs(t, kMembers, "pool_id", stringAt(p, "id"))) {
      if (!m->value("admin_state_up", true)) continue;
      ++members;
      if (memberStatus(t, *m) == "ERROR") ++down;
    }
    if (members > 0 && down == members) return "ERROR";
    if (down > 0) return "DEGRADED";
    return "ONLINE";
  }
  static std::string listenerStatus(const state::Tables& t, const Json& l) {
    (void)t;
    return l.value("admin_state_up", true) ? "ONLINE" : "OFFLINE";
  }
  static std::string loadBalancerStatus(const state::Tables& t, const Json& lb) {
    if (!lb.value("admin_state_up", true)) return "OFFLINE";
    std::string id = stringAt(lb, "id");
    for (const Json* p : whereIs(t, kPools, "loadbalancer_id", id)) {
      std::string s = poolStatus(t, *p);
      if (s == "ERROR" || s == "DEGRADED") return "DEGRADED";
    }
    return "ONLINE";
  }

  // --- presentation -------------------------------------------------------

  static Json shown(const Resource& r, const Json& doc) {
    Json v = doc;
    for (const auto& k : r.internal) v.erase(k);
    v["tenant_id"] = v.value("project_id", "");
    return v;
  }

  Json present(const Resource& r, const Json& doc, const state::Tables& t) const {
    Json v = shown(r, doc);
    std::string id = stringAt(doc, "id");
    if (&r == &loadBalancerResource()) {
      v["listeners"] = idList(whereIs(t, kListeners, "loadbalancer_id", id));
      v["pools"] = idList(whereIs(t, kPools, "loadbalancer_id", id));
      v["operating_status"] = loadBalancerStatus(t, doc);
    } else if (&r == &listenerResource()) {
      v["loadbalancers"] = Json::array({{{"id", stringAt(doc, "loadbalancer_id")}}});
      v["l7policies"] = Json::array();
      v["operating_status"] = listenerStatus(t, doc);
    } else if (&r == &poolResource()) {
      v["loadbalancers"] = Json::array({{{"id", stringAt(doc, "loadbalancer_id")}}});
      v["listeners"] = idList(whereIs(t, kListeners, "default_pool_id", id));
      v["members"] = idList(whereIs(t, kMembers, "pool_id", id));
      const Json* hm = monitorOf(t, id);
      v["healthmonitor_id"] = hm == nullptr ? Json(nullptr) : Json(stringAt(*hm, "id"));
      v.erase("listener_id");
      v["operating_status"] = poolStatus(t, doc);
    } else if (&r == &memberResource()) {
      v["vnic_type"] = "normal";
      v["operating_status"] = memberStatus(t, doc);
    } else if (&r == &healthMonitorResource()) {
      v["pools"] = Json::array({{{"id", stringAt(doc, "pool_id")}}});
      v["operating_status"] = doc.value("admin_state_up", true) ? "ONLINE" : "OFFLINE";
    }
    return v;
  }

  // --- reads ----------------------------------------------------------------

  static bool visible(const Json& doc, const Caller& caller) {
    return caller.is_admin || stringAt(doc, "project_id") == caller.project_id;
  }

  // GET on a collection: filters on any shown attribute, tags, fields,
  // sort, limit and marker, as Octavia's pagination does.
  HttpResponse list(const Resource& r, const HttpRequest& req, const Caller& caller,
                    const std::string& pool = "") {
    std::vector<std::pair<std::string, std::string>> filters;
    std::vector<std::string> fields, sort_keys, sort_dirs;
    std::vector<std::string> tags_all, tags_any, not_all, not_any;
    std::optional<size_t> limit;
    std::string marker;
    bool reverse = false;
    auto split = [](const std::string& text) { return model::splitCommas(text); };
    for (const auto& [k, v] : req.query) {
      if (k == "fields") {
        fields.push_back(v);
      } else if (k == "limit") {
        if (v == "infinite") continue;
        try {
          long n = std::stol(v);
          if (n >= 1) limit = static_cast<size_t>(std::min(n, 1000L));
        } catch (...) {
          return fault(badRequest("Supplied pagination limit '" + v + "' is not valid."));
        }
      } else if (k == "marker") {
        marker = v;
      } else if (k == "page_reverse") {
        reverse = truthy(v);
      } else if (k == "sort") {
        for (const auto& part : split(v)) {
          auto colon = part.find(':');
          sort_keys.push_back(part.substr(0, colon));
          sort_dirs.push_back(colon == std::string::npos ? "asc" : part.substr(colon + 1));
        }
      } else if (k == "sort_key") {
        for (const auto& key : split(v)) sort_keys.push_back(key);
      } else if (k == "sort_dir") {
        for (const auto& dir : split(v)) sort_dirs.push_back(dir);
      } else if (k == "tags") {
        for (const auto& t : split(v)) tags_all.push_back(t);
      } else if (k == "tags-any") {
        for (const auto& t : split(v)) tags_any.push_back(t);
      } else if (k == "not-tags") {
        for (const auto& t : split(v)) not_all.push_back(t);
      } else if (k == "not-tags-any") {
        for (const auto& t : split(v)) not_any.push_back(t);
      } else {
        filters.emplace_back(k, v);
      }
    }
    for (const auto& d : sort_dirs) {
      if (d != "asc" && d != "desc") {
        return fault(badRequest("Supplied sort direction '" + d + "' is not valid."));
      }
    }
    for (const auto& [k, v] : filters) {
      if (k == "project_id" && !caller.is_admin && v != caller.project_id)
        return fault(forbidden());
    }
    std::vector<Json> items;
    Result<void> bad = ok();
    state.read([&](const state::Tables& t) {
      for (const Json* d : docsOf(t, r.store)) {
        if (!visible(*d, caller)) continue;
        if (!pool.empty() && stringAt(*d, "pool_id") != pool) continue;
        items.push_back(present(r, *d, t));
      }
    });
    auto text = [](const Json& v) {
      if (v.is_string()) return v.get<std::string>();
      if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
      return v.dump();
    };
    auto hasTag = [](const Json& item, const std::string& tag) {
      for (const auto& t : item.value("tags", Json::array())) {
        if (t == tag) return true;
      }
      return false;
    };
    std::vector<Json> kept;
    for (auto& item : items) {
      bool match = true;
      for (const auto& [k, v] : filters) {
        if (!item.contains(k)) {
          bad = badRequest("One or more arguments are either duplicate or invalid");
          break;
        }
        std::string have = text(item[k]);
        bool equal = item[k].is_boolean() ? have == (truthy(v) ? "true" : "false") : have == v;
        if (!equal) match = false;
      }
      if (!bad) return fault(bad.error());
      auto all = [&](const std::vector<std::string>& tags) {
        return std::all_of(tags.begin(), tags.end(),
                           [&](const auto& t) { return hasTag(item, t); });
      };
      auto any = [&](const std::vector<std::string>& tags) {
        return std::any_of(tags.begin(), tags.end(),
                           [&](const auto& t) { return hasTag(item, t); });
      };
      if (!tags_all.empty() && !all(tags_all)) match = false;
      if (!tags_any.empty() && !any(tags_any)) match = false;
      if (!not_all.empty() && all(not_all)) match = false;
      if (!not_any.empty() && any(not_any)) match = false;
      if (match) kept.push_back(std::move(item));
    }
    for (const auto& key : sort_keys) {
      if (!kept.empty() && !kept.front().contains(key)) {
        return fault(badRequest("Supplied sort key '" + key + "' is not valid."));
      }
    }
    std::stable_sort(kept.begin(), kept.end(), [&](const Json& a, const Json& b) {
      for (size_t i = 0; i < sort_keys.size(); ++i) {
        Json x = a.value(sort_keys[i], Json(nullptr));
        Json y = b.value(sort_keys[i], Json(nullptr));
        if (x == y) continue;
        bool less = x < y;
        return (i < sort_dirs.size() && sort_dirs[i] == "desc") ? !less : less;
      }
      auto ka = std::make_pair(a.value("created_at", ""), a.value("id", ""));
      auto kb = std::make_pair(b.value("created_at", ""), b.value("id", ""));
      return ka < kb;
    });
    size_t begin = 0, end = kept.size();
    if (!marker.empty()) {
      auto at = std::find_if(kept.begin(), kept.end(),
                             [&](const Json& j) { return j.value("id", "") == marker; });
      if (at == kept.end()) {
        return fault(badRequest("Supplied pagination marker '" + marker + "' is not valid."));
      }
      size_t i = static_cast<size_t>(at - kept.begin());
      if (reverse) {
        end = i;
      } else {
        begin = i + 1;
      }
    }
    if (limit && end - begin > *limit) {
      if (reverse) {
        begin = end - *limit;
      } else {
        end = begin + *limit;
      }
    }
    std::string first = begin < end ? kept[begin].value("id", "") : "";
    std::string last = begin < end ? kept[end - 1].value("id", "") : "";
    Json page = Json::array();
    for (size_t i = begin; i < end; ++i) {
      Json item = std::move(kept[i]);
      if (!fields.empty()) {
        Json projected = Json::object();
        for (const auto& f : fields) {
          if (item.contains(f)) projected[f] = item[f];
        }
        item = std::move(projected);
      }
      page.push_back(std::move(item));
    }
    Json links = Json::array();
    std::string base = std::string(req.header("host")).empty()
                           ? std::string()
                           : "http://" + std::string(req.header("host"));
    if (limit && end < kept.size() && end > begin) {
      links.push_back(
          {{"href", base + req.path + "?limit=" + std::to_string(*limit) + "&marker=" + last},
           {"rel", "next"}});
    }
    if (!marker.empty() && begin > 0 && limit) {
      links.push_back({{"href", base + req.path + "?limit=" + std::to_string(*limit) +
                                    "&marker=" + first + "&page_reverse=True"},
                       {"rel", "previous"}});
    }
    std::string plural = r.spec.collection;
    return reply(200, {{plural, std::move(page)}, {plural + "_links", std::move(links)}});
  }

  HttpResponse show(const Resource& r, const std::string& id, const HttpRequest& req,
                    const Caller& caller, const std::string& pool = "") {
    std::optional<Json> view;
    bool hidden = false;
    state.read([&](const state::Tables& t) {
      const state::Document* d = t.find(r.store, id);
      if (d == nullptr || (!pool.empty() && stringAt(d->doc, "pool_id") != pool)) return;
      if (!visible(d->doc, caller)) {
        hidden = true;
        return;
      }
      view = present(r, d->doc, t);
    });
    if (hidden) return fault(forbidden());
    if (!view) return fault(notFound(r.name, id));
    std::vector<std::string> fields;
    for (const auto& [k, v] : req.query) {
      if (k == "fields") fields.push_back(v);
    }
    if (!fields.empty()) {
      Json projected = Json::object();
      for (const auto& f : fields) {
        if (view->contains(f)) projected[f] = (*view)[f];
      }
      view = std::move(projected);
    }
    return reply(200, {{r.spec.member, std::move(*view)}});
  }

  // --- writes ---------------------------------------------------------------

  // The body's object, validated for the action.
  static Result<Json> parse(const Resource& r, const HttpRequest& req, model::Action action,
                            const Caller& caller) {
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return badRequest("Request is not in valid JSON format");
    if (!body.is_object() || !body.contains(r.spec.member) || !body[r.spec.member].is_object()) {
      return badRequest("Invalid input for " + r.spec.member + ": a JSON object under \"" +
                        r.spec.member + "\" is required");
    }
    Json given = body[r.spec.member];
    // Octavia's tenant_id is project_id's alias.
    if (given.contains("tenant_id") && !given.contains("project_id")) {
      given["project_id"] = given["tenant_id"];
    }
    given.erase("tenant_id");
    // A null admin_state_up means false; a null name or description "".
    if (given.contains("admin_state_up") && given["admin_state_up"].is_null()) {
      given["admin_state_up"] = false;
    }
    Caller as_admin = caller;
    as_admin.is_admin = true;  // Octavia's policy, not Neutron's admin-only attributes
    auto v = model::validateAttributes(r.spec, given, action, as_admin);
    if (!v) return Error(Errc::InvalidArgument, v.error().message(), "ValidationException");
    Json doc = std::move(*v);
    doc.erase("tenant_id");
    for (const char* text : {"name", "description"}) {
      if (doc.contains(text) && doc[text].is_null()) doc[text] = "";
    }
    if (action == model::Action::Create) {
      std::string project = doc.value("project_id", "");
      if (project.empty()) project = caller.project_id;
      if (!caller.is_admin && project != caller.project_id) return forbidden();
      if (project.empty()) {
        return validation(
            "Missing project ID in request where one is required. An administrator should check "
            "the keystone settings in the Octavia configuration.");
      }
      doc["project_id"] = project;
    }
    return doc;
  }

  Result<void> write(const Caller& caller, const state::ModelState::Build& build) {
    auto r = state.write({.caller = caller, .now = state::timestamp(clock.wallNow())}, build);
    if (!r) return std::move(r).error();
    return ok();
  }

  // The document the caller may change, or why not.
  static Result<const state::Document*> changeable(const Resource& r, const std::string& id,
                                                   Transaction& ctx, const Caller& caller) {
    const state::Document* d = ctx.find(r.store, id);
    if (d == nullptr) return notFound(r.name, id);
    if (!visible(d->doc, caller)) return forbidden();
    return d;
  }

  static void stamp(Json& doc, const Transaction& ctx, bool fresh) {
    if (fresh) {
      doc["id"] = api::newUuid();
      doc["created_at"] = ctx.now();
    }
    doc["updated_at"] = ctx.now();
    // The provider applies a change within the write: agents get it from
    // the model. The response still says what Octavia says at this point.
    doc["provisioning_status"] = "ACTIVE";
    doc.erase("operating_status");
  }

  // Children of a load balancer change only while it is ACTIVE (it always
  // is here: the provider has nothing pending), and bump its updated_at.
  static Result<void> touchLoadBalancer(const std::string& lb, Transaction& ctx) {
    const state::Document* d = ctx.find(kLoadBalancers, lb);
    if (d == nullptr) return notFound("Load Balancer", lb);
    if (stringAt(d->doc, "provisioning_status") != "ACTIVE") {
      return conflict("Load Balancer " + lb + " is immutable and cannot be updated.");
    }
    ctx.guard(kLoadBalancers, lb, d->mod_revision);
    return ok();
  }

  // The response to a write: the stored document, shown, with the
  // provisioning status Octavia reports at that moment.
  HttpResponse written(const Resource& r, const std::string& id, int status,
                       const char* provisioning) {
    std::optional<Json> view;
    state.read([&](const state::Tables& t) {
      if (const state::Document* d = t.find(r.store, id)) view = present(r, d->doc, t);
    });
    if (!view) return fault(notFound(r.name, id));
    (*view)["provisioning_status"] = provisioning;
    if (provisioning == std::string_view("PENDING_CREATE")) {
      (*view)["operating_status"] =
          &r == &memberResource() && (*view)["operating_status"] == "NO_MONITOR" ? "NO_MONITOR"
                                                                                 : "OFFLINE";
    }
    if (&r == &loadBalancerResource() && provisioning == std::string_view("PENDING_CREATE")) {
      (*view)["listeners"] = Json::array();
      (*view)["pools"] = Json::array();
    }
    return reply(status, {{r.spec.member, std::move(*view)}});
  }

  HttpResponse create(const Resource& r, const HttpRequest& req, const Caller& caller,
                      const std::string& pool = "") {
    auto parsed = parse(r, req, model::Action::Create, caller);
    if (!parsed) return fault(parsed.error());
    std::string id;
    auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
      Json doc = *parsed;
      stamp(doc, ctx, true);
      id = doc["id"];
      Result<void> checked = ok();
      if (&r == &loadBalancerResource()) {
        checked = createLoadBalancer(doc, ctx);
      } else if (&r == &listenerResource()) {
        checked = createListener(doc, ctx);
      } else if (&r == &poolResource()) {
        checked = createPool(doc, ctx);
      } else if (&r == &memberResource()) {
        doc["pool_id"] = pool;
        checked = createMember(doc, ctx);
      } else if (&r == &healthMonitorResource()) {
        checked = createMonitor(doc, ctx);
      }
      if (!checked) return checked;
      if (auto q = withinQuota(r, doc, ctx); !q) return q;
      ctx.guardAbsent(r.store, id);
      ctx.put(r.store, id, doc);
      return ok();
    });
    if (!w) return fault(w.error());
    return written(r, id, 201, "PENDING_CREATE");
  }

  // --- quotas ---------------------------------------------------------------
  // Octavia's per-project quotas (-1: unlimited, the default), enforced on
  // create: 403 "Quota has been met for resources: ...".

  struct QuotaItem {
    const char* name;        // in the quota body
    const char* deprecated;  // the older name Octavia still accepts
    std::string_view store;
    const char* shown;  // in the error
  };
  static const std::vector<QuotaItem>& quotaItems() {
    static const std::vector<QuotaItem> items = {
        {"load_balancer", "loadbalancer", kLoadBalancers, "Load Balancer"},
        {"listener", nullptr, kListeners, "Listener"},
        {"pool", nullptr, kPools, "Pool"},
        {"health_monitor", "healthmonitor", kHealthMonitors, "Health Monitor"},
        {"member", nullptr, kMembers, "Member"},
        {"l7policy", nullptr, {}, nullptr},
        {"l7rule", nullptr, {}, nullptr}};
    return items;
  }
  static constexpr std::string_view kQuotas = "lbaas-quotas";

  static Json quotaOf(const state::Tables& t, const std::string& project) {
    Json q = Json::object();
    const state::Document* d = t.find(kQuotas, project);
    for (const auto& item : quotaItems()) {
      q[item.name] = d != nullptr && d->doc.contains(item.name) ? d->doc[item.name] : Json(-1);
    }
    return q;
  }

  static Result<void> withinQuota(const Resource& r, const Json& doc, Transaction& ctx) {
    std::string project = stringAt(doc, "project_id");
    for (const auto& item : quotaItems()) {
      if (item.store != r.store) continue;
      const state::Document* q = ctx.find(kQuotas, project);
      if (q == nullptr) return ok();
      int64_t limit = q->doc.value(item.name, int64_t{-1});
      if (limit < 0) return ok();
      ctx.guard(kQuotas, project, q->mod_revision);
      int64_t used = 0;
      for (const auto& [id, d] : ctx.tables().collection(r.store)) {
        if (stringAt(d.doc, "project_id") == project) ++used;
      }
      if (used >= limit) {
        return Error(Errc::PermissionDenied,
                     std::string("Quota has been met for resources: ") + item.shown);
      }
    }
    return ok();
  }

  HttpResponse quotas(const std::vector<std::string>& parts, const HttpRequest& req,
                      const Caller& caller) {
    const std::string& m = req.method;
    if (parts.size() == 1 && m == "GET") {
      Json list = Json::array();
      state.read([&](const state::Tables& t) {
        for (const auto& [project, d] : t.collection(kQuotas)) {
          if (!caller.is_admin && project != caller.project_id) continue;
          Json q = quotaOf(t, project);
          q["project_id"] = project;
          list.push_back(std::move(q));
        }
      });
      return reply(200, {{"quotas", list}});
    }
    if (parts.size() != 2) return fault(Error(Errc::NotFound, "The resource could not be found."));
    if (parts[1] == "defaults" && m == "GET") {
      return reply(200, {{"quota", quotaOf(state::Tables(nullptr), "")}});
    }
    const std::string& project = parts[1];
    if (m == "GET") {
      if (!caller.is_admin && project != caller.project_id) return fault(forbidden());
      return reply(
          200,
          {{"quota", state.read([&](const state::Tables& t) { return quotaOf(t, project); })}});
    }
    if (!caller.is_admin) return fault(forbidden());
    if (m == "DELETE") {
      auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
        if (ctx.find(kQuotas, project) == nullptr) return notFound("Quota", project);
        ctx.erase(kQuotas, project);
        return ok();
      });
      if (!w) return fault(w.error());
      return reply(202, nullptr);
    }
    if (m != "PUT") return fault(Error(Errc::InvalidArgument, "Method not allowed."));
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("quota") ||
        !body["quota"].is_object()) {
      return fault(badRequest("Invalid input for field/attribute quota."));
    }
    Json wanted = Json::object();
    for (const auto& [k, v] : body["quota"].items()) {
      const QuotaItem* item = nullptr;
      for (const auto& i : quotaItems()) {
        if (k == i.name || (i.deprecated != nullptr && k == i.deprecated)) item = &i;
      }
      if (item == nullptr) {
        return fault(badRequest("Invalid input for field/attribute quota. Value: '" + k +
                                "'. Unknown attribute for argument quota: " + k));
      }
      if (v.is_null()) continue;  // the default
      if (!v.is_number_integer() || v.get<int64_t>() < -1 || v.get<int64_t>() > 2000000000) {
        return fault(badRequest("Invalid input for field/attribute " + k + ". Value: '" +
                                v.dump(-1, ' ', false, Json::error_handler_t::replace) +
                                "'. Value should be greater or equal to -1"));
      }
      wanted[item->name] = v;
    }
    Json shown;
    auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
      Json doc = Json::object();
      if (const state::Document* d = ctx.find(kQuotas, project)) doc = d->doc;
      for (const auto& [k, v] : wanted.items()) doc[k] = v;
      doc["project_id"] = project;
      ctx.update(kQuotas, project, doc);
      return ok();
    });
    if (!w) return fault(w.error());
    state.read([&](const state::Tables& t) { shown = quotaOf(t, project); });
    return reply(202, {{"quota", shown}});
  }

  HttpResponse update(const Resource& r, const std::string& id, const HttpRequest& req,
                      const Caller& caller, const std::string& pool = "") {
    auto parsed = parse(r, req, model::Action::Update, caller);
    if (!parsed) return fault(parsed.error());
    auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
      auto d = changeable(r, id, ctx, caller);
      if (!d) return std::move(d).error();
      if (!pool.empty() && stringAt((*d)->doc, "pool_id") != pool) return notFound(r.name, id);
      Json before = (*d)->doc;
      Json doc = before;
      for (auto& [k, v] : parsed->items()) doc[k] = v;
      stamp(doc, ctx, false);
      Result<void> checked = ok();
      if (&r == &loadBalancerResource()) {
        checked = ok();
      } else if (&r == &listenerResource()) {
        checked = updateListener(doc, *parsed, ctx);
      } else if (&r == &poolResource()) {
        checked = updatePool(doc, *parsed, ctx);
      } else if (&r == &memberResource()) {
        checked = updateMember(doc, ctx);
      } else if (&r == &healthMonitorResource()) {
        checked = updateMonitor(doc, *parsed, ctx);
      }
      if (!checked) return checked;
      ctx.update(r.store, id, doc);
      return ok();
    });
    if (!w) return fault(w.error());
    return written(r, id, 200, "PENDING_UPDATE");
  }

  HttpResponse remove(const Resource& r, const std::string& id, const HttpRequest& req,
                      const Caller& caller, const std::string& pool = "") {
    bool cascade = false;
    for (const auto& [k, v] : req.query) {
      if (k == "cascade") cascade = truthy(v);
    }
    auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
      auto d = changeable(r, id, ctx, caller);
      if (!d) return std::move(d).error();
      const Json& doc = (*d)->doc;
      if (!pool.empty() && stringAt(doc, "pool_id") != pool) return notFound(r.name, id);
      if (&r == &loadBalancerResource()) return removeLoadBalancer(doc, cascade, ctx);
      if (&r == &listenerResource()) {
        if (auto t = touchLoadBalancer(stringAt(doc, "loadbalancer_id"), ctx); !t) return t;
        ctx.erase(kListeners, id);
      } else if (&r == &poolResource()) {
        if (auto t = touchLoadBalancer(stringAt(doc, "loadbalancer_id"), ctx); !t) return t;
        removePool(doc, ctx);
      } else if (&r == &memberResource() || &r == &healthMonitorResource()) {
        const Json* p = ctx.current(kPools, stringAt(doc, "pool_id"));
        if (p != nullptr) {
          if (auto t = touchLoadBalancer(stringAt(*p, "loadbalancer_id"), ctx); !t) return t;
        }
        ctx.erase(r.store, id);
      }
      return ok();
    });
    if (!w) return fault(w.error());
    return reply(204, nullptr);
  }

  // --- each kind's rules ------------------------------------------------------

  // A child takes its parent's project; another project's parent is not
  // the caller's to build on.
  static Result<void> adopt(Json& doc, const Json& parent, const Transaction& ctx) {
    if (stringAt(parent, "project_id") != stringAt(doc, "project_id") && !ctx.caller().is_admin) {
      return forbidden();
    }
    doc["project_id"] = stringAt(parent, "project_id");
    return ok();
  }

  Result<void> createLoadBalancer(Json& doc, Transaction& ctx) {
    if (!doc["listeners"].empty() || !doc["pools"].empty()) {
      return unsupported("creating listeners and pools with their load balancer in one call");
    }
    doc.erase("listeners");
    doc.erase("pools");
    std::string provider = doc["provider"].is_string() ? doc["provider"].get<std::string>() : "";
    if (provider.empty()) provider = std::string(kProvider);
    if (provider != kProvider) {
      return Error(Errc::InvalidArgument, "Provider '" + provider + "' is not enabled.");
    }
    doc["provider"] = provider;
    if (!doc["flavor_id"].is_null()) return validation("Invalid flavor_id.");
    if (!doc["availability_zone"].is_null()) return validation("Invalid availability zone.");
    if (!doc["vip_qos_policy_id"].is_null()) {
      return unsupported("a QoS policy on the VIP");
    }
    std::string port_id = stringAt(doc, "vip_port_id");
    std::string subnet_id = stringAt(doc, "vip_subnet_id");
    std::string network_id = stringAt(doc, "vip_network_id");
    std::string address = stringAt(doc, "vip_address");
    if (port_id.empty() && subnet_id.empty() && network_id.empty()) {
      return badRequest(
          "Validation failure: VIP must contain one of: vip_port_id, vip_network_id, "
          "vip_subnet_id.");
    }
    std::string lb = doc["id"];
    // What the caller may use: its own, or a shared network's (Neutron's
    // view of the caller, as Octavia asks Neutron with the caller's token).
    auto usable = [&](const Json& network) {
      return ctx.caller().is_admin ||
             stringAt(network, "project_id") == stringAt(doc, "project_id") ||
             network.value("shared", false) ||
             api::detail::sharedWith(network, stringAt(doc, "project_id"), ctx.tables());
    };
    if (!port_id.empty()) {
      const Json* port = ctx.current("ports", port_id);
      if (port == nullptr || (!ctx.caller().is_admin &&
                              stringAt(*port, "project_id") != stringAt(doc, "project_id"))) {
        return badRequest("Port " + port_id + " not found.");
      }
      if (!stringAt(*port, "device_id").empty()) {
        return validation("Port " + port_id + " is already used by device " +
                          stringAt(*port, "device_id") + " ");
      }
      std::string chosen;
      std::string chosen_subnet;
      int count = 0;
      for (const auto& ip : port->value("fixed_ips", Json::array())) {
        ++count;
        std::string a = stringAt(ip, "ip_address"), s = stringAt(ip, "subnet_id");
        if ((!address.empty() && a == address) || (!subnet_id.empty() && s == subnet_id) ||
            (address.empty() && subnet_id.empty())) {
          chosen = a;
          chosen_subnet = s;
        }
      }
      if (chosen.empty() && !address.empty()) {
        return validation("Specified VIP address not found on the specified VIP port.");
      }
      if (chosen.empty() && !subnet_id.empty()) {
        return validation(
            "No VIP address found on the specified VIP port within the specified "
            "subnet.");
      }
      if (address.empty() && subnet_id.empty() && count != 1) {
        return validation(
            "VIP port's subnet could not be determined. Please specify either a VIP subnet or "
            "address.");
      }
      doc["vip_address"] = chosen;
      doc["vip_subnet_id"] = chosen_subnet;
      doc["vip_network_id"] = stringAt(*port, "network_id");
      doc["vip_port_owned"] = false;
      return ok();
    }
    if (!subnet_id.empty()) {
      const Json* subnet = ctx.current("subnets", subnet_id);
      const Json* net =
          subnet == nullptr ? nullptr : ctx.current("networks", stringAt(*subnet, "network_id"));
      if (subnet == nullptr || net == nullptr || !usable(*net)) {
        return badRequest("Subnet " + subnet_id + " not found.");
      }
      if (!network_id.empty() && stringAt(*subnet, "network_id") != network_id) {
        return badRequest("Subnet " + subnet_id + " not found.");
      }
      network_id = stringAt(*subnet, "network_id");
    } else {
      const Json* net = ctx.current("networks", network_id);
      if (net == nullptr || !usable(*net)) {
        return badRequest("Network " + network_id + " not found.");
      }
      auto subnets = ctx.indexed("subnets.network", "subnets", network_id);
      if (subnets.empty()) return validation("Supplied network does not contain a subnet.");
      if (!address.empty()) {
        auto ip = IpAddress::parse(address);
        for (const Json* s : subnets) {
          auto cidr = IpPrefix::parse(stringAt(*s, "cidr"));
          if (ip && cidr && cidr->contains(*ip)) subnet_id = stringAt(*s, "id");
        }
        if (subnet_id.empty()) {
          return validation(
              "Supplied network does not contain a subnet for VIP address "
              "specified.");
        }
      } else {
        for (int version : {4, 6}) {
          for (const Json* s : subnets) {
            if (subnet_id.empty() && s->value("ip_version", 4) == version) {
              subnet_id = stringAt(*s, "id");
            }
          }
        }
      }
    }
    Json fixed = {{"subnet_id", subnet_id}};
    if (!address.empty()) fixed["ip_address"] = address;
    auto port = api::createServicePort({.project_id = doc.value("project_id", ""),
                                        .network_id = network_id,
                                        .device_owner = std::string(kVipOwner),
                                        .device_id = "lb-" + lb,
                                        .fixed_ips = Json::array({fixed})},
                                       ctx, config.network);
    if (!port) {
      if (port.error().code() == Errc::Conflict) {
        return conflict("The VIP IP address is already in use: " + port.error().message());
      }
      return std::move(port).error();
    }
    doc["vip_port_id"] = (*port)["id"];
    doc["vip_address"] = (*port)["fixed_ips"].front()["ip_address"];
    doc["vip_subnet_id"] = subnet_id;
    doc["vip_network_id"] = network_id;
    doc["vip_port_owned"] = true;
    return ok();
  }

  Result<void> removeLoadBalancer(const Json& lb, bool cascade, Transaction& ctx) {
    std::string id = stringAt(lb, "id");
    const auto& listeners = ctx.tables().collection(kListeners);
    auto pools = whereIs(ctx.tables(), kPools, "loadbalancer_id", id);
    bool children = !pools.empty();
    for (const auto& [lid, l] : listeners) {
      if (stringAt(l.doc, "loadbalancer_id") == id) children = true;
    }
    if (children && !cascade) {
      return validation("Cannot delete Load Balancer " + id + " - it has children");
    }
    // Pools first: removing one clears its listeners' default pool, which
    // would otherwise write back a listener removed before.
    for (const Json* p : pools) removePool(*p, ctx);
    for (const auto& [lid, l] : listeners) {
      if (stringAt(l.doc, "loadbalancer_id") == id) ctx.erase(kListeners, lid);
    }
    if (lb.value("vip_port_owned", false)) {
      if (const Json* port = ctx.current("ports", stringAt(lb, "vip_port_id"))) {
        api::disassociateFloatingIps(stringAt(*port, "id"), ctx);
        api::removePort(Json(*port), ctx);
      }
    }
    ctx.erase(kLoadBalancers, id);
    return ok();
  }

  static void removePool(const Json& pool, Transaction& ctx) {
    std::string id = stringAt(pool, "id");
    for (const Json* m : whereIs(ctx.tables(), kMembers, "pool_id", id)) {
      ctx.erase(kMembers, stringAt(*m, "id"));
    }
    for (const Json* h : whereIs(ctx.tables(), kHealthMonitors, "pool_id", id)) {
      ctx.erase(kHealthMonitors, stringAt(*h, "id"));
    }
    // Listeners that used it as their default pool have none now.
    for (const Json* l : whereIs(ctx.tables(), kListeners, "default_pool_id", id)) {
      Json changed = *l;
      changed["default_pool_id"] = nullptr;
      ctx.update(kListeners, stringAt(*l, "id"), changed);
    }
    ctx.erase(kPools, id);
  }

  // A listener's default pool: on its load balancer, of a protocol it serves.
  static Result<void> checkDefaultPool(const Json& listener, Transaction& ctx) {
    if (listener["default_pool_id"].is_null()) return ok();
    std::string pool_id = listener["default_pool_id"];
    const Json* pool = ctx.current(kPools, pool_id);
    if (pool == nullptr ||
        stringAt(*pool, "loadbalancer_id") != stringAt(listener, "loadbalancer_id")) {
      return notFound("Pool", pool_id);
    }
    if (!poolServesListener(stringAt(*pool, "protocol"), stringAt(listener, "protocol"))) {
      return validation("The pool protocol '" + stringAt(*pool, "protocol") +
                        "' is invalid while the listener protocol is '" +
                        stringAt(listener, "protocol") + "'.");
    }
    for (const Json* other : whereIs(ctx.tables(), kListeners, "default_pool_id", pool_id)) {
      if (stringAt(*other, "id") != stringAt(listener, "id")) {
        return conflict("Pool " + pool_id + " is already used by listener " +
                        stringAt(*other, "id"));
      }
    }
    return ok();
  }

  static Result<void> checkListenerOptions(const Json& l) {
    std::string protocol = stringAt(l, "protocol");
    if (l["insert_headers"].is_object() && !l["insert_headers"].empty() && protocol != "HTTP" &&
        protocol != "TERMINATED_HTTPS") {
      return badRequest("insert-headers is not a valid option for a " + protocol +
                        " protocol listener.");
    }
    if (protocol == "UDP" &&
        (!l["default_tls_container_ref"].is_null() || !l["sni_container_refs"].empty())) {
      return validation("UDP protocol listener does not support TLS.");
    }
    if (auto why = unsupportedListener(l)) return unsupported(*why);
    return ok();
  }

  Result<void> createListener(Json& doc, Transaction& ctx) {
    doc.erase("l7policies");
    if (doc["connection_limit"].is_null()) doc["connection_limit"] = -1;
    if (!doc["default_pool"].is_null()) {
      return unsupported("creating a default pool with its listener in one call");
    }
    doc.erase("default_pool");
    std::string lb = stringAt(doc, "loadbalancer_id");
    const Json* owner = ctx.current(kLoadBalancers, lb);
    if (owner == nullptr) return notFound("Load Balancer", lb);
    if (auto r = adopt(doc, *owner, ctx); !r) return r;
    if (auto r = checkListenerOptions(doc); !r) return r;
    if (auto r = checkAllowedCidrs(doc, *owner); !r) return r;
    if (auto r = touchLoadBalancer(lb, ctx); !r) return r;
    for (const Json* other : whereIs(ctx.tables(), kListeners, "loadbalancer_id", lb)) {
      if (other->value("protocol_port", 0) == doc.value("protocol_port", 0) &&
          l4Family(stringAt(*other, "protocol")) == l4Family(stringAt(doc, "protocol"))) {
        return conflict("Another Listener on this Load Balancer is already using protocol " +
                        stringAt(*other, "protocol") + " and protocol_port " +
                        std::to_string(doc.value("protocol_port", 0)));
      }
    }
    return checkDefaultPool(doc, ctx);
  }

  Result<void> updateListener(Json& doc, const Json& changes, Transaction& ctx) {
    if (changes.contains("connection_limit") && changes["connection_limit"].is_null()) {
      doc["connection_limit"] = -1;
    }
    if (auto r = checkListenerOptions(doc); !r) return r;
    if (const Json* owner = ctx.current(kLoadBalancers, stringAt(doc, "loadbalancer_id"))) {
      if (auto r = checkAllowedCidrs(doc, *owner); !r) return r;
    }
    if (auto r = touchLoadBalancer(stringAt(doc, "loadbalancer_id"), ctx); !r) return r;
    return checkDefaultPool(doc, ctx);
  }

  // Each allowed CIDR of the VIP's family: another could never match.
  static Result<void> checkAllowedCidrs(const Json& listener, const Json& lb) {
    const Json& cidrs = listener["allowed_cidrs"];
    if (!cidrs.is_array()) return ok();
    auto vip = IpAddress::parse(stringAt(lb, "vip_address"));
    if (!vip) return ok();
    for (const auto& c : cidrs) {
      auto prefix = IpPrefix::parse(c.is_string() ? c.get<std::string>() : "");
      if (prefix && prefix->address.family != vip->family) {
        return validation("CIDR " + c.get<std::string>() +
                          " IP version incompatible with all VIPs ['" +
                          stringAt(lb, "vip_address") + "'] IP version.");
      }
    }
    return ok();
  }

  static Result<void> checkPersistence(const Json& pool) {
    const Json& sp = pool["session_persistence"];
    if (sp.is_null()) return ok();
    static const std::vector<std::string> kTypes = {"SOURCE_IP", "HTTP_COOKIE", "APP_COOKIE"};
    std::string type = sp.value("type", "");
    if (std::find(kTypes.begin(), kTypes.end(), type) == kTypes.end()) {
      return badRequest("Invalid input for field/attribute type. Value: '" + type +
                        "'. Value should be one of: SOURCE_IP, HTTP_COOKIE, APP_COOKIE");
    }
    bool udp = stringAt(pool, "protocol") == "UDP";
    bool has_cookie = sp.contains("cookie_name") && !sp["cookie_name"].is_null();
    if (has_cookie && type != "APP_COOKIE") {
      return validation(
          "Field \"cookie_name\" can only be specified with session persistence of type "
          "\"APP_COOKIE\".");
    }
    if (type == "APP_COOKIE" && !has_cookie) {
      return validation(
          "Field \"cookie_name\" must be specified when using the \"APP_COOKIE\" session "
          "persistence type.");
    }
    bool udp_fields =
        (sp.contains("persistence_timeout") && !sp["persistence_timeout"].is_null()) ||
        (sp.contains("persistence_granularity") && !sp["persistence_granularity"].is_null());
    if (udp_fields && !udp) {
      return validation(
          "persistence_timeout and persistence_granularity is only for UDP and SCTP protocol "
          "pools.");
    }
    if (udp && type != "SOURCE_IP") {
      return validation("Session persistence of type " + type +
                        " is not supported for UDP/SCTP protocol pools.");
    }
    return ok();
  }

  static void normalizePersistence(Json& pool) {
    Json& sp = pool["session_persistence"];
    if (!sp.is_object()) return;
    for (const char* k : {"cookie_name", "persistence_timeout", "persistence_granularity"}) {
      if (!sp.contains(k)) sp[k] = nullptr;
    }
  }

  Result<void> createPool(Json& doc, Transaction& ctx) {
    if (!doc["healthmonitor"].is_null() || !doc["members"].empty()) {
      return unsupported("creating members and a health monitor with their pool in one call");
    }
    doc.erase("healthmonitor");
    doc.erase("members");
    std::string lb = stringAt(doc, "loadbalancer_id");
    std::string listener_id = stringAt(doc, "listener_id");
    if (lb.empty() && listener_id.empty()) {
      return validation("Must provide at least one of: loadbalancer_id, listener_id");
    }
    const Json* listener = nullptr;
    if (!listener_id.empty()) {
      listener = ctx.current(kListeners, listener_id);
      if (listener == nullptr) return notFound("Listener", listener_id);
      if (lb.empty()) lb = stringAt(*listener, "loadbalancer_id");
      if (stringAt(*listener, "loadbalancer_id") != lb) {
        return validation("Listener " + listener_id + " is not on load balancer " + lb + ".");
      }
      if (!(*listener)["default_pool_id"].is_null()) {
        return conflict("This listener already has a default pool");
      }
      if (!poolServesListener(stringAt(doc, "protocol"), stringAt(*listener, "protocol"))) {
        return validation("The pool protocol '" + stringAt(doc, "protocol") +
                          "' is invalid while the listener protocol is '" +
                          stringAt(*listener, "protocol") + "'.");
      }
    }
    const Json* owner = ctx.current(kLoadBalancers, lb);
    if (owner == nullptr) return notFound("Load Balancer", lb);
    if (auto r = adopt(doc, *owner, ctx); !r) return r;
    doc["loadbalancer_id"] = lb;
    if (auto r = checkPersistence(doc); !r) return r;
    normalizePersistence(doc);
    if (auto why = unsupportedPool(doc)) return unsupported(*why);
    if (auto r = touchLoadBalancer(lb, ctx); !r) return r;
    if (listener != nullptr) {
      Json changed = *listener;
      changed["default_pool_id"] = doc["id"];
      changed["updated_at"] = ctx.now();
      ctx.update(kListeners, listener_id, changed);
    }
    doc.erase("listener_id");
    return ok();
  }

  Result<void> updatePool(Json& doc, const Json& changes, Transaction& ctx) {
    if (changes.contains("session_persistence") && changes["session_persistence"].is_object() &&
        !changes["session_persistence"].contains("type")) {
      return validation("session_persistence needs a type");
    }
    if (auto r = checkPersistence(doc); !r) return r;
    normalizePersistence(doc);
    if (auto why = unsupportedPool(doc)) return unsupported(*why);
    return touchLoadBalancer(stringAt(doc, "loadbalancer_id"), ctx);
  }

  Result<void> createMember(Json& doc, Transaction& ctx) {
    if (doc["weight"].is_null()) doc["weight"] = 1;
    if (doc["backup"].is_null()) doc["backup"] = false;
    std::string pool_id = stringAt(doc, "pool_id");
    const Json* pool = ctx.current(kPools, pool_id);
    if (pool == nullptr) return notFound("Pool", pool_id);
    if (auto r = adopt(doc, *pool, ctx); !r) return r;
    std::string address = stringAt(doc, "address");
    if (address == "169.254.169.254") {
      return badRequest("169.254.169.254 is not a valid option for member address");
    }
    if (!doc["subnet_id"].is_null()) {
      std::string subnet_id = doc["subnet_id"];
      const Json* subnet = ctx.current("subnets", subnet_id);
      if (subnet == nullptr) return badRequest("Subnet " + subnet_id + " not found.");
      // The subnet is where the member is reached from (Octavia's meaning):
      // the member is on one of its network's subnets of its family, or
      // behind one's gateway.
      auto ip = IpAddress::parse(address);
      bool reachable = false;
      for (const Json* s :
           ctx.indexed("subnets.network", "subnets", stringAt(*subnet, "network_id"))) {
        auto cidr = IpPrefix::parse(stringAt(*s, "cidr"));
        if (!ip || !cidr || cidr->address.family != ip->family) continue;
        if (cidr->contains(*ip) || !stringAt(*s, "gateway_ip").empty()) reachable = true;
      }
      if (!reachable) {
        return badRequest("Member address " + address + " is not reachable from subnet " +
                          subnet_id + " (" + stringAt(*subnet, "cidr") +
                          "): no subnet of its network holds it or has a gateway to it.");
      }
    }
    if (auto why = unsupportedMember(doc)) return unsupported(*why);
    for (const Json* other : whereIs(ctx.tables(), kMembers, "pool_id", pool_id)) {
      if (stringAt(*other, "address") == address &&
          other->value("protocol_port", 0) == doc.value("protocol_port", 0)) {
        return conflict("Another member on this pool is already using ip " + address +
                        " on protocol_port " + std::to_string(doc.value("protocol_port", 0)));
      }
    }
    doc.erase("request_sriov");
    return touchLoadBalancer(stringAt(*pool, "loadbalancer_id"), ctx);
  }

  Result<void> updateMember(Json& doc, Transaction& ctx) {
    if (doc["weight"].is_null()) doc["weight"] = 1;
    if (doc["backup"].is_null()) doc["backup"] = false;
    const Json* pool = ctx.current(kPools, stringAt(doc, "pool_id"));
    if (pool == nullptr) return notFound("Pool", stringAt(doc, "pool_id"));
    return touchLoadBalancer(stringAt(*pool, "loadbalancer_id"), ctx);
  }

  static Result<void> checkMonitor(Json& doc, const Json& pool, const Json& given) {
    std::string type = stringAt(doc, "type");
    std::string protocol = stringAt(pool, "protocol");
    bool http = type == "HTTP" || type == "HTTPS";
    if (!http) {
      for (const char* f : {"http_method", "url_path", "expected_codes"}) {
        if (given.contains(f) && !given[f].is_null()) {
          return badRequest(std::string(f) + " is not a valid option for health monitors of type " +
                            type);
        }
      }
    } else {
      if (doc["http_method"].is_null()) doc["http_method"] = "GET";
      if (doc["url_path"].is_null()) doc["url_path"] = "/";
      if (doc["expected_codes"].is_null()) doc["expected_codes"] = "200";
    }
    if (!doc["domain_name"].is_null() && doc["http_version"].is_null()) {
      return validation("'http_version' must be specified when 'domain_name' is provided.");
    }
    if (protocol == "UDP" && type != "UDP-CONNECT" && type != "TCP" && type != "HTTP" &&
        type != "SCTP") {
      return validation("The associated pool protocol is " + protocol +
                        ", so only a UDP-CONNECT/SCTP/TCP/HTTP health monitor is supported.");
    }
    if (protocol != "UDP" && protocol != "SCTP" && (type == "UDP-CONNECT" || type == "SCTP")) {
      return validation("The " + type + " type is only supported for pools of type UDP/SCTP.");
    }
    if (type == "UDP-CONNECT" && doc.value("delay", 0) < 3) {
      return validation("The request delay value " + std::to_string(doc.value("delay", 0)) +
                        " should be larger than 3 for UDP-CONNECT health monitor type.");
    }
    if (auto why = unsupportedMonitor(doc)) return unsupported(*why);
    return ok();
  }

  Result<void> createMonitor(Json& doc, Transaction& ctx) {
    if (doc["max_retries_down"].is_null()) doc["max_retries_down"] = 3;
    std::string pool_id = stringAt(doc, "pool_id");
    const Json* pool = ctx.current(kPools, pool_id);
    if (pool == nullptr) return notFound("Pool", pool_id);
    if (auto r = adopt(doc, *pool, ctx); !r) return r;
    if (auto r = checkMonitor(doc, *pool, doc); !r) return r;
    if (!whereIs(ctx.tables(), kHealthMonitors, "pool_id", pool_id).empty()) {
      return conflict("This pool already has a health monitor");
    }
    return touchLoadBalancer(stringAt(*pool, "loadbalancer_id"), ctx);
  }

  Result<void> updateMonitor(Json& doc, const Json& changes, Transaction& ctx) {
    for (const char* required : {"delay", "timeout", "max_retries"}) {
      if (changes.contains(required) && changes[required].is_null()) {
        return badRequest(std::string("Invalid input for field/attribute ") + required +
                          ". Value: 'None'. Mandatory field missing.");
      }
    }
    if (changes.contains("max_retries_down") && changes["max_retries_down"].is_null()) {
      doc["max_retries_down"] = 3;
    }
    const Json* pool = ctx.current(kPools, stringAt(doc, "pool_id"));
    if (pool == nullptr) return notFound("Pool", stringAt(doc, "pool_id"));
    if (auto r = checkMonitor(doc, *pool, changes); !r) return r;
    return touchLoadBalancer(stringAt(*pool, "loadbalancer_id"), ctx);
  }

  // PUT /pools/<id>/members: the pool's members become those listed,
  // matched by address and port: matched ones are updated, new ones
  // created, the others deleted (unless additive_only).
  HttpResponse batchMembers(const std::string& pool, const HttpRequest& req, const Caller& caller) {
    bool additive = false;
    for (const auto& [k, v] : req.query) {
      if (k == "additive_only") additive = truthy(v);
    }
    Json body = Json::parse(req.body, nullptr, false);
    if (body.is_discarded()) return fault(badRequest("Request is not in valid JSON format"));
    if (!body.is_object() || !body.contains("members") || !body["members"].is_array()) {
      return fault(badRequest("Invalid input for members: a list under \"members\" is required"));
    }
    const Resource& r = memberResource();
    Caller as_admin = caller;
    as_admin.is_admin = true;
    std::vector<std::pair<Json, Json>> wanted;  // validated, as given
    std::set<std::pair<std::string, int64_t>> keys;
    for (const auto& item : body["members"]) {
      if (!item.is_object()) return fault(badRequest("Invalid input for members: objects only"));
      Json given = item;
      given.erase("tenant_id");
      given.erase("project_id");
      auto v = model::validateAttributes(r.spec, given, model::Action::Create, as_admin);
      if (!v) return fault(Error(Errc::InvalidArgument, v.error().message()));
      auto key = std::make_pair(stringAt(*v, "address"), v->value("protocol_port", int64_t{0}));
      if (!keys.insert(key).second) {
        return fault(validation("Member must be updated only once in the same request."));
      }
      wanted.emplace_back(std::move(*v), std::move(given));
    }
    auto w = write(caller, [&](Transaction& ctx) -> Result<void> {
      const Json* p = ctx.current(kPools, pool);
      if (p == nullptr) return notFound("Pool", pool);
      if (!visible(*p, caller)) return forbidden();
      std::map<std::pair<std::string, int64_t>, const Json*> existing;
      for (const Json* m : whereIs(ctx.tables(), kMembers, "pool_id", pool)) {
        existing[{stringAt(*m, "address"), m->value("protocol_port", int64_t{0})}] = m;
      }
      for (auto& [doc, given] : wanted) {
        auto key = std::make_pair(stringAt(doc, "address"), doc.value("protocol_port", int64_t{0}));
        if (auto it = existing.find(key); it != existing.end()) {
          Json changed = *it->second;
          for (const auto& [k, v] : given.items()) {
            if (const model::AttrSpec* a = r.spec.find(k); a != nullptr && a->allow_put) {
              changed[k] = doc[k];
            }
          }
          stamp(changed, ctx, false);
          if (auto u = updateMember(changed, ctx); !u) return u;
          ctx.update(kMembers, stringAt(changed, "id"), changed);
          existing.erase(it);
          continue;
        }
        Json fresh = doc;
        fresh["project_id"] = stringAt(*p, "project_id");
        stamp(fresh, ctx, true);
        fresh["pool_id"] = pool;
        if (auto c = createMember(fresh, ctx); !c) return c;
        ctx.guardAbsent(kMembers, stringAt(fresh, "id"));
        ctx.put(kMembers, stringAt(fresh, "id"), fresh);
      }
      if (!additive) {
        for (const auto& [key, m] : existing) ctx.erase(kMembers, stringAt(*m, "id"));
      }
      return touchLoadBalancer(stringAt(*p, "loadbalancer_id"), ctx);
    });
    if (!w) return fault(w.error());
    return reply(202, nullptr);
  }

  // --- the status tree and statistics --------------------------------------------

  HttpResponse statusTree(const std::string& id, const Caller& caller) {
    std::optional<Json> tree;
    bool hidden = false;
    state.read([&](const state::Tables& t) {
      const state::Document* d = t.find(kLoadBalancers, id);
      if (d == nullptr) return;
      if (!visible(d->doc, caller)) {
        hidden = true;
        return;
      }
      auto node = [](const Json& doc, const std::string& operating) {
        return Json{{"id", stringAt(doc, "id")},
                    {"name", stringAt(doc, "name")},
                    {"provisioning_status", stringAt(doc, "provisioning_status")},
                    {"operating_status", operating}};
      };
      Json lb = node(d->doc, loadBalancerStatus(t, d->doc));
      lb["listeners"] = Json::array();
      for (const Json* l : whereIs(t, kListeners, "loadbalancer_id", id)) {
        Json listener = node(*l, listenerStatus(t, *l));
        listener["pools"] = Json::array();
        if (const state::Document* p = t.find(kPools, stringAt(*l, "default_pool_id"))) {
          Json pool = node(p->doc, poolStatus(t, p->doc));
          if (const Json* hm = monitorOf(t, stringAt(p->doc, "id"))) {
            Json monitor = node(*hm, hm->value("admin_state_up", true) ? "ONLINE" : "OFFLINE");
            monitor["type"] = stringAt(*hm, "type");
            pool["health_monitor"] = std::move(monitor);
          }
          pool["members"] = Json::array();
          for (const Json* m : whereIs(t, kMembers, "pool_id", stringAt(p->doc, "id"))) {
            Json member = node(*m, memberStatus(t, *m));
            member["address"] = stringAt(*m, "address");
            member["protocol_port"] = m->value("protocol_port", 0);
            pool["members"].push_back(std::move(member));
          }
          listener["pools"].push_back(std::move(pool));
        }
        lb["listeners"].push_back(std::move(listener));
      }
      tree = Json{{"loadbalancer", std::move(lb)}};
    });
    if (hidden) return fault(forbidden());
    if (!tree) return fault(notFound("Load Balancer", id));
    return reply(200, {{"statuses", std::move(*tree)}});
  }

  HttpResponse stats(const Resource& r, const std::string& id, const Caller& caller) {
    bool found = false, hidden = false;
    Json totals = {{"bytes_in", 0},
                   {"bytes_out", 0},
                   {"active_connections", 0},
                   {"total_connections", 0},
                   {"request_errors", 0}};
    state.read([&](const state::Tables& t) {
      const state::Document* d = t.find(r.store, id);
      found = d != nullptr;
      hidden = found && !visible(d->doc, caller);
      if (!found || hidden) return;
      std::set<std::string> listeners;
      if (&r == &listenerResource()) {
        listeners.insert(id);
      } else {
        for (const Json* l : whereIs(t, kListeners, "loadbalancer_id", id)) {
          listeners.insert(stringAt(*l, "id"));
        }
      }
      // What each host's agent carried through them (written by the
      // southbound, southbound/service.h's kListenerStatsCollection).
      for (const auto& [host, doc] : t.collection("lbaas-listener-stats")) {
        auto carried = doc.doc.find("listeners");
        if (carried == doc.doc.end() || !carried->is_object()) continue;
        for (const auto& [listener, c] : carried->items()) {
          if (!listeners.count(listener) || !c.is_object()) continue;
          for (const char* k :
               {"bytes_in", "bytes_out", "active_connections", "total_connections"}) {
            auto v = c.find(k);
            if (v != c.end() && v->is_number_unsigned()) {
              totals[k] = totals[k].get<uint64_t>() + v->get<uint64_t>();
            }
          }
        }
      }
    });
    if (!found) return fault(notFound(r.name, id));
    if (hidden) return fault(forbidden());
    return reply(200, {{"stats", totals}});
  }

  // --- routing ------------------------------------------------------------------

  HttpResponse versions(const HttpRequest& req) const {
    std::string host(req.header("host"));
    std::string base = host.empty() ? "" : "http://" + host;
    std::string prefix(req.header("x-canopy-mount"));
    Json list = Json::array();
    size_t n = std::size(kVersions);
    for (size_t i = 0; i < n; ++i) {
      list.push_back({{"id", kVersions[i].first},
                      {"status", i + 1 == n ? "CURRENT" : "SUPPORTED"},
                      {"updated", kVersions[i].second},
                      {"links", {{{"href", base + prefix + "/v2"}, {"rel", "self"}}}}});
    }
    return reply(200, {{"versions", std::move(list)}});
  }

  HttpResponse route(const HttpRequest& req) {
    auto parts = api::splitPath(req.path);
    if (parts.empty()) {
      if (req.method != "GET") return fault(Error(Errc::InvalidArgument, "Method not allowed."));
      return versions(req);
    }
    if (parts[0] != "v2" && parts[0] != "v2.0") {
      return fault(Error(Errc::NotFound, "The resource could not be found."));
    }
    auto caller = auth.authenticate(req);
    if (!caller) {
      if (caller.error().code() == Errc::Unauthenticated) return auth.unauthorized(req);
      return fault(caller.error());
    }
    // Octavia's own administrator role administers load balancers (and
    // only them: the caller stays as it is for Neutron's ports).
    if (std::find(caller->roles.begin(), caller->roles.end(), "load-balancer_admin") !=
        caller->roles.end()) {
      caller->is_admin = true;
    }
    parts.erase(parts.begin());
    if (parts.empty()) return reply(200, Json("v2"));
    if (parts[0] == "lbaas" || parts[0] == "octavia") parts.erase(parts.begin());
    if (parts.empty()) return fault(Error(Errc::NotFound, "The resource could not be found."));
    const std::string& m = req.method;
    const std::string& what = parts[0];
    if (what == "providers") {
      if (parts.size() == 1 && m == "GET") {
        Json provider = {
            {"name", kProvider},
            {"description", "Canopy distributed layer-4 load balancing in each host's datapath"}};
        Json shown = Json::object();
        for (const auto& [k, v] : req.query) {
          if (k == "fields" && provider.contains(v)) shown[v] = provider[v];
        }
        return reply(200, {{"providers", {shown.empty() ? provider : shown}}});
      }
      if (parts.size() == 3) {
        return fault(Error(
            Errc::Internal,
            "Provider '" + std::string(kProvider) +
                "' does not support a requested action: This provider does not "
                "support getting the supported " +
                (parts[2] == "flavor_capabilities" ? "flavor" : "availability zone") + " metadata.",
            std::string(kNotImplemented)));
      }
    }
    if (what == "quotas") return quotas(parts, req, *caller);
    const Resource* r = nullptr;
    if (what == "loadbalancers") r = &loadBalancerResource();
    if (what == "listeners") r = &listenerResource();
    if (what == "pools") r = &poolResource();
    if (what == "healthmonitors") r = &healthMonitorResource();
    if (r == nullptr) return fault(Error(Errc::NotFound, "The resource could not be found."));
    // /pools/<id>/members[/<member>]
    if (r == &poolResource() && parts.size() >= 3 && parts[2] == "members") {
      const std::string& pool = parts[1];
      bool exists = state.read([&](const state::Tables& t) {
        const state::Document* d = t.find(kPools, pool);
        return d != nullptr && visible(d->doc, *caller);
      });
      if (!exists) return fault(notFound("Pool", pool));
      const Resource& member = memberResource();
      if (parts.size() == 3) {
        if (m == "GET") return list(member, req, *caller, pool);
        if (m == "POST") return create(member, req, *caller, pool);
        if (m == "PUT") return batchMembers(pool, req, *caller);
      } else if (parts.size() == 4) {
        if (m == "GET") return show(member, parts[3], req, *caller, pool);
        if (m == "PUT") return update(member, parts[3], req, *caller, pool);
        if (m == "DELETE") return remove(member, parts[3], req, *caller, pool);
      }
      return fault(Error(Errc::InvalidArgument, "Method not allowed."));
    }
    if (parts.size() == 1) {
      if (m == "GET") return list(*r, req, *caller);
      if (m == "POST") return create(*r, req, *caller);
    } else if (parts.size() == 2) {
      if (m == "GET") return show(*r, parts[1], req, *caller);
      if (m == "PUT") return update(*r, parts[1], req, *caller);
      if (m == "DELETE") return remove(*r, parts[1], req, *caller);
    } else if (parts.size() == 3 && m == "GET" && (parts[2] == "stats") &&
               (r == &loadBalancerResource() || r == &listenerResource())) {
      return stats(*r, parts[1], *caller);
    } else if (parts.size() == 3 && m == "GET" && r == &loadBalancerResource() &&
               (parts[2] == "status" || parts[2] == "statuses")) {
      return statusTree(parts[1], *caller);
    } else if (parts.size() == 3 && m == "PUT" && r == &loadBalancerResource() &&
               parts[2] == "failover") {
      return unsupportedAction(
          "load balancer failover (no node to fail over: the VIP is "
          "served by every host)");
    }
    return fault(Error(Errc::NotFound, "The resource could not be found."));
  }

  static HttpResponse unsupportedAction(const std::string& what) {
    return fault(Error(
        Errc::Internal,
        "Provider '" + std::string(kProvider) + "' does not support a requested action: " + what,
        std::string(kNotImplemented)));
  }
};

OctaviaApi::OctaviaApi(state::ModelState& state, OctaviaConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(state, std::move(config), clock)) {}

OctaviaApi::~OctaviaApi() = default;

HttpResponse OctaviaApi::handle(const HttpRequest& request) {
  HttpResponse r = impl_->route(request);
  spdlog::debug("octavia: {} {} -> {}", request.method, request.path, r.status);
  return r;
}

}  // namespace canopy::octavia
