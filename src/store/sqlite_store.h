#pragma once
// The embedded store backend: one SQLite file in WAL mode, synchronous=FULL
// (a transaction is on disk when txn() returns), a schema version with
// migrations, and an exclusive lock so that a second process opening the same
// file is refused with a clear error instead of sharing it unsafely.
//
//   auto store = SqliteStore::open({.path = "canopy.db"});
//   if (!store) { spdlog::error("{}", store.error().message()); return 1; }
//
// Files it owns: PATH, PATH-wal, PATH-shm (SQLite's) and PATH.lock (ours: an
// flock(2) held for the store's lifetime, released by the kernel if the
// process dies, so a crash never leaves a stale lock).
//
// Thread-safety: as Store. Watches stay valid after the store is destroyed;
// they then report Unavailable.

#include <memory>
#include <string>

#include "store/store.h"

namespace canopy::store {

struct SqliteOptions {
  std::string path;
  // Create the file (an empty store) if it does not exist; otherwise a
  // missing file is NotFound.
  bool create_if_missing = true;
  // Run SQLite's quick_check on open: finds a corrupt file at start-up, in
  // time linear in its size.
  bool verify_on_open = true;
};

class SqliteStore {
 public:
  // The schema version this build writes; older files are migrated on open.
  static constexpr int kSchemaVersion = 2;
  // PRAGMA application_id of a Canopy store ("CNPY").
  static constexpr int32_t kApplicationId = 0x434E5059;

  static Result<std::unique_ptr<Store>> open(const SqliteOptions& options);
};

}  // namespace canopy::store
