#pragma once
// The revisioned key/value store that holds Canopy's logical model, with
// etcd v3's data model so the embedded SQLite backend and the etcd backend
// are interchangeable behind this interface.
//
// - Keys and values are bytes (std::string holds any byte, NUL included).
// - Every transaction that changes something gets the next global revision;
//   all its changes carry that revision. A transaction that changes nothing
//   (only reads, failed compares with read-only else-branch, deleting an absent
//   key) leaves the revision alone, as in etcd.
// - Each key has create_revision, mod_revision and version (writes since it
//   was created; deleting resets it).
// - Watches deliver every change after a revision, in order, a whole revision
//   at a time, also across restarts of the process; compact() drops history
//   before a revision, and a watch that needs dropped history fails with
//   Errc::Compacted so that its caller reads the current state and resumes.
// - Leases (etcd's): a key put with a lease is deleted, as by a transaction,
//   when its lease ends: revoked, or not kept alive for its TTL. What a
//   process keeps alive dies with it: the embedded backend ends every lease
//   of a previous process when it opens the file (only one process holds a
//   lease there, so a lease never times out while its process lives); etcd
//   ends them after their TTL. Replicas hold their liveness this way.
//
//   auto store = store::open("sqlite:/var/lib/canopy/canopy.db");
//   auto r = (*store)->txn({Compare::absent("/ips/net1/10.0.0.5")},
//                          {Op::put("/ips/net1/10.0.0.5", port_id)}, {});
//   if (r && !r->succeeded) { /* lost the race: the IP is taken */ }
//
// Thread-safety: a Store may be used from many threads at once; a Watch from
// one thread at a time (cancel() from any).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace canopy::store {

using Revision = int64_t;
using LeaseId = int64_t;  // 0: none

struct KeyValue {
  std::string key;
  std::string value;
  Revision create_revision = 0;
  Revision mod_revision = 0;
  int64_t version = 0;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// A condition on one key, evaluated at the start of a transaction. An absent
// key compares as version 0, create_revision 0, mod_revision 0; a Value
// compare on an absent key is false (etcd's rule).
struct Compare {
  enum class Target { Version, CreateRevision, ModRevision, Value };
  enum class Op { Equal, NotEqual, Less, Greater };

  std::string key;
  Target target = Target::Version;
  Op op = Op::Equal;
  int64_t number = 0;  // for Version, CreateRevision, ModRevision
  std::string value;   // for Value

  static Compare exists(std::string key) {
    return {std::move(key), Target::Version, Op::Greater, 0, {}};
  }
  static Compare absent(std::string key) {
    return {std::move(key), Target::Version, Op::Equal, 0, {}};
  }
  static Compare modRevisionIs(std::string key, Op op, Revision revision) {
    return {std::move(key), Target::ModRevision, op, revision, {}};
  }
  static Compare valueIs(std::string key, Op op, std::string value) {
    return {std::move(key), Target::Value, op, 0, std::move(value)};
  }
  static Compare versionIs(std::string key, Op op, int64_t version) {
    return {std::move(key), Target::Version, op, version, {}};
  }
};

// One operation of a transaction's branch. A branch may write a key only once
// (etcd's rule): puts, deletes and delete-prefixes of one branch must not overlap.
struct Op {
  enum class Type { Put, Delete, DeletePrefix, Get, GetPrefix };

  Type type = Type::Get;
  std::string key;  // the key, or the prefix for *Prefix ("" = every key)
  std::string value;
  LeaseId lease = 0;  // Put: the key goes when the lease ends (0: it stays)

