// SPDX-License-Identifier: MIT
// Single-threaded tests of extent_skiplist: the shared model-based suite
// (default leaves, and 4-extent leaves that split and die constantly), leaf
// iteration, preload tokens, and allocation-failure injection.
//
// What can fail here: any disagreement with extent_model (results, statuses,
// insert_hole starts, iteration), a broken invariant (check_invariants), a
// leaf leaked or freed twice (live counter after rcu::barrier), an error that
// changed the contents.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_test_traits.hpp"
#include "support/extent_index_suite.hpp"
#include "support/extent_model.hpp"

namespace rcukit::testing {
namespace {

using default_list = extent_skiplist<uint64_t, rcu::memb, default_test_traits>;
using tiny_list = extent_skiplist<uint64_t, rcu::memb, tiny_test_traits>;
using qsbr_tiny_list = extent_skiplist<uint64_t, rcu::qsbr, counting_traits<4, 4>>;
using linear_hole_list = extent_skiplist<uint64_t, rcu::memb, counting_traits<8, 8, true, 512, false>>;
using own_tower_list = extent_skiplist<uint64_t, rcu::memb, tiny_own_tower_traits>;

static_assert(extent_index<extent_skiplist<uint64_t>>, "extent_skiplist must model rcukit::extent_index");
static_assert(extent_index<default_list> && extent_index<tiny_list> && extent_index<qsbr_tiny_list>);

template <class L>
void expect_no_live_leaves() {
  rcu::barrier<typename L::rcu_flavor>();
  EXPECT_EQ(L::traits_type::live.load(std::memory_order_relaxed), 0) << "leaves leaked";
}

// A corrupt tower (say, a dead leaf still linked above level 0) makes every
// later test in this binary walk freed leaves and possibly loop forever (the
// planted-bug canary 3 used to end in a timeout that way). So this check
// stops the whole binary at the first violation, with the reason; the test
// is registered first so it runs before the long suites.
template <class L>
void expect_sound(const L& l, const char* op, uint64_t k) {
  const absl::Status s = l.check_invariants();
  if (!s.ok()) {
    std::fprintf(stderr, "check_invariants failed after %s %llu: %s\n", op,
                 static_cast<unsigned long long>(k), std::string(s.message()).c_str());
    std::abort();
  }
}

// Invariants 1 and 5 checked after every leaf removal and every split, so a
// removal that leaves a dead leaf linked at some level, or a link that skips
// a leaf, is reported at the operation that caused it (before a later walk
// through the dead leaf can touch freed memory). Both leaf sizes; random
// order, so removals hit leaves of every height.
template <class L>
void check_after_every_structural_change(uint64_t seed, uint64_t n) {
  {
    L l;
    std::mt19937_64 rng(seed);
    std::vector<uint64_t> keys(n);
    for (uint64_t i = 0; i < keys.size(); ++i) keys[i] = i * 4;
    std::shuffle(keys.begin(), keys.end(), rng);
    size_t leaves = l.leaf_count();
    for (uint64_t k : keys) {
      ASSERT_TRUE(l.insert(extent{k, 3}, k).ok());
      if (const size_t now = l.leaf_count(); now != leaves) {
        leaves = now;
        expect_sound(l, "inserting", k);
      }
    }
    EXPECT_GT(leaves, 50u);
    std::shuffle(keys.begin(), keys.end(), rng);
    size_t removals = 0;
    for (uint64_t k : keys) {
      const auto e = l.erase(k + 1);
      ASSERT_TRUE(e.has_value()) << k;
      ASSERT_EQ(e->range.start, k);
      if (const size_t now = l.leaf_count(); now != leaves) {
        leaves = now;
        ++removals;
        expect_sound(l, "erasing", k);
      }
    }
    EXPECT_GT(removals, 50u);
    EXPECT_EQ(l.leaf_count(), 1u);
    EXPECT_TRUE(l.empty());
  }
  expect_no_live_leaves<L>();
}

TEST(SkiplistInvariants, CheckedAfterEverySplitAndRemoval) {
  check_after_every_structural_change<tiny_list>(11, 600);      // ~200 leaves of 4
  check_after_every_structural_change<default_list>(12, 3000);  // ~125 leaves of 32
  check_after_every_structural_change<own_tower_list>(13, 600);
}

using SkiplistTypes =
    ::testing::Types<default_list, tiny_list, qsbr_tiny_list, linear_hole_list, own_tower_list>;
INSTANTIATE_TYPED_TEST_SUITE_P(Skiplist, ExtentIndexSuite, SkiplistTypes);

TEST(SkiplistLeaks, EveryLeafReclaimed) {
  {
    tiny_list l;
    for (uint64_t i = 0; i < 2000; ++i) ASSERT_TRUE(l.insert(extent{i * 3, 2}, i).ok());
    // Nodes come from pool chunks (held / 8, at least 4 KiB), so the
    // counter sees chunks, not leaves: ~700 leaves of 4 slots.
    EXPECT_GT(l.leaf_count(), 400u);
    EXPECT_GT(tiny_test_traits::live.load(), 0);
    for (uint64_t i = 0; i < 2000; i += 3) ASSERT_TRUE(l.erase(i * 3));
    ASSERT_TRUE(l.check_invariants().ok()) << l.check_invariants();
    l.clear();
    EXPECT_TRUE(l.empty());
    EXPECT_EQ(l.leaf_count(), 1u);
    for (uint64_t i = 0; i < 500; ++i) ASSERT_TRUE(l.insert(extent{i * 5, 2}, i).ok());
  }  // destructor frees the rest
  expect_no_live_leaves<tiny_list>();
}

TEST(SkiplistLeafIteration, WalksEveryExtentBothWays) {
  tiny_list l;
  extent_model<uint64_t> model;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const uint64_t k = rng() % 100000;
    const extent e{k, 1 + rng() % 10};
    EXPECT_EQ(l.insert(e, k).code(), model.insert(e, k).code());
  }
  std::vector<tiny_list::entry> fwd, bwd;
  {
    rcu::read_guard<rcu::memb> g;
    for (auto v = l.first_leaf(g); v; v = l.next_leaf(g, v)) {
      ASSERT_GT(v.size(), 0u);
      for (size_t i = 0; i < v.size(); ++i) fwd.push_back(v.at(i));
    }
    for (auto v = l.last_leaf(g); v; v = l.prev_leaf(g, v)) {
      for (size_t i = v.size(); i-- > 0;) bwd.push_back(v.at(i));
    }
  }
  EXPECT_EQ(fwd, model.all());
  std::reverse(bwd.begin(), bwd.end());
  EXPECT_EQ(bwd, model.all());
  {
    tiny_list empty;
    rcu::read_guard<rcu::memb> g;
    EXPECT_FALSE(empty.first_leaf(g));
    EXPECT_FALSE(empty.last_leaf(g));
  }
  l.clear();
  EXPECT_EQ(l.leaf_count(), 1u);
}

// Removed leaves (with their towers and blocks) go back to the list's node
// pool, which reuses them once a grace period has ended
// (detail/skiplist_pool.hpp); the memory stays with the list until it is
// destroyed. A polled grace period is complete after at most three
// rcu::barrier() calls (detail/rcu_poll.hpp: the chain needs two callbacks).
template <class L>
void wait_for_reuse() {
  for (int i = 0; i < 3; ++i) rcu::barrier<typename L::rcu_flavor>();
}

// clear() retires every leaf; a second fill after the grace period reuses
// them instead of allocating as much again. Both pool modes: carved from
// chunks (tiny_list) and one allocation per node (own_tower_list).
template <class L>
void clear_then_refill_reuses_nodes() {
  using traits = typename L::traits_type;
  {
    L l;
    for (uint64_t i = 0; i < 3000; ++i) ASSERT_TRUE(l.insert(extent{i * 7, 3}, i).ok());
    l.clear();
    EXPECT_EQ(l.leaf_count(), 1u);
    wait_for_reuse<L>();
    const long held = traits::live.load();
    for (uint64_t i = 0; i < 3000; ++i) ASSERT_TRUE(l.insert(extent{i * 7, 3}, i).ok());
    l.clear();
    wait_for_reuse<L>();
    EXPECT_LT(traits::live.load(), held + held / 4) << "the second fill did not reuse the removed nodes";
  }
  expect_no_live_leaves<L>();
}
TEST(SkiplistLeaks, ClearThenRefillReusesNodes) {
  clear_then_refill_reuses_nodes<tiny_list>();
  clear_then_refill_reuses_nodes<own_tower_list>();
}

// A token holds a leaf and, for a leaf taller than 1, its tower. The insert
// that consumes it uses them; an unused token returns them to the pool, so
// a loop of unused tokens never grows what the list holds.
TEST(SkiplistPreload, TokenIsUsedOrReturned) {
  using traits = tiny_own_tower_traits;
  {
    own_tower_list l;
    for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(l.insert(extent{i * 10, 1}, i).ok());
    const size_t leaves = l.leaf_count();
    auto t = l.preload();
    ASSERT_TRUE(t.ok());
    EXPECT_TRUE(t->holds_leaf());
    ASSERT_TRUE(l.insert(extent{100, 1}, 9, std::move(*t)).ok());  // full leaf: the token's leaf is used
    EXPECT_EQ(l.leaf_count(), leaves + 1);
    ASSERT_TRUE(l.check_invariants().ok()) << l.check_invariants();
    long steady = -1;
    for (int k = 0; k < 200; ++k) {  // unused tokens (of random heights) go back to the pool
      auto t2 = l.preload();
      ASSERT_TRUE(t2.ok());
      EXPECT_EQ(l.insert(extent{100, 1}, 9, std::move(*t2)).code(), absl::StatusCode::kAlreadyExists);
      if (k == 20) steady = traits::live.load();
    }
    // A height drawn for the first time after k == 20 allocates one tower of
    // a new size class (8 classes at most); a token that leaked would add
    // one allocation or two per iteration.
    EXPECT_LE(traits::live.load(), steady + 8) << "unused tokens are not reused";
    EXPECT_EQ(l.leaf_count(), leaves + 1);
    ASSERT_TRUE(l.check_invariants().ok());
  }
  expect_no_live_leaves<own_tower_list>();
  {
    tiny_list l;
    for (uint64_t i = 0; i < 4; ++i) ASSERT_TRUE(l.insert(extent{i * 10, 1}, i).ok());
    auto t = l.preload();
    ASSERT_TRUE(t.ok());
    ASSERT_TRUE(l.insert(extent{100, 1}, 9, std::move(*t)).ok());
    for (int k = 0; k < 20; ++k) {
      auto t2 = l.preload();
      ASSERT_TRUE(t2.ok());
      EXPECT_EQ(l.insert(extent{100, 1}, 9, std::move(*t2)).code(), absl::StatusCode::kAlreadyExists);
    }
    ASSERT_TRUE(l.check_invariants().ok());
  }
  expect_no_live_leaves<tiny_list>();
}

// Fail the Nth allocation, for every N along scripted sequences: each failure
// is ResourceExhausted and leaves the contents exactly as before. Run with
// arena towers (chunk and arena allocations fail) and with own-allocation
// towers (every tower allocation can fail).
template <class L>
void every_nth_allocation_fails(int want_surfaced) {
  using traits = typename L::traits_type;
  int surfaced = 0;
  for (long n = 1; n <= 40; ++n) {
    {
      L l;
      extent_model<uint64_t> model;
      std::mt19937_64 rng(static_cast<uint64_t>(n));
      traits::fail_countdown.store(n);
      int failures = 0;
      for (int step = 0; step < 400; ++step) {
        const auto before = model.all();
        const int failures_before = failures;
        const uint64_t k = rng() % 2000;
        if (step % 3 == 2) {
          hole_request r;
          r.size = 1 + rng() % 4;
          r.hint = k;
          auto a = l.insert_hole(r, k);
          if (a.status().code() == absl::StatusCode::kResourceExhausted) {
            ++failures;
          } else {
            auto b = model.insert_hole(r, k);
            ASSERT_TRUE(a.ok() && b.ok());
            ASSERT_EQ(*a, *b);
          }
        } else if (step % 7 == 6) {
          ASSERT_EQ(l.erase(k, 30), model.erase(k, 30));
        } else {
          const extent e{k, 1 + rng() % 3};
          auto a = l.insert(e, k);
          if (a.code() == absl::StatusCode::kResourceExhausted) {
            ++failures;
          } else {
            ASSERT_EQ(a.code(), model.insert(e, k).code());
          }
        }
        std::vector<typename L::entry> now;
        l.for_each(0, UINT64_MAX, [&](const typename L::entry& e) { now.push_back(e); });
        ASSERT_EQ(now, model.all()) << "n=" << n << " step=" << step;
        if (failures != failures_before) {
          ASSERT_EQ(now, before) << "a failed call changed the contents";
        }
      }
      // The node pool takes objects a batch at a time: a failed chunk
      // allocation after some objects were obtained is absorbed (the call
      // succeeds with those). At most one call fails, and across all n the
      // failure path must have been taken often.
      EXPECT_LE(failures, 1) << "n=" << n;
      surfaced += failures;
      ASSERT_TRUE(l.check_invariants().ok()) << l.check_invariants();
      traits::fail_countdown.store(0);
    }
    expect_no_live_leaves<L>();
  }
  EXPECT_GE(surfaced, want_surfaced) << "injected failures never reached a caller";
}

// Carving from chunks calls the allocator only when a chunk fills, so fewer
// of the 40 budgets are reached than with one allocation per node.
TEST(SkiplistAllocationFailure, EveryNthAllocationFails) { every_nth_allocation_fails<tiny_list>(2); }
TEST(SkiplistAllocationFailure, EveryNthAllocationFailsOwnTowers) {
  every_nth_allocation_fails<own_tower_list>(20);
}

// A preload whose leaf or tower allocation fails (one allocation per node)
// returns what it already had to the pool: failures leak nothing, and once
// the pool has warmed up, preloads (failed or not) hold no more memory.
TEST(SkiplistAllocationFailure, FailedPreloadReturnsWhatItTook) {
  using traits = tiny_own_tower_traits;
  {
    own_tower_list l;
    int failures = 0;
    for (int k = 0; k < 400; ++k) {
      traits::fail_countdown.store(1 + k % 2);  // the next or the one after: a leaf or a tower
      auto t = l.preload();
      traits::fail_countdown.store(0);
      if (!t.ok()) {
        EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
        ++failures;
      }
    }
    EXPECT_GE(failures, 2);  // until the pool holds a node of each kind drawn
    const long warm = traits::live.load();
    for (int k = 0; k < 400; ++k) {
      traits::fail_countdown.store(1 + k % 2);
      (void)l.preload();
      traits::fail_countdown.store(0);
    }
    EXPECT_LE(traits::live.load(), warm + 4) << "failed or unused preloads are not returned to the pool";
    EXPECT_TRUE(l.empty());
  }
  expect_no_live_leaves<own_tower_list>();
}

TEST(SkiplistAllocationFailure, PreloadReportsResourceExhausted) {
  tiny_list l;
  tiny_test_traits::fail_countdown.store(1);
  auto t = l.preload();
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  tiny_test_traits::fail_countdown.store(0);
  EXPECT_TRUE(l.empty());
}

}  // namespace
}  // namespace rcukit::testing
