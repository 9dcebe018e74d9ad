#pragma once
// The agent's local API: a unix socket (like OVS's external_ids:iface-id,
// but a request): one JSON request per line, one JSON reply per line.
//
//   {"op": "bind", "interface": "tap1234abcd-ef", "port_id": "..."}
//   {"op": "bind", ..., "tap": true, "netns": "/run/netns/vm1"}   (a tap it owns)
//   {"op": "unbind", "interface": "..."}   {"op": "list"}   {"op": "status"}
//   -> {"ok": true, ...} or {"ok": false, "error": "what went wrong"}
//
// Thread-safety: the server answers on its own thread, one client at a time.

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "model/json.h"

namespace canopy::agent {

class LocalApi {
 public:
  using Handler = std::function<model::Json(const model::Json& request)>;
  static Result<std::unique_ptr<LocalApi>> start(const std::string& path, Handler handler);
  ~LocalApi();
  void stop();

 private:
  LocalApi(std::string path, Handler handler)
      : path_(std::move(path)), handler_(std::move(handler)) {}
  void serve();
  std::string path_;
  Handler handler_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// One request to the agent at `path`.
Result<model::Json> callLocalApi(const std::string& path, const model::Json& request);

}  // namespace canopy::agent
