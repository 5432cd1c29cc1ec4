// Concurrent test of the rbtree extent maps: several threads insert holes,
// look them up and erase them; every value is unique, so a range handed out
// twice or lost shows up as a mismatch. Bounded by RCUKIT_TEST_SECONDS.
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

// Several threads insert holes, look them up and erase them; every value is
// unique, so a range handed out twice or lost shows up as a mismatch.
TYPED_TEST(RbExtentMapTest, ConcurrentHolesConserved) {
  TypeParam m;
  const char* env = std::getenv("RCUKIT_TEST_SECONDS");
  const double seconds = env != nullptr ? std::atof(env) : 1.0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds * 0.5);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<std::pair<uint64_t, uint64_t>> mine;  // (start, value)
      uint64_t serial = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        for (int k = 0; k < 64; ++k) {
          hole_request r;
          r.size = 1 + rng() % 8;
          r.align = uint64_t{1} << (rng() % 3);
          r.limit = 1 << 14;
          r.hint = rng() % r.limit;
          r.dir = rng() % 2 ? hole_request::direction::up : hole_request::direction::down;
          const uint64_t v = (uint64_t(t) << 48) | serial++;
          auto s = m.insert_hole(r, v);
          if (s.ok()) mine.emplace_back(*s, v);
        }
        for (auto [start, v] : mine) {
          auto e = m.lookup(start);
          if (!e || e->value != v) failed = true;
        }
        while (mine.size() > 32) {
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
  EXPECT_TRUE(m.empty());
  EXPECT_TRUE(m.check_invariants().ok());
}

}  // namespace
