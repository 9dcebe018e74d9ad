// Boost 1.74's awaitable.hpp uses std::exchange without including <utility>.
#include <utility>
// clang-format off
#include "http/server.h"
// clang-format on

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <exception>
#include <thread>

namespace canopy::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

HttpResponse plainError(int status, std::string message) {
  HttpResponse r;
  r.status = status;
  r.content_type = "text/plain";
  r.body = std::move(message) + "\n";
  return r;
}

// How long a client that sent too much gets to finish sending before the
// connection is closed under it.
constexpr auto kDrainTime = std::chrono::seconds(10);

class BeastServer final : public HttpServer {
 public:
  BeastServer(const HttpServerOptions& options, HttpHandler handler)
      : options_(options), handler_(std::move(handler)), ioc_(options.threads), acceptor_(ioc_) {}

  ~BeastServer() override { stop(); }

  Result<void> bind() {
    beast::error_code ec;
    if (options_.listen_fd >= 0) {
      acceptor_.assign(tcp::v4(), options_.listen_fd, ec);
      if (ec) {
        ::close(options_.listen_fd);
        return Error(Errc::Unavailable, "cannot serve the socket given: " + ec.message());
      }
      port_ = acceptor_.local_endpoint().port();
      return ok();
    }
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
      bool drain = false;  // what the client still sends is read and dropped
      unsigned version = 11;
      if (ec == http::error::body_limit) {
        out = error(
            413, "Request body larger than " + std::to_string(options_.max_body_bytes) + " bytes");
        drain = true;
      } else if (ec) {
        out = error(400, "Malformed HTTP request: " + ec.message());
        drain = true;
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
      if (!ec && drain) {
        // The answer is out; the request's rest is read and dropped until the
        // client closes, so that closing does not reset the connection
        // (losing the answer) while the client is still sending.
        stream.socket().shutdown(tcp::socket::shutdown_send, ec);
        co_await drainRequest(stream, buffer.size());
        co_return;
      }
      if (ec || !keep_alive) break;
    }
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  asio::awaitable<void> drainRequest(beast::tcp_stream& stream, size_t already) {
    std::array<char, 16384> sink;
    size_t drained = already;
    stream.expires_after(kDrainTime);
    while (drained < options_.max_drain_bytes) {
      beast::error_code ec;
      size_t n = co_await stream.async_read_some(asio::buffer(sink),
                                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) break;  // the client closed, or the time is up
      drained += n;
    }
  }

  HttpResponse error(int status, std::string message) const {
    if (options_.error_response) return options_.error_response(status, std::move(message));
    return plainError(status, std::move(message));
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
    return error(500, "Request Failed: internal server error while processing your request.");
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

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpServerOptions& options,
                                                      HttpHandler handler) {
  auto server = std::make_unique<BeastServer>(options, std::move(handler));
  if (auto r = server->bind(); !r) return std::move(r).error();
  server->run();
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace canopy::http
