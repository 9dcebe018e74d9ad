#include "datapath/persist/state_file.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>

namespace canopy::datapath::persist {
namespace {

constexpr char kMagic[8] = {'C', 'N', 'P', 'Y', 'S', 'T', 'A', 'T'};
constexpr uint32_t kFormat = 1;
constexpr size_t kHeaderBytes = 4096;

std::string bootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

std::string systemError(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

struct StateFile::Header {
  char magic[8];
  uint32_t format;
  uint32_t slot_bytes;
  uint64_t slots;
  uint32_t owner;
  uint32_t reserved;
  char boot_id[40];
  // Slots ever allocated: those at and above are unused.
  std::atomic<uint32_t> high;
};

struct StateFile::Slot {
  // Even when the record is whole; odd while it is being written.
  std::atomic<uint32_t> sequence;
  uint16_t kind;
  uint8_t version;
  uint8_t size;
  uint8_t payload[kPayloadBytes];
};
static_assert(std::atomic<uint32_t>::is_always_lock_free);

StateFile::StateFile(std::string path, int fd, void* map, size_t map_bytes, size_t slots)
    : path_(std::move(path)), fd_(fd), map_(map), map_bytes_(map_bytes), slots_(slots) {
  static_assert(sizeof(Header) <= kHeaderBytes);
  static_assert(sizeof(Slot) == kSlotBytes);
}

StateFile::~StateFile() {
  munmap(map_, map_bytes_);
  ::close(fd_);  // and with it the lock
}

StateFile::Header& StateFile::header() const noexcept { return *static_cast<Header*>(map_); }

StateFile::Slot& StateFile::slot(uint32_t index) const noexcept {
  return reinterpret_cast<Slot*>(static_cast<char*>(map_) + kHeaderBytes)[index];
}

namespace {

// The file at `path`, opened and locked for this process alone.
Result<int> openLocked(const std::string& path, int flags) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | flags, 0600);
  if (fd < 0) return Error(Errc::Unavailable, systemError("state file " + path));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    std::string why = errno == EWOULDBLOCK
                          ? "state file " + path + " is held by another canopy-agent"
                          : systemError("state file " + path + ": lock");
    ::close(fd);
    return Error(Errc::Conflict, why);
  }
  return fd;
}

}  // namespace

Result<std::unique_ptr<StateFile>> StateFile::map(const std::string& path, int fd, size_t slots) {
  const size_t bytes = kHeaderBytes + slots * kSlotBytes;
  if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
    std::string e = systemError("state file " + path + ": size");
    ::close(fd);
    return Error(Errc::Unavailable, e);
  }
  void* at = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) {
    std::string e = systemError("state file " + path + ": map");
    ::close(fd);
    return Error(Errc::Unavailable, e);
  }
  return std::unique_ptr<StateFile>(new StateFile(path, fd, at, bytes, slots));
}

Result<std::unique_ptr<StateFile>> StateFile::open(const std::string& path,
                                                   StateFileOptions options) {
  if (options.slots == 0 || options.slots >= kNoSlot) {
    return Error(Errc::InvalidArgument, "state file " + path + ": slots out of range");
  }
  auto fd = openLocked(path, O_CREAT);
  if (!fd) return std::move(fd).error();
  struct stat st {};
  if (fstat(*fd, &st) != 0) {
    std::string e = systemError("state file " + path);
    ::close(*fd);
    return Error(Errc::Unavailable, e);
  }
  std::string why;
  if (st.st_size != 0) {
    // An earlier process's: adopted if it is one this process reads.
    const size_t bytes = kHeaderBytes + options.slots * kSlotBytes;
    std::unique_ptr<StateFile> earlier;
    if (static_cast<size_t>(st.st_size) != bytes) {
      why = "its size is " + std::to_string(st.st_size) + " bytes, not " + std::to_string(bytes);
    } else {
      auto mapped = map(path, *fd, options.slots);
      if (!mapped) return std::move(mapped).error();
      earlier = std::move(*mapped);
      if (earlier->adopt(options, why)) return earlier;
    }
    // Set aside (still locked) for whoever wants to look, and a new file.
    std::string old = path + ".old";
    if (std::rename(path.c_str(), old.c_str()) != 0) {
      std::string e = systemError("state file " + path + ": rename");
      if (earlier == nullptr) ::close(*fd);
      return Error(Errc::Unavailable, e);
    }
    if (earlier == nullptr) ::close(*fd);
    earlier.reset();
    spdlog::warn("state file {}: not adopted ({}); set aside as {}, starting empty", path, why,
                 old);
    fd = openLocked(path, O_CREAT | O_EXCL);
    if (!fd) return std::move(fd).error();
  }
  auto mapped = map(path, *fd, options.slots);
  if (!mapped) return std::move(mapped).error();
  std::unique_ptr<StateFile> file = std::move(*mapped);
  file->set_aside_ = why;
  Header& h = file->header();
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.format = kFormat;
  h.slot_bytes = kSlotBytes;
  h.slots = options.slots;
  h.owner = options.owner;
  std::string boot = bootId();
  std::memset(h.boot_id, 0, sizeof h.boot_id);
  std::memcpy(h.boot_id, boot.data(), std::min(boot.size(), sizeof h.boot_id - 1));
  h.high.store(0, std::memory_order_release);
  return file;
}

