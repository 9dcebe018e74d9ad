#include "api/neutron_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <random>

#include "api/detail/endpoint.h"
#include "api/detail/logs.h"
#include "api/detail/port_forwardings.h"
#include "api/detail/qos.h"
#include "api/detail/trunks.h"
#include "api/kind.h"
#include "base/ip.h"
#include "base/mutex.h"
#include "model/query.h"
#include "model/quota.h"

namespace canopy::api {

using detail::json;

int httpStatus(Errc code) {
  switch (code) {
    case Errc::InvalidArgument:
      return 400;
    case Errc::Unauthenticated:
      return 401;
    case Errc::PermissionDenied:
      return 403;
    case Errc::NotFound:
      return 404;
    case Errc::Conflict:
      return 409;
    case Errc::PreconditionFailed:
      return 412;
    case Errc::Unavailable:
      return 503;
    case Errc::Compacted:
    case Errc::Internal:
      return 500;
  }
  return 500;
}

// Splits "/v2.0/networks/abc" into ["v2.0", "networks", "abc"], dropping a
// ".json" suffix on the last segment.
std::vector<std::string> splitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    if (slash > start) out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  if (!out.empty() && out.back().ends_with(".json")) out.back().resize(out.back().size() - 5);
  return out;
}

namespace {

using model::Action;
using model::Caller;
using model::Json;
using model::ResourceSpec;

std::string defaultReason(Errc code) {
  switch (code) {
    case Errc::InvalidArgument:
      return "HTTPBadRequest";
    case Errc::Unauthenticated:
      return "HTTPUnauthorized";
    case Errc::PermissionDenied:
      return "PolicyNotAuthorized";
    case Errc::NotFound:
      return "HTTPNotFound";
    case Errc::Conflict:
      return "HTTPConflict";
    case Errc::PreconditionFailed:
      return "PreconditionFailed";
    case Errc::Unavailable:
      return "HTTPServiceUnavailable";
    case Errc::Compacted:
    case Errc::Internal:
      return "HTTPInternalServerError";
  }
  return "HTTPInternalServerError";
}

// What the API itself implements, beyond what each kind lists.
constexpr Extension kApiExtensions[] = {
    {"quotas", "Quota management support", "Expose functions for quotas management per project"},
    {"quota_details", "Quota details management support",
     "Expose functions for quotas usage statistics per project"},
    {"pagination", "Pagination support", "Extension that indicates that pagination is enabled."},
    {"project-id", "project_id field enabled",
     "Extension that indicates that project_id field is enabled."},
    {"sorting", "Sorting support", "Extension that indicates that sorting is enabled."},
    {"standard-attr-description", "standard-attr-description",
     "Extension to add descriptions to standard attributes"},
    {"standard-attr-revisions", "Resource revision numbers",
     "This extension will display the revision number of neutron resources."},
    {"standard-attr-tag",
     "Tag support for resources with standard attribute: subnet, trunk, network_segment_range, "
     "router, network, policy, subnetpool, port, security_group, floatingip",
     "Enables to set tag on resources with standard attribute."},
    {"standard-attr-timestamp", "Resource timestamps",
     "Adds created_at and updated_at fields to all Neutron resources that have Neutron standard "
     "attributes."},
    {"filter-validation", "Filter parameters validation",
     "Provides validation on filter parameters."},
    {"floatingip-pools", "Floating IP Pools", "Provides a floating IP pools API."},
    {"agent", "agent", "The agent management extension."},
};

Json extensionJson(const Extension& e) {
  return Json{{"alias", e.alias},
              {"name", e.name},
              {"description", e.description},
              {"updated", "2026-11-21T00:00:00-00:00"},
              {"links", Json::array()}};
}

}  // namespace

HttpResponse errorResponse(const Error& error) {
  std::string type = error.reason().empty() ? defaultReason(error.code()) : error.reason();
  return json(
      httpStatus(error.code()),
      Json{{"NeutronError", {{"type", type}, {"message", error.message()}, {"detail", ""}}}});
}

HttpResponse transportError(int status, std::string message) {
  std::string type = status == 413   ? "HTTPRequestEntityTooLarge"
                     : status == 400 ? "HTTPBadRequest"
                     : status == 500 ? "HTTPInternalServerError"
                                     : "HTTPError";
  return json(status,
              Json{{"NeutronError", {{"type", type}, {"message", message}, {"detail", ""}}}});
}

