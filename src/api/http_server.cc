// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format off
#include "api/http_server.h"
// clang-format on

#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <cctype>
#include <exception>
#include <thread>

namespace canopy::api {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

HttpResponse plainError(int status, std::string message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(message) + "\n";
  return r;
}

class BeastServer final : public HttpServer {
 public:
  BeastServer(const HttpServerOptions& options, HttpHandler handler)
      : options_(options), handler_(std::move(handler)), ioc_(options.threads), acceptor_(ioc_) {}

  ~BeastServer() override { stop(); }

  Result<void> bind() {
    beast::error_code ec;
    auto address = asio::ip::make_address(options_.address, ec);
    if (ec) {
      return Error(Errc::InvalidArgument,
                   "invalid listen address '" + options_.address + "': " + ec.message());
    }
    tcp::endpoint endpoint(address, options_.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Error(Errc::Unavailable, "cannot listen on " + options_.address + ":" +
                                          std::to_string(options_.port) + ": " + ec.message());
    }
    port_ = acceptor_.local_endpoint().port();
    return ok();
  }

  void run() {
    asio::co_spawn(ioc_, accept(), asio::detached);
    for (int i = 0; i < std::max(1, options_.threads); ++i) {
      threads_.emplace_back([this] { ioc_.run(); });
    }
  }

  uint16_t port() const override { return port_; }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    ioc_.stop();
    for (auto& t : threads_) t.join();
    threads_.clear();
  }

 private:
  asio::awaitable<void> accept() {
    for (;;) {
      beast::error_code ec;
      tcp::socket socket =
          co_await acceptor_.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (ec == asio::error::operation_aborted) co_return;
        spdlog::warn("http: accept failed: {}", ec.message());
        continue;
      }
      asio::co_spawn(acceptor_.get_executor(), session(std::move(socket)), asio::detached);
    }
  }

  asio::awaitable<void> session(tcp::socket socket) {
    beast::error_code ec;
    std::string remote;
    {
      auto ep = socket.remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string() + ":" + std::to_string(ep.port());
    }
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
      http::request_parser<http::string_body> parser;
      parser.body_limit(options_.max_body_bytes);
      parser.header_limit(64 * 1024);
      stream.expires_after(std::chrono::seconds(options_.idle_timeout_seconds));
      co_await http::async_read(stream, buffer, parser,
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec == http::error::end_of_stream || ec == asio::error::operation_aborted ||
          ec == beast::error::timeout || ec == asio::error::connection_reset ||
          ec == asio::error::eof) {
        break;
      }
      HttpResponse out;
      bool keep_alive = false;
      unsigned version = 11;
      if (ec == http::error::body_limit) {
        out = plainError(
            413, "request body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
      } else if (ec) {
        out = plainError(400, "malformed HTTP request: " + ec.message());
      } else {
        auto& req = parser.get();
        keep_alive = req.keep_alive();
        version = req.version();
        out = dispatch(req, remote);
      }
      http::response<http::string_body> res{static_cast<http::status>(out.status), version};
      res.set(http::field::server, "canopy");
      res.set(http::field::content_type, out.content_type);
      for (auto& [name, value] : out.headers) res.set(name, value);
      res.body() = std::move(out.body);
      res.keep_alive(keep_alive);
      res.prepare_payload();
      co_await http::async_write(stream, res, asio::redirect_error(asio::use_awaitable, ec));
      if (ec || !keep_alive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  HttpResponse dispatch(http::request<http::string_body>& req, const std::string& remote) {
    HttpRequest in;
    in.method = std::string(req.method_string());
    std::string_view target(req.target().data(), req.target().size());
    auto q = target.find('?');
    in.path = urlDecode(target.substr(0, q), false);
    if (q != std::string_view::npos) in.query = parseQuery(target.substr(q + 1));
    for (auto& field : req) {
      std::string name(field.name_string());
      for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      in.headers[std::move(name)] = std::string(field.value());
    }
    in.body = std::move(req.body());
    in.remote = remote;
    try {
      return handler_(in);
    } catch (const std::exception& e) {
      spdlog::error("http: handler threw on {} {}: {}", in.method, in.path, e.what());
    } catch (...) {
      spdlog::error("http: handler threw on {} {}", in.method, in.path);
    }
    return plainError(500, "internal error");
  }

  HttpServerOptions options_;
  HttpHandler handler_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  std::vector<std::thread> threads_;
  uint16_t port_ = 0;
  bool stopped_ = false;
};

}  // namespace

std::string_view HttpRequest::header(std::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? std::string_view() : std::string_view(it->second);
}

std::string urlDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      int hi = hexValue(text[i + 1]);
      int lo = hexValue(text[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::string urlEncode(std::string_view text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 15]);
    }
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> parseQuery(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    auto amp = query.find('&');
    std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    std::string key = urlDecode(part.substr(0, eq), true);
    std::string value = eq == std::string_view::npos ? "" : urlDecode(part.substr(eq + 1), true);
    out.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      HttpHandler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  if (auto r = server->bind(); !r) return std::move(r).error();
  server->run();
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace canopy::api
