// SPDX-License-Identifier: MIT
// rcukit/detail/striped_counter.hpp -- statistics counters that writers on
// different cores update without sharing a cache line.
//
// The idea. A counter bumped on every update (keys present, bytes held,
// live allocations) would be one cache line that every writer writes. Here
// each thread picks a stripe once (round-robin on its first use) and only
// adds to its own stripe's cell; a reader sums the cells. A cell holds
// Fields counters, so the statistics one update changes together share one
// line of one stripe.
//
// Invariants: (1) a thread always adds to the same stripe; (2) every access
// is relaxed: the sum is a statistic, exact only once the writers are
// quiescent (joined, or ordered before the reader by rcu::barrier() or a
// lock), which orders their updates before the read; a concurrent load()
// is a snapshot that may mix old and new cells.
// Not supported: exact concurrent reads; more than stripe_count threads
// without sharing (threads beyond it share stripes, which stays correct).
#pragma once

#include <atomic>
#include <cstddef>

namespace rcukit::detail {

inline constexpr unsigned stripe_count = 8;

// The calling thread's stripe, in [0, stripe_count).
inline unsigned stripe_index() noexcept {
  static std::atomic<unsigned> next{0};
  // relaxed: only spreads threads over stripes; any value is correct.
  static thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
  return mine;
}

// Fields signed counters, striped. Constant-initialized (usable as a
// constinit global or a static member).
template <unsigned Fields = 1>
struct striped_counter {
  struct alignas(64) cell {
    std::atomic<std::ptrdiff_t> v[Fields] = {};
  };
  cell cells[stripe_count];

  // Adds d to counter f (wait-free, one relaxed RMW on the caller's stripe).
  void add(std::ptrdiff_t d, unsigned f = 0) noexcept {
    cells[stripe_index()].v[f].fetch_add(d, std::memory_order_relaxed);  // statistic: invariant (2)
  }
  // Sum of counter f over the stripes (wait-free; see invariant (2)).
  std::ptrdiff_t load(unsigned f = 0) const noexcept {
    std::ptrdiff_t n = 0;
    for (const cell& c : cells) n += c.v[f].load(std::memory_order_relaxed);  // statistic: invariant (2)
    return n;
  }
};

}  // namespace rcukit::detail
