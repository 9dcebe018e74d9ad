// Fuzzes BFD (bfd/bfd.h) as an agent meets it on its underlay: any bytes
// are parsed (a packet, or a named reason to discard it), and the packets
// that parse drive a session, whose answers parse again.

#include <cstdint>
#include <cstdlib>

#include "bfd/bfd.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace canopy::bfd;
  canopy::FakeClock clock;
  Session s(0x5eed, Timing{});
  // The input as a run of datagrams, 24 to 40 bytes each, a millisecond
  // apart.
  size_t at = 0;
  while (at < size) {
    size_t n = std::min<size_t>(size - at, 24 + data[at] % 17);
    Parsed p = parse(std::span<const uint8_t>(data + at, n));
    if (p.refusal == Refusal::None) {
      s.receive(p.packet, clock.now());
    } else if (refusalName(p.refusal).empty()) {
      std::abort();
    }
    while (auto out = s.transmit(clock.now(), 0.5)) {
      if (parse(encode(*out)).refusal != Refusal::None &&
          !(out->your_discriminator == 0 && out->state != State::Down)) {
        std::abort();  // what a session sends parses
      }
    }
    clock.advance(std::chrono::milliseconds(1));
    at += n;
  }
  return 0;
}
