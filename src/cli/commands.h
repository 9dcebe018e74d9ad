#pragma once
// The commands of `canopy` as a CLI11 tree. Each add*() function hangs its
// commands on the app; when CLI11 has parsed a command line, the chosen
// command's callback leaves what it will do in Context::action, which runs
// after parsing with a connected Client (commands that need no server never
// connect).
//
//   Context ctx{out, err, [&] { return connectOnce(); }};
//   addResourceCommands(app, ctx);
//   app.parse(argc, argv);
//   auto r = ctx.action();   // an Error's message is what the user sees
//
// Thread-safety: one Context per command line, on one thread.

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/output.h"

namespace canopy::cli {

struct Context {
  std::ostream& out;
  std::ostream& err;                        // per-item failures of commands that go on
  std::function<Result<Client*>()> client;  // connects on first use
  std::function<Result<void>()> action{};   // set by the parsed command's callback
};

// The command under `words` ("floating", "ip"), made on first use.
CLI::App* commandAt(CLI::App& app, const std::vector<std::string>& words,
                    const std::string& about = {});

// -f/--format table|json|value, -c/--column NAME (repeat, unless
// `columns` is false) and --json on a command that prints; read them
// through the returned object once parsed.
class OutputFlags {
 public:
  static std::shared_ptr<OutputFlags> add(CLI::App& command, bool columns = true);
  OutputOptions options() const;

 private:
  std::string format_ = "table";
  std::vector<std::string> columns_;
  bool json_ = false;
};

// Sets ctx.action to `run` (with the connected client) when `command` is chosen.
void onRun(CLI::App& command, Context& ctx, std::function<Result<void>(Client&)> run);

void addResourceCommands(CLI::App& app, Context& ctx);   // create/list/show/set/unset/delete
void addRouterCommands(CLI::App& app, Context& ctx);     // router add/remove subnet|port|route
void addQuotaCommands(CLI::App& app, Context& ctx);      // quota show/set/delete
void addTopologyCommand(CLI::App& app, Context& ctx);    // topology [--dot]
void addTraceCommand(CLI::App& app, Context& ctx);       // trace
void addStatusCommand(CLI::App& app, Context& ctx);      // status
void addCompletionCommand(CLI::App& app, Context& ctx);  // completion bash

}  // namespace canopy::cli