namespace detail {

HttpResponse json(int status, const Json& body) {
  HttpResponse r;
  r.status = status;
  // Messages may quote what the caller sent, which need not be UTF-8.
  r.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return r;
}

bool canChange(const Json& doc, const Caller& caller) {
  return caller.is_admin || doc.value("project_id", "") == caller.project_id;
}

// If-Match: revision_number=N (several may be given, comma-separated).
Result<void> checkIfMatch(const HttpRequest& req, const Json& doc) {
  std::string_view header = req.header("if-match");
  if (header.empty()) return ok();
  int64_t current = doc.value("revision_number", int64_t{0});
  for (auto& part : model::splitCommas(std::string(header))) {
    std::string p = part;
    p.erase(0, p.find_first_not_of(' '));
    int64_t wanted = -1;
    if (p.starts_with("revision_number=")) {
      auto digits = std::string_view(p).substr(16);
      auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), wanted);
      if (ec != std::errc() || end != digits.data() + digits.size()) wanted = -1;
    }
    if (wanted < 0) {
      return model::badRequest("Unrecognized If-Match header: " + std::string(header));
    }
    if (wanted == current) return ok();
  }
  return Error(Errc::PreconditionFailed,
               "Constrained to " + std::string(header) + ", but current revision is " +
                   std::to_string(current),
               "RevisionNumberConstraintFailed");
}

// The visible, changeable document with this id, or the error to answer.
Result<const state::Document*> target(const ResourceKind& kind, const std::string& id,
                                      Transaction& ctx, const HttpRequest& req, const char* verb) {
  const state::Document* d = ctx.find(kind.spec().collection, id);
  if (d == nullptr || !kind.visible(d->doc, ctx.caller(), ctx.tables())) {
    return notFound(kind.spec(), id);
  }
  switch (kind.access(d->doc, ctx.caller(), ctx.tables(), verb)) {
    case ResourceKind::Access::Allowed:
      break;
    case ResourceKind::Access::Hidden:
      return notFound(kind.spec(), id);
    case ResourceKind::Access::Refused:
      return model::policyRefused("(rule:" + std::string(verb) + "_" + kind.spec().member +
                                  ") is disallowed by policy");
  }
  if (auto m = checkIfMatch(req, d->doc); !m) return std::move(m).error();
  return d;
}

HttpResponse unknownPath(const HttpRequest& req) {
  spdlog::debug("api: no route for {} {}", req.method, req.path);
  return errorResponse(Error(Errc::NotFound, "The resource could not be found.", "HTTPNotFound"));
}

HttpResponse noContent() {
  HttpResponse out;
  out.status = 204;
  return out;
}

Json selectFields(const Json& view, const HttpRequest& req) {
  std::vector<std::string> fields;
  for (const auto& [k, v] : req.query) {
    if (k == "fields") fields.push_back(v);
  }
  if (fields.empty()) return view;
  Json only = Json::object();
  for (const auto& f : fields) {
    if (view.contains(f)) only[f] = view[f];
  }
  return only;
}

Result<void> checkOtherAttribute(const std::string& key, const Json& value, bool create,
                                 std::initializer_list<std::string_view> read_only) {
  if ((key == "project_id" || key == "tenant_id") && create) {
    if (!value.is_string()) {
      return model::invalidInput(key, "'" + value.dump() + "' is not a valid string");
    }
    return ok();
  }
  bool refused = key == "id" || key == "project_id" || key == "tenant_id";
  for (auto r : read_only) refused |= key == r;
  if (refused) {
    return model::badRequest("Attribute '" + key + "' not allowed in " + (create ? "POST" : "PUT"));
  }
  return model::badRequest("Unrecognized attribute(s) '" + key + "'");
}

void putParent(Transaction& ctx, std::string_view collection, const std::string& id, Json doc,
               store::Revision read) {
  doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
  doc["updated_at"] = ctx.now();
  ctx.guard(collection, id, read);
  ctx.put(collection, id, doc);
}

