// The metadata service's handler: who asks is known from the peer address
// alone (never from headers), answers from the port or through Nova with
// the headers Nova checks, per-port rate limits, and what the server says
// of a port cached for a while.

#include <gtest/gtest.h>

#include <atomic>

#include "agent/metadata_service.h"
#include "http/server.h"
#include "model/json.h"

namespace canopy::agent {
namespace {

namespace pb = southbound::v1;
using http::HttpRequest;
using http::HttpResponse;

// 10.0.0.44 names port 11's first address, 10.0.0.48 port 12's.
constexpr const char* kVm = "10.0.0.44:40000";
constexpr const char* kOther = "10.0.0.48:40000";

class Handler : public ::testing::Test {
 protected:
  MetadataHandler make(MetadataOptions o) {
    return MetadataHandler(
        clock_, std::move(o),
        [](datapath::simulator::MetadataPeer peer) -> std::optional<MetadataRequester> {
          if (peer.port == 11 && peer.index == 0) return MetadataRequester{"port-a", "10.0.0.5"};
          if (peer.port == 12 && peer.index == 0) return MetadataRequester{"port-b", "10.0.0.6"};
          return std::nullopt;
        },
        [this](const std::string& port) -> Result<pb::Instance> {
          ++fetches_;
          if (port == "port-b" && missing_) return Error(Errc::NotFound, "no port");
          if (!server_up_) return Error(Errc::Unavailable, "server gone");
          pb::Instance i;
          i.set_instance_id(port == "port-a" ? "instance-a" : "instance-b");
          i.set_project_id("project-1");
          i.set_hostname(port == "port-a" ? "web-1" : "db-1");
          i.set_name(i.hostname());
          auto* k = i.add_public_keys();
          k->set_name("mykey");
          k->set_key("ssh-ed25519 AAAA test");
          if (port == "port-a") i.set_user_data("I2Nsb3VkLWNvbmZpZwo=");  // "#cloud-config\n"
          return i;
        });
  }
  static HttpRequest get(std::string path, const char* remote = kVm) {
    HttpRequest r;
    r.method = "GET";
    r.path = std::move(path);
    r.remote = remote;
    return r;
  }

  FakeClock clock_;
  std::atomic<int> fetches_{0};
  bool missing_ = false;
  bool server_up_ = true;
};

TEST_F(Handler, AnswersThePortThePeerNamesWhateverTheHeadersSay) {
  auto h = make({});
  auto r = get("/latest/meta-data/instance-id");
  r.headers["x-instance-id"] = "instance-b";
  r.headers["x-forwarded-for"] = "10.0.0.6";
  EXPECT_EQ(h.handle(r).body, "instance-a");
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id", kOther)).body, "instance-b");
  EXPECT_EQ(h.handle(get("/latest/meta-data/local-ipv4")).body, "10.0.0.5");
  EXPECT_EQ(h.handle(get("/openstack/latest/user_data")).body, "#cloud-config\n");
  EXPECT_EQ(h.handle(get("/openstack/latest/user_data", kOther)).status, 404);
  auto meta = model::parseJson(h.handle(get("/openstack/latest/meta_data.json")).body);
  ASSERT_TRUE(meta);
  EXPECT_EQ((*meta)["uuid"], "instance-a");
  EXPECT_EQ((*meta)["hostname"], "web-1");
  EXPECT_EQ((*meta)["public_keys"]["mykey"], "ssh-ed25519 AAAA test");
  // A peer that names no port of this host, or no port at all.
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id", "10.0.0.52:1")).status, 404);
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id", "192.0.2.1:1")).status, 404);
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id", "garbage")).status, 404);
  auto post = get("/latest/meta-data/instance-id");
  post.method = "POST";
  EXPECT_EQ(h.handle(post).status, 405);
  EXPECT_EQ(h.stats().unknown, 3u);
}

TEST_F(Handler, WhatTheServerCannotSayIsAnErrorNotAGuess) {
  auto h = make({});
  missing_ = true;
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id", kOther)).status, 404);
  server_up_ = false;
  EXPECT_EQ(h.handle(get("/latest/meta-data/instance-id")).status, 503);
  EXPECT_EQ(h.stats().failed, 2u);
}

TEST_F(Handler, RequestsAreLimitedPerPort) {
  auto h = make({.rate = 2, .burst = 3});
  for (int i = 0; i < 3; ++i) EXPECT_EQ(h.handle(get("/latest/meta-data/")).status, 200);
  auto refused = h.handle(get("/latest/meta-data/"));
  EXPECT_EQ(refused.status, 429);
  // Another port is not held back by the first one's flood.
  EXPECT_EQ(h.handle(get("/latest/meta-data/", kOther)).status, 200);
  clock_.advance(std::chrono::seconds(1));
  EXPECT_EQ(h.handle(get("/latest/meta-data/")).status, 200);
  EXPECT_EQ(h.handle(get("/latest/meta-data/")).status, 200);
  EXPECT_EQ(h.handle(get("/latest/meta-data/")).status, 429);
  EXPECT_EQ(h.stats().limited, 2u);
}

TEST_F(Handler, WhatTheServerSaysIsCachedForAWhile) {
  auto h = make({.cache_for = std::chrono::seconds(5)});
  for (int i = 0; i < 5; ++i) h.handle(get("/latest/meta-data/instance-id"));
  EXPECT_EQ(fetches_.load(), 1);
  clock_.advance(std::chrono::seconds(6));
  h.handle(get("/latest/meta-data/instance-id"));
  EXPECT_EQ(fetches_.load(), 2);
}

TEST_F(Handler, ProxiesToNovaWithTheHeadersNovaChecks) {
  std::mutex mu;
  HttpRequest seen;
  auto nova =
      http::HttpServer::start({.address = "127.0.0.1", .port = 0}, [&](const HttpRequest& r) {
        std::lock_guard lock(mu);
        seen = r;
        return HttpResponse{
            .status = 200, .body = "{\"from\": \"nova\"}", .content_type = "application/json"};
      });
  ASSERT_TRUE(nova);
  std::string url = "http://127.0.0.1:" + std::to_string((*nova)->port());
  auto h = make({.nova_url = url, .shared_secret = "s3cret"});
  auto r = get("/openstack/latest/meta_data.json");
  r.query = {{"a", "b c"}};
  r.headers["x-instance-id"] = "instance-b";  // forged: never passed on
  r.headers["x-instance-id-signature"] = "forged";
  r.headers["x-tenant-id"] = "someone-else";
  auto answer = h.handle(r);
  EXPECT_EQ(answer.status, 200);
  EXPECT_EQ(answer.body, "{\"from\": \"nova\"}");
  EXPECT_EQ(answer.content_type, "application/json");
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen.path, "/openstack/latest/meta_data.json");
    ASSERT_EQ(seen.query.size(), 1u);
    EXPECT_EQ(seen.query[0].second, "b c");
    EXPECT_EQ(seen.header("x-instance-id"), "instance-a");
    EXPECT_EQ(seen.header("x-tenant-id"), "project-1");
    EXPECT_EQ(seen.header("x-forwarded-for"), "10.0.0.5");
    EXPECT_EQ(seen.header("x-instance-id-signature"), instanceSignature("s3cret", "instance-a"));
  }
  EXPECT_EQ(h.stats().proxied, 1u);
  // Nova not answering: an error after the timeout, not a hang.
  (*nova)->stop();
  auto impatient = make({.nova_url = url, .nova_timeout = std::chrono::milliseconds(200)});
  EXPECT_EQ(impatient.handle(get("/openstack/latest/meta_data.json")).status, 500);
}

}  // namespace
}  // namespace canopy::agent
