// SPDX-License-Identifier: MIT
// Concurrent tests of extent_skiplist with accounting, bounded by
// RCUKIT_TEST_SECONDS (default 1). Typed over the default leaves and 4-extent
// leaves (constant splits and leaf removals).
//
// What can fail here:
//  * a writer on its own region reads back something other than what it
//    knows is there (lookup and lookup_rcu of a known-present extent must
//    return exactly it: never missed, never torn);
//  * a hole-taker gets a hole that overlaps someone else's extent, outside
//    its request's bounds, or misaligned, or ResourceExhausted while a
//    fitting range provably stayed free for the whole call;
//  * a scanner (for_each or leaf iteration) sees an extent twice, out of
//    order, or misses one of the permanent extents that are
//    present for the whole walk;
//  * at the end the contents differ from the union of what every thread
//    believes it owns (nothing lost, nothing duplicated), an invariant is
//    broken, or a leaf leaks (live counter after rcu::barrier()).
//  * gap bounds: hole searches racing with splits (inserts only, no erase)
//    leave a bound below the true largest gap of its span (invariant 7);
//  * the quiescent oracle, after every race above: a free gap that for_each
//    shows is not allocatable by insert_hole exactly where API.md's rule
//    puts it, or check_invariants reports a violation.
#include <gtest/gtest.h>

#include <atomic>
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_test_traits.hpp"