HttpResponse methodNotAllowed() {
  HttpResponse r =
      errorResponse(Error(Errc::InvalidArgument, "The method is not allowed for the requested URL.",
                          "HTTPMethodNotAllowed"));
  r.status = 405;
  return r;
}

}  // namespace detail

using detail::canChange;
using detail::methodNotAllowed;
using detail::target;
using detail::unknownPath;

// Where a collection is below /v2.0: metering's below metering/, QoS
// policies (stored as qos-policies) at qos/policies.
std::string urlPath(const ResourceSpec& spec) {
  if (spec.collection.starts_with("metering-")) return "metering/" + spec.collection;
  if (spec.collection.starts_with("qos-")) return "qos/" + spec.collection.substr(4);
  if (spec.collection == "logs") return "log/logs";
  return spec.collection;
}

struct NeutronApi::Impl {
  Impl(state::ModelState& s, ApiConfig c, const Clock& k)
      : state(s),
        config(std::move(c)),
        own_auth(config.auth == nullptr ? noAuth() : nullptr),
        auth(config.auth != nullptr ? *config.auth : *own_auth),
        clock(k),
        writer{s, k},
        kinds(makeResourceKinds(config.network)) {}

  state::ModelState& state;
  ApiConfig config;
  std::unique_ptr<Authenticator> own_auth;
  Authenticator& auth;
  const Clock& clock;
  detail::ApiWriter writer;
  std::vector<std::unique_ptr<ResourceKind>> kinds;

  // As Neutron, a collection's dashes may be written as underscores
  // (/v2.0/local_ips for local-ips).
  const ResourceKind* kindFor(std::string_view collection) const {
    for (const auto& k : kinds) {
      if (k->spec().collection == collection) return k.get();
    }
    std::string dashed(collection);
    std::replace(dashed.begin(), dashed.end(), '_', '-');
    for (const auto& k : kinds) {
      if (k->spec().collection == dashed) return k.get();
    }
    return nullptr;
  }

  // The document as the API shows it to this caller.
  Json present(const ResourceKind& kind, const Json& doc, const state::Tables& tables,
               const Caller& caller) const {
    Json view = model::visibleView(kind.spec(), doc, caller);
    kind.presentOwn(view, doc);
    kind.present(view, doc, tables, caller);
    return view;
  }

  static std::string hostPrefix(const HttpRequest& req) {
    std::string_view host = req.header("host");
    return host.empty() ? std::string() : "http://" + std::string(host);
  }

  HttpResponse list(const ResourceKind& kind, const HttpRequest& req, const Caller& caller) {
    const ResourceSpec& spec = kind.spec();
    auto query = model::ListQuery::parse(spec, req.query, caller);
    if (!query) return errorResponse(query.error());
    bool missing = state.read(
        [&](const state::Tables& tables) { return kind.missingDefaults(tables, caller); });
    if (missing) {
      auto made = writeWithRetry(caller, [&](Transaction& ctx) -> Result<void> {
        if (!kind.missingDefaults(ctx.tables(), caller)) return ok();
        return kind.createDefaults(ctx);
      });
      if (!made) return errorResponse(made.error());
    }
    // The page, serialised: views of kinds that derive nothing are cached
    // with each document version; the others are built for each request.
    std::string items;
    model::ListSelection page;
    state.read([&](const state::Tables& tables) {
      const state::Collection& collection = tables.collection(spec.collection);
      std::vector<const Json*> docs;
      std::vector<Json> views;  // for kinds that derive attributes
      if (kind.derived()) {
        for (Json& d : kind.deriveAll(tables)) {
          if (kind.visible(d, caller, tables)) views.push_back(std::move(d));
        }
        for (const auto& v : views) docs.push_back(&v);
      } else if (kind.derivesViews()) {
        for (auto& [id, d] : collection) {
          if (kind.visible(d.doc, caller, tables)) {
            views.push_back(present(kind, d.doc, tables, caller));
          }
        }
        for (const auto& v : views) docs.push_back(&v);
      } else {
        for (auto& [id, d] : collection) {
          if (kind.visible(d.doc, caller, tables)) docs.push_back(&d.doc);
        }
      }
      page = query->select(std::move(docs), [&](const Json& doc, const std::string& attr) {
        return kind.hiddenValue(doc, attr, tables, caller);
      });
      for (const Json* doc : page.items) {
        if (!items.empty()) items += ',';
        if (kind.derived()) {
          items += query->project(model::visibleView(spec, *doc, caller)).dump();
        } else if (kind.derivesViews()) {
          items += query->project(*doc).dump();
        } else if (query->projects()) {
          Json view = model::visibleView(spec, *doc, caller);
          kind.presentOwn(view, *doc);
          items += query->project(view).dump();
        } else {
          items += cachedView(kind, collection.at(doc->value("id", "")), caller);
        }
      }
      return 0;
    });
    std::string body = "{\"" + spec.jsonPlural() + "\":[" + items + "]";
    if (page.next_marker || page.previous_marker) {
      Json links = Json::array();
      auto link = [&](const std::string& marker, bool reverse, const char* rel) {
        std::string href = "/v2.0/" + urlPath(spec) + "?limit=" + std::to_string(*query->limit());
        for (auto& [k, v] : query->linkParams())
          href += "&" + http::urlEncode(k) + "=" + http::urlEncode(v);
        if (!marker.empty()) href += "&marker=" + http::urlEncode(marker);
        if (reverse) href += "&page_reverse=True";
        links.push_back({{"href", hostPrefix(req) + href}, {"rel", rel}});
      };
      if (page.next_marker) link(*page.next_marker, false, "next");
      if (page.previous_marker) link(*page.previous_marker, true, "previous");
      body += ",\"" + spec.jsonPlural() + "_links\":" + links.dump();
    }
    body += "}";
    HttpResponse r;
    r.status = 200;
    r.body = std::move(body);
    return r;
  }

