// SPDX-License-Identifier: MIT
// tests/skiplist/skiplist_test_traits.hpp -- skiplist traits for tests: a
// live-allocation counter (leaves, towers, blocks, arena chunks and arenas;
// every test ends with rcu::barrier() after the list is gone and expects 0)
// and an allocation-failure injector (fail the Nth allocation from now).
// TowerChunk is the tower arena's largest chunk (small, so that chunk
// allocations are frequent and failure injection reaches them); 0 gives
// every tower its own allocation, so injection reaches each tower. Dense
// false gives leaves of height 1 (no tower) too (skiplist_traits docs).
#pragma once

#include <atomic>
#include <cstdint>
#include <new>

#include "rcukit/extent_skiplist.hpp"

namespace rcukit::testing {

template <unsigned Cap, unsigned Levels, bool Linear = false, std::size_t TowerChunk = 512, bool Dense = true,
          unsigned BlockLevel = 7, unsigned BlockEntries = 255>
struct counting_traits : skiplist_traits {
  static constexpr bool dense_index = Dense;
  static constexpr unsigned index_block_level = BlockLevel;
  static constexpr unsigned index_block_entries = BlockEntries;
  static constexpr unsigned leaf_capacity = Cap;
  static constexpr unsigned max_levels = Levels;
  static constexpr std::size_t tower_chunk_bytes = TowerChunk;
  // Leaves and blocks: small node-arena chunks with the tower arena, own
  // allocations without it, so injection reaches both kinds.
  static constexpr std::size_t leaf_chunk_bytes = TowerChunk;
  static constexpr bool linear_hole_search = Linear;  // test the fallback hole walk too
  // relaxed counters: read after rcu::barrier(), which orders the callbacks before it.
  static inline std::atomic<long> live{0};
  static inline std::atomic<long> allocations{0};
  // When > 0: the allocation that brings it to 0 fails. 0 = never fail.
  static inline std::atomic<long> fail_countdown{0};
  static void* allocate(std::size_t n) noexcept {
    long c = fail_countdown.load(std::memory_order_relaxed);
    while (c > 0 && !fail_countdown.compare_exchange_weak(c, c - 1, std::memory_order_relaxed)) {
    }
    if (c == 1) return nullptr;
    void* p = ::operator new(n, std::nothrow);
    if (p != nullptr) {
      live.fetch_add(1, std::memory_order_relaxed);
      allocations.fetch_add(1, std::memory_order_relaxed);
    }
    return p;
  }
  static void deallocate(void* p) noexcept {
    live.fetch_sub(1, std::memory_order_relaxed);
    ::operator delete(p);
  }
};

using default_test_traits = counting_traits<32, 32>;
// Many splits and leaf removals; index blocks at level 2 with 3 entries,
// so block towers are common and blocks overflow, shrink and refill often.
using tiny_test_traits = counting_traits<4, 8, false, 512, true, 2, 3>;
// Towers without the arena, and leaves of height 1 without a tower.
using tiny_own_tower_traits = counting_traits<4, 8, false, 0, false>;

}  // namespace rcukit::testing
