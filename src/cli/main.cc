// canopy: the operator's command-line client. It speaks to canopy-server's
// API with the openstack client's credentials; everything but reading the
// process's environment lives in cli.h's run().

#include <chrono>
#include <iostream>

#include "cli/cli.h"

extern char** environ;

int main(int argc, char** argv) {
  canopy::cli::Runtime runtime;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) runtime.env[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  std::unique_ptr<canopy::cli::HttpTransport> transport;
  runtime.transport = [&](std::chrono::milliseconds timeout) -> canopy::cli::Transport& {
    transport = std::make_unique<canopy::cli::HttpTransport>(timeout);
    return *transport;
  };
  std::vector<std::string> args(argv + 1, argv + argc);
  return canopy::cli::run(args, runtime, std::cout, std::cerr);
}
