// canopy-server: Canopy's control plane. It opens the store, loads the model
// and serves Neutron's API until stopped; offline subcommands check and dump
// the store. Agents connect to its southbound; operators also get /canopy/v1 (trace, status).

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>

#include "api/identity.h"
#include "api/keystone_auth.h"
#include "api/kind.h"
#include "api/neutron_api.h"
#include "base/log.h"
#include "cluster/replica.h"
#include "http/server.h"
#include "model/network.h"
#include "notify/nova_notifier.h"
#include "octavia/octavia_api.h"
#include "southbound/keys.h"
#include "southbound/service.h"
#include "southbound/tls.h"
#include "state/model_state.h"
#include "store/etcd_store.h"
#include "store/sqlite_store.h"
#include "store/store.h"
#include "trace/operations.h"

namespace {

constexpr const char* kDefaultStore = "sqlite:canopy-data/canopy.db";

constexpr std::string_view kLoadBalancerPath = "/load-balancer";

struct Options {
  std::string store = kDefaultStore;
  std::string log_level = "info";
  std::string listen = "127.0.0.1:9696";
  std::string auth = "builtin";
  std::string identity_file;
  std::string admin_password;
  int token_ttl = 3600;
  std::string keystone_url;
  std::string keystone_user = "canopy";
  std::string keystone_password;
  std::string keystone_project = "service";
  int keystone_cache_ttl = 300;
  int keystone_cache_size = 10000;
  // Nova's external events (notify/nova_notifier.h).
  bool nova_events = false;
  std::string nova_url;
  std::string nova_auth_url;  // "": --keystone-url
  std::string nova_user;      // "": --keystone-user
  std::string nova_password;  // "": --keystone-password
  std::string nova_project;   // "": --keystone-project
  std::string nova_region;
  std::string nova_endpoint_type = "public";
  int64_t vni_min = 1;
  int64_t vni_max = 65535;
  std::string vlan_ranges;
  std::string overlay = "geneve";
  std::string tenant_network_type;
  int physical_mtu = 1500;
  int overlay_ip_version = 4;
  int api_threads = 2;
  // Octavia's API under /load-balancer (docs/LOADBALANCING.md).
  bool load_balancer = false;
  // gRPC address: HOST:PORT or unix:PATH (agents in other network
  // namespaces reach a unix socket through the shared file system).
  std::string southbound_listen = "127.0.0.1:6642";
  std::string snat = "central";
  canopy::southbound::ServiceOptions service;
  canopy::southbound::TlsFiles southbound_tls;
  std::string prefix;  // dump
  // The cluster of replicas on one store (cluster/replica.h).
  std::string replica_id;     // "": HOSTNAME:API-PORT
  std::string advertise_api;  // "": http://<--listen>
  int lease_ttl = 5;
  int64_t keep_revisions = 100000;  // history the leader keeps when it compacts
};

std::string hostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return "canopy";
  return name;
}

// The leader compacts the store's history to the last `keep` revisions,
// once a minute: watches that fell further behind resynchronise.
void compactLoop(canopy::store::Store& store, const canopy::cluster::Replica& replica, int64_t keep,
                 const std::atomic<bool>& stopping) {
  auto next = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!stopping.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (std::chrono::steady_clock::now() < next) continue;
    next = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    if (!replica.leading()) continue;
    canopy::store::Revision target = store.revision() - keep;
    if (target <= store.compactedRevision()) continue;
    if (auto r = store.compact(target); !r) {
      spdlog::warn("canopy-server: compacting to revision {}: {}", target, r.error().message());
    } else {
      spdlog::info("canopy-server: store history compacted to revision {}", target);
    }
  }
}

// "HOST:PORT" or "[V6]:PORT".
bool splitHostPort(const std::string& text, std::string& host, uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 >= text.size()) return false;
  host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  try {
    unsigned long p = std::stoul(text.substr(colon + 1));
    if (p > 65535) return false;
    port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return !host.empty();
}

// Makes the directory that will hold a sqlite store, so a first run just works.
void ensureParentDir(const std::string& url) {
  std::string path = url.starts_with("sqlite:") ? url.substr(7) : url;
  auto parent = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
}

