#pragma once
// A kind of resource the API serves, beyond its attribute map: who may see
// it, what the API derives when showing it, and what creating, updating or
// deleting it checks and writes besides its own document (parent revisions,
// cascades, uniqueness keys). The generic CRUD in neutron_api.cc calls these
// inside one optimistic transaction (state::Transaction), retried on
// conflict. Each kind is a file in kinds/ and one line of the registry
// (kinds.cc), so that a new kind (a QoS policy, a trunk, a load balancer)
// is a new file and one line; helpers several kinds share are declared here.
//
// Thread-safety: kinds are stateless; a Transaction belongs to one request.

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "model/attributes.h"
#include "model/network.h"
#include "state/model_state.h"
#include "state/transaction.h"

namespace canopy::api {

using model::Caller;
using model::Json;

// What one write request reads and the transaction it builds (state's one
// writer path, retried on conflict by ModelState::write).
using state::Transaction;

// An API extension as GET /v2.0/extensions shows it. A kind lists those
// it implements, so that an alias is advertised exactly when the code that
// honours it is registered.
struct Extension {
  std::string_view alias;
  std::string_view name;
  std::string_view description;
};

class ResourceKind {
 public:
  virtual ~ResourceKind() = default;
  virtual const model::ResourceSpec& spec() const = 0;
  virtual std::span<const Extension> extensions() const { return {}; }

  // Own project, or admin. Networks add shared and external ones, rules
  // those in the caller's groups.
  virtual bool visible(const Json& doc, const Caller& caller, const state::Tables& tables) const;
  // Whether the caller may change (update, delete, act on) a document it
  // sees: Allowed; Refused (403); Hidden (404, where Neutron's policy does
  // not let the caller read what it would change: a shared address group).
  // The default: own project, or admin.
  enum class Access { Allowed, Refused, Hidden };
  virtual Access access(const Json& doc, const Caller& caller, const state::Tables& tables,
                        std::string_view verb) const;
  // Attributes derived from the document alone (a port's dns_assignment):
  // cached with each version of it, as the rest of its view.
  virtual void presentOwn(Json& /*view*/, const Json& /*doc*/) const {}
  // Derived attributes for display (a network's subnets; whether it is
  // shared with the caller). Kinds that derive none have their views
  // cached per document version.
  virtual void present(Json& /*view*/, const Json& /*doc*/, const state::Tables& /*tables*/,
                       const Caller& /*caller*/) const {}
  virtual bool derivesViews() const { return false; }
  // A kind whose documents the API derives from others' (network IP
  // availability) is read-only: lists and shows use deriveAll, whose
  // documents carry an "id" (the spec may hide it) for markers and shows.
  virtual bool derived() const { return false; }
  virtual std::vector<Json> deriveAll(const state::Tables& /*tables*/) const { return {}; }
  // A filter_only attribute's value for `doc` (a subnet's "shared").
  virtual Json hiddenValue(const Json& /*doc*/, const std::string& /*attr*/,
                           const state::Tables& /*tables*/, const Caller& /*caller*/) const {
    return nullptr;
  }
  // Completes and checks a new document; may add guards and writes.
  virtual Result<void> create(Json& /*doc*/, Transaction& /*ctx*/) const { return ok(); }
  // What a PUT's validated attributes mean before they are merged (a
  // floating IP: an empty body disassociates it).
  virtual void prepareUpdate(Json& /*changes*/, const Json& /*before*/) const {}
  // Checks an updated document (`doc` has the changes merged into `before`).
  virtual Result<void> update(Json& /*doc*/, const Json& /*before*/, Transaction& /*ctx*/) const {
    return ok();
  }
  // Checks a deletion and adds what goes with it.
  virtual Result<void> remove(const Json& /*doc*/, Transaction& /*ctx*/) const { return ok(); }
  // Resources a caller gets on first use (a project's default security
  // group): whether they are missing, and the writes that create them.
  virtual bool missingDefaults(const state::Tables& /*tables*/, const Caller& /*caller*/) const {
    return false;
  }
  virtual Result<void> createDefaults(Transaction& /*ctx*/) const { return ok(); }
  // PUT /v2.0/<collection>/<id>/<name> (a router's add_router_interface):
  // whether the kind has the action, and running it on the visible,
  // changeable document `doc`; the result is the response body.
  virtual bool hasAction(std::string_view /*name*/) const { return false; }
  virtual Result<Json> action(std::string_view /*name*/, const Json& /*body*/,
                              const state::Document& /*doc*/, Transaction& /*ctx*/) const {
    return Error(Errc::NotFound, "The resource could not be found.", "HTTPNotFound");
  }
};

// Every resource the API serves, in the order /v2.0/ lists them (kinds.cc).
std::vector<std::unique_ptr<ResourceKind>> makeResourceKinds(const model::NetworkConfig& config);

// What the model admits into the API's stored collections: a document of
// the kind's spec (model::checkStored) under its id. Others pass.
state::ModelState::DocumentCheck storedDocumentCheck();

// Ports the server makes for other resources: router interfaces and
// gateways, floating IPs.
struct ServicePort {
  std::string project_id;  // "" for gateway and floating IP ports, as Neutron has it
  std::string network_id;
  std::string device_owner;
  std::string device_id;
  Json fixed_ips = nullptr;  // as a port request has them; null: automatic
  bool ipv4_only = false;    // automatic allocation from IPv4 subnets only
};
// Creates the port in `ctx` (MAC, addresses and their claims); the document.
Result<Json> createServicePort(const ServicePort& port, Transaction& ctx,
                               const model::NetworkConfig& config);
// Removes a port and gives back its addresses and MAC.
void removePort(const Json& port, Transaction& ctx);

// Whether `adding` more documents of `collection` fit the project's quota
// (OverQuota, 409, if not).
Result<void> checkQuota(const std::string& collection, const std::string& project, int64_t adding,
                        const Transaction& ctx);
// Re-allocates a port's fixed_ips to those `port` asks for, keeping those it
// already holds (`held`); the new list.
Result<Json> reallocatePort(const Json& port, const Json& held, Transaction& ctx);

// Clears the floating IPs associated with a port that goes away.
void disassociateFloatingIps(const std::string& port_id, Transaction& ctx);
// Stamps of a document the server creates on its own.
Json stamped(const Transaction& ctx, const std::string& project);

// The project's default security group, created (with Neutron's default
// rules) on first use; its id (kinds/security_group.cc).
Result<std::string> ensureDefaultGroup(Transaction& ctx, const std::string& project);

// A random (version 4) UUID.
std::string newUuid();
// Randomness for MACs, UUIDs and segment ids: one engine per thread.
std::mt19937_64& randomEngine();

// "<Type> <id> could not be found." with reason "<Type>NotFound".
Error notFound(const model::ResourceSpec& spec, std::string_view id);

}  // namespace canopy::api
