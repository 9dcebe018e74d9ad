#include "cli/trace_status.h"

#include <algorithm>

#include "cli/commands.h"
#include "cli/output.h"
#include "cli/resource_def.h"

namespace canopy::cli {

namespace {

using model::stringAt;

Error usage(const std::string& message) { return Error(Errc::InvalidArgument, message); }

Result<int64_t> inRange(const std::string& flag, const std::string& text, int64_t low,
                        int64_t high) {
  auto n = parseInteger(flag, text);
  if (!n) return n.error();
  if (*n < low || *n > high) {
    return usage(flag + ": " + text + " is not in " + std::to_string(low) + ".." +
                 std::to_string(high));
  }
  return n;
}

Result<Json> traceSource(const TraceArgs& a, const Resolver& resolve) {
  int given = !a.port.empty() + !a.device_id.empty() + !a.ip.empty();
  if (given != 1) {
    return usage("give one source: --port PORT, --device-id ID, or --ip IP --network NETWORK");
  }
  if (a.ip.empty() != a.network.empty()) return usage("--ip and --network go together");
  if (!a.port.empty()) {
    auto id = resolve(kPorts, a.port);
    if (!id) return id.error();
    return Json{{"port_id", *id}};
  }
  if (!a.device_id.empty()) return Json{{"device_id", a.device_id}};
  auto network = resolve(kNetworks, a.network);
  if (!network) return network.error();
  return Json{{"ip_address", a.ip}, {"network_id", *network}};
}

Result<Json> tracePacket(const TraceArgs& a) {
  int given = !a.tcp.empty() + !a.udp.empty() + a.icmp + a.arp + a.dhcp;
  if (given != 1) return usage("give one packet: --tcp PORT, --udp PORT, --icmp, --arp or --dhcp");
  std::string protocol = !a.tcp.empty()   ? "tcp"
                         : !a.udp.empty() ? "udp"
                         : a.icmp         ? "icmp"
                         : a.arp          ? "arp"
                                          : "dhcp";
  Json packet = {{"protocol", protocol}};
  if (a.dhcp != a.to.empty()) {
    return usage(a.dhcp ? "--to does not go with --dhcp (it is a broadcast)"
                        : "--to IP: where the packet goes");
  }
  if (!a.to.empty()) packet["destination_ip"] = a.to;
  bool ports = protocol == "tcp" || protocol == "udp";
  if (ports) {
    auto port = inRange("--" + protocol, protocol == "tcp" ? a.tcp : a.udp, 1, 65535);
    if (!port) return port.error();
    packet["destination_port"] = *port;
  }
  if (!a.source_port.empty()) {
    if (!ports) return usage("--source-port goes with --tcp or --udp");
    auto port = inRange("--source-port", a.source_port, 1, 65535);
    if (!port) return port.error();
    packet["source_port"] = *port;
  }
  if (!a.ttl.empty()) {
    auto ttl = inRange("--ttl", a.ttl, 1, 255);
    if (!ttl) return ttl.error();
    packet["ttl"] = *ttl;
  }
  return packet;
}

std::string outputText(const Json& o) {
  std::string kind = stringAt(o, "kind");
  std::string where;
  if (kind == "port") {
    std::string name = stringAt(o, "port_name"), id = stringAt(o, "port_id");
    where = "port " + (name.empty() ? id : name + " (" + id + ")");
  } else if (kind == "uplink") {
    where = "uplink " + stringAt(o, "uplink");
  } else {
    where = kind.empty() ? "out" : kind;
  }
  return "out: " + where + ": " + stringAt(o, "frame");
}

void renderOne(const Json& t, const std::string& header, std::string& out) {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const auto& s : t.value("steps", Json::array())) {
    lines.emplace_back(stringAt(s, "host"), stringAt(s, "text"));
  }
  for (const auto& o : t.value("outputs", Json::array())) {
    lines.emplace_back(stringAt(o, "host"), outputText(o));
  }
  size_t width = 0;
  for (const auto& [host, text] : lines) width = std::max(width, host.size());
  out += header + ": " + stringAt(t, "request") + "\n";
  for (const auto& [host, text] : lines) {
    out += "  " + host + std::string(width - host.size(), ' ') + "  " + text + "\n";
  }
  std::string summary = stringAt(t, "summary");
  if (summary.empty()) {
    summary = stringAt(t, "verdict");
    if (std::string reason = stringAt(t, "drop_reason"); !reason.empty()) {
      summary += " (" + reason + ")";
    }
  }
  out += "verdict: " + summary + "\n";
}

// The object as JSON (-f json) or rendered for people.
Result<void> printAnswer(std::ostream& out, const Result<Json>& object,
                         const OutputOptions& options, std::string (*render)(const Json&)) {
  if (!object) return object.error();
  out << (options.format == Format::JsonText ? jsonText(*object) : render(*object));
  return ok();
}

}  // namespace

