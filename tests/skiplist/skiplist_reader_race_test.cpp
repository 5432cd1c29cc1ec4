// SPDX-License-Identifier: MIT
// Deterministic races between extent_skiplist's readers and a right
// redistribution (issue 24, races 1 and 3), forced through the traits hooks
// (skiplist_race_support.hpp). A redistribution moves the top extents of a
// full leaf to its successor and lowers the successor's key: extents move
// right, past a reader that may be between two reads.
//
// What can fail here:
//  * a reader sees the extent being inserted, then, one call later, no longer
//    sees it (lookup, lower_bound, prev_extent disagree with an earlier
//    answer) while the writer is held between the two leaves' changes;
//  * a backward leaf walk (last_leaf, prev_leaf) skips extents present for
//    the whole walk when the leaf it stands on takes extents from its
//    predecessor (its key goes down) between the copy and the step, or when
//    the predecessor gives them away between the descent and the copy.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_race_support.hpp"

namespace rcukit::testing {
namespace {

std::optional<uint64_t> start_of(const std::optional<race_list::entry>& e) {
  if (!e) return std::nullopt;
  return e->range.start;
}

// Race 1. Leaves: H (head) [0, 4) | L {300, 302, 304, 306} (full) | N {320,
// 321}. Inserting 315 into L moves it to N (N's key goes down to 315); the
// writer is held after N took it and before L gave up its old bound (L's
// link still names N with key 320). A reader then asks, in order:
// lookup(312, 10), lookup(315), lower_bound(315), prev_extent(316). Once one
// answer shows [315, 316), every later one must (the old code answered
// [315, 316), then nothing, then 320, then 306). While the writer is held the
// reader may instead wait for it: then all four answers come after it.
TEST(SkiplistReaderRaces, AnExtentSeenOnceStaysSeenDuringARedistribution) {
  {
    race_list l;
    insert_points(l, {0, 1, 2, 3, 300, 302, 304, 306, 320, 321});
    ASSERT_EQ(l.leaf_count(), 3u);
    gates::reset();
    gate& w = gates::g[0];
    w.arm(detail::sl_sync::redistributed, 315, 0);
    std::thread writer([&] { EXPECT_TRUE(l.insert(extent{315, 1}, 315).ok()); });
    ASSERT_TRUE(w.wait_held()) << "the insert did not redistribute";
    gates::watch = true;
    std::atomic<bool> done{false};
    std::optional<uint64_t> got[4];
    std::thread reader([&] {
      got[0] = start_of(l.lookup(312, 10));
      got[1] = start_of(l.lookup(315));
      got[2] = start_of(l.lower_bound(315));
      got[3] = start_of(l.prev_extent(316));
      done = true;
    });
    // Either the reader answers while the writer is held, or it waits for it.
    ASSERT_TRUE(eventually([&] { return done.load() || gates::reader_waited.load(); }));
    w.open = true;
    writer.join();
    reader.join();
    // Each answer is the one before the insert or the one after it, and
    // after the first "after", every later one is too.
    const std::optional<uint64_t> before[4] = {320, std::nullopt, 320, 306};
    const std::optional<uint64_t> after[4] = {315, 315, 315, 315};
    bool inserted = false;
    for (int i = 0; i < 4; ++i) {
      inserted = inserted || got[i] == after[i];
      EXPECT_EQ(got[i], inserted ? after[i] : before[i]) << "answer " << i;
    }
    EXPECT_EQ(start_of(l.lookup(315)), std::optional<uint64_t>{315});
    const absl::Status inv = l.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv;
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

// Every extent start a backward walk from last_leaf yields, in order.
std::vector<uint64_t> walk_backward(const race_list& l) {
  std::vector<uint64_t> out;
  rcu::read_guard<rcu::memb> g;
  for (auto v = l.last_leaf(g); v; v = l.prev_leaf(g, v)) {
    for (size_t i = v.size(); i-- > 0;) out.push_back(v.at(i).range.start);
  }
  return out;
}

// Leaves H [0, 4) | P {10, 11, 12, 13} (full) | L: {20, 21, 22, 23} less
// `erased`. A backward walk from last_leaf is held at (point, at) while 14
// is inserted into P, which moves {13, 14} to L (L's key goes down to 13).
// The walk must yield every extent present throughout (`present`; the new
// 14 may or may not be seen), in descending order, none twice.
void backward_walk_race(std::initializer_list<uint64_t> erased, detail::sl_sync point, uint64_t at,
                        std::initializer_list<uint64_t> present) {
  {
    race_list l;
    insert_points(l, {0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23});
    for (uint64_t k : erased) ASSERT_TRUE(l.erase(k).has_value());
    ASSERT_EQ(l.leaf_count(), 3u);
    gates::reset();
    gate& r = gates::g[0];
    r.arm(point, at, 0);
    std::vector<uint64_t> seen;
    std::thread walker([&] { seen = walk_backward(l); });
    ASSERT_TRUE(r.wait_held()) << "the walk never reached its step at " << at;
    ASSERT_TRUE(l.insert(extent{14, 1}, 14).ok());
    r.open = true;
    walker.join();
    for (uint64_t k : present) {
      EXPECT_NE(std::find(seen.begin(), seen.end(), k), seen.end()) << "the walk skipped " << k;
    }
    EXPECT_TRUE(std::is_sorted(seen.rbegin(), seen.rend()));
    EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end()), seen.end()) << "an extent repeated";
    const absl::Status inv = l.check_invariants();
    EXPECT_TRUE(inv.ok()) << inv;
  }
  rcu::barrier();
  EXPECT_EQ(race_traits::live.load(), 0);
}

// Race 3, the key read after the copy. L is {23}, key 20. The walk's step
// from L's view {23} copies L at 22 (nothing at or below 22) and is held;
// then L's key goes down to 13. The walk must go on below 22, not below L's
// new key (the old code stepped to 12 and skipped 13).
TEST(SkiplistReaderRaces, BackwardWalkStepsFromTheKeyItCopied) {
  backward_walk_race({20, 21, 22}, detail::sl_sync::walk_copied, 22, {23, 13, 12, 11, 10, 3, 2, 1, 0});
}

// Race 3, the range of the leaf copied. L is {20}. The walk's step from L's
// view {20} finds P covering 19 and is held before copying it; then P gives
// {13, 14} to L. P's copy covers only up to 12: the step must look again at
// 19 (the old code took P's copy {10, 11, 12} and skipped 13).
TEST(SkiplistReaderRaces, BackwardWalkCopiesALeafThatStillCoversItsKey) {
  backward_walk_race({21, 22, 23}, detail::sl_sync::walk_found, 19, {20, 13, 12, 11, 10, 3, 2, 1, 0});
}

}  // namespace
}  // namespace rcukit::testing
