#include "agent/metrics.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace canopy::agent {
namespace {

void metric(std::string& out, const char* name, const char* type, const char* help,
            const model::Json& value, const std::string& labels = "") {
  if (!value.is_number() && !value.is_boolean()) return;
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
  out += name + labels + " " +
         (value.is_boolean() ? (value.get<bool>() ? "1" : "0") : value.dump()) + "\n";
}

}  // namespace

std::string prometheusText(const model::Json& status) {
  std::string out;
  metric(out, "canopy_southbound_connected", "gauge", "1 while the server's stream is up.",
         status.value("connected", false));
  metric(out, "canopy_view_version", "gauge", "The view version applied.",
         status.value("view_version", model::Json(0)));
  const model::Json d = status.value("datapath", model::Json::object());
  metric(out, "canopy_packets_total", "counter", "Frames the datapath took in.",
         d.value("packets", model::Json(0)));
  metric(out, "canopy_outputs_total", "counter", "Frames the datapath sent.",
         d.value("outputs", model::Json(0)));
  metric(out, "canopy_answered_total", "counter", "Frames answered (ARP, DHCP, ICMP).",
         d.value("answered", model::Json(0)));
  metric(out, "canopy_simulations_total", "counter", "Flow setups: packets simulated.",
         d.value("simulations", model::Json(0)));
  metric(out, "canopy_snat_steered_total", "counter",
         "Distributed SNAT: replies sent on to the host whose lease of ports they are in.",
         d.value("snat_steered", model::Json(0)));
  metric(out, "canopy_connections", "gauge", "Tracked connections.",
         d.value("connections", model::Json(0)));
  // The kernel fast path, when it is on.
  const model::Json fast = status.value("fast_path", model::Json::object());
  if (fast.value("state", "") == "on") {
    metric(out, "canopy_fast_path_flows", "gauge", "Flows installed in the kernel fast path.",
           fast.value("flows", model::Json(0)));
    metric(out, "canopy_fast_path_hits_total", "counter",
           "Packets the kernel fast path forwarded (on VM interfaces and the underlay).",
           fast.value("hits", model::Json(0)));
    metric(out, "canopy_fast_path_misses_total", "counter",
           "Packets of no installed flow, left to the agent by the kernel fast path.",
           fast.value("misses", model::Json(0)));
    metric(out, "canopy_fast_path_to_agent_total", "counter",
           "Packets of an installed flow (or none) that were the agent's: TCP flags, TTL, size, "
           "not IP, malformed.",
           fast.value("to_agent", model::Json(0)));
    metric(out, "canopy_fast_path_handed_back_total", "counter",
           "Packets of an installed flow the kernel fast path could not carry after all (a "
           "frame out of a tunnel, forwarded by a VM, is not encapsulated twice) and gave to "
           "the agent.",
           fast.value("handed_back", model::Json(0)));
    metric(out, "canopy_fast_path_made_total", "counter",
           "Connections the kernel fast path set up itself, from the template an earlier "
           "handshake between the same ends left.",
           fast.value("made", model::Json(0)));
    metric(out, "canopy_fast_path_made_limited_total", "counter",
           "SYNs a template would have set up in the kernel, given to the agent because their "
           "port had as many half-open connections there as it may.",
           fast.value("made_limited", model::Json(0)));
    metric(out, "canopy_fast_path_templates", "gauge",
           "Templates from which the kernel fast path sets up connections.",
           fast.value("templates", model::Json(0)));
    metric(out, "canopy_fast_path_tunnel_in_total", "counter",
           "Packets the kernel fast path took out of a tunnel.",
           fast.value("tunnel_in", model::Json(0)));
  }
  const model::Json cache = d.value("flow_cache", model::Json::object());
  metric(out, "canopy_flow_cache_entries", "gauge", "Cached decisions.",
         cache.value("entries", model::Json(0)));
  metric(out, "canopy_flow_cache_hits_total", "counter", "Flow cache hits.",
         cache.value("hits", model::Json(0)));
  metric(out, "canopy_flow_cache_misses_total", "counter", "Flow cache misses.",
         cache.value("misses", model::Json(0)));
  const model::Json metering = d.value("metering", model::Json::array());
  if (!metering.empty()) {
    out +=
        "# HELP canopy_metering_label_packets_total Packets a metering label counted on this "
        "host.\n# TYPE canopy_metering_label_packets_total counter\n";
    for (const auto& m : metering) {
      out += "canopy_metering_label_packets_total{label=\"" + model::stringAt(m, "label") + "\"} " +
             m.value("packets", model::Json(0)).dump() + "\n";
    }
    out +=
        "# HELP canopy_metering_label_bytes_total Bytes (IP) a metering label counted on this "
        "host.\n# TYPE canopy_metering_label_bytes_total counter\n";
    for (const auto& m : metering) {
      out += "canopy_metering_label_bytes_total{label=\"" + model::stringAt(m, "label") + "\"} " +
             m.value("bytes", model::Json(0)).dump() + "\n";
    }
  }
  const model::Json ports = d.value("ports", model::Json::array());
  if (!ports.empty()) {
    out +=
        "# HELP canopy_port_frames_total Frames through each bound port, by direction.\n"
        "# TYPE canopy_port_frames_total counter\n";
    for (const auto& p : ports) {
      std::string labels = "{port=\"" + model::stringAt(p, "port_id") + "\",interface=\"" +
                           model::stringAt(p, "interface") + "\",direction=\"";
      out += "canopy_port_frames_total" + labels + "rx\"} " + p.value("rx", model::Json(0)).dump() +
             "\n";
      out += "canopy_port_frames_total" + labels + "tx\"} " + p.value("tx", model::Json(0)).dump() +
             "\n";
    }
    std::string port_drops;
    for (const auto& p : ports) {
      const model::Json drops = p.value("drops", model::Json::object());
      for (const auto& [reason, n] : drops.items()) {
        port_drops += "canopy_port_drops_total{port=\"" + model::stringAt(p, "port_id") +
                      "\",interface=\"" + model::stringAt(p, "interface") + "\",reason=\"" +
                      reason + "\"} " + n.dump() + "\n";
      }
    }
    if (!port_drops.empty()) {
      out +=
          "# HELP canopy_port_drops_total Frames a bound port sent, or was to receive, that were "
          "dropped, by reason.\n# TYPE canopy_port_drops_total counter\n" +
          port_drops;
    }
  }
  const model::Json drops = d.value("drops", model::Json::object());
  if (!drops.empty()) {
    out +=
        "# HELP canopy_drops_total Frames dropped, by reason.\n# TYPE canopy_drops_total counter\n";
    for (const auto& [reason, n] : drops.items()) {
      out += "canopy_drops_total{reason=\"" + reason + "\"} " + n.dump() + "\n";
    }
  }
  return out;
}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            uint16_t port, Render render) {
  std::unique_ptr<MetricsServer> m(new MetricsServer(std::move(render)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (inet_pton(AF_INET, address.c_str(), &a.sin_addr) != 1) {
    return Error(Errc::InvalidArgument, "metrics address '" + address + "' is not IPv4");
  }
  m->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  setsockopt(m->fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (m->fd_ < 0 || ::bind(m->fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::listen(m->fd_, 16) != 0) {
    return Error(Errc::Unavailable, "metrics on " + address + ":" + std::to_string(port) + ": " +
                                        std::strerror(errno));
  }
  socklen_t len = sizeof(a);
  getsockname(m->fd_, reinterpret_cast<sockaddr*>(&a), &len);
  m->port_ = ntohs(a.sin_port);
  MetricsServer* self = m.get();
  m->thread_ = std::thread([self] { self->serve(); });
  return m;
}

MetricsServer::~MetricsServer() { stop(); }

void MetricsServer::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

void MetricsServer::serve() {
  while (!stopping_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    std::string head;
    char buf[2048];
    while (head.find("\r\n\r\n") == std::string::npos && head.size() < 8192) {
      pollfd q{c, POLLIN, 0};
      if (::poll(&q, 1, 1000) <= 0) break;
      ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) break;
      head.append(buf, static_cast<size_t>(n));
    }
    bool metrics = head.rfind("GET /metrics ", 0) == 0 || head.rfind("GET /metrics?", 0) == 0;
    std::string body = metrics ? render_() : "not found\n";
    std::string reply = std::string("HTTP/1.1 ") + (metrics ? "200 OK" : "404 Not Found") +
                        "\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: " +
                        std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    size_t done = 0;
    while (done < reply.size()) {
      ssize_t n = ::write(c, reply.data() + done, reply.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    ::close(c);
  }
}

}  // namespace canopy::agent
