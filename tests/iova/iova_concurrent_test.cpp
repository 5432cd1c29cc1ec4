// Concurrent tests of iova_domain and iova_magazine_cache over every index:
// several threads allocate and free through the domain and through the cache
// at once. Every page of the domain has an ownership flag: an allocation
// must find all its pages unowned (else a range was handed out twice), a
// free must find them owned. Live allocations must be found by find(). After
// the threads stop, everything is freed, flush() must return every cached
// range, and the index must be empty. Also: thread exit returns a thread's
// magazines; magazine allocation failure (depot unusable) still conserves
// ranges; the cache's size-class rounding and limits. Bounded by
// RCUKIT_TEST_SECONDS.
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "iova_test_support.hpp"

namespace {

using namespace iova_testing;
using rcukit::iova_domain;
using rcukit::iova_magazine_cache;

template <class D>
class IovaConcurrent : public ::testing::Test {
 protected:
  void TearDown() override { rcukit::rcu::barrier(); }
};
#if RCUKIT_IOVA_HAVE_SKIPLIST
using Domains = ::testing::Types<iova_domain<rcukit::rbtree_extent_map<uint64_t>>,
                                 iova_domain<rcukit::rbtree_extent_map_augmented<uint64_t>>,
                                 iova_domain<rcukit::extent_skiplist<uint64_t>>>;
#else
using Domains = ::testing::Types<iova_domain<rcukit::rbtree_extent_map<uint64_t>>,
                                 iova_domain<rcukit::rbtree_extent_map_augmented<uint64_t>>>;
#endif
TYPED_TEST_SUITE(IovaConcurrent, Domains);

constexpr uint64_t kStart = 16;
constexpr uint64_t kEnd = 16 + (1 << 15);

struct ownership {
  std::vector<std::atomic<uint8_t>> page;
  ownership() : page(kEnd) {}
  // acq_rel: the exchange both publishes this thread's claim and observes the
  // previous owner's release; a wrong value is a conservation failure.
  bool claim(uint64_t lo, uint64_t n) {
    bool ok = true;
    for (uint64_t p = lo; p < lo + n; ++p) ok &= page[p].exchange(1, std::memory_order_acq_rel) == 0;
    return ok;
  }
  bool release(uint64_t lo, uint64_t n) {
    bool ok = true;
    for (uint64_t p = lo; p < lo + n; ++p) ok &= page[p].exchange(0, std::memory_order_acq_rel) == 1;
    return ok;
  }
};

struct held {
  uint64_t pfn, npages, footprint;
  bool via_cache;
};

template <class D, class Cache>
void hammer(D& d, Cache& cache, ownership& own, int threads, double seconds, std::atomic<long>& errors) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      std::vector<held> mine;
      auto give_back = [&](size_t i) {
        const held h = mine[i];
        if (!own.release(h.pfn, h.footprint)) errors++;
        if (h.via_cache) {
          cache.free(h.pfn, h.npages);
        } else if (!d.free(h.pfn).ok()) {
          errors++;
        }
        mine[i] = mine.back();
        mine.pop_back();
      };
      while (std::chrono::steady_clock::now() < deadline) {
        for (int k = 0; k < 32; ++k) {
          const bool via_cache = rng() % 4 != 0;
          const uint64_t n = rng() % 16 == 0 ? 33 + rng() % 30 : 1 + rng() % 20;
          const uint64_t limit = rng() % 4 == 0 ? kStart + rng() % (kEnd - kStart) : kEnd - 1;
          absl::StatusOr<uint64_t> s = via_cache ? cache.alloc(n, limit) : d.alloc(n, limit, rng() % 2);
          if (!s.ok()) {
            if (s.status().code() != absl::StatusCode::kResourceExhausted) errors++;
            continue;
          }
          const uint64_t footprint = via_cache && n <= 32 ? std::bit_ceil(n) : n;
          if (*s < kStart || *s + footprint > kEnd || *s + footprint - 1 > limit) errors++;
          if (!own.claim(*s, footprint)) errors++;
          mine.push_back({*s, n, footprint, via_cache});
        }
        for (const held& h : mine) {
          auto f = d.find(h.pfn + h.footprint - 1);
          if (!f || f->start != h.pfn || f->size != h.footprint) errors++;
        }
        while (mine.size() > 24) give_back(rng() % mine.size());
      }
      while (!mine.empty()) give_back(mine.size() - 1);
    });
  }
  for (auto& th : ts) th.join();
}

