#include "store/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <utility>

#include "base/mutex.h"
#include "store/detail/sqlite.h"

namespace canopy::store {
namespace {

using detail::exec;
using detail::sqliteError;
using detail::Statement;
using detail::StatementScope;

// How many revisions one Watch::next() scans at most, so that a watcher far
// behind catches up in bounded steps; a revision is never split.
constexpr Revision kWatchRevisionsPerBatch = 1024;

// kMigrations[i] takes the schema from version i to i + 1, in one transaction.
// Append, never edit: files in the field are at every version.
constexpr std::string_view kMigrations[] = {
    // 0 -> 1: the etcd model. kv holds current values; history holds every
    // change (the watch log) until compacted.
    R"sql(
CREATE TABLE meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
INSERT INTO meta(name, value) VALUES ('revision', 0), ('compacted', 0);
CREATE TABLE kv(
  key BLOB PRIMARY KEY,
  value BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  mod_rev INTEGER NOT NULL,
  version INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE history(
  revision INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  deleted INTEGER NOT NULL,
  key BLOB NOT NULL,
  value BLOB NOT NULL,
  create_rev INTEGER NOT NULL,
  version INTEGER NOT NULL,
  PRIMARY KEY(revision, seq)) WITHOUT ROWID;
)sql",
    // 1 -> 2: leases. A key's lease (0: none); every leased key of a
    // previous process is deleted when the store opens.
    R"sql(
ALTER TABLE kv ADD COLUMN lease INTEGER NOT NULL DEFAULT 0;
)sql",
};
static_assert(std::size(kMigrations) == SqliteStore::kSchemaVersion);

// An flock(2) on PATH.lock: exclusive, non-blocking, released by the kernel
// when the process exits however it exits.
class FileLock {
 public:
  FileLock() = default;
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }

  static Result<FileLock> acquire(const std::string& store_path) {
    std::string path = store_path + ".lock";
    FileLock lock;
    lock.fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock.fd_ < 0) {
      return Error(Errc::Unavailable,
                   "cannot open lock file " + path + ": " + std::strerror(errno));
    }
    if (::flock(lock.fd_, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      if (err == EWOULDBLOCK) {
        char pid[32] = {};
        ssize_t n = ::pread(lock.fd_, pid, sizeof(pid) - 1, 0);
        std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "unknown";
        while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) {
          holder.pop_back();
        }
        return Error(Errc::Unavailable, "store " + store_path +
                                            " is in use by another process (pid " + holder +
                                            "); only one process may open it at a time");
      }
      return Error(Errc::Unavailable, "cannot lock " + path + ": " + std::strerror(err));
    }
    std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(lock.fd_, 0) != 0 ||
        ::pwrite(lock.fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
      spdlog::warn("could not record pid in {}: {}", path, std::strerror(errno));
    }
    return lock;
  }

 private:
  int fd_ = -1;
};

bool compareHolds(const Compare& c, const std::optional<KeyValue>& kv) {
  int cmp = 0;
  if (c.target == Compare::Target::Value) {
    if (!kv) return false;
    int r = kv->value.compare(c.value);
    cmp = r < 0 ? -1 : (r > 0 ? 1 : 0);
  } else {
    int64_t actual = 0;
    if (kv) {
      switch (c.target) {
        case Compare::Target::Version:
          actual = kv->version;
          break;
        case Compare::Target::CreateRevision:
          actual = kv->create_revision;
          break;
        case Compare::Target::ModRevision:
          actual = kv->mod_revision;
          break;
        case Compare::Target::Value:
          break;
      }
    }
    cmp = actual < c.number ? -1 : (actual > c.number ? 1 : 0);
  }
  switch (c.op) {
    case Compare::Op::Equal:
      return cmp == 0;
    case Compare::Op::NotEqual:
      return cmp != 0;
    case Compare::Op::Less:
      return cmp < 0;
    case Compare::Op::Greater:
      return cmp > 0;
  }
  return false;
}

// Everything a SqliteStore and its watches share. Watches hold it by
// shared_ptr, so they outlive the store safely and then see `closed`.
struct Core {
  Mutex mu;
  CondVar cv;  // signalled on every new revision, compaction and close