namespace rcukit::testing {
namespace {

double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

// The quiescent oracle (call when no other thread uses the list): every free
// gap [a, b) between the extents for_each yields in [lo, hi) (the stretch
// from lo to the first extent and from the last one to hi count too) is
// allocatable by insert_hole at exactly the start API.md's rule gives when
// no other writer runs, for b - a units asked four ways: from hint a going
// up and from hint b going down (answer a: the walk next to the hint finds
// it), and from hint lo going up and hint hi going down (answer: the first,
// or last, gap at least that long, which only the hole index finds without
// reading every extent). Each allocation is erased again; the bounds the
// searches lower on the way must still cover their gaps, so
// check_invariants runs every 64 gaps. Returns the number of failures (the
// first few are reported).
template <class L>
long expect_gaps_allocatable(L& list, uint64_t lo, uint64_t hi) {
  std::vector<std::pair<uint64_t, uint64_t>> gaps;
  uint64_t cursor = lo;
  list.for_each(lo, hi, [&](const typename L::entry& e) {
    if (e.range.start > cursor) gaps.emplace_back(cursor, e.range.start);
    cursor = std::max(cursor, e.range.end());
  });
  if (cursor < hi) gaps.emplace_back(cursor, hi);
  // Longest gap up to i, and from i on: the first (last) gap of at least a
  // length is found by binary search.
  const size_t g = gaps.size();
  std::vector<uint64_t> longest_to(g), longest_from(g);
  for (size_t i = 0; i < g; ++i) {
    const uint64_t len = gaps[i].second - gaps[i].first;
    longest_to[i] = i > 0 ? std::max(longest_to[i - 1], len) : len;
  }
  for (size_t i = g; i-- > 0;) {
    const uint64_t len = gaps[i].second - gaps[i].first;
    longest_from[i] = i + 1 < g ? std::max(longest_from[i + 1], len) : len;
  }
  long bad = 0;
  auto report = [&](const std::string& what) {
    if (++bad <= 5) ADD_FAILURE() << what;
  };
  auto ask = [&](uint64_t size, hole_request::direction dir, uint64_t hint, uint64_t want) {
    hole_request r;
    r.size = size;
    r.floor = lo;
    r.limit = hi;
    r.dir = dir;
    r.hint = hint;
    const auto got = list.insert_hole(r, 0);
    if (!got.ok() || *got != want) {
      report("a free gap of " + std::to_string(size) + " asked " + (dir == hole_request::direction::up ? "up" : "down") +
             " from " + std::to_string(hint) + ": want " + std::to_string(want) + ", got " +
             (got.ok() ? std::to_string(*got) : got.status().ToString()));
    }
    if (got.ok() && !list.erase(*got).has_value()) report("the oracle's allocation vanished");
  };
  for (size_t i = 0; i < g; ++i) {
    const auto [a, b] = gaps[i];
    const uint64_t len = b - a;
    ask(len, hole_request::direction::up, a, a);
    ask(len, hole_request::direction::down, b, a);
    // First gap from the left, last from the right, at least len long.
    const size_t first = std::lower_bound(longest_to.begin(), longest_to.end(), len) - longest_to.begin();
    const size_t last = g - 1 - (std::lower_bound(longest_from.rbegin(), longest_from.rend(), len) - longest_from.rbegin());
    ask(len, hole_request::direction::up, lo, gaps[first].first);
    ask(len, hole_request::direction::down, hi, gaps[last].second - len);
    if (i % 64 == 63 || i + 1 == g) {
      if (const absl::Status inv = list.check_invariants(); !inv.ok()) report("oracle: " + inv.ToString());
    }
  }
  return bad;
}

constexpr uint64_t kRegion = uint64_t{1} << 40;    // one per writer
constexpr uint64_t kHoleBase = uint64_t{1} << 50;  // shared by hole-takers
constexpr uint64_t kHoleSpan = uint64_t{1} << 14;  // small: holes are contended
constexpr uint64_t kPermBase = uint64_t{3} << 50;  // permanent extents, never erased
constexpr uint64_t kPermCount = 300;

template <class L>
class SkiplistConcurrent : public ::testing::Test {
 protected:
  void TearDown() override {
    rcu::barrier<typename L::rcu_flavor>();
    EXPECT_EQ(L::traits_type::live.load(std::memory_order_relaxed), 0) << "leaves leaked";
  }
};

using ConcurrentTypes = ::testing::Types<extent_skiplist<uint64_t, rcu::memb, default_test_traits>,
                                         extent_skiplist<uint64_t, rcu::memb, tiny_test_traits>>;
TYPED_TEST_SUITE(SkiplistConcurrent, ConcurrentTypes);

TYPED_TEST(SkiplistConcurrent, WritersHoleTakersScanners) {
  using L = TypeParam;
  using entry = typename L::entry;
  constexpr int kWriters = 2, kHoleTakers = 2, kScanners = 2;
  auto list = std::make_unique<L>();
  for (uint64_t i = 0; i < kPermCount; ++i) {
    ASSERT_TRUE(list->insert(extent{kPermBase + i * 16, 8}, ~i).ok());
  }
  std::atomic<bool> stop{false};  // relaxed is enough: joins order the results
  std::vector<std::map<uint64_t, entry>> owned(kWriters + kHoleTakers);
  std::atomic<long> failures{0};
  auto fail = [&](const char* what, uint64_t a, uint64_t b) {
    if (failures.fetch_add(1, std::memory_order_relaxed) < 10) ADD_FAILURE() << what << " " << a << " " << b;
  };
  std::vector<std::thread> threads;

  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(100 + w);
      auto& mine = owned[w];
      const uint64_t base = kRegion * (w + 1);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t k = base + rng() % 20000;
        const uint64_t sz = 1 + rng() % 8;
        const uint64_t v = (uint64_t(w) << 48) | ++n;
        if (rng() % 3 != 0 || mine.empty()) {
          const absl::Status s = list->insert(extent{k, sz}, v);
          auto it = mine.upper_bound(k);
          bool overlap = it != mine.end() && it->first < k + sz;
          if (it != mine.begin() && std::prev(it)->second.range.end() > k) overlap = true;
          if (s.ok() == overlap) fail("insert disagrees with the owner's map", k, sz);
          if (s.ok()) mine.emplace(k, entry{extent{k, sz}, v});
        } else {
          auto it = mine.lower_bound(k);
          if (it == mine.end()) it = mine.begin();
          const entry e = it->second;
          const auto got = list->erase(e.range.start);
          if (!got || !(*got == e)) fail("erase of an owned extent", e.range.start, got.has_value());
          mine.erase(it);
        }
        if (!mine.empty()) {  // a known-present extent is always found, untorn
          auto it = mine.lower_bound(base + rng() % 20000);
          if (it == mine.end()) it = mine.begin();
          const entry e = it->second;
          const auto a = list->lookup(e.range.start + rng() % e.range.size);
          if (!a || !(*a == e)) fail("lookup missed a present extent", e.range.start, a.has_value());
          rcu::read_guard<rcu::memb> g;
          const auto b = list->lookup_rcu(g, e.range.start, e.range.size);
          if (!b || !(*b == e)) fail("lookup_rcu missed a present extent", e.range.start, b.has_value());
        }
      }
    });
  }
  // A failed insert_hole is only legitimate if no fitting range stayed free
  // for the whole call (API.md). Certificate: every extent that existed in
  // the hole span during the call is counted in `ins` by the time the call
  // returns and was not yet counted in `rem` when it began, so at most
  // ins_end - rem_begin extents (count and total size) ever covered the span
  // during the call; the complement of their union was free throughout and
  // has at most that many + 1 pieces. If the largest piece must hold an
  // aligned fit, the failure is an error.
  std::atomic<uint64_t> ins_n{0}, ins_size{0}, rem_n{0}, rem_size{0};  // seq_cst: see above
  for (int h = 0; h < kHoleTakers; ++h) {
    threads.emplace_back([&, h] {
      std::mt19937_64 rng(200 + h);
      auto& mine = owned[kWriters + h];
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        if (rng() % 5 < 3 || mine.empty()) {
          hole_request r;
          r.size = 1 + rng() % 16;
          r.align = uint64_t{1} << (rng() % 4);
          r.floor = kHoleBase;
          r.limit = kHoleBase + kHoleSpan;
          r.hint = kHoleBase + rng() % kHoleSpan;
          r.dir = (rng() & 1) ? hole_request::direction::up : hole_request::direction::down;
          const uint64_t v = (uint64_t(100 + h) << 48) | ++n;
          const uint64_t rn0 = rem_n.load(), rs0 = rem_size.load();
          const auto s = list->insert_hole(r, v);
          if (!s.ok()) {
            if (s.status().code() != absl::StatusCode::kResourceExhausted) fail("insert_hole error", 0, 0);
            const uint64_t k = ins_n.load() - rn0, used = ins_size.load() - rs0;
            if (used < kHoleSpan && (kHoleSpan - used) / (k + 1) >= r.size + r.align - 1) {
              fail("insert_hole failed while a fitting range stayed free", k, used);
            }
            continue;
          }
          ins_n.fetch_add(1);
          ins_size.fetch_add(r.size);
          if (*s < r.floor || *s + r.size > r.limit || *s % r.align != 0)
            fail("hole out of bounds", *s, r.size);
          if (mine.count(*s) != 0) fail("hole handed out twice", *s, 0);
          mine.emplace(*s, entry{extent{*s, r.size}, v});
          const auto a = list->lookup(*s);
          if (!a || a->value != v) fail("own hole not found", *s, 0);
        } else {
          auto it = mine.lower_bound(kHoleBase + rng() % kHoleSpan);
          if (it == mine.end()) it = mine.begin();
          const entry e = it->second;
          const auto got = list->erase(e.range.start);
          if (!got || !(*got == e)) fail("erase of an owned hole", e.range.start, 0);
          rem_n.fetch_add(1);
          rem_size.fetch_add(e.range.size);
          mine.erase(it);
        }
      }
    });
  }
  for (int sc = 0; sc < kScanners; ++sc) {
    threads.emplace_back([&, sc] {
      while (!stop.load(std::memory_order_relaxed)) {
        bool first = true;
        uint64_t prev_start = 0, perm_seen = 0;
        auto check = [&](const entry& e) {
          // A scan is not a snapshot: extents seen at different moments may
          // overlap (one erased, then another inserted), but starts must
          // strictly increase (sorted, nothing twice).
          if (!first && e.range.start <= prev_start)
            fail("scan not sorted or repeated", prev_start, e.range.start);
          first = false;
          prev_start = e.range.start;
          if (e.range.start >= kPermBase && e.range.start < kPermBase + kPermCount * 16) ++perm_seen;
        };
        if (sc == 0) {
          list->for_each(0, UINT64_MAX, check);
        } else {
          rcu::read_guard<rcu::memb> g;
          for (auto v = list->first_leaf(g); v; v = list->next_leaf(g, v)) {
            for (size_t i = 0; i < v.size(); ++i) check(v.at(i));
          }
        }
        if (perm_seen != kPermCount) fail("scan missed a permanent extent", perm_seen, kPermCount);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();

  // Accounting: the list holds exactly the permanent extents plus what every
  // thread believes it owns.
  std::map<uint64_t, entry> expect;
  for (uint64_t i = 0; i < kPermCount; ++i) {
    expect.emplace(kPermBase + i * 16, entry{extent{kPermBase + i * 16, 8}, ~i});
  }
  for (const auto& m : owned) expect.insert(m.begin(), m.end());
  std::vector<entry> got;
  list->for_each(0, UINT64_MAX, [&](const entry& e) { got.push_back(e); });
  std::vector<entry> want;
  for (const auto& [k, e] : expect) want.push_back(e);
  EXPECT_EQ(got.size(), want.size());
  EXPECT_TRUE(got == want) << "contents differ from the union of owners' maps";
  EXPECT_EQ(list->size(), want.size());
  const absl::Status inv = list->check_invariants();
  EXPECT_TRUE(inv.ok()) << inv;
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(expect_gaps_allocatable(*list, 0, UINT64_MAX), 0);
  list->clear();
  EXPECT_TRUE(list->empty());
  list.reset();
}

// Many threads fill one small space with insert_hole and free it again; at
// every moment the holes handed out are disjoint (checked at the end through
// the per-thread records) and the total never exceeds the space.
TYPED_TEST(SkiplistConcurrent, HoleTakersExhaustAndRefill) {
  using L = TypeParam;
  auto list = std::make_unique<L>();
  constexpr int kThreads = 4;
  constexpr uint64_t kSpace = 4096;
  std::atomic<bool> stop{false};
  std::atomic<long> failures{0};
  std::vector<std::vector<uint64_t>> held(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(300 + t);
      auto& mine = held[t];
      while (!stop.load(std::memory_order_relaxed)) {
        hole_request r;
        r.size = 16;
        r.align = 16;
        r.limit = kSpace;
        r.hint = rng() % kSpace;
        r.dir = (t & 1) ? hole_request::direction::down : hole_request::direction::up;
        const auto s = list->insert_hole(r, uint64_t(t));
        if (s.ok()) {
          if (*s % 16 != 0 || *s + 16 > kSpace) failures.fetch_add(1);
          mine.push_back(*s);
        } else if (s.status().code() != absl::StatusCode::kResourceExhausted) {
          failures.fetch_add(1);
        }
        if (!mine.empty() && (!s.ok() || rng() % 2 == 0)) {
          const size_t i = rng() % mine.size();
          const auto e = list->erase(mine[i]);
          if (!e || e->value != uint64_t(t) || e->range.start != mine[i]) failures.fetch_add(1);
          mine[i] = mine.back();
          mine.pop_back();
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : threads) th.join();
  std::map<uint64_t, int> all;
  for (int t = 0; t < kThreads; ++t) {
    for (uint64_t s : held[t]) EXPECT_TRUE(all.emplace(s, t).second) << "hole " << s << " held twice";
  }
  EXPECT_EQ(list->size(), all.size());
  for (const auto& [s, t] : all) {
    const auto e = list->lookup(s);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->value, uint64_t(t));
  }
  EXPECT_EQ(failures.load(), 0);
  EXPECT_TRUE(list->check_invariants().ok());
  EXPECT_EQ(expect_gaps_allocatable(*list, 0, kSpace), 0);
  list.reset();
}

// Splits racing with the bound tightening of hole searches, without any
// erase (so no bound is ever marked): once quiet, every bound must still
// cover its span (invariant 7, check_invariants). Regression: a tower's
// bound, lowered to the max of children listed before a split and of a
// child bound tightened after it, omitted the split-off child's range.
// Short rounds on a tiny list, so that splits land inside a tighten.
template <class L>
void splits_vs_tightening() {
  std::mt19937_64 rng(400);
  constexpr uint64_t kSpace = 1024;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds() / 2);
  long rounds = 0, bad = 0;
  while (std::chrono::steady_clock::now() < until || rounds < 100) {
    ++rounds;
    auto list = std::make_unique<L>();
    for (int i = 0; i < 24; ++i) (void)list->insert(extent{rng() % kSpace, 1 + rng() % 3}, 1);
    std::atomic<bool> stop{false};  // relaxed is enough: the joins order the rest
    const uint64_t s1 = rng(), s2 = rng();
    std::thread writer([&] {
      std::mt19937_64 r(s1);
      for (int i = 0; i < 40; ++i) (void)list->insert(extent{r() % kSpace, 1 + r() % 3}, 2);
      stop.store(true, std::memory_order_relaxed);
    });
    std::thread searcher([&] {
      std::mt19937_64 r(s2);
      for (int n = 0; !stop.load(std::memory_order_relaxed) || n < 4; ++n) {
        hole_request q;
        q.hint = r() % kSpace;
        q.size = 8 + r() % 200;  // mostly too big: a full, tightening descent
        q.limit = kSpace;
        q.dir = (r() & 1) ? hole_request::direction::up : hole_request::direction::down;
        (void)list->insert_hole(q, 3);
      }
    });
    writer.join();
    searcher.join();
    const absl::Status inv = list->check_invariants();
    if (!inv.ok() && ++bad <= 3) ADD_FAILURE() << "round " << rounds << ": " << inv;
    if (inv.ok() && expect_gaps_allocatable(*list, 0, kSpace) != 0 && ++bad <= 3) ADD_FAILURE() << "round " << rounds;
  }
  EXPECT_EQ(bad, 0) << "of " << rounds << " rounds";
  rcu::barrier<typename L::rcu_flavor>();
  EXPECT_EQ(L::traits_type::live.load(std::memory_order_relaxed), 0) << "leaves leaked";
}

// Issue 15's quiescent oracle: rounds on fresh 4-extent-leaf lists where an
// eraser, an appender (ascending extents past the end: splits, new levels)
// and a hole taker race, with the hole index already lowering bounds. Once
// quiet, every bound must cover its gaps (check_invariants), and the largest
// free gap the extents leave below the limit must be allocatable, exactly
// where the deterministic rule puts it, and so must every other free gap
// (expect_gaps_allocatable).
template <class L>
void quiescent_oracle_rounds() {
  std::mt19937_64 rng(500);
  constexpr uint64_t kLimit = 1 << 20;
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds() / 2);
  long rounds = 0, bad = 0;
  while (std::chrono::steady_clock::now() < until || rounds < 20) {
    ++rounds;
    auto list = std::make_unique<L>();
    std::vector<uint64_t> starts;
    for (int i = 0; i < 40; ++i) {
      const uint64_t k = (rng() % 4096) * 64;
      if (list->insert(extent{k, 1 + rng() % 48}, 1).ok()) starts.push_back(k);
    }
    hole_request arm;
    arm.size = 1;
    arm.floor = kLimit;
    (void)list->insert_hole(arm, 0);  // switches the hole index on
    for (int i = 0; i < 3; ++i) rcu::barrier<typename L::rcu_flavor>();  // searches may now lower bounds
    const uint64_t s1 = rng(), s2 = rng(), s3 = rng();
    std::thread eraser([&] {
      std::mt19937_64 r(s1);
      for (int i = 0; i < 30; ++i) (void)list->erase(starts[r() % starts.size()]);
    });
    std::thread appender([&] {
      std::mt19937_64 r(s2);
      uint64_t at = 4096 * 64;
      for (int i = 0; i < 30; ++i, at += 70) (void)list->insert(extent{at, 1 + r() % 40}, 2);
    });
    std::thread taker([&] {
      std::mt19937_64 r(s3);
      for (int i = 0; i < 30; ++i) {
        hole_request q;
        q.hint = (r() % 4096) * 64;
        q.size = 1 + r() % 300;
        q.limit = kLimit;
        q.dir = (r() & 1) ? hole_request::direction::up : hole_request::direction::down;
        (void)list->insert_hole(q, 3);
      }
    });
    eraser.join();
    appender.join();
    taker.join();
    const absl::Status inv = list->check_invariants();
    if (!inv.ok()) {
      if (++bad <= 3) ADD_FAILURE() << "round " << rounds << ": " << inv;
      continue;
    }
    uint64_t cursor = 0, best = 0, best_at = 0;
    list->for_each(0, kLimit, [&](const typename L::entry& e) {
      if (e.range.start > cursor && e.range.start - cursor > best) {
        best = e.range.start - cursor;
        best_at = cursor;
      }
      cursor = std::max(cursor, e.range.end());
    });
    if (cursor < kLimit && kLimit - cursor > best) {
      best = kLimit - cursor;
      best_at = cursor;
    }
    hole_request q;
    q.size = best;
    q.limit = kLimit;
    const auto got = list->insert_hole(q, 4);
    if (!got.ok() || *got != best_at) {
      if (++bad <= 3) {
        ADD_FAILURE() << "round " << rounds << ": the largest gap [" << best_at << ", +" << best << ") gave "
                      << (got.ok() ? std::to_string(*got) : got.status().ToString());
      }
    }
    if (got.ok()) (void)list->erase(*got);
    if (expect_gaps_allocatable(*list, 0, kLimit) != 0 && ++bad <= 3) ADD_FAILURE() << "round " << rounds;
  }
  EXPECT_EQ(bad, 0) << "of " << rounds << " rounds";
  rcu::barrier<typename L::rcu_flavor>();
  EXPECT_EQ(L::traits_type::live.load(std::memory_order_relaxed), 0) << "leaves leaked";
}

TEST(SkiplistGapBounds, QuiescentOracleRounds) {
  quiescent_oracle_rounds<extent_skiplist<uint64_t, rcu::memb, tiny_test_traits>>();
  quiescent_oracle_rounds<extent_skiplist<uint64_t, rcu::memb, tiny_own_tower_traits>>();
}

TEST(SkiplistGapBounds, SplitsDuringHoleSearchesKeepBoundsCovering) {
  splits_vs_tightening<extent_skiplist<uint64_t, rcu::memb, tiny_test_traits>>();
  splits_vs_tightening<extent_skiplist<uint64_t, rcu::memb, tiny_own_tower_traits>>();
}

}  // namespace
}  // namespace rcukit::testing
