#pragma once
// Real etcd members (Debian's etcd-server) on loopback for one test: started
// on free ports with their data in a fresh directory (on /dev/shm when there
// is one: etcd fsyncs every commit), killed -9 or restarted one by one, and
// killed and removed at the end, also when the test fails.
//
//   EtcdCluster etcd(3);                 // three members, a quorum of two
//   ASSERT_TRUE(etcd.ready()) << etcd.log();
//   auto store = store::open(etcd.url());   // "etcd://127.0.0.1:P1,127.0.0.1:P2,..."
//   etcd.kill(0);  ...  etcd.restart(0);

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testing/http_client.h"

namespace canopy::testing {

class EtcdCluster {
 public:
  explicit EtcdCluster(int members = 1) {
    std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
    std::string pattern = base + "/canopy-etcd-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) return;
    dir_ = pattern;
    for (int i = 0; i < members; ++i) {
      Member m;
      m.name = "m" + std::to_string(i);
      m.client_port = freePort();
      m.peer_port = freePort();
      members_.push_back(m);
    }
    for (int i = 0; i < members; ++i) spawn(i);
    ready_ = waitReady(std::chrono::seconds(30));
  }
  ~EtcdCluster() {
    for (size_t i = 0; i < members_.size(); ++i) kill(static_cast<int>(i));
    std::error_code ec;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
  }
  EtcdCluster(const EtcdCluster&) = delete;
  EtcdCluster& operator=(const EtcdCluster&) = delete;

  bool ready() const { return ready_; }
  int size() const { return static_cast<int>(members_.size()); }
  std::string endpoint(int i) const {
    return "127.0.0.1:" + std::to_string(members_.at(static_cast<size_t>(i)).client_port);
  }
  std::string endpoints() const {
    std::string out;
    for (int i = 0; i < size(); ++i) out += (i == 0 ? "" : ",") + endpoint(i);
    return out;
  }
  std::string url() const { return "etcd://" + endpoints(); }
  pid_t pid(int i) const { return members_.at(static_cast<size_t>(i)).pid; }

  // SIGKILL, and waits for the process to be gone.
  void kill(int i) {
    Member& m = members_.at(static_cast<size_t>(i));
    if (m.pid <= 0) return;
    ::kill(m.pid, SIGKILL);
    ::waitpid(m.pid, nullptr, 0);
    m.pid = -1;
  }
  // Starts a killed member again on its data directory; true once the
  // cluster answers healthy.
  bool restart(int i) {
    spawn(i, /*existing=*/true);
    return waitReady(std::chrono::seconds(30));
  }

  // Every member's log, for a failed assertion's message.
  std::string log() const {
    std::string out;
    for (const auto& m : members_) {
      std::ifstream f(dir_ + "/" + m.name + ".log");
      std::stringstream s;
      s << f.rdbuf();
      std::string text = s.str();
      if (text.size() > 4000) text = text.substr(text.size() - 4000);
      out += "--- etcd " + m.name + "\n" + text;
    }
    return out;
  }

  // True when every live member says it is healthy (it has a leader).
  bool healthy() const {
    for (const auto& m : members_) {
      if (m.pid <= 0) continue;
      try {
        HttpClient client("127.0.0.1", static_cast<uint16_t>(m.client_port));
        auto r = client.request("GET", "/health");
        if (r.status != 200 || r.body.find("true") == std::string::npos) return false;
      } catch (const std::exception&) {
        return false;
      }
    }
    return true;
  }

 private:
  struct Member {
    std::string name;
    int client_port = 0;
    int peer_port = 0;
    pid_t pid = -1;
  };

  static int freePort() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    socklen_t len = sizeof(a);
    int port = 0;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
      port = ntohs(a.sin_port);
    }
    ::close(fd);
    return port;
  }

  void spawn(int i, bool existing = false) {
    Member& m = members_.at(static_cast<size_t>(i));
    std::string cluster;
    for (const auto& o : members_) {
      cluster += (cluster.empty() ? "" : ",") + o.name +
                 "=http://127.0.0.1:" + std::to_string(o.peer_port);
    }
    std::string client = "http://127.0.0.1:" + std::to_string(m.client_port);
    std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
    std::vector<std::string> args = {
        "etcd",
        "--name=" + m.name,
        "--data-dir=" + dir_ + "/" + m.name,
        "--listen-client-urls=" + client,
        "--advertise-client-urls=" + client,
        "--listen-peer-urls=" + peer,
        "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + cluster,
        "--initial-cluster-state=" + std::string(existing ? "existing" : "new"),
        "--initial-cluster-token=canopy-test",
        "--max-txn-ops=10000",
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        "--logger=zap",
        "--log-level=warn"};
    std::string log = dir_ + "/" + m.name + ".log";
    pid_t pid = ::fork();
    if (pid == 0) {
      FILE* f = std::fopen(log.c_str(), "a");
      if (f != nullptr) {
        ::dup2(fileno(f), 1);
        ::dup2(fileno(f), 2);
      }
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test, however it ends
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execvp("etcd", argv.data());
      std::fprintf(stderr, "cannot run etcd (install etcd-server: scripts/install-deps.sh)\n");
      ::_exit(127);
    }
    m.pid = pid;
  }

  bool waitReady(std::chrono::seconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      for (auto& m : members_) {
        if (m.pid > 0 && ::waitpid(m.pid, nullptr, WNOHANG) == m.pid) {
          m.pid = -1;  // it died: log() says why
          return false;
        }
      }
      if (healthy()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  std::string dir_;
  std::vector<Member> members_;
  bool ready_ = false;
};

}  // namespace canopy::testing
