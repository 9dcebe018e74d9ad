// Nova's external events: which changes of the model call for which event
// (a pure function), and the notifier against an HTTP server standing in
// for Nova and Keystone (external services): events batched, retried after
// Nova fails, sent with the token Keystone issued to the endpoint its
// catalog names, dropped when Nova does not know the instance.

#include "notify/nova_notifier.h"

#include <gtest/gtest.h>

#include <thread>

#include "http/server.h"
#include "store/sqlite_store.h"
#include "testing/temp_dir.h"

namespace canopy::notify {
namespace {

using model::Json;
using namespace std::chrono_literals;

Json port(const std::string& status, const std::string& ip = "10.0.0.5",
          const std::string& owner = "compute:nova") {
  return {{"id", "port-1"},
          {"device_owner", owner},
          {"device_id", "vm-1"},
          {"status", status},
          {"fixed_ips", {{{"subnet_id", "s"}, {"ip_address", ip}}}}};
}

state::Change change(std::optional<Json> before, std::optional<Json> after,
                     std::string collection = "ports") {
  return {std::move(collection), "port-1", std::move(before), std::move(after)};
}

TEST(NovaEvents, PortStatusAddressesAndDeletion) {
  state::Tables tables;
  auto events = [&](const state::Change& c) { return novaEventsFor(c, tables); };
  EXPECT_EQ(events(change(port("DOWN"), port("ACTIVE"))),
            (std::vector<NovaEvent>{{"network-vif-plugged", "vm-1", "port-1", "completed"}}));
  EXPECT_EQ(events(change(port("ACTIVE"), port("DOWN"))),
            (std::vector<NovaEvent>{{"network-vif-unplugged", "vm-1", "port-1", "completed"}}));
  EXPECT_EQ(events(change(port("DOWN"), port("ERROR"))),
            (std::vector<NovaEvent>{{"network-vif-plugged", "vm-1", "port-1", "failed"}}));
  EXPECT_EQ(events(change(port("ACTIVE"), port("ACTIVE", "10.0.0.9"))),
            (std::vector<NovaEvent>{{"network-changed", "vm-1", "port-1", "completed"}}));
  EXPECT_EQ(events(change(port("ACTIVE"), std::nullopt)),
            (std::vector<NovaEvent>{{"network-vif-deleted", "vm-1", "port-1", "completed"}}));
  // A new port that is DOWN, a port of no instance, a DHCP port: nothing.
  EXPECT_TRUE(events(change(std::nullopt, port("DOWN"))).empty());
  EXPECT_TRUE(
      events(change(port("DOWN"), port("ACTIVE", "10.0.0.5", "network:router_interface"))).empty());
  Json no_device = port("ACTIVE");
  no_device["device_id"] = "";
  EXPECT_TRUE(events(change(port("DOWN"), no_device)).empty());
  EXPECT_TRUE(events(change(port("DOWN"), port("ACTIVE"), "networks")).empty());
}

// A Nova (and Keystone) that records what it is sent and answers as told.
class FakeServices {
 public:
  FakeServices() {
    auto s = http::HttpServer::start({.address = "127.0.0.1", .port = 0, .threads = 1},
                                     [this](const http::HttpRequest& r) { return handle(r); });
    EXPECT_TRUE(s);
    server_ = std::move(*s);
  }
  ~FakeServices() { server_->stop(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  std::vector<Json> received() {
    MutexLock lock(mu_);
    return received_;
  }
  std::vector<std::string> tokens() {
    MutexLock lock(mu_);
    return tokens_;
  }
  void failNext(int n) {
    MutexLock lock(mu_);
    fail_ = n;
  }
  void answer(int status) {
    MutexLock lock(mu_);
    status_ = status;
  }

 private:
  http::HttpResponse handle(const http::HttpRequest& r) {
    MutexLock lock(mu_);
    http::HttpResponse out;
    if (r.method == "POST" && r.path == "/v3/auth/tokens") {
      out.status = 201;
      out.headers.emplace_back("X-Subject-Token", "token-" + std::to_string(++issued_));
      Json catalog = Json::array(
          {{{"type", "compute"},
            {"endpoints",
             {{{"interface", "internal"}, {"region_id", "r1"}, {"url", "http://nowhere:1/v2.1"}},
              {{"interface", "public"}, {"region_id", "r1"}, {"url", url() + "/compute/v2.1"}}}}}});
      out.body =
          Json{{"token", {{"expires_at", "2099-01-01T00:00:00.000000Z"}, {"catalog", catalog}}}}
              .dump();
      return out;
    }
    if (r.method == "POST" && r.path.ends_with("/v2.1/os-server-external-events")) {
      tokens_.emplace_back(r.header("x-auth-token"));
      if (fail_ > 0) {
        --fail_;
        out.status = 503;
        return out;
      }
      auto body = model::parseJson(r.body);
      received_.push_back(body ? *body : Json());
      out.status = status_;
      Json events = body ? (*body)["events"] : Json::array();
      for (auto& e : events) e["code"] = status_ == 404 ? 404 : 200;
      out.body = Json{{"events", events}}.dump();
      return out;
    }
    out.status = 404;
    return out;
  }

  Mutex mu_;
  std::vector<Json> received_ CANOPY_GUARDED_BY(mu_);
  std::vector<std::string> tokens_ CANOPY_GUARDED_BY(mu_);
  int fail_ CANOPY_GUARDED_BY(mu_) = 0;
  int status_ CANOPY_GUARDED_BY(mu_) = 200;
  int issued_ CANOPY_GUARDED_BY(mu_) = 0;
  std::unique_ptr<http::HttpServer> server_;
};

class NotifierTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::SqliteStore::open({.path = dir_.file("canopy.db")});
    ASSERT_TRUE(s) << s.error().toString();
    store_ = std::move(*s);
    state_ = std::make_unique<state::ModelState>(*store_);
    ASSERT_TRUE(state_->start());
  }
  void TearDown() override {
    notifier_.reset();
    state_.reset();
  }
  void put(const Json& doc) {
    auto r = state_->write({}, [&](state::Transaction& t) -> Result<void> {
      t.put("ports", doc.value("id", ""), doc);
      return ok();
    });
    ASSERT_TRUE(r) << r.error().toString();
  }
  template <typename Pred>
  static bool waitFor(Pred pred) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(10ms);
    }
    return true;
  }

