#pragma once
// The API client behind every `canopy` command: it authenticates (a
// Keystone v3 password token and the `network` endpoint from its catalog, or
// no token with auth type none), sends JSON requests to canopy-server, turns
// error replies into Errors that carry the server's own message, and
// resolves the names people type into ids.
//
//   HttpTransport transport(30s);
//   auto client = Client::connect(credentials, transport);
//   if (!client) return client.error();
//   auto net = (*client)->find(kNetworks, "blue");      // by id or name
//   auto list = (*client)->get("/v2.0/ports?network_id=" + id);
//
// Transport is an interface so tests script the server's answers.
// Thread-safety: one Client per thread; it holds no global state.

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cli/credentials.h"
#include "http/client.h"
#include "model/json.h"

namespace canopy::cli {

using model::Json;
using Headers = std::vector<std::pair<std::string, std::string>>;
using Query = std::vector<std::pair<std::string, std::string>>;

// One HTTP exchange. The real one is http::httpRequest.
class Transport {
 public:
  virtual ~Transport() = default;
  virtual Result<http::HttpReply> send(const http::HttpUrl& url, const std::string& method,
                                       const std::string& target, const std::string& body,
                                       const Headers& headers) = 0;
};

class HttpTransport final : public Transport {
 public:
  explicit HttpTransport(std::chrono::milliseconds timeout) : timeout_(timeout) {}
  Result<http::HttpReply> send(const http::HttpUrl& url, const std::string& method,
                               const std::string& target, const std::string& body,
                               const Headers& headers) override;

 private:
  std::chrono::milliseconds timeout_;
};

// A Neutron collection as URLs and bodies name it.
struct Collection {
  std::string_view path;        // in URLs: "security-groups"
  std::string_view member;      // a body's key for one: "security_group"
  std::string_view plural;      // a body's key for a list: "security_groups"
  std::string_view name_field;  // what people call one by, besides its id; "" for ids only
  std::string_view noun;        // in messages: "security group"
};

inline constexpr Collection kNetworks{"networks", "network", "networks", "name", "network"};
inline constexpr Collection kSubnets{"subnets", "subnet", "subnets", "name", "subnet"};
inline constexpr Collection kPorts{"ports", "port", "ports", "name", "port"};
inline constexpr Collection kRouters{"routers", "router", "routers", "name", "router"};
inline constexpr Collection kFloatingIps{"floatingips", "floatingip", "floatingips",
                                         "floating_ip_address", "floating IP"};
inline constexpr Collection kSecurityGroups{"security-groups", "security_group", "security_groups",
                                            "name", "security group"};
inline constexpr Collection kSecurityGroupRules{"security-group-rules", "security_group_rule",
                                                "security_group_rules", "", "security group rule"};

// The Error for an HTTP error reply: the message of a Neutron
// ({"NeutronError": {"message"}}) or Keystone ({"error": {"message"}}) body,
// else the body's first line, followed by " (HTTP <status>)". The code
// follows the status (404 NotFound, 409 Conflict, 401 Unauthenticated, ...)
// and the reason is Neutron's error type when there is one.
Error errorFromReply(const http::HttpReply& reply);

// answer[key] of a successful answer; Internal when the server's JSON has
// no such member, the answer's own error otherwise.
Result<Json> memberOf(Result<Json> answer, const std::string& key);

// "a b/c" -> "a%20b%2Fc" (RFC 3986 unreserved characters stay).
std::string urlEncode(std::string_view text);
// "/v2.0/ports" + {{"network_id", "x"}} -> "/v2.0/ports?network_id=x"
std::string withQuery(std::string path, const Query& query);

class Client {
 public:
  // With a password, asks Keystone for a project-scoped token and finds the
  // network endpoint in its catalog; with auth none, only checks the URL.
  static Result<std::unique_ptr<Client>> connect(const Credentials& credentials,
                                                 Transport& transport);

  // `path` hangs from the endpoint's root ("/v2.0/networks", "/canopy/v1/status").
  // The reply's JSON body (null for an empty one), or the server's error.
  Result<Json> request(const std::string& method, const std::string& path,
                       const Json* body = nullptr);
  Result<Json> get(const std::string& path) { return request("GET", path); }

  // Every item of a collection that matches `query`.
  Result<std::vector<Json>> list(const Collection& collection, const Query& query = {});
  // One item by id, or by name (or address, for floating IPs) when no item has
  // that id. NotFound ("Network 'x' could not be found.") or InvalidArgument
  // when a name is ambiguous.
  Result<Json> find(const Collection& collection, const std::string& name_or_id);
  Result<std::string> findId(const Collection& collection, const std::string& name_or_id);

  // The project the token is scoped to ("" with auth none unless a project id
  // was given).
  const std::string& projectId() const { return project_id_; }
  // Project id -> name, when the identity service lists them to this caller
  // (admins of the builtin Keystone); empty otherwise.
  std::vector<std::pair<std::string, std::string>> projectNames();

  const http::HttpUrl& endpoint() const { return endpoint_; }

 private:
  Client(Transport& transport, http::HttpUrl endpoint)
      : transport_(transport), endpoint_(endpoint) {}

  Result<Json> exchange(const http::HttpUrl& base, const std::string& method,
                        const std::string& path, const Json* body);
  Result<void> authenticate(const Credentials& credentials);

  Transport& transport_;
  http::HttpUrl endpoint_;
  std::string token_;
  std::string project_id_;
  std::optional<http::HttpUrl> identity_;  // with a password: Keystone's /v3
  bool noauth_project_ = false;            // auth none with a project id: send X-Project-Id
};

}  // namespace canopy::cli
