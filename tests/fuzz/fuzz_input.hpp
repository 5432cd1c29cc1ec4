// SPDX-License-Identifier: MIT
// tests/fuzz/fuzz_input.hpp -- turns a libFuzzer byte stream into values.
// Reading past the end yields zeros, so every input is a valid program.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "rcukit/rcu.hpp"

namespace rcukit::fuzz {

class input {
 public:
  input(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  uint8_t byte() { return p_ < end_ ? *p_++ : 0; }
  uint64_t u64(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) v = (v << 8) | byte();
    return v;
  }
  // A key from a small dense space, with a chance of values at the edges of
  // the 64-bit range, so collisions and overflow paths are both reached.
  uint64_t key() {
    const uint8_t sel = byte();
    if (sel < 200) return u64(1) * 16 + (sel & 15);
    if (sel < 240) return UINT64_MAX - u64(1) * 8 - (sel & 7);
    return u64(8);
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// A mismatch against the reference: print and abort so libFuzzer (or the
// replay test) records the input.
[[noreturn]] inline void mismatch(const char* what, int line) {
  std::fprintf(stderr, "fuzz mismatch at line %d: %s\n", line, what);
  std::abort();
}
#define RCUKIT_FUZZ_CHECK(cond)                             \
  do {                                                      \
    if (!(cond)) ::rcukit::fuzz::mismatch(#cond, __LINE__); \
  } while (0)

// Allocation countdown shared by the fuzzed structures' allocation hooks:
// -1 never fails; n >= 0 fails the (n+1)-th allocation, then disarms.
inline thread_local long fail_countdown = -1;
inline bool should_fail() {
  if (fail_countdown < 0) return false;
  if (fail_countdown-- == 0) {
    fail_countdown = -1;
    return true;
  }
  return false;
}

// rcu::barrier() waits for liburcu's call_rcu thread, which can sleep for
// milliseconds between batches: calling it per input would cap a target at
// ~100 executions/s. Harnesses call this per input; it runs the barrier (and
// the caller's leak check) every 256 inputs.
template <class Check>
void periodic_barrier(Check&& after_barrier) {
  static thread_local unsigned n = 0;
  if (++n % 256 == 0) {
    rcu::barrier();
    after_barrier();
  }
}

}  // namespace rcukit::fuzz
