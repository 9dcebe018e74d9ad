// canopy: the operator's command-line client. It will speak to canopy-server's
// API with the openstack client's credentials (OS_* variables); this first
// version only knows who it is.

#include <CLI/CLI.hpp>
#include <cstdio>

int main(int argc, char** argv) {
  CLI::App app{
      "canopy: the command-line client for Canopy (networks, subnets, ports, routers, "
      "floating IPs, security groups; trace and status).\n"
      "Not built yet: every API command. They arrive with canopy-server's Neutron API."};
  app.set_version_flag("--version", "canopy 0.1.0");
  CLI11_PARSE(app, argc, argv);
  std::fprintf(stderr,
               "canopy: no commands are built yet; the API client arrives with the API server. "
               "See --help.\n");
  return 1;
}
