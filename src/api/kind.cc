// What kinds share: visibility, stamps, UUIDs, not-found errors.

#include "api/kind.h"

#include <cstdio>

#include "model/quota.h"

namespace canopy::api {

std::mt19937_64& randomEngine() {
  thread_local std::mt19937_64 r(std::random_device{}());
  return r;
}

Json stamped(const Transaction& ctx, const std::string& project) {
  return {{"id", newUuid()},         {"project_id", project},   {"tenant_id", project},
          {"created_at", ctx.now()}, {"updated_at", ctx.now()}, {"revision_number", 1},
          {"tags", Json::array()}};
}

Error notFound(const model::ResourceSpec& spec, std::string_view id) {
  std::string message = spec.type_name + " " + std::string(id) + " could not be found.";
  if (spec.type_name == "SecurityGroup") {
    message = "Security group " + std::string(id) + " does not exist";
  } else if (spec.type_name == "SecurityGroupRule") {
    message = "Security group rule " + std::string(id) + " does not exist";
  } else if (spec.type_name == "Router") {
    message = "Router " + std::string(id) + " could not be found";
  } else if (spec.type_name == "RbacPolicy") {
    message = "RBAC policy of type unknown with ID " + std::string(id) + " not found";
  } else if (spec.type_name == "FloatingIP") {
    message = "Floating IP " + std::string(id) + " could not be found";
  }
  return Error(Errc::NotFound, std::move(message), spec.type_name + "NotFound");
}

std::string newUuid() {
  thread_local std::mt19937_64 rng(std::random_device{}() ^
                                   (static_cast<uint64_t>(std::random_device{}()) << 32));
  uint64_t hi = rng(), lo = rng();
  hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // RFC 4122 variant
  char buf[37];
  std::snprintf(buf, sizeof(buf), "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                static_cast<unsigned>(lo >> 48),
                static_cast<unsigned long long>(lo & 0xffffffffffffULL));
  return buf;
}

bool ResourceKind::visible(const Json& doc, const Caller& caller,
                           const state::Tables& /*tables*/) const {
  return caller.is_admin || doc.value("project_id", "") == caller.project_id;
}

ResourceKind::Access ResourceKind::access(const Json& doc, const Caller& caller,
                                          const state::Tables& /*tables*/,
                                          std::string_view /*verb*/) const {
  if (caller.is_admin || doc.value("project_id", "") == caller.project_id) return Access::Allowed;
  return Access::Refused;
}

Result<void> checkQuota(const std::string& collection, const std::string& project, int64_t adding,
                        const Transaction& ctx) {
  const model::QuotaResource* quota = model::quotaFor(collection);
  if (quota == nullptr) return ok();
  const state::Document* stored = ctx.find("quotas", project);
  int64_t limit = model::quotaLimits(stored ? &stored->doc : nullptr)[quota->name];
  if (limit < 0) return ok();
  auto used = static_cast<int64_t>(ctx.tables().lookup(collection + ".project", project).size());
  if (used + adding > limit) return model::overQuota(quota->name);
  return ok();
}

}  // namespace canopy::api
