// Tags on resources with standard attributes (standard-attr-tag).

#include <algorithm>

#include "api/detail/endpoint.h"

namespace canopy::api::detail {

// standard-attr-tag: /v2.0/<collection>/<id>/tags[/<tag>].
HttpResponse serveTags(const ApiWriter& w, const ResourceKind& kind, const std::string& id,
                       const std::string* tag, const HttpRequest& req, const Caller& caller) {
  auto checkTag = [](const Json& t) -> Result<void> {
    if (!t.is_string() || t.get_ref<const std::string&>().empty() ||
        t.get_ref<const std::string&>().size() > 255 ||
        t.get_ref<const std::string&>().find(',') != std::string::npos) {
      return model::badRequest("Invalid tag: '" +
                               (t.is_string() ? t.get<std::string>() : t.dump()) +
                               "'. Tags are 1 to 255 characters without a comma.");
    }
    return ok();
  };
  if (req.method == "GET") {
    auto current = w.state.read([&](const state::Tables& tables) -> std::optional<state::Document> {
      const state::Document* d = tables.find(kind.spec().collection, id);
      if (d == nullptr || !kind.visible(d->doc, caller, tables)) return std::nullopt;
      return *d;
    });
    if (!current) return errorResponse(notFound(kind.spec(), id));
    Json list = current->doc.value("tags", Json::array());
    if (tag == nullptr) return json(200, {{"tags", list}});
    if (std::find(list.begin(), list.end(), Json(*tag)) == list.end()) {
      return errorResponse(Error(Errc::NotFound,
                                 "Tag " + *tag + " could not be found for resource " + id + ".",
                                 "TagNotFound"));
    }
    HttpResponse r;
    r.status = 204;
    return r;
  }
  // The new tag list for PUT/DELETE, from the request and the current list.
  std::optional<Json> wanted;
  if (req.method == "PUT" && tag == nullptr) {
    auto body = model::parseJson(req.body);
    if (!body) return errorResponse(body.error());
    if (!body->is_object() || !body->contains("tags") || !(*body)["tags"].is_array()) {
      return errorResponse(model::badRequest("Invalid tags body: expected {\"tags\": [...]}"));
    }
    for (const auto& t : (*body)["tags"]) {
      if (auto r = checkTag(t); !r) return errorResponse(r.error());
    }
    wanted = (*body)["tags"];
  } else if (req.method == "PUT") {
    if (auto r = checkTag(Json(*tag)); !r) return errorResponse(r.error());
  } else if (req.method != "DELETE") {
    return methodNotAllowed();
  }
  bool missing_tag = false;
  Json result;
  auto r = w.write(caller, [&](Transaction& ctx) -> Result<void> {
    // Kinds whose updates are an admin's may still let their owners tag them.
    auto current = target(kind, id, ctx, req, "tag");
    if (!current) return std::move(current).error();
    Json doc = (*current)->doc;
    Json list = doc.value("tags", Json::array());
    Json next;
    if (wanted) {
      next = Json::array();
      for (const auto& t : *wanted) {
        if (std::find(next.begin(), next.end(), t) == next.end()) next.push_back(t);
      }
    } else if (req.method == "PUT") {
      next = list;
      if (std::find(next.begin(), next.end(), Json(*tag)) == next.end()) next.push_back(*tag);
    } else if (tag == nullptr) {
      next = Json::array();
    } else {
      next = Json::array();
      for (const auto& t : list) {
        if (t != *tag) next.push_back(t);
      }
      missing_tag = next.size() == list.size();
      if (missing_tag) return ok();
    }
    result = next;
    if (next == list) return ok();
    doc["tags"] = next;
    doc["revision_number"] = doc.value("revision_number", int64_t{0}) + 1;
    doc["updated_at"] = ctx.now();
    ctx.guard(kind.spec().collection, id, (*current)->mod_revision);
    ctx.put(kind.spec().collection, id, doc);
    return ok();
  });
  if (!r) return errorResponse(r.error());
  if (missing_tag) {
    return errorResponse(Error(Errc::NotFound,
                               "Tag " + *tag + " could not be found for resource " + id + ".",
                               "TagNotFound"));
  }
  if (wanted) return json(200, {{"tags", result}});
  HttpResponse out;
  out.status = req.method == "PUT" ? 201 : 204;
  return out;
}

}  // namespace canopy::api::detail
