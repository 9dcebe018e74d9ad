#include "agent/link_watcher.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <span>

namespace canopy::agent {
namespace {

size_t align4(size_t n) { return (n + 3) & ~size_t{3}; }

// The next link message's interface name in `rest` (which moves past it);
// false when no message is left. Messages of other types, or without a
// name, give "".
bool linkName(std::span<const char>& rest, std::string& name) {
  nlmsghdr h;
  if (rest.size() < sizeof(h)) return false;
  std::memcpy(&h, rest.data(), sizeof(h));
  if (h.nlmsg_len < sizeof(h) || h.nlmsg_len > rest.size()) return false;
  auto message = rest.first(h.nlmsg_len);
  rest = rest.subspan(std::min(rest.size(), align4(h.nlmsg_len)));
  name.clear();
  size_t at = align4(sizeof(nlmsghdr)) + align4(sizeof(ifinfomsg));
  if ((h.nlmsg_type != RTM_NEWLINK && h.nlmsg_type != RTM_DELLINK) || message.size() < at) {
    return true;
  }
  while (at + sizeof(rtattr) <= message.size()) {
    rtattr a;
    std::memcpy(&a, message.data() + at, sizeof(a));
    if (a.rta_len < sizeof(a) || at + a.rta_len > message.size()) break;
    if (a.rta_type == IFLA_IFNAME) {
      const char* text = message.data() + at + sizeof(a);
      name.assign(text, strnlen(text, a.rta_len - sizeof(a)));
      break;
    }
    at += align4(a.rta_len);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<LinkWatcher>> LinkWatcher::start(Callback callback) {
  int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
  if (fd < 0) {
    return Error(Errc::Unavailable, std::string("netlink socket: ") + std::strerror(errno));
  }
  sockaddr_nl address{};
  address.nl_family = AF_NETLINK;
  address.nl_groups = RTMGRP_LINK;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    Error e(Errc::Unavailable, std::string("netlink bind: ") + std::strerror(errno));
    ::close(fd);
    return e;
  }
  int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) {
    Error e(Errc::Unavailable, std::string("eventfd: ") + std::strerror(errno));
    ::close(fd);
    return e;
  }
  std::unique_ptr<LinkWatcher> w(new LinkWatcher(fd, stop_fd, std::move(callback)));
  w->thread_ = std::thread([self = w.get()] { self->run(); });
  return w;
}

LinkWatcher::LinkWatcher(int fd, int stop_fd, Callback callback)
    : fd_(fd), stop_fd_(stop_fd), callback_(std::move(callback)) {}

LinkWatcher::~LinkWatcher() {
  uint64_t one = 1;
  if (::write(stop_fd_, &one, sizeof(one)) < 0) spdlog::warn("link watcher: cannot stop");
  if (thread_.joinable()) thread_.join();
  ::close(fd_);
  ::close(stop_fd_);
}

void LinkWatcher::run() {
  std::array<char, 16384> buffer;
  for (;;) {
    pollfd fds[2] = {{.fd = fd_, .events = POLLIN, .revents = 0},
                     {.fd = stop_fd_, .events = POLLIN, .revents = 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::warn("link watcher: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[1].revents != 0) return;
    for (;;) {
      ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), 0);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        if (errno == ENOBUFS) {
          callback_("");  // messages were lost: anything may have changed
          continue;
        }
        if (errno == EINTR) continue;
        spdlog::warn("link watcher: recv: {}", std::strerror(errno));
        return;
      }
      std::string name;
      for (std::span<const char> rest(buffer.data(), static_cast<size_t>(n));
           linkName(rest, name);) {
        if (!name.empty()) callback_(name);
      }
    }
  }
}

}  // namespace canopy::agent