  std::string path;
  sqlite3* db CANOPY_GUARDED_BY(mu) = nullptr;
  FileLock lock CANOPY_GUARDED_BY(mu);
  bool closed CANOPY_GUARDED_BY(mu) = false;
  Revision compacted CANOPY_GUARDED_BY(mu) = 0;
  // Written under mu; read lock-free by revision().
  std::atomic<Revision> revision{0};
  std::atomic<Revision> compacted_view{0};

  Statement begin, commit, rollback;
  Statement select_kv, select_range, upsert_kv, delete_kv;
  Statement insert_history, select_history, delete_history_before;
  Statement set_meta, select_leased;
  // The leases granted by this process (the only one that may hold any).
  std::set<LeaseId> leases CANOPY_GUARDED_BY(mu);
  LeaseId next_lease CANOPY_GUARDED_BY(mu) = 1;

  ~Core() { closeDb(); }

  void closeDb() CANOPY_NO_THREAD_SAFETY_ANALYSIS {
    // Statements must go before the connection.
    for (Statement* s :
         {&begin, &commit, &rollback, &select_kv, &select_range, &upsert_kv, &delete_kv,
          &insert_history, &select_history, &delete_history_before, &set_meta, &select_leased}) {
      *s = Statement();
    }
    if (db != nullptr) {
      sqlite3_close_v2(db);
      db = nullptr;
    }
    lock = FileLock();
  }

  Result<void> prepareAll() CANOPY_REQUIRES(mu) {
    struct Entry {
      Statement* stmt;
      std::string_view sql;
    };
    const Entry entries[] = {
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
        {&select_kv, "SELECT value, create_rev, mod_rev, version FROM kv WHERE key = ?1"},
        {&select_range,
         "SELECT key, value, create_rev, mod_rev, version FROM kv "
         "WHERE key >= ?1 AND (?2 IS NULL OR key < ?2) ORDER BY key"},
        {&upsert_kv,
         "INSERT INTO kv(key, value, create_rev, mod_rev, version, lease) "
         "VALUES (?1, ?2, ?3, ?3, 1, ?4) "
         "ON CONFLICT(key) DO UPDATE SET value = excluded.value, mod_rev = excluded.mod_rev, "
         "version = version + 1, lease = excluded.lease RETURNING create_rev, version"},
        {&delete_kv, "DELETE FROM kv WHERE key = ?1 RETURNING 1"},
        {&insert_history,
         "INSERT INTO history(revision, seq, deleted, key, value, create_rev, version) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"},
        {&select_history,
         "SELECT revision, deleted, key, value, create_rev, version FROM history "
         "WHERE revision >= ?1 AND revision <= ?2 AND key >= ?3 AND (?4 IS NULL OR key < ?4) "
         "ORDER BY revision, seq"},
        {&delete_history_before, "DELETE FROM history WHERE revision < ?1"},
        {&set_meta, "UPDATE meta SET value = ?2 WHERE name = ?1"},
        // ?1 NULL: every leased key.
        {&select_leased,
         "SELECT key FROM kv WHERE (?1 IS NULL AND lease != 0) OR lease = ?1 ORDER BY key"},
    };
    for (const Entry& e : entries) {
      auto s = Statement::prepare(db, e.sql);
      if (!s) return std::move(s).error();
      *e.stmt = std::move(*s);
    }
    return ok();
  }

  Result<void> run(Statement& s) CANOPY_REQUIRES(mu) {
    StatementScope scope(s);
    auto r = s.step();
    if (!r) return std::move(r).error();
    return ok();
  }

  Result<std::optional<KeyValue>> lookup(const std::string& key) CANOPY_REQUIRES(mu) {
    StatementScope scope(select_kv);
    select_kv.bindBlob(1, key);
    auto row = select_kv.step();
    if (!row) return std::move(row).error();
    if (!*row) return std::optional<KeyValue>();
    return std::optional<KeyValue>(KeyValue{key, select_kv.columnBlob(0), select_kv.columnInt(1),
                                            select_kv.columnInt(2), select_kv.columnInt(3)});
  }

