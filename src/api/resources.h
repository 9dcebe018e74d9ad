#pragma once
// The behaviour of each Neutron resource beyond its attribute map: who may
// see it, what the API derives when showing it, and what creating, updating
// or deleting it checks and writes besides its own document (parent
// revisions, cascades, uniqueness keys). The generic CRUD in neutron_api.cc
// calls these inside one optimistic transaction, retried on conflict.
//
// Thread-safety: kinds are stateless; a WriteContext belongs to one request.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/attributes.h"
#include "model/network.h"
#include "state/model_state.h"

namespace canopy::api {

using model::Caller;
using model::Json;

// What one write request reads and the transaction it builds.
class WriteContext {
 public:
  WriteContext(const state::Tables& tables, const Caller& caller, std::string now)
      : tables_(tables), caller_(caller), now_(std::move(now)) {}

  const Caller& caller() const { return caller_; }
  const std::string& now() const { return now_; }
  const state::Tables& tables() const { return tables_; }

  // A stored document (as of the read), or nullptr.
  const state::Document* find(std::string_view collection, std::string_view id) const;
  // The documents filed under `key` in a state index (see defaultIndexes()),
  // plus those this request writes that would be (docs written here win).
  std::vector<const Json*> indexed(std::string_view index, std::string_view collection,
                                   const std::string& key) const;

  // The transaction: the document must still be at the revision we read…
  void guard(std::string_view collection, const std::string& id, store::Revision mod_revision);
  void guardAbsent(std::string_view collection, const std::string& id);
  // …and these are written (a later write of the same key replaces an earlier one).
  void put(std::string_view collection, const std::string& id, const Json& doc);
  void remove(std::string_view collection, const std::string& id);
  // Raw keys beside the documents: uniqueness claims (an IP, a MAC).
  void claim(const std::string& key, const std::string& value);
  void release(const std::string& key);

  // Bumps a parent's revision_number and updated_at (Neutron does so when a
  // child such as a subnet changes), guarded by its revision.
  void touch(std::string_view collection, const std::string& id);

  const std::vector<store::Compare>& compares() const { return compares_; }
  std::vector<store::Op> ops() const;

 private:
  const state::Tables& tables_;
  const Caller& caller_;
  std::string now_;
  std::vector<store::Compare> compares_;
  std::map<std::string, store::Op> writes_;                     // by key
  std::map<std::string, std::map<std::string, Json>> pending_;  // collection -> id -> doc
};

class ResourceKind {
 public:
  virtual ~ResourceKind() = default;
  virtual const model::ResourceSpec& spec() const = 0;

  // Own project, or admin. Networks add shared and external ones.
  virtual bool visible(const Json& doc, const Caller& caller) const;
  // Derived attributes for display (a network's subnets).
  virtual void present(Json& /*view*/, const Json& /*doc*/, const state::Tables& /*tables*/) const {
  }
  // Completes and checks a new document; may add guards and writes.
  virtual Result<void> create(Json& /*doc*/, WriteContext& /*ctx*/) const { return ok(); }
  // Checks an updated document (`doc` has the changes merged into `before`).
  virtual Result<void> update(Json& /*doc*/, const Json& /*before*/, WriteContext& /*ctx*/) const {
    return ok();
  }
  // Checks a deletion and adds what goes with it.
  virtual Result<void> remove(const Json& /*doc*/, WriteContext& /*ctx*/) const { return ok(); }
  // Resources a caller gets on first use (a project's default security
  // group): whether they are missing, and the writes that create them.
  virtual bool missingDefaults(const state::Tables& /*tables*/, const Caller& /*caller*/) const {
    return false;
  }
  virtual Result<void> createDefaults(WriteContext& /*ctx*/) const { return ok(); }
};

// Every resource the API serves, in the order /v2.0/ lists them.
std::vector<std::unique_ptr<ResourceKind>> makeResourceKinds(const model::NetworkConfig& config);

// A random (version 4) UUID.
std::string newUuid();

// "<Type> <id> could not be found." with reason "<Type>NotFound".
Error notFound(const model::ResourceSpec& spec, std::string_view id);

}  // namespace canopy::api
