#pragma once
// Test doubles for the client: a transport whose answers a test scripts
// (and which records every request), and golden files.

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "cli/client.h"
#include "testing/golden.h"

namespace canopy::cli::testing {

struct SentRequest {
  std::string host;
  uint16_t port = 0;
  std::string method;
  std::string target;
  std::string body;
  Headers headers;

  std::string header(const std::string& name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return {};
  }
  Json json() const { return body.empty() ? Json() : Json::parse(body); }
};

inline http::HttpReply reply(int status, const Json& body, Headers headers = {}) {
  return {
      .status = status, .body = body.is_null() ? "" : body.dump(), .headers = std::move(headers)};
}

// Answers each request with `answer` (a 404 Neutron error by default).
class FakeTransport final : public Transport {
 public:
  using Answer = std::function<Result<http::HttpReply>(const SentRequest&)>;
  explicit FakeTransport(Answer answer = nullptr) : answer_(std::move(answer)) {}

  Result<http::HttpReply> send(const http::HttpUrl& url, const std::string& method,
                               const std::string& target, const std::string& body,
                               const Headers& headers) override {
    sent.push_back({url.host, url.port, method, target, body, headers});
    if (answer_) return answer_(sent.back());
    return reply(404, {{"NeutronError",
                        {{"type", "HTTPNotFound"},
                         {"message", "The resource could not be found."},
                         {"detail", ""}}}});
  }

  std::vector<SentRequest> sent;

 private:
  Answer answer_;
};

// Compares with tests/golden/cli/<name>; CANOPY_UPDATE_GOLDEN=1 rewrites it.
inline void expectGolden(const std::string& name, const std::string& actual) {
  canopy::testing::expectGolden("cli/" + name, actual);
}

}  // namespace canopy::cli::testing
