// SPDX-License-Identifier: MIT
// Concurrent test of the rbtree extent maps: several threads insert holes,
// look them up and erase them; every value is unique, so a range handed out
// twice or lost shows up as a mismatch. The space is far from full at every
// instant (bound below), so every insert_hole must succeed: a
// ResourceExhausted is an error, not a shrug. Bounded by RCUKIT_TEST_SECONDS.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "rcukit/rbtree.hpp"

namespace {

using rcukit::hole_request;

template <class M>
class RbExtentMapTest : public ::testing::Test {};
using Maps =
    ::testing::Types<rcukit::rbtree_extent_map<uint64_t>, rcukit::rbtree_extent_map_augmented<uint64_t>>;
TYPED_TEST_SUITE(RbExtentMapTest, Maps);

constexpr int kThreads = 4;
constexpr uint64_t kLimit = 1 << 14;  // every hole lies in [0, kLimit)
constexpr size_t kKeep = 32;          // extents a thread keeps between rounds
constexpr int kRound = 64;            // insert_hole calls per round
constexpr uint64_t kMaxSize = 8, kMaxAlign = 4;
// The oracle of what is free: a thread holds at most kKeep + kRound extents,
// each of at most kMaxSize pages, so it touches at most two kMaxSize-aligned
// blocks; the maps search and insert under their one lock, so a request sees
// one instant, at which at most kThreads * (kKeep + kRound) extents exist.
// With more blocks than twice that, a whole aligned block of kMaxSize pages
// is free at that instant, and every request (size <= kMaxSize, align <=
// kMaxAlign, hint anywhere, either direction) fits in it.
static_assert(kMaxAlign <= kMaxSize && kLimit / kMaxSize > 2 * kThreads * (kKeep + kRound),
              "the space must stay far from full for the no-ResourceExhausted check");

// Several threads insert holes, look them up and erase them; every value is
// unique, so a range handed out twice or lost shows up as a mismatch; no
// insert_hole may fail (the space is far from full).
TYPED_TEST(RbExtentMapTest, ConcurrentHolesConserved) {
  TypeParam m;
  const char* env = std::getenv("RCUKIT_TEST_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 1.0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds * 0.5);
  std::atomic<bool> failed{false};
  std::atomic<long> exhausted{0};  // relaxed: a counter read after join()
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<std::pair<uint64_t, uint64_t>> mine;  // (start, value)
      uint64_t serial = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        for (int k = 0; k < kRound; ++k) {
          hole_request r;
          r.size = 1 + rng() % kMaxSize;
          r.align = uint64_t{1} << (rng() % 3);  // up to kMaxAlign
          r.limit = kLimit;
          r.hint = rng() % r.limit;
          r.dir = rng() % 2 ? hole_request::direction::up : hole_request::direction::down;
          const uint64_t v = (uint64_t(t) << 48) | serial++;
          auto s = m.insert_hole(r, v);
          if (!s.ok()) {
            exhausted.fetch_add(1, std::memory_order_relaxed);
            continue;
          }
          if (*s % r.align != 0 || *s + r.size > kLimit) failed = true;
          mine.emplace_back(*s, v);
        }
        for (auto [start, v] : mine) {
          auto e = m.lookup(start);
          if (!e || e->value != v) failed = true;
        }
        while (mine.size() > kKeep) {
          const size_t i = rng() % mine.size();
          auto e = m.erase(mine[i].first);
          if (!e || e->value != mine[i].second) failed = true;
          mine[i] = mine.back();
          mine.pop_back();
        }
      }
      for (auto [start, v] : mine) {
        auto e = m.erase(start);
        if (!e || e->value != v) failed = true;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_FALSE(failed.load());
  EXPECT_EQ(exhausted.load(), 0) << "insert_hole failed although the space was far from full";
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(m.check_invariants().ok());
}

}  // namespace
