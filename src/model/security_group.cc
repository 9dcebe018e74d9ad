#include "model/security_group.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "base/ip.h"

namespace canopy::model {
namespace {

const std::map<std::string, int>& protocolNumbers() {
  static const std::map<std::string, int> kNumbers = {
      {"ah", 51},         {"dccp", 33},       {"egp", 8},         {"esp", 50},
      {"gre", 47},        {"icmp", 1},        {"icmpv6", 58},     {"igmp", 2},
      {"ipip", 4},        {"ipv6-encap", 41}, {"ipv6-frag", 44},  {"ipv6-icmp", 58},
      {"ipv6-nonxt", 59}, {"ipv6-opts", 60},  {"ipv6-route", 43}, {"ospf", 89},
      {"pgm", 113},       {"rsvp", 46},       {"sctp", 132},      {"tcp", 6},
      {"udp", 17},        {"udplite", 136},   {"vrrp", 112},      {"any", -1}};
  return kNumbers;
}

// -1 for "any"/null, the IANA number otherwise, nullopt if unknown.
std::optional<int> protocolNumber(const Json& p) {
  if (p.is_null()) return -1;
  std::string s = p.is_string() ? p.get<std::string>() : p.dump();
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (auto it = protocolNumbers().find(s); it != protocolNumbers().end()) return it->second;
  int n = -1;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec == std::errc() && end == s.data() + s.size() && n >= 0 && n <= 255) return n;
  return std::nullopt;
}

std::optional<std::string> oneOf(const Json& v, std::initializer_list<const char*> values) {
  for (const char* x : values) {
    if (v == x) return std::nullopt;
  }
  std::string list;
  for (const char* x : values) list += std::string(list.empty() ? "" : ", ") + "'" + x + "'";
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not in [" + list + "]";
}

std::optional<std::string> optionalUuid(const Json& v) {
  if (v.is_null() || (v.is_string() && isUuid(v.get<std::string>()))) return std::nullopt;
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) + "' is not a valid UUID";
}

// Neutron's convert_validate_port_value: an integer (or its decimal
// string) in 0..65535, or the rule is refused as a whole.
Result<void> convertPort(Json& v) {
  if (v.is_null()) return ok();
  std::optional<int64_t> n;
  if (v.is_number_integer()) {
    n = v.get<int64_t>();
  } else if (v.is_string()) {
    const std::string& text = v.get_ref<const std::string&>();
    int64_t parsed = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), parsed);
    if (ec == std::errc() && end == text.data() + text.size()) n = parsed;
  }
  if (!n || *n < 0 || *n > 65535) {
    return Error(
        Errc::InvalidArgument,
        "Invalid value for port " + (v.is_string() ? v.get<std::string>() : v.dump()) + ".",
        "SecurityGroupInvalidPortValue");
  }
  v = *n;
  return ok();
}

Error ruleError(std::string message, std::string reason) {
  return Error(Errc::InvalidArgument, std::move(message), std::move(reason));
}

}  // namespace

const ResourceSpec& securityGroupSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "security-groups",
                   .member = "security_group",
                   .plural = "security_groups",
                   .type_name = "SecurityGroup"};
    addStandardAttributes(s.attrs);
    s.attrs.push_back({.name = "security_group_rules", .type = AttrType::List});
    s.attrs.push_back({.name = "stateful",
                       .type = AttrType::Bool,
                       .allow_post = true,
                       .allow_put = true,
                       .default_value = Json(true)});
    // Whether an RBAC policy shares it with the caller (derived).
    s.attrs.push_back({.name = "shared", .type = AttrType::Bool});
    return s;
  }();
  return spec;
}

