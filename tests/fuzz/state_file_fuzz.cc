// Fuzzes adopting a state file (datapath/persist/state_file.h), as a
// restarted agent does with whatever its run directory holds: a header
// (well-formed, or the input's own bytes) and slots of any content. Every
// record is adopted, released or discarded without crashing, and the tables
// go on working with what they took.
//
// Input: a flags byte (bit 0: the header is the input's bytes), the
// high-water mark, then the slots' bytes (128 each).

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "datapath/packet/builder.h"
#include "datapath/persist/state_file.h"
#include "datapath/pipeline/datapath.h"

namespace {

using canopy::datapath::persist::StateFile;

constexpr size_t kSlots = 16;
constexpr size_t kHeaderBytes = 4096;
std::string g_dir;

void removeDir() {
  std::error_code ec;
  std::filesystem::remove_all(g_dir, ec);
}

std::string bootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr ? base : "/tmp") + "/canopy-fuzz-state-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) std::abort();
  g_dir = pattern;
  std::atexit(removeDir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string path = g_dir + "/connections.state";
  std::remove(path.c_str());
  std::remove((path + ".old").c_str());
  std::vector<uint8_t> file(kHeaderBytes + kSlots * StateFile::kSlotBytes, 0);
  const bool raw_header = (data[0] & 1) != 0;
  const uint8_t* rest = data + 2;
  size_t left = size - 2;
  if (raw_header) {
    size_t n = std::min<size_t>(left, 128);
    std::memcpy(file.data(), rest, n);
    rest += n;
    left -= n;
  } else {
    // magic, format, slot size, slots, owner, boot id, high-water mark
    std::memcpy(file.data(), "CNPYSTAT", 8);
    uint32_t format = 1, slot_bytes = StateFile::kSlotBytes, owner = 7;
    uint64_t slots = kSlots;
    std::memcpy(file.data() + 8, &format, 4);
    std::memcpy(file.data() + 12, &slot_bytes, 4);
    std::memcpy(file.data() + 16, &slots, 8);
    std::memcpy(file.data() + 24, &owner, 4);
    std::string boot = bootId();
    std::memcpy(file.data() + 32, boot.data(), std::min<size_t>(boot.size(), 39));
    uint32_t high = data[1];
    std::memcpy(file.data() + 72, &high, 4);
  }
  std::memcpy(file.data() + kHeaderBytes, rest, std::min(left, kSlots * StateFile::kSlotBytes));
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(file.data()),
              static_cast<std::streamsize>(file.size()));
  }
  auto opened = StateFile::open(path, {.owner = 7, .slots = kSlots});
  if (!opened) {
    if (opened.error().message().empty()) std::abort();  // every error must say something
    return 0;
  }
  std::shared_ptr<StateFile> f = std::move(*opened);
  canopy::SystemClock clock;
  canopy::datapath::pipeline::Config config;
  canopy::datapath::pipeline::SharedState state(clock, config, 2, f);
  if (f->used() > f->capacity()) std::abort();
  // The tables go on: a port's zone, a connection, a sweep.
  uint16_t zone = state.zoneOf(1);
  using namespace canopy::datapath::packet;
  auto frame = PacketBuilder()
                   .eth(MacAddress{{2, 0, 0, 0, 0, 1}}, MacAddress{{2, 0, 0, 0, 0, 2}})
                   .ipv4(Ipv4Address::of(10, 0, 0, 1), Ipv4Address::of(10, 0, 0, 2))
                   .tcp(40000, 80, TcpHeader::kSyn, 1, 0)
                   .build();
  ParsedPacket p;
  if (parse(frame, p) == canopy::datapath::DropReason::None) {
    (void)state.conntrack().lookup(p, frame, zone);
    (void)state.conntrack().commit(p, frame, zone);
  }
  state.sweep();
  return 0;
}