  testing::TempDir dir_;
  SystemClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<state::ModelState> state_;
  FakeServices services_;
  std::unique_ptr<NovaNotifier> notifier_;
};

TEST_F(NotifierTest, APortTurningActiveReachesNovaAfterItFailedOnce) {
  auto n =
      NovaNotifier::start(*state_, {.url = services_.url() + "/v2.1", .interval = 20ms}, clock_);
  ASSERT_TRUE(n) << n.error().toString();
  notifier_ = std::move(*n);
  services_.failNext(1);
  put(port("DOWN"));
  put(port("ACTIVE"));
  ASSERT_TRUE(waitFor([&] { return services_.received().size() == 1; }));
  Json sent = services_.received()[0]["events"];
  ASSERT_EQ(sent.size(), 1u) << sent.dump();
  EXPECT_EQ(sent[0], Json({{"name", "network-vif-plugged"},
                           {"server_uuid", "vm-1"},
                           {"tag", "port-1"},
                           {"status", "completed"}}));
  EXPECT_TRUE(waitFor([&] { return notifier_->stats().sent == 1; }));
  EXPECT_EQ(notifier_->stats().failed_calls, 1u);
  EXPECT_EQ(services_.tokens().back(), "");  // no Keystone: no token
}

TEST_F(NotifierTest, TheTokenAndNovasEndpointComeFromKeystone) {
  auto n = NovaNotifier::start(*state_,
                               {.auth_url = services_.url() + "/v3",
                                .username = "neutron",
                                .password = "secret",
                                .region = "r1",
                                .interval = 20ms},
                               clock_);
  ASSERT_TRUE(n) << n.error().toString();
  notifier_ = std::move(*n);
  put(port("DOWN"));
  put(port("ACTIVE"));
  ASSERT_TRUE(waitFor([&] { return services_.received().size() == 1; }));
  EXPECT_EQ(services_.tokens().back(), "token-1");
  // Nova does not know the instance: dropped, not retried.
  services_.answer(404);
  put(port("DOWN"));
  ASSERT_TRUE(waitFor([&] { return notifier_->stats().dropped == 1; }));
  EXPECT_EQ(services_.received().size(), 2u);
  EXPECT_EQ(notifier_->stats().pending, 0u);
}

TEST_F(NotifierTest, ANovaThatIsDownDropsEventsAfterTheirAttempts) {
  auto n = NovaNotifier::start(
      *state_, {.url = "http://127.0.0.1:1/v2.1", .interval = 5ms, .timeout = 500ms, .attempts = 2},
      clock_);
  ASSERT_TRUE(n) << n.error().toString();
  notifier_ = std::move(*n);
  put(port("DOWN"));
  put(port("ACTIVE"));
  ASSERT_TRUE(waitFor([&] { return notifier_->stats().dropped == 1; }));
  EXPECT_EQ(notifier_->stats().failed_calls, 2u);
  EXPECT_EQ(notifier_->stats().sent, 0u);
}

TEST(NovaNotifierOptions, AUrlOrKeystoneIsNeeded) {
  testing::TempDir dir;
  auto s = store::SqliteStore::open({.path = dir.file("canopy.db")});
  ASSERT_TRUE(s);
  state::ModelState state(**s);
  SystemClock clock;
  EXPECT_FALSE(NovaNotifier::start(state, {}, clock));
  EXPECT_FALSE(NovaNotifier::start(state, {.url = "https://nova/v2.1"}, clock));
}

}  // namespace
}  // namespace canopy::notify
