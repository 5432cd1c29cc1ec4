// SPDX-License-Identifier: MIT
// Deterministic races of extent_skiplist's hole index and leaf views
// (issue 15's defects, and issue 24's race 2), forced through the traits
// hooks the list offers tests (skiplist_race_support.hpp).
//
// What can fail here:
//  * an erase that read the hole index as off is preempted before it locks;
//    meanwhile the index is armed and, after the grace period, a search
//    lowers the bound of the leaf whose gap the erase then opens: the bound
//    must still cover that gap (the gap stays allocatable);
//  * a hole search lowers a span's bound from the children it listed while
//    the span's end tower is removed (its span, with a large gap, joins the
//    one being lowered): the gap must stay findable and the bounds covering;
//  * a raise returns while a split adds a level and a search tightens it:
//    the same;
//  * a leaf view from an earlier read side is stepped from after its leaf
//    was removed and its memory reused: the next view must continue right
//    after the old one's last extent (no skipped or repeated extent).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_race_support.hpp"

namespace rcukit::testing {
namespace {

// The hole index switches on at the first insert_hole and lets searches
// lower bounds after a grace period (detail/skiplist_holes.hpp).
void arm_hole_index(race_list& l) {
  hole_request r;
  r.size = 1;
  r.floor = uint64_t{1} << 60;
  auto s = l.insert_hole(r, 0);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE(l.erase(*s).has_value());
  for (int i = 0; i < 3; ++i) rcu::barrier();
}

// Four keys per leaf, filled in ascending order (each new leaf starts with
// the extent that did not fit, see skiplist_write.hpp), one leaf per group.
void fill_leaves(race_list& l, std::initializer_list<uint64_t> firsts) {
  for (uint64_t f : firsts) {
    for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(l.insert(extent{f + i, 1}, f + i).ok());
  }
}

// Defect 1 of issue 15: leaves H (head) | X (height 3) | E (height 3) | F
// (height 2) | G (height 3). At level 2, X's span is {X} and E's is {E, F};
// F owns the gap [67, 107). After a search has lowered the bounds, an erase
// and re-insert in X leave X's bounds loose (56, above F's gap). A
// second search lists X's level-2 children (just X), computes X's own
// largest gap (6) and is held before storing it. Meanwhile E empties and is
// removed, so E's span, with F's gap, joins X's; merging E's bounds into X
// changes nothing X's listing can see (X's level-2 bound already covers it,
// E's level-1 bound is 0). The search resumes: X's bound must not end up
// below F's gap (the old code stored 6).
TEST(SkiplistRaces, TighteningWhileTheSpanEndIsRemoved) {
  {
    race_list l;
    heights::set({3, 3, 2, 3, 2});
    for (uint64_t k = 0; k < 4; ++k) ASSERT_TRUE(l.insert(extent{k, 1}, k).ok());
    ASSERT_TRUE(l.insert(extent{10, 50}, 10).ok());
    for (uint64_t k = 60; k < 67; ++k) ASSERT_TRUE(l.insert(extent{k, 1}, k).ok());  // X ends at 62, E is 63..66
    for (uint64_t k = 107; k < 111; ++k) ASSERT_TRUE(l.insert(extent{k, 1}, k).ok());
    for (uint64_t k = 400; k < 404; ++k) ASSERT_TRUE(l.insert(extent{k, 1}, k).ok());
    ASSERT_EQ(l.leaf_count(), 5u);
    arm_hole_index(l);
    hole_request big;  // no fit below 150: a search that lowers every bound of 50 or more it passes
    big.size = 50;
    big.limit = 150;
    ASSERT_EQ(l.insert_hole(big, 0).status().code(), absl::StatusCode::kResourceExhausted);
    ASSERT_TRUE(l.check_invariants().ok()) << l.check_invariants();
    ASSERT_TRUE(l.erase(10).has_value());  // opens [4, 60) in X: X's bounds rise to 56
    ASSERT_TRUE(l.insert(extent{10, 50}, 10).ok());
    gates::reset();
    gates::g[0].arm(detail::sl_sync::before_tighten, 10, 2);
    std::thread searcher([&] { EXPECT_FALSE(l.insert_hole(big, 0).ok()); });
    ASSERT_TRUE(gates::g[0].wait_held()) << "the search never reached X's level-2 bound";
    for (uint64_t k = 63; k < 67; ++k) ASSERT_TRUE(l.erase(k).has_value());  // E empties: removed
    EXPECT_EQ(l.leaf_count(), 4u);
    gates::g[0].open = true;
    searcher.join();
    const absl::Status inv = l.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv;
    // [63, 107) is free now: a request of 30 fits there first (then at 111).
    hole_request r;
    r.size = 30;
    r.limit = 150;
    const auto s = l.insert_hole(r, 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s, 63u);
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

// Defect 2 of issue 15: an erase opens a gap and climbs to the top level it
// knows of; held there, a split adds a level (a taller tower) and a search
// tightens the new level's bounds. The erase then returns: every bound
// must cover its gap, and the gap must be found.
TEST(SkiplistRaces, RaiseReturningWhileALevelIsAdded) {
  {
    race_list l;
    heights::set({2, 2, 2, 2, 2});  // the fifth: the leaf arm_hole_index's extent lands in
    fill_leaves(l, {0, 10, 20, 30, 40});
    arm_hole_index(l);
    hole_request big;  // no fit below 50 (every gap there is 6 long): a search that lowers bounds
    big.size = 30;
    big.limit = 50;
    ASSERT_EQ(l.insert_hole(big, 0).status().code(), absl::StatusCode::kResourceExhausted);
    // Erasing leaf 20's extents one by one: the last one opens [14, 30)
    // (owned by leaf 30) and climbs; it is held when it reaches the top (3).
    for (uint64_t k = 20; k < 23; ++k) ASSERT_TRUE(l.erase(k).has_value());
    gates::reset();
    gates::g[0].arm(detail::sl_sync::climb_done, 30, 2);
    std::thread eraser([&] { EXPECT_TRUE(l.erase(23).has_value()); });
    ASSERT_TRUE(gates::g[0].wait_held()) << "the erase never finished its climb";
    heights::set({6});
    for (uint64_t i = 0; i < 5; ++i) ASSERT_TRUE(l.insert(extent{50 + i, 1}, 50 + i).ok());  // a split: height 6
    EXPECT_EQ(l.insert_hole(big, 0).status().code(), absl::StatusCode::kResourceExhausted);  // tightens
    gates::g[0].open = true;
    eraser.join();
    const absl::Status inv = l.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv;
    hole_request r;
    r.size = 16;
    r.limit = 50;
    const auto s = l.insert_hole(r, 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s, 14u);
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

// Issue 24, race 2: leaves H (head) [0, 4) | X [10, 50) in four extents |
// Y [55, 59). An erase of [20, 30) in X, on the finger path, has read the
// hole index (off) and is held before it locks X (a preemption). The index
// is armed; once its grace period has ended a search lowers X's bound to
// the gap it owns then ([4, 10): 6). The erase then opens [20, 30): X's bound
// must cover it, or the hole index hides a free gap of 10 for good. A writer
// that read "off" must be inside a read side entered before it looked, which
// the arming grace period waits for: when the held erase is inside one, the
// grace period cannot end while it is held, so the test lets it finish
// first (the only schedule RCU allows); otherwise it runs the schedule above.
TEST(SkiplistRaces, EraseThatReadTheHoleIndexOffIsCoveredByItsArming) {
  {
    race_list l;
    insert_points(l, {0, 1, 2, 3});
    for (uint64_t s = 10; s < 50; s += 10) ASSERT_TRUE(l.insert(extent{s, 10}, s).ok());
    insert_points(l, {55, 56, 57, 58});
    ASSERT_EQ(l.leaf_count(), 3u);
    hole_request ten;  // fits only where [20, 30) is, once free
    ten.size = 10;
    ten.limit = 55;
    hole_request eleven = ten;  // fits nowhere below 55: a search that lowers every bound it passes
    eleven.size = 11;
    gates::reset();
    gate& held = gates::g[0];
    held.arm(detail::sl_sync::lock_leaf, 10, 0);  // the erase, about to lock X
    std::thread eraser([&] {
      EXPECT_TRUE(l.lookup(25).has_value());  // the finger: X
      EXPECT_TRUE(l.erase(20).has_value());
    });
    ASSERT_TRUE(held.wait_held()) << "the erase never reached X's lock";
    const bool covered = held.in_read_side.load();
    if (covered) {  // the grace period below would wait for the held erase
      held.open = true;
      eraser.join();
    }
    arm_hole_index(l);  // arms, then waits for grace periods
    EXPECT_EQ(l.insert_hole(eleven, 0).status().code(), absl::StatusCode::kResourceExhausted);
    if (!covered) {
      held.open = true;
      eraser.join();
    }
    const absl::Status inv = l.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv;
    const auto s = l.insert_hole(ten, 1);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s, 20u);
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

// Defect 3 of issue 15: a view taken in one read side, stepped from in a
// later one after its successor leaf was removed and its memory reused by a
// leaf elsewhere, must continue right after its own last extent.
TEST(SkiplistRaces, StaleLeafViewStepsByKey) {
  {
    race_list l;
    for (uint64_t f = 0; f < 400; f += 10) fill_leaves(l, {f});  // 40 leaves of 4
    race_list::leaf_view v;
    {
      rcu::read_guard<> g;
      v = l.first_leaf(g);
      ASSERT_TRUE(v);
      ASSERT_EQ(v.at(v.size() - 1).range.start, 3u);
    }
    // Remove the 30 leaves after the head; after a grace period the node
    // pool (detail/skiplist_pool.hpp) hands their memory to the leaves that
    // new extents far away need.
    for (uint64_t k = 10; k < 310; ++k) {
      if (k % 10 < 4) {
        ASSERT_TRUE(l.erase(k).has_value());
      }
    }
    ASSERT_EQ(l.leaf_count(), 10u);
    for (int round = 0; round < 4; ++round) {
      for (int i = 0; i < 3; ++i) rcu::barrier();
      for (uint64_t i = 0; i < 64; ++i) ASSERT_TRUE(l.insert(extent{100000 + round * 1000 + i, 1}, i).ok());
    }
    rcu::read_guard<> g;
    std::vector<uint64_t> seen;
    for (auto w = l.next_leaf(g, v); w; w = l.next_leaf(g, w)) {
      for (size_t i = 0; i < w.size(); ++i) seen.push_back(w.at(i).range.start);
    }
    std::vector<uint64_t> want;
    l.for_each(4, UINT64_MAX, [&](const race_list::entry& e) { want.push_back(e.range.start); });
    EXPECT_EQ(seen, want);
    ASSERT_FALSE(seen.empty());
    EXPECT_EQ(seen.front(), 310u);
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

}  // namespace
}  // namespace rcukit::testing