  Result<std::vector<KeyValue>> scan(std::string_view prefix) CANOPY_REQUIRES(mu) {
    StatementScope scope(select_range);
    select_range.bindBlob(1, prefix);
    std::string end = prefixEnd(prefix);
    if (end.empty()) {
      select_range.bindNull(2);
    } else {
      select_range.bindBlob(2, end);
    }
    std::vector<KeyValue> out;
    for (;;) {
      auto row = select_range.step();
      if (!row) return std::move(row).error();
      if (!*row) break;
      out.push_back(KeyValue{select_range.columnBlob(0), select_range.columnBlob(1),
                             select_range.columnInt(2), select_range.columnInt(3),
                             select_range.columnInt(4)});
    }
    return out;
  }

  Result<void> record(Revision rev, int64_t& seq, bool deleted, const KeyValue& kv)
      CANOPY_REQUIRES(mu) {
    StatementScope scope(insert_history);
    insert_history.bindInt(1, rev);
    insert_history.bindInt(2, seq++);
    insert_history.bindInt(3, deleted ? 1 : 0);
    insert_history.bindBlob(4, kv.key);
    insert_history.bindBlob(5, kv.value);
    insert_history.bindInt(6, kv.create_revision);
    insert_history.bindInt(7, kv.version);
    auto r = insert_history.step();
    if (!r) return std::move(r).error();
    return ok();
  }

  // One statement: insert or bump, returning the key's create revision and
  // version, so a put costs one kv write and one history row.
  Result<void> putKey(const std::string& key, const std::string& value, LeaseId lease, Revision rev,
                      int64_t& seq) CANOPY_REQUIRES(mu) {
    KeyValue kv{key, value, rev, rev, 1};
    {
      StatementScope scope(upsert_kv);
      upsert_kv.bindBlob(1, key);
      upsert_kv.bindBlob(2, value);
      upsert_kv.bindInt(3, rev);
      upsert_kv.bindInt(4, lease);
      auto row = upsert_kv.step();
      if (!row) return std::move(row).error();
      if (!*row) return Error(Errc::Internal, "upsert returned no row");
      kv.create_revision = upsert_kv.columnInt(0);
      kv.version = upsert_kv.columnInt(1);
      auto done = upsert_kv.step();  // RETURNING completes on the next step
      if (!done) return std::move(done).error();
    }
    return record(rev, seq, false, kv);
  }

  // Deletes `key` if present; true if it was.
  Result<bool> deleteKey(const std::string& key, Revision rev, int64_t& seq) CANOPY_REQUIRES(mu) {
    {
      StatementScope scope(delete_kv);
      delete_kv.bindBlob(1, key);
      auto row = delete_kv.step();
      if (!row) return std::move(row).error();
      if (!*row) return false;
      auto done = delete_kv.step();
      if (!done) return std::move(done).error();
    }
    if (auto r = record(rev, seq, true, KeyValue{key, {}, 0, rev, 0}); !r) {
      return std::move(r).error();
    }
    return true;
  }

  Result<void> setMeta(std::string_view name, int64_t value) CANOPY_REQUIRES(mu) {
    StatementScope scope(set_meta);
    set_meta.bindText(1, name);
    set_meta.bindInt(2, value);
    auto r = set_meta.step();
    if (!r) return std::move(r).error();
    return ok();
  }