  static Op put(std::string key, std::string value, LeaseId lease = 0) {
    return {Type::Put, std::move(key), std::move(value), lease};
  }
  static Op del(std::string key) { return {Type::Delete, std::move(key), {}}; }
  static Op deletePrefix(std::string prefix) { return {Type::DeletePrefix, std::move(prefix), {}}; }
  static Op get(std::string key) { return {Type::Get, std::move(key), {}}; }
  static Op getPrefix(std::string prefix) { return {Type::GetPrefix, std::move(prefix), {}}; }
};

struct OpResult {
  std::vector<KeyValue> kvs;  // Get / GetPrefix: what was found, sorted by key
  int64_t deleted = 0;        // Delete / DeletePrefix: how many keys went
};

struct TxnResponse {
  bool succeeded = false;         // the compares held; the success branch ran
  Revision revision = 0;          // the store's revision after the transaction
  std::vector<OpResult> results;  // one per op of the branch that ran
};

struct RangeResponse {
  std::vector<KeyValue> kvs;  // sorted by key (bytewise)
  Revision revision = 0;      // the revision this read reflects
};

struct Event {
  enum class Type { Put, Delete };
  Type type = Type::Put;
  // For Delete: key and mod_revision (the deleting revision); value empty,
  // create_revision and version 0.
  KeyValue kv;

  friend bool operator==(const Event&, const Event&) = default;
};

class Watch {
 public:
  virtual ~Watch() = default;

  // Waits up to `timeout` for changes and returns those of one or more whole
  // revisions, in order; empty if none came in time. Errors: Compacted (the
  // history needed is gone: re-read and watch again), Unavailable (cancelled,
  // or the store closed).
  virtual Result<std::vector<Event>> next(std::chrono::milliseconds timeout) = 0;

  // The first revision the next call to next() may deliver: where to resume.
  virtual Revision nextRevision() const = 0;

  // Makes a blocked or later next() return Unavailable. Any thread.
  virtual void cancel() = 0;
};

class Store {
 public:
  virtual ~Store() = default;

  // If every compare holds, runs `success`, else `failure`, atomically and
  // durably: when this returns, the change survives a crash of the process.
  virtual Result<TxnResponse> txn(std::span<const Compare> compares, std::span<const Op> success,
                                  std::span<const Op> failure) = 0;

  // Every key starting with `prefix` ("" for all), at the current revision.
  virtual Result<RangeResponse> range(std::string_view prefix) = 0;

  virtual Revision revision() const = 0;
  virtual Revision compactedRevision() const = 0;

  // Drops the history of revisions before `revision` (which must not be in the
  // future); watches from before it then fail with Compacted. Current values
  // are unaffected.
  virtual Result<void> compact(Revision revision) = 0;

  // Changes to keys under `prefix` from revision `from` on (0: from the next
  // revision). Fails with Compacted if `from` is before compactedRevision().
  virtual Result<std::unique_ptr<Watch>> watch(std::string prefix, Revision from) = 0;

  // A lease of `ttl` (etcd may round it up to its minimum). Keys put with
  // it are deleted when it ends.
  virtual Result<LeaseId> grantLease(std::chrono::seconds ttl) = 0;
  // Renews the lease for its whole TTL; NotFound once it has ended (its
  // keys are gone: grant a new one and put them again).
  virtual Result<void> keepAlive(LeaseId lease) = 0;
  // Ends the lease now, deleting its keys in one revision. An unknown or
  // ended lease is not an error.
  virtual Result<void> revokeLease(LeaseId lease) = 0;

  // Conveniences over txn().
  Result<std::optional<KeyValue>> get(std::string key);
  Result<Revision> put(std::string key, std::string value);
  Result<int64_t> del(std::string key);
};

// Opens a store by URL: "sqlite:PATH" (or a bare PATH) for the embedded
// backend, "etcd://HOST:PORT[,HOST:PORT...]" for an etcd cluster. Returns
// InvalidArgument for an unknown scheme or a malformed URL, NotFound for a
// missing store when `create_if_missing` is false, Unavailable when no etcd
// endpoint answers.
Result<std::unique_ptr<Store>> open(std::string_view url, bool create_if_missing = true);

// etcd's rules for a transaction's branch, which every backend checks before
// it runs anything: point operations need a key, and no key is written twice
// (puts, deletes and delete-prefixes must not overlap).
Result<void> validateBranch(std::span<const Op> ops);

// The first key after every key that starts with `prefix` ("" if none, as
// for the empty prefix or one of all 0xff bytes): ranges are [prefix, end).
std::string prefixEnd(std::string_view prefix);

}  // namespace canopy::store
