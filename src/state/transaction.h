#pragma once
// One write into the model: what a writer read (the model as of one
// revision) and the store transaction it builds from that read: compares
// that must still hold when it commits, and the puts and deletes. Every
// writer of the server builds one (the API, the southbound's port reports,
// key assignment, agent registration) and ModelState::write() runs it,
// retrying from a fresh read when another writer got there first.
//
//   auto r = state.write({.caller = caller, .now = now}, [&](Transaction& txn) -> Result<void> {
//     const Document* port = txn.find("ports", id);
//     if (port == nullptr) return Error(Errc::NotFound, "port " + id + " not found");
//     Json doc = port->doc;
//     doc["status"] = "ACTIVE";
//     txn.update("ports", id, doc);   // guarded by the revision read
//     return ok();
//   });
//
// Every write compares: update() and erase() guard the document as it was
// read (its revision, or its absence), claim() guards a uniqueness key's
// absence, and put()/remove() are for documents already guarded.
//
// Thread-safety: a Transaction belongs to one writer; it borrows the tables
// it was built over, valid only inside ModelState::write()'s build call.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "model/attributes.h"
#include "state/tables.h"
#include "store/store.h"

namespace canopy::state {

class Transaction {
 public:
  Transaction(const Tables& tables, const model::Caller& caller, std::string now)
      : tables_(tables), caller_(caller), now_(std::move(now)) {}

  // On whose behalf it writes (the southbound and the server write as the
  // system: an admin of no project).
  const model::Caller& caller() const { return caller_; }
  // The timestamp of this write (Neutron's "2026-01-02T03:04:05Z").
  const std::string& now() const { return now_; }
  const Tables& tables() const { return tables_; }

  // A stored document (as of the read), or nullptr.
  const Document* find(std::string_view collection, std::string_view id) const {
    return tables_.find(collection, id);
  }
  // The document as this transaction leaves it so far: written here, else
  // stored; nullptr if absent or removed here.
  const Json* current(std::string_view collection, std::string_view id) const;
  // The documents filed under `key` in a state index, plus those this
  // transaction writes that would be (documents written here win).
  std::vector<const Json*> indexed(std::string_view index, std::string_view collection,
                                   const std::string& key) const;

  // The document must still be at the revision read, or still absent…
  void guard(std::string_view collection, const std::string& id, store::Revision mod_revision);
  void guardAbsent(std::string_view collection, const std::string& id);
  // …and these are written (a later write of the same key replaces an
  // earlier one). The caller guards first.
  // With a lease, the document goes when the lease ends (store.h).
  void put(std::string_view collection, const std::string& id, const Json& doc,
           store::LeaseId lease = 0);
  void remove(std::string_view collection, const std::string& id);
  // put() and remove() guarded by the document as read: its revision, or
  // its absence if it was not there.
  void update(std::string_view collection, const std::string& id, const Json& doc);
  void erase(std::string_view collection, const std::string& id);
  // Raw keys beside the documents: uniqueness claims (an IP, a MAC), created
  // only if absent, and their release.
  void claim(const std::string& key, const std::string& value);
  void release(const std::string& key);

  // Bumps a parent's revision_number and updated_at (Neutron does so when a
  // child such as a subnet changes), guarded by its revision.
  void touch(std::string_view collection, const std::string& id);

  bool empty() const { return compares_.empty() && writes_.empty(); }
  const std::vector<store::Compare>& compares() const { return compares_; }
  std::vector<store::Op> ops() const;

 private:
  void guardRead(std::string_view collection, const std::string& id);

  const Tables& tables_;
  const model::Caller& caller_;
  std::string now_;
  std::vector<store::Compare> compares_;
  std::map<std::string, store::Op> writes_;  // by key
  // collection -> id -> doc written here (nullopt: removed here)
  std::map<std::string, std::map<std::string, std::optional<Json>>, std::less<>> pending_;
};

// How ModelState::write() runs a transaction.
struct WriteOptions {
  // The system: the southbound's and the server's own writes.
  model::Caller caller{.project_id = "", .is_admin = true};
  // Stamped where the transaction writes timestamps; "" for writers that
  // write none.
  std::string now{};
  // Attempts, each from a fresh read, before giving up with Conflict.
  int attempts = 16;
  // One more compare every attempt must hold: a leader's fence
  // (cluster/replica.h), so that only the current leader's writes land.
  std::optional<store::Compare> fence{};
};

// Neutron's timestamp format for `t`: "2026-01-02T03:04:05Z".
std::string timestamp(std::chrono::system_clock::time_point t);

}  // namespace canopy::state
