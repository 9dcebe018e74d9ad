// The store file as an operator meets it: corrupt, foreign, from a newer
// version, or already open elsewhere. Each gives a clear error, never a crash.

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "store_fixture.h"

namespace canopy::store {
namespace {

void writeBytes(const std::string& path, const std::string& bytes, std::streamoff offset = 0,
                bool truncate = true) {
  std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out |
                           (truncate ? std::ios::trunc : std::ios::openmode{}));
  if (!f) f.open(path, std::ios::binary | std::ios::out | std::ios::trunc);
  f.seekp(offset);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string randomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

void sqliteExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  EXPECT_EQ(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err), SQLITE_OK) << err;
  sqlite3_free(err);
  sqlite3_close(db);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(StoreFile, GarbageFileIsNotADatabase) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("garbage.db");
  writeBytes(path, randomBytes(8192, 1));
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_TRUE(contains(r.error().message(), path)) << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "not a SQLite database")) << r.error().message();
}

TEST(StoreFile, TextFileIsNotADatabase) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("notes.db");
  writeBytes(path, "these are my notes, not a database\n");
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "not a SQLite database")) << r.error().message();
}

TEST(StoreFile, EmptyFileBecomesAFreshStore) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("empty.db");
  writeBytes(path, "");
  auto r = SqliteStore::open({.path = path});
  ASSERT_TRUE(r) << r.error().toString();
  EXPECT_EQ((*r)->revision(), 0);
}

TEST(StoreFile, CorruptedPagesAreReportedOnOpen) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("canopy.db");
  {
    auto s = must(SqliteStore::open({.path = path}));
    for (int i = 0; i < 400; ++i) {
      must(s->put("/key/" + std::to_string(i), std::string(300, static_cast<char>('a' + i % 26))));
    }
  }  // closing the last connection checkpoints the WAL into the file
  // Overwrite pages 3..6 (of 4 KiB) with noise, leaving the header intact.
  writeBytes(path, randomBytes(4 * 4096, 2), 2 * 4096, /*truncate=*/false);
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), path)) << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "corrupt") ||
              contains(r.error().message(), "malformed"))
      << r.error().message();
}

TEST(StoreFile, ForeignSqliteDatabaseIsRefused) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("other.db");
  sqliteExec(path, "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);");
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Errc::InvalidArgument);
  EXPECT_TRUE(contains(r.error().message(), "not a Canopy store")) << r.error().message();
  // And it was left as it was.
  sqliteExec(path, "INSERT INTO customers(name) VALUES ('still here');");
}

TEST(StoreFile, NewerSchemaIsRefused) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("canopy.db");
  { must(SqliteStore::open({.path = path})); }
  sqliteExec(path, "PRAGMA user_version = 99;");
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "newer Canopy")) << r.error().message();
  EXPECT_TRUE(contains(r.error().message(), "99")) << r.error().message();
}

TEST(StoreFile, NegativeSchemaVersionIsCorruption) {
  // Found by store_file_fuzz: user_version is any 32-bit integer on disk.
  canopy::testing::TempDir dir;
  std::string path = dir.file("canopy.db");
  { must(SqliteStore::open({.path = path})); }
  sqliteExec(path, "PRAGMA user_version = -5;");
  auto r = SqliteStore::open({.path = path});
  ASSERT_FALSE(r);
  EXPECT_TRUE(contains(r.error().message(), "invalid schema version -5")) << r.error().message();
}

TEST(StoreFile, FreshStoreIsStampedWithSchemaAndApplicationId) {
  canopy::testing::TempDir dir;
  std::string path = dir.file("canopy.db");
  { must(SqliteStore::open({.path = path})); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  auto pragma = [&](const char* sql) {
    sqlite3_stmt* s = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql, -1, &s, nullptr), SQLITE_OK);
    EXPECT_EQ(sqlite3_step(s), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
  };
  EXPECT_EQ(pragma("PRAGMA user_version"), SqliteStore::kSchemaVersion);
  EXPECT_EQ(pragma("PRAGMA application_id"), SqliteStore::kApplicationId);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, SecondOpenInTheSameProcessIsRefused) {
  auto second = SqliteStore::open({.path = path()});
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Errc::Unavailable);
  EXPECT_TRUE(contains(second.error().message(), "in use by another process"))
      << second.error().message();
  EXPECT_TRUE(contains(second.error().message(), std::to_string(::getpid())))
      << second.error().message();
  store_.reset();
  EXPECT_TRUE(SqliteStore::open({.path = path()}));
}

TEST_F(SqliteStoreTest, SecondProcessIsRefusedWhileTheFirstHoldsTheStore) {
  must(store().put("/a", "1"));
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto r = SqliteStore::open({.path = path()});
    bool refused = !r && r.error().code() == Errc::Unavailable &&
                   r.error().message().find("in use") != std::string::npos;
    ::_exit(refused ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "the second process was not refused";
  EXPECT_EQ(must(store().get("/a"))->value, "1");
}

// store::open() picks the backend by the URL's scheme; a bare path is the
// embedded store; an unknown scheme is refused, naming the known ones.
TEST(StoreOpen, TheUrlsSchemeChoosesTheBackend) {
  canopy::testing::TempDir dir;
  auto by_scheme = open("sqlite:" + dir.file("a.db"));
  ASSERT_TRUE(by_scheme) << by_scheme.error().toString();
  ASSERT_TRUE((*by_scheme)->put("/k", "v"));
  auto bare = open(dir.file("b.db"));
  ASSERT_TRUE(bare) << bare.error().toString();
  auto missing = open("sqlite:" + dir.file("c.db"), /*create_if_missing=*/false);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Errc::NotFound);
  auto unknown = open("zookeeper://127.0.0.1:2181");
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code(), Errc::InvalidArgument);
  EXPECT_NE(unknown.error().message().find("'zookeeper' is not one of sqlite, etcd"),
            std::string::npos)
      << unknown.error().message();
}

}  // namespace
}  // namespace canopy::store
