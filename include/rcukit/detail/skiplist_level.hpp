// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_level.hpp -- random tower heights for skiplists.
//
// The idea (Pugh 1990): a node gets height h with probability p^(h-1)(1-p);
// with p = 1/2 that is one plus the number of trailing zero bits of a uniform
// random word, so one xorshift step and one ctz per new node. The generator
// is thread_local, seeded from the thread's stack address and a global
// counter, so threads never share state (no contention, no data race).
//
// Invariant: the result is in [1, max_levels]. Not supported: p other than
// 1/2 (Traits may only change max_levels).
#pragma once

#include <atomic>
#include <bit>
#include <cstdint>

namespace rcukit::detail {

inline uint64_t splitmix64(uint64_t x) noexcept {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

inline uint64_t thread_random() noexcept {
  static std::atomic<uint64_t> seeds{0x1234567};  // relaxed: only needs distinct values
  thread_local uint64_t state = splitmix64(seeds.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed) ^
                                           reinterpret_cast<uintptr_t>(&state));
  // xorshift64*
  state ^= state >> 12;
  state ^= state << 25;
  state ^= state >> 27;
  return state * 0x2545f4914f6cdd1dULL;
}

// Height in [1, max_levels] with P(height > k) = 2^-k.
inline unsigned random_level(unsigned max_levels) noexcept {
  const uint64_t r = thread_random();
  const unsigned h = 1 + static_cast<unsigned>(std::countr_zero(r | (uint64_t{1} << 63)));
  return h < max_levels ? h : max_levels;
}

}  // namespace rcukit::detail
