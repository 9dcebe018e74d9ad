// Security-group logging (Neutron's logging): log objects at
// /v2.0/log/logs, admin only as Neutron's policy, each for a project's
// security groups: one group (resource_id), one port (target_id), or, with
// neither, every port of the project; events ACCEPT (new connections the
// groups allow), DROP (packets they refuse) or ALL. /v2.0/log/
// loggable-resources lists what can be logged: security groups.
//
// Each port carries the events logged for it in its southbound object; the
// port's host writes one record per logged connection or dropped packet,
// rate-limited, to its security-group log file and the agent's log
// (docs/DATAPATH.md, "Security-group logging"). A group that goes takes its
// logs with it, as a port does its own.

#include "api/detail/endpoint.h"
#include "api/detail/logs.h"
#include "api/kind.h"
#include "model/port.h"
#include "model/security_group.h"

namespace canopy::api {
namespace {

constexpr Extension kLogExtensions[] = {
    {"logging", "Logging API Extension",
     "Provides a logging API (security groups: ACCEPT and DROP events, written by each host's "
     "agent)"},
};

std::optional<std::string> checkEvent(const Json& v) {
  if (v == "ALL" || v == "ACCEPT" || v == "DROP") return std::nullopt;
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
         "' is not in ['ACCEPT', 'ALL', 'DROP']";
}

std::optional<std::string> checkType(const Json& v) {
  if (v == "security_group") return std::nullopt;
  return "'" + (v.is_string() ? v.get<std::string>() : v.dump()) +
         "' is not a loggable resource type: ['security_group']";
}

const model::ResourceSpec& logSpec() {
  static const model::ResourceSpec spec = [] {
    model::ResourceSpec s{.collection = "logs", .member = "log", .type_name = "Log"};
    model::addStandardAttributes(s.attrs);
    auto& a = s.attrs;
    a.push_back({.name = "resource_type", .allow_post = true, .check = checkType});
    a.push_back({.name = "resource_id",
                 .type = model::AttrType::Uuid,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back({.name = "target_id",
                 .type = model::AttrType::Uuid,
                 .allow_post = true,
                 .default_value = Json(nullptr),
                 .nullable = true});
    a.push_back(
        {.name = "event", .allow_post = true, .default_value = Json("ALL"), .check = checkEvent});
    a.push_back({.name = "enabled",
                 .type = model::AttrType::Bool,
                 .allow_post = true,
                 .allow_put = true,
                 .default_value = Json(true)});
    return s;
  }();
  return spec;
}

class LogKind final : public ResourceKind {
 public:
  const model::ResourceSpec& spec() const override { return logSpec(); }
  std::span<const Extension> extensions() const override { return kLogExtensions; }

  bool visible(const Json&, const Caller& caller, const state::Tables&) const override {
    return caller.is_admin;
  }
  Access access(const Json&, const Caller& caller, const state::Tables&,
                std::string_view) const override {
    return caller.is_admin ? Access::Allowed : Access::Hidden;
  }

  Result<void> create(Json& doc, Transaction& ctx) const override {
    if (!ctx.caller().is_admin) {
      return model::policyRefused("(rule:create_log) is disallowed by policy");
    }
    const std::string group =
        doc["resource_id"].is_string() ? doc["resource_id"].get<std::string>() : std::string();
    const std::string target =
        doc["target_id"].is_string() ? doc["target_id"].get<std::string>() : std::string();
    if (!group.empty() && ctx.current("security-groups", group) == nullptr) {
      return Error(Errc::NotFound, "Security group " + group + " does not exist",
                   "SecurityGroupNotFound");
    }
    if (!target.empty()) {
      const Json* port = ctx.current("ports", target);
      if (port == nullptr) {
        return Error(Errc::NotFound, "Target resource " + target + " could not be found.",
                     "TargetResourceNotFound");
      }
      if (!group.empty()) {
        bool member = false;
        for (const auto& g : port->value("security_groups", Json::array())) member |= g == group;
        if (!member) {
          return model::badRequest("Invalid input for operation: Port " + target +
                                   " is not in security group " + group + ".");
        }
      }
    }
    return ok();
  }
};

}  // namespace

std::unique_ptr<ResourceKind> makeLogKind(const model::NetworkConfig&) {
  return std::make_unique<LogKind>();
}

namespace detail {

void removeLogsOf(std::string_view index, const std::string& id, Transaction& ctx) {
  for (const auto& log : ctx.tables().lookup(index, id)) {
    if (const state::Document* d = ctx.find("logs", log)) {
      ctx.guard("logs", log, d->mod_revision);
      ctx.remove("logs", log);
    }
  }
}

HttpResponse serveLoggableResources(const HttpRequest& req, const Caller& caller) {
  if (req.method != "GET") return methodNotAllowed();
  if (!caller.is_admin) {
    return errorResponse(
        model::policyRefused("(rule:get_loggable_resource) is disallowed by policy"));
  }
  return json(200, {{"loggable_resources", Json::array({{{"type", "security_group"}}})}});
}

}  // namespace detail
}  // namespace canopy::api
