// The generic resource commands: create, list, show, set, unset and delete
// for every entry of resourceDefs(), and the plumbing every command shares
// (command paths, output flags, actions).

#include <map>

#include "cli/commands.h"
#include "cli/resource_def.h"

namespace canopy::cli {

CLI::App* commandAt(CLI::App& app, const std::vector<std::string>& words,
                    const std::string& about) {
  CLI::App* at = &app;
  for (const auto& word : words) {
    CLI::App* next = nullptr;
    for (CLI::App* sub : at->get_subcommands([](CLI::App*) { return true; })) {
      if (sub->get_name() == word) next = sub;
    }
    if (next == nullptr) {
      next = at->add_subcommand(word, about);
      next->require_subcommand(1);
    }
    at = next;
  }
  if (!about.empty()) at->description(about);
  return at;
}

std::shared_ptr<OutputFlags> OutputFlags::add(CLI::App& command, bool columns) {
  auto flags = std::make_shared<OutputFlags>();
  command.add_option("-f,--format", flags->format_, "output: table (default), json or value")
      ->check(CLI::IsMember({"table", "json", "value"}));
  if (columns) {
    command
        .add_option("-c,--column", flags->columns_,
                    "only this column (a header or field name; repeat)")
        ->allow_extra_args(false);
  }
  command.add_flag("--json", flags->json_, "the same as -f json");
  return flags;
}

OutputOptions OutputFlags::options() const {
  OutputOptions o;
  o.format = json_ || format_ == "json" ? Format::JsonText
             : format_ == "value"       ? Format::Value
                                        : Format::Table;
  o.columns = columns_;
  return o;
}

void onRun(CLI::App& command, Context& ctx, std::function<Result<void>(Client&)> run) {
  command.callback([&ctx, run] {
    ctx.action = [&ctx, run]() -> Result<void> {
      auto client = ctx.client();
      if (!client) return client.error();
      return run(**client);
    };
  });
}

namespace {

// One command's parsed values, index for index with the resource's options.
struct Parsed {
  std::vector<CLI::Option*> options;             // null where the verb has no such option
  std::vector<std::string> single;               // Arity::One
  std::vector<std::vector<std::string>> values;  // Arity::Many
  std::string positional;
  std::vector<std::string> targets;
};

const char* verbName(Verb verb) {
  switch (verb) {
    case kCreate:
      return "create";
    case kSet:
      return "set";
    case kUnset:
      return "unset";
    case kList:
      return "list";
    case kShow:
      return "show";
    case kDelete:
      return "delete";
  }
  return "?";
}

std::string aboutVerb(Verb verb, const Collection& c) {
  std::string noun(c.noun);
  switch (verb) {
    case kCreate:
      return "Create a " + noun;
    case kSet:
      return "Change a " + noun;
    case kUnset:
      return "Remove settings of a " + noun;
    case kList:
      return "List " + noun + "s";
    case kShow:
      return "Show a " + noun;
    case kDelete:
      return "Delete " + noun + "s";
  }
  return {};
}

void bindOptions(CLI::App& cmd, const ResourceDef& def, Verb verb, Parsed& p) {
  const auto& options = def.options.options();
  p.options.resize(options.size());
  p.single.resize(options.size());
  p.values.resize(options.size());
  std::map<std::string, std::vector<CLI::Option*>> groups;
  for (size_t i = 0; i < options.size(); ++i) {
    const OptionDef& opt = options[i];
    if ((opt.verbs & verb) == 0) continue;
    CLI::Option* o = nullptr;
    if (opt.arity == Arity::Flag) {
      o = cmd.add_flag(opt.flags, opt.help);
    } else if (opt.arity == Arity::One) {
      o = cmd.add_option(opt.flags, p.single[i], opt.help)->type_name(opt.metavar);
    } else {
      o = cmd.add_option(opt.flags, p.values[i], opt.help)
              ->type_name(opt.metavar)
              ->allow_extra_args(false);
    }
    p.options[i] = o;
    if ((opt.required & verb) != 0) o->required();
    if (!opt.group.empty()) groups[opt.group].push_back(o);
  }
  for (auto& [name, members] : groups) {
    for (CLI::Option* a : members) {
      for (CLI::Option* b : members) {
        if (a != b) a->excludes(b);
      }
    }
  }
}

Result<void> applyOptions(const ResourceDef& def, const Parsed& p, Edit& e) {
  const auto& options = def.options.options();
  for (size_t i = 0; i < options.size(); ++i) {
    const OptionDef& opt = options[i];
    if ((opt.verbs & e.verb) == 0 || p.options[i] == nullptr || p.options[i]->count() == 0) {
      continue;
    }
    auto r =
        opt.apply(e, opt.arity == Arity::One ? std::vector<std::string>{p.single[i]} : p.values[i]);
    if (!r) return r;
  }
  return ok();
}

std::string memberPath(const Collection& c, const Json& item) {
  return "/v2.0/" + std::string(c.path) + "/" + urlEncode(model::stringAt(item, "id"));
}

Result<void> create(Client& client, const ResourceDef& def, const Parsed& p, std::ostream& out,
                    const OutputOptions& output) {
  Json none;
  Edit e{.verb = kCreate, .client = client, .current = none, .body = def.create_defaults};
  if (auto r = def.create_positional.apply(e, {p.positional}); !r) return r;
  if (auto r = applyOptions(def, p, e); !r) return r;
  std::string member(def.collection->member);
  Json body = {{member, e.body}};
  auto made =
      memberOf(client.request("POST", "/v2.0/" + std::string(def.collection->path), &body), member);
  if (!made) return made.error();
  return printObject(out, output, *made);
}

Result<void> list(Client& client, const ResourceDef& def, const Parsed& p, std::ostream& out,
                  const OutputOptions& output) {
  Json none;
  Edit e{.verb = kList, .client = client, .current = none};
  if (!p.positional.empty()) {
    if (auto r = def.list_positional.apply(e, {p.positional}); !r) return r;
  }
  if (auto r = applyOptions(def, p, e); !r) return r;
  auto items = client.list(*def.collection, e.query);
  if (!items) return items.error();
  Table table;
  std::vector<std::string> fields;
  for (const auto& c : def.columns) {
    table.headers.push_back(c.header);
    fields.push_back(c.field);
  }
  for (const auto& item : *items) table.rows.push_back(rowFor(def.columns, item));
  return printList(out, output, table, fields, *items);
}

Result<void> change(Client& client, const ResourceDef& def, Verb verb, const Parsed& p) {
  auto current = client.find(*def.collection, p.targets.front());
  if (!current) return current.error();
  Edit e{.verb = verb, .client = client, .current = *current};
  if (auto r = applyOptions(def, p, e); !r) return r;
  if (e.body.empty()) return ok();
  Json body = {{std::string(def.collection->member), e.body}};
  auto r = client.request("PUT", memberPath(*def.collection, *current), &body);
  if (!r) return r.error();
  return ok();
}

Result<void> remove(Client& client, const ResourceDef& def, const Parsed& p, std::ostream& err) {
  size_t failed = 0;
  for (const auto& target : p.targets) {
    auto found = client.find(*def.collection, target);
    Result<Json> r = found ? client.request("DELETE", memberPath(*def.collection, *found))
                           : Result<Json>(found.error());
    if (!r && p.targets.size() == 1) return r.error();
    if (!r) {
      // Report each and go on, as the openstack client does.
      err << "canopy: " << r.error().message() << "\n";
      ++failed;
    }
  }
  if (failed == 0) return ok();
  return Error(Errc::InvalidArgument,
               std::to_string(failed) + " of " + std::to_string(p.targets.size()) + " " +
                   std::string(def.collection->noun) + "s failed to delete.");
}

void addVerb(CLI::App& parent, Context& ctx, const ResourceDef& def, Verb verb) {
  CLI::App* cmd = parent.add_subcommand(verbName(verb), aboutVerb(verb, *def.collection));
  auto p = std::make_shared<Parsed>();
  std::shared_ptr<OutputFlags> output;
  std::string noun(def.collection->noun);
  if (verb == kCreate) {
    cmd->add_option(def.create_positional.name, p->positional, def.create_positional.help)
        ->required();
  } else if (verb == kList && !def.list_positional.name.empty()) {
    cmd->add_option(def.list_positional.name, p->positional, def.list_positional.help);
  } else if (verb != kList) {
    std::string help = verb == kDelete ? "the " + noun + "s to delete (names or ids)"
                                       : "the " + noun + " (name or id)";
    cmd->add_option(verb == kDelete ? "TARGETS" : "TARGET", p->targets, help)
        ->required()
        ->expected(1, verb == kDelete ? -1 : 1);
  }
  bindOptions(*cmd, def, verb, *p);
  if (verb == kCreate || verb == kList || verb == kShow) output = OutputFlags::add(*cmd);
  const ResourceDef* d = &def;
  std::ostream& out = ctx.out;
  std::ostream& err = ctx.err;
  onRun(*cmd, ctx, [d, verb, p, output, &out, &err](Client& client) -> Result<void> {
    switch (verb) {
      case kCreate:
        return create(client, *d, *p, out, output->options());
      case kList:
        return list(client, *d, *p, out, output->options());
      case kShow: {
        auto item = client.find(*d->collection, p->targets.front());
        if (!item) return item.error();
        return printObject(out, output->options(), *item);
      }
      case kSet:
      case kUnset:
        return change(client, *d, verb, *p);
      case kDelete:
        return remove(client, *d, *p, err);
    }
    return ok();
  });
}

}  // namespace

void addResourceCommands(CLI::App& app, Context& ctx) {
  for (const ResourceDef& def : resourceDefs()) {
    CLI::App* cmd = commandAt(app, def.words, def.about);
    for (Verb verb : {kCreate, kList, kShow, kSet, kUnset, kDelete}) {
      if ((def.verbs & verb) != 0) addVerb(*cmd, ctx, def, verb);
    }
  }
}

}  // namespace canopy::cli
