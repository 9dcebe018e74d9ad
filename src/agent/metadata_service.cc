#include "agent/metadata_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

#include "http/client.h"
#include "http/server.h"

namespace canopy::agent {
namespace {

using datapath::simulator::kMetadataAddress;
using datapath::simulator::kMetadataMac;
using http::HttpRequest;
using http::HttpResponse;
namespace pb = southbound::v1;

HttpResponse text(int status, std::string body) {
  return {.status = status, .body = std::move(body), .content_type = "text/plain"};
}

// "10.a.b.c:port" -> the peer it names.
std::optional<datapath::simulator::MetadataPeer> peerOf(std::string_view remote) {
  auto colon = remote.rfind(':');
  std::string host(remote.substr(0, colon));
  in_addr a{};
  if (::inet_pton(AF_INET, host.c_str(), &a) != 1) return std::nullopt;
  return datapath::simulator::metadataPeerOf(
      datapath::packet::Ipv4Address{datapath::packet::Be32::of(ntohl(a.s_addr))});
}

std::optional<std::string> decodeBase64(const std::string& text) {
  std::string out(text.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return std::nullopt;
  // EVP_DecodeBlock counts the padding's bytes too.
  size_t padding = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++padding;
  out.resize(static_cast<size_t>(n) - std::min(padding, static_cast<size_t>(n)));
  return out;
}

std::string errnoText(const std::string& what) { return what + ": " + std::strerror(errno); }

}  // namespace

MetadataHandler::MetadataHandler(const Clock& clock, MetadataOptions options, Resolve resolve,
                                 Fetch fetch)
    : clock_(clock),
      options_(std::move(options)),
      resolve_(std::move(resolve)),
      fetch_(std::move(fetch)) {}

bool MetadataHandler::admit(const std::string& port_id) {
  MutexLock lock(mu_);
  auto now = clock_.now();
  auto [it, fresh] = buckets_.try_emplace(port_id, Bucket{options_.burst, now});
  Bucket& b = it->second;
  if (!fresh) {
    double seconds = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(options_.burst, b.tokens + seconds * options_.rate);
    b.at = now;
  }
  if (b.tokens < 1) {
    ++stats_.limited;
    return false;
  }
  b.tokens -= 1;
  // Buckets of ports long quiet are full again: forgotten.
  if (buckets_.size() > 4096) {
    std::erase_if(buckets_, [&](const auto& e) {
      return now - e.second.at > std::chrono::duration<double>(options_.burst / options_.rate);
    });
  }
  return true;
}

Result<pb::Instance> MetadataHandler::instance(const std::string& port_id) {
  auto now = clock_.now();
  {
    MutexLock lock(mu_);
    if (auto it = cache_.find(port_id);
        it != cache_.end() && now - it->second.at < options_.cache_for) {
      return it->second.instance;
    }
  }
  auto fetched = fetch_(port_id);
  if (!fetched) return std::move(fetched).error();
  MutexLock lock(mu_);
  if (cache_.size() > 4096) {
    std::erase_if(cache_, [&](const auto& e) { return now - e.second.at >= options_.cache_for; });
  }
  cache_[port_id] = Cached{*fetched, now};
  return *fetched;
}

HttpResponse MetadataHandler::handle(const HttpRequest& request) {
  {
    MutexLock lock(mu_);
    ++stats_.requests;
  }
  auto peer = peerOf(request.remote);
  std::optional<MetadataRequester> who;
  if (peer) who = resolve_(*peer);
  if (!who) {
    MutexLock lock(mu_);
    ++stats_.unknown;
    return text(404, "Not Found");
  }
  if (!admit(who->port_id)) {
    return {.status = 429,
            .body = "Too Many Requests",
            .content_type = "text/plain",
            .headers = {{"Retry-After", "1"}}};
  }
  auto inst = instance(who->port_id);
  if (!inst) {
    spdlog::warn("agent: metadata for port {}: {}", who->port_id, inst.error().message());
    MutexLock lock(mu_);
    ++stats_.failed;
    return text(inst.error().code() == Errc::NotFound ? 404 : 503,
                inst.error().code() == Errc::NotFound ? "Not Found" : "Service Unavailable");
  }
  if (!options_.nova_url.empty()) return proxy(request, *who, *inst);

  if (request.method != "GET" && request.method != "HEAD") {
    return {.status = 405,
            .body = "Method Not Allowed",
            .content_type = "text/plain",
            .headers = {{"Allow", "GET, HEAD"}}};
  }
  InstanceMetadata m;
  m.instance_id = inst->instance_id();
  m.project_id = inst->project_id();
  m.name = inst->name();
  m.hostname = inst->hostname();
  m.local_ipv4 = who->address;
  m.public_ipv4 = inst->public_ipv4();
  m.availability_zone = options_.availability_zone;
  for (const auto& k : inst->public_keys()) m.public_keys.emplace_back(k.name(), k.key());
  if (inst->has_user_data()) m.user_data = decodeBase64(inst->user_data());
  auto answer = metadataAnswer(m, request.path);
  if (!answer) return text(404, "Not Found");
  MutexLock lock(mu_);
  ++stats_.answered;
  return {.status = 200, .body = std::move(answer->body), .content_type = answer->content_type};
}

HttpResponse MetadataHandler::proxy(const HttpRequest& request, const MetadataRequester& who,
                                    const pb::Instance& inst) {
  if (inst.instance_id().empty()) return text(404, "Not Found");  // no Nova instance
  auto url = http::HttpUrl::parse(options_.nova_url);
  if (!url) return text(500, "Internal Server Error");
  std::string target = url->path + request.path;
  if (!request.query.empty()) {
    std::string q;
    for (const auto& [k, v] : request.query) {
      q += (q.empty() ? "?" : "&") + http::urlEncode(k) + "=" + http::urlEncode(v);
    }
    target += q;
  }
  // Only what the agent vouches for: nothing the VM sent says who it is.
  std::vector<std::pair<std::string, std::string>> headers = {
      {"X-Forwarded-For", who.address},
      {"X-Instance-ID", inst.instance_id()},
      {"X-Tenant-ID", inst.project_id()},
      {"X-Instance-ID-Signature", instanceSignature(options_.shared_secret, inst.instance_id())},
  };
  if (auto ct = request.header("content-type"); !ct.empty()) {
    headers.emplace_back("Content-Type", std::string(ct));
  }
  auto reply =
      http::httpRequest(*url, request.method, target, request.body, headers, options_.nova_timeout);
  MutexLock lock(mu_);
  if (!reply) {
    ++stats_.failed;
    spdlog::warn("agent: metadata: Nova at {}: {}", url->toString(), reply.error().message());
    return text(500, "An unknown error has occurred. Please try your request again.");
  }
  ++stats_.proxied;
  if (reply->status >= 200 && reply->status < 300) ++stats_.answered;
  std::string type = reply->header("content-type");
  return {.status = reply->status,
          .body = std::move(reply->body),
          .content_type = type.empty() ? "text/plain" : type};
}

MetadataHandler::Stats MetadataHandler::stats() const {
  MutexLock lock(mu_);
  return stats_;
}

model::Json MetadataHandler::statusJson() const {
  Stats s = stats();
  return {{"mode", options_.nova_url.empty() ? "standalone" : "nova"},
          {"requests", s.requests},
          {"answered", s.answered},
          {"proxied", s.proxied},
          {"rate_limited", s.limited},
          {"unknown_peer", s.unknown},
          {"failed", s.failed}};
}

Result<std::unique_ptr<MetadataService>> MetadataService::start(const MetadataOptions& options,
                                                                MetadataHandler& handler) {
  // A namespace of the agent's own, made by a thread that then leaves: it
  // lives while the agent holds it (the listening socket, the tap, the
  // file), and goes with the agent, however that ends.
  int netns = -1;
  int listener = -1;
  std::string failed;
  std::thread([&] {
    if (::unshare(CLONE_NEWNET) != 0) {
      failed = errnoText("a network namespace for the metadata service");
      return;
    }
    netns = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (netns < 0) {
      failed = errnoText("/proc/thread-self/ns/net");
      return;
    }
    listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(datapath::simulator::kMetadataPort);
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (listener < 0 || ::setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        ::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listener, 1024) != 0) {
      failed = errnoText("the metadata service's socket");
    }
  }).join();
  if (!failed.empty()) {
    if (listener >= 0) ::close(listener);
    if (netns >= 0) ::close(netns);
    return Error(Errc::Unavailable, failed);
  }
  std::unique_ptr<MetadataService> service(new MetadataService(options, netns));
  http::HttpServerOptions o;
  o.listen_fd = listener;
  o.threads = 4;  // a request waits on the server or Nova
  o.max_body_bytes = 256 << 10;
  o.max_drain_bytes = 1 << 20;
  o.idle_timeout_seconds = 20;
  auto server =
      http::HttpServer::start(o, [&handler](const HttpRequest& r) { return handler.handle(r); });
  if (!server) return std::move(server).error();
  service->server_ = std::move(*server);
  return service;
}

MetadataService::~MetadataService() {
  if (server_) server_->stop();
  if (netns_fd_ >= 0) ::close(netns_fd_);
}

std::string MetadataService::netnsPath() const {
  return "/proc/" + std::to_string(::getpid()) + "/fd/" + std::to_string(netns_fd_);
}

Result<void> MetadataService::configureInterface() {
  std::string failed;
  const std::string& name = options_.interface;
  std::thread([&] {
    if (::setns(netns_fd_, CLONE_NEWNET) != 0) {
      failed = errnoText("entering the metadata namespace");
      return;
    }
    int s = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
      failed = errnoText("socket");
      return;
    }
    auto request = [&](unsigned long op, ifreq& ifr, const char* what) {
      std::memcpy(ifr.ifr_name, name.data(), std::min(name.size(), size_t{IFNAMSIZ - 1}));
      if (failed.empty() && ::ioctl(s, op, &ifr) != 0) failed = errnoText(name + ": " + what);
    };
    auto address = [](ifreq& ifr, uint32_t a) {
      sockaddr_in in{};
      in.sin_family = AF_INET;
      in.sin_addr.s_addr = htonl(a);
      std::memcpy(&ifr.ifr_addr, &in, sizeof(in));
    };
    // Nothing of IPv6 on it (no router solicitations into the datapath).
    int f =
        ::open(("/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6").c_str(), O_WRONLY | O_CLOEXEC);
    if (f >= 0) {
      (void)!::write(f, "1", 1);
      ::close(f);
    }
    ifreq mac{};
    mac.ifr_hwaddr.sa_family = 1;  // ARPHRD_ETHER
    std::memcpy(mac.ifr_hwaddr.sa_data, kMetadataMac.bytes.data(), 6);
    request(SIOCSIFHWADDR, mac, "MAC");
    ifreq addr{};
    address(addr, kMetadataAddress.host());
    request(SIOCSIFADDR, addr, "address");
    ifreq mask{};
    address(mask, 0xffffffff);
    request(SIOCSIFNETMASK, mask, "netmask");
    ifreq flags{};
    request(SIOCGIFFLAGS, flags, "flags");
    flags.ifr_flags = static_cast<short>(flags.ifr_flags | IFF_UP | IFF_NOARP);
    request(SIOCSIFFLAGS, flags, "up");
    if (failed.empty()) {
      // The peers' addresses (10.0.0.0/8) are on the tap.
      rtentry route{};
      sockaddr_in dst{}, gen{};
      dst.sin_family = gen.sin_family = AF_INET;
      dst.sin_addr.s_addr = htonl(10u << 24);
      gen.sin_addr.s_addr = htonl(0xff000000);
      std::memcpy(&route.rt_dst, &dst, sizeof(dst));
      std::memcpy(&route.rt_genmask, &gen, sizeof(gen));
      route.rt_flags = RTF_UP;
      std::string dev = name;
      route.rt_dev = dev.data();
      if (::ioctl(s, SIOCADDRT, &route) != 0 && errno != EEXIST) {
        failed = errnoText(name + ": route to 10.0.0.0/8");
      }
    }
    ::close(s);
  }).join();
  if (!failed.empty()) return Error(Errc::Unavailable, failed);
  return ok();
}

}  // namespace canopy::agent
