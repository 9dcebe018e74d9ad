#include "agent/bfd_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include "agent/sockaddr.h"

namespace canopy::agent {
namespace {

using model::Json;

// RFC 5881 (GTSM): sent with a TTL (IPv6: hop limit) of 255, only 255 taken.
constexpr int kTtl = 255;

// A UDP socket of the address's family, bound to it, that sends with TTL
// (hop limit) 255 and tells each datagram's.
Result<int> udpSocket(const IpAddress& address, uint16_t port) {
  const bool six = address.family == 6;
  int fd = ::socket(six ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return Error(Errc::Unavailable, std::string("bfd: socket: ") + std::strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (six) {
    setsockopt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, &kTtl, sizeof kTtl);
    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, &one, sizeof one);
  } else {
    setsockopt(fd, IPPROTO_IP, IP_TTL, &kTtl, sizeof kTtl);
    setsockopt(fd, IPPROTO_IP, IP_RECVTTL, &one, sizeof one);
  }
  sockaddr_storage at;
  const socklen_t at_length = toSockaddr(address, port, at);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&at), at_length) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Error(Errc::Unavailable,
                 "bfd: bind " + address.toString() + ":" + std::to_string(port) + ": " + why);
  }
  return fd;
}

int64_t nanos(SteadyTime t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

Result<std::unique_ptr<BfdService>> BfdService::start(const Clock& clock, BfdOptions options,
                                                      Changed changed, Replica replica) {
  if (options.address.family != 4 && options.address.family != 6) {
    return Error(Errc::InvalidArgument, "bfd: no tunnel address");
  }
  auto fd = udpSocket(options.address, options.port);
  if (!fd) return std::move(fd).error();
  auto replica_fd = udpSocket(options.address, options.replica_port);
  if (!replica_fd) {
    ::close(*fd);
    return std::move(replica_fd).error();
  }
  int stop = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  std::unique_ptr<BfdService> s(new BfdService(clock, std::move(options), *fd, *replica_fd, stop,
                                               std::move(changed), std::move(replica)));
  s->load();
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

BfdService::BfdService(const Clock& clock, BfdOptions options, int fd, int replica_fd, int stop_fd,
                       Changed changed, Replica replica)
    : clock_(clock),
      options_(std::move(options)),
      fd_(fd),
      replica_fd_(replica_fd),
      stop_fd_(stop_fd),
      changed_(std::move(changed)),
      replica_(std::move(replica)) {
  std::random_device rd;
  MutexLock lock(mu_);
  next_discriminator_ = rd() | 1u;
}

BfdService::~BfdService() {
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  {
    MutexLock lock(mu_);
    save();
  }
  ::close(fd_);
  ::close(replica_fd_);
  ::close(stop_fd_);
}

void BfdService::load() {
  if (options_.state_file.empty()) return;
  std::ifstream in(options_.state_file);
  if (!in) return;
  std::stringstream text;
  text << in.rdbuf();
  auto saved = model::parseJson(text.str());
  if (!saved || !saved->is_object()) {
    spdlog::warn("bfd: {} does not parse; sessions start anew", options_.state_file);
    return;
  }
  MutexLock lock(mu_);
  for (const auto& [address, s] : saved->items()) {
    if (s.is_object()) saved_[address] = s;
  }
}

void BfdService::save() {
  if (options_.state_file.empty()) return;
  Json out = Json::object();
  for (const auto& [host, p] : peers_) {
    const bfd::Session& s = *p.session;
    out[p.address.toString()] = {{"local", s.localDiscriminator()},
                                 {"remote", s.remoteDiscriminator()},
                                 {"state", static_cast<int>(s.state())},
                                 {"remote_min_rx_us", s.remoteMinRx().count()},
                                 {"remote_min_tx_us", s.remoteMinTx().count()},
                                 {"remote_mult", s.remoteMult()},
                                 {"since_ns", nanos(s.since())}};
  }
  const std::string tmp = options_.state_file + ".new";
  {
    std::ofstream f(tmp, std::ios::trunc);
    f << out.dump();
    if (!f.flush()) return;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, options_.state_file, ec);
}

void BfdService::setPeers(const std::map<uint32_t, IpAddress>& peers) {
  bool changed = false;
  {
    MutexLock lock(mu_);
    for (auto it = peers_.begin(); it != peers_.end();) {
      auto want = peers.find(it->first);
      if (want == peers.end() || !(want->second == it->second.address)) {
        changed = changed || it->second.up();
        it = peers_.erase(it);
      } else {
        ++it;
      }
    }
    SteadyTime now = clock_.now();
    for (const auto& [host, address] : peers) {
      // (A peer of the other family cannot be reached from this address.)
      if (peers_.count(host) != 0 || address.family != options_.address.family) continue;
      Peer p{.host = host, .address = address, .session = nullptr, .heard = false};
      auto saved = saved_.find(address.toString());
      uint32_t local = 0;
      if (saved != saved_.end()) local = saved->second.value("local", 0u);
      if (local == 0) local = next_discriminator_++;
      p.session = std::make_unique<bfd::Session>(local, options_.timing);
      if (saved != saved_.end()) {
        // An earlier process's session with this peer goes on.
        const Json& s = saved->second;
        int state = s.value("state", 1);
        if (state == static_cast<int>(bfd::State::Up) ||
            state == static_cast<int>(bfd::State::Init)) {
          p.session->resume(static_cast<bfd::State>(state), s.value("remote", 0u),
                            std::chrono::microseconds(s.value("remote_min_rx_us", int64_t{1})),
                            std::chrono::microseconds(s.value("remote_min_tx_us", int64_t{0})),
                            static_cast<uint8_t>(s.value("remote_mult", 0)),
                            SteadyTime(std::chrono::duration_cast<SteadyTime::duration>(
                                std::chrono::nanoseconds(s.value("since_ns", nanos(now))))),
                            now);
        }
        saved_.erase(saved);
      }
      peers_.emplace(host, std::move(p));
    }
    updateConnected();
    save();
  }
  if (changed) pending_change_ = true;  // told from run(), never from the caller's thread
  uint64_t one = 1;
  (void)!::write(stop_fd_, &one, sizeof one);  // wakes run() for the new sessions
}

void BfdService::updateConnected() {
  // Connected: since the earliest session now up.
  std::optional<SteadyTime> since;
  for (const auto& [host, p] : peers_) {
    if (p.up() && (!since || p.session->since() < *since)) since = p.session->since();
  }
  connected_since_ = since;
  if (since) was_connected_ = true;
  if (peers_.empty()) was_connected_ = false;
}

bool BfdService::cutOff() const {
  MutexLock lock(mu_);
  return was_connected_ && !connected_since_;
}

bool BfdService::up(uint32_t host) const {
  MutexLock lock(mu_);
  auto it = peers_.find(host);
  return it != peers_.end() && it->second.up();
}

std::optional<SteadyTime> BfdService::upSince(uint32_t host) const {
  MutexLock lock(mu_);
  auto it = peers_.find(host);
  if (it == peers_.end() || !it->second.up()) return std::nullopt;
  return it->second.session->since();
}

std::optional<SteadyTime> BfdService::connectedSince() const {
  MutexLock lock(mu_);
  return connected_since_;
}

bool BfdService::hasPeers() const {
  MutexLock lock(mu_);
  return !peers_.empty();
}

void BfdService::sendReplica(const std::vector<uint32_t>& hosts, std::span<const uint8_t> records) {
  std::vector<IpAddress> to;
  {
    MutexLock lock(mu_);
    for (uint32_t h : hosts) {
      auto it = peers_.find(h);
      if (it != peers_.end()) to.push_back(it->second.address);
    }
  }
  for (const auto& address : to) {
    sockaddr_storage a;
    const socklen_t length = toSockaddr(address, options_.replica_port, a);
    ::sendto(replica_fd_, records.data(), records.size(), 0, reinterpret_cast<const sockaddr*>(&a),
             length);
  }
}

void BfdService::run() {
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<double> jitter(0.0, 1.0);
  std::vector<uint8_t> buffer(65536);
  for (;;) {
    SteadyTime now = clock_.now();
    auto wait = std::chrono::milliseconds(100);
    {
      MutexLock lock(mu_);
      for (const auto& [host, p] : peers_) {
        auto next = p.session->nextEvent();
        if (next <= now) {
          wait = std::chrono::milliseconds(0);
        } else {
          wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(next - now));
        }
      }
    }
    pollfd fds[3] = {{fd_, POLLIN, 0}, {replica_fd_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    int n = ::poll(fds, 3, static_cast<int>(wait.count()));
    if (n < 0 && errno != EINTR) {
      spdlog::error("bfd: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[2].revents != 0) {
      uint64_t v;
      (void)!::read(stop_fd_, &v, sizeof v);  // a wake-up from setPeers(), or the end
      if (stopping_.load()) return;
    }
    bool changed = false;
    now = clock_.now();
    if (fds[0].revents != 0) {
      for (;;) {
        sockaddr_storage from{};
        iovec iov{buffer.data(), buffer.size()};
        alignas(cmsghdr) char control[64];
        msghdr m{};
        m.msg_name = &from;
        m.msg_namelen = sizeof from;
        m.msg_iov = &iov;
        m.msg_iovlen = 1;
        m.msg_control = control;
        m.msg_controllen = sizeof control;
        ssize_t got = ::recvmsg(fd_, &m, 0);
        if (got < 0) break;
        int ttl = -1;
        for (cmsghdr* c = CMSG_FIRSTHDR(&m); c != nullptr; c = CMSG_NXTHDR(&m, c)) {
          if ((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) ||
              (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_HOPLIMIT)) {
            std::memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
          }
        }
        MutexLock lock(mu_);
        if (ttl != kTtl) {
          ++refused_["ttl"];
          continue;
        }
        bfd::Parsed p =
            bfd::parse(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(got)));
        if (p.refusal != bfd::Refusal::None) {
          ++refused_[std::string(bfd::refusalName(p.refusal))];
          continue;
        }
        const IpAddress source = fromSockaddr(from);
        // By our discriminator it names; else (a peer still speaking of a
        // session this process does not have) by its address, so that the
        // state machines bring the two ends together again.
        Peer* peer = nullptr;
        for (auto& [host, candidate] : peers_) {
          if (p.packet.your_discriminator != 0 &&
              candidate.session->localDiscriminator() == p.packet.your_discriminator) {
            peer = &candidate;
          }
        }
        for (auto& [host, candidate] : peers_) {
          if (peer == nullptr && candidate.address == source) peer = &candidate;
        }
        if (peer == nullptr) {
          ++refused_["unknown_session"];
          continue;
        }
        bool was = peer->up();
        bfd::State before = peer->session->state();
        peer->session->receive(p.packet, now);
        peer->heard = true;
        changed = changed || was != peer->up();
        if (before != peer->session->state()) {
          spdlog::info("bfd: session with host {} ({}) {} -> {}", peer->host,
                       peer->address.toString(), bfd::stateName(before),
                       bfd::stateName(peer->session->state()));
        }
      }
    }
    if (fds[1].revents != 0) {
      for (;;) {
        sockaddr_storage from{};
        socklen_t len = sizeof from;
        ssize_t got = ::recvfrom(replica_fd_, buffer.data(), buffer.size(), 0,
                                 reinterpret_cast<sockaddr*>(&from), &len);
        if (got < 0) break;
        const IpAddress source = fromSockaddr(from);
        bool known = false;
        {
          MutexLock lock(mu_);
          for (const auto& [host, p] : peers_) known = known || p.address == source;
          if (!known) ++refused_["replica_unknown_peer"];
        }
        if (known && replica_) {
          replica_(std::span<const uint8_t>(buffer.data(), static_cast<size_t>(got)));
        }
      }
    }
    {
      MutexLock lock(mu_);
      bool state_changed = false;
      for (auto& [host, p] : peers_) {
        bool was = p.up();
        bfd::State before = p.session->state();
        while (auto out = p.session->transmit(now, jitter(rng))) {
          auto bytes = bfd::encode(*out);
          sockaddr_storage to;
          const socklen_t to_length = toSockaddr(p.address, options_.port, to);
          ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&to), to_length);
        }
        changed = changed || was != p.up();
        if (before != p.session->state()) {
          state_changed = true;
          spdlog::info("bfd: session with host {} ({}) {} -> {} ({})", host, p.address.toString(),
                       bfd::stateName(before), bfd::stateName(p.session->state()),
                       p.session->diagnostic() == bfd::Diagnostic::DetectionTimeExpired
                           ? "nothing heard"
                           : "signalled");
        }
      }
      updateConnected();
      if (changed || state_changed) save();
    }
    if (pending_change_.exchange(false)) changed = true;
    if (changed && changed_) changed_();
  }
}

Json BfdService::statusJson() const {
  MutexLock lock(mu_);
  Json sessions = Json::array();
  SteadyTime now = clock_.now();
  for (const auto& [host, p] : peers_) {
    const bfd::Session& s = *p.session;
    sessions.push_back(
        {{"host", host},
         {"address", p.address.toString()},
         {"state", bfd::stateName(s.state())},
         {"peer_state", bfd::stateName(s.remoteState())},
         {"for_ms", std::chrono::duration_cast<std::chrono::milliseconds>(now - s.since()).count()},
         {"detection_ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(s.detectionTime()).count()}});
  }
  Json refused = Json::object();
  for (const auto& [why, n] : refused_) refused[why] = n;
  return {{"sessions", sessions}, {"refused", refused}};
}

}  // namespace canopy::agent
