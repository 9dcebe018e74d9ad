#include "http/server.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "testing/http_client.h"

namespace canopy::http {
namespace {

using canopy::testing::HttpClient;

struct EchoServer {
  std::atomic<int> calls{0};
  std::unique_ptr<HttpServer> server;

  explicit EchoServer(size_t max_body = 1 << 20, HttpErrorFormatter errors = {}) {
    auto s = HttpServer::start({.address = "127.0.0.1",
                                .port = 0,
                                .threads = 2,
                                .max_body_bytes = max_body,
                                .error_response = std::move(errors)},
                               [this](const HttpRequest& r) {
                                 calls.fetch_add(1);
                                 if (r.path == "/throw") throw std::runtime_error("boom");
                                 std::string q;
                                 for (auto& [k, v] : r.query) q += k + "=" + v + ";";
                                 return HttpResponse{.status = 200,
                                                     .body = r.method + " " + r.path + " " + q +
                                                             " " + std::string(r.header("x-test")) +
                                                             " " + r.body};
                               });
    EXPECT_TRUE(s) << s.error().toString();
    server = std::move(*s);
  }
};

TEST(HttpServer, ServesManyRequestsOnOneKeepAliveConnection) {
  EchoServer echo;
  HttpClient client("127.0.0.1", echo.server->port());
  for (int i = 0; i < 20; ++i) {
    auto r = client.request("POST", "/a%20b?x=1&y=h%C3%A9&x=2", "body" + std::to_string(i),
                            {{"X-Test", "hdr"}});
    ASSERT_EQ(r.status, 200);
    EXPECT_TRUE(r.keep_alive);
    EXPECT_EQ(r.body, "POST /a b x=1;y=h\xC3\xA9;x=2; hdr body" + std::to_string(i));
  }
  EXPECT_EQ(echo.calls.load(), 20);
}

TEST(HttpServer, ServesConcurrentClients) {
  EchoServer echo;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      HttpClient client("127.0.0.1", echo.server->port());
      for (int i = 0; i < 25; ++i) {
        if (client.request("GET", "/x").status == 200) ok.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 200);
}

TEST(HttpServer, OversizedBodyGets413) {
  EchoServer echo(/*max_body=*/100);
  HttpClient client("127.0.0.1", echo.server->port());
  auto r = client.request("POST", "/x", std::string(1000, 'a'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(echo.calls.load(), 0);
}

// A client that sends a body far over the limit, all of it before reading
// (as most do), gets the answer, in the owner's error format, instead of a
// connection reset under its write.
TEST(HttpServer, AHugeBodyIsReadAndAnsweredInTheOwnersFormat) {
  EchoServer echo(/*max_body=*/1 << 20, [](int status, std::string message) {
    return HttpResponse{.status = status, .body = "{\"error\": \"" + message + "\"}"};
  });
  HttpClient client("127.0.0.1", echo.server->port());
  auto r = client.request("POST", "/x", std::string(10 << 20, 'a'));
  EXPECT_EQ(r.status, 413);
  EXPECT_EQ(r.headers["Content-Type"], "application/json");
  EXPECT_EQ(r.body, "{\"error\": \"Request body larger than 1048576 bytes\"}");
  EXPECT_FALSE(r.keep_alive);
  EXPECT_EQ(echo.calls.load(), 0);
  // The server serves the next connection as ever.
  EXPECT_EQ(HttpClient("127.0.0.1", echo.server->port()).request("GET", "/y").status, 200);
}

TEST(HttpServer, MalformedRequestGets400AndHandlerExceptionGets500) {
  EchoServer echo;
  HttpClient client("127.0.0.1", echo.server->port());
  std::string reply = client.raw("NOT HTTP AT ALL\r\n\r\n");
  EXPECT_NE(reply.find("400"), std::string::npos) << reply;
  auto r = client.request("GET", "/throw");
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(client.request("GET", "/fine").status, 200);  // the server lives on
}

TEST(HttpServer, BusyPortIsAClearError) {
  EchoServer echo;
  auto second = HttpServer::start({.address = "127.0.0.1", .port = echo.server->port()},
                                  [](const HttpRequest&) { return HttpResponse{}; });
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code(), Errc::Unavailable);
  EXPECT_NE(second.error().message().find("cannot listen on 127.0.0.1:"), std::string::npos);
}

TEST(UrlDecode, HandlesPercentPlusAndBrokenEscapes) {
  EXPECT_EQ(urlDecode("a%2Fb+c", true), "a/b c");
  EXPECT_EQ(urlDecode("a+b", false), "a+b");
  EXPECT_EQ(urlDecode("100%", true), "100%");
  EXPECT_EQ(urlDecode("%zz%4", true), "%zz%4");
  EXPECT_EQ(urlEncode("a b/é~"), "a%20b%2F%C3%A9~");
  EXPECT_EQ(urlDecode(urlEncode("x=1&y"), true), "x=1&y");
  auto q = parseQuery("a=1&&b&c=%3D");
  ASSERT_EQ(q.size(), 3u);
  EXPECT_EQ(q[1], (std::pair<std::string, std::string>{"b", ""}));
  EXPECT_EQ(q[2].second, "=");
}

}  // namespace
}  // namespace canopy::http
