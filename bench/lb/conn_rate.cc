// New TCP connections per second, for bench/lb/run.sh: a server that
// answers each connection with its name and closes it, and a client that
// opens connections one after another on a few threads, each read to its
// end, for a bounded time.
//
//   conn_rate serve PORT NAME
//   conn_rate connect ADDRESS PORT SECONDS THREADS
//
// The client prints one JSON line: connections, per second, failures, the
// answering names' counts and the latency (connect to end) p50 and p99.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

int serve(uint16_t port, const std::string& name) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  if (::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || ::listen(s, 4096) != 0) {
    std::perror("conn_rate: listen");
    return 1;
  }
  const std::string answer = name + "\n";
  auto loop = [&] {
    for (;;) {
      int c = ::accept4(s, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      [[maybe_unused]] auto n = ::write(c, answer.data(), answer.size());
      ::close(c);
    }
  };
  std::thread other(loop);
  loop();
  return 0;  // not reached: the bench ends the server
}

int connect(const char* address, uint16_t port, int seconds, int threads) {
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  if (::inet_pton(AF_INET, address, &to.sin_addr) != 1) return 2;
  std::atomic<uint64_t> failed{0};
  std::mutex mu;
  std::vector<double> latencies;  // microseconds
  std::map<std::string, uint64_t> names;
  const auto end = Clock::now() + std::chrono::seconds(seconds);
  auto loop = [&] {
    std::vector<double> mine;
    std::map<std::string, uint64_t> seen;
    char buffer[256];
    while (Clock::now() < end) {
      auto began = Clock::now();
      int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      timeval timeout{2, 0};
      ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
      ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
      std::string got;
      bool ok = ::connect(c, reinterpret_cast<sockaddr*>(&to), sizeof(to)) == 0;
      while (ok) {
        ssize_t n = ::read(c, buffer, sizeof(buffer));
        if (n < 0) ok = false;
        if (n <= 0) break;
        got.append(buffer, static_cast<size_t>(n));
      }
      ::close(c);
      if (!ok || got.empty()) {
        ++failed;
        continue;
      }
      mine.push_back(std::chrono::duration<double, std::micro>(Clock::now() - began).count());
      if (!got.empty() && got.back() == '\n') got.pop_back();
      ++seen[got];
    }
    std::lock_guard lock(mu);
    latencies.insert(latencies.end(), mine.begin(), mine.end());
    for (const auto& [k, v] : seen) names[k] += v;
  };
  const auto began = Clock::now();
  std::vector<std::thread> pool;
  for (int i = 0; i < threads; ++i) pool.emplace_back(loop);
  for (auto& t : pool) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - began).count();
  std::sort(latencies.begin(), latencies.end());
  auto at = [&](double q) {
    if (latencies.empty()) return 0.0;
    return latencies[static_cast<size_t>(q * static_cast<double>(latencies.size() - 1))];
  };
  std::printf(
      "{\"connections\": %zu, \"per_second\": %.0f, \"failed\": %llu, \"p50_us\": %.0f, "
      "\"p99_us\": %.0f, \"names\": {",
      latencies.size(), static_cast<double>(latencies.size()) / elapsed,
      static_cast<unsigned long long>(failed.load()), at(0.5), at(0.99));
  bool first = true;
  for (const auto& [k, v] : names) {
    std::printf("%s\"%s\": %llu", first ? "" : ", ", k.c_str(), static_cast<unsigned long long>(v));
    first = false;
  }
  std::printf("}}\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::strcmp(argv[1], "serve") == 0) {
    return serve(static_cast<uint16_t>(std::atoi(argv[2])), argv[3]);
  }
  if (argc == 6 && std::strcmp(argv[1], "connect") == 0) {
    int seconds = std::clamp(std::atoi(argv[4]), 1, 120);
    int threads = std::clamp(std::atoi(argv[5]), 1, 64);
    return connect(argv[2], static_cast<uint16_t>(std::atoi(argv[3])), seconds, threads);
  }
  std::fprintf(
      stderr,
      "usage: conn_rate serve PORT NAME | conn_rate connect ADDRESS PORT SECONDS THREADS\n");
  return 2;
}
