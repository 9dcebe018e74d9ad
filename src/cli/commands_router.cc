// Commands beyond create/list/show/set/delete: a router's interfaces and
// extra routes (`router add|remove subnet|port|route`) and quotas
// (`quota show|set|delete`).

#include "cli/commands.h"
#include "cli/resource_def.h"

namespace canopy::cli {

namespace {

struct InterfaceCommand {
  const char* object;  // "subnet"
  const Collection* collection;
  const char* key;  // "subnet_id"
};

constexpr InterfaceCommand kInterfaces[] = {
    {"subnet", &kSubnets, "subnet_id"},
    {"port", &kPorts, "port_id"},
};

std::string routerAction(const std::string& router_id, bool add, const char* what) {
  return "/v2.0/routers/" + urlEncode(router_id) + "/" + (add ? "add_" : "remove_") + what;
}

void addInterfaceCommand(CLI::App& parent, Context& ctx, bool add, const InterfaceCommand& ic) {
  std::string noun(ic.collection->noun);
  CLI::App* cmd = parent.add_subcommand(
      ic.object, add ? "Attach the router to a " + noun : "Detach the router from a " + noun);
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("ROUTER", args->first, "the router (name or id)")->required();
  cmd->add_option(noun == "port" ? "PORT" : "SUBNET", args->second, "the " + noun + " (name or id)")
      ->required();
  onRun(*cmd, ctx, [args, add, ic](Client& client) -> Result<void> {
    auto router = client.findId(kRouters, args->first);
    if (!router) return router.error();
    auto id = client.findId(*ic.collection, args->second);
    if (!id) return id.error();
    Json body = {{ic.key, *id}};
    auto r = client.request("PUT", routerAction(*router, add, "router_interface"), &body);
    if (!r) return r.error();
    return ok();
  });
}

void addRouteCommand(CLI::App& parent, Context& ctx, bool add) {
  CLI::App* cmd = parent.add_subcommand(
      "route", add ? "Add extra routes to a router" : "Remove extra routes from a router");
  struct Args {
    std::string router, destination, gateway;
    std::vector<std::string> routes;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("ROUTER", args->router, "the router (name or id)")->required();
  auto* dest = cmd->add_option("--destination", args->destination, "the route's destination")
                   ->type_name("CIDR");
  auto* gw = cmd->add_option("--gateway", args->gateway, "the route's next hop")->type_name("IP");
  dest->needs(gw);
  gw->needs(dest);
  cmd->add_option("--route", args->routes, "a route, another way (repeat)")
      ->type_name("destination=CIDR,gateway=IP")
      ->allow_extra_args(false);
  onRun(*cmd, ctx, [args, add](Client& client) -> Result<void> {
    Json routes = Json::array();
    if (!args->destination.empty()) {
      routes.push_back({{"destination", args->destination}, {"nexthop", args->gateway}});
    }
    for (const auto& text : args->routes) {
      auto route = parseRoute(text);
      if (!route) return route.error();
      routes.push_back(std::move(*route));
    }
    if (routes.empty()) {
      return Error(Errc::InvalidArgument, "give --destination CIDR --gateway IP, or --route");
    }
    auto router = client.findId(kRouters, args->router);
    if (!router) return router.error();
    Json body = {{"router", {{"routes", routes}}}};
    auto r = client.request("PUT", routerAction(*router, add, "extraroutes"), &body);
    if (!r) return r.error();
    return ok();
  });
}

// Quota flags as the openstack client names them, and the API's keys.
struct QuotaFlag {
  const char* flag;
  const char* key;
};
constexpr QuotaFlag kQuotaFlags[] = {
    {"--networks", "network"},
    {"--subnets", "subnet"},
    {"--ports", "port"},
    {"--routers", "router"},
    {"--floating-ips", "floatingip"},
    {"--secgroups", "security_group"},
    {"--secgroup-rules", "security_group_rule"},
};

// A project named by id, or by name when the identity service lists projects.
Result<std::string> projectId(Client& client, const std::string& given) {
  if (given.empty()) {
    if (client.projectId().empty()) {
      return Error(Errc::InvalidArgument,
                   "name the project: these credentials are not scoped to one");
    }
    return client.projectId();
  }
  for (const auto& [id, name] : client.projectNames()) {
    if (name == given) return id;
  }
  return given;
}

std::string quotaPath(const std::string& project) { return "/v2.0/quotas/" + urlEncode(project); }

void addQuotaShow(CLI::App& parent, Context& ctx) {
  CLI::App* cmd = parent.add_subcommand("show", "Show a project's quotas");
  struct Args {
    std::string project;
    bool defaults = false;
    bool usage = false;
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("PROJECT", args->project, "the project (default: that of the credentials)");
  auto* d = cmd->add_flag("--default", args->defaults, "the defaults for new projects");
  cmd->add_flag("--usage", args->usage, "usage beside each limit")->excludes(d);
  auto output = OutputFlags::add(*cmd);
  std::ostream& out = ctx.out;
  onRun(*cmd, ctx, [args, output, &out](Client& client) -> Result<void> {
    auto project = projectId(client, args->project);
    if (!project) return project.error();
    std::string suffix = args->defaults ? "/default" : args->usage ? "/details" : "";
    auto quota = memberOf(client.get(quotaPath(*project) + suffix), "quota");
    if (!quota) return quota.error();
    OutputOptions options = output->options();
    if (!args->usage || options.format == Format::JsonText)
      return printObject(out, options, *quota);
    Table table{{"Resource", "In Use", "Limit"}, {}};
    for (auto it = quota->begin(); it != quota->end(); ++it) {
      table.rows.push_back({it.key(), formatCell(it.value().value("used", Json())),
                            formatCell(it.value().value("limit", Json()))});
    }
    return printList(out, options, table, {"", "used", "limit"}, {});
  });
}

void addQuotaSet(CLI::App& parent, Context& ctx) {
  CLI::App* cmd = parent.add_subcommand("set", "Change a project's quotas (admins; -1: no limit)");
  struct Args {
    std::string project;
    std::vector<std::string> limits = std::vector<std::string>(std::size(kQuotaFlags));
  };
  auto args = std::make_shared<Args>();
  cmd->add_option("PROJECT", args->project, "the project (name or id)")->required();
  for (size_t i = 0; i < std::size(kQuotaFlags); ++i) {
    cmd->add_option(kQuotaFlags[i].flag, args->limits[i],
                    std::string("the limit on ") + kQuotaFlags[i].key + "s")
        ->type_name("N");
  }
  onRun(*cmd, ctx, [args](Client& client) -> Result<void> {
    Json quota = Json::object();
    for (size_t i = 0; i < std::size(kQuotaFlags); ++i) {
      if (args->limits[i].empty()) continue;
      auto n = parseInteger(kQuotaFlags[i].flag, args->limits[i]);
      if (!n) return n.error();
      quota[kQuotaFlags[i].key] = *n;
    }
    if (quota.empty()) return Error(Errc::InvalidArgument, "give at least one limit to set");
    auto project = projectId(client, args->project);
    if (!project) return project.error();
    Json body = {{"quota", quota}};
    auto r = client.request("PUT", quotaPath(*project), &body);
    if (!r) return r.error();
    return ok();
  });
}

void addQuotaDelete(CLI::App& parent, Context& ctx) {
  CLI::App* cmd = parent.add_subcommand("delete", "Put a project's quotas back to the defaults");
  auto project_arg = std::make_shared<std::string>();
  cmd->add_option("PROJECT", *project_arg, "the project (name or id)")->required();
  onRun(*cmd, ctx, [project_arg](Client& client) -> Result<void> {
    auto project = projectId(client, *project_arg);
    if (!project) return project.error();
    auto r = client.request("DELETE", quotaPath(*project));
    if (!r) return r.error();
    return ok();
  });
}

}  // namespace

void addRouterCommands(CLI::App& app, Context& ctx) {
  CLI::App* router = commandAt(app, {"router"});
  for (bool add : {true, false}) {
    CLI::App* verb = router->add_subcommand(add ? "add" : "remove",
                                            add ? "Attach a subnet or port, or add routes"
                                                : "Detach a subnet or port, or remove routes");
    verb->require_subcommand(1);
    for (const auto& ic : kInterfaces) addInterfaceCommand(*verb, ctx, add, ic);
    addRouteCommand(*verb, ctx, add);
  }
}

void addQuotaCommands(CLI::App& app, Context& ctx) {
  CLI::App* quota =
      commandAt(app, {"quota"}, "Quotas: how many of each resource a project may have");
  addQuotaShow(*quota, ctx);
  addQuotaSet(*quota, ctx);
  addQuotaDelete(*quota, ctx);
}

}  // namespace canopy::cli