  // A document's view for this caller, serialised once per version.
  static std::string cachedView(const ResourceKind& kind, const state::Document& d,
                                const Caller& caller) {
    int slot = caller.is_admin ? 1 : 0;
    std::lock_guard lock(d.memo->mu);
    if (!d.memo->ready[slot]) {
      Json view = model::visibleView(kind.spec(), d.doc, caller);
      kind.presentOwn(view, d.doc);
      d.memo->text[slot] = view.dump();
      d.memo->ready[slot] = true;
    }
    return d.memo->text[slot];
  }

  HttpResponse show(const ResourceKind& kind, const std::string& id, const HttpRequest& req,
                    const Caller& caller) {
    const ResourceSpec& spec = kind.spec();
    auto fields = model::ListQuery::parse(spec, req.query, caller);
    if (!fields) return errorResponse(fields.error());
    std::optional<Json> view = state.read([&](const state::Tables& tables) -> std::optional<Json> {
      if (kind.derived()) {
        for (Json& d : kind.deriveAll(tables)) {
          if (d.value("id", "") == id && kind.visible(d, caller, tables)) {
            return model::visibleView(spec, d, caller);
          }
        }
        return std::nullopt;
      }
      const state::Document* d = tables.find(spec.collection, id);
      if (d == nullptr || !kind.visible(d->doc, caller, tables)) return std::nullopt;
      return present(kind, d->doc, tables, caller);
    });
    if (!view) return errorResponse(notFound(spec, id));
    auto projected = fields->apply({std::move(*view)});
    if (projected.items.empty()) return errorResponse(notFound(spec, id));
    return json(200, {{spec.member, std::move(projected.items.front())}});
  }

  // Stamps what the server decides for every new document.
  Result<Json> stampNew(Json doc, const Caller& caller, const std::string& now) {
    std::string project = doc.value("project_id", "");
    std::string tenant = doc.value("tenant_id", "");
    if (!project.empty() && !tenant.empty() && project != tenant) {
      return model::badRequest("'project_id' and 'tenant_id' do not match");
    }
    if (project.empty()) project = tenant;
    if (project.empty()) project = caller.project_id;
    if (!caller.is_admin && project != caller.project_id) {
      return model::badRequest(
          "Specifying 'project_id' or 'tenant_id' other than the authenticated project in "
          "request requires admin privileges");
    }
    doc["project_id"] = project;
    doc["tenant_id"] = project;
    doc["id"] = newUuid();
    doc["created_at"] = now;
    doc["updated_at"] = now;
    doc["revision_number"] = 1;
    if (!doc["tags"].is_array()) doc["tags"] = Json::array();
    return doc;
  }

