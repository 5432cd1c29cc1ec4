// SPDX-License-Identifier: MIT
// Misuse of a judy_array that would read or write unprotected aborts,
// naming the caller's file and line (docs/API.md, "Common rules"): a qsbr
// array used from a thread that never registered, or from one that is
// offline, would otherwise run with no RCU protection at all.
#include <gtest/gtest.h>

#include <cstdint>

#include "rcukit/judy_array.hpp"

namespace {

using qsbr_judy = rcukit::judy_array<std::uint64_t, rcukit::rcu::qsbr>;
constexpr const char* kCaller = "not registered or is offline.*\\(called from .*judy_misuse_test\\.cpp:[0-9]+";

class JudyMisuseDeathTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }  // liburcu runs threads
};

TEST_F(JudyMisuseDeathTest, QsbrArrayFromAnUnregisteredThread) {
  qsbr_judy a;  // constructing touches no read side
  EXPECT_DEATH((void)a.find(1), kCaller);
  EXPECT_DEATH((void)a.contains(1), kCaller);
  EXPECT_DEATH((void)a.insert(1, 2), kCaller);
  EXPECT_DEATH((void)a.insert_or_assign(1, 2), kCaller);
  EXPECT_DEATH((void)a.erase(1), kCaller);
  EXPECT_DEATH((void)a.lower_equal(1), kCaller);
  EXPECT_DEATH((void)a.upper_equal(1), kCaller);
  EXPECT_DEATH(a.for_each(0, 10, [](std::uint64_t, std::uint64_t) {}), kCaller);
}

TEST_F(JudyMisuseDeathTest, QsbrArrayFromAnOfflineThread) {
  rcukit::rcu::thread_registration<rcukit::rcu::qsbr> reg;
  {
    qsbr_judy a;
    ASSERT_TRUE(a.insert(1, 2).ok());  // registered and online: fine
    EXPECT_TRUE(a.contains(1));
    EXPECT_DEATH(
        {
          rcukit::rcu::offline_scope<rcukit::rcu::qsbr> off;
          (void)a.find(1);
        },
        kCaller);
    EXPECT_DEATH(
        {
          rcukit::rcu::offline_scope<rcukit::rcu::qsbr> off;
          (void)a.insert(3, 4);
        },
        kCaller);
  }
  rcukit::rcu::quiescent_state<rcukit::rcu::qsbr>();
  rcukit::rcu::barrier<rcukit::rcu::qsbr>();
}

}  // namespace
