// canopy-agent: the per-host data plane. Without a subcommand it runs: it
// connects to canopy-server's southbound, serves the local API on
// <run-dir>/agent.sock and forwards packets. The subcommands talk to a
// running agent through that socket.
//
//   canopy-agent --host-name hv1 --tunnel-ip 192.168.0.1 --server unix:/run/canopy/sb.sock
//   canopy-agent --run-dir /run/canopy-hv1 bind tap1234abcd-ef <port id>

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/agent.h"
#include "agent/local_api.h"
#include "agent/metrics.h"
#include "base/log.h"
#include "http/client.h"
#include "southbound/tls.h"

namespace {

using canopy::model::Json;

int callAgent(const std::string& socket, const Json& request, bool raw) {
  auto reply = canopy::agent::callLocalApi(socket, request);
  if (!reply) {
    std::fprintf(stderr, "canopy-agent: %s\n", reply.error().message().c_str());
    return 1;
  }
  if (!reply->value("ok", false)) {
    std::fprintf(stderr, "canopy-agent: %s\n", reply->value("error", "failed").c_str());
    return 1;
  }
  if (raw) std::printf("%s\n", (*reply)["result"].dump(2).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host_name;
  {
    char buf[HOST_NAME_MAX + 1] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) host_name = buf;
  }
  std::string log_level = "info";
  std::string tunnel_ip;
  std::string server = "127.0.0.1:6642";
  std::string run_dir = "/run/canopy";
  std::string security_group_log;
  double log_rate = 100, log_burst = 25;
  // Slow-path protection per port (datapath.h's SlowPathLimits).
  std::string bfd = "on";
  std::string fast_path = "on", fast_path_setups = "on";
  int fast_path_headless = 30;
  int bfd_interval_ms = 200, bfd_multiplier = 3;
  uint32_t flow_rate = 5000, flow_burst = 10000, control_rate = 500, control_burst = 1000;
  uint32_t kernel_half_open = 1024;
  std::vector<std::string> uplinks;
  bool gateway = false;
  std::string availability_zone;
  std::string encapsulation = "geneve";
  std::string metrics_listen;
  canopy::southbound::TlsFiles tls;

  CLI::App app{
      "canopy-agent: Canopy's per-host data plane (binds VM interfaces to logical ports, "
      "receives its host's view from canopy-server, forwards packets).\n"
      "Options may also come from a config file of `key = value` lines named with --config."};
  app.set_config("--config", "", "Read options from this file");
  app.add_option("--host-name", host_name,
                 "The name this host is known by in binding:host_id (default: the system "
                 "host name)")
      ->capture_default_str();
  app.add_option("--tunnel-ip", tunnel_ip, "This host's address on the underlay (tunnel endpoint)");
  app.add_option("--server", server,
                 "canopy-server's southbound: HOST:PORT or unix:PATH; several replicas "
                 "separated by commas, tried in turn when one fails")
      ->capture_default_str();
  app.add_option("--tls-ca", tls.ca,
                 "PEM CA that signed canopy-server's southbound certificate (turns on TLS)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-cert", tls.cert,
                 "PEM client certificate naming this host (when the server requires one)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-key", tls.key, "Its PEM private key")->check(CLI::ExistingFile);
  app.add_option("--run-dir", run_dir, "Where the local API socket (agent.sock) lives")
      ->capture_default_str();
  app.add_option("--security-group-log", security_group_log,
                 "The file security-group log records are appended to (Neutron's logging API); "
                 "default: <run-dir>/security-groups.log");
  app.add_option("--security-group-log-rate", log_rate,
                 "Security-group log records per second at most (Neutron's rate_limit)")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  app.add_option("--security-group-log-burst", log_burst,
                 "Security-group log records in a burst at most (Neutron's burst_limit)")
      ->check(CLI::Range(1.0, 1e6))
      ->capture_default_str();
  app.add_option("--fast-path", fast_path,
                 "The kernel fast path: established flows between this host's VM ports and "
                 "through its tunnels run in eBPF (tc) programs, decided by the agent's datapath; "
                 "without BPF the agent says why and runs without")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--fast-path-setups", fast_path_setups,
                 "With the fast path: a handshake the agent allowed leaves a template from which "
                 "the kernel sets up later connections between the same ends to the same port "
                 "(their SYN and SYN-ACK never reach the agent); off: every setup through the "
                 "agent")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--fast-path-headless", fast_path_headless,
                 "Seconds the kernel goes on carrying installed flows after the agent's last "
                 "sign of life: the programs stay when it exits, and the next agent adopts their "
                 "flows (a restart does not stop established traffic)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  app.add_option("--bfd", bfd,
                 "BFD with the other hosts when a router's gateway has standby hosts, which "
                 "decides where it is held (gateway high availability)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  app.add_option("--bfd-interval-ms", bfd_interval_ms,
                 "BFD's transmit and receive interval once a session is up")
      ->check(CLI::Range(10, 10000))
      ->capture_default_str();
  app.add_option("--bfd-multiplier", bfd_multiplier,
                 "BFD packets missed before a session goes down (detection time: this many "
                 "intervals)")
      ->check(CLI::Range(1, 255))
      ->capture_default_str();
  app.add_option("--port-flow-rate", flow_rate,
                 "New connections per second one port may open through this host's slow path "
                 "(a packet of a connection conntrack holds is not counted; beyond: dropped, "
                 "counted as flow_setup_rate_limited); 0: no limit")
      ->capture_default_str();
  app.add_option("--port-kernel-half-open", kernel_half_open,
                 "Connections one port may have set up in the kernel fast path (from an earlier "
                 "handshake's template) that wait for their answer; beyond, its SYNs go to the "
                 "agent; 0: no bound")
      ->capture_default_str();
  app.add_option("--port-flow-burst", flow_burst, "New connections in a burst per port")
      ->check(CLI::Range(1u, 1u << 30))
      ->capture_default_str();
  app.add_option("--port-control-rate", control_rate,
                 "ARP, ND, DHCP and uncached ICMP packets per second one port may have the "
                 "datapath handle (beyond: dropped, counted by kind); 0: no limit")
      ->capture_default_str();
  app.add_option("--port-control-burst", control_burst,
                 "ARP, ND, DHCP and ICMP packets in a burst per port")
      ->check(CLI::Range(1u, 1u << 30))
      ->capture_default_str();
  app.add_option("--uplink", uplinks,
                 "PHYSNET=INTERFACE: the interface that reaches a physical network (repeatable)");
  app.add_flag("--gateway", gateway, "This host may hold routers' external gateways");
  app.add_option("--availability-zone", availability_zone,
                 "The zone this host is in (Neutron's availability zones; default \"nova\")");
  app.add_option("--encapsulation", encapsulation, "Tunnels this host sends: geneve or vxlan")
      ->check(CLI::IsMember({"geneve", "vxlan"}))
      ->capture_default_str();
  std::string rx_ring = "on";
  app.add_option("--rx-ring", rx_ring,
                 "Receive ports' and uplinks' frames through a ring shared with the kernel "
                 "(on) or with recvmmsg (off)")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  size_t workers = 1;
  app.add_option("--workers", workers,
                 "Datapath workers, each a thread with its share of every interface and tunnel "
                 "port (the kernel spreads flows over them; conntrack and NAT are shared)")
      ->check(CLI::Range(1, 64));
  unsigned busy_poll_us = 0;
  app.add_option("--busy-poll-us", busy_poll_us,
                 "After frames came, keep polling this many microseconds before sleeping "
                 "(0: sleep whenever nothing waits)")
      ->check(CLI::Range(0u, 1000000u))
      ->capture_default_str();
  app.add_option("--metrics-listen", metrics_listen,
                 "IPv4:PORT for Prometheus metrics (GET /metrics); empty: none");
  app.add_option("--log-level", log_level,
                 "Log verbosity: trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  std::string metadata = "on";
  app.add_option("--metadata", metadata,
                 "Answer VMs' requests to 169.254.169.254:80 on this host: on or off")
      ->check(CLI::IsMember({"on", "off"}))
      ->capture_default_str();
  std::string nova_metadata_url;
  app.add_option("--nova-metadata-url", nova_metadata_url,
                 "Proxy metadata requests to Nova's metadata API at this URL "
                 "(http://HOST:8775); empty: answer them from the ports");
  std::string metadata_secret_file;
  app.add_option("--metadata-secret-file", metadata_secret_file,
                 "A file holding the secret shared with Nova (metadata_proxy_shared_secret) "
                 "that signs X-Instance-ID")
      ->check(CLI::ExistingFile);
  double metadata_rate = 10;
  app.add_option("--metadata-rate", metadata_rate,
                 "Metadata requests per second a port may make (bursts of five times as many)")
      ->check(CLI::Range(0.1, 100000.0))
      ->capture_default_str();
  app.set_version_flag("--version", "canopy-agent 0.1.0");

  std::string interface, port_id;
  auto* bind_cmd = app.add_subcommand("bind", "Bind an interface to a logical port");
  bind_cmd
      ->add_option("interface", interface,
                   "The interface (e.g. tap + 11 characters of the port id)")
      ->required();
  bind_cmd->add_option("port", port_id, "The Neutron port id")->required();
  bool tap = false;
  std::string netns;
  bind_cmd->add_flag("--tap", tap,
                     "Own the interface as a tap (created if missing, with offloads and a "
                     "virtio-net header; removed when unbound)");
  bind_cmd->add_option("--netns", netns,
                       "Create the tap in this network namespace (a path, e.g. /run/netns/vm1)");
  auto* unbind_cmd = app.add_subcommand("unbind", "Unbind an interface");
  unbind_cmd->add_option("interface", interface, "The interface")->required();
  auto* list_cmd = app.add_subcommand("list", "List the bindings (JSON)");
  auto* status_cmd = app.add_subcommand("status", "Show the agent's status and counters (JSON)");
  CLI11_PARSE(app, argc, argv);

  if (auto r = canopy::setupLogging(log_level); !r) {
    std::fprintf(stderr, "canopy-agent: %s\n", r.error().message().c_str());
    return 2;
  }
  const std::string socket = run_dir + "/agent.sock";
  if (*bind_cmd) {
    Json request = {{"op", "bind"}, {"interface", interface}, {"port_id", port_id}};
    if (tap) request["tap"] = true;
    if (!netns.empty()) request["netns"] = netns;
    return callAgent(socket, request, false);
  }
  if (*unbind_cmd) return callAgent(socket, {{"op", "unbind"}, {"interface", interface}}, false);
  if (*list_cmd) return callAgent(socket, {{"op", "list"}}, true);
  if (*status_cmd) return callAgent(socket, {{"op", "status"}}, true);

  canopy::agent::AgentConfig config;
  config.host_name = host_name;
  config.bindings_file = run_dir + "/bindings.json";
  config.state_file = run_dir + "/connections.state";
  config.view_file = run_dir + "/view.pb";
  config.bfd = bfd == "on";
  config.fast_path = fast_path == "on";
  config.fast_path_setups = fast_path_setups == "on";
  config.fast_path_headless = std::chrono::seconds(fast_path_headless);
  config.bfd_state_file = run_dir + "/bfd.json";
  config.bfd_timing.desired_min_tx = std::chrono::milliseconds(bfd_interval_ms);
  config.bfd_timing.required_min_rx = std::chrono::milliseconds(bfd_interval_ms);
  config.bfd_timing.detect_mult = static_cast<uint8_t>(bfd_multiplier);
  config.security_group_log =
      security_group_log.empty() ? run_dir + "/security-groups.log" : security_group_log;
  config.log_limits.rate = log_rate;
  config.slow_path = {.flows_per_second = flow_rate,
                      .flows_burst = flow_burst,
                      .control_per_second = control_rate,
                      .control_burst = control_burst};
  config.log_limits.burst = log_burst;
  config.kernel_half_open = kernel_half_open;
  config.server = server;
  if (tls.enabled()) {
    auto credentials = canopy::southbound::channelCredentials(tls);
    if (!credentials) {
      spdlog::error("canopy-agent: {}", credentials.error().message());
      return 2;
    }
    config.server_credentials = *credentials;
  }
  config.gateway_capable = gateway;
  config.availability_zone = availability_zone;
  config.rx_ring = rx_ring == "on";
  config.busy_poll = std::chrono::microseconds(busy_poll_us);
  config.workers = workers;
  config.watch_links = true;
  config.metadata.enabled = metadata == "on";
  config.metadata.nova_url = nova_metadata_url;
  config.metadata.rate = metadata_rate;
  config.metadata.burst = metadata_rate * 5;
  if (!availability_zone.empty()) config.metadata.availability_zone = availability_zone;
  if (!metadata_secret_file.empty()) {
    std::ifstream in(metadata_secret_file);
    std::getline(in, config.metadata.shared_secret);
    if (config.metadata.shared_secret.empty()) {
      spdlog::error("canopy-agent: --metadata-secret-file {} holds no secret",
                    metadata_secret_file);
      return 2;
    }
  }
  if (!nova_metadata_url.empty()) {
    if (auto url = canopy::http::HttpUrl::parse(nova_metadata_url); !url) {
      spdlog::error("canopy-agent: --nova-metadata-url: {}", url.error().message());
      return 2;
    }
  }
  config.encapsulation = encapsulation == "vxlan"
                             ? canopy::datapath::pipeline::Encapsulation::Vxlan
                             : canopy::datapath::pipeline::Encapsulation::Geneve;
  auto ip = canopy::IpAddress::parse(tunnel_ip);
  if (!ip) {
    spdlog::error("canopy-agent: --tunnel-ip '{}' is not an IP address", tunnel_ip);
    return 2;
  }
  config.tunnel_ip = *ip;
  for (const auto& u : uplinks) {
    auto eq = u.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == u.size()) {
      spdlog::error("canopy-agent: --uplink '{}' is not PHYSNET=INTERFACE", u);
      return 2;
    }
    config.uplinks.emplace_back(u.substr(0, eq), u.substr(eq + 1));
  }
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);

  // Signals are taken by sigwait below, on this thread only.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  canopy::SystemClock clock;
  auto agent = canopy::agent::Agent::start(clock, config);
  if (!agent) {
    spdlog::error("canopy-agent: {}", agent.error().message());
    return 1;
  }
  canopy::agent::Agent& a = **agent;
  auto api = canopy::agent::LocalApi::start(socket, [&a](const Json& req) -> Json {
    std::string op = canopy::model::stringAt(req, "op");
    auto answer = [](const canopy::Result<void>& r) {
      return r ? Json{{"ok", true}} : Json{{"ok", false}, {"error", r.error().message()}};
    };
    if (op == "bind") {
      canopy::agent::Attach attach;
      attach.tap = req.value("tap", false);
      attach.netns = canopy::model::stringAt(req, "netns");
      return answer(a.bind(canopy::model::stringAt(req, "interface"),
                           canopy::model::stringAt(req, "port_id"), attach));
    }
    if (op == "unbind") return answer(a.unbind(canopy::model::stringAt(req, "interface")));
    if (op == "list") return {{"ok", true}, {"result", a.bindings()}};
    if (op == "status") return {{"ok", true}, {"result", a.status()}};
    return {{"ok", false}, {"error", "unknown op '" + op + "'"}};
  });
  if (!api) {
    spdlog::error("canopy-agent: {}", api.error().message());
    return 1;
  }
  std::unique_ptr<canopy::agent::MetricsServer> metrics;
  if (!metrics_listen.empty()) {
    auto colon = metrics_listen.rfind(':');
    int mport = colon == std::string::npos ? -1 : std::atoi(metrics_listen.c_str() + colon + 1);
    if (mport < 0 || mport > 65535) {
      spdlog::error("canopy-agent: --metrics-listen '{}' is not IPv4:PORT", metrics_listen);
      return 2;
    }
    auto started = canopy::agent::MetricsServer::start(
        metrics_listen.substr(0, colon), static_cast<uint16_t>(mport),
        [&a] { return canopy::agent::prometheusText(a.status()); });
    if (!started) {
      spdlog::error("canopy-agent: {}", started.error().message());
      return 1;
    }
    metrics = std::move(*started);
  }
  spdlog::info("canopy-agent on host '{}': tunnel {}, server {}, local API {}", host_name,
               tunnel_ip, server, socket);
  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("canopy-agent: signal {} received, stopping", signal);
  if (metrics) metrics->stop();
  (*api)->stop();
  a.stop();
  return 0;
}
