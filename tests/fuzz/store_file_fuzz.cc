// Fuzzes opening a store file: whatever bytes are on disk (truncated, corrupt,
// foreign, hostile), SqliteStore::open() returns a store or a clear error,
// and an opened store serves reads, writes and watches without crashing.

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "store/sqlite_store.h"
#include "store/store.h"

namespace {

std::string g_dir;

void removeDir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/canopy-fuzz-db-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_dir = pattern;
  std::atexit(removeDir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = g_dir + "/fuzz.db";
  for (const char* suffix : {"", "-wal", "-shm"}) std::remove((path + suffix).c_str());
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto store = canopy::store::SqliteStore::open({.path = path, .create_if_missing = false});
  if (!store) {
    if (store.error().message().empty()) std::abort();  // every error must say something
    return 0;
  }
  auto& s = **store;
  (void)s.range("");
  (void)s.put("/fuzz/key", "value");
  if (auto w = s.watch("", 1)) (void)(*w)->next(std::chrono::milliseconds(0));
  (void)s.compact(s.revision());
  return 0;
}
