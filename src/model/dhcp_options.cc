#include "model/dhcp_options.h"

#include <algorithm>
#include <charconv>

#include "base/ip.h"

namespace canopy::model {
namespace {

enum class Kind { Text, Addresses, Address, U16, Bool, DomainList, NextServer };

struct Named {
  std::string_view name;
  uint8_t code;
  Kind kind;
};

// The dnsmasq option names Canopy's server sends (RFC 2132 codes).
constexpr Named kNamed[] = {
    {"netmask", 1, Kind::Address},
    {"router", 3, Kind::Addresses},
    {"dns-server", 6, Kind::Addresses},
    {"log-server", 7, Kind::Addresses},
    {"lpr-server", 9, Kind::Addresses},
    {"hostname", 12, Kind::Text},
    {"boot-file-size", 13, Kind::U16},
    {"domain-name", 15, Kind::Text},
    {"swap-server", 16, Kind::Address},
    {"root-path", 17, Kind::Text},
    {"extension-path", 18, Kind::Text},
    {"ip-forward-enable", 19, Kind::Bool},
    {"mtu", 26, Kind::U16},
    {"broadcast", 28, Kind::Address},
    {"nis-domain", 40, Kind::Text},
    {"ntp-server", 42, Kind::Addresses},
    {"netbios-ns", 44, Kind::Addresses},
    {"netbios-dd", 45, Kind::Addresses},
    {"tftp-server", 66, Kind::Text},
    {"bootfile-name", 67, Kind::Text},
    {"domain-search", 119, Kind::DomainList},
    {"server-ip-address", 0, Kind::NextServer},
};

std::string allNames() {
  std::string out;
  for (const auto& n : kNamed) {
    if (!out.empty()) out += ", ";
    out += n.name;
  }
  return out;
}

std::string text(const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

bool oneLine(std::string_view s) {
  return !s.empty() && s.find_first_of("\r\n") == std::string_view::npos;
}

// The reason, as a validator gives it (the API words the rest).
Error badValue(std::string_view name, std::string_view value, std::string_view why) {
  return badRequest("value '" + std::string(value) + "' of option " + std::string(name) + " " +
                    std::string(why));
}

}  // namespace

std::optional<std::string> checkExtraDhcpOpts(const Json& list) {
  if (list.is_null()) return std::nullopt;
  if (!list.is_array()) return "'" + list.dump() + "' is not a list";
  for (const auto& o : list) {
    if (!o.is_object() || !o.contains("opt_name") || !o.contains("opt_value")) {
      return "'" + o.dump() +
             "' is not a valid key specification: opt_name and opt_value are "
             "required";
    }
    for (auto it = o.begin(); it != o.end(); ++it) {
      if (it.key() != "opt_name" && it.key() != "opt_value" && it.key() != "ip_version") {
        return "Unexpected key '" + it.key() + "' in '" + o.dump() + "'";
      }
    }
    const Json& name = o["opt_name"];
    if (!name.is_string() || !oneLine(name.get<std::string>()) ||
        name.get<std::string>().size() > 64) {
      return "'" + text(name) + "' is not a valid opt_name";
    }
    const Json& value = o["opt_value"];
    bool blank_ok = name == "router" || name == "classless-static-route";
    if (!value.is_null() && (!value.is_string() || value.get<std::string>().size() > 255 ||
                             (!blank_ok && !oneLine(value.get<std::string>())))) {
      return "'" + text(value) + "' is not a valid opt_value";
    }
    if (o.contains("ip_version")) {
      const Json& v = o["ip_version"];
      int64_t n = 0;
      if (v.is_number_integer()) {
        n = v.get<int64_t>();
      } else if (v.is_string()) {
        const std::string& s = v.get_ref<const std::string&>();
        std::from_chars(s.data(), s.data() + s.size(), n);
      }
      if (n != 4 && n != 6) return "'" + text(v) + "' is not in [4, 6]";
    }
    // IPv4 options are checked as the server will send them.
    // (An IPv6 address is for DHCPv6 clients, whatever ip_version says, as
    // Neutron takes it.)
    bool v4 = !o.contains("ip_version") || o["ip_version"] == 4 || o["ip_version"] == "4";
    auto address = value.is_string() ? IpAddress::parse(value.get<std::string>())
                                     : Result<IpAddress>(badRequest(""));
    if (address && address->isV6()) v4 = false;
    if (v4 && value.is_string() && !value.get<std::string>().empty()) {
      auto encoded = encodeDhcpOption(name.get<std::string>(), value.get<std::string>());
      if (!encoded) return encoded.error().message();
    }
  }
  return std::nullopt;
}

Json normalizeExtraDhcpOpts(const Json& list) {
  Json out = Json::array();
  if (!list.is_array()) return out;
  for (const auto& o : list) {
    if (o["opt_value"].is_null()) continue;
    int64_t version = 4;
    if (o.contains("ip_version")) {
      version = o["ip_version"].is_number_integer() ? o["ip_version"].get<int64_t>()
                : o["ip_version"] == "6"            ? 6
                                                    : 4;
    }
    Json entry = {
        {"opt_name", o["opt_name"]}, {"opt_value", o["opt_value"]}, {"ip_version", version}};
    auto same = std::find_if(out.begin(), out.end(), [&](const Json& e) {
      return e["opt_name"] == entry["opt_name"] && e["ip_version"] == entry["ip_version"];
    });
    if (same != out.end()) {
      *same = std::move(entry);
    } else {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

Json mergeExtraDhcpOpts(const Json& stored, const Json& update) {
  Json out = stored.is_array() ? stored : Json::array();
  if (!update.is_array()) return out;
  for (const auto& o : update) {
    int64_t version = 4;
    if (o.contains("ip_version")) {
      version = o["ip_version"].is_number_integer() ? o["ip_version"].get<int64_t>()
                : o["ip_version"] == "6"            ? 6
                                                    : 4;
    }
    auto same = std::find_if(out.begin(), out.end(), [&](const Json& e) {
      return e["opt_name"] == o["opt_name"] && e["ip_version"] == version;
    });
    if (o["opt_value"].is_null()) {
      if (same != out.end()) out.erase(same);
      continue;
    }
    Json entry = {
        {"opt_name", o["opt_name"]}, {"opt_value", o["opt_value"]}, {"ip_version", version}};
    if (same != out.end()) {
      *same = std::move(entry);
    } else {
      out.push_back(std::move(entry));
    }
  }
  return out;
}

Result<DhcpOptionBytes> encodeDhcpOption(std::string_view name, std::string_view value) {
  if (name.starts_with("option:")) name.remove_prefix(7);
  DhcpOptionBytes out;
  Kind kind = Kind::Text;
  const Named* named = nullptr;
  for (const auto& n : kNamed) {
    if (n.name == name) named = &n;
  }
  if (named != nullptr) {
    out.code = named->code;
    kind = named->kind;
  } else {
    unsigned code = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), code);
    if (ec != std::errc() || end != name.data() + name.size() || code < 1 || code > 254) {
      return badRequest("option '" + std::string(name) +
                        "' is not served: give a number (1-254, sent as text) or one of " +
                        allNames());
    }
    out.code = static_cast<uint8_t>(code);
  }
  auto address = [&](std::string_view text) -> std::optional<IpAddress> {
    auto ip = IpAddress::parse(text);
    if (!ip || !ip->isV4()) return std::nullopt;
    return *ip;
  };
  auto push = [&](const IpAddress& ip) {
    out.value.insert(out.value.end(), ip.bytes.begin(), ip.bytes.begin() + 4);
  };
  switch (kind) {
    case Kind::Text:
      out.value.assign(value.begin(), value.end());
      break;
    case Kind::Address:
    case Kind::NextServer: {
      auto ip = address(value);
      if (!ip) return badValue(name, value, "is not an IPv4 address");
      push(*ip);
      break;
    }
    case Kind::Addresses: {
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        auto ip = address(value.substr(start, comma - start));
        if (!ip) return badValue(name, value, "is not a list of IPv4 addresses");
        push(*ip);
        start = comma + 1;
      }
      break;
    }
    case Kind::U16:
    case Kind::Bool: {
      unsigned n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      unsigned max = kind == Kind::Bool ? 1 : 65535;
      if (ec != std::errc() || end != value.data() + value.size() || n > max) {
        return badValue(name, value, kind == Kind::Bool ? "is not 0 or 1" : "is not a number");
      }
      if (kind == Kind::Bool) {
        out.value.push_back(static_cast<uint8_t>(n));
      } else {
        out.value.push_back(static_cast<uint8_t>(n >> 8));
        out.value.push_back(static_cast<uint8_t>(n & 0xff));
      }
      break;
    }
    case Kind::DomainList: {
      // RFC 3397: each name as DNS labels, uncompressed.
      size_t start = 0;
      while (start <= value.size()) {
        size_t comma = value.find(',', start);
        if (comma == std::string_view::npos) comma = value.size();
        std::string_view domain = value.substr(start, comma - start);
        if (auto bad = checkDnsName(Json(std::string(domain))); bad || domain.empty()) {
          return badValue(name, value, "is not a list of domain names");
        }
        size_t label = 0;
        while (label < domain.size()) {
          size_t dot = domain.find('.', label);
          if (dot == std::string_view::npos) dot = domain.size();
          out.value.push_back(static_cast<uint8_t>(dot - label));
          out.value.insert(out.value.end(), domain.begin() + static_cast<std::ptrdiff_t>(label),
                           domain.begin() + static_cast<std::ptrdiff_t>(dot));
          label = dot + 1;
        }
        out.value.push_back(0);
        start = comma + 1;
      }
      break;
    }
  }
  if (out.value.empty() || out.value.size() > 255) {
    return badValue(name, value, "does not fit a DHCP option");
  }
  return out;
}

std::optional<std::string> checkDnsName(const Json& value) {
  if (!value.is_string()) return "'" + value.dump() + "' is not a valid string";
  std::string name = value.get<std::string>();
  if (name.empty()) return std::nullopt;
  if (name.back() == '.') name.pop_back();
  if (name.size() > 255) return "'" + name + "' exceeds the 255 character FQDN limit";
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    std::string_view label(name.data() + start, dot - start);
    bool valid = !label.empty() && label.size() <= 63 && label.front() != '-' &&
                 label.back() != '-' && std::all_of(label.begin(), label.end(), [](char c) {
                   return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                          (c >= '0' && c <= '9') || c == '-';
                 });
    if (!valid) {
      return "'" + value.get<std::string>() +
             "' not a valid PQDN or FQDN. Reason: Encountered an invalid label '" +
             std::string(label) + "'";
    }
    start = dot + 1;
  }
  return std::nullopt;
}

std::optional<std::string> checkDnsDomain(const Json& value) {
  if (!value.is_string()) return "'" + value.dump() + "' is not a valid string";
  if (value.get<std::string>().empty()) return std::nullopt;
  return checkDnsName(value);
}

Json dnsAssignment(const Json& port, std::string_view domain) {
  Json out = Json::array();
  std::string name = port.value("dns_name", "");
  std::string suffix(domain);
  if (!suffix.empty() && suffix.back() != '.') suffix += '.';
  for (const auto& f : port.value("fixed_ips", Json::array())) {
    std::string ip = f.value("ip_address", "");
    std::string host = name;
    if (host.empty()) {
      host = "host-" + ip;
      std::replace(host.begin(), host.end(), '.', '-');
      std::replace(host.begin(), host.end(), ':', '-');
    }
    out.push_back({{"hostname", host}, {"ip_address", ip}, {"fqdn", host + "." + suffix}});
  }
  return out;
}

Result<Dhcpv6OptionBytes> encodeDhcpv6Option(std::string_view name, std::string_view value) {
  if (name.starts_with("option6:")) name.remove_prefix(8);
  enum class V6 { Text, Addresses, Domains, U32, Ntp, Param };
  struct Named6 {
    std::string_view name;
    uint16_t code;
    V6 kind;
  };
  static constexpr Named6 kNamed6[] = {
      {"sip-server-domain", 21, V6::Domains},
      {"sip-server", 22, V6::Addresses},
      {"dns-server", 23, V6::Addresses},
      {"domain-search", 24, V6::Domains},
      {"nis-server", 27, V6::Addresses},
      {"nis+-server", 28, V6::Addresses},
      {"nis-domain", 29, V6::Domains},
      {"nis+-domain", 30, V6::Domains},
      {"sntp-server", 31, V6::Addresses},
      {"information-refresh-time", 32, V6::U32},
      {"ntp-server", 56, V6::Ntp},
      {"bootfile-url", 59, V6::Text},
      {"bootfile-param", 60, V6::Param},
  };
  Dhcpv6OptionBytes out;
  V6 kind = V6::Text;
  bool known = false;
  for (const auto& n : kNamed6) {
    if (n.name == name) {
      out.code = n.code;
      kind = n.kind;
      known = true;
    }
  }
  if (!known) {
    unsigned code = 0;
    auto [end, ec] = std::from_chars(name.data(), name.data() + name.size(), code);
    if (ec != std::errc() || end != name.data() + name.size() || code < 1 || code > 65535) {
      return badRequest("DHCPv6 option '" + std::string(name) + "' is not served");
    }
    out.code = static_cast<uint16_t>(code);
  }
  auto each = [&](auto&& f) {
    size_t start = 0;
    while (start <= value.size()) {
      size_t comma = value.find(',', start);
      if (comma == std::string_view::npos) comma = value.size();
      if (!f(value.substr(start, comma - start))) return false;
      start = comma + 1;
    }
    return true;
  };
  auto address = [&](std::string_view text, bool ntp) {
    auto ip = IpAddress::parse(text);
    if (!ip || ip->family != 6) return false;
    // NTP (RFC 5908): each server as a server-address suboption.
    if (ntp) out.value.insert(out.value.end(), {0, 1, 0, 16});
    out.value.insert(out.value.end(), ip->bytes.begin(), ip->bytes.end());
    return true;
  };
  switch (kind) {
    case V6::Text:
      out.value.assign(value.begin(), value.end());
      break;
    case V6::Param:  // RFC 5970: each parameter with its length
      out.value.push_back(static_cast<uint8_t>(value.size() >> 8));
      out.value.push_back(static_cast<uint8_t>(value.size()));
      out.value.insert(out.value.end(), value.begin(), value.end());
      break;
    case V6::Addresses:
    case V6::Ntp:
      if (!each([&](std::string_view a) { return address(a, kind == V6::Ntp); })) {
        return badValue(name, value, "is not a list of IPv6 addresses");
      }
      break;
    case V6::Domains:
      if (!each([&](std::string_view domain) {
            if (domain.ends_with('.')) domain.remove_suffix(1);
            if (domain.empty() || checkDnsName(Json(std::string(domain)))) return false;
            size_t label = 0;
            while (label < domain.size()) {
              size_t dot = std::min(domain.find('.', label), domain.size());
              out.value.push_back(static_cast<uint8_t>(dot - label));
              out.value.insert(out.value.end(), domain.begin() + static_cast<std::ptrdiff_t>(label),
                               domain.begin() + static_cast<std::ptrdiff_t>(dot));
              label = dot + 1;
            }
            out.value.push_back(0);
            return true;
          })) {
        return badValue(name, value, "is not a list of domain names");
      }
      break;
    case V6::U32: {
      uint32_t n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (ec != std::errc() || end != value.data() + value.size()) {
        return badValue(name, value, "is not a number");
      }
      for (int shift = 24; shift >= 0; shift -= 8)
        out.value.push_back(static_cast<uint8_t>(n >> shift));
      break;
    }
  }
  if (out.value.empty() || out.value.size() > 1024) {
    return badValue(name, value, "is empty or longer than 1024 bytes");
  }
  return out;
}

}  // namespace canopy::model