  // Applies one branch inside an open SQLite transaction at revision `rev`.
  Result<std::vector<OpResult>> apply(std::span<const Op> ops, Revision rev, bool& changed)
      CANOPY_REQUIRES(mu) {
    std::vector<OpResult> results(ops.size());
    int64_t seq = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      const Op& op = ops[i];
      OpResult& out = results[i];
      switch (op.type) {
        case Op::Type::Put: {
          if (op.lease != 0 && !leases.contains(op.lease)) {
            return Error(Errc::NotFound, "lease " + std::to_string(op.lease) + " not found");
          }
          auto r = putKey(op.key, op.value, op.lease, rev, seq);
          if (!r) return std::move(r).error();
          changed = true;
          break;
        }
        case Op::Type::Delete: {
          auto deleted = deleteKey(op.key, rev, seq);
          if (!deleted) return std::move(deleted).error();
          if (*deleted) {
            out.deleted = 1;
            changed = true;
          }
          break;
        }
        case Op::Type::DeletePrefix: {
          auto victims = scan(op.key);
          if (!victims) return std::move(victims).error();
          for (const KeyValue& kv : *victims) {
            auto r = deleteKey(kv.key, rev, seq);
            if (!r) return std::move(r).error();
          }
          out.deleted = static_cast<int64_t>(victims->size());
          changed = changed || !victims->empty();
          break;
        }
        case Op::Type::Get: {
          auto kv = lookup(op.key);
          if (!kv) return std::move(kv).error();
          if (*kv) out.kvs.push_back(std::move(**kv));
          break;
        }
        case Op::Type::GetPrefix: {
          auto kvs = scan(op.key);
          if (!kvs) return std::move(kvs).error();
          out.kvs = std::move(*kvs);
          break;
        }
      }
    }
    return results;
  }

  Result<TxnResponse> txnLocked(std::span<const Compare> compares, std::span<const Op> success,
                                std::span<const Op> failure) CANOPY_REQUIRES(mu) {
    TxnResponse response;
    response.succeeded = true;
    for (const Compare& c : compares) {
      auto kv = lookup(c.key);
      if (!kv) return std::move(kv).error();
      if (!compareHolds(c, *kv)) {
        response.succeeded = false;
        break;
      }
    }
    Revision rev = revision.load(std::memory_order_relaxed) + 1;
    bool changed = false;
    auto results = apply(response.succeeded ? success : failure, rev, changed);
    if (!results) return std::move(results).error();
    response.results = std::move(*results);
    response.revision = changed ? rev : rev - 1;
    return response;
  }

  // Deletes the keys of `lease` (nullopt: of every lease) in one revision,
  // as etcd does when a lease ends.
  Result<void> deleteLeased(std::optional<LeaseId> lease) CANOPY_REQUIRES(mu) {
    std::vector<std::string> keys;
    {
      StatementScope scope(select_leased);
      if (lease) {
        select_leased.bindInt(1, *lease);
      } else {
        select_leased.bindNull(1);
      }
      for (;;) {
        auto row = select_leased.step();
        if (!row) return std::move(row).error();
        if (!*row) break;
        keys.push_back(select_leased.columnBlob(0));
      }
    }
    if (keys.empty()) return ok();
    Revision rev = revision.load(std::memory_order_relaxed) + 1;
    if (auto r = run(begin); !r) return r;
    auto body = [&]() CANOPY_REQUIRES(mu) -> Result<void> {
      int64_t seq = 0;
      for (const auto& key : keys) {
        if (auto d = deleteKey(key, rev, seq); !d) return std::move(d).error();
      }
      return run(commit);
    };
    if (auto r = body(); !r) {
      (void)run(rollback);
      return r;
    }
    revision.store(rev, std::memory_order_release);
    return ok();
  }
};

class SqliteWatch final : public Watch {
 public:
  SqliteWatch(std::shared_ptr<Core> core, std::string prefix, Revision from)
      : core_(std::move(core)), prefix_(std::move(prefix)), end_(prefixEnd(prefix_)), next_(from) {}

  Result<std::vector<Event>> next(std::chrono::milliseconds timeout) override {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    Core& c = *core_;
    MutexLock lock(c.mu);
    for (;;) {
      if (cancelled_.load()) return Error(Errc::Unavailable, "watch cancelled");
      if (c.closed) return Error(Errc::Unavailable, "store " + c.path + " was closed");
      if (next_ < c.compacted) {
        return Error(Errc::Compacted, "watch needs revision " + std::to_string(next_) +
                                          " but history before revision " +
                                          std::to_string(c.compacted) +
                                          " was compacted; read the current state and resume");
      }
      Revision current = c.revision.load(std::memory_order_relaxed);
      if (next_ <= current) {
        Revision upper = std::min(current, next_ + kWatchRevisionsPerBatch - 1);
        auto events = read(c, upper);
        if (!events) return std::move(events).error();
        next_ = upper + 1;
        if (!events->empty()) return events;
        continue;
      }
      if (c.cv.wait_until(c.mu, deadline) == std::cv_status::timeout) {
        // One last look: a change may have landed just as time ran out.
        if (next_ > c.revision.load(std::memory_order_relaxed) && !cancelled_.load() && !c.closed) {
          return std::vector<Event>{};
        }
      }
    }
  }

  Revision nextRevision() const override {
    MutexLock lock(core_->mu);
    return next_;
  }

