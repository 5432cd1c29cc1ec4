// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_core.hpp -- the compile-time shape and the shared
// state of one extent_skiplist, which the concern files operate on:
//   skiplist_read.hpp    lockless descent, probes, scans, leaf views
//   skiplist_holes.hpp   the hole index (gap bounds) and the hole search
//   skiplist_index.hpp   tower links and index blocks (per-tower locks)
//   skiplist_write.hpp   the writer protocol (insert, erase, split, ...)
//   skiplist_check.hpp   the invariant checker
// Each of them is a struct of static functions over sl_state<S>&, so every
// dependency between them is an explicit call.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "rcukit/detail/fatal.hpp"
#include "rcukit/detail/skiplist_leaf.hpp"
#include "rcukit/detail/skiplist_pool.hpp"
#include "rcukit/detail/skiplist_tower.hpp"

namespace rcukit::detail {

// Internal corruption: abort with the place it was detected (detail/fatal.hpp).
[[noreturn]] inline void sl_fatal(const char* what, const call_site& where = call_site::current()) noexcept {
  fatal("extent_skiplist", what, where);
}

// Points where a test can hold a thread to force an interleaving
// (Traits::sync_point, optional; the default traits have none, so the calls
// compile to nothing). Used by the deterministic race tests.
enum class sl_sync {
  before_tighten,  // a search listed the children of tower `key` at `level` and is about to lower its bound
  climb_done,      // a raise for `key` reached the top `level` and is about to return
  lock_leaf,       // a writer holding `level` leaf locks of its set is about to lock the leaf of key `key`
  redistributed,   // a redistribution gave extents to the successor (new key `key`), not yet dropped them
  reader_waits,    // a reader is about to wait for the write section of the leaf it probes at `key`
  walk_found,      // a backward walk found the leaf covering `key` and is about to copy it
  walk_copied,     // a backward walk copied the leaf covering `key` and is about to step from it
};
template <class Traits>
inline constexpr bool sl_has_sync = requires { Traits::sync_point(sl_sync{}, uint64_t{}, 0u); };
template <class Traits>
inline void sl_sync_point(sl_sync p, uint64_t key, unsigned level) noexcept {
  if constexpr (sl_has_sync<Traits>) Traits::sync_point(p, key, level);
}

// Reads an optional Traits member with a default.
#define RCUKIT_SL_TRAIT(name, type, fallback)                          \
  [] {                                                                 \
    if constexpr (requires { Traits::name; }) {                        \
      return static_cast<type>(Traits::name);                          \
    } else {                                                           \
      return static_cast<type>(fallback);                              \
    }                                                                  \
  }()

template <class T, class Rcu, class Traits>
struct sl_shape {
  using value_type = T;
  using rcu_flavor = Rcu;
  using traits = Traits;
  static constexpr unsigned kWords = (sizeof(T) + 7) / 8;
  static constexpr unsigned kCap = Traits::leaf_capacity;
  static constexpr unsigned kLevels = Traits::max_levels;
  // Every leaf but the head gets a tower (height >= 2), so tower level 1
  // lists every leaf (skiplist_traits::dense_index).
  static constexpr bool kDense = RCUKIT_SL_TRAIT(dense_index, bool, true) && kLevels >= 2;
  static constexpr unsigned kBlockLevelWanted = RCUKIT_SL_TRAIT(index_block_level, unsigned, 7);
  static constexpr unsigned kBlockEntriesWanted = RCUKIT_SL_TRAIT(index_block_entries, unsigned, 255);
  static constexpr bool kBlocks =
      kDense && kBlockLevelWanted >= 2 && kBlockLevelWanted < kLevels && kBlockEntriesWanted >= 1;
  static constexpr unsigned kBlockLevel = kBlocks ? kBlockLevelWanted : 0;
  static constexpr unsigned kBlockEntries = kBlocks ? kBlockEntriesWanted : 0;
  static constexpr std::size_t kChunk = RCUKIT_SL_TRAIT(leaf_chunk_bytes, std::size_t, std::size_t{8} << 20);
  static constexpr std::size_t kTowerChunk =
      RCUKIT_SL_TRAIT(tower_chunk_bytes, std::size_t, std::size_t{256} << 10);
  static constexpr bool kLinearHoles = RCUKIT_SL_TRAIT(linear_hole_search, bool, false);
  // false compiles the hole index out (insert_hole then walks linearly):
  // the measurement of what the index costs writers that never use it.
  static constexpr bool kHoleIndex = RCUKIT_SL_TRAIT(hole_index, bool, true) && !kLinearHoles;

