#pragma once
// The metadata service on a VM's own host (169.254.169.254:80), as
// neutron-metadata-agent and OVN's metadata agent give it, without a
// central hop. The datapath sends a VM's TCP to the address out of a tap in
// a network namespace of the agent's own (made here, gone with the
// process), its source rewritten to an address that names the VM's port
// (simulator.h's MetadataPeer); an HTTP server in that namespace answers.
// Who asks is known from that address alone: headers the VM sends never
// say which instance it is.
//
//   MetadataHandler handler(options, resolve, fetch);   // the answers
//   auto service = MetadataService::start(options, handler);
//   auto tap = io.openTap(options.interface, (*service)->netnsPath());
//   (*service)->configureInterface();                    // address, route
//
// With Nova (nova_url set), a request is proxied to Nova's metadata API
// with X-Instance-ID (the port's device_id), X-Tenant-ID, X-Forwarded-For
// (the VM's address) and X-Instance-ID-Signature (HMAC-SHA256 of the
// instance id with the shared secret), as neutron-metadata-agent does.
// Without, the basics are answered from the port (metadata.h). Requests are
// rate-limited per port (a token bucket), what the server says of a port is
// cached for a few seconds.
//
// Thread-safety: MetadataHandler::handle from any thread; MetadataService's
// functions from the thread that started it.

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "agent/metadata.h"
#include "base/clock.h"
#include "base/mutex.h"
#include "base/result.h"
#include "datapath/simulator/simulator.h"
#include "http/message.h"
#include "http/server.h"
#include "model/json.h"
#include "proto/southbound.pb.h"

namespace canopy::agent {

struct MetadataOptions {
  bool enabled = true;
  // The tap in the service's namespace.
  std::string interface = "canopy-metadata";
  // Nova's metadata API, "http://host:8775"; "": answered from the port.
  std::string nova_url{};
  std::string shared_secret{};  // for X-Instance-ID-Signature
  std::chrono::milliseconds nova_timeout{10000};
  std::string availability_zone = "nova";
  // Per port: requests per second, and how many may come at once.
  double rate = 10;
  double burst = 50;
  // How long what the server said of a port is used.
  std::chrono::milliseconds cache_for{5000};
};

// Which port a request came from and the address it came from, when the
// port is bound to this host.
struct MetadataRequester {
  std::string port_id;
  std::string address;
};

class MetadataHandler {
 public:
  using Resolve =
      std::function<std::optional<MetadataRequester>(datapath::simulator::MetadataPeer peer)>;
  using Fetch = std::function<Result<southbound::v1::Instance>(const std::string& port_id)>;

  MetadataHandler(const Clock& clock, MetadataOptions options, Resolve resolve, Fetch fetch);

  // The answer to one request; `request.remote` is the peer ("10.a.b.c:port").
  http::HttpResponse handle(const http::HttpRequest& request);

  struct Stats {
    uint64_t requests = 0;
    uint64_t answered = 0;  // 2xx
    uint64_t proxied = 0;   // to Nova
    uint64_t limited = 0;   // 429
    uint64_t unknown = 0;   // from no port this host serves
    uint64_t failed = 0;    // the server or Nova could not say
  };
  Stats stats() const;
  model::Json statusJson() const;

 private:
  struct Bucket {
    double tokens = 0;
    SteadyTime at{};
  };
  struct Cached {
    southbound::v1::Instance instance;
    SteadyTime at{};
  };
  bool admit(const std::string& port_id);
  Result<southbound::v1::Instance> instance(const std::string& port_id);
  http::HttpResponse proxy(const http::HttpRequest& request, const MetadataRequester& who,
                           const southbound::v1::Instance& instance);

  const Clock& clock_;
  const MetadataOptions options_;
  Resolve resolve_;
  Fetch fetch_;
  mutable Mutex mu_;
  std::map<std::string, Bucket> buckets_ CANOPY_GUARDED_BY(mu_);
  std::map<std::string, Cached> cache_ CANOPY_GUARDED_BY(mu_);
  Stats stats_ CANOPY_GUARDED_BY(mu_);
};

class MetadataService {
 public:
  // Makes the namespace and the listening socket in it, and starts serving.
  static Result<std::unique_ptr<MetadataService>> start(const MetadataOptions& options,
                                                        MetadataHandler& handler);
  ~MetadataService();
  MetadataService(const MetadataService&) = delete;
  MetadataService& operator=(const MetadataService&) = delete;

  // The namespace, as a path another thread may enter (openTap's `netns`).
  std::string netnsPath() const;
  // Once the tap exists in the namespace: its MAC, the service's address,
  // up without ARP, the route back to the peers, no IPv6.
  Result<void> configureInterface();

 private:
  MetadataService(MetadataOptions options, int netns_fd)
      : options_(std::move(options)), netns_fd_(netns_fd) {}
  const MetadataOptions options_;
  int netns_fd_ = -1;
  std::unique_ptr<http::HttpServer> server_;
};

}  // namespace canopy::agent
