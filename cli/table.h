// Plain-text output for people: an aligned-column table and byte sizes in
// binary units. Scripts should use --json, which prints exact numbers.
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::cli {

class Table {
 public:
  enum class Align { kLeft, kRight };
  struct Column {
    std::string header;
    Align align = Align::kLeft;
  };

  explicit Table(std::vector<Column> columns);

  // REQUIRES: one cell per column.
  void add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }

  // Header and rows, columns separated by two spaces. Lines carry no
  // trailing blanks (the last column is not padded).
  void print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// "512 B", "1.5 KiB", "12.0 GiB": one decimal, binary (1024-based) units.
std::string human_bytes(uint64_t bytes);

// `text` with control characters (C0, DEL, C1) written as \xNN: what a
// store holds cannot drive the terminal. Table rows pass every cell through it.
std::string printable(std::string_view text);

// `text` made safe for one table cell: control characters escaped (a value
// holding a newline must not break the row) and cut to `max_chars`
// characters with "..." when longer.
std::string one_line(std::string_view text, size_t max_chars);

}  // namespace tessera::cli
