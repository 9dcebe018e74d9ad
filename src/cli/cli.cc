#include "cli/cli.h"

#include <algorithm>
#include <map>
#include <memory>

#include "cli/commands.h"

namespace canopy::cli {

namespace {

constexpr const char* kAbout =
    "canopy: the command-line client for Canopy. Networks, subnets, ports, routers, floating "
    "IPs, security groups and quotas over canopy-server's Neutron API; `topology` draws them, "
    "`trace` follows a packet through the datapath, `status` shows the agents.\n"
    "Credentials as the openstack client's: OS_* variables (an openrc), --os-cloud NAME "
    "(clouds.yaml), or --os-* flags; OS_AUTH_TYPE=none with OS_ENDPOINT for a server in "
    "noauth mode.";

// Every command path, its subcommands and its flags, for the completion script.
void collectWords(const CLI::App& app, const std::string& path,
                  std::vector<std::pair<std::string, std::string>>& out) {
  std::string words;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    words += (words.empty() ? "" : " ") + sub->get_name();
  }
  for (const CLI::Option* o : app.get_options()) {
    for (const auto& name : o->get_lnames()) words += (words.empty() ? "--" : " --") + name;
  }
  out.emplace_back(path, words);
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    collectWords(*sub, path.empty() ? sub->get_name() : path + " " + sub->get_name(), out);
  }
}

std::string bashCompletion(const CLI::App& app) {
  std::vector<std::pair<std::string, std::string>> paths;
  collectWords(app, "", paths);
  std::string known, cases;
  for (const auto& [path, words] : paths) {
    if (!path.empty()) known += (known.empty() ? "\"" : "|\"") + path + "\"";
    cases += "    \"" + path + "\") words=\"" + words + "\" ;;\n";
  }
  return "# bash completion for canopy: source <(canopy completion bash)\n"
         "_canopy() {\n"
         "  local cur=${COMP_WORDS[COMP_CWORD]} path= next i words\n"
         "  for ((i = 1; i < COMP_CWORD; i++)); do\n"
         "    next=\"$path${path:+ }${COMP_WORDS[i]}\"\n"
         "    case \"$next\" in\n"
         "      " +
         known +
         ") path=$next ;;\n"
         "    esac\n"
         "  done\n"
         "  case \"$path\" in\n" +
         cases +
         "  esac\n"
         "  COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "}\n"
         "complete -F _canopy canopy\n";
}

}  // namespace

void addCompletionCommand(CLI::App& app, Context& ctx) {
  CLI::App* cmd = app.add_subcommand("completion", "Print a shell completion script");
  auto shell = std::make_shared<std::string>();
  cmd->add_option("SHELL", *shell, "bash")->required()->check(CLI::IsMember({"bash"}));
  const CLI::App* root = &app;
  std::ostream& out = ctx.out;
  // The callback owns the storage CLI11 writes SHELL to.
  cmd->callback([&ctx, root, &out, shell] {
    ctx.action = [root, &out]() -> Result<void> {
      out << bashCompletion(*root);
      return ok();
    };
  });
}

int run(const std::vector<std::string>& args, const Runtime& runtime, std::ostream& out,
        std::ostream& err) {
  CLI::App app{kAbout, "canopy"};
  app.set_version_flag("--version", "canopy 0.1.0");
  app.require_subcommand(1);
  app.fallthrough();
  std::map<std::string, std::string> given;
  std::vector<std::pair<std::string, CLI::Option*>> credential_options;
  for (const auto& f : credentialFields()) {
    std::string key(f.key);
    CLI::Option* o = app.add_option(flagName(f), given[key],
                                    std::string(f.help) + " [" + std::string(f.env) + "]")
                         ->group("Credentials");
    credential_options.emplace_back(key, o);
  }
  std::string cloud;
  app.add_option("--os-cloud", cloud, "a cloud of clouds.yaml [OS_CLOUD]")->group("Credentials");
  double timeout = 30;
  app.add_option("--timeout", timeout, "seconds to wait for the server (default 30)")
      ->check(CLI::PositiveNumber);

  std::unique_ptr<Client> client;
  Context ctx{out, err, [&]() -> Result<Client*> {
                if (client) return client.get();
                CredentialInputs in;
                in.env = runtime.env;
                in.cloud = cloud;
                for (const auto& [key, option] : credential_options) {
                  if (option->count() > 0) in.flags[key] = given[key];
                }
                in.clouds_files = runtime.clouds_files.empty() ? cloudsSearchPath(runtime.env)
                                                               : runtime.clouds_files;
                auto credentials = resolveCredentials(in);
                if (!credentials) return credentials.error();
                auto ms = std::chrono::milliseconds(static_cast<int64_t>(timeout * 1000));
                auto connected = Client::connect(*credentials, runtime.transport(ms));
                if (!connected) return connected.error();
                client = std::move(*connected);
                return client.get();
              }};
  addResourceCommands(app, ctx);
  addRouterCommands(app, ctx);
  addQuotaCommands(app, ctx);
  addTopologyCommand(app, ctx);
  addTraceCommand(app, ctx);
  addStatusCommand(app, ctx);
  addCompletionCommand(app, ctx);

  try {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    app.parse(reversed);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, out, err);
    err << "canopy: " << e.what() << "\nRun with --help for more information.\n";
    return 2;
  }
  if (!ctx.action) {
    err << "canopy: no command given; see --help\n";
    return 2;
  }
  auto r = ctx.action();
  out.flush();
  if (!r) {
    err << "canopy: " << r.error().message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace canopy::cli
