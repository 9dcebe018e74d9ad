#include "model/attributes.h"

#include <gtest/gtest.h>

#include "model/network.h"
#include "model/query.h"

namespace canopy::model {
namespace {

const Caller kUser{.project_id = "p1", .is_admin = false};
const Caller kAdmin{.project_id = "admin", .is_admin = true};

Error mustFail(const Result<Json>& r) {
  EXPECT_FALSE(r.has_value());
  return r ? Error(Errc::Internal, "unexpected success") : r.error();
}

TEST(ValidateAttributes, CreateFillsDefaults) {
  auto doc =
      validateAttributes(networkSpec(), Json::parse(R"({"name": "n1"})"), Action::Create, kUser);
  ASSERT_TRUE(doc) << doc.error().toString();
  EXPECT_EQ((*doc)["name"], "n1");
  EXPECT_EQ((*doc)["admin_state_up"], true);
  EXPECT_EQ((*doc)["shared"], false);
  EXPECT_EQ((*doc)["port_security_enabled"], true);
  EXPECT_TRUE((*doc)["mtu"].is_null());
  EXPECT_FALSE(doc->contains("id"));
}

TEST(ValidateAttributes, WordsRefusalsAsNeutronDoes) {
  struct Case {
    const char* body;
    Action action;
    const char* message;
  };
  const Case cases[] = {
      {R"({"nmae": "x", "colour": 1})", Action::Create, "Unrecognized attribute(s) 'colour, nmae'"},
      {R"({"id": "x"})", Action::Create, "Attribute 'id' not allowed in POST"},
      {R"({"status": "DOWN"})", Action::Update, "Cannot update read-only attribute status"},
      {R"({"admin_state_up": "maybe"})", Action::Create,
       "Invalid input for admin_state_up. Reason: 'maybe' cannot be converted to boolean."},
      {R"({"mtu": "12x"})", Action::Create,
       "Invalid input for mtu. Reason: '12x' is not an integer."},
      {R"({"mtu": 10})", Action::Create,
       "Invalid input for mtu. Reason: '10' is not in range 68 through 65535."},
      {R"({"name": 5})", Action::Create,
       "Invalid input for name. Reason: '5' is not a valid string."},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body);
    auto err = mustFail(validateAttributes(networkSpec(), Json::parse(c.body), c.action, kUser));
    EXPECT_EQ(err.code(), Errc::InvalidArgument);
    EXPECT_EQ(err.reason(), "HTTPBadRequest");
    EXPECT_EQ(err.message(), c.message);
  }
}

TEST(ValidateAttributes, LongNamesAreRefused) {
  Json body = {{"name", std::string(256, 'x')}};
  auto err = mustFail(validateAttributes(networkSpec(), body, Action::Create, kUser));
  EXPECT_NE(err.message().find("exceeds maximum length of 255"), std::string::npos);
}

TEST(ValidateAttributes, ConvertsBooleanStringsAndIntegers) {
  auto doc = validateAttributes(networkSpec(),
                                Json::parse(R"({"admin_state_up": "False", "mtu": "1400"})"),
                                Action::Update, kUser);
  ASSERT_TRUE(doc) << doc.error().toString();
  EXPECT_EQ((*doc)["admin_state_up"], false);
  EXPECT_EQ((*doc)["mtu"], 1400);
  EXPECT_EQ(doc->size(), 2u);  // updates carry only what was given
}

TEST(ValidateAttributes, AdminOnlyAttributesAreRefusedToUsers) {
  auto err = mustFail(validateAttributes(
      networkSpec(), Json::parse(R"({"provider:network_type": "vlan"})"), Action::Create, kUser));
  EXPECT_EQ(err.code(), Errc::PermissionDenied);
  EXPECT_EQ(err.reason(), "PolicyNotAuthorized");
  EXPECT_EQ(err.message(), "(rule:create_network:provider:network_type) is disallowed by policy");
  EXPECT_TRUE(validateAttributes(networkSpec(), Json::parse(R"({"provider:network_type": "vlan"})"),
                                 Action::Create, kAdmin));
  auto bad_type = mustFail(validateAttributes(
      networkSpec(), Json::parse(R"({"provider:network_type": "gre"})"), Action::Create, kAdmin));
  EXPECT_NE(bad_type.message().find("'gre' is not in"), std::string::npos);
}

TEST(ParseBody, SingleBulkAndMalformed) {
  bool bulk = false;
  auto one = parseBody(networkSpec(), R"({"network": {"name": "a"}})", Action::Create, bulk);
  ASSERT_TRUE(one);
  EXPECT_FALSE(bulk);
  EXPECT_EQ(one->size(), 1u);
  auto many = parseBody(networkSpec(), R"({"networks": [{"name": "a"}, {"name": "b"}]})",
                        Action::Create, bulk);
  ASSERT_TRUE(many);
  EXPECT_TRUE(bulk);
  EXPECT_EQ(many->size(), 2u);
  EXPECT_EQ(parseBody(networkSpec(), R"({"networks": [{"name": "a"}]})", Action::Update, bulk)
                .error()
                .message(),
            "Bulk operation not supported");
  auto bad = parseBody(networkSpec(), "{\"network\": ", Action::Create, bulk);
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().reason(), "MalformedRequestBody");
  EXPECT_EQ(parseBody(networkSpec(), R"({"port": {}})", Action::Create, bulk).error().message(),
            "Unable to find 'network' in request body");
  EXPECT_EQ(parseBody(networkSpec(), "", Action::Create, bulk).error().message(),
            "Resource body required");
}

