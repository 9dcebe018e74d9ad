#pragma once
// Load balancers' health checks on a member's own host (Octavia's health
// monitors, docs/LOADBALANCING.md): each agent checks only the members
// whose ports are bound to its host, so the cost grows with the members,
// never with members x hosts, and no check crosses the underlay.
//
// Checks are real sockets in the metadata service's namespace, from its
// address (169.254.169.254), to the address that names the member's port
// there (simulator.h's MetadataPeer): the datapath rewrites that to the
// member's own address and delivers to its port, as it does the metadata
// service's answers, and sends what the member answers to 169.254.169.254
// back into the namespace. Like the metadata service, checks do not pass
// the members' security groups.
//
// A check is an ICMP echo (Ping), a TCP connection (Tcp), an HTTP request
// whose status line must carry one of the expected codes (Http), or a
// datagram that must not be refused by ICMP port unreachable within the
// timeout (UdpConnect). A member is reported up after its first good check
// and after `max_retries` good ones in a row once down; down after
// `max_retries_down` failed ones in a row: rise and fall, as haproxy damps
// flapping.
//
//   HealthChecker checker(netns_path, [&](const std::string& member, bool up) { ... });
//   checker.setChecks(checks);          // on every view; unchanged checks keep their state
//
// Thread-safety: setChecks() and statusJson() from any thread; the report
// callback runs on the checker's own thread.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "datapath/packet/wire.h"
#include "datapath/topology/topology.h"
#include "model/json.h"

namespace canopy::agent {

struct HealthCheck {
  std::string member_id;
  datapath::packet::Ipv4Address target{};  // the member's port's address in the namespace
  uint16_t port = 0;
  datapath::topology::LbMonitor monitor{};

  friend bool operator==(const HealthCheck&, const HealthCheck&) = default;
};

// Whether an HTTP status is among Octavia's expected codes: "200",
// "200,202", "200-204".
bool expectedCode(const std::string& expected, int status);

class HealthChecker {
 public:
  using Report = std::function<void(const std::string& member_id, bool up)>;

  // `netns_path`: the namespace the checks' sockets are made in.
  HealthChecker(std::string netns_path, Report report);
  ~HealthChecker();
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  void setChecks(std::vector<HealthCheck> checks);
  // {"checks": n, "members": {id: {"up": bool, "good": n, "bad": n}}}.
  model::Json statusJson() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace canopy::agent
