// SPDX-License-Identifier: MIT
// rcukit/detail/fatal.hpp -- the one way rcukit stops a program: a line on
// stderr naming the component, what went wrong and where, then abort().
//
// Two uses, one format:
//  * misuse that the API documents as fatal (synchronize() inside a read
//    side, a second done() in debug builds, ...): the public function takes
//    `call_site where = call_site::current()` as a defaulted argument, so the
//    compiler fills in the caller's file and line, and passes it on;
//  * internal corruption caught by an always-on check: `where` defaults to
//    the check itself.
// Bad input is never fatal: it gets an absl::Status (API.md).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <version>
#if defined(__cpp_lib_source_location)
#include <source_location>
#endif

namespace rcukit::detail {

// Where a call was made: std::source_location where the standard library
// has it; clang 14 with libstdc++ 12 lacks it, and the same compiler
// builtins serve instead.
#if defined(__cpp_lib_source_location)
using call_site = std::source_location;
#else
struct call_site {
  static constexpr call_site current(const char* file = __builtin_FILE(),
                                     std::uint_least32_t line = __builtin_LINE(),
                                     const char* function = __builtin_FUNCTION()) noexcept {
    return call_site{file, line, function};
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }
  constexpr const char* function_name() const noexcept { return function_; }
  const char* file_ = "";
  std::uint_least32_t line_ = 0;
  const char* function_ = "";
};
#endif

// Prints "rcukit::<who>: <what> (called from <file>:<line>, in <function>)"
// and aborts. Never returns; safe in any context (no allocation, no lock
// beyond stdio's).
[[noreturn]] inline void fatal(const char* who, const char* what,
                               const call_site& where = call_site::current()) noexcept {
  std::fprintf(stderr, "rcukit::%s: %s (called from %s:%u, in %s)\n", who, what, where.file_name(),
               static_cast<unsigned>(where.line()), where.function_name());
  std::abort();
}

}  // namespace rcukit::detail