Result<Json> traceRequest(const TraceArgs& args, const Resolver& resolve) {
  auto packet = tracePacket(args);
  if (!packet) return packet.error();
  auto source = traceSource(args, resolve);
  if (!source) return source.error();
  return Json{{"trace", {{"source", *source}, {"packet", *packet}, {"reply", args.reply}}}};
}

std::string renderTrace(const Json& trace) {
  std::string out;
  renderOne(trace, "trace", out);
  if (trace.contains("reply") && trace["reply"].is_object()) {
    out += "\n";
    renderOne(trace["reply"], "reply", out);
  }
  return out;
}

std::string renderStatus(const Json& status) {
  std::vector<Json> agents = status.value("agents", Json::array());
  std::sort(agents.begin(), agents.end(),
            [](const Json& a, const Json& b) { return stringAt(a, "host") < stringAt(b, "host"); });
  Table table{{"Host", "Tunnel IP", "Alive", "Version", "Ports"}, {}};
  for (const auto& a : agents) {
    const Json& applied = a.value("applied_version", Json());
    const Json& latest = a.value("latest_version", Json());
    std::string version =
        applied.is_number() && latest.is_number() ? applied.dump() + "/" + latest.dump() : "-";
    std::string alive = a.value("alive", false) ? "yes" : "no";
    if (a.value("static", false)) alive += " (static)";
    table.rows.push_back({stringAt(a, "host"), stringAt(a, "tunnel_ip"), alive, version,
                          formatCell(a.value("ports", Json(0)))});
  }
  std::string out = agents.empty() ? "agents: none\n" : renderTable(table);
  int64_t unbound = 0;
  const Json& per_host = status.value("ports_per_host", Json::object());
  if (per_host.is_object() && per_host.contains("") && per_host[""].is_number_integer()) {
    unbound = per_host[""].get<int64_t>();
  }
  out += "unbound ports: " + std::to_string(unbound) + "\n";
  std::vector<Json> drops = status.value("drops", Json::array());
  std::stable_sort(drops.begin(), drops.end(), [](const Json& a, const Json& b) {
    int64_t ca = a.value("count", int64_t{0}), cb = b.value("count", int64_t{0});
    return ca != cb ? ca > cb : stringAt(a, "reason") < stringAt(b, "reason");
  });
  if (drops.size() > 10) drops.resize(10);
  if (drops.empty()) return out + "top drop reasons: none\n";
  Table reasons{{"Reason", "Count"}, {}};
  for (const auto& d : drops) {
    reasons.rows.push_back({stringAt(d, "reason"), formatCell(d.value("count", Json(0)))});
  }
  return out + "top drop reasons:\n" + renderTable(reasons);
}

void addTraceCommand(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand(
      "trace",
      "Where would a packet go, and why? The server walks it through the datapath (admins)");
  auto a = std::make_shared<TraceArgs>();
  cmd->add_option("--port", a->port, "from this VM port (name or id)");
  cmd->add_option("--device-id", a->device_id, "from the port of this device (a VM's id)");
  cmd->add_option("--ip", a->ip,
                  "from this address (a port's, or an outside host's on an "
                  "external network); with --network");
  cmd->add_option("--network", a->network, "the network of --ip (name or id)");
  cmd->add_option("--tcp", a->tcp, "a TCP SYN to this port")->type_name("PORT");
  cmd->add_option("--udp", a->udp, "a UDP datagram to this port")->type_name("PORT");
  cmd->add_flag("--icmp", a->icmp, "an ICMP echo request");
  cmd->add_flag("--arp", a->arp, "an ARP request for --to");
  cmd->add_flag("--dhcp", a->dhcp, "a DHCP discover");
  cmd->add_option("--to", a->to, "the destination address")->type_name("IP");
  cmd->add_option("--source-port", a->source_port, "TCP/UDP source port")->type_name("N");
  cmd->add_option("--ttl", a->ttl, "IP TTL (default 64)")->type_name("N");
  cmd->add_flag("--reply", a->reply, "also trace the answer back");
  auto output = OutputFlags::add(*cmd, false);
  std::ostream& out = ctx.out;
  onRun(*cmd, ctx, [a, output, &out](Client& client) -> Result<void> {
    auto body = traceRequest(
        *a, [&](const Collection& c, const std::string& name) { return client.findId(c, name); });
    if (!body) return body.error();
    return printAnswer(out, memberOf(client.request("POST", "/canopy/v1/trace", &*body), "trace"),
                       output->options(), renderTrace);
  });
}

void addStatusCommand(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand(
      "status", "Agents (alive, configuration applied, ports) and top drop reasons (admins)");
  auto output = OutputFlags::add(*cmd, false);
  std::ostream& out = ctx.out;
  onRun(*cmd, ctx, [output, &out](Client& client) -> Result<void> {
    return printAnswer(out, memberOf(client.get("/canopy/v1/status"), "status"), output->options(),
                       renderStatus);
  });
}

}  // namespace canopy::cli
