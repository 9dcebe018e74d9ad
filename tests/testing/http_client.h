#pragma once
// A blocking HTTP/1.1 client over one keep-alive connection (Boost.Beast),
// for tests and benchmarks that talk to a real canopy-server socket.

#include <utility>
// (Boost 1.74's asio needs <utility> first.)
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <map>
#include <string>

namespace canopy::testing {

struct ClientResponse {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
  bool keep_alive = false;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}

  ClientResponse request(const std::string& method, const std::string& target,
                         const std::string& body = {},
                         const std::map<std::string, std::string>& headers = {}) {
    namespace http = boost::beast::http;
    if (!stream_) connect();
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host_ + ":" + std::to_string(port_));
    for (auto& [k, v] : headers) req.set(k, v);
    if (!body.empty()) {
      req.set(http::field::content_type, "application/json");
      req.body() = body;
    }
    req.keep_alive(true);
    req.prepare_payload();
    http::write(*stream_, req);
    http::response<http::string_body> res;
    http::read(*stream_, buffer_, res);
    ClientResponse out;
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    out.keep_alive = res.keep_alive();
    for (auto& f : res) out.headers[std::string(f.name_string())] = std::string(f.value());
    if (!res.keep_alive()) stream_.reset();
    return out;
  }

  // Sends raw bytes and returns the raw reply (for malformed-request tests).
  std::string raw(const std::string& bytes) {
    connect();
    boost::asio::write(stream_->socket(), boost::asio::buffer(bytes));
    std::string out;
    boost::beast::error_code ec;
    char buf[4096];
    for (;;) {
      size_t n = stream_->socket().read_some(boost::asio::buffer(buf), ec);
      if (ec) break;
      out.append(buf, n);
      if (out.find("\r\n\r\n") != std::string::npos) break;
    }
    stream_.reset();
    return out;
  }

 private:
  void connect() {
    stream_ = std::make_unique<boost::beast::tcp_stream>(ioc_);
    stream_->connect(boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address(host_), port_));
  }

  std::string host_;
  uint16_t port_;
  boost::asio::io_context ioc_;
  std::unique_ptr<boost::beast::tcp_stream> stream_;
  boost::beast::flat_buffer buffer_;
};

}  // namespace canopy::testing