int run(const Options& options) {
  ensureParentDir(options.store);
  auto store = canopy::store::open(options.store);
  if (!store) {
    spdlog::error("{}", store.error().message());
    return 1;
  }
  spdlog::info("canopy-server: store {} open at revision {} (compacted {})", options.store,
               (*store)->revision(), (*store)->compactedRevision());

  canopy::state::ModelState state(**store);
  state.setDocumentCheck([api = canopy::api::storedDocumentCheck()](
                             std::string_view collection, std::string_view id,
                             const canopy::model::Json& doc) -> canopy::Result<void> {
    if (auto r = api(collection, id, doc); !r) return r;
    return canopy::southbound::checkStoredDocument(collection, id, doc);
  });
  if (auto r = state.start(); !r) {
    spdlog::error("canopy-server: loading the model: {}", r.error().message());
    return 1;
  }
  canopy::http::HttpServerOptions http;
  if (!splitHostPort(options.listen, http.address, http.port)) {
    spdlog::error("canopy-server: --listen '{}' is not HOST:PORT", options.listen);
    return 2;
  }
  auto replica = canopy::cluster::Replica::start(
      **store,
      {.id = options.replica_id.empty() ? hostName() + ":" + std::to_string(http.port)
                                        : options.replica_id,
       .api = options.advertise_api.empty() ? "http://" + options.listen : options.advertise_api,
       .southbound = options.southbound_listen,
       .ttl = std::chrono::seconds(options.lease_ttl)});
  if (!replica) {
    spdlog::error("canopy-server: joining the cluster: {}", replica.error().message());
    return 1;
  }
  spdlog::info("canopy-server: replica {} ({}; leader: {})", (*replica)->id(),
               (*replica)->leading() ? "leading" : "following",
               (*replica)->leader().empty() ? "none yet" : (*replica)->leader());
  canopy::SystemClock clock;
  std::unique_ptr<canopy::api::BuiltinIdentity> identity;
  if (options.auth == "builtin") {
    canopy::api::IdentityOptions id_options{
        .token_ttl = std::chrono::seconds(options.token_ttl),
        .load_balancer_path = options.load_balancer ? std::string(kLoadBalancerPath) : ""};
    if (!options.identity_file.empty()) {
      auto loaded =
          canopy::api::BuiltinIdentity::fromFile(options.identity_file, clock, id_options);
      if (!loaded) {
        spdlog::error("canopy-server: {}", loaded.error().message());
        return 2;
      }
      identity = std::move(*loaded);
    } else if (!options.admin_password.empty()) {
      identity = canopy::api::BuiltinIdentity::bootstrap(options.admin_password, clock, id_options);
    } else {
      spdlog::error(
          "canopy-server: builtin auth needs --identity-file or --admin-password (or --auth "
          "noauth for tests)");
      return 2;
    }
  }
  std::unique_ptr<canopy::api::KeystoneAuth> keystone;
  if (options.auth == "keystone") {
    if (options.keystone_url.empty() || options.keystone_password.empty()) {
      spdlog::error(
          "canopy-server: keystone auth needs --keystone-url and --keystone-password (or "
          "CANOPY_KEYSTONE_PASSWORD)");
      return 2;
    }
    auto made = canopy::api::KeystoneAuth::create(
        {.auth_url = options.keystone_url,
         .username = options.keystone_user,
         .password = options.keystone_password,
         .project_name = options.keystone_project,
         .cache_ttl = std::chrono::seconds(options.keystone_cache_ttl),
         .cache_size = static_cast<size_t>(options.keystone_cache_size)},
        clock);
    if (!made) {
      spdlog::error("canopy-server: {}", made.error().message());
      return 2;
    }
    keystone = std::move(*made);
  }
  if (options.vni_min > options.vni_max) {
    spdlog::error("canopy-server: --vni-min {} is above --vni-max {}", options.vni_min,
                  options.vni_max);
    return 2;
  }
  auto vlan_ranges = canopy::model::parseVlanRanges(options.vlan_ranges);
  if (!vlan_ranges) {
    spdlog::error("canopy-server: --vlan-ranges: {}", vlan_ranges.error().message());
    return 2;
  }
  if (options.tenant_network_type == "vlan" &&
      std::none_of(vlan_ranges->begin(), vlan_ranges->end(),
                   [](const auto& r) { return !r.second.empty(); })) {
    spdlog::error(
        "canopy-server: --tenant-network-type vlan needs --vlan-ranges with ids "
        "(PHYSNET:FIRST:LAST)");
    return 2;
  }
  std::unique_ptr<canopy::notify::NovaNotifier> nova;
  if (options.nova_events) {
    auto pick = [](const std::string& a, const std::string& b) { return a.empty() ? b : a; };
    auto made = canopy::notify::NovaNotifier::start(
        state,
        {.url = options.nova_url,
         .auth_url = pick(options.nova_auth_url, options.keystone_url),
         .username = pick(options.nova_user, options.keystone_user),
         .password = pick(options.nova_password, options.keystone_password),
         .project_name = pick(options.nova_project, options.keystone_project),
         .region = options.nova_region,
         .endpoint_type = options.nova_endpoint_type,
         .active = [r = replica->get()] { return r->leading(); }},
        clock);
    if (!made) {
      spdlog::error("canopy-server: --nova-events: {}", made.error().message());
      return 2;
    }
    nova = std::move(*made);
    spdlog::info("canopy-server: Nova's external events on ({})",
                 options.nova_url.empty() ? "endpoint from Keystone's catalog" : options.nova_url);
  }
  canopy::southbound::ServiceOptions service = options.service;
  service.distributed_snat = options.snat == "distributed";
  canopy::southbound::SouthboundService southbound(state, clock, replica->get(), service);
  canopy::trace::Operations operations(state, &southbound, clock, replica->get());
  const canopy::model::NetworkConfig network_config{
      .overlay = options.overlay,
      .tenant_network_type = options.tenant_network_type,
      .physical_mtu = options.physical_mtu,
      .overlay_ip_version = options.overlay_ip_version,
      .vni_min = options.vni_min,
      .vni_max = options.vni_max,
      .vlan_ranges = std::move(*vlan_ranges)};
  canopy::api::NeutronApi api(
      state,
      {.auth = identity   ? static_cast<canopy::api::Authenticator*>(identity.get())
               : keystone ? static_cast<canopy::api::Authenticator*>(keystone.get())
                          : nullptr,
       .network = network_config,
       .canopy = [&operations](const canopy::http::HttpRequest& r,
                               const canopy::model::Caller& c) { return operations.handle(r, c); }},
      clock);
  std::unique_ptr<canopy::octavia::OctaviaApi> octavia;
  if (options.load_balancer) {
    octavia = std::make_unique<canopy::octavia::OctaviaApi>(
        state,
        canopy::octavia::OctaviaConfig{
            .auth = identity   ? static_cast<canopy::api::Authenticator*>(identity.get())
                    : keystone ? static_cast<canopy::api::Authenticator*>(keystone.get())
                               : nullptr,
            .network = network_config},
        clock);
    spdlog::info("canopy-server: Octavia's load-balancer API under {}", kLoadBalancerPath);
  }
  http.threads = options.api_threads;
  http.error_response = canopy::api::transportError;
  auto server =
      canopy::http::HttpServer::start(http, [&api, &octavia](const canopy::http::HttpRequest& r) {
        std::string_view path = r.path;
        if (octavia && path.starts_with(kLoadBalancerPath) &&
            (path.size() == kLoadBalancerPath.size() || path[kLoadBalancerPath.size()] == '/')) {
          canopy::http::HttpRequest below = r;
          below.path = std::string(path.substr(kLoadBalancerPath.size()));
          below.headers["x-canopy-mount"] = std::string(kLoadBalancerPath);
          return octavia->handle(below);
        }
        return api.handle(r);
      });
  if (!server) {
    spdlog::error("canopy-server: {}", server.error().message());
    return 1;
  }
  spdlog::info("canopy-server: Neutron API on http://{}:{}/v2.0/ (auth: {})", http.address,
               (*server)->port(), options.auth);
  if (options.advertise_api.empty()) {
    std::string host =
        http.address.find(':') != std::string::npos ? "[" + http.address + "]" : http.address;
    auto r = (*replica)->advertise("http://" + host + ":" + std::to_string((*server)->port()));
    if (!r) spdlog::warn("canopy-server: advertising the API: {}", r.error().message());
  }
  std::unique_ptr<grpc::Server> grpc_server;
  if (!options.southbound_listen.empty()) {
    grpc::ServerBuilder builder;
    int port = 0;
    std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
    if (options.southbound_tls.enabled()) {
      auto tls = canopy::southbound::serverCredentials(options.southbound_tls);
      if (!tls) {
        spdlog::error("canopy-server: {}", tls.error().message());
        (*server)->stop();
        return 2;
      }
      credentials = *tls;
    }
    builder.AddListeningPort(options.southbound_listen, credentials, &port);
    builder.RegisterService(&southbound);
    // Notice agents that vanished without closing their stream.
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 5000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 3000);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    grpc_server = builder.BuildAndStart();
    if (grpc_server == nullptr || port == 0) {
      spdlog::error("canopy-server: cannot listen for agents on {}", options.southbound_listen);
      (*server)->stop();
      return 1;
    }
    spdlog::info("canopy-server: southbound for agents on {} (port {})", options.southbound_listen,
                 port);
  }

  std::atomic<bool> stopping{false};
  std::thread compactor([&] { compactLoop(**store, **replica, options.keep_revisions, stopping); });
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal = 0;
  if (sigwait(&signals, &signal) != 0) return 1;
  spdlog::info("canopy-server: signal {} received, stopping", signal);
  stopping = true;
  compactor.join();
  southbound.stop();
  nova.reset();
  if (grpc_server)
    grpc_server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  (*server)->stop();
  // Hands leadership over now rather than after the lease's TTL.
  (*replica)->stop();
  state.stop();
  return 0;
}

