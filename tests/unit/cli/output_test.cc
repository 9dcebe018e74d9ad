// Tables, cells and the -f/-c handling of `canopy`'s output.

#include "cli/output.h"

#include <gtest/gtest.h>

#include <sstream>

namespace canopy::cli {
namespace {

TEST(Output, TableHasRulesAndPaddedColumns) {
  Table t{{"ID", "Name"}, {{"1", "blue"}, {"22", "g"}}};
  EXPECT_EQ(renderTable(t),
            "+----+------+\n"
            "| ID | Name |\n"
            "+----+------+\n"
            "| 1  | blue |\n"
            "| 22 | g    |\n"
            "+----+------+\n");
}

TEST(Output, MultiLineCellsAndUtf8Widths) {
  Table t{{"A", "B"}, {{"x\ny", "é"}}};
  EXPECT_EQ(renderTable(t),
            "+---+---+\n"
            "| A | B |\n"
            "+---+---+\n"
            "| x | é |\n"
            "| y |   |\n"
            "+---+---+\n");
}

TEST(Output, EmptyListPrintsNothing) { EXPECT_EQ(renderTable({{"ID"}, {}}), ""); }

TEST(Output, ValuesOneRowALine) {
  EXPECT_EQ(renderValues({{"a", "b"}, {{"1", "2"}, {"3", ""}}}), "1 2\n3 \n");
}

TEST(Output, CellsReadLikeTheOpenstackClients) {
  struct Case {
    Json value;
    std::string cell;
  };
  std::vector<Case> cases = {
      {nullptr, "None"},
      {true, "True"},
      {false, "False"},
      {42, "42"},
      {"text", "text"},
      {Json::array(), ""},
      {Json{"10.0.0.53", "10.0.0.54"}, "10.0.0.53, 10.0.0.54"},
      // Keys in name order, as nlohmann's object keeps them.
      {Json{{"start", "10.0.0.2"}, {"end", "10.0.0.9"}}, "end='10.0.0.9', start='10.0.0.2'"},
      {Json::array({{{"subnet_id", "s1"}, {"ip_address", "10.0.0.5"}},
                    {{"subnet_id", "s2"}, {"ip_address", "fd00::5"}}}),
       "ip_address='10.0.0.5', subnet_id='s1'\nip_address='fd00::5', subnet_id='s2'"},
      {Json{{"enable_snat", true},
            {"external_fixed_ips", Json::array({{{"ip_address", "203.0.113.5"}}})},
            {"network_id", "n1"}},
       "enable_snat=True, external_fixed_ips=[{ip_address='203.0.113.5'}], network_id='n1'"},
  };
  for (const auto& c : cases) EXPECT_EQ(formatCell(c.value), c.cell) << c.value.dump();
}

TEST(Output, ColumnsByHeaderOrFieldInTheOrderAsked) {
  Table t{{"ID", "Fixed IP Addresses"}, {{"1", "a"}}};
  auto picked = selectColumns(t, {"id", "fixed_ips"}, {"fixed_ips", "id"});
  ASSERT_TRUE(picked);
  EXPECT_EQ(picked->headers, (std::vector<std::string>{"Fixed IP Addresses", "ID"}));
  EXPECT_EQ(picked->rows[0], (std::vector<std::string>{"a", "1"}));
  auto by_header = selectColumns(t, {}, {"fixed ip addresses"});
  ASSERT_TRUE(by_header);
  EXPECT_EQ(by_header->rows[0][0], "a");
  auto unknown = selectColumns(t, {}, {"Nope"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().message(), "no column 'Nope' (columns: ID, Fixed IP Addresses)");
}

TEST(Output, ShowAsFieldsValuesOrJson) {
  Json net = {{"id", "n1"}, {"name", "blue"}, {"mtu", 1442}};
  std::ostringstream table, values, json, picked;
  ASSERT_TRUE(printObject(table, {}, net));
  EXPECT_EQ(table.str(),
            "+-------+-------+\n"
            "| Field | Value |\n"
            "+-------+-------+\n"
            "| id    | n1    |\n"
            "| mtu   | 1442  |\n"
            "| name  | blue  |\n"
            "+-------+-------+\n");
  ASSERT_TRUE(printObject(values, {.format = Format::Value, .columns = {"name", "mtu"}}, net));
  EXPECT_EQ(values.str(), "blue\n1442\n");
  ASSERT_TRUE(printObject(json, {.format = Format::JsonText, .columns = {}}, net));
  EXPECT_EQ(Json::parse(json.str()), net);
  ASSERT_TRUE(printObject(picked, {.format = Format::JsonText, .columns = {"mtu"}}, net));
  EXPECT_EQ(Json::parse(picked.str()), (Json{{"mtu", 1442}}));
  std::ostringstream ignored;
  EXPECT_FALSE(printObject(ignored, {.format = Format::Value, .columns = {"nope"}}, net));
}

TEST(Output, ListAsJsonIsTheServersObjects) {
  std::vector<Json> items = {{{"id", "a"}, {"extra", 1}}, {{"id", "b"}}};
  std::ostringstream out;
  ASSERT_TRUE(printList(out, {.format = Format::JsonText, .columns = {}}, {{"ID"}, {{"a"}, {"b"}}},
                        {"id"}, items));
  EXPECT_EQ(Json::parse(out.str()), Json(items));
}

}  // namespace
}  // namespace canopy::cli