TYPED_TEST(IovaConcurrent, DomainAndCacheConserveRanges) {
  TypeParam d(4096, kStart, kEnd);
  ownership own;
  std::atomic<long> errors{0};
  {
    iova_magazine_cache<TypeParam> cache(d);
    hammer(d, cache, own, 4, test_seconds() * 0.4, errors);
    EXPECT_EQ(errors.load(), 0) << "a range was handed out twice, lost, or out of bounds";
    cache.flush();
    EXPECT_TRUE(d.index().empty()) << d.index().size() << " ranges not returned by flush()";
    // Reuse after flush works and the destructor returns what is cached.
    auto s = cache.alloc(3, kEnd - 1);
    ASSERT_TRUE(s.ok());
    cache.free(*s, 3);
  }
  EXPECT_TRUE(d.index().empty()) << "the cache destructor must return everything";
}

TYPED_TEST(IovaConcurrent, ThreadExitReturnsMagazines) {
  TypeParam d(4096, kStart, kEnd);
  iova_magazine_cache<TypeParam> cache(d);
  std::thread([&] {
    std::vector<uint64_t> got;
    for (int i = 0; i < 100; ++i) got.push_back(*cache.alloc(1 + i % 8, kEnd - 1));
    for (int i = 0; i < 100; ++i) cache.free(got[i], 1 + i % 8);
    // Fewer than two magazines per class: nothing reached the depot.
  }).join();
  EXPECT_TRUE(d.index().empty()) << d.index().size() << " ranges still held after thread exit";
}

TYPED_TEST(IovaConcurrent, MagazineAllocationFailureConserves) {
  TypeParam d(4096, kStart, kEnd);
  ownership own;
  std::atomic<long> errors{0};
  {
    iova_magazine_cache<TypeParam, failing_mag_alloc> cache(d);
    failing_mag_alloc::fail.store(true);
    hammer(d, cache, own, 2, test_seconds() * 0.2, errors);
    failing_mag_alloc::fail.store(false);
    EXPECT_EQ(errors.load(), 0);
    cache.flush();
    EXPECT_TRUE(d.index().empty());
  }
  EXPECT_EQ(failing_mag_alloc::live.load(), 0);
}

TYPED_TEST(IovaConcurrent, CacheSemantics) {
  TypeParam d(4096, kStart, kEnd);
  iova_magazine_cache<TypeParam> cache(d);
  EXPECT_EQ(cache.alloc(0, kEnd).status().code(), absl::StatusCode::kInvalidArgument);
  // Rounded to a power of two and size-aligned.
  auto a = cache.alloc(5, kEnd - 1);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(*a % 8, 0u);
  EXPECT_EQ(d.find(*a)->size, 8u);
  cache.free(*a, 5);
  EXPECT_EQ(d.find(*a)->size, 8u) << "a freed range stays allocated in the domain while cached";
  // The cached range is reused by the same class, but not past a lower limit.
  EXPECT_EQ(*cache.alloc(7, kEnd - 1), *a);
  cache.free(*a, 7);
  auto low = cache.alloc(8, kStart + 100);
  ASSERT_TRUE(low.ok());
  EXPECT_LE(*low + 7, kStart + 100u);
  EXPECT_NE(*low, *a);
  cache.free(*low, 8);
  // Above 32 pages: straight to the domain, freed immediately.
  auto big = cache.alloc(40, kEnd - 1);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(d.find(*big)->size, 40u);
  cache.free(*big, 40);
  EXPECT_FALSE(d.find(*big).has_value());
  // A full domain: alloc flushes the caches and retries before failing.
  TypeParam small(4096, 0, 64);
  iova_magazine_cache<TypeParam> c2(small);
  std::vector<uint64_t> v;
  for (int i = 0; i < 16; ++i) v.push_back(*c2.alloc(4, 63));
  EXPECT_EQ(c2.alloc(4, 63).status().code(), absl::StatusCode::kResourceExhausted);
  for (uint64_t p : v) c2.free(p, 4);  // all cached in class 4
  auto x = c2.alloc(16, 63);           // needs the flush to succeed
  ASSERT_TRUE(x.ok());
  c2.free(*x, 16);
  c2.flush();
  EXPECT_TRUE(small.index().empty());
}

}  // namespace