const ResourceSpec& securityGroupRuleSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "security-group-rules",
                   .member = "security_group_rule",
                   .plural = "security_group_rules",
                   .type_name = "SecurityGroupRule"};
    auto& a = s.attrs;
    a.push_back({.name = "id", .type = AttrType::Uuid});
    a.push_back({.name = "description", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "project_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "tenant_id", .allow_post = true, .default_value = Json("")});
    a.push_back({.name = "created_at"});
    a.push_back({.name = "updated_at"});
    a.push_back({.name = "revision_number", .type = AttrType::Int});
    a.push_back({.name = "security_group_id", .type = AttrType::Uuid, .allow_post = true});
    a.push_back({.name = "direction", .allow_post = true, .check = [](const Json& v) {
                   return oneOf(v, {"ingress", "egress"});
                 }});
    a.push_back({.name = "ethertype",
                 .allow_post = true,
                 .default_value = Json("IPv4"),
                 .check = [](const Json& v) {
                   return oneOf(v, {"IPv4", "IPv6"});
                 }});
    a.push_back({.name = "protocol",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (protocolNumber(v)) return std::nullopt;
                   return "Security group rule protocol " + v.dump() +
                          " not supported. Only protocol values [None, tcp, udp, icmp, ...] "
                          "and integer representations [0 to 255] are supported.";
                 }});
    for (const char* name : {"port_range_min", "port_range_max"}) {
      a.push_back({
          .name = name,
          .type = AttrType::Any,
          .allow_post = true,
          .default_value = Json(nullptr),
          .nullable = true,
      });
    }
    a.push_back({.name = "remote_ip_prefix",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    // Not checked as a UUID (Neutron's is not): an unknown group is not found.
    a.push_back({.name = "remote_group_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = [](const Json& v) -> std::optional<std::string> {
                   if (v.is_null() || v.is_string()) return std::nullopt;
                   return "'" + v.dump() + "' is not a valid string";
                 }});
    a.push_back({.name = "remote_address_group_id",
                 .type = AttrType::Any,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true,
                 .check = optionalUuid});
    return s;
  }();
  return spec;
}

const ResourceSpec& addressGroupSpec() {
  static const ResourceSpec spec = [] {
    ResourceSpec s{.collection = "address-groups",
                   .member = "address_group",
                   .plural = "address_groups",
                   .type_name = "AddressGroup"};
    addStandardAttributes(s.attrs);
    std::erase_if(s.attrs, [](const AttrSpec& a) { return a.name == "tags"; });
    s.attrs.push_back({.name = "addresses",
                       .null_is_empty_list = true,
                       .type = AttrType::List,
                       .allow_post = true,
                       .default_value = Json::array(),
                       .check = checkSubnetList});
    return s;
  }();
  return spec;
}

Json normalizeAddresses(const Json& addresses) {
  Json out = Json::array();
  for (const auto& a : addresses) {
    auto p = IpPrefix::parse(a.is_string() ? a.get<std::string>() : "");
    if (!p) continue;
    std::string text = IpPrefix{p->first(), p->length}.toString();
    if (std::find(out.begin(), out.end(), Json(text)) == out.end()) out.push_back(text);
  }
  return out;
}

