// SPDX-License-Identifier: MIT
// The writers' lock order of extent_skiplist (issue 24, race 4), forced
// through the traits hooks (skiplist_race_support.hpp) on the detail layer
// itself, so that the test can name leaves and hand a removed leaf's memory
// to a split.
//
// The danger: a writer on the finger path reads its leaf's successor without
// a read side and picks its lock order from keys it read then. Before it
// locks, that successor can be emptied, removed, pass a grace period (the
// writer holds no read side) and come back from the node pool as a new
// leaf to the LEFT of the writer's leaf. Locking "left to right" by the old
// keys then takes the writer's leaf first and waits for the reused one,
// while a second writer, locking in the list's real order, holds the reused
// leaf and waits for the first one's: a deadlock.
//
// What can fail here: a writer that holds a leaf lock reaches the point of
// waiting for a leaf that is not that leaf's successor (here: for the
// reused leaf while the other writer holds it and waits for the first);
// the two inserts not both completing, or the list's contents or
// invariants afterwards.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "rcukit/detail/skiplist_check.hpp"
#include "skiplist_race_support.hpp"

namespace rcukit::testing {
namespace {

using shape = detail::sl_shape<uint64_t, rcu::memb, race_traits>;
using state = detail::sl_state<shape>;
using leaf = shape::leaf;
using wr = detail::sl_write<shape>;
using rd = detail::sl_read<shape>;

bool insert(state& st, uint64_t start, uint64_t size, leaf* tok = nullptr) {
  shape::raw r{};
  r.start = start;
  r.size = size;
  r.w[0] = start;
  const auto out = wr::insert(st, r, tok);
  if (tok != nullptr) wr::free_unpublished(st, tok);
  return out == detail::sl_outcome::ok;
}
bool erase(state& st, uint64_t key) { return wr::erase(st, key, 1).has_value(); }
leaf* leaf_of(const state& st, uint64_t key) {
  rcu::read_guard<rcu::memb> g;
  return rd::find_leaf(st, key).self;
}
std::vector<std::pair<uint64_t, uint64_t>> contents(const state& st) {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  rcu::read_guard<rcu::memb> g;
  rd::scan_forward(st, 0, [&](const shape::raw& x) {
    out.emplace_back(x.start, x.size);
    return true;
  });
  return out;
}

// Leaves: H (head) {0..3} | M {10..13} | L {21..24}, key 20 | N {31, 32, 33},
// key 30. Writer A inserts [25, 31) on the finger path: its leaf L, its
// successor N, locks ordered [L, N]; A is held before its first lock. N is
// emptied (removed), its memory comes back from the pool after a grace
// period, and splitting M (full; L is full too, so no redistribution) makes
// it the leaf {14}, key 14, between M and L. Writer B inserts [15, 21), which
// crosses from the reused N into L: it locks N, then is held before locking
// L. A is let go. The old lock order took L, then waited for N (held by B,
// itself waiting for L): the test catches A at that wait. The fix makes A
// see, under L's lock, that N no longer follows L, drop L and start over.
TEST(SkiplistLockOrder, AStaleSuccessorReusedOnTheLeftIsNeverWaitedFor) {
  auto* st = new state;  // left alive (with both writers stuck) if the deadlock forms
  for (uint64_t k : {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33}) ASSERT_TRUE(insert(*st, k, 1));
  ASSERT_TRUE(erase(*st, 20));
  ASSERT_TRUE(insert(*st, 24, 1));
  ASSERT_TRUE(erase(*st, 30));
  leaf* const L = leaf_of(*st, 25);
  leaf* const N = leaf_of(*st, 31);
  ASSERT_NE(L, N);
  ASSERT_EQ(L->key.load(), 20u);
  ASSERT_EQ(N->key.load(), 30u);

  gates::reset();
  gate& a_first = gates::g[0];
  gate& b_second = gates::g[1];
  gate& a_waits_left = gates::g[2];
  a_first.arm(detail::sl_sync::lock_leaf, 20, 0);
  std::atomic<bool> a_done{false}, b_done{false};
  std::thread a([&] {
    {
      rcu::read_guard<rcu::memb> g;
      EXPECT_FALSE(rd::lookup(*st, 25, 1).has_value());  // sets A's finger on L
    }
    EXPECT_TRUE(insert(*st, 25, 6));
    a_done = true;
  });
  ASSERT_TRUE(a_first.wait_held()) << "A never reached its first lock";
  ASSERT_FALSE(a_first.in_read_side.load()) << "the finger path is expected to run without a read side";

  for (uint64_t k : {31, 32, 33}) ASSERT_TRUE(erase(*st, k));  // N empties: removed, to the pool
  std::vector<leaf*> spare;  // other leaves the pool hands out first
  leaf* reused = nullptr;
  for (int i = 0; i < 1000 && reused == nullptr; ++i) {
    leaf* x = wr::alloc_leaf(*st);
    ASSERT_NE(x, nullptr);
    if (x == N) {
      reused = x;
    } else {
      spare.push_back(x);
      rcu::barrier();  // A holds no read side: the pool's grace periods end
    }
  }
  ASSERT_EQ(reused, N) << "the pool never handed N back";
  ASSERT_TRUE(insert(*st, 14, 1, reused));  // M splits into the reused N: {14}
  ASSERT_EQ(leaf_of(*st, 14), N);
  ASSERT_EQ(N->key.load(), 14u);
  ASSERT_EQ(N->next0(std::memory_order_acquire), L);

  b_second.arm(detail::sl_sync::lock_leaf, 20, 1);
  std::thread b([&] {
    EXPECT_TRUE(insert(*st, 15, 6));
    b_done = true;
  });
  ASSERT_TRUE(b_second.wait_held()) << "B never reached its lock of L";

  a_waits_left.arm(detail::sl_sync::lock_leaf, 14, 1);  // A, holding L, about to wait for N
  a_first.open = true;
  ASSERT_TRUE(eventually([&] { return a_done.load() || a_waits_left.held.load(); }));
  if (a_waits_left.held.load()) {
    ADD_FAILURE() << "A holds L and is about to wait for N, which B holds while waiting for L: a deadlock. "
                     "Both writers are left stuck; the list is leaked.";
    a.detach();
    b.detach();
    return;
  }
  b_second.open = true;
  a.join();
  b.join();
  EXPECT_TRUE(b_done.load());
  using extents = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(contents(*st), (extents{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {10, 1}, {11, 1}, {12, 1}, {13, 1}, {14, 1},
                                    {15, 6}, {21, 1}, {22, 1}, {23, 1}, {24, 1}, {25, 6}}));
  {
    rcu::read_guard<rcu::memb> g;
    const absl::Status inv = detail::sl_check<shape>::run(*st);
    EXPECT_TRUE(inv.ok()) << inv;
  }
  for (leaf* x : spare) wr::free_unpublished(*st, x);
  delete st;
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

}  // namespace
}  // namespace rcukit::testing
