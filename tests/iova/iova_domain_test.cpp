// SPDX-License-Identifier: MIT
// Sequential tests of iova_domain over every extent index: differential
// random sequences (every index's domain must return exactly what the domain
// over the reference model returns, step by step), with every invariant
// checked against a shadow of live allocations and reservations: bounds,
// inclusive limit, size alignment, no overlap, failure only when no range
// fits (checked by brute force), top-down order on a fresh domain, bad
// input, reservations, and allocation-failure injection.
//
// What can fail: an off-by-one at the inclusive limit or at end_pfn, a
// cached-hint miss turning a fitting request into ResourceExhausted, a wide
// request placed below 4 GiB while a range above 4 GiB fits (one hint shared
// by 32-bit and wide requests), a range handed out over a reservation,
// free() accepting a pfn that does not start an allocation, a failed call
// that changed the domain.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <tuple>
#include <vector>

#include "iova_test_support.hpp"

namespace {

using namespace iova_testing;
using rcukit::iova_domain;

using rb_base = rcukit::rbtree_extent_map<uint64_t, rcukit::rcu::memb, failing_alloc>;
using rb_aug = rcukit::rbtree_extent_map_augmented<uint64_t, rcukit::rcu::memb, failing_alloc>;

// Shadow: every live range (allocations and reservations) by start.
struct shadow {
  struct range {
    uint64_t size;
    bool reserved;
  };
  std::map<uint64_t, range> live;
  uint64_t start_pfn, end_pfn;
  uint64_t dma32_end = (uint64_t{1} << 32) / 4096;  // first pfn above 4 GiB (granule 4096)

