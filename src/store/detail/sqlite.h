#pragma once
// Thin RAII over SQLite's C API for the store backend: a prepared statement
// that resets itself, and error text with the database's own message.
// Private to src/store.

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace canopy::store::detail {

// The Error for a failed SQLite call: corruption and foreign files get words
// an operator can act on.
Error sqliteError(sqlite3* db, int rc, std::string_view what);

class Statement {
 public:
  Statement() = default;
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  Statement(Statement&& other) noexcept : db_(other.db_), stmt_(other.stmt_) {
    other.stmt_ = nullptr;
  }
  Statement& operator=(Statement&& other) noexcept {
    if (this != &other) {
      sqlite3_finalize(stmt_);
      db_ = other.db_;
      stmt_ = other.stmt_;
      other.stmt_ = nullptr;
    }
    return *this;
  }

  static Result<Statement> prepare(sqlite3* db, std::string_view sql);

  // Binds are 1-based, as in SQLite. Text-like keys and values are bound as
  // BLOBs so that comparisons are bytewise (memcmp) throughout.
  void bindBlob(int index, std::string_view bytes);
  void bindText(int index, std::string_view text);
  void bindInt(int index, int64_t value);
  void bindNull(int index);

  // SQLITE_ROW (true), SQLITE_DONE (false), or an error.
  Result<bool> step();
  // Clears bindings and rewinds, ready for the next use.
  void reset();

  int64_t columnInt(int index) const;
  std::string columnBlob(int index) const;

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when the scope ends, whatever path leaves it.
class StatementScope {
 public:
  explicit StatementScope(Statement& s) : s_(s) {}
  ~StatementScope() { s_.reset(); }
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;

 private:
  Statement& s_;
};

// Runs SQL that returns no rows (several statements allowed).
Result<void> exec(sqlite3* db, std::string_view sql);

}  // namespace canopy::store::detail
