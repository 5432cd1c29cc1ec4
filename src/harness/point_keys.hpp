// SPDX-License-Identifier: MIT
// harness/point_keys.hpp -- the default key set of CONVENTIONS.md
// ("Benchmarks that tell the truth") and the two measurements the point
// benchmarks take of it: random sparse 64-bit keys, the time per operation,
// and the bytes the allocator has handed out (bench_peers_maple and
// bench/skiplist/point_extents_bench.cpp).
#pragma once

#include <malloc.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <unordered_set>
#include <vector>

namespace rcukit::harness {

// n distinct random even 64-bit keys, in the order drawn (even: never
// UINT64_MAX, so [k, k + 1) is a valid extent, and k >> 1 fits 63 bits).
inline std::vector<uint64_t> sparse_keys(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::unordered_set<uint64_t> seen;
  seen.reserve(n * 2);
  std::vector<uint64_t> k;
  k.reserve(n);
  while (k.size() < n) {
    const uint64_t x = rng() >> 1 << 1;
    if (seen.insert(x).second) k.push_back(x);
  }
  return k;
}

// Bytes malloc has handed out and not taken back (its arenas and its
// mmapped chunks).
inline size_t heap_bytes() {
  const struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

// Nanoseconds per operation since t0 for `ops` operations.
inline double ns_since(std::chrono::steady_clock::time_point t0, size_t ops) {
  return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() /
         static_cast<double>(ops);
}

}  // namespace rcukit::harness
