#include "agent/local_api.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace canopy::agent {
namespace {

constexpr size_t kMaxRequest = 64 * 1024;

Result<sockaddr_un> address(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof(a.sun_path)) {
    return Error(Errc::InvalidArgument, "socket path too long: " + path);
  }
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}

// Reads up to a newline (or EOF), at most kMaxRequest bytes, within 2 s.
Result<std::string> readLine(int fd) {
  std::string line;
  char buf[4096];
  while (line.find('\n') == std::string::npos) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 2000) <= 0) return Error(Errc::Unavailable, "timed out");
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) return Error(Errc::Unavailable, std::strerror(errno));
    if (n == 0) break;
    line.append(buf, static_cast<size_t>(n));
    if (line.size() > kMaxRequest) return Error(Errc::InvalidArgument, "request too long");
  }
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  return line;
}

bool writeAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

Result<std::unique_ptr<LocalApi>> LocalApi::start(const std::string& path, Handler handler) {
  auto a = address(path);
  if (!a) return std::move(a).error();
  std::unique_ptr<LocalApi> api(new LocalApi(path, std::move(handler)));
  api->fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (api->fd_ < 0) return Error(Errc::Internal, std::string("socket: ") + std::strerror(errno));
  ::unlink(path.c_str());  // a stale socket of an earlier run
  if (::bind(api->fd_, reinterpret_cast<const sockaddr*>(&*a), sizeof(*a)) != 0 ||
      ::listen(api->fd_, 16) != 0) {
    return Error(Errc::Unavailable, "local API on " + path + ": " + std::strerror(errno));
  }
  ::chmod(path.c_str(), 0600);
  LocalApi* self = api.get();
  api->thread_ = std::thread([self] { self->serve(); });
  return api;
}

LocalApi::~LocalApi() { stop(); }

void LocalApi::stop() {
  if (stopping_.exchange(true)) return;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
  ::unlink(path_.c_str());
}

void LocalApi::serve() {
  while (!stopping_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    model::Json reply;
    auto line = readLine(c);
    if (!line) {
      reply = {{"ok", false}, {"error", line.error().message()}};
    } else if (auto request = model::parseJson(*line); !request || !request->is_object()) {
      reply = {{"ok", false}, {"error", "the request is not a JSON object"}};
    } else {
      reply = handler_(*request);
    }
    writeAll(c, reply.dump() + "\n");
    ::close(c);
  }
}

Result<model::Json> callLocalApi(const std::string& path, const model::Json& request) {
  auto a = address(path);
  if (!a) return std::move(a).error();
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(Errc::Internal, std::string("socket: ") + std::strerror(errno));
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&*a), sizeof(*a)) != 0) {
    std::string why = std::strerror(errno);
    ::close(fd);
    return Error(Errc::Unavailable, "no agent on " + path + ": " + why);
  }
  bool sent = writeAll(fd, request.dump() + "\n");
  auto line = sent ? readLine(fd) : Result<std::string>(Error(Errc::Unavailable, "write failed"));
  ::close(fd);
  if (!line) return std::move(line).error();
  return model::parseJson(*line);
}

}  // namespace canopy::agent
