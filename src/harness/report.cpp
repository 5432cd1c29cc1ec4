// SPDX-License-Identifier: MIT
#include "report.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "rcukit/detail/fatal.hpp"

namespace rcukit::harness {

absl::StatusOr<format> parse_format(absl::string_view s) {
  if (s == "table") return format::table;
  if (s == "tsv") return format::tsv;
  if (s == "json") return format::json;
  return absl::InvalidArgumentError(absl::StrCat("--format must be table, tsv or json (got '", s, "')"));
}

absl::StatusOr<std::vector<int64_t>> parse_int_list(absl::string_view s, int64_t min, int64_t max) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    int64_t v = 0;
    auto [ptr, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || ptr != part.data() + part.size()) {
      return absl::InvalidArgumentError(absl::StrCat("'", part, "' is not a number"));
    }
    if (v < min || v > max) {
      return absl::InvalidArgumentError(absl::StrCat(v, " is outside [", min, ", ", max, "]"));
    }
    out.push_back(v);
  }
  if (out.empty()) return absl::InvalidArgumentError("empty list");
  return out;
}

absl::StatusOr<std::vector<std::string>> parse_name_list(absl::string_view s,
                                                         const std::vector<std::string>& allowed) {
  std::vector<std::string> out;
  for (absl::string_view part : absl::StrSplit(s, ',', absl::SkipWhitespace())) {
    if (std::find(allowed.begin(), allowed.end(), part) == allowed.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown name '", part, "'; choose from: ", absl::StrJoin(allowed, ", ")));
    }
    out.emplace_back(part);
  }
  if (out.empty()) return absl::InvalidArgumentError("empty list");
  return out;
}

table::table(std::string title, std::vector<column> columns)
    : title_(std::move(title)), columns_(std::move(columns)) {}

void table::add_row(std::vector<std::string> cells) {
  if (cells.size() != columns_.size()) {
    rcukit::detail::fatal("harness", absl::StrCat("table '", title_, "': ", cells.size(), " cells for ",
                                                  columns_.size(), " columns")
                                         .c_str());
  }
  rows_.push_back(std::move(cells));
}

namespace {
std::string json_string(absl::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

bool looks_numeric(absl::string_view s) {
  if (s.empty()) return false;
  double v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && ptr == s.data() + s.size();
}
}  // namespace

std::string table::json() const {
  std::string out = absl::StrCat("{\"title\": ", json_string(title_), ", \"rows\": [");
  for (size_t r = 0; r < rows_.size(); ++r) {
    out += r == 0 ? "\n  {" : ",\n  {";
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (c) out += ", ";
      const std::string& cell = rows_[r][c];
      const bool num = columns_[c].numeric && looks_numeric(cell);
      absl::StrAppend(&out, json_string(columns_[c].key), ": ", num ? cell : json_string(cell));
    }
    out += "}";
  }
  out += "\n]}";
  return out;
}

void table::print(format f, std::ostream& out) const {
  switch (f) {
    case format::tsv: {
      std::vector<std::string> keys;
      for (const auto& c : columns_) keys.push_back(c.key);
      out << absl::StrJoin(keys, "\t") << "\n";
      for (const auto& row : rows_) out << absl::StrJoin(row, "\t") << "\n";
      break;
    }
    case format::json:
      out << json() << "\n";
      break;
    case format::table: {
      std::vector<size_t> width(columns_.size());
      for (size_t c = 0; c < columns_.size(); ++c) {
        width[c] = columns_[c].label.size();
        for (const auto& row : rows_) width[c] = std::max(width[c], row[c].size());
      }
      if (!title_.empty()) out << title_ << "\n";
      auto line = [&](const std::vector<std::string>& cells, bool header) {
        for (size_t c = 0; c < cells.size(); ++c) {
          const std::string& s = cells[c];
          const size_t pad = width[c] - s.size();
          const bool right = columns_[c].numeric && !header;
          out << (c ? "  " : "") << (right ? std::string(pad, ' ') + s : s + std::string(pad, ' '));
        }
        out << "\n";
      };
      std::vector<std::string> labels;
      for (const auto& c : columns_) labels.push_back(c.label);
      line(labels, true);
      size_t total = 0;
      for (size_t w : width) total += w;
      out << std::string(total + 2 * (width.size() - 1), '-') << "\n";
      for (const auto& row : rows_) line(row, false);
      break;
    }
  }
}

std::string fixed(double v, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", precision, v);
  return buf;
}

progress::progress(std::string what, std::chrono::seconds every)
    : what_(std::move(what)),
      every_(every),
      start_(std::chrono::steady_clock::now()),
      tty_(isatty(STDERR_FILENO) != 0) {}

void progress::update(absl::string_view status) {
  const auto now = std::chrono::steady_clock::now();
  if (!tty_ && last_ != std::chrono::steady_clock::time_point{} && now - last_ < every_) return;
  last_ = now;
  const double s = std::chrono::duration<double>(now - start_).count();
  if (tty_) {
    std::fprintf(stderr, "\r\033[K[%6.1fs] %s: %.*s", s, what_.c_str(), static_cast<int>(status.size()),
                 status.data());
  } else {
    std::fprintf(stderr, "[%6.1fs] %s: %.*s\n", s, what_.c_str(), static_cast<int>(status.size()),
                 status.data());
  }
  std::fflush(stderr);
}

void progress::done(absl::string_view status) {
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s[%6.1fs] %s: %.*s\n", tty_ ? "\r\033[K" : "", s, what_.c_str(),
               static_cast<int>(status.size()), status.data());
  std::fflush(stderr);
}

void normalize_flag_names(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* a = argv[i];
    if (a[0] != '-' || a[1] != '-') continue;
    if (a[2] == '\0') break;  // "--": the rest are not flags
    for (char* p = a + 2; *p != '\0' && *p != '='; ++p) {
      if (*p == '-') *p = '_';
    }
  }
}

absl::StatusOr<format> parse_command_line(int argc, char** argv, absl::string_view usage,
                                          const absl::Flag<std::string>& format_flag) {
  absl::SetProgramUsageMessage(usage);
  normalize_flag_names(argc, argv);
  absl::ParseCommandLine(argc, argv);
  return parse_format(absl::GetFlag(format_flag));
}

int fail(absl::string_view msg) {
  std::fprintf(stderr, "error: %.*s\n", static_cast<int>(msg.size()), msg.data());
  return 1;
}

}  // namespace rcukit::harness
