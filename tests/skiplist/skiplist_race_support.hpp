// SPDX-License-Identifier: MIT
// tests/skiplist/skiplist_race_support.hpp -- what the deterministic race
// tests of extent_skiplist share: gates that hold a thread at one of the
// list's sync points (Traits::sync_point, detail/skiplist_core.hpp), a
// watch that notes when a reader waits for a write section, scripted tower
// heights (Traits::draw_height), and the traits that route both.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <thread>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_test_traits.hpp"

namespace rcukit::testing {

// Armed for one (point, key, level), a gate holds the first thread that
// reaches it until it is opened; it notes whether that thread was inside an
// RCU read side then. seq_cst (all): a test-only handshake.
struct gate {
  std::atomic<int> point{-1};
  std::atomic<uint64_t> key{0};
  std::atomic<unsigned> level{0};
  std::atomic<bool> held{false};
  std::atomic<bool> open{false};
  std::atomic<bool> in_read_side{false};

  void arm(detail::sl_sync p, uint64_t k, unsigned l) {
    key = k;
    level = l;
    held = false;
    open = false;
    point = static_cast<int>(p);
  }
  // True if this gate caught the caller (it then returns once opened).
  bool hit(detail::sl_sync p, uint64_t k, unsigned l) noexcept {
    int want = static_cast<int>(p);
    if (point.load() != want || key.load() != k || level.load() != l) return false;
    if (!point.compare_exchange_strong(want, -1)) return false;  // only the first thread stops
    in_read_side = rcu::detail::in_read_side<rcu::memb>();
    held = true;
    while (!open.load()) std::this_thread::yield();
    return true;
  }
  // Waits (generously) until a thread is held; false if none came.
  bool wait_held() const {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!held.load()) {
      if (std::chrono::steady_clock::now() > until) return false;
      std::this_thread::yield();
    }
    return true;
  }
};

// Every gate a test may arm; the sync hook offers each point to all of them.
struct gates {
  static inline gate g[4];
  // Set when a reader is about to wait for a write section while `watch` is on.
  static inline std::atomic<bool> watch{false};
  static inline std::atomic<bool> reader_waited{false};
  static void hit(detail::sl_sync p, uint64_t k, unsigned l) noexcept {
    if (p == detail::sl_sync::reader_waits) {
      if (watch.load()) reader_waited = true;
      return;
    }
    for (gate& x : g) {
      if (x.hit(p, k, l)) return;
    }
  }
  static void reset() {
    for (gate& x : g) x.point = -1;
    watch = false;
    reader_waited = false;
  }
};

// Scripted heights: the next allocations take heights from `script`, in
// order (0 = random once the script runs out).
struct heights {
  static inline std::atomic<unsigned> script[16] = {};
  static inline std::atomic<unsigned> at{0}, len{0};
  static void set(std::initializer_list<unsigned> h) {
    unsigned i = 0;
    for (unsigned x : h) script[i++] = x;
    at = 0;
    len = i;
  }
  static unsigned next() noexcept {
    const unsigned i = at.fetch_add(1);
    return i < len.load() ? script[i].load() : 0;
  }
};

// Waits until pred() holds; false after a generous bound (a test that
// reaches it has failed anyway: the bound only keeps it from hanging).
template <class Pred>
bool eventually(Pred pred) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

// 4-extent leaves, 8 levels, no index blocks, the hooks above.
struct race_traits : counting_traits<4, 8, false, 512, true, 0, 0> {
  static void sync_point(detail::sl_sync p, uint64_t k, unsigned l) noexcept { gates::hit(p, k, l); }
  static unsigned draw_height() noexcept { return heights::next(); }
};
using race_list = extent_skiplist<uint64_t, rcu::memb, race_traits>;

// Inserts point extents [k, k + 1) with value k, in the order given. With
// 4-extent leaves filled in ascending order, each group of four that
// follows a full leaf starts a new leaf (skiplist_write.hpp's uneven split).
inline void insert_points(race_list& l, std::initializer_list<uint64_t> keys) {
  for (uint64_t k : keys) ASSERT_TRUE(l.insert(extent{k, 1}, k).ok()) << k;
}

}  // namespace rcukit::testing
