// SPDX-License-Identifier: MIT
// The members every extent index shares, under concurrent writers, typed
// over every backend (API.md: assign, range, for_each):
//  * assign: a reader looking up an extent whose value is being reassigned
//    sees the old value or the new one, never no extent, while other
//    writers split, fill and empty the leaves around it;
//  * range and for_each: sorted, never a repeat, every extent present for
//    the whole walk is yielded, while extents around them come and go.
// Each runs for RCUKIT_TEST_SECONDS (default 1).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"

namespace {

using rcukit::extent;

double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

// Small leaves, so a few hundred extents make many leaves and writers split,
// redistribute and remove them all the time.
struct small_leaves : rcukit::skiplist_traits {
  static constexpr unsigned leaf_capacity = 4;
};

template <class M>
class ExtentIndexConcurrent : public ::testing::Test {
 protected:
  ~ExtentIndexConcurrent() override { rcukit::rcu::barrier<typename M::rcu_flavor>(); }
};

using Backends = ::testing::Types<rcukit::extent_skiplist<uint64_t>, rcukit::extent_skiplist<uint64_t, rcukit::rcu::memb, small_leaves>,
                                  rcukit::rbtree_extent_map<uint64_t>, rcukit::rbtree_extent_map_augmented<uint64_t>>;
TYPED_TEST_SUITE(ExtentIndexConcurrent, Backends);

// Slot i is [16 i, 16 i + 8): stable ones (i % 4 == 0) stay for the whole
// test; the others come and go. Their values encode the slot.
constexpr uint64_t kSlots = 1024;
constexpr uint64_t slot_start(uint64_t i) { return i * 16; }

template <class M>
void churn(M& m, std::atomic<bool>& stop, uint64_t seed) {
  std::mt19937_64 rng(seed);
  while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag, no data
    const uint64_t i = rng() % kSlots;
    if (i % 4 == 0) continue;
    if (rng() & 1) {
      (void)m.insert(extent{slot_start(i), 8}, i << 1);
    } else {
      (void)m.erase(slot_start(i));
    }
  }
}

TYPED_TEST(ExtentIndexConcurrent, AssignNeverLeavesAGap) {
  TypeParam m;
  for (uint64_t i = 0; i < kSlots; i += 2) ASSERT_TRUE(m.insert(extent{slot_start(i), 8}, i << 1).ok());
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> assigns{0};
  std::thread churner([&] { churn(m, stop, 1); });
  std::thread assigner([&] {
    std::mt19937_64 rng(2);
    uint64_t n = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      const uint64_t i = (rng() % (kSlots / 4)) * 4;
      // The value's low bit flips: both values name slot i.
      EXPECT_TRUE(m.assign(slot_start(i), (i << 1) | (rng() & 1)).ok());
      ++n;
    }
    assigns.store(n, std::memory_order_relaxed);
  });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds());
  std::mt19937_64 rng(3);
  uint64_t reads = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    const uint64_t i = (rng() % (kSlots / 4)) * 4;
    const auto e = m.lookup(slot_start(i) + rng() % 8);
    ASSERT_TRUE(e.has_value()) << "slot " << i << " vanished while its value was reassigned";
    ASSERT_EQ(e->range, (extent{slot_start(i), 8}));
    ASSERT_EQ(e->value >> 1, i) << "a torn or foreign value";
    ++reads;
  }
  stop.store(true, std::memory_order_relaxed);
  churner.join();
  assigner.join();
  EXPECT_GT(reads, 0u);
  EXPECT_GT(assigns.load(std::memory_order_relaxed), 0u);
  EXPECT_TRUE(m.check_invariants().ok());
}

// One walk of [lo, hi): sorted, no repeat, every stable slot in the window.
template <class Walk>
void check_walk(uint64_t lo, uint64_t hi, Walk&& walk) {
  std::vector<uint64_t> starts;
  walk([&](const auto& e) {
    EXPECT_EQ(e.value >> 1, e.range.start / 16) << "a torn or foreign value";
    starts.push_back(e.range.start);
  });
  for (size_t k = 1; k < starts.size(); ++k) ASSERT_LT(starts[k - 1], starts[k]) << "unsorted or repeated";
  for (uint64_t i = 0; i < kSlots; i += 4) {
    if (slot_start(i) + 8 <= lo || slot_start(i) >= hi) continue;
    ASSERT_TRUE(std::binary_search(starts.begin(), starts.end(), slot_start(i)))
        << "stable extent " << slot_start(i) << " missing from a walk of [" << lo << ", " << hi << ")";
  }
}

TYPED_TEST(ExtentIndexConcurrent, WalksYieldEveryExtentPresentThroughout) {
  using F = typename TypeParam::rcu_flavor;
  TypeParam m;
  for (uint64_t i = 0; i < kSlots; ++i) ASSERT_TRUE(m.insert(extent{slot_start(i), 8}, i << 1).ok());
  std::atomic<bool> stop{false};
  std::thread churner([&] { churn(m, stop, 4); });
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds());
  std::mt19937_64 rng(5);
  uint64_t walks = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    uint64_t lo = rng() % (kSlots * 16), hi = lo + 1 + rng() % (kSlots * 4);
    if (rng() % 8 == 0) {
      lo = 0;
      hi = UINT64_MAX;
    }
    if (walks % 2 == 0) {
      check_walk(lo, hi, [&](auto&& visit) {
        rcukit::rcu::read_guard<F> g;
        for (const auto& e : m.range(g, lo, hi)) visit(e);
      });
    } else {
      check_walk(lo, hi, [&](auto&& visit) { m.for_each(lo, hi, visit); });
    }
    if (::testing::Test::HasFatalFailure()) break;
    ++walks;
  }
  stop.store(true, std::memory_order_relaxed);
  churner.join();
  EXPECT_GT(walks, 0u);
  EXPECT_TRUE(m.check_invariants().ok());
}

}  // namespace
