// SPDX-License-Identifier: MIT
// Concurrent tests of iova_domain and iova_magazine_cache over every index:
// several threads allocate and free through the domain and through the cache
// at once. Every page of the domain has an ownership flag: an allocation
// must find all its pages unowned (else a range was handed out twice), a
// free must find them owned. Live allocations must be found by find(). Every
// ResourceExhausted is checked against counted_domain's oracle (how many
// ranges can have existed during the call): a failure while a whole block
// stayed free for the whole call is an error. After the threads stop,
// everything is freed, flush() must return every cached range, and the index
// must be empty. Also: thread exit returns a thread's magazines; magazine
// allocation failure (depot unusable) still conserves ranges; the cache's
// size-class rounding, limits, and flush-and-retry for every request size;
// reserve() is atomic (driven step by step through hooked_index). Bounded by
// RCUKIT_TEST_SECONDS.
#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
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
using Domains = ::testing::Types<iova_domain<rcukit::rbtree_extent_map<uint64_t>>,
                                 iova_domain<rcukit::rbtree_extent_map_augmented<uint64_t>>,
                                 iova_domain<rcukit::extent_skiplist<uint64_t>>>;
TYPED_TEST_SUITE(IovaConcurrent, Domains);

constexpr uint64_t kStart = 16;
constexpr uint64_t kEnd = 16 + (1 << 15);
// The hammer's domain: large enough that the ranges users and magazines hold
// leave most of it free most of the time, so counted_domain's oracle can
// judge most failures. Its top 16 pages lie above 4 GiB (granule 4096), so
// wide requests take the two-step path (above 4 GiB, then the whole window).
constexpr uint64_t kBigEnd = 16 + (1 << 20);

