#include "model/ipam.h"

#include <cctype>
#include <cstdio>

#include "base/assert.h"

namespace canopy::model {

std::optional<IpAddress> pickFreeAddress(const Json& subnet,
                                         const std::function<bool(const IpAddress&)>& used,
                                         std::mt19937_64& rng) {
  auto pools = allocationPools(subnet);
  U128 total = 0;
  for (const auto& p : pools) total += p.last.value() - p.first.value() + 1;
  if (total == 0) return std::nullopt;
  U128 start = ((U128{rng()} << 64) | rng()) % total;
  // Walk the pools as one sequence of `total` addresses, from `start`, wrapping.
  auto at = [&](U128 offset) {
    for (const auto& p : pools) {
      U128 n = p.last.value() - p.first.value() + 1;
      if (offset < n) return p.first.plus(offset);
      offset -= n;
    }
    CANOPY_BUG("IPAM: an offset beyond the pools' total");
    return pools.back().last;
  };
  U128 probes = std::min<U128>(total, U128{kMaxProbes});
  for (U128 i = 0; i < probes; ++i) {
    IpAddress candidate = at((start + i) % total);
    if (!used(candidate)) return candidate;
  }
  return std::nullopt;
}

bool isSlaac(const Json& subnet) {
  auto mode = subnet.value("ipv6_address_mode", Json(nullptr));
  return subnet.value("ip_version", 4) == 6 && mode.is_string() &&
         (mode == "slaac" || mode == "dhcpv6-stateless");
}

IpAddress eui64(const IpPrefix& prefix, const std::string& mac) {
  unsigned b[6] = {};
  std::sscanf(mac.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
  uint64_t iid = (uint64_t{b[0] ^ 0x02u} << 56) | (uint64_t{b[1]} << 48) | (uint64_t{b[2]} << 40) |
                 (uint64_t{0xff} << 32) | (uint64_t{0xfe} << 24) | (uint64_t{b[3]} << 16) |
                 (uint64_t{b[4]} << 8) | uint64_t{b[5]};
  return IpAddress::fromValue(6, prefix.first().value() | U128{iid});
}

Result<std::string> parseMac(std::string_view text) {
  auto bad = [&] {
    return Error(Errc::InvalidArgument, "'" + std::string(text) + "' is not a valid MAC address",
                 "HTTPBadRequest");
  };
  if (text.size() != 17) return bad();
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i % 3 == 2) {
      if (c != ':' && c != '-') return bad();
      out.push_back(':');
    } else {
      if (!std::isxdigit(static_cast<unsigned char>(c))) return bad();
      out.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
  }
  unsigned first = static_cast<unsigned>(std::stoul(out.substr(0, 2), nullptr, 16));
  if ((first & 1u) != 0 || out == "00:00:00:00:00:00") return bad();  // multicast or zero
  return out;
}

std::string generateMac(const std::string& base, std::mt19937_64& rng) {
  uint64_t r = rng();
  char tail[10];
  std::snprintf(tail, sizeof(tail), ":%02x:%02x:%02x", static_cast<unsigned>(r & 0xff),
                static_cast<unsigned>((r >> 8) & 0xff), static_cast<unsigned>((r >> 16) & 0xff));
  return base.substr(0, 8) + tail;
}

}  // namespace canopy::model
