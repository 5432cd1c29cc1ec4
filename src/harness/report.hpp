// SPDX-License-Identifier: MIT
// src/harness/report.hpp -- the one reporting module every rcukit harness
// and benchmark driver prints through: a result table rendered as an aligned
// text table (like the 2013 article's tables), as TSV (one header line, one
// row per run) or as JSON, plus a progress line for long runs and the list
// flags (`--threads 1,2,4`) the harnesses share.
#pragma once

#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rcukit::harness {

enum class format { table, tsv, json };

// "table", "tsv" or "json"; InvalidArgument otherwise.
absl::StatusOr<format> parse_format(absl::string_view s);

// "1,2,4" -> {1, 2, 4}. InvalidArgument on an empty list, a non-number or a
// value outside [min, max].
absl::StatusOr<std::vector<int64_t>> parse_int_list(absl::string_view s, int64_t min, int64_t max);

// "a,b" -> {"a", "b"}; each must be one of `allowed` (InvalidArgument names
// the bad one and the allowed set).
absl::StatusOr<std::vector<std::string>> parse_name_list(absl::string_view s,
                                                         const std::vector<std::string>& allowed);

struct column {
  std::string key;    // TSV header / JSON key, e.g. "fill_ms"
  std::string label;  // table header, e.g. "Fill (ms)"
  bool numeric = true;
};

class table {
 public:
  table(std::string title, std::vector<column> columns);

  // Adds a row; cells are formatted by the caller (fixed precision). A cell
  // count that does not match the columns is a programming error (abort).
  void add_row(std::vector<std::string> cells);

  void print(format f, std::ostream& out) const;
  // JSON object {"title": ..., "rows": [{key: value, ...}, ...]}.
  std::string json() const;

  const std::string& title() const { return title_; }
  const std::vector<column>& columns() const { return columns_; }
  const std::vector<std::vector<std::string>>& rows() const { return rows_; }

 private:
  std::string title_;
  std::vector<column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// Fixed-precision formatting helper for cells.
std::string fixed(double v, int precision);

// A progress line on stderr: redrawn in place on a terminal, one line at most
// every `every` otherwise (CI logs stay short). Never writes to stdout, so
// TSV/JSON output stays machine-readable.
class progress {
 public:
  explicit progress(std::string what, std::chrono::seconds every = std::chrono::seconds(10));
  void update(absl::string_view status);
  void done(absl::string_view status);

 private:
  std::string what_;
  std::chrono::steady_clock::duration every_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_{};
  bool tty_;
};

// Abseil flag names cannot contain '-'; the harnesses document the
// conventional spelling (--io-size). Rewrites "--io-size[=v]" to
// "--io_size[=v]" in place (only the name part, before any '='), so both work.
void normalize_flag_names(int argc, char** argv);

// The start of every harness main(): sets the usage message, accepts the
// dashed flag spellings (normalize_flag_names), parses the command line,
// then reads `format_flag` (the tool's --format). InvalidArgument for a bad
// --format (main() returns fail(status.message())).
absl::StatusOr<format> parse_command_line(int argc, char** argv, absl::string_view usage,
                                          const absl::Flag<std::string>& format_flag);

// Exit helper: prints "error: <msg>" to stderr and returns 1 (for main()).
int fail(absl::string_view msg);

}  // namespace rcukit::harness