TEST(VisibleView, HidesAdminOnlyAttributesFromUsers) {
  Json doc = {{"id", "x"}, {"name", "n"}, {"provider:network_type", "geneve"}};
  EXPECT_FALSE(visibleView(networkSpec(), doc, kUser).contains("provider:network_type"));
  EXPECT_TRUE(visibleView(networkSpec(), doc, kAdmin).contains("provider:network_type"));
}

std::vector<Json> sampleNetworks() {
  std::vector<Json> out;
  const char* names[] = {"delta", "alpha", "charlie", "bravo", "echo"};
  for (int i = 0; i < 5; ++i) {
    out.push_back({{"id", "id-" + std::to_string(i)},
                   {"name", names[i]},
                   {"shared", i % 2 == 0},
                   {"mtu", 1400 + i},
                   {"tags", i < 2 ? Json::array({"red"}) : Json::array({"blue", "green"})}});
  }
  return out;
}

std::vector<std::string> names(const ListResult& r) {
  std::vector<std::string> out;
  for (auto& d : r.items) out.push_back(d.value("name", "?"));
  return out;
}

ListQuery query(std::vector<std::pair<std::string, std::string>> params) {
  auto q = ListQuery::parse(networkSpec(), params, kUser);
  EXPECT_TRUE(q) << q.error().toString();
  return *q;
}

TEST(ListQuery, FiltersAreOrWithinAnAttributeAndAndAcross) {
  auto r = query({{"name", "alpha"}, {"name", "echo"}}).apply(sampleNetworks());
  EXPECT_EQ(names(r), (std::vector<std::string>{"alpha", "echo"}));
  r = query({{"shared", "True"}, {"mtu", "1404"}}).apply(sampleNetworks());
  EXPECT_EQ(names(r), (std::vector<std::string>{"echo"}));
  r = query({{"tags", "blue,green"}}).apply(sampleNetworks());
  EXPECT_EQ(r.items.size(), 3u);
  r = query({{"tags-any", "red,green"}}).apply(sampleNetworks());
  EXPECT_EQ(r.items.size(), 5u);
  r = query({{"not-tags-any", "red"}}).apply(sampleNetworks());
  EXPECT_EQ(r.items.size(), 3u);
}