  using raw = sl_raw_entry<kWords>;
  using leaf = sl_leaf<kWords, kCap, kBlockLevel, kBlockEntries>;
  using tower = typename leaf::tower_type;
  using block = typename tower::block;

  // Node pool classes: 0 leaves, 1 index blocks, 2 + h towers of height h.
  static constexpr unsigned kClasses = 2 + kLevels + 1;
  static constexpr std::size_t size(unsigned c) noexcept {
    return c == 0 ? sizeof(leaf) : c == 1 ? sizeof(block) : c >= 4 ? tower::bytes(c - 2) : tower::kAlign;
  }
  static constexpr std::size_t align(unsigned c) noexcept {
    return c == 0 ? alignof(leaf) : c == 1 ? alignof(block) : tower::kAlign;
  }
  // Constructs a newly carved object: a leaf is constructed once and then
  // recycled without ever being constructed again (a stale finger may read
  // its atomics at any time, skiplist_read.hpp); it starts dead (reused
  // leaves are dead too, since removal marks them) until published.
  // Towers and blocks are constructed by each user (no stale reader).
  static void construct(void* p, unsigned c) noexcept {
    if (c == 0) {
      leaf* l = ::new (p) leaf();
      l->dead.store(true, std::memory_order_relaxed);  // unpublished
    }
  }
  // Where a free object keeps the pool's link (skiplist_pool.hpp).
  static constexpr std::size_t link_offset(unsigned c) noexcept { return c == 0 ? offsetof(leaf, pool_next) : 0; }
  // The memory of a removed leaf and of its tower and block, by class.
  template <class F>
  static void parts(leaf* l, F&& f) noexcept {
    if (tower* t = l->tower) {
      if (tower::has_block(l->height) && t->block_slot() != nullptr) f(t->block_slot(), 1u);
      f(tower::base(t, l->height), 2u + l->height);
    }
    f(l, 0u);
  }
  using pool = sl_pool<sl_shape, Traits, Rcu>;
};

#undef RCUKIT_SL_TRAIT

// The state every concern shares. The head leaf (key 0, never removed) has
// a tower of every level; index blocks of the head live here too.
template <class S>
struct sl_state {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using block = typename S::block;

  sl_state() noexcept {
    head.height = static_cast<uint8_t>(S::kLevels);
    head.tower = tower::construct(head_tower_mem, S::kLevels, &head);
    head.tower->st().linked.store(static_cast<uint8_t>(S::kLevels - 1), std::memory_order_relaxed);
    if constexpr (S::kBlocks) head.tower->block_slot() = &head_block;
  }

  leaf head;
  alignas(16) unsigned char head_tower_mem[S::tower::bytes(S::kLevels)];
  block head_block;
  typename S::pool pool;
  // Distinguishes this list from every other one, over time too (a finger
  // of a destroyed list whose address was reused must not match).
  const uint64_t id = next_id();
  static uint64_t next_id() noexcept {
    static std::atomic<uint64_t> n{1};  // relaxed: only needs distinct values
    return n.fetch_add(1, std::memory_order_relaxed);
  }
  // Read by every descent, written rarely: a line of their own.
  // levels: a hint, the tallest height linked so far (only grows).
  alignas(64) std::atomic<unsigned> levels{1};
  // The hole index: 0 off (nobody asked for a hole: writers keep no bounds),
  // 1 arming (writers keep bounds; searches may not lower them until the
  // grace period of holes_cookie has ended), 2 on.
  std::atomic<uint8_t> holes{0};
  std::atomic<uint64_t> holes_cookie{0};
};

}  // namespace rcukit::detail
