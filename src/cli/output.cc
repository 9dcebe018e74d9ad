#include "cli/output.h"

#include <algorithm>
#include <cctype>
#include <sstream>

namespace canopy::cli {

namespace {

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (lines.empty()) lines.emplace_back();
  return lines;
}

// Display width: UTF-8 continuation bytes take no column.
size_t width(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

bool sameName(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string scalarText(const Json& v, bool quote) {
  if (v.is_null()) return "None";
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_string()) return quote ? "'" + v.get<std::string>() + "'" : v.get<std::string>();
  return v.dump();
}

// Inside a cell: key='value' pairs, nested objects in {} and lists in [].
std::string nestedText(const Json& v, bool top) {
  if (!v.is_structured()) return scalarText(v, true);
  std::string out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!out.empty()) out += ", ";
    out += v.is_object() ? it.key() + "=" + nestedText(it.value(), false)
                         : nestedText(it.value(), false);
  }
  if (top) return out;
  return v.is_object() ? "{" + out + "}" : "[" + out + "]";
}

std::string pairsText(const Json& object) { return nestedText(object, true); }

}  // namespace

std::string renderTable(const Table& table) {
  if (table.rows.empty()) return {};
  size_t n = table.headers.size();
  std::vector<size_t> widths(n);
  for (size_t i = 0; i < n; ++i) widths[i] = width(table.headers[i]);
  std::vector<std::vector<std::vector<std::string>>> cells;
  for (const auto& row : table.rows) {
    auto& split = cells.emplace_back();
    for (size_t i = 0; i < n; ++i) {
      split.push_back(splitLines(i < row.size() ? row[i] : std::string()));
      for (const auto& line : split.back()) widths[i] = std::max(widths[i], width(line));
    }
  }
  std::string rule = "+";
  for (size_t w : widths) rule += std::string(w + 2, '-') + "+";
  rule += "\n";
  auto line = [&](auto cellAt) {
    std::string s = "|";
    for (size_t i = 0; i < n; ++i) {
      const std::string& text = cellAt(i);
      s += " " + text + std::string(widths[i] - width(text), ' ') + " |";
    }
    return s + "\n";
  };
  std::string out = rule + line([&](size_t i) -> const std::string& { return table.headers[i]; });
  out += rule;
  static const std::string kEmpty;
  for (const auto& row : cells) {
    size_t height = 0;
    for (const auto& c : row) height = std::max(height, c.size());
    for (size_t l = 0; l < height; ++l) {
      out += line(
          [&](size_t i) -> const std::string& { return l < row[i].size() ? row[i][l] : kEmpty; });
    }
  }
  return out + rule;
}

std::string renderValues(const Table& table) {
  std::string out;
  for (const auto& row : table.rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) line += (i == 0 ? "" : " ") + row[i];
    out += line + "\n";
  }
  return out;
}

std::string formatCell(const Json& value) {
  if (value.is_object()) return pairsText(value);
  if (!value.is_array()) return scalarText(value, false);
  std::string out;
  bool objects =
      std::any_of(value.begin(), value.end(), [](const Json& v) { return v.is_object(); });
  for (const auto& item : value) {
    if (!out.empty()) out += objects ? "\n" : ", ";
    out += item.is_object() ? pairsText(item) : scalarText(item, false);
  }
  return out;
}

Table fieldTable(const Json& object) {
  Table t{{"Field", "Value"}, {}};
  for (auto it = object.begin(); it != object.end(); ++it) {
    t.rows.push_back({it.key(), formatCell(it.value())});
  }
  return t;
}

Result<Table> selectColumns(const Table& table, const std::vector<std::string>& fields,
                            const std::vector<std::string>& wanted) {
  if (wanted.empty()) return table;
  std::vector<size_t> picked;
  for (const auto& name : wanted) {
    size_t found = table.headers.size();
    for (size_t i = 0; i < table.headers.size() && found == table.headers.size(); ++i) {
      bool by_field = i < fields.size() && !fields[i].empty() && fields[i] == name;
      if (sameName(table.headers[i], name) || by_field) found = i;
    }
    if (found == table.headers.size()) {
      std::string known;
      for (const auto& h : table.headers) known += (known.empty() ? "" : ", ") + h;
      return Error(Errc::InvalidArgument, "no column '" + name + "' (columns: " + known + ")");
    }
    picked.push_back(found);
  }
  Table out;
  for (size_t i : picked) out.headers.push_back(table.headers[i]);
  for (const auto& row : table.rows) {
    auto& r = out.rows.emplace_back();
    for (size_t i : picked) r.push_back(i < row.size() ? row[i] : std::string());
  }
  return out;
}

std::string jsonText(const Json& value) { return value.dump(2) + "\n"; }

Result<void> printList(std::ostream& out, const OutputOptions& options, const Table& table,
                       const std::vector<std::string>& fields, const std::vector<Json>& items) {
  if (options.format == Format::JsonText) {
    out << jsonText(Json(items));
    return ok();
  }
  auto picked = selectColumns(table, fields, options.columns);
  if (!picked) return picked.error();
  out << (options.format == Format::Value ? renderValues(*picked) : renderTable(*picked));
  return ok();
}

Result<void> printObject(std::ostream& out, const OutputOptions& options, const Json& object) {
  if (options.format == Format::JsonText) {
    if (options.columns.empty()) {
      out << jsonText(object);
      return ok();
    }
    Json picked = Json::object();
    for (const auto& c : options.columns) {
      if (!object.contains(c)) return Error(Errc::InvalidArgument, "no field '" + c + "'");
      picked[c] = object[c];
    }
    out << jsonText(picked);
    return ok();
  }
  Table fields = fieldTable(object);
  if (!options.columns.empty()) {
    Table picked{fields.headers, {}};
    for (const auto& c : options.columns) {
      if (!object.contains(c)) return Error(Errc::InvalidArgument, "no field '" + c + "'");
      picked.rows.push_back({c, formatCell(object[c])});
    }
    fields = std::move(picked);
  }
  if (options.format == Format::Value) {
    for (const auto& row : fields.rows) out << row[1] << "\n";
  } else {
    out << renderTable(fields);
  }
  return ok();
}

}  // namespace canopy::cli