  void cancel() override {
    cancelled_.store(true);
    // Taking the lock orders this against a next() between its check and its wait.
    { MutexLock lock(core_->mu); }
    core_->cv.notify_all();
  }

 private:
  Result<std::vector<Event>> read(Core& c, Revision upper) CANOPY_REQUIRES(c.mu) {
    Statement& s = c.select_history;
    StatementScope scope(s);
    s.bindInt(1, next_);
    s.bindInt(2, upper);
    s.bindBlob(3, prefix_);
    if (end_.empty()) {
      s.bindNull(4);
    } else {
      s.bindBlob(4, end_);
    }
    std::vector<Event> events;
    for (;;) {
      auto row = s.step();
      if (!row) return std::move(row).error();
      if (!*row) break;
      Event e;
      e.type = s.columnInt(1) != 0 ? Event::Type::Delete : Event::Type::Put;
      e.kv = KeyValue{s.columnBlob(2), s.columnBlob(3), s.columnInt(4), s.columnInt(0),
                      s.columnInt(5)};
      events.push_back(std::move(e));
    }
    return events;
  }

  std::shared_ptr<Core> core_;
  std::string prefix_;
  std::string end_;
  Revision next_;  // guarded by core_->mu
  std::atomic<bool> cancelled_{false};
};

class SqliteStoreImpl final : public Store {
 public:
  explicit SqliteStoreImpl(std::shared_ptr<Core> core) : core_(std::move(core)) {}

  ~SqliteStoreImpl() override {
    {
      MutexLock lock(core_->mu);
      core_->closed = true;
      core_->closeDb();
    }
    core_->cv.notify_all();
  }

  Result<TxnResponse> txn(std::span<const Compare> compares, std::span<const Op> success,
                          std::span<const Op> failure) override {
    if (auto v = validateBranch(success); !v) return std::move(v).error();
    if (auto v = validateBranch(failure); !v) return std::move(v).error();
    for (const Compare& c : compares) {
      if (c.key.empty()) return Error(Errc::InvalidArgument, "empty key in compare");
    }
    Core& c = *core_;
    MutexLock lock(c.mu);
    if (c.closed) return Error(Errc::Unavailable, "store is closed");
    if (auto r = c.run(c.begin); !r) return std::move(r).error();
    auto response = c.txnLocked(compares, success, failure);
    if (response) {
      if (auto r = c.run(c.commit); !r) {
        (void)c.run(c.rollback);
        return std::move(r).error().withContext("committing transaction");
      }
    } else {
      (void)c.run(c.rollback);
      return std::move(response).error();
    }
    if (response->revision != c.revision.load(std::memory_order_relaxed)) {
      c.revision.store(response->revision, std::memory_order_release);
      c.cv.notify_all();
    }
    return response;
  }

  Result<RangeResponse> range(std::string_view prefix) override {
    Core& c = *core_;
    MutexLock lock(c.mu);
    if (c.closed) return Error(Errc::Unavailable, "store is closed");
    auto kvs = c.scan(prefix);
    if (!kvs) return std::move(kvs).error();
    return RangeResponse{std::move(*kvs), c.revision.load(std::memory_order_relaxed)};
  }

  Revision revision() const override { return core_->revision.load(std::memory_order_acquire); }

  Revision compactedRevision() const override {
    return core_->compacted_view.load(std::memory_order_acquire);
  }

  Result<void> compact(Revision revision) override {
    Core& c = *core_;
    {
      MutexLock lock(c.mu);
      if (c.closed) return Error(Errc::Unavailable, "store is closed");
      Revision current = c.revision.load(std::memory_order_relaxed);
      if (revision > current) {
        return Error(Errc::InvalidArgument, "cannot compact to revision " +
                                                std::to_string(revision) +
                                                ": it is in the future (current revision " +
                                                std::to_string(current) + ")");
      }
      if (revision <= c.compacted) {
        return Error(Errc::Compacted, "revision " + std::to_string(revision) +
                                          " is already compacted (compacted revision " +
                                          std::to_string(c.compacted) + ")");
      }
      if (auto r = c.run(c.begin); !r) return std::move(r).error();
      auto body = [&]() CANOPY_REQUIRES(c.mu) -> Result<void> {
        StatementScope scope(c.delete_history_before);
        c.delete_history_before.bindInt(1, revision);
        auto r = c.delete_history_before.step();
        if (!r) return std::move(r).error();
        if (auto m = c.setMeta("compacted", revision); !m) return m;
        // History keeps the current revision's rows, but record it anyway so
        // the revision never depends on what compaction left.
        if (auto m = c.setMeta("revision", current); !m) return m;
        return c.run(c.commit);
      };
      if (auto r = body(); !r) {
        (void)c.run(c.rollback);
        return r;
      }
      c.compacted = revision;
      c.compacted_view.store(revision, std::memory_order_release);
    }
    c.cv.notify_all();
    return ok();
  }