struct ownership {
  std::vector<std::atomic<uint8_t>> page;
  explicit ownership(uint64_t end = kEnd) : page(end) {}
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
void hammer(D& d, Cache& cache, ownership& own, uint64_t end, int threads, double seconds,
            std::atomic<long>& errors) {
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
          if (!cache.free(h.pfn, h.npages).ok()) errors++;
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
          const uint64_t limit = rng() % 4 == 0 ? kStart + rng() % (end - kStart) : end - 1;
          absl::StatusOr<uint64_t> s = via_cache ? cache.alloc(n, limit) : d.alloc(n, limit, rng() % 2);
          if (!s.ok()) {
            // ResourceExhausted is judged by counted_domain (wrong_failures).
            if (s.status().code() != absl::StatusCode::kResourceExhausted) errors++;
            continue;
          }
          const uint64_t footprint = via_cache && n <= 32 ? std::bit_ceil(n) : n;
          if (*s < kStart || *s + footprint > end || *s + footprint - 1 > limit) errors++;
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
  counted_domain<TypeParam> d(4096, kStart, kBigEnd);
  ownership own(kBigEnd);
  std::atomic<long> errors{0};
  {
    iova_magazine_cache<counted_domain<TypeParam>> cache(d);
    hammer(d, cache, own, kBigEnd, 4, test_seconds() * 0.4, errors);
    EXPECT_EQ(errors.load(), 0) << "a range was handed out twice, lost, or out of bounds";
    EXPECT_EQ(d.wrong_failures(), 0u)
        << "ResourceExhausted while a whole block stayed free for the whole call (" << d.failures()
        << " ResourceExhausted in total)";
    this->RecordProperty("resource_exhausted", std::to_string(d.failures()));
    cache.flush();
    EXPECT_TRUE(d.index().empty()) << d.index().size() << " ranges not returned by flush()";
    // Reuse after flush works and the destructor returns what is cached.
    auto s = cache.alloc(3, kEnd - 1);
    ASSERT_TRUE(s.ok());
    EXPECT_TRUE(cache.free(*s, 3).ok());
  }
  EXPECT_TRUE(d.index().empty()) << "the cache destructor must return everything";
}

TYPED_TEST(IovaConcurrent, ThreadExitReturnsMagazines) {
  TypeParam d(4096, kStart, kEnd);
  iova_magazine_cache<TypeParam> cache(d);
  std::thread([&] {
    std::vector<uint64_t> got;
    for (int i = 0; i < 100; ++i) got.push_back(*cache.alloc(1 + i % 8, kEnd - 1));
    for (int i = 0; i < 100; ++i) EXPECT_TRUE(cache.free(got[i], 1 + i % 8).ok());
    // Fewer than two magazines per class: nothing reached the depot.
  }).join();
  EXPECT_TRUE(d.index().empty()) << d.index().size() << " ranges still held after thread exit";
}

TYPED_TEST(IovaConcurrent, MagazineAllocationFailureConserves) {
  counted_domain<TypeParam> d(4096, kStart, kEnd);
  ownership own;
  std::atomic<long> errors{0};
  {
    iova_magazine_cache<counted_domain<TypeParam>, failing_mag_alloc> cache(d);
    failing_mag_alloc::fail.store(true);
    hammer(d, cache, own, kEnd, 2, test_seconds() * 0.2, errors);
    failing_mag_alloc::fail.store(false);
    EXPECT_EQ(errors.load(), 0);
    EXPECT_EQ(d.wrong_failures(), 0u) << d.failures() << " ResourceExhausted in total";
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
  EXPECT_TRUE(cache.free(*a, 5).ok());
  EXPECT_EQ(d.find(*a)->size, 8u) << "a freed range stays allocated in the domain while cached";
  // The cached range is reused by the same class, but not past a lower limit.
  EXPECT_EQ(*cache.alloc(7, kEnd - 1), *a);
  EXPECT_TRUE(cache.free(*a, 7).ok());
  auto low = cache.alloc(8, kStart + 100);
  ASSERT_TRUE(low.ok());
  EXPECT_LE(*low + 7, kStart + 100u);
  EXPECT_NE(*low, *a);
  EXPECT_TRUE(cache.free(*low, 8).ok());
  // Above 32 pages: straight to the domain, freed immediately.
  auto big = cache.alloc(40, kEnd - 1);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(d.find(*big)->size, 40u);
  EXPECT_TRUE(cache.free(*big, 40).ok());
  EXPECT_FALSE(d.find(*big).has_value());
  // A full domain: alloc flushes the caches and retries before failing.
  TypeParam small(4096, 0, 64);
  iova_magazine_cache<TypeParam> c2(small);
  std::vector<uint64_t> v;
  for (int i = 0; i < 16; ++i) v.push_back(*c2.alloc(4, 63));
  EXPECT_EQ(c2.alloc(4, 63).status().code(), absl::StatusCode::kResourceExhausted);
  for (uint64_t p : v) EXPECT_TRUE(c2.free(p, 4).ok());  // all cached in class 4
  auto x = c2.alloc(16, 63);           // needs the flush to succeed
  ASSERT_TRUE(x.ok());
  EXPECT_TRUE(c2.free(*x, 16).ok());
  c2.flush();
  EXPECT_TRUE(small.index().empty());
}

// A limit can make the magazine pop a range below its top: every other
// cached range must stay cached exactly once (none lost, none doubled).
TYPED_TEST(IovaConcurrent, MagazinePopBelowTopKeepsTheRest) {
  TypeParam d(4096, 0, 64);
  iova_magazine_cache<TypeParam> c(d);
  std::vector<uint64_t> got;
  for (int i = 0; i < 4; ++i) got.push_back(*c.alloc(1, 63));
  ASSERT_EQ(got, (std::vector<uint64_t>{63, 62, 61, 60}));              // top-down from the domain
  for (auto it = got.rbegin(); it != got.rend(); ++it) EXPECT_TRUE(c.free(*it, 1).ok());  // magazine: 60 61 62 63 (top)
  EXPECT_EQ(*c.alloc(1, 60), 60u) << "only pfn 60 fits under limit 60";
  std::set<uint64_t> rest;
  for (int i = 0; i < 3; ++i) rest.insert(*c.alloc(1, 63));
  EXPECT_EQ(rest, (std::set<uint64_t>{61, 62, 63})) << "the ranges above the popped one, each once";
  EXPECT_EQ(*c.alloc(1, 63), 59u) << "the magazine is empty now: the domain's next page";
  EXPECT_EQ(d.index().size(), 5u);
  for (uint64_t p : {59, 60, 61, 62, 63}) EXPECT_TRUE(c.free(p, 1).ok());
  c.flush();
  EXPECT_TRUE(d.index().empty());
}

// API.md: the cache flushes and retries before failing, for every request
// size -- above 32 pages too, where the request bypasses the magazines.
TYPED_TEST(IovaConcurrent, CacheFlushesForEverySize) {
  for (uint64_t big :
       {uint64_t{16}, uint64_t{32}, uint64_t{33}, uint64_t{64}, uint64_t{100}, uint64_t{128}}) {
    TypeParam d(4096, 0, 128);
    iova_magazine_cache<TypeParam> c(d);
    std::vector<uint64_t> v;
    for (int i = 0; i < 128; ++i) {
      auto s = c.alloc(1, 127);
      ASSERT_TRUE(s.ok()) << i;
      v.push_back(*s);
    }
    EXPECT_EQ(c.alloc(1, 127).status().code(), absl::StatusCode::kResourceExhausted);
    for (uint64_t p : v) EXPECT_TRUE(c.free(p, 1).ok());  // all 128 pages now sit in this thread's magazines
    ASSERT_EQ(d.index().size(), 128u);
    auto x = c.alloc(big, 127);
    ASSERT_TRUE(x.ok()) << big << "-page request: " << x.status()
                        << " although flushing the magazines frees the whole domain";
    const uint64_t footprint = big <= 32 ? std::bit_ceil(big) : big;
    EXPECT_EQ(*x % std::bit_ceil(big), 0u);
    EXPECT_EQ(d.find(*x)->size, footprint);
    EXPECT_TRUE(c.free(*x, big).ok());
    c.flush();
    EXPECT_TRUE(d.index().empty());
  }
}

// API.md: reserve() is all-or-nothing and atomic -- no allocation (and no
// find) sees it half made. On a 4-page domain with pfn 2 reserved,
// reserve(0, 3) needs two pieces, [0, 2) and [3, 4). hooked_index stops it
// right after the first piece is in; at that point B takes pfn 3 (so the
// reservation must fail), then A asks for a page at or below pfn 1 and F
// looks pfn 0 up, and reserve() resumes only after A's first search and F's
// first lookup have returned. The only linearizable outcome: reserve fails
// (pfn 3 is B's), so it never happened; nobody else ever takes pfns 0 and 1,
// so A gets pfn 1 (top-down) and F finds pfn 0 free. Before the fix A failed
// with ResourceExhausted and F returned [0, 2): a reservation that never
// happened.
template <class Inner>
void reserve_is_atomic() {
  using hooked = hooked_index<Inner>;
  using D = iova_domain<hooked>;
  hooked::reset();
  D d(4096, 0, 4);
  ASSERT_TRUE(d.reserve(2, 2).ok());
  bool fired = false;  // the hook runs in this thread only
  absl::StatusOr<uint64_t> a = absl::UnknownError("not run"), b = absl::UnknownError("not run");
  std::optional<rcukit::extent> f;
  std::thread ta, tf;
  hooked::on_insert = [&](rcukit::extent e, uint64_t v) {
    if (fired || v != D::kReserved) return;
    fired = true;
    EXPECT_EQ(e, (rcukit::extent{0, 2})) << "reserve inserts its pieces in ascending order";
    b = d.alloc(1, 3, false);  // takes pfn 3 (top-down): the reservation must now fail
    const int searches = hooked::searches.load(), lookups = hooked::lookups.load();
    ta = std::thread([&] { a = d.alloc(1, 1, false); });
    tf = std::thread([&] { f = d.find(0); });
    hooked::wait_for(hooked::searches, searches + 1);  // A's first search has returned
    hooked::wait_for(hooked::lookups, lookups + 1);    // F's first lookup has returned
  };
  const absl::Status r = d.reserve(0, 3);
  ta.join();
  tf.join();
  hooked::reset();
  ASSERT_TRUE(fired);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, 3u);
  EXPECT_EQ(r.code(), absl::StatusCode::kAlreadyExists) << "reserve(0, 3) overlaps B's allocation at pfn 3";
  EXPECT_FALSE(f.has_value()) << "find saw [" << f->start << ", +" << f->size
                              << "), a piece of a reservation that never happened";
  ASSERT_TRUE(a.ok()) << "alloc failed on a reservation that never happened: " << a.status();
  EXPECT_EQ(*a, 1u);
  EXPECT_EQ(d.index().size(), 3u);  // [1, 2) A's, [2, 3) reserved, [3, 4) B's
  EXPECT_FALSE(d.find(0).has_value());
}

TEST(IovaReserve, AtomicOverRbtree) { reserve_is_atomic<rcukit::rbtree_extent_map<uint64_t>>(); }
TEST(IovaReserve, AtomicOverAugmentedRbtree) {
  reserve_is_atomic<rcukit::rbtree_extent_map_augmented<uint64_t>>();
}
TEST(IovaReserve, AtomicOverSkiplist) {
  reserve_is_atomic<rcukit::extent_skiplist<uint64_t>>();
  rcukit::rcu::barrier();
}

}  // namespace

