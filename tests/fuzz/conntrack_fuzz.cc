// Fuzzes connection tracking with arbitrary frames, split at 0xff 0xfe
// markers into a short sequence of packets through one table (so that
// replies, resets and ICMP errors meet existing connections).

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/clock.h"
#include "datapath/conntrack/conntrack.h"

namespace dp = canopy::datapath;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  canopy::FakeClock clock;
  dp::conntrack::ConnTrack table(clock, {.max_connections = 8});
  std::span<const uint8_t> rest(data, size);
  for (int i = 0; i < 16 && !rest.empty(); ++i) {
    size_t cut = rest.size();
    for (size_t j = 0; j + 1 < rest.size(); ++j) {
      if (rest[j] == 0xff && rest[j + 1] == 0xfe) {
        cut = j;
        break;
      }
    }
    auto frame = rest.first(cut);
    rest = rest.subspan(cut == rest.size() ? cut : cut + 2);
    dp::packet::ParsedPacket p;
    if (dp::packet::parse(frame, p) != dp::DropReason::None) continue;
    auto zone = static_cast<uint16_t>(i % 2);
    if (table.lookup(p, frame, zone).state == dp::conntrack::CtState::New) {
      (void)table.commit(p, frame, zone);
    }
    clock.advance(std::chrono::seconds(i));
  }
  table.sweep();
  return 0;
}
