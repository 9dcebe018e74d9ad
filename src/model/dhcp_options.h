#pragma once
// Neutron's extra_dhcp_opts and dns_name as Canopy's DHCP server answers
// them: the attribute checks, an update merged into a port's options, and
// each IPv4 option encoded as the server sends it (dnsmasq's option names,
// or a number for a raw text option).
//
//   auto o = encodeDhcpOption("tftp-server", "192.0.2.10");   // option 66, text
//   auto n = encodeDhcpOption("server-ip-address", "192.0.2.10");  // siaddr
//
// Thread-safety: pure functions.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/attributes.h"

namespace canopy::model {

// extra_dhcp_opts: a list of {opt_name, opt_value, ip_version}; the reason
// it is invalid, or nullopt.
std::optional<std::string> checkExtraDhcpOpts(const Json& list);
// The options as stored: ip_version filled in (4), entries without a value
// dropped.
Json normalizeExtraDhcpOpts(const Json& list);
// An update merged into the stored options, as Neutron does: an entry with
// the same name and IP version is replaced (removed when its value is
// null), others are added.
Json mergeExtraDhcpOpts(const Json& stored, const Json& update);

// One IPv4 option as sent: `code` 0 stands for BOOTP's next-server field
// (siaddr; dnsmasq's "server-ip-address"), whose value is 4 address bytes.
struct DhcpOptionBytes {
  uint8_t code = 0;
  std::vector<uint8_t> value;
};
// Errors give the reason alone ("value ... of option ... is not ...").
Result<DhcpOptionBytes> encodeDhcpOption(std::string_view name, std::string_view value);

// One DHCPv6 option as sent (RFC 8415 21 and the options' own RFCs), for
// an extra_dhcp_opts entry of ip_version 6, by dnsmasq's DHCPv6 names
// (dns-server, domain-search, sip-server, sip-server-domain, nis-server,
// nis+-server, nis-domain, nis+-domain, sntp-server, ntp-server,
// information-refresh-time, bootfile-url, bootfile-param; "option6:" may
// precede them) or a number (1-65535, sent as text).
struct Dhcpv6OptionBytes {
  uint16_t code = 0;
  std::vector<uint8_t> value;
};
Result<Dhcpv6OptionBytes> encodeDhcpv6Option(std::string_view name, std::string_view value);

// Neutron's dns_name: a host name (labels of letters, digits and hyphens,
// at most 63 each) or ""; the reason it is invalid, or nullopt.
std::optional<std::string> checkDnsName(const Json& value);

// Neutron's dns_domain: "" or a domain name (a trailing dot allowed).
std::optional<std::string> checkDnsDomain(const Json& value);

// Where DNS names live when neither the port nor its network names a
// domain (Neutron's default dns_domain).
inline constexpr std::string_view kDefaultDnsDomain = "openstacklocal.";
// A port's dns_assignment: for each fixed IP, the host name (dns_name, or
// "host-<address>" with dashes) and its FQDN in `domain`.
Json dnsAssignment(const Json& port, std::string_view domain);

}  // namespace canopy::model