namespace {

// Issue 23, item 4 (API.md, iova_magazine_cache::free): a range that is not
// a live allocation of this domain with this npages is refused and never
// handed out again.
TYPED_TEST(IovaConcurrent, CheckedFreeRefusesWhatIsNotALiveAllocation) {
  TypeParam d(4096, 0, 256);
  ASSERT_TRUE(d.reserve(0, 3).ok());
  iova_magazine_cache<TypeParam> c(d);
  EXPECT_EQ(c.free(40, 1).code(), absl::StatusCode::kNotFound) << "never allocated";
  EXPECT_EQ(c.free(0, 1).code(), absl::StatusCode::kNotFound) << "reserved";
  EXPECT_EQ(c.free(40, 64).code(), absl::StatusCode::kNotFound) << "never allocated, above 32 pages";
  auto a = c.alloc(4, 255);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(c.free(*a, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(c.free(*a, 1).code(), absl::StatusCode::kNotFound) << "wrong size (1 page, allocated 4)";
  EXPECT_EQ(c.free(*a + 1, 2).code(), absl::StatusCode::kNotFound) << "not the start of the range";
  ASSERT_TRUE(c.free(*a, 3).ok()) << "3 pages round to the same 4-page range";
  // A double free while the range sits in this thread's magazine.
  EXPECT_EQ(c.free(*a, 4).code(), absl::StatusCode::kNotFound) << "double free of a cached range";
  EXPECT_EQ(d.free(*a).code(), absl::StatusCode::kNotFound) << "the domain refuses a cached range too";
  EXPECT_EQ(d.reserve(*a, *a).code(), absl::StatusCode::kAlreadyExists) << "a cached range is allocated";
  // Handed out once, not twice: the second allocation must be another range.
  auto x = c.alloc(4, 255);
  auto y = c.alloc(4, 255);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(*x, *a) << "the cached range is reused";
  EXPECT_NE(*y, *a) << "the refused double free put it in a magazine a second time";
  // Live again once handed out: an ordinary free works, a second is refused.
  EXPECT_TRUE(c.free(*x, 4).ok());
  EXPECT_TRUE(c.free(*y, 4).ok());
  EXPECT_EQ(c.free(*y, 4).code(), absl::StatusCode::kNotFound);
  // Above 32 pages (straight to the domain): a second free is refused too.
  auto big = c.alloc(33, 255);
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(c.free(*big, 34).code(), absl::StatusCode::kNotFound) << "wrong size above 32 pages";
  EXPECT_TRUE(c.free(*big, 33).ok());
  EXPECT_EQ(c.free(*big, 33).code(), absl::StatusCode::kNotFound);
  // A range freed after flush() (no longer in any magazine) is refused.
  c.flush();
  EXPECT_EQ(c.free(*x, 4).code(), absl::StatusCode::kNotFound) << "freed and flushed";
  EXPECT_EQ(d.index().size(), 1u) << "only the reservation is left";
}

// Double frees from several threads, each of a range it freed already (now
// in its own magazine or in the depot): every one refused, and no range is
// ever held by two users (the ownership map).
TYPED_TEST(IovaConcurrent, CheckedFreeRefusesDoubleFreesUnderLoad) {
  TypeParam d(4096, kStart, kEnd);
  ownership own;
  std::atomic<long> errors{0}, refused{0};
  {
    iova_magazine_cache<TypeParam> c(d);
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
      ts.emplace_back([&, t] {
        std::mt19937_64 rng(77 + t);
        for (int i = 0; i < 2000; ++i) {
          const uint64_t n = 1 + rng() % 8;
          auto s = c.alloc(n, kEnd - 1);
          if (!s.ok()) {
            errors++;
            continue;
          }
          const uint64_t fp = std::bit_ceil(n);
          if (!own.claim(*s, fp)) errors++;
          if (!own.release(*s, fp)) errors++;
          if (!c.free(*s, n).ok()) errors++;
          // The second free may race with another thread taking the range
          // from the depot (then it is that thread's live range, and this
          // free is the caller bug API.md leaves undefined), so only free
          // again ranges this thread's own magazine still holds: rounding
          // to one class with fewer than 127 pushes keeps it there.
          if (c.free(*s, n).code() == absl::StatusCode::kNotFound) refused++;
          // Had the second free been taken, these two would be one range.
          auto p = c.alloc(n, kEnd - 1);
          auto q = c.alloc(n, kEnd - 1);
          if (!p.ok() || !q.ok()) {
            errors++;
            continue;
          }
          if (!own.claim(*p, fp) || !own.claim(*q, fp)) errors++;
          if (!own.release(*p, fp) || !own.release(*q, fp)) errors++;
          if (!c.free(*p, n).ok() || !c.free(*q, n).ok()) errors++;
        }
      });
    }
    for (auto& th : ts) th.join();
    c.flush();
  }
  EXPECT_EQ(errors.load(), 0) << "a range handed out twice or a live free refused";
  EXPECT_EQ(refused.load(), 4 * 2000) << "every double free refused";
  EXPECT_TRUE(d.index().empty());
}

// Issue 23, item 5: a domain with an empty range reports InvalidArgument.
TYPED_TEST(IovaConcurrent, EmptyDomainIsInvalidArgument) {
  for (auto [lo, hi] : {std::pair<uint64_t, uint64_t>{10, 10}, {10, 5}}) {
    TypeParam d(4096, lo, hi);
    EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d.alloc(1, 100, false).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d.free(lo).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(d.reserve(0, 3).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(TypeParam::create(4096, lo, hi).status().code(), absl::StatusCode::kInvalidArgument);
    iova_magazine_cache<TypeParam> c(d);
    EXPECT_EQ(c.alloc(1, 100).status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(c.free(lo, 1).code(), absl::StatusCode::kInvalidArgument);
  }
  TypeParam ok(4096, 0, 1);
  EXPECT_TRUE(ok.status().ok());
  auto made = TypeParam::create(4096, 0, 1);
  ASSERT_TRUE(made.ok());
  EXPECT_TRUE((*made)->status().ok());
  EXPECT_EQ(*(*made)->alloc(1, 0, false), 0u);
}

}  // namespace
