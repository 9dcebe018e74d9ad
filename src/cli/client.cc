#include "cli/client.h"

#include <cctype>
#include <optional>

namespace canopy::cli {

Result<http::HttpReply> HttpTransport::send(const http::HttpUrl& url, const std::string& method,
                                            const std::string& target, const std::string& body,
                                            const Headers& headers) {
  return http::httpRequest(url, method, target, body, headers, timeout_);
}

namespace {

Errc errcForStatus(int status) {
  switch (status) {
    case 400:
      return Errc::InvalidArgument;
    case 401:
      return Errc::Unauthenticated;
    case 403:
      return Errc::PermissionDenied;
    case 404:
      return Errc::NotFound;
    case 409:
      return Errc::Conflict;
    case 412:
      return Errc::PreconditionFailed;
    case 503:
      return Errc::Unavailable;
    default:
      return status >= 500 ? Errc::Internal : Errc::InvalidArgument;
  }
}

std::string capitalized(std::string_view noun) {
  std::string s(noun);
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

bool looksLikeUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

}  // namespace

Error errorFromReply(const http::HttpReply& reply) {
  std::string message;
  std::string reason;
  auto body = model::parseJson(reply.body);
  if (body && body->is_object()) {
    if (auto it = body->find("NeutronError"); it != body->end() && it->is_object()) {
      message = model::stringAt(*it, "message");
      reason = model::stringAt(*it, "type");
    } else if (auto e = body->find("error"); e != body->end() && e->is_object()) {
      message = model::stringAt(*e, "message");
    }
  }
  if (message.empty()) {
    message = reply.body.substr(0, reply.body.find('\n'));
    if (message.size() > 200) message = message.substr(0, 200) + "...";
  }
  if (message.empty()) message = "the server answered with no message";
  return Error(errcForStatus(reply.status),
               message + " (HTTP " + std::to_string(reply.status) + ")", reason);
}

Result<Json> memberOf(Result<Json> answer, const std::string& key) {
  if (!answer) return answer;
  if (!answer->is_object() || !answer->contains(key)) {
    return Error(Errc::Internal, "the server's answer has no '" + key + "'");
  }
  return std::move((*answer)[key]);
}

std::string urlEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    }
  }
  return out;
}

std::string withQuery(std::string path, const Query& query) {
  char sep = path.find('?') == std::string::npos ? '?' : '&';
  for (const auto& [key, value] : query) {
    path += sep + urlEncode(key) + "=" + urlEncode(value);
    sep = '&';
  }
  return path;
}

Result<std::unique_ptr<Client>> Client::connect(const Credentials& credentials,
                                                Transport& transport) {
  http::HttpUrl endpoint;
  if (!credentials.endpoint.empty()) {
    auto url = http::HttpUrl::parse(credentials.endpoint);
    if (!url) return url.error();
    endpoint = *url;
  }
  std::unique_ptr<Client> client(new Client(transport, endpoint));
  if (credentials.auth_type == "none") {
    client->project_id_ = credentials.project_id;
    client->noauth_project_ = !credentials.project_id.empty();
    return client;
  }
  if (auto r = client->authenticate(credentials); !r) return r.error();
  return client;
}

Result<void> Client::authenticate(const Credentials& c) {
  auto url = http::HttpUrl::parse(c.auth_url);
  if (!url) return url.error();
  if (!url->path.ends_with("/v3")) url->path += "/v3";
  identity_ = *url;
  Json user = {
      {"name", c.username}, {"password", c.password}, {"domain", {{"name", c.user_domain_name}}}};
  Json auth = {{"identity", {{"methods", {"password"}}, {"password", {{"user", user}}}}}};
  if (!c.project_id.empty()) {
    auth["scope"] = {{"project", {{"id", c.project_id}}}};
  } else if (!c.project_name.empty()) {
    auth["scope"] = {
        {"project", {{"name", c.project_name}, {"domain", {{"name", c.project_domain_name}}}}}};
  }
  std::string body = Json{{"auth", auth}}.dump();
  auto reply = transport_.send(*url, "POST", url->path + "/auth/tokens", body, {});
  auto where = "authenticating at " + url->toString();
  if (!reply)
    return Error(reply.error().code(),
                 "cannot reach " + url->toString() + " (" + reply.error().message() + ")");
  if (reply->status != 201 && reply->status != 200) {
    return errorFromReply(*reply).withContext(where);
  }
  token_ = reply->header("X-Subject-Token");
  auto doc = model::parseJson(reply->body);
  if (token_.empty() || !doc || !doc->is_object() || !doc->contains("token")) {
    return Error(Errc::Unavailable, where + ": the answer holds no token");
  }
  const Json& token = (*doc)["token"];
  if (token.contains("project") && token["project"].is_object()) {
    project_id_ = model::stringAt(token["project"], "id");
  }
  if (!endpoint_.host.empty()) return ok();  // an explicit endpoint wins over the catalog
  for (const auto& service : token.value("catalog", Json::array())) {
    if (model::stringAt(service, "type") != "network") continue;
    for (const auto& e : service.value("endpoints", Json::array())) {
      if (model::stringAt(e, "interface") != "public") continue;
      if (!c.region_name.empty() && model::stringAt(e, "region") != c.region_name &&
          model::stringAt(e, "region_id") != c.region_name) {
        continue;
      }
      auto endpoint = http::HttpUrl::parse(model::stringAt(e, "url"));
      if (!endpoint) return endpoint.error().withContext("the catalog's network endpoint");
      endpoint_ = *endpoint;
      return ok();
    }
  }
  return Error(Errc::NotFound, where + ": the token's catalog has no public network endpoint" +
                                   (c.region_name.empty() ? "" : " in region " + c.region_name));
}

