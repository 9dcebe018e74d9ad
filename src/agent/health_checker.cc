#include "agent/health_checker.h"

#include <fcntl.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <charconv>
#include <map>
#include <thread>

#include "base/mutex.h"
#include "datapath/packet/checksum.h"

namespace canopy::agent {
namespace {

namespace asio = boost::asio;
using asio::ip::icmp;
using asio::ip::tcp;
using asio::ip::udp;
using datapath::topology::LbMonitorType;

asio::ip::address_v4 addressOf(datapath::packet::Ipv4Address a) {
  return asio::ip::address_v4(a.host());
}

// An HTTP status line's code ("HTTP/1.1 204 No Content"), or -1.
int statusOf(const std::string& line) {
  if (line.rfind("HTTP/", 0) != 0) return -1;
  auto space = line.find(' ');
  if (space == std::string::npos || space + 4 > line.size()) return -1;
  int code = 0;
  auto [end, ec] = std::from_chars(line.data() + space + 1, line.data() + space + 4, code);
  return ec == std::errc() && end == line.data() + space + 4 ? code : -1;
}

}  // namespace

bool expectedCode(const std::string& expected, int status) {
  size_t at = 0;
  while (at <= expected.size()) {
    size_t comma = expected.find(',', at);
    std::string item =
        expected.substr(at, comma == std::string::npos ? std::string::npos : comma - at);
    int low = 0, high = 0;
    auto dash = item.find('-');
    auto parse = [](const std::string& s, int& out) {
      auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
      return ec == std::errc() && end == s.data() + s.size() && !s.empty();
    };
    if (dash == std::string::npos) {
      if (parse(item, low) && low == status) return true;
    } else if (parse(item.substr(0, dash), low) && parse(item.substr(dash + 1), high) &&
               low <= status && status <= high) {
      return true;
    }
    if (comma == std::string::npos) break;
    at = comma + 1;
  }
  return false;
}

struct HealthChecker::Impl {
  // One member's checks: on the checker's thread only.
  struct Member {
    HealthCheck check;
    asio::steady_timer next;
    enum class State { Unknown, Up, Down } state = State::Unknown;
    uint32_t good = 0, bad = 0;
    bool stopped = false;
    uint16_t sequence = 0;

    Member(asio::io_context& io, HealthCheck c) : check(std::move(c)), next(io) {}
  };
  // One check in flight: ends once, by its answer or its deadline.
  struct Attempt {
    explicit Attempt(asio::io_context& io) : deadline(io) {}
    bool done = false;
    asio::steady_timer deadline;
    std::function<void()> cancel;
  };
  struct Status {
    bool up = false;
    bool known = false;
    uint32_t good = 0, bad = 0;
  };

  Impl(std::string path, Report r) : netns_path(std::move(path)), report(std::move(r)) {}

  void run() {
    int fd = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
      spdlog::warn("health checks: cannot enter {}: {}; members are not checked", netns_path,
                   std::strerror(errno));
      if (fd >= 0) ::close(fd);
      return;
    }
    ::close(fd);
    io.run();
  }

  void apply(std::vector<HealthCheck> checks) {
    std::map<std::string, HealthCheck> wanted;
    for (auto& c : checks) wanted.emplace(c.member_id, std::move(c));
    for (auto it = members.begin(); it != members.end();) {
      auto w = wanted.find(it->first);
      if (w != wanted.end() && w->second == it->second->check) {
        wanted.erase(w);
        ++it;
        continue;
      }
      it->second->stopped = true;
      it->second->next.cancel();
      {
        MutexLock lock(mu);
        status.erase(it->first);
      }
      it = members.erase(it);
    }
    for (auto& [id, c] : wanted) {
      auto m = std::make_shared<Member>(io, std::move(c));
      members.emplace(id, m);
      start(m);
    }
    MutexLock lock(mu);
    count = members.size();
  }

