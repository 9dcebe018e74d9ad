// southbound_fleet: many agents' southbound ends in one process, for the
// cluster benchmark (cluster_bench.cc). Agent i (i in [first, first+count))
// is host "host-i" with its own gRPC connection, served by the replicas in
// SERVERS starting from replica i mod R (so agents spread over replicas and
// fail over to the next). Each applied view's port count goes to the agent's
// slot in the shared file. Runs until SIGTERM or SIGINT.
//
//   southbound_fleet --servers 127.0.0.1:7001,127.0.0.1:7002 --first 0 --count 250
//                    --slots /dev/shm/canopy-fleet --agents 1000

#include "fleet.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "agent/southbound_client.h"

using namespace canopy;

int main(int argc, char** argv) {
  spdlog::set_level(spdlog::level::err);
  std::string servers, slots_path;
  int first = 0, count = 0, agents = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--servers") servers = argv[i + 1];
    if (a == "--slots") slots_path = argv[i + 1];
    if (a == "--first") first = std::stoi(argv[i + 1]);
    if (a == "--count") count = std::stoi(argv[i + 1]);
    if (a == "--agents") agents = std::stoi(argv[i + 1]);
  }
  auto list = bench::splitList(servers);
  if (list.empty() || slots_path.empty() || count <= 0 || agents < first + count) {
    std::fprintf(stderr,
                 "usage: southbound_fleet --servers LIST --slots FILE --first N "
                 "--count K --agents TOTAL\n");
    return 2;
  }
  int fd = ::open(slots_path.c_str(), O_RDWR);
  if (fd < 0) {
    std::perror(slots_path.c_str());
    return 1;
  }
  size_t size = sizeof(bench::FleetSlot) * static_cast<size_t>(agents);
  void* map = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
  auto* slots = static_cast<bench::FleetSlot*>(map);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::vector<std::unique_ptr<agent::SouthboundClient>> fleet;
  for (int i = first; i < first + count; ++i) {
    std::string mine;
    for (size_t k = 0; k < list.size(); ++k) {
      mine += (k == 0 ? "" : ",") + list[(static_cast<size_t>(i) + k) % list.size()];
    }
    southbound::v1::Hello hello;
    hello.set_host_name("host-" + std::to_string(i));
    uint8_t ip[4] = {10, 200, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i)};
    hello.set_tunnel_ip(std::string(reinterpret_cast<const char*>(ip), 4));
    bench::FleetSlot* slot = &slots[i];
    auto client = std::make_unique<agent::SouthboundClient>(
        agent::SouthboundClient::Options{.server = mine, .hello = hello},
        [slot](const southbound::HostView& v, uint64_t) -> Result<void> {
          auto ports = static_cast<uint32_t>(v.ports.size());
          slot->views.fetch_add(1);
          slot->connected.store(1);
          if (slot->ports.exchange(ports) != ports) slot->changed_ns.store(bench::monotonicNs());
          return ok();
        });
    client->start();
    fleet.push_back(std::move(client));
  }
  int signal = 0;
  sigwait(&signals, &signal);
  for (auto& c : fleet) c->stop();
  return 0;
}