Result<void> checkRule(Json& rule) {
  int remotes = 0;
  for (const char* k : {"remote_ip_prefix", "remote_group_id", "remote_address_group_id"}) {
    if (rule.contains(k) && !rule[k].is_null()) ++remotes;
  }
  if (remotes > 1) {
    if (rule.value("remote_address_group_id", Json()).is_null()) {
      return ruleError("Only remote_ip_prefix or remote_group_id may be provided.",
                       "SecurityGroupRemoteGroupAndRemoteIpPrefix");
    }
    return ruleError(
        "Invalid input for operation: Only one of remote_ip_prefix or remote_group_id or "
        "remote_address_group_id may be provided.",
        "SecurityGroupMultipleRemoteEntites");
  }
  if (rule["protocol"].is_string()) {
    std::string p = rule["protocol"];
    for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    rule["protocol"] = p == "any" ? Json(nullptr) : Json(p);
  } else if (rule["protocol"].is_number_integer()) {
    rule["protocol"] = std::to_string(rule["protocol"].get<int64_t>());
  }
  int proto = *protocolNumber(rule["protocol"]);
  // IPv6's own protocols (and their numbers) have no IPv4 rule.
  if (rule["ethertype"] == "IPv4" &&
      (proto == 41 || proto == 43 || proto == 44 || proto == 58 || proto == 59 || proto == 60)) {
    return ruleError(
        "Invalid ethertype IPv4 for protocol " + rule["protocol"].get<std::string>() + ".",
        "SecurityGroupEthertypeConflictWithProtocol");
  }
  for (const char* k : {"port_range_min", "port_range_max"}) {
    if (auto r = convertPort(rule[k]); !r) return r;
  }
  const Json& lo = rule["port_range_min"];
  const Json& hi = rule["port_range_max"];
  bool ranged = !lo.is_null() || !hi.is_null();
  if (ranged && proto == -1) {
    return ruleError("Must also specify protocol if port range is given.",
                     "SecurityGroupProtocolRequiredWithPorts");
  }
  if (proto == 1 || proto == 58) {  // type in min, code in max
    if (!lo.is_null() && lo.get<int64_t>() > 255) {
      return ruleError("Invalid value for ICMP type " + lo.dump() + ".",
                       "SecurityGroupInvalidIcmpValue");
    }
    if (!hi.is_null() && hi.get<int64_t>() > 255) {
      return ruleError("Invalid value for ICMP code " + hi.dump() + ".",
                       "SecurityGroupInvalidIcmpValue");
    }
    if (lo.is_null() && !hi.is_null()) {
      return ruleError("ICMP code (port-range-max) " + hi.dump() +
                           " is provided but ICMP type (port-range-min) is missing.",
                       "SecurityGroupMissingIcmpType");
    }
  } else if (ranged && (proto == 6 || proto == 17 || proto == 33 || proto == 132 || proto == 136)) {
    if (lo.is_null() || hi.is_null() || lo.get<int64_t>() > hi.get<int64_t>()) {
      return ruleError("For TCP/UDP protocols, port_range_min must be <= port_range_max",
                       "SecurityGroupInvalidPortRange");
    }
    if (lo.get<int64_t>() < 1) {
      return ruleError("Invalid value for port " + lo.dump(), "SecurityGroupInvalidPortValue");
    }
  } else if (ranged) {
    return ruleError("Invalid protocol " + rule["protocol"].dump() + " for port range",
                     "SecurityGroupInvalidProtocolForPortRange");
  }
  if (rule["remote_ip_prefix"].is_string()) {
    std::string text = rule["remote_ip_prefix"];
    if (text.find('/') == std::string::npos) {
      text += text.find(':') == std::string::npos ? "/32" : "/128";
    }
    auto slash = text.find('/');
    auto ip = IpAddress::parse(text.substr(0, slash));
    if (!ip) return invalidInput("remote_ip_prefix", "'" + text + "' is not a valid IP subnet");
    auto cidr = IpPrefix::parseNetwork(text);
    if (!cidr) {
      // Neutron keeps the network of a prefix given with host bits set.
      int len = std::atoi(text.substr(slash + 1).c_str());
      int bits = ip->version() == 4 ? 32 : 128;
      if (len < 0 || len > bits) {
        return invalidInput("remote_ip_prefix", "'" + text + "' is not a valid IP subnet");
      }
      U128 host = len == 0 ? (ip->version() == 4 ? U128{0xffffffffu} : ~U128{0})
                           : ((U128{1} << (bits - len)) - 1);
      cidr = IpPrefix::parseNetwork(
          IpAddress::fromValue(ip->version(), ip->value() & ~host).toString() + "/" +
          std::to_string(len));
    }
    if ((cidr->version() == 4) != (rule["ethertype"] == "IPv4")) {
      return ruleError("Conflicting value ethertype " + rule["ethertype"].get<std::string>() +
                           " for CIDR " + cidr->toString(),
                       "SecurityGroupConflictingEthertypeAndCidr");
    }
    rule["remote_ip_prefix"] = cidr->toString();
  } else if (!rule["remote_ip_prefix"].is_null()) {
    return invalidInput("remote_ip_prefix",
                        "'" + rule["remote_ip_prefix"].dump() + "' is not a valid IP subnet");
  }
  return ok();
}

std::string ruleIdentity(const Json& rule) {
  auto s = [&](const char* k) { return rule.contains(k) ? rule[k].dump() : "null"; };
  return rule.value("security_group_id", "") + "|" + s("direction") + "|" + s("ethertype") + "|" +
         std::to_string(*protocolNumber(rule.value("protocol", Json(nullptr)))) + "|" +
         s("port_range_min") + "|" + s("port_range_max") + "|" + s("remote_ip_prefix") + "|" +
         s("remote_group_id") + "|" + s("remote_address_group_id");
}

std::vector<Json> defaultGroupRules(const std::string& group_id) {
  std::vector<Json> rules;
  for (const char* direction : {"egress", "ingress"}) {
    for (const char* ethertype : {"IPv4", "IPv6"}) {
      rules.push_back({{"security_group_id", group_id},
                       {"direction", direction},
                       {"ethertype", ethertype},
                       {"protocol", nullptr},
                       {"port_range_min", nullptr},
                       {"port_range_max", nullptr},
                       {"remote_ip_prefix", nullptr},
                       {"remote_group_id",
                        std::string(direction) == "ingress" ? Json(group_id) : Json(nullptr)},
                       {"remote_address_group_id", nullptr},
                       {"description", ""}});
    }
  }
  return rules;
}

}  // namespace canopy::model