  Result<LeaseId> grantLease(std::chrono::seconds ttl) override {
    if (ttl.count() <= 0) return Error(Errc::InvalidArgument, "a lease needs a positive TTL");
    MutexLock lock(core_->mu);
    if (core_->closed) return Error(Errc::Unavailable, "store is closed");
    LeaseId id = core_->next_lease++;
    core_->leases.insert(id);
    return id;
  }

  Result<void> keepAlive(LeaseId lease) override {
    MutexLock lock(core_->mu);
    if (core_->closed) return Error(Errc::Unavailable, "store is closed");
    if (!core_->leases.contains(lease)) {
      return Error(Errc::NotFound, "lease " + std::to_string(lease) + " not found");
    }
    return ok();
  }

  Result<void> revokeLease(LeaseId lease) override {
    Core& c = *core_;
    {
      MutexLock lock(c.mu);
      if (c.closed) return Error(Errc::Unavailable, "store is closed");
      if (c.leases.erase(lease) == 0) return ok();
      if (auto r = c.deleteLeased(lease); !r) return r;
    }
    c.cv.notify_all();
    return ok();
  }

  Result<std::unique_ptr<Watch>> watch(std::string prefix, Revision from) override {
    Core& c = *core_;
    MutexLock lock(c.mu);
    if (c.closed) return Error(Errc::Unavailable, "store is closed");
    if (from <= 0) from = c.revision.load(std::memory_order_relaxed) + 1;
    if (from < c.compacted) {
      return Error(Errc::Compacted, "cannot watch from revision " + std::to_string(from) +
                                        ": history before revision " + std::to_string(c.compacted) +
                                        " was compacted; read the current state and resume");
    }
    return std::unique_ptr<Watch>(std::make_unique<SqliteWatch>(core_, std::move(prefix), from));
  }

 private:
  std::shared_ptr<Core> core_;
};

Result<int64_t> pragmaInt(sqlite3* db, std::string_view sql) {
  auto s = Statement::prepare(db, sql);
  if (!s) return std::move(s).error();
  auto row = s->step();
  if (!row) return std::move(row).error();
  if (!*row) return Error(Errc::Internal, std::string(sql) + " returned no row");
  return s->columnInt(0);
}

Result<std::string> pragmaText(sqlite3* db, std::string_view sql) {
  auto s = Statement::prepare(db, sql);
  if (!s) return std::move(s).error();
  auto row = s->step();
  if (!row) return std::move(row).error();
  if (!*row) return Error(Errc::Internal, std::string(sql) + " returned no row");
  return s->columnBlob(0);
}