bool StateFile::adopt(const StateFileOptions& options, std::string& why) {
  const Header& h = header();
  if (std::memcmp(h.magic, kMagic, sizeof kMagic) != 0) {
    why = "not a Canopy state file";
    return false;
  }
  if (h.format != kFormat) {
    why = "format " + std::to_string(h.format) + ", this agent reads " + std::to_string(kFormat);
    return false;
  }
  if (h.slot_bytes != kSlotBytes || h.slots != slots_) {
    why = "its slots are " + std::to_string(h.slots) + " of " + std::to_string(h.slot_bytes) +
          " bytes, not " + std::to_string(slots_) + " of " + std::to_string(kSlotBytes);
    return false;
  }
  if (h.owner != options.owner) {
    why = "it is host " + std::to_string(h.owner) + "'s, this is host " +
          std::to_string(options.owner);
    return false;
  }
  std::string boot(h.boot_id, strnlen(h.boot_id, sizeof h.boot_id));
  if (boot != bootId()) {
    why = "it was written before the machine restarted";
    return false;
  }
  uint32_t high = header().high.load(std::memory_order_relaxed);
  if (high > slots_) {
    why = "its high-water mark " + std::to_string(high) + " is past its " + std::to_string(slots_) +
          " slots";
    return false;
  }
  MutexLock lock(mu_);
  for (uint32_t i = 0; i < high; ++i) {
    Slot& s = slot(i);
    uint32_t sequence = s.sequence.load(std::memory_order_acquire);
    bool whole = sequence % 2 == 0;
    if (whole && s.kind != static_cast<uint16_t>(RecordKind::Free) && s.size <= kPayloadBytes) {
      adopted_.push_back(Record{.slot = i,
                                .kind = static_cast<RecordKind>(s.kind),
                                .version = s.version,
                                .bytes = std::span<const uint8_t>(s.payload, s.size)});
      continue;
    }
    if (!whole || s.kind != static_cast<uint16_t>(RecordKind::Free)) {
      // Torn by the process's death, or garbage: freed.
      unreadable_.fetch_add(1, std::memory_order_relaxed);
      s.kind = static_cast<uint16_t>(RecordKind::Free);
      s.sequence.store(sequence + (whole ? 2 : 1), std::memory_order_release);
    }
    free_.push_back(i);
  }
  used_.store(adopted_.size(), std::memory_order_relaxed);
  return true;
}

uint32_t StateFile::allocate() noexcept {
  MutexLock lock(mu_);
  uint32_t index = kNoSlot;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    uint32_t high = header().high.load(std::memory_order_relaxed);
    if (high >= slots_) {
      full_.fetch_add(1, std::memory_order_relaxed);
      return kNoSlot;
    }
    header().high.store(high + 1, std::memory_order_release);
    index = high;
  }
  used_.fetch_add(1, std::memory_order_relaxed);
  return index;
}

void StateFile::write(uint32_t index, RecordKind kind, uint8_t version, const void* data,
                      size_t size) noexcept {
  if (index == kNoSlot || index >= slots_ || size > kPayloadBytes) return;
  Slot& s = slot(index);
  uint32_t sequence = s.sequence.load(std::memory_order_relaxed) | 1u;  // odd: being written
  s.sequence.store(sequence, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s.kind = static_cast<uint16_t>(kind);
  s.version = version;
  s.size = static_cast<uint8_t>(size);
  if (size != 0) std::memcpy(s.payload, data, size);
  s.sequence.store(sequence + 1, std::memory_order_release);  // even: whole
}

void StateFile::release(uint32_t index) noexcept {
  if (index == kNoSlot || index >= slots_) return;
  write(index, RecordKind::Free, 0, nullptr, 0);
  MutexLock lock(mu_);
  free_.push_back(index);
  used_.fetch_sub(1, std::memory_order_relaxed);
}

void StateFile::discard(const Record& record) noexcept {
  unreadable_.fetch_add(1, std::memory_order_relaxed);
  release(record.slot);
}

}  // namespace canopy::datapath::persist