  Result<void> writeWithRetry(const Caller& caller, const state::ModelState::Build& build) {
    return writer.write(caller, build);
  }

  HttpResponse create(const ResourceKind& kind, const HttpRequest& req, const Caller& caller) {
    const ResourceSpec& spec = kind.spec();
    bool bulk = false;
    auto items = model::parseBody(spec, req.body, Action::Create, bulk);
    if (!items) return errorResponse(items.error());
    std::vector<Json> validated;
    for (auto& item : *items) {
      auto v = model::validateAttributes(spec, item, Action::Create, caller);
      if (!v) return errorResponse(v.error());
      validated.push_back(std::move(*v));
    }
    std::vector<Json> created;
    auto r = writeWithRetry(caller, [&](Transaction& ctx) -> Result<void> {
      created.clear();
      std::map<std::string, int64_t> counted;  // project -> this request's new documents
      for (const Json& v : validated) {
        auto doc = stampNew(v, caller, ctx.now());
        if (!doc) return std::move(doc).error();
        if (auto q = checkQuota(spec.collection, (*doc)["project_id"],
                                ++counted[(*doc)["project_id"]], ctx);
            !q) {
          return q;
        }
        if (auto k = kind.create(*doc, ctx); !k) return k;
        std::string id = (*doc)["id"];
        ctx.guardAbsent(spec.collection, id);
        ctx.put(spec.collection, id, *doc);
        created.push_back(std::move(*doc));
      }
      return ok();
    });
    if (!r) return errorResponse(r.error());
    Json out = Json::array();
    state.read([&](const state::Tables& tables) {
      for (auto& d : created) out.push_back(present(kind, d, tables, caller));
      return 0;
    });
    if (bulk) return json(201, {{spec.jsonPlural(), std::move(out)}});
    return json(201, {{spec.member, std::move(out.front())}});
  }

