#pragma once
// A host's connection state in shared memory, so that the agent's next
// process adopts it (kill -9 included): a file in the agent's run
// directory, mapped MAP_SHARED, of fixed-size slots, each holding one
// record of one table: a tracked connection, an SNAT mapping, a load
// balancer's pin, a port's conntrack zone, a learned neighbour. Tables write a record when what
// it holds changes; a store into the mapping is in the kernel's page cache
// at once, so a process that dies loses at most the record it was writing
// (whose slot's sequence is then odd, and which is skipped).
//
//   auto file = StateFile::open(path, {.owner = host_key, .slots = 1 << 20});
//   for (const auto& r : (*file)->adopted()) table.adopt(r);   // restore
//   uint32_t slot = file->allocate();                           // a new record
//   file->write(slot, RecordKind::Connection, 1, &record, sizeof record);
//   file->release(slot);                                        // it is gone
//
// Versions: the header names the file's format; each record its kind and
// that kind's layout version. A process reads the kinds and versions it
// knows (an older agent's too) and discard()s the others, counted in
// unreadable(). A file of another format, owner or boot, or one that does
// not parse, is set aside as PATH.old with the reason logged, and a new one
// is made: the restart is then not hitless, never wrong.
//
// One process at a time: open() takes an exclusive lock on the file, so a
// second agent on the same run directory is refused.
//
// Thread-safety: allocate() and release() from any thread; write() from any
// thread, one slot by one thread at a time (the table's lock for that
// record). adopted() is read before the tables are shared.

#include <atomic>
#include <cstddef>
#include <cstring>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/mutex.h"
#include "base/result.h"

namespace canopy::datapath::persist {

enum class RecordKind : uint16_t {
  Free = 0,
  Connection = 1,  // conntrack::ConnTrack
  Zone = 2,        // a port's conntrack zone (pipeline::SharedState)
  Snat = 3,        // nat::SnatTable
  LbPin = 4,       // nat::LbTable
  LocalIp = 5,     // nat::DnatTable
  Neighbor = 6,    // a learned neighbour (pipeline::SharedState)
};

inline constexpr uint32_t kNoSlot = 0xffffffffu;

// A record found in the file at open().
struct Record {
  uint32_t slot = kNoSlot;
  RecordKind kind = RecordKind::Free;
  uint8_t version = 0;
  std::span<const uint8_t> bytes;

  // The payload as a T, if it is exactly that size (a record of the right
  // kind and version whose bytes are checked by the caller).
  template <typename T>
  bool as(T& out) const noexcept;
};

struct StateFileOptions {
  // Whose state it is (the host's key): another host's is not adopted.
  uint32_t owner = 0;
  // How many records it can hold; the file is sparse, so only what is used
  // takes memory.
  size_t slots = 1 << 20;
};

class StateFile {
 public:
  static constexpr size_t kSlotBytes = 128;
  static constexpr size_t kPayloadBytes = kSlotBytes - 8;

  static Result<std::unique_ptr<StateFile>> open(const std::string& path,
                                                 StateFileOptions options);
  ~StateFile();
  StateFile(const StateFile&) = delete;
  StateFile& operator=(const StateFile&) = delete;

  // The records an earlier process left (empty for a new file). Each is the
  // adopter's to keep (its slot stays allocated) or release().
  const std::vector<Record>& adopted() const { return adopted_; }
  // Why the earlier file was not adopted ("" when it was, or there was none).
  const std::string& setAside() const { return set_aside_; }
  // Records of kinds or versions this process does not read, released.
  uint64_t unreadable() const { return unreadable_.load(std::memory_order_relaxed); }

  // A free slot, or kNoSlot when the file is full (counted in full()).
  uint32_t allocate() noexcept;
  void release(uint32_t slot) noexcept;
  // Writes a slot's record (at most kPayloadBytes). kNoSlot is ignored.
  void write(uint32_t slot, RecordKind kind, uint8_t version, const void* data,
             size_t size) noexcept;
  template <typename T>
  void write(uint32_t slot, RecordKind kind, uint8_t version, const T& record) noexcept {
    static_assert(sizeof(T) <= kPayloadBytes && std::is_trivially_copyable_v<T>);
    write(slot, kind, version, &record, sizeof(T));
  }

  size_t used() const noexcept { return used_.load(std::memory_order_relaxed); }
  size_t capacity() const noexcept { return slots_; }
  uint64_t full() const noexcept { return full_.load(std::memory_order_relaxed); }
  const std::string& path() const { return path_; }

  // Releases an adopted record that no table reads (another kind, or a
  // version of one this process does not know), counted in unreadable().
  void discard(const Record& record) noexcept;

 private:
  struct Header;
  struct Slot;
  StateFile(std::string path, int fd, void* map, size_t map_bytes, size_t slots);
  // Sizes and maps the locked file `fd` (closed on failure).
  static Result<std::unique_ptr<StateFile>> map(const std::string& path, int fd, size_t slots);
  Header& header() const noexcept;
  Slot& slot(uint32_t index) const noexcept;
  // Reads the slots an earlier process wrote; false (with why) if the file
  // is not one to adopt.
  bool adopt(const StateFileOptions& options, std::string& why);

  const std::string path_;
  const int fd_;
  void* const map_;
  const size_t map_bytes_;
  const size_t slots_;
  std::vector<Record> adopted_;
  std::string set_aside_;
  std::atomic<uint64_t> unreadable_{0};
  std::atomic<size_t> used_{0};
  std::atomic<uint64_t> full_{0};
  Mutex mu_;
  std::vector<uint32_t> free_ CANOPY_GUARDED_BY(mu_);
};

template <typename T>
bool Record::as(T& out) const noexcept {
  static_assert(std::is_trivially_copyable_v<T>);
  if (bytes.size() != sizeof(T)) return false;
  std::memcpy(&out, bytes.data(), sizeof(T));
  return true;
}

}  // namespace canopy::datapath::persist
