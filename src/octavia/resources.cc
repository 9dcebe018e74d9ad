#include "octavia/resources.h"

#include <algorithm>
#include <regex>

#include "base/ip.h"
#include "octavia/octavia_api.h"

namespace canopy::octavia {
namespace {

using model::AttrSpec;
using model::AttrType;
using model::Json;

using Check = std::function<std::optional<std::string>(const Json&)>;

AttrSpec attr(std::string name, AttrType type, bool post, bool put,
              std::optional<Json> default_value = std::nullopt, Check check = {}) {
  AttrSpec a;
  a.name = std::move(name);
  a.type = type;
  a.allow_post = post;
  a.allow_put = put;
  a.default_value = std::move(default_value);
  a.nullable = a.default_value.has_value() && a.default_value->is_null();
  a.check = std::move(check);
  return a;
}

Check oneOf(std::vector<std::string> values) {
  return [values = std::move(values)](const Json& v) -> std::optional<std::string> {
    if (v.is_null()) return std::nullopt;
    if (v.is_string() &&
        std::find(values.begin(), values.end(), v.get<std::string>()) != values.end()) {
      return std::nullopt;
    }
    std::string list;
    for (const auto& x : values) list += (list.empty() ? "" : ", ") + x;
    return "Value should be one of: " + list;
  };
}

Check range(int64_t low, int64_t high) {
  return [low, high](const Json& v) -> std::optional<std::string> {
    if (!v.is_number_integer()) return std::nullopt;
    int64_t n = v.get<int64_t>();
    if (n < low) return "Value should be greater or equal to " + std::to_string(low);
    if (n > high) return "Value should be lower or equal to " + std::to_string(high);
    return std::nullopt;
  };
}

std::optional<std::string> ipAddress(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_string() || !IpAddress::parse(v.get<std::string>())) {
    return "Value should be IPv4 or IPv6 format";
  }
  return std::nullopt;
}

std::optional<std::string> cidrList(const Json& v) {
  if (v.is_null()) return std::nullopt;
  if (!v.is_array()) return "Value should be a list of CIDRs";
  for (const auto& c : v) {
    if (!c.is_string() || !IpPrefix::parse(c.get<std::string>())) {
      return "Value should be a list of CIDRs";
    }
  }
  return std::nullopt;
}

std::optional<std::string> stringList(const Json& v) {
  if (!v.is_array()) return "Value should be a list of strings";
  for (const auto& s : v) {
    if (!s.is_string() || s.get<std::string>().size() > 255) {
      return "Value should be a list of strings of at most 255 characters";
    }
  }
  return std::nullopt;
}

// name, description, admin_state_up, project_id/tenant_id, tags.
void common(std::vector<AttrSpec>& a, bool description = true) {
  a.push_back(attr("name", AttrType::String, true, true, Json("")));
  a.back().nullable = true;
  if (description) {
    a.push_back(attr("description", AttrType::String, true, true, Json("")));
    a.back().nullable = true;
  }
  a.push_back(attr("admin_state_up", AttrType::Bool, true, true, Json(true)));
  a.push_back(attr("project_id", AttrType::String, true, false, Json("")));
  a.push_back(attr("tenant_id", AttrType::String, true, false, Json("")));
  a.push_back(attr("tags", AttrType::List, true, true, Json::array(), stringList));
  for (const char* stamp :
       {"id", "provisioning_status", "operating_status", "created_at", "updated_at"}) {
    a.push_back(attr(stamp, AttrType::Any, false, false, Json(nullptr)));
  }
}

const std::vector<std::string> kListenerProtocols = {"TCP", "HTTP", "HTTPS",     "TERMINATED_HTTPS",
                                                     "UDP", "SCTP", "PROMETHEUS"};
const std::vector<std::string> kPoolProtocols = {"TCP",     "HTTP", "HTTPS", "PROXY",
                                                 "PROXYV2", "UDP",  "SCTP"};
const std::vector<std::string> kAlgorithms = {"ROUND_ROBIN", "LEAST_CONNECTIONS", "SOURCE_IP",
                                              "SOURCE_IP_PORT"};
const std::vector<std::string> kMonitorTypes = {"HTTP",      "HTTPS",       "PING", "TCP",
                                                "TLS-HELLO", "UDP-CONNECT", "SCTP"};
const std::vector<std::string> kHttpMethods = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                               "TRACE", "OPTIONS", "CONNECT", "PATCH"};