  void start(const std::shared_ptr<Member>& m) {
    if (m->stopped) return;
    auto a = std::make_shared<Attempt>(io);
    a->deadline.expires_after(std::chrono::seconds(m->check.monitor.timeout));
    const auto& c = m->check;
    switch (c.monitor.type) {
      case LbMonitorType::Tcp:
      case LbMonitorType::Http:
        connect(m, a);
        break;
      case LbMonitorType::UdpConnect:
        datagram(m, a);
        break;
      case LbMonitorType::Ping:
        echo(m, a);
        break;
    }
    // UDP-CONNECT: no refusal within the timeout is a good check.
    bool quiet_is_good = c.monitor.type == LbMonitorType::UdpConnect;
    a->deadline.async_wait([this, m, a, quiet_is_good](const boost::system::error_code& ec) {
      if (ec == asio::error::operation_aborted) return;
      finish(m, a, quiet_is_good);
    });
  }

  void finish(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a, bool good) {
    if (a->done) return;
    a->done = true;
    a->deadline.cancel();
    if (a->cancel) a->cancel();
    if (m->stopped) return;
    record(*m, good);
    m->next.expires_after(std::chrono::seconds(m->check.monitor.delay));
    m->next.async_wait([this, m](const boost::system::error_code& ec) {
      if (!ec) start(m);
    });
  }

  void record(Member& m, bool good) {
    using State = Member::State;
    const auto& monitor = m.check.monitor;
    std::optional<bool> changed;
    if (good) {
      ++m.good;
      m.bad = 0;
      if (m.state == State::Unknown || (m.state == State::Down && m.good >= monitor.max_retries)) {
        m.state = State::Up;
        changed = true;
      }
    } else {
      ++m.bad;
      m.good = 0;
      if (m.state != State::Down && m.bad >= monitor.max_retries_down) {
        m.state = State::Down;
        changed = false;
      }
    }
    {
      MutexLock lock(mu);
      status[m.check.member_id] = {m.state == State::Up, m.state != State::Unknown, m.good, m.bad};
    }
    if (changed) {
      spdlog::info("health checks: member {} is {}", m.check.member_id, *changed ? "up" : "down");
      report(m.check.member_id, *changed);
    }
  }

  // TCP, and HTTP over it.
  void connect(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a) {
    auto socket = std::make_shared<tcp::socket>(io);
    a->cancel = [socket] {
      boost::system::error_code ignored;
      socket->close(ignored);
    };
    tcp::endpoint to(addressOf(m->check.target), m->check.port);
    socket->async_connect(to, [this, m, a, socket](const boost::system::error_code& ec) {
      if (a->done) return;
      if (ec || m->check.monitor.type == LbMonitorType::Tcp) return finish(m, a, !ec);
      request(m, a, socket);
    });
  }

  void request(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a,
               const std::shared_ptr<tcp::socket>& socket) {
    const auto& monitor = m->check.monitor;
    auto text = std::make_shared<std::string>(
        monitor.http_method + " " + monitor.url_path +
        " HTTP/1.0\r\nHost: " + addressOf(m->check.target).to_string() +
        "\r\nUser-Agent: canopy-health-check\r\nConnection: close\r\n\r\n");
    asio::async_write(
        *socket, asio::buffer(*text),
        [this, m, a, socket, text](const boost::system::error_code& ec, size_t) {
          if (a->done) return;
          if (ec) return finish(m, a, false);
          auto buffer = std::make_shared<asio::streambuf>(4096);
          asio::async_read_until(
              *socket, *buffer, "\r\n",
              [this, m, a, buffer](const boost::system::error_code& e, size_t n) {
                if (a->done) return;
                if (e) return finish(m, a, false);
                std::string line(asio::buffers_begin(buffer->data()),
                                 asio::buffers_begin(buffer->data()) + static_cast<long>(n));
                finish(m, a, expectedCode(m->check.monitor.expected_codes, statusOf(line)));
              });
        });
  }

  // UDP-CONNECT: a datagram, and an ICMP port unreachable (ECONNREFUSED on
  // the connected socket) within the timeout means down.
  void datagram(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a) {
    auto socket = std::make_shared<udp::socket>(io);
    a->cancel = [socket] {
      boost::system::error_code ignored;
      socket->close(ignored);
    };
    boost::system::error_code ec;
    socket->open(udp::v4(), ec);
    if (!ec) socket->connect(udp::endpoint(addressOf(m->check.target), m->check.port), ec);
    static const std::string kProbe = "canopy health check\n";
    if (!ec) socket->send(asio::buffer(kProbe), 0, ec);
    if (ec) return finish(m, a, false);
    auto buffer = std::make_shared<std::array<char, 512>>();
    socket->async_receive(asio::buffer(*buffer),
                          [this, m, a, socket, buffer](const boost::system::error_code& e, size_t) {
                            if (a->done) return;
                            // An answer is good; a refusal is not.
                            finish(m, a, !e);
                          });
  }