  HttpResponse update(const ResourceKind& kind, const std::string& id, const HttpRequest& req,
                      const Caller& caller) {
    const ResourceSpec& spec = kind.spec();
    bool bulk = false;
    auto items = model::parseBody(spec, req.body, Action::Update, bulk);
    if (!items) return errorResponse(items.error());
    auto changes = model::validateAttributes(spec, items->front(), Action::Update, caller);
    if (!changes) return errorResponse(changes.error());
    Json result;
    auto r = writeWithRetry(caller, [&](Transaction& ctx) -> Result<void> {
      auto current = target(kind, id, ctx, req, "update");
      if (!current) return std::move(current).error();
      Json doc = (*current)->doc;
      kind.prepareUpdate(*changes, doc);
      bool changed = false;
      for (auto it = changes->begin(); it != changes->end(); ++it) {
        if (doc[it.key()] != it.value()) changed = true;
        doc[it.key()] = it.value();
      }
      result = doc;
      if (!changed) return ok();  // nothing to write; the empty transaction commits
      if (auto k = kind.update(doc, (*current)->doc, ctx); !k) return k;
      doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
      doc["updated_at"] = ctx.now();
      ctx.guard(spec.collection, id, (*current)->mod_revision);
      ctx.put(spec.collection, id, doc);
      result = std::move(doc);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    Json view = state.read(
        [&](const state::Tables& tables) { return present(kind, result, tables, caller); });
    return json(200, {{spec.member, std::move(view)}});
  }

  HttpResponse remove(const ResourceKind& kind, const std::string& id, const HttpRequest& req,
                      const Caller& caller) {
    if (!req.body.empty()) {
      return errorResponse(model::badRequest("Request body is not supported in DELETE."));
    }
    auto r = writeWithRetry(caller, [&](Transaction& ctx) -> Result<void> {
      auto current = target(kind, id, ctx, req, "delete");
      if (!current) return std::move(current).error();
      if (auto k = kind.remove((*current)->doc, ctx); !k) return k;
      ctx.guard(kind.spec().collection, id, (*current)->mod_revision);
      ctx.remove(kind.spec().collection, id);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    HttpResponse out;
    out.status = 204;
    return out;
  }

  // PUT /v2.0/<collection>/<id>/<action>.
  HttpResponse memberAction(const ResourceKind& kind, const std::string& id,
                            const std::string& name, const HttpRequest& req, const Caller& caller) {
    if (req.method != "PUT") return methodNotAllowed();
    auto body = model::parseJson(req.body);
    if (!body) return errorResponse(body.error());
    Json result;
    auto r = writeWithRetry(caller, [&](Transaction& ctx) -> Result<void> {
      auto current = target(kind, id, ctx, req, name.c_str());
      if (!current) return std::move(current).error();
      auto out = kind.action(name, *body, **current, ctx);
      if (!out) return std::move(out).error();
      result = std::move(*out);
      return ok();
    });
    if (!r) return errorResponse(r.error());
    return json(200, result);
  }

  HttpResponse versions(const HttpRequest& req) {
    return json(200, {{"versions",
                       {{{"id", "v2.0"},
                         {"status", "CURRENT"},
                         {"links", {{{"href", hostPrefix(req) + "/v2.0/"}, {"rel", "self"}}}}}}}});
  }

  HttpResponse resources(const HttpRequest& req) {
    Json list = Json::array();
    for (const auto& kind : kinds) {
      const ResourceSpec& spec = kind->spec();
      const std::string path = urlPath(spec);
      list.push_back({{"name", spec.member},
                      {"collection", spec.jsonPlural()},
                      {"links", {{{"href", hostPrefix(req) + "/v2.0/" + path}, {"rel", "self"}}}}});
    }
    return json(200, {{"resources", list}});
  }

  // The API's own extensions, then each kind's.
  std::vector<Extension> allExtensions() const {
    std::vector<Extension> all(std::begin(kApiExtensions), std::end(kApiExtensions));
    for (const auto& kind : kinds) {
      auto own = kind->extensions();
      all.insert(all.end(), own.begin(), own.end());
    }
    return all;
  }

  HttpResponse extensions(const std::vector<std::string>& parts) {
    if (parts.size() == 2) {
      Json list = Json::array();
      for (const auto& e : allExtensions()) list.push_back(extensionJson(e));
      return json(200, {{"extensions", list}});
    }
    for (const auto& e : allExtensions()) {
      if (parts[2] == e.alias) return json(200, {{"extension", extensionJson(e)}});
    }
    return errorResponse(Error(
        Errc::NotFound, "Extension with alias " + parts[2] + " does not exist", "HTTPNotFound"));
  }

  HttpResponse route(const HttpRequest& req) {
    auto parts = splitPath(req.path);
    if (parts.empty()) {
      if (req.method == "GET") return versions(req);
      return methodNotAllowed();
    }
    if (auto served = auth.serve(req)) return *served;
    bool canopy = parts[0] == "canopy" && parts.size() >= 2 && parts[1] == "v1" && config.canopy;
    if (parts[0] != "v2.0" && !canopy) return unknownPath(req);
    auto caller = auth.authenticate(req);
    if (!caller) {
      if (caller.error().code() == Errc::Unauthenticated) return auth.unauthorized(req);
      return errorResponse(caller.error());
    }
    if (canopy) return config.canopy(req, *caller);
    // Metering's collections live below /v2.0/metering.
    if (parts.size() >= 3 && parts[1] == "metering") parts.erase(parts.begin() + 1);
    // Logging's below /v2.0/log.
    if (parts.size() >= 3 && parts[1] == "log") {
      parts.erase(parts.begin() + 1);
      if (parts[1] == "loggable-resources" || parts[1] == "loggable_resources") {
        if (parts.size() > 2) return unknownPath(req);
        return detail::serveLoggableResources(req, *caller);
      }
      if (parts[1] != "logs") return unknownPath(req);
    } else if (parts.size() >= 2 && parts[1] == "logs") {
      return unknownPath(req);
    }
    // QoS's below /v2.0/qos: its policies are stored as qos-policies.
    if (parts.size() >= 3 && parts[1] == "qos") {
      parts.erase(parts.begin() + 1);
      if (parts[1] == "rule-types" || parts[1] == "rule_types") {
        if (parts.size() > 3) return unknownPath(req);
        return detail::serveQosRuleTypes(parts, req, *caller);
      }
      if (parts[1] != "policies") return unknownPath(req);
      parts[1] = "qos-policies";
    } else if (parts.size() >= 2 && parts[1] == "qos-policies") {
      return unknownPath(req);
    } else if (parts.size() >= 4 && parts[1] == "policies" && parts[3] == "tags") {
      // Tags name QoS policies by their resource alone (/v2.0/policies/<id>/tags).
      parts[1] = "qos-policies";
    }
    if (parts.size() == 1) {
      if (req.method == "GET") return resources(req);
      return methodNotAllowed();
    }
    if (parts[1] == "extensions" && parts.size() <= 3) {
      if (req.method == "GET") return extensions(parts);
      return methodNotAllowed();
    }
    if (parts[1] == "quotas" && parts.size() <= 4) {
      return detail::serveQuotas(writer, parts, req, *caller);
    }
    if (parts[1] == "floatingip-pools") return detail::serveFloatingIpPools(writer, parts, req);
    if (parts[1] == "agents" && parts.size() <= 3) {
      return detail::serveAgents(writer, parts, req, *caller);
    }
    if (parts[1] == "networks" && parts.size() == 4 && parts[3] == "dhcp-agents") {
      return detail::serveNetworkDhcpAgents(writer, parts[2], req, *caller);
    }
    const ResourceKind* kind = kindFor(parts[1]);
    if (kind != nullptr && parts.size() == 4 && kind->hasAction(parts[3])) {
      return memberAction(*kind, parts[2], parts[3], req, *caller);
    }
    if (kind != nullptr && parts.size() >= 4 && parts.size() <= 5 && parts[3] == "tags" &&
        kind->spec().find("tags") != nullptr) {
      return detail::serveTags(writer, *kind, parts[2], parts.size() == 5 ? &parts[4] : nullptr,
                               req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "flavors" && parts.size() >= 4 &&
        parts.size() <= 5 && parts[3] == "service_profiles") {
      return detail::serveFlavorProfiles(writer, *kind, parts, req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "local-ips" && parts.size() >= 4 &&
        parts.size() <= 5 && parts[3] == "port_associations") {
      return detail::serveLocalIpAssociations(writer, *kind, parts, req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "ports" && parts.size() >= 4 &&
        parts.size() <= 6 && parts[3] == "bindings") {
      return detail::servePortBindings(writer, *kind, parts, req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "floatingips" && parts.size() >= 4 &&
        parts.size() <= 5 && parts[3] == "port_forwardings") {
      return detail::serveFloatingIpPortForwardings(writer, *kind, parts, req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "trunks" && parts.size() == 4 &&
        parts[3] == "get_subports") {
      return detail::serveTrunkSubports(writer, *kind, parts[2], req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "qos-policies" && parts.size() >= 4 &&
        parts.size() <= 5 && parts[3] != "tags") {
      return detail::serveQosRules(writer, *kind, parts, req, *caller);
    }
    if (kind != nullptr && kind->spec().collection == "routers" && parts.size() >= 4 &&
        parts.size() <= 5 && parts[3] == "conntrack_helpers") {
      return detail::serveConntrackHelpers(writer, *kind, parts, req, *caller);
    }
    if (kind == nullptr || parts.size() > 3) return unknownPath(req);
    if (kind->derived() && req.method != "GET") return methodNotAllowed();
    if (parts.size() == 2) {
      if (req.method == "GET") return list(*kind, req, *caller);
      if (req.method == "POST") return create(*kind, req, *caller);
      return methodNotAllowed();
    }
    const std::string& id = parts[2];
    if (req.method == "GET") return show(*kind, id, req, *caller);
    if (req.method == "PUT") return update(*kind, id, req, *caller);
    if (req.method == "DELETE") return remove(*kind, id, req, *caller);
    return methodNotAllowed();
  }
};

NeutronApi::NeutronApi(state::ModelState& state, ApiConfig config, const Clock& clock)
    : impl_(std::make_unique<Impl>(state, std::move(config), clock)) {}

NeutronApi::~NeutronApi() = default;

HttpResponse NeutronApi::handle(const HttpRequest& request) {
  HttpResponse r = impl_->route(request);
  spdlog::debug("api: {} {} -> {}", request.method, request.path, r.status);
  return r;
}

}  // namespace canopy::api