Resource makeLoadBalancer() {
  Resource r{.spec = {.collection = "loadbalancers",
                      .member = "loadbalancer",
                      .plural = {},
                      .type_name = {}},
             .store = kLoadBalancers,
             .name = "Load Balancer",
             .internal = {"vip_port_owned"}};
  auto& a = r.spec.attrs;
  common(a);
  a.push_back(attr("vip_address", AttrType::String, true, false, Json(nullptr), ipAddress));
  a.push_back(attr("vip_port_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("vip_subnet_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("vip_network_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("vip_qos_policy_id", AttrType::Uuid, true, true, Json(nullptr)));
  a.push_back(attr("provider", AttrType::String, true, false, Json(nullptr)));
  a.push_back(attr("flavor_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("availability_zone", AttrType::String, true, false, Json(nullptr)));
  a.push_back(attr("listeners", AttrType::List, true, false, Json::array()));
  a.push_back(attr("pools", AttrType::List, true, false, Json::array()));
  return r;
}

Resource makeListener() {
  Resource r{
      .spec = {.collection = "listeners", .member = "listener", .plural = {}, .type_name = {}},
      .store = kListeners,
      .name = "Listener"};
  auto& a = r.spec.attrs;
  common(a);
  a.push_back(
      attr("protocol", AttrType::String, true, false, std::nullopt, oneOf(kListenerProtocols)));
  a.push_back(attr("protocol_port", AttrType::Int, true, false, std::nullopt, range(1, 65535)));
  a.push_back(attr("loadbalancer_id", AttrType::Uuid, true, false));
  a.push_back(attr("connection_limit", AttrType::Int, true, true, Json(-1), range(-1, INT32_MAX)));
  a.back().nullable = true;  // null: -1
  a.push_back(attr("default_pool_id", AttrType::Uuid, true, true, Json(nullptr)));
  a.push_back(attr("default_tls_container_ref", AttrType::String, true, true, Json(nullptr)));
  a.push_back(attr("sni_container_refs", AttrType::List, true, true, Json::array(), stringList));
  a.push_back(attr("client_ca_tls_container_ref", AttrType::String, true, true, Json(nullptr)));
  a.push_back(attr("client_crl_container_ref", AttrType::String, true, true, Json(nullptr)));
  a.push_back(attr("client_authentication", AttrType::String, true, true, Json("NONE"),
                   oneOf({"NONE", "OPTIONAL", "MANDATORY"})));
  a.push_back(attr("insert_headers", AttrType::Dict, true, true, Json::object()));
  for (auto [name, value] : {std::pair{"timeout_client_data", 50000},
                             {"timeout_member_connect", 5000},
                             {"timeout_member_data", 50000},
                             {"timeout_tcp_inspect", 0}}) {
    a.push_back(attr(name, AttrType::Int, true, true, Json(value), range(0, 2073600000)));
  }
  a.push_back(attr("allowed_cidrs", AttrType::List, true, true, Json(nullptr), cidrList));
  a.push_back(attr("tls_ciphers", AttrType::String, true, true, Json(nullptr)));
  a.back().max_len = 2048;
  a.push_back(attr("tls_versions", AttrType::List, true, true, Json(nullptr)));
  a.push_back(attr("alpn_protocols", AttrType::List, true, true, Json(nullptr)));
  a.push_back(attr("hsts_max_age", AttrType::Int, true, true, Json(nullptr), range(0, INT32_MAX)));
  a.push_back(attr("hsts_include_subdomains", AttrType::Bool, true, true, Json(false)));
  a.push_back(attr("hsts_preload", AttrType::Bool, true, true, Json(false)));
  a.push_back(attr("default_pool", AttrType::Any, true, false, Json(nullptr)));
  a.push_back(attr("l7policies", AttrType::List, true, false, Json::array()));
  return r;
}

Resource makePool() {
  Resource r{.spec = {.collection = "pools", .member = "pool", .plural = {}, .type_name = {}},
             .store = kPools,
             .name = "Pool",
             .internal = {}};
  auto& a = r.spec.attrs;
  common(a);
  a.push_back(attr("protocol", AttrType::String, true, false, std::nullopt, oneOf(kPoolProtocols)));
  a.push_back(attr("lb_algorithm", AttrType::String, true, true, std::nullopt, oneOf(kAlgorithms)));
  a.push_back(attr("loadbalancer_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("listener_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("session_persistence", AttrType::Dict, true, true, Json(nullptr)));
  a.push_back(attr("tls_enabled", AttrType::Bool, true, true, Json(false)));
  for (const char* ref : {"tls_container_ref", "ca_tls_container_ref", "crl_container_ref"}) {
    a.push_back(attr(ref, AttrType::String, true, true, Json(nullptr)));
  }
  a.push_back(attr("tls_ciphers", AttrType::String, true, true, Json(nullptr)));
  a.back().max_len = 2048;
  a.push_back(attr("tls_versions", AttrType::List, true, true, Json(nullptr)));
  a.push_back(attr("alpn_protocols", AttrType::List, true, true, Json(nullptr)));
  a.push_back(attr("healthmonitor", AttrType::Any, true, false, Json(nullptr)));
  a.push_back(attr("members", AttrType::List, true, false, Json::array()));
  return r;
}

Resource makeMember() {
  Resource r{.spec = {.collection = "members", .member = "member", .plural = {}, .type_name = {}},
             .store = kMembers,
             .name = "Member",
             .internal = {"pool_id", "health"}};
  auto& a = r.spec.attrs;
  common(a, /*description=*/false);
  a.push_back(attr("address", AttrType::String, true, false, std::nullopt, ipAddress));
  a.push_back(attr("protocol_port", AttrType::Int, true, false, std::nullopt, range(1, 65535)));
  a.push_back(attr("weight", AttrType::Int, true, true, Json(1), range(0, 256)));
  a.back().nullable = true;  // null: 1
  a.push_back(attr("backup", AttrType::Bool, true, true, Json(false)));
  a.back().nullable = true;  // null: false
  a.push_back(attr("subnet_id", AttrType::Uuid, true, false, Json(nullptr)));
  a.push_back(attr("monitor_address", AttrType::String, true, true, Json(nullptr), ipAddress));
  a.push_back(attr("monitor_port", AttrType::Int, true, true, Json(nullptr), range(1, 65535)));
  a.push_back(attr("request_sriov", AttrType::Bool, true, false, Json(false)));
  return r;
}

Resource makeHealthMonitor() {
  Resource r{.spec = {.collection = "healthmonitors",
                      .member = "healthmonitor",
                      .plural = {},
                      .type_name = {}},
             .store = kHealthMonitors,
             .name = "Health Monitor",
             .internal = {}};
  auto& a = r.spec.attrs;
  common(a, /*description=*/false);
  a.push_back(attr("pool_id", AttrType::Uuid, true, false));
  a.push_back(attr("type", AttrType::String, true, false, std::nullopt, oneOf(kMonitorTypes)));
  a.push_back(attr("delay", AttrType::Int, true, true, std::nullopt, range(0, INT32_MAX)));
  a.push_back(attr("timeout", AttrType::Int, true, true, std::nullopt, range(0, INT32_MAX)));
  a.push_back(attr("max_retries", AttrType::Int, true, true, std::nullopt, range(1, 10)));
  a.push_back(attr("max_retries_down", AttrType::Int, true, true, Json(3), range(1, 10)));
  a.back().nullable = true;  // null: 3
  a.push_back(
      attr("http_method", AttrType::String, true, true, Json(nullptr), oneOf(kHttpMethods)));
  a.push_back(attr("url_path", AttrType::String, true, true, Json(nullptr),
                   [](const Json& v) -> std::optional<std::string> {
                     if (v.is_null()) return std::nullopt;
                     static const std::regex path(R"(^/[^\s?#]*(\?[^\s#]*)?$)");
                     if (!v.is_string() || !std::regex_match(v.get<std::string>(), path)) {
                       return "Value should match the pattern of a URL path";
                     }
                     return std::nullopt;
                   }));
  a.push_back(
      attr("expected_codes", AttrType::String, true, true, Json(nullptr),
           [](const Json& v) -> std::optional<std::string> {
             if (v.is_null()) return std::nullopt;
             static const std::regex codes(R"(^(\d{3}(\s*,\s*\d{3})*)$|^(\d{3}-\d{3})$)");
             if (!v.is_string() || !std::regex_match(v.get<std::string>(), codes)) {
               return "Value should match the pattern ^(\\d{3}(\\s*,\\s*\\d{3})*)$|^(\\d{3}-"
                      "\\d{3})$";
             }
             return std::nullopt;
           }));
  a.push_back(attr("http_version", AttrType::Any, true, true, Json(nullptr),
                   [](const Json& v) -> std::optional<std::string> {
                     if (v.is_null()) return std::nullopt;
                     if (v.is_number() && (v.get<double>() == 1.0 || v.get<double>() == 1.1)) {
                       return std::nullopt;
                     }
                     return "Value should be one of: 1.0, 1.1";
                   }));
  a.push_back(attr("domain_name", AttrType::String, true, true, Json(nullptr)));
  return r;
}

}  // namespace

const Resource& loadBalancerResource() {
  static const Resource r = makeLoadBalancer();
  return r;
}
const Resource& listenerResource() {
  static const Resource r = makeListener();
  return r;
}
const Resource& poolResource() {
  static const Resource r = makePool();
  return r;
}
const Resource& memberResource() {
  static const Resource r = makeMember();
  return r;
}
const Resource& healthMonitorResource() {
  static const Resource r = makeHealthMonitor();
  return r;
}

std::string_view l4Family(std::string_view protocol) {
  if (protocol == "UDP" || protocol == "SCTP") return protocol;
  return "TCP";
}

bool poolServesListener(std::string_view pool, std::string_view listener) {
  auto in = [&](std::initializer_list<std::string_view> allowed) {
    return std::find(allowed.begin(), allowed.end(), pool) != allowed.end();
  };
  if (listener == "TCP") return in({"HTTP", "HTTPS", "PROXY", "PROXYV2", "TCP"});
  if (listener == "HTTP" || listener == "TERMINATED_HTTPS") return in({"HTTP", "PROXY", "PROXYV2"});
  if (listener == "HTTPS") return in({"HTTPS", "PROXY", "PROXYV2", "TCP"});
  if (listener == "UDP") return pool == "UDP";
  if (listener == "SCTP") return pool == "SCTP";
  return false;
}

std::optional<std::string> unsupportedListener(const Json& l) {
  std::string protocol = l.value("protocol", "");
  if (protocol == "TERMINATED_HTTPS" || protocol == "SCTP" || protocol == "PROMETHEUS") {
    return "Canopy provider does not support " + protocol + " protocol";
  }
  if (l.contains("insert_headers") && l["insert_headers"].is_object() &&
      !l["insert_headers"].empty()) {
    return "Canopy provider balances at layer 4 and does not insert headers";
  }
  for (const char* tls : {"default_tls_container_ref", "client_ca_tls_container_ref",
                          "client_crl_container_ref", "tls_ciphers", "hsts_max_age"}) {
    if (l.contains(tls) && !l[tls].is_null()) {
      return std::string("Canopy provider does not terminate TLS (") + tls + ")";
    }
  }
  if (l.contains("sni_container_refs") && l["sni_container_refs"].is_array() &&
      !l["sni_container_refs"].empty()) {
    return "Canopy provider does not terminate TLS (sni_container_refs)";
  }
  return std::nullopt;
}

std::optional<std::string> unsupportedPool(const Json& p) {
  std::string protocol = p.value("protocol", "");
  if (protocol == "PROXY" || protocol == "PROXYV2" || protocol == "SCTP") {
    return "Canopy provider does not support " + protocol + " protocol";
  }
  if (p.value("tls_enabled", false)) return "Canopy provider does not re-encrypt to members";
  const Json& sp = p.contains("session_persistence") ? p["session_persistence"] : Json(nullptr);
  if (sp.is_object() && sp.value("type", "") != "SOURCE_IP") {
    return "Canopy provider does not support " + sp.value("type", std::string("?")) +
           " session persistence. Only SOURCE_IP type is supported.";
  }
  return std::nullopt;
}

std::optional<std::string> unsupportedMonitor(const Json& m) {
  std::string type = m.value("type", "");
  if (type == "HTTPS" || type == "TLS-HELLO" || type == "SCTP") {
    return "Canopy provider does not support " + type +
           " health monitor type. Supported types: PING, TCP, HTTP, UDP-CONNECT";
  }
  return std::nullopt;
}

std::optional<std::string> unsupportedMember(const Json& m) {
  if (m.value("request_sriov", false)) return "Canopy provider does not support SR-IOV members";
  return std::nullopt;
}

}  // namespace canopy::octavia
