#pragma once
// `canopy` as a function: parses a command line, connects with the
// credentials it finds, runs the command and returns the exit status
// (0 done; 1 the server or the network said no, with `canopy: <message>` on
// `err`; 2 a usage error). main() passes the process's environment and the
// real HTTP transport; tests pass their own.
//
//   HttpTransport transport(30s);
//   return run(args, environment, [&](auto) -> Transport& { return transport; },
//              std::cout, std::cerr);
//
// Thread-safety: one call per thread; nothing global.

#include <chrono>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/credentials.h"

namespace canopy::cli {

struct Runtime {
  Settings env;  // the process environment
  // The transport for a request timeout (--timeout); called once, when a
  // command first needs the server.
  std::function<Transport&(std::chrono::milliseconds)> transport;
  std::vector<std::string> clouds_files{};  // empty: cloudsSearchPath(env)
};

// `args` without the program name.
int run(const std::vector<std::string>& args, const Runtime& runtime, std::ostream& out,
        std::ostream& err);

}  // namespace canopy::cli
