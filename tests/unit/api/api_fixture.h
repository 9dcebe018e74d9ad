#pragma once
// A Neutron API handler over a real store and model, called without sockets.

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "api/neutron_api.h"
#include "store/sqlite_store.h"
#include "testing/temp_dir.h"

namespace canopy::api {

using model::Json;

class ApiFixture : public ::testing::Test {
 protected:
  void SetUp() override { boot(); }
  void TearDown() override { shutdown(); }

  void boot(ApiConfig config = {}) {
    auto s = store::SqliteStore::open({.path = dir_.file("canopy.db")});
    ASSERT_TRUE(s) << s.error().toString();
    store_ = std::move(*s);
    state_ = std::make_unique<state::ModelState>(*store_);
    ASSERT_TRUE(state_->start());
    api_ = std::make_unique<NeutronApi>(*state_, std::move(config), clock_);
  }
  void shutdown() {
    api_.reset();
    state_.reset();
    store_.reset();
  }

  struct Reply {
    int status;
    Json body;
  };
  Reply call(const std::string& method, const std::string& path, const std::string& body = "",
             const std::string& project = "p1", std::map<std::string, std::string> headers = {}) {
    HttpRequest r;
    r.method = method;
    auto q = path.find('?');
    r.path = path.substr(0, q);
    if (q != std::string::npos) r.query = http::parseQuery(path.substr(q + 1));
    r.body = body;
    if (!project.empty()) r.headers["x-project-id"] = project;
    for (auto& [k, v] : headers) r.headers[k] = v;
    r.headers["host"] = "canopy.test:9696";
    auto out = api_->handle(r);
    return {out.status, out.body.empty() ? Json() : Json::parse(out.body)};
  }
  std::string createNetwork(const std::string& name, const std::string& project = "p1",
                            const std::string& extra = "") {
    auto r = call("POST", "/v2.0/networks",
                  R"({"network": {"name": ")" + name + "\"" + extra + "}}", project);
    EXPECT_EQ(r.status, 201) << r.body.dump();
    return r.body["network"].value("id", "");
  }
  static void expectError(const Reply& r, int status, const std::string& type,
                          const std::string& message = "") {
    EXPECT_EQ(r.status, status) << r.body.dump();
    EXPECT_EQ(r.body["NeutronError"]["type"], type) << r.body.dump();
    EXPECT_EQ(r.body["NeutronError"]["detail"], "");
    if (!message.empty()) {
      EXPECT_EQ(r.body["NeutronError"]["message"], message);
    }
  }

  canopy::testing::TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<state::ModelState> state_;
  std::unique_ptr<NeutronApi> api_;
};

}  // namespace canopy::api