int check(const Options& options) {
  auto store = canopy::store::open(options.store, /*create_if_missing=*/false);
  if (!store) {
    std::fprintf(stderr, "canopy-server: %s\n", store.error().message().c_str());
    return 1;
  }
  bool etcd = options.store.starts_with("etcd:");
  std::printf(
      "store %s: ok, %s version %d, revision %lld, compacted %lld\n", options.store.c_str(),
      etcd ? "layout" : "schema",
      etcd ? canopy::store::EtcdStore::kLayoutVersion : canopy::store::SqliteStore::kSchemaVersion,
      static_cast<long long>((*store)->revision()),
      static_cast<long long>((*store)->compactedRevision()));
  return 0;
}

int dump(const Options& options) {
  auto store = canopy::store::open(options.store, /*create_if_missing=*/false);
  if (!store) {
    std::fprintf(stderr, "canopy-server: %s\n", store.error().message().c_str());
    return 1;
  }
  auto range = (*store)->range(options.prefix);
  if (!range) {
    std::fprintf(stderr, "canopy-server: %s\n", range.error().message().c_str());
    return 1;
  }
  for (const auto& kv : range->kvs) {
    std::printf("%s\t(mod %lld, version %lld)\t%s\n", kv.key.c_str(),
                static_cast<long long>(kv.mod_revision), static_cast<long long>(kv.version),
                kv.value.c_str());
  }
  std::printf("# %zu keys at revision %lld\n", range->kvs.size(),
              static_cast<long long>(range->revision));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Signals are taken with sigwait(); block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  Options options;
  CLI::App app{
      "canopy-server: Canopy's control plane (Neutron-compatible API, logical model, store, "
      "southbound to agents).\n"
      "Without a subcommand it runs the server. Options may also come from a config file of "
      "`key = value` lines (TOML/INI style) named with --config; flags win over the file."};
  app.set_config("--config", "", "Read options from this file (e.g. store = \"sqlite:/x.db\")");
  app.add_option("--store", options.store,
                 "Where the logical model lives: sqlite:PATH for the embedded store (one file; "
                 "created on first use; only one process may open it), or "
                 "etcd://HOST:PORT[,HOST:PORT...] for an etcd cluster that several replicas "
                 "share (docs/CLUSTER.md)")
      ->capture_default_str();
  app.add_option("--replica-id", options.replica_id,
                 "This replica's name in the cluster, unique among the replicas sharing the "
                 "store (default: HOSTNAME:API-PORT)");
  app.add_option("--advertise-api", options.advertise_api,
                 "The URL other replicas reach this one's API at, for merged status (default: "
                 "http://<--listen>)");
  app.add_option("--lease-ttl", options.lease_ttl,
                 "Seconds a replica that stopped answering keeps its leadership and its agents' "
                 "sessions before another replica takes over")
      ->check(CLI::Range(2, 60))
      ->capture_default_str();
  app.add_option("--keep-revisions", options.keep_revisions,
                 "Store history the leader keeps when it compacts (once a minute); watchers "
                 "further behind resynchronise")
      ->check(CLI::Range(int64_t{1000}, int64_t{1} << 40))
      ->capture_default_str();
  app.add_option("--log-level", options.log_level,
                 "Log verbosity: trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app.add_option("--listen", options.listen,
                 "Address and port of the Neutron API (HOST:PORT; port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--auth", options.auth,
                 "How API callers are authenticated: builtin (this server also answers "
                 "Keystone v3 at /v3: OS_AUTH_URL=http://HOST:PORT/v3) or noauth (project from "
                 "the X-Project-Id header, admin from X-Roles: admin or no project; for tests "
                 "and trusted set-ups) or keystone (tokens validated at an external Keystone, "
                 "see --keystone-*)")
      ->check(CLI::IsMember({"builtin", "keystone", "noauth"}))
      ->capture_default_str();
  app.add_option("--identity-file", options.identity_file,
                 "builtin auth: users, projects and roles, as JSON: {\"projects\": [{\"name\": "
                 "\"demo\"}], \"users\": [{\"name\": \"alice\", \"password\": \"...\", "
                 "\"project\": \"demo\", \"roles\": [\"member\"]}]}");
  app.add_option("--admin-password", options.admin_password,
                 "builtin auth without an identity file: the password of user 'admin' (project "
                 "'admin', role admin)");
  app.add_option("--token-ttl", options.token_ttl, "builtin auth: token lifetime in seconds")
      ->check(CLI::Range(10, 7 * 24 * 3600))
      ->capture_default_str();
  app.add_option("--keystone-url", options.keystone_url,
                 "keystone auth: Keystone's v3 URL (http://HOST:PORT/v3)");
  app.add_option("--keystone-user", options.keystone_user,
                 "keystone auth: the service user that validates tokens (domain Default)")
      ->capture_default_str();
  app.add_option("--keystone-password", options.keystone_password,
                 "keystone auth: the service user's password")
      ->envname("CANOPY_KEYSTONE_PASSWORD");
  app.add_option("--keystone-project", options.keystone_project,
                 "keystone auth: the service user's project (domain Default)")
      ->capture_default_str();
  app.add_option("--keystone-cache-ttl", options.keystone_cache_ttl,
                 "keystone auth: seconds a validated token is trusted without asking again "
                 "(never past its expiry)")
      ->check(CLI::Range(0, 3600))
      ->capture_default_str();
  app.add_option("--keystone-cache-size", options.keystone_cache_size,
                 "keystone auth: validated tokens kept at most")
      ->check(CLI::Range(1, 10000000))
      ->capture_default_str();
  app.add_option("--nova-events", options.nova_events,
                 "Send Nova its instances' port events (network-vif-plugged when a port turns "
                 "ACTIVE, unplugged, deleted, changed), as Neutron's [nova] notifier")
      ->capture_default_str();
  app.add_option("--nova-url", options.nova_url,
                 "Nova's compute endpoint (http://HOST:8774/v2.1); default: from Keystone's "
                 "catalog");
  app.add_option("--nova-auth-url", options.nova_auth_url,
                 "Keystone for the Nova events' token (default: --keystone-url; none: no token)");
  app.add_option("--nova-user", options.nova_user,
                 "The user whose token goes with Nova's events (default: --keystone-user)");
  app.add_option("--nova-password", options.nova_password,
                 "Its password (default: --keystone-password)")
      ->envname("CANOPY_NOVA_PASSWORD");
  app.add_option("--nova-project", options.nova_project,
                 "Its project, domain Default (default: --keystone-project)");
  app.add_option("--nova-region", options.nova_region, "The catalog's region for Nova");
  app.add_option("--nova-endpoint-type", options.nova_endpoint_type,
                 "The catalog's interface for Nova: public, internal or admin")
      ->check(CLI::IsMember({"public", "internal", "admin"}))
      ->capture_default_str();
  app.add_option("--vni-min", options.vni_min, "First tunnel id (VNI) for tenant networks")
      ->check(CLI::Range(int64_t{1}, (int64_t{1} << 24) - 1))
      ->capture_default_str();
  app.add_option("--vni-max", options.vni_max, "Last tunnel id (VNI) for tenant networks")
      ->check(CLI::Range(int64_t{1}, (int64_t{1} << 24) - 1))
      ->capture_default_str();
  app.add_option("--vlan-ranges", options.vlan_ranges,
                 "Physical networks that take VLAN networks, with the VLAN ids tenant networks "
                 "get: PHYSNET[:FIRST:LAST],... (Neutron's network_vlan_ranges)");
  app.add_option("--overlay", options.overlay,
                 "Encapsulation of tenant networks, which sets their default MTU: geneve "
                 "(physical MTU - 82) or vxlan (physical MTU - 50)")
      ->check(CLI::IsMember({"geneve", "vxlan"}))
      ->capture_default_str();
  app.add_option("--tenant-network-type", options.tenant_network_type,
                 "Type of the networks whose creator names none (Neutron's "
                 "tenant_network_types): geneve, vxlan or vlan (an id from --vlan-ranges); "
                 "default: the overlay")
      ->check(CLI::IsMember({"geneve", "vxlan", "vlan"}));
  app.add_option("--physical-mtu", options.physical_mtu, "MTU of the hosts' underlay network")
      ->check(CLI::Range(576, 9216))
      ->capture_default_str();
  app.add_option("--overlay-ip-version", options.overlay_ip_version,
                 "IP version of the hosts' tunnel addresses (Neutron's overlay_ip_version): "
                 "tenant networks' MTU leaves room for its outer header")
      ->check(CLI::IsMember({4, 6}))
      ->capture_default_str();
  app.add_option("--snat", options.snat,
                 "Router SNAT: central (on the gateway host) or distributed (every host with an "
                 "uplink translates its own VMs' traffic, in a block of the gateway address's "
                 "ports leased from the store)")
      ->check(CLI::IsMember({"central", "distributed"}))
      ->capture_default_str();
  app.add_option("--snat-block-ports", options.service.snat_block_ports,
                 "Distributed SNAT: how many ports each host's block has")
      ->check(CLI::Range(64, 32256))
      ->capture_default_str();
  app.add_option("--southbound-listen", options.southbound_listen,
                 "Where agents connect (gRPC): HOST:PORT or unix:PATH; empty: no southbound")
      ->capture_default_str();
  app.add_option("--southbound-tls-cert", options.southbound_tls.cert,
                 "PEM certificate the southbound presents to agents (turns on TLS)")
      ->check(CLI::ExistingFile);
  app.add_option("--southbound-tls-key", options.southbound_tls.key, "Its PEM private key")
      ->check(CLI::ExistingFile);
  app.add_option("--southbound-tls-ca", options.southbound_tls.ca,
                 "PEM CA that signs agents' client certificates: each agent must present one "
                 "naming its host")
      ->check(CLI::ExistingFile);
  app.add_flag("--load-balancer", options.load_balancer,
               "Serve Octavia's load-balancer API under /load-balancer (in development: the "
               "datapath does not balance yet; docs/LOADBALANCING.md)");
  app.add_option("--api-threads", options.api_threads, "Threads serving the API")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.set_version_flag("--version", "canopy-server 0.1.0");

  auto* check_cmd =
      app.add_subcommand("check",
                         "Open and verify the store (integrity, schema, migrations), "
                         "print its revision and exit; exit status 1 if it is unusable");
  auto* dump_cmd = app.add_subcommand(
      "dump", "Print every key under a prefix with its revision and value, then exit");
  dump_cmd->add_option("prefix", options.prefix, "Key prefix (default: every key)");
  app.require_subcommand(0, 1);

  CLI11_PARSE(app, argc, argv);

  if (auto r = canopy::setupLogging(options.log_level); !r) {
    std::fprintf(stderr, "canopy-server: %s\n", r.error().message().c_str());
    return 2;
  }
  if (*check_cmd) return check(options);
  if (*dump_cmd) return dump(options);
  return run(options);
}
