// SPDX-License-Identifier: MIT
// examples/example_check.hpp -- how the examples check their own results:
// a failed check prints the file, line, condition and a message to stderr
// and exits with status 1, so CI (ctest, scripts/test.sh) fails loudly.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/status/status.h"

namespace example {

[[noreturn]] inline void fail(const char* file, int line, const char* what, const std::string& detail) {
  std::fprintf(stderr, "%s:%d: CHECK FAILED: %s%s%s\n", file, line, what, detail.empty() ? "" : ": ",
               detail.c_str());
  std::exit(1);
}

}  // namespace example

// CHECK(cond) / CHECK(cond, "detail"): exits with status 1 if cond is false.
#define CHECK(cond, ...)                                                               \
  do {                                                                                 \
    if (!(cond)) ::example::fail(__FILE__, __LINE__, #cond, std::string{__VA_ARGS__}); \
  } while (0)

// CHECK_OK(status-or-statusor): exits with status 1 and the status text if
// it is not OK.
#define CHECK_OK(expr)                                                                          \
  do {                                                                                          \
    const auto& check_ok_s_ = (expr);                                                           \
    if (!::example::status_of(check_ok_s_).ok())                                                \
      ::example::fail(__FILE__, __LINE__, #expr, ::example::status_of(check_ok_s_).ToString()); \
  } while (0)

namespace example {
inline const absl::Status& status_of(const absl::Status& s) { return s; }
template <class T>
const absl::Status& status_of(const T& s) {
  return s.status();
}
}  // namespace example
