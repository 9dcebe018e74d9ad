#pragma once
// The agent's BFD sessions (bfd/bfd.h) with other hosts over the underlay,
// UDP port 3784 from its tunnel address with TTL 255 (RFC 5881: a packet
// that arrives with a lower TTL came from further than one hop, and is
// dropped), and a channel beside it (port 3788) on which a host that holds
// router gateways sends its SNAT mappings to their standby hosts (gateway
// high availability: datapath.h's SharedState::snatReplica*).
//
//   auto bfd = BfdService::start({.address = tunnel_ip, .state_file = run_dir + "/bfd.json"},
//                                [&] { agent.livenessChanged(); });
//   bfd->setPeers({{2, ip2}, {3, ip3}});     // host key -> tunnel address
//   bfd->up(2); bfd->upSince(2);             // what the session says
//   bfd->sendReplica({3}, records);          // SNAT records to host 3
//
// Sessions are kept in `state_file` whenever one changes state, so that a
// restarted agent resumes them (Session::resume) and its peers see no gap
// beyond the restart's: a restart is no failover.
//
// Thread-safety: every public member function from any thread; callbacks
// run on the service's thread and must not block for long.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/clock.h"
#include "base/ip.h"
#include "base/mutex.h"
#include "base/result.h"
#include "bfd/bfd.h"
#include "model/json.h"

namespace canopy::agent {

inline constexpr uint16_t kReplicaPort = 3788;

struct BfdOptions {
  IpAddress address{};  // this host's tunnel address (IPv4 or IPv6)
  uint16_t port = bfd::kControlPort;
  uint16_t replica_port = kReplicaPort;
  bfd::Timing timing{};
  std::string state_file{};  // "": not kept across restarts
};

class BfdService {
 public:
  // `changed`: a session went up or down. `replica`: SNAT records a peer
  // sent (each one record's bytes).
  using Changed = std::function<void()>;
  using Replica = std::function<void(std::span<const uint8_t> records)>;
  static Result<std::unique_ptr<BfdService>> start(const Clock& clock, BfdOptions options,
                                                   Changed changed, Replica replica);
  ~BfdService();
  BfdService(const BfdService&) = delete;
  BfdService& operator=(const BfdService&) = delete;

  // The hosts to keep sessions with (host key -> tunnel address); sessions
  // of hosts no longer named end.
  void setPeers(const std::map<uint32_t, IpAddress>& peers);
  bool up(uint32_t host) const;
  // Since when the session has been up (nullopt: it is not).
  std::optional<SteadyTime> upSince(uint32_t host) const;
  // Since when at least one session has been up (nullopt: none is: this
  // host has no peers, has not reached them yet, or is cut off).
  std::optional<SteadyTime> connectedSince() const;
  bool hasPeers() const;
  // It had sessions up and has none now: this host is cut off (its
  // underlay link is down, or every peer died).
  bool cutOff() const;
  // Sends SNAT records (whole records, concatenated) to these hosts.
  void sendReplica(const std::vector<uint32_t>& hosts, std::span<const uint8_t> records);
  model::Json statusJson() const;

 private:
  BfdService(const Clock& clock, BfdOptions options, int fd, int replica_fd, int stop_fd,
             Changed changed, Replica replica);
  void run();
  void save() CANOPY_REQUIRES(mu_);
  void load();

  struct Peer {
    uint32_t host = 0;
    IpAddress address{};
    std::unique_ptr<bfd::Session> session;
    // A packet came from it in this process: a session resumed from the
    // state file counts as up only once its peer is heard again (the peer
    // may have ended it meanwhile).
    bool heard = false;
    bool up() const { return heard && session->up(); }
  };
  void updateConnected() CANOPY_REQUIRES(mu_);
  const Clock& clock_;
  const BfdOptions options_;
  const int fd_, replica_fd_, stop_fd_;
  Changed changed_;
  Replica replica_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> pending_change_{false};
  mutable Mutex mu_;
  std::map<uint32_t, Peer> peers_ CANOPY_GUARDED_BY(mu_);  // by host key
  // What the state file held, by peer address, until its peer is named.
  std::map<std::string, model::Json> saved_ CANOPY_GUARDED_BY(mu_);
  std::optional<SteadyTime> connected_since_ CANOPY_GUARDED_BY(mu_);
  bool was_connected_ CANOPY_GUARDED_BY(mu_) = false;
  uint32_t next_discriminator_ CANOPY_GUARDED_BY(mu_) = 0;
  std::map<std::string, uint64_t> refused_ CANOPY_GUARDED_BY(mu_);  // by reason
};

}  // namespace canopy::agent