// Checks that the open file is a Canopy store (or empty), verifies and migrates it.
Result<void> prepareFile(Core& c, const SqliteOptions& options) CANOPY_REQUIRES(c.mu) {
  sqlite3* db = c.db;
  auto app_id = pragmaInt(db, "PRAGMA application_id");
  if (!app_id) return std::move(app_id).error();
  auto user_version = pragmaInt(db, "PRAGMA user_version");
  if (!user_version) return std::move(user_version).error();
  auto tables = pragmaInt(db, "SELECT count(*) FROM sqlite_master");
  if (!tables) return std::move(tables).error();

  bool fresh = *app_id == 0 && *user_version == 0 && *tables == 0;
  if (!fresh && *app_id != SqliteStore::kApplicationId) {
    char hex[16];
    std::snprintf(hex, sizeof(hex), "0x%08x", static_cast<uint32_t>(*app_id));
    return Error(Errc::InvalidArgument,
                 "is a SQLite database but not a Canopy store (application_id " + std::string(hex) +
                     ", " + std::to_string(*tables) + " schema objects)");
  }
  if (*user_version < 0) {
    return Error(Errc::InvalidArgument, "has an invalid schema version " +
                                            std::to_string(*user_version) +
                                            ": the file is corrupt; restore it from a backup");
  }
  if (*user_version > SqliteStore::kSchemaVersion) {
    return Error(Errc::InvalidArgument, "was written by a newer Canopy (schema version " +
                                            std::to_string(*user_version) +
                                            "; this build knows up to " +
                                            std::to_string(SqliteStore::kSchemaVersion) + ")");
  }
  if (options.verify_on_open && !fresh) {
    auto check = pragmaText(db, "PRAGMA quick_check");
    if (!check) return std::move(check).error();
    if (*check != "ok") {
      return Error(Errc::Internal, "failed its integrity check (" + *check +
                                       "): the file is corrupt; restore it from a backup");
    }
  }
  auto mode = pragmaText(db, "PRAGMA journal_mode=WAL");
  if (!mode) return std::move(mode).error();
  if (*mode != "wal") {
    return Error(Errc::Unavailable, "cannot switch to WAL journal mode (got '" + *mode + "')");
  }
  if (auto r = exec(db, "PRAGMA synchronous=FULL"); !r) return r;

  for (int64_t v = *user_version; v < SqliteStore::kSchemaVersion; ++v) {
    std::string sql = "BEGIN IMMEDIATE;\n";
    if (v == 0)
      sql += "PRAGMA application_id=" + std::to_string(SqliteStore::kApplicationId) + ";\n";
    sql += kMigrations[v];
    sql += "PRAGMA user_version=" + std::to_string(v + 1) + ";\nCOMMIT;";
    if (auto r = exec(db, sql); !r) {
      (void)exec(db, "ROLLBACK");
      return r.error().withContext("migrating schema " + std::to_string(v) + " -> " +
                                   std::to_string(v + 1));
    }
    spdlog::info("store {}: schema migrated to version {}", c.path, v + 1);
  }

  if (auto r = c.prepareAll(); !r) return r;
  // The revision is the newest history row's: every changing transaction
  // writes at least one, and compaction never removes the newest revision.
  // meta.revision (written at compaction) covers a history emptied by hand.
  auto revision = pragmaInt(db,
                            "SELECT max((SELECT value FROM meta WHERE name = 'revision'), "
                            "coalesce((SELECT max(revision) FROM history), 0))");
  if (!revision) return std::move(revision).error();
  auto compacted = pragmaInt(db, "SELECT value FROM meta WHERE name = 'compacted'");
  if (!compacted) return std::move(compacted).error();
  c.revision.store(*revision);
  c.compacted = *compacted;
  c.compacted_view.store(*compacted);
  // No lease outlives the process that held it.
  if (auto r = c.deleteLeased(std::nullopt); !r) return r.error().withContext("ending old leases");
  return ok();
}

}  // namespace

Result<std::unique_ptr<Store>> SqliteStore::open(const SqliteOptions& options) {
  if (options.path.empty()) return Error(Errc::InvalidArgument, "store path is empty");
  if (!options.create_if_missing && !std::filesystem::exists(options.path)) {
    return Error(Errc::NotFound, "store " + options.path + " does not exist");
  }
  auto lock = FileLock::acquire(options.path);
  if (!lock) return std::move(lock).error();

  auto core = std::make_shared<Core>();
  MutexLock guard(core->mu);
  core->path = options.path;
  core->lock = std::move(*lock);
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
              (options.create_if_missing ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(options.path.c_str(), &core->db, flags, nullptr);
  if (rc != SQLITE_OK) {
    return sqliteError(core->db, rc, "opening store " + options.path);
  }
  sqlite3_extended_result_codes(core->db, 1);
  sqlite3_busy_timeout(core->db, 5000);
  if (auto r = prepareFile(*core, options); !r) {
    return r.error().withContext("store " + options.path);
  }
  spdlog::debug("store {} open at revision {}", options.path, core->revision.load());
  return std::unique_ptr<Store>(std::make_unique<SqliteStoreImpl>(std::move(core)));
}

}  // namespace canopy::store
