// Deterministic races between extent_skiplist's readers and a right
// redistribution (issue 24, race 1), forced through the traits hooks
// (skiplist_race_support.hpp). A redistribution moves the top extents of a
// full leaf to its successor and lowers the successor's key: extents move
// right, past a reader that may be between two reads.
//
// What can fail here:
//  * a reader sees the extent being inserted, then, one call later, no longer
//    sees it (lookup, lower_bound, prev_extent disagree with an earlier
//    answer) while the writer is held between the two leaves' changes.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>

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

}  // namespace
}  // namespace rcukit::testing
