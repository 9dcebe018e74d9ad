// canopy-agent: the per-host data plane. Its options are fixed here so that
// deployments and the demo can be written against them; the datapath and the
// southbound connection arrive with their issues.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <climits>
#include <cstdio>
#include <string>

#include "base/log.h"

int main(int argc, char** argv) {
  std::string host_name;
  {
    char buf[HOST_NAME_MAX + 1] = {};
    if (gethostname(buf, sizeof(buf) - 1) == 0) host_name = buf;
  }
  std::string log_level = "info";

  CLI::App app{
      "canopy-agent: Canopy's per-host data plane (binds VM interfaces to logical ports, "
      "receives its host's view from canopy-server, forwards packets).\n"
      "Options may also come from a config file of `key = value` lines named with --config."};
  app.set_config("--config", "", "Read options from this file");
  app.add_option("--host-name", host_name,
                 "The name this host is known by in binding:host_id (default: the system "
                 "host name)")
      ->capture_default_str();
  app.add_option("--log-level", log_level,
                 "Log verbosity: trace, debug, info, warn, error, critical or off")
      ->capture_default_str();
  app.set_version_flag("--version", "canopy-agent 0.1.0");
  CLI11_PARSE(app, argc, argv);

  if (auto r = canopy::setupLogging(log_level); !r) {
    std::fprintf(stderr, "canopy-agent: %s\n", r.error().message().c_str());
    return 2;
  }
  spdlog::error(
      "canopy-agent on host '{}': not built yet: the datapath, packet I/O and the southbound "
      "connection to canopy-server are still to come; exiting",
      host_name);
  return 1;
}
