// Fuzzes what an agent does with the southbound's messages: bytes to a
// pb::View, applied to the view it holds, built into a Topology, and run
// through a datapath. An input is a sequence of messages, each behind a
// two-byte big-endian length; they are applied in order to one held view,
// as a stream of a snapshot and deltas would be.
//
// Besides crashes (ASan, UBSan), these abort: a refused message that left
// the held view changed (apply() must be all or nothing), a refusal or a
// build failure without a reason.

#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

#include "base/clock.h"
#include "datapath/packet/builder.h"
#include "datapath/pipeline/datapath.h"
#include "southbound/convert.h"

namespace {

namespace dp = canopy::datapath;
namespace sb = canopy::southbound;

// A ping from each of a few local ports to another port of the view.
void runFrames(const dp::topology::Topology& topology, const sb::HostView& view) {
  canopy::FakeClock clock;
  dp::pipeline::Datapath datapath(clock, {.host = {.host = view.local_host}});
  datapath.setTopology(std::make_shared<const dp::topology::Topology>(topology));
  dp::pipeline::Outputs out;
  size_t runs = 0;
  for (const auto& [key, port] : view.ports) {
    if (port.host != view.local_host || ++runs > 4) continue;
    for (const auto& [other_key, other] : view.ports) {
      dp::packet::PacketBuilder b;
      if (other.ips.empty() || port.ips.empty()) continue;
      if (port.ips[0].family != 4 || other.ips[0].family != 4) continue;
      auto v4 = [](const canopy::IpAddress& a) { return dp::packet::Ipv4Address::of(a); };
      auto frame = b.eth(port.mac, other.mac)
                       .ipv4(v4(port.ips[0]), v4(other.ips[0]))
                       .icmp(8, 0, 1, 1)
                       .build();
      datapath.process(dp::pipeline::Ingress::fromPort(key), frame, out);
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sb::HostView held;
  std::span<const uint8_t> rest(data, size);
  uint64_t version = 0;
  while (rest.size() >= 2) {
    size_t length = (size_t{rest[0]} << 8) | rest[1];
    rest = rest.subspan(2);
    length = std::min(length, rest.size());
    sb::pb::View message;
    bool parsed = message.ParseFromArray(rest.data(), static_cast<int>(length));
    rest = rest.subspan(length);
    if (!parsed) continue;
    sb::HostView before = held;
    auto applied = sb::apply(held, message);
    if (!applied) {
      if (!(held == before)) {
        std::fprintf(stderr, "a refused message changed the held view: %s\n",
                     applied.error().message().c_str());
        std::abort();
      }
      if (applied.error().message().empty()) std::abort();
      continue;
    }
    auto built = held.builder().build(++version);
    if (!built) {
      if (built.error().message().empty()) std::abort();
      continue;
    }
    runFrames(**built, held);
  }
  return 0;
}
