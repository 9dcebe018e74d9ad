// canopy-server: Canopy's control plane. Today it owns the store (opens,
// verifies, migrates and serves it until stopped) and offers offline store
// commands; the Neutron API and the southbound arrive with their issues.

#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <string>

#include "base/log.h"
#include "store/sqlite_store.h"
#include "store/store.h"

namespace {

constexpr const char* kDefaultStore = "sqlite:canopy-data/canopy.db";

struct Options {
  std::string store = kDefaultStore;
  std::string log_level = "info";
  std::string prefix;  // dump
};

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
  spdlog::warn(
      "canopy-server: not built yet: the Neutron API (127.0.0.1:9696), Keystone auth and the "
      "southbound to agents; this server holds the store until stopped (Ctrl-C)");

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int signal = 0;
  if (sigwait(&signals, &signal) != 0) return 1;
  spdlog::info("canopy-server: signal {} received, closing the store", signal);
  return 0;
}

int check(const Options& options) {
  auto store = canopy::store::open(options.store, /*create_if_missing=*/false);
  if (!store) {
    std::fprintf(stderr, "canopy-server: %s\n", store.error().message().c_str());
    return 1;
  }
  std::printf("store %s: ok, schema version %d, revision %lld, compacted %lld\n",
              options.store.c_str(), canopy::store::SqliteStore::kSchemaVersion,
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
                 "created on first use; only one process may open it)")
      ->capture_default_str();
  app.add_option("--log-level", options.log_level,
                 "Log verbosity: trace, debug, info, warn, error, critical or off")
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