TEST(ListQuery, UnknownFilterIsRefused) {
  auto q = ListQuery::parse(networkSpec(), {{"colour", "red"}}, kUser);
  ASSERT_FALSE(q);
  EXPECT_EQ(q.error().message(), "[colour] is invalid attribute for filtering");
  auto hidden = ListQuery::parse(networkSpec(), {{"provider:network_type", "vxlan"}}, kUser);
  EXPECT_FALSE(hidden);
}

TEST(ListQuery, SortsAndProjects) {
  auto r = query({{"sort_key", "name"}, {"sort_dir", "desc"}, {"fields", "name"}})
               .apply(sampleNetworks());
  EXPECT_EQ(names(r), (std::vector<std::string>{"echo", "delta", "charlie", "bravo", "alpha"}));
  EXPECT_EQ(r.items[0].size(), 1u);
}

TEST(ListQuery, PagesForwardAndBackWithMarkers) {
  auto page1 = query({{"sort_key", "name"}, {"limit", "2"}}).apply(sampleNetworks());
  EXPECT_EQ(names(page1), (std::vector<std::string>{"alpha", "bravo"}));
  ASSERT_TRUE(page1.next_marker);
  EXPECT_TRUE(page1.previous_marker);  // Neutron: a full page links both ways
  auto page2 = query({{"sort_key", "name"}, {"limit", "2"}, {"marker", *page1.next_marker}})
                   .apply(sampleNetworks());
  EXPECT_EQ(names(page2), (std::vector<std::string>{"charlie", "delta"}));
  ASSERT_TRUE(page2.previous_marker);
  auto back = query({{"sort_key", "name"},
                     {"limit", "2"},
                     {"marker", *page2.previous_marker},
                     {"page_reverse", "True"}})
                  .apply(sampleNetworks());
  EXPECT_EQ(names(back), (std::vector<std::string>{"alpha", "bravo"}));
  auto last = query({{"sort_key", "name"}, {"limit", "2"}, {"marker", *page2.next_marker}})
                  .apply(sampleNetworks());
  EXPECT_EQ(names(last), (std::vector<std::string>{"echo"}));
  EXPECT_FALSE(last.next_marker);
  EXPECT_TRUE(last.previous_marker);
}

TEST(ListQuery, BadLimitAndSortAreRefused) {
  EXPECT_FALSE(ListQuery::parse(networkSpec(), {{"limit", "-1"}}, kUser));
  EXPECT_FALSE(ListQuery::parse(networkSpec(), {{"sort_key", "tags"}}, kUser));
  EXPECT_FALSE(ListQuery::parse(networkSpec(), {{"sort_dir", "up"}, {"sort_key", "name"}}, kUser));
}

TEST(NetworkConfig, DefaultMtuFollowsTheOverlay) {
  EXPECT_EQ(defaultMtu({.overlay = "geneve"}), 1418);
  EXPECT_EQ(defaultMtu({.overlay = "vxlan"}), 1450);
  EXPECT_EQ(defaultMtu({.overlay = "vxlan", .physical_mtu = 9000}), 8950);
  // An IPv6 underlay's outer header is 20 bytes longer; VLAN has none.
  EXPECT_EQ(defaultMtu({.overlay = "geneve", .overlay_ip_version = 6}), 1398);
  EXPECT_EQ(defaultMtu({.overlay = "vxlan", .overlay_ip_version = 6}), 1430);
  EXPECT_EQ(defaultMtu({.overlay = "geneve", .overlay_ip_version = 6}, "vlan"), 1500);
}

TEST(ParseJson, CountsNestingOutsideStringsAndRefusesTooDeep) {
  EXPECT_EQ(jsonDepth(R"({"a": [1, {"b": []}]})"), 4u);
  EXPECT_EQ(jsonDepth(R"({"a": "[[[[{{{{", "b": "\"[[["})"), 1u);
  EXPECT_EQ(jsonDepth("]]]}}}"), 0u);
  std::string at_limit = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  EXPECT_TRUE(parseJson(at_limit));
  auto over = parseJson("[" + at_limit + "]");
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error().reason(), "MalformedRequestBody");
}

}  // namespace
}  // namespace canopy::model
