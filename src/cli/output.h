#pragma once
// How `canopy` prints: tables in the openstack client's style for people
// (a list as rows under headers, one resource as a Field | Value table),
// the server's JSON for scripts (-f json), bare values for shell
// substitution (-f value, with -c to pick columns).
//
//   Table t{{"ID", "Name"}, {}};
//   t.rows.push_back({id, name});
//   out << renderTable(t);
//   print(out, options, t, json_items);      // honours -f and -c
//
// Thread-safety: pure functions.

#include <ostream>
#include <string>
#include <vector>

#include "base/result.h"
#include "model/json.h"

namespace canopy::cli {

using model::Json;

enum class Format { Table, JsonText, Value };

struct OutputOptions {
  Format format = Format::Table;
  std::vector<std::string> columns;  // -c: headers or field names; empty for all
};

// Rows of cells under headers; a cell may hold several lines.
struct Table {
  std::vector<std::string> headers;
  std::vector<std::vector<std::string>> rows;
};

// +----+------+
// | ID | Name |
// +----+------+
// | 1  | blue |
// +----+------+
// An empty string for a table without rows, as the openstack client prints.
std::string renderTable(const Table& table);

// One line a row, cells separated by a space.
std::string renderValues(const Table& table);

// A JSON value as a cell: strings bare, null "None", booleans True/False,
// a list of scalars joined by ", ", an object as key='value' pairs in key
// order, a list of objects one object a line.
std::string formatCell(const Json& value);

// The Field | Value table of one resource, fields in name order.
Table fieldTable(const Json& object);

// Keeps the columns named in `wanted` (headers, case-insensitive, or the
// field names in `fields`, parallel to the headers; "" where a column has
// none), in the order asked. InvalidArgument names an unknown one.
Result<Table> selectColumns(const Table& table, const std::vector<std::string>& fields,
                            const std::vector<std::string>& wanted);

// A list: the table (or -f value) from `table`, or the server's objects as a
// JSON array.
Result<void> printList(std::ostream& out, const OutputOptions& options, const Table& table,
                       const std::vector<std::string>& fields, const std::vector<Json>& items);
// One resource: its Field | Value table, its values one a line with -f value
// (the fields named by -c, in that order), or the object as JSON.
Result<void> printObject(std::ostream& out, const OutputOptions& options, const Json& object);

// Pretty JSON, two spaces an indent, and a newline.
std::string jsonText(const Json& value);

}  // namespace canopy::cli