  bool overlaps(uint64_t lo, uint64_t n) const {
    auto it = live.upper_bound(lo);
    if (it != live.begin()) {
      auto p = std::prev(it);
      if (p->first + p->second.size > lo) return true;
    }
    return it != live.end() && it->first < lo + n;
  }
  // Brute force: does any aligned [s, s + n) fit in [lo, limit] ∩ domain?
  bool something_fits(uint64_t n, uint64_t limit_pfn, bool aligned, uint64_t lo = 0) const {
    const uint64_t align = aligned ? std::bit_ceil(n) : 1;
    const uint64_t hi = std::min(limit_pfn == UINT64_MAX ? UINT64_MAX : limit_pfn + 1, end_pfn);  // exclusive
    lo = std::max(lo, start_pfn);
    uint64_t cursor = start_pfn;
    auto gap_fits = [&](uint64_t glo, uint64_t ghi) {
      glo = std::max(glo, lo);
      ghi = std::min(ghi, hi);
      if (glo >= ghi) return false;
      const uint64_t s = (glo + align - 1) & ~(align - 1);
      return s >= glo && s < ghi && ghi - s >= n;
    };
    for (const auto& [st, r] : live) {
      if (st > cursor && gap_fits(cursor, st)) return true;
      cursor = std::max(cursor, st + r.size);
    }
    return gap_fits(cursor, UINT64_MAX);
  }
};

template <class... D>
struct domains {
  std::tuple<std::unique_ptr<D>...> ds;
  domains(uint64_t g, uint64_t lo, uint64_t hi) : ds(std::make_unique<D>(g, lo, hi)...) {}
};

inline bool invariant_ok(bool b) { return b; }
inline bool invariant_ok(const absl::Status& s) { return s.ok(); }

// Runs one random sequence on the reference domain and on every domain
// under test, comparing every result and checking the invariants.
template <class Ref, class... Under>
void run_differential(uint64_t seed, uint64_t start_pfn, uint64_t end_pfn, int ops) {
  Ref ref(4096, start_pfn, end_pfn);
  std::tuple<std::unique_ptr<Under>...> under{std::make_unique<Under>(4096, start_pfn, end_pfn)...};
  shadow sh{{}, start_pfn, end_pfn};
  std::mt19937_64 rng(seed);
  const uint64_t span = end_pfn - start_pfn;
  auto for_all = [&](auto&& f) { std::apply([&](auto&... d) { (f(*d), ...); }, under); };

  for (int i = 0; i < ops; ++i) {
    const unsigned op = rng() % 100;
    if (op < 48) {
      uint64_t n = rng() % 4 == 0 ? 1 + rng() % 64 : 1 + rng() % 6;
      if (rng() % 50 == 0) n = rng() % 3 == 0 ? 0 : span + rng() % 4;  // bad or too large
      uint64_t limit = rng() % 3 == 0 ? UINT64_MAX : start_pfn + rng() % (span + 64);
      if (rng() % 50 == 0)
        limit = start_pfn - 1 - rng() % (start_pfn == 0 ? 1 : start_pfn);  // may be < start
      const bool aligned = rng() % 2;
      const auto want = ref.alloc(n, limit, aligned);
      for_all([&](auto& d) {
        const auto got = d.alloc(n, limit, aligned);
        ASSERT_EQ(got.status().code(), want.status().code()) << "alloc op " << i;
        if (got.ok()) {
          ASSERT_EQ(*got, *want) << "alloc op " << i << " n " << n << " limit " << limit;
        }
      });
      if (::testing::Test::HasFatalFailure()) return;
      if (n == 0 || limit < start_pfn) {
        ASSERT_EQ(want.status().code(), absl::StatusCode::kInvalidArgument);
        continue;
      }
      if (want.ok()) {
        const uint64_t s = *want;
        ASSERT_GE(s, start_pfn);
        ASSERT_LE(s + n, end_pfn);
        ASSERT_LE(s + n - 1, limit);
        if (aligned) {
          ASSERT_EQ(s % std::bit_ceil(n), 0u);
        }
        ASSERT_FALSE(sh.overlaps(s, n)) << "range handed out twice or over a reservation";
        // A wide request (its window reaches above 4 GiB) lands below 4 GiB
        // only when nothing fits above (API.md: separate hints).
        if (std::min(limit, end_pfn - 1) >= sh.dma32_end && s < sh.dma32_end) {
          ASSERT_FALSE(sh.something_fits(n, limit, aligned, sh.dma32_end))
              << "wide request placed at " << s << " below 4 GiB while a range above fits, op " << i;
        }
        sh.live[s] = {n, false};
      } else {
        ASSERT_EQ(want.status().code(), absl::StatusCode::kResourceExhausted);
        ASSERT_FALSE(sh.something_fits(n, limit, aligned)) << "failed although a range fits, op " << i;
      }
    } else if (op < 90) {
      // Free: usually a live allocation, sometimes a bogus pfn.
      uint64_t pfn = start_pfn + rng() % span;
      auto it = sh.live.lower_bound(pfn);
      const bool pick = rng() % 8 != 0 && it != sh.live.end();
      if (pick) pfn = it->first;
      const bool expect_ok = sh.live.count(pfn) && !sh.live[pfn].reserved;
      const auto want = ref.free(pfn);
      ASSERT_EQ(want.ok(), expect_ok) << "free op " << i;
      for_all([&](auto& d) { ASSERT_EQ(d.free(pfn).code(), want.code()) << "free op " << i; });
      if (::testing::Test::HasFatalFailure()) return;
      if (expect_ok) sh.live.erase(pfn);
    } else if (op < 96) {
      const uint64_t pfn = start_pfn + rng() % (span + 8);
      const auto want = ref.find(pfn);
      for_all([&](auto& d) { ASSERT_EQ(d.find(pfn), want) << "find op " << i; });
      auto it = sh.live.upper_bound(pfn);
      const bool covered = it != sh.live.begin() && std::prev(it)->first + std::prev(it)->second.size > pfn;
      ASSERT_EQ(want.has_value(), covered);
    } else {
      uint64_t lo = start_pfn + rng() % span, hi = lo + std::min<uint64_t>(rng() % 8, UINT64_MAX - lo);
      if (rng() % 20 == 0) std::swap(lo, hi);
      const auto want = ref.reserve(lo, hi);
      for_all([&](auto& d) { ASSERT_EQ(d.reserve(lo, hi).code(), want.code()) << "reserve op " << i; });
      if (::testing::Test::HasFatalFailure()) return;
      if (hi < lo) {
        ASSERT_EQ(want.code(), absl::StatusCode::kInvalidArgument);
      } else if (want.ok()) {
        // Rebuild the shadow's reservations from the reference index.
        for (auto it = sh.live.begin(); it != sh.live.end();) {
          it = it->second.reserved ? sh.live.erase(it) : std::next(it);
        }
        ref.index().for_each(0, UINT64_MAX, [&](const auto& e) {
          if (e.value == Ref::kReserved) sh.live[e.range.start] = {e.range.size, true};
        });
      } else {
        ASSERT_EQ(want.code(), absl::StatusCode::kAlreadyExists);
        ASSERT_TRUE(sh.overlaps(lo, hi - lo + (hi == UINT64_MAX ? 0 : 1)));
      }
    }
    if (i % 64 == 0) {
      for_all([&](auto& d) {
        ASSERT_EQ(d.index().size(), sh.live.size());
        if constexpr (requires { d.index().check_invariants(); }) {
          ASSERT_TRUE(invariant_ok(d.index().check_invariants()));
        }
      });
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

using ref_domain = iova_domain<model_index<uint64_t>>;
#define UNDER_TEST iova_domain<rb_base>, iova_domain<rb_aug>, iova_domain<rcukit::extent_skiplist<uint64_t>>

TEST(IovaDomain, DifferentialSmallDomain) {
  // A tiny domain fills up: exercises failure and the wrap-around pass.
  for (uint64_t seed = 1; seed <= 8; ++seed) {
    run_differential<ref_domain, UNDER_TEST>(seed, 16, 16 + 512, 20000);
    if (HasFatalFailure()) return;
  }
}

TEST(IovaDomain, DifferentialLargeDomain) { run_differential<ref_domain, UNDER_TEST>(99, 1, 1 << 20, 20000); }

TEST(IovaDomain, DifferentialAcross4GiB) {
  // The domain straddles 4 GiB (pfn 2^20 at granule 4096): 32-bit and wide
  // requests mix, each with its own hint.
  constexpr uint64_t k4G = (uint64_t{1} << 32) / 4096;
  for (uint64_t seed = 11; seed <= 14; ++seed) {
    run_differential<ref_domain, UNDER_TEST>(seed, k4G - 300, k4G + 200, 20000);
    if (HasFatalFailure()) return;
  }
}

TEST(IovaDomain, DifferentialNearTop) {
  // pfns near UINT64_MAX: end_pfn - 1 is the largest usable pfn.
  run_differential<ref_domain, UNDER_TEST>(7, UINT64_MAX - 4096, UINT64_MAX, 30000);
}

template <class D>
void top_down_fresh() {
  D d(4096, 0, 1024);
  uint64_t prev = 1024;
  for (int i = 0; i < 256; ++i) {
    auto s = d.alloc(4, 1023, true);
    ASSERT_TRUE(s.ok());
    ASSERT_EQ(*s, prev - 4) << "allocations on a fresh domain descend, packed from the top";
    prev = *s;
  }
  // Full now: nothing fits; the failure changes nothing.
  EXPECT_EQ(d.alloc(1, 1023, false).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(d.index().size(), 256u);
  // A limit above the domain is clipped to end_pfn - 1 (inclusive).
  ASSERT_TRUE(d.free(1020).ok());
  EXPECT_EQ(*d.alloc(4, UINT64_MAX, true), 1020u);
  // Freeing at or above the cached position moves it up: freed space is
  // found first; below it, the second pass still finds the bottom.
  ASSERT_TRUE(d.free(0).ok());
  ASSERT_TRUE(d.free(1020).ok());
  EXPECT_EQ(*d.alloc(2, 1023, false), 1022u);
  EXPECT_EQ(*d.alloc(2, 1023, false), 1020u);
  EXPECT_EQ(*d.alloc(1, 1023, false), 3u);
  EXPECT_EQ(*d.alloc(3, 1023, false), 0u);
  EXPECT_EQ(d.alloc(1, 1023, false).status().code(), absl::StatusCode::kResourceExhausted);
  // Bad input.
  EXPECT_EQ(d.alloc(0, 1023, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d.free(5).code(), absl::StatusCode::kNotFound);     // inside [4, 8), not a start
  EXPECT_EQ(d.free(1021).code(), absl::StatusCode::kNotFound);  // inside [1020, 1022)
  EXPECT_EQ(d.reserve(10, 9).code(), absl::StatusCode::kInvalidArgument);
  D d2(4096, 10, 20);
  EXPECT_EQ(d2.alloc(1, 5, false).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(d2.alloc(11, 100, false).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(*d2.alloc(10, 100, false), 10u);
}

TEST(IovaDomain, TopDownOnFreshDomainBaseline) { top_down_fresh<iova_domain<rb_base>>(); }
TEST(IovaDomain, TopDownOnFreshDomainAugmented) { top_down_fresh<iova_domain<rb_aug>>(); }
TEST(IovaDomain, TopDownOnFreshDomainSkiplist) {
  top_down_fresh<iova_domain<rcukit::extent_skiplist<uint64_t>>>();
}

// Separate hints (the kernel's cached32_node and cached_node): one
// allocation limited to 4 GiB must not pull the following wide allocations
// below 4 GiB while the space above it has room, and the 32-bit requests
// carry on below their own last allocation.
template <class D>
void wide_requests_keep_their_hint() {
  constexpr uint64_t k4G = (uint64_t{1} << 32) / 4096;  // first pfn above 4 GiB
  D d(4096, 1, 2 * k4G);
  auto low = d.alloc(1, k4G - 1, false);
  ASSERT_TRUE(low.ok());
  EXPECT_EQ(*low, k4G - 1);
  int below = 0, out_of_order = 0;
  uint64_t prev = 2 * k4G;
  for (int i = 0; i < 1000; ++i) {
    auto s = d.alloc(1, UINT64_MAX, false);
    ASSERT_TRUE(s.ok());
    if (*s < k4G) ++below;
    if (*s != prev - 1) ++out_of_order;  // wide allocations descend from the top
    prev = *s;
  }
  EXPECT_EQ(below, 0) << below << " of 1000 wide allocations landed below 4 GiB";
  EXPECT_EQ(out_of_order, 0) << "wide allocations must descend from the top of the domain";
  EXPECT_EQ(*d.alloc(1, k4G - 1, false), k4G - 2) << "32-bit requests carry on below their last one";
  // Freeing a wide range at or above the wide hint moves only that hint.
  ASSERT_TRUE(d.free(2 * k4G - 1).ok());
  EXPECT_EQ(*d.alloc(1, k4G - 1, false), k4G - 3);
  EXPECT_EQ(*d.alloc(1, UINT64_MAX, false), 2 * k4G - 1);
  // Above 4 GiB full: a wide request falls back below 4 GiB, under the
  // 32-bit requests' last allocation, and never fails while anything fits.
  D e(4096, k4G - 8, k4G + 4);
  for (int i = 0; i < 4; ++i) EXPECT_GE(*e.alloc(1, UINT64_MAX, false), k4G);
  EXPECT_EQ(*e.alloc(2, UINT64_MAX, false), k4G - 2);
  EXPECT_EQ(*e.alloc(1, k4G - 1, false), k4G - 3);
  EXPECT_EQ(*e.alloc(4, UINT64_MAX, true), k4G - 8);
  EXPECT_EQ(*e.alloc(1, UINT64_MAX, false), k4G - 4);
  // The class is decided by the inclusive limit: limit k4G reaches one page
  // above 4 GiB, so the request is wide and takes that page.
  D g(4096, 1, 2 * k4G);
  EXPECT_EQ(*g.alloc(1, k4G - 1, false), k4G - 1);
  EXPECT_EQ(*g.alloc(1, k4G, false), k4G) << "a window reaching above 4 GiB is wide";
  EXPECT_EQ(*g.alloc(1, k4G, false), k4G - 2) << "nothing left above 4 GiB under this limit";
  // A range straddling 4 GiB is found when nothing else fits.
  D f(4096, k4G - 2, k4G + 2);
  EXPECT_EQ(*f.alloc(4, UINT64_MAX, false), k4G - 2);
}

TEST(IovaDomain, WideRequestsKeepTheirHintBaseline) { wide_requests_keep_their_hint<iova_domain<rb_base>>(); }
TEST(IovaDomain, WideRequestsKeepTheirHintAugmented) { wide_requests_keep_their_hint<iova_domain<rb_aug>>(); }
TEST(IovaDomain, WideRequestsKeepTheirHintSkiplist) {
  wide_requests_keep_their_hint<iova_domain<rcukit::extent_skiplist<uint64_t>>>();
}

TEST(IovaDomain, ReservationsAreNeverHandedOut) {
  iova_domain<rb_aug> d(4096, 0, 256);
  ASSERT_TRUE(d.reserve(100, 199).ok());
  ASSERT_TRUE(d.reserve(150, 210).ok());                       // overlapping reservation: merged coverage
  EXPECT_EQ(d.free(100).code(), absl::StatusCode::kNotFound);  // reservations are not freed
  std::vector<uint64_t> got;
  for (;;) {
    auto s = d.alloc(1, 255, false);
    if (!s.ok()) break;
    EXPECT_TRUE(*s < 100 || *s > 210) << *s;
    got.push_back(*s);
  }
  EXPECT_EQ(got.size(), 256u - 111u);
  EXPECT_EQ(d.reserve(0, 5).code(), absl::StatusCode::kAlreadyExists);  // over allocations
  ASSERT_TRUE(d.find(105).has_value());
}

TEST(IovaDomain, AllocationFailureChangesNothing) {
  iova_domain<rb_base> d(4096, 1, 4097);
  for (int i = 0; i < 64; ++i) ASSERT_TRUE(d.alloc(1 + i % 5, 4096, i % 2).ok());
  std::vector<rcukit::extent> before;
  d.index().for_each(0, UINT64_MAX, [&](const auto& e) { before.push_back(e.range); });
  for (int i = 0; i < 100; ++i) {
    failing_alloc::fail_next = 1;
    EXPECT_EQ(d.alloc(1 + i % 7, 4096, i % 2).status().code(), absl::StatusCode::kResourceExhausted);
    failing_alloc::fail_next = 1;
    EXPECT_EQ(d.reserve(100 + i % 50, 100 + i % 50).code(), absl::StatusCode::kResourceExhausted);
  }
  failing_alloc::fail_next = 0;
  std::vector<rcukit::extent> after;
  d.index().for_each(0, UINT64_MAX, [&](const auto& e) { after.push_back(e.range); });
  EXPECT_EQ(before, after);
}

}  // namespace
