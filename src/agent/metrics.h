#pragma once
// The agent's Prometheus endpoint: GET /metrics in the text exposition
// format (version 0.0.4), on a local address. Anything else gets 404.
//
//   auto m = MetricsServer::start("127.0.0.1", 9100, [&] { return render(); });
//
// Thread-safety: answers on its own thread, one request at a time.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "model/json.h"

namespace canopy::agent {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address, uint16_t port,
                                                      Render render);
  ~MetricsServer();
  void stop();
  uint16_t port() const { return port_; }

 private:
  explicit MetricsServer(Render render) : render_(std::move(render)) {}
  void serve();
  Render render_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The agent's status (Agent::status()) as Prometheus metrics.
std::string prometheusText(const model::Json& status);

}  // namespace canopy::agent
