// SPDX-License-Identifier: MIT
// Misuse of an extent skiplist that would corrupt or read unprotected
// aborts, naming the caller's file and line (docs/API.md, "Common rules"):
// a qsbr list used from a thread that never registered or is offline (it
// would run with no RCU protection at all), and a leaf view indexed out of
// range.
#include <gtest/gtest.h>

#include <cstdint>

#include "rcukit/extent_skiplist.hpp"

namespace {

using qsbr_list = rcukit::extent_skiplist<uint64_t, rcukit::rcu::qsbr>;
constexpr const char* kCaller = "not registered or is offline.*\\(called from .*misuse_test\\.cpp:[0-9]+";

class SkiplistMisuseDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }  // liburcu runs threads
};

TEST_F(SkiplistMisuseDeathTest, QsbrListFromAnUnregisteredThread) {
  qsbr_list m;  // constructing touches no read side
  EXPECT_DEATH((void)m.lookup(1), kCaller);
  EXPECT_DEATH((void)m.insert(rcukit::extent{1, 1}, 2), kCaller);
  EXPECT_DEATH((void)m.erase(1), kCaller);
  EXPECT_DEATH(m.for_each(0, 10, [](const qsbr_list::entry&) {}), kCaller);
  EXPECT_DEATH((void)m.size(), kCaller);
  EXPECT_DEATH((void)m.insert_hole(rcukit::hole_request{}, 1), kCaller);
}

TEST_F(SkiplistMisuseDeathTest, QsbrListFromAnOfflineThread) {
  rcukit::rcu::thread_registration<rcukit::rcu::qsbr> reg;
  qsbr_list m;
  ASSERT_TRUE(m.insert(rcukit::extent{1, 1}, 2).ok());  // registered and online: fine
  EXPECT_DEATH(
      {
        rcukit::rcu::offline_scope<rcukit::rcu::qsbr> off;
        (void)m.lookup(1);
      },
      kCaller);
  m.clear();
  rcukit::rcu::quiescent_state<rcukit::rcu::qsbr>();
  rcukit::rcu::barrier<rcukit::rcu::qsbr>();
}

TEST_F(SkiplistMisuseDeathTest, LeafViewIndexOutOfRange) {
  rcukit::extent_skiplist<uint64_t> m;
  ASSERT_TRUE(m.insert(rcukit::extent{1, 1}, 2).ok());
  rcukit::rcu::read_guard<> g;
  const auto v = m.first_leaf(g);
  ASSERT_TRUE(v);
  EXPECT_DEATH((void)v.at(v.size()), "index out of range.*\\(called from .*misuse_test\\.cpp:[0-9]+");
}

}  // namespace