  // PING: an ICMP echo on a raw socket; the reply from the member with our
  // identifier and sequence.
  void echo(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a) {
    auto socket = std::make_shared<icmp::socket>(io);
    a->cancel = [socket] {
      boost::system::error_code ignored;
      socket->close(ignored);
    };
    boost::system::error_code ec;
    socket->open(icmp::v4(), ec);
    if (ec) return finish(m, a, false);
    const uint16_t id = static_cast<uint16_t>(::getpid());
    const uint16_t seq = ++m->sequence;
    std::array<uint8_t, 16> request{8,
                                    0,
                                    0,
                                    0,
                                    static_cast<uint8_t>(id >> 8),
                                    static_cast<uint8_t>(id),
                                    static_cast<uint8_t>(seq >> 8),
                                    static_cast<uint8_t>(seq),
                                    'c',
                                    'a',
                                    'n',
                                    'o',
                                    'p',
                                    'y',
                                    0,
                                    0};
    uint16_t sum = datapath::packet::checksum(request);
    request[2] = static_cast<uint8_t>(sum >> 8);
    request[3] = static_cast<uint8_t>(sum);
    socket->send_to(asio::buffer(request), icmp::endpoint(addressOf(m->check.target), 0), 0, ec);
    if (ec) return finish(m, a, false);
    awaitEcho(m, a, socket, id, seq);
  }

  void awaitEcho(const std::shared_ptr<Member>& m, const std::shared_ptr<Attempt>& a,
                 const std::shared_ptr<icmp::socket>& socket, uint16_t id, uint16_t seq) {
    auto buffer = std::make_shared<std::array<uint8_t, 1500>>();
    auto from = std::make_shared<icmp::endpoint>();
    socket->async_receive_from(
        asio::buffer(*buffer), *from,
        [this, m, a, socket, buffer, from, id, seq](const boost::system::error_code& ec, size_t n) {
          if (a->done) return;
          if (ec) return finish(m, a, false);
          // The IPv4 header, then the ICMP echo reply.
          size_t ihl = n > 0 ? static_cast<size_t>((*buffer)[0] & 0x0f) * 4 : 0;
          const uint8_t* icmp_at = buffer->data() + ihl;
          bool ours = n >= ihl + 8 && from->address() == addressOf(m->check.target) &&
                      icmp_at[0] == 0 && (icmp_at[4] << 8 | icmp_at[5]) == id &&
                      (icmp_at[6] << 8 | icmp_at[7]) == seq;
          if (ours) return finish(m, a, true);
          awaitEcho(m, a, socket, id, seq);  // another's
        });
  }

  const std::string netns_path;
  const Report report;
  asio::io_context io;
  asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
  std::map<std::string, std::shared_ptr<Member>> members;  // the thread's
  mutable Mutex mu;
  std::map<std::string, Status> status CANOPY_GUARDED_BY(mu);
  size_t count CANOPY_GUARDED_BY(mu) = 0;
  std::thread thread;
};

HealthChecker::HealthChecker(std::string netns_path, Report report)
    : impl_(std::make_unique<Impl>(std::move(netns_path), std::move(report))) {
  impl_->thread = std::thread([this] { impl_->run(); });
}

HealthChecker::~HealthChecker() {
  impl_->work.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

void HealthChecker::setChecks(std::vector<HealthCheck> checks) {
  asio::post(impl_->io, [impl = impl_.get(), checks = std::move(checks)]() mutable {
    impl->apply(std::move(checks));
  });
}

model::Json HealthChecker::statusJson() const {
  MutexLock lock(impl_->mu);
  model::Json members = model::Json::object();
  for (const auto& [id, s] : impl_->status) {
    members[id] = {{"up", s.known ? model::Json(s.up) : model::Json(nullptr)},
                   {"good", s.good},
                   {"bad", s.bad}};
  }
  return {{"checks", impl_->count}, {"members", members}};
}

}  // namespace canopy::agent