Result<Json> Client::exchange(const http::HttpUrl& base, const std::string& method,
                              const std::string& path, const Json* body) {
  Headers headers;
  if (!token_.empty()) headers.emplace_back("X-Auth-Token", token_);
  if (noauth_project_) headers.emplace_back("X-Project-Id", project_id_);
  headers.emplace_back("User-Agent", "canopy");
  auto reply =
      transport_.send(base, method, base.path + path, body != nullptr ? body->dump() : "", headers);
  if (!reply) {
    return Error(reply.error().code(),
                 "cannot reach " + base.toString() + " (" + reply.error().message() + ")");
  }
  if (reply->status < 200 || reply->status >= 300) return errorFromReply(*reply);
  if (reply->body.empty()) return Json();
  auto doc = model::parseJson(reply->body);
  if (!doc) {
    return Error(Errc::Internal,
                 method + " " + path + ": the answer is not JSON (" + doc.error().message() + ")");
  }
  return doc;
}

Result<Json> Client::request(const std::string& method, const std::string& path, const Json* body) {
  return exchange(endpoint_, method, path, body);
}

Result<std::vector<Json>> Client::list(const Collection& collection, const Query& query) {
  auto doc = get(withQuery("/v2.0/" + std::string(collection.path), query));
  if (!doc) return doc.error();
  std::string key(collection.plural);
  if (!doc->is_object() || !doc->contains(key) || !(*doc)[key].is_array()) {
    return Error(Errc::Internal,
                 "the list of " + std::string(collection.path) + " has no '" + key + "' array");
  }
  return (*doc)[key].get<std::vector<Json>>();
}

Result<Json> Client::find(const Collection& collection, const std::string& name_or_id) {
  std::string member(collection.member);
  if (looksLikeUuid(name_or_id) || collection.name_field.empty()) {
    auto doc = get("/v2.0/" + std::string(collection.path) + "/" + urlEncode(name_or_id));
    if (doc && doc->is_object() && doc->contains(member)) return (*doc)[member];
    if (!doc && doc.error().code() != Errc::NotFound) return doc.error();
    if (collection.name_field.empty()) {
      return Error(Errc::NotFound,
                   capitalized(collection.noun) + " " + name_or_id + " could not be found.");
    }
  }
  auto found = list(collection, {{std::string(collection.name_field), name_or_id}});
  if (!found) return found.error();
  if (found->size() == 1) return std::move(found->front());
  if (found->empty()) {
    return Error(Errc::NotFound,
                 capitalized(collection.noun) + " '" + name_or_id + "' could not be found.");
  }
  std::string ids;
  for (const auto& item : *found) ids += (ids.empty() ? "" : ", ") + model::stringAt(item, "id");
  return Error(Errc::InvalidArgument, "More than one " + std::string(collection.noun) +
                                          " is called '" + name_or_id + "' (" + ids +
                                          "); name it by id.");
}

Result<std::string> Client::findId(const Collection& collection, const std::string& name_or_id) {
  auto doc = find(collection, name_or_id);
  if (!doc) return doc.error();
  return model::stringAt(*doc, "id");
}

std::vector<std::pair<std::string, std::string>> Client::projectNames() {
  std::vector<std::pair<std::string, std::string>> names;
  if (!identity_) return names;
  auto doc = exchange(*identity_, "GET", "/projects", nullptr);
  if (!doc || !doc->is_object()) return names;
  for (const auto& p : doc->value("projects", Json::array())) {
    names.emplace_back(model::stringAt(p, "id"), model::stringAt(p, "name"));
  }
  return names;
}

}  // namespace canopy::cli
