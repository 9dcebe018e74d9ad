#include "http/client.h"

#include <utility>
// (Boost 1.74's asio needs <utility> first.)
#include <strings.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <charconv>

namespace canopy::http {

namespace beast = boost::beast;
namespace http = beast::http;
using boost::asio::ip::tcp;

Result<HttpUrl> HttpUrl::parse(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error(Errc::InvalidArgument, "bad URL '" + std::string(text) + "': " + std::string(why));
  };
  constexpr std::string_view kScheme = "http://";
  if (text.starts_with("https://")) return bad("https is not supported; use http");
  if (!text.starts_with(kScheme)) return bad("expected http://HOST[:PORT][/PATH]");
  std::string_view rest = text.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  HttpUrl url;
  if (slash != std::string_view::npos) url.path = std::string(rest.substr(slash));
  while (!url.path.empty() && url.path.back() == '/') url.path.pop_back();
  size_t colon = authority.rfind(':');
  if (colon != std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || end != port.data() + port.size() || value == 0 || value > 65535) {
      return bad("bad port");
    }
    url.port = static_cast<uint16_t>(value);
    authority = authority.substr(0, colon);
  }
  if (authority.empty()) return bad("no host");
  url.host = std::string(authority);
  return url;
}

std::string HttpUrl::toString() const {
  return "http://" + host + ":" + std::to_string(port) + path;
}

std::string HttpReply::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k.size() == name.size() && strncasecmp(k.data(), name.data(), k.size()) == 0) return v;
  }
  return {};
}

Result<HttpReply> httpRequest(const HttpUrl& url, const std::string& method,
                              const std::string& target, const std::string& body,
                              const std::vector<std::pair<std::string, std::string>>& headers,
                              std::chrono::milliseconds timeout) {
  auto unavailable = [&](const beast::error_code& ec) {
    return Error(Errc::Unavailable, method + " " + url.host + ":" + std::to_string(url.port) +
                                        target + ": " + ec.message());
  };
  boost::asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::tcp_stream stream(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(url.host, std::to_string(url.port), ec);
  if (ec) return unavailable(ec);
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, url.host + ":" + std::to_string(url.port));
  req.set(http::field::user_agent, "canopy-server");
  req.set(http::field::accept, "application/json");
  for (const auto& [k, v] : headers) req.set(k, v);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  http::response<http::string_body> res;
  beast::flat_buffer buffer;
  // Blocking calls on a tcp_stream ignore its timer; the exchange runs
  // asynchronously so that the deadline holds.
  stream.expires_after(timeout);
  stream.async_connect(endpoints, [&](beast::error_code c, const tcp::endpoint&) {
    if (c) {
      ec = c;
      return;
    }
    http::async_write(stream, req, [&](beast::error_code w, size_t) {
      if (w) {
        ec = w;
        return;
      }
      http::async_read(stream, buffer, res, [&](beast::error_code r, size_t) { ec = r; });
    });
  });
  ioc.run();
  if (ec) return unavailable(ec);
  HttpReply out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  for (const auto& f : res) {
    out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  }
  return out;
}

}  // namespace canopy::http
