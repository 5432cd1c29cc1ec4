// SPDX-License-Identifier: MIT
// tests/support/extent_index_suite.hpp -- one typed, model-based test suite
// for every rcukit::extent_index (the skiplist, the rbtree baselines, ...).
//
// Every operation is mirrored on rcukit::testing::extent_model<T> (a plain
// std::map with the API.md semantics) and the results must agree exactly:
// statuses (code), returned entries, insert_hole starts, iteration contents.
// The suite only uses the extent_index surface; check_invariants() is called
// when the type has one (requires-expression), whatever it returns (bool or
// absl::Status).
//
// Use from a test file:
//   #include "support/extent_index_suite.hpp"
//   using Types = ::testing::Types<my_index<uint64_t>>;
//   INSTANTIATE_TYPED_TEST_SUITE_P(MyIndex, ExtentIndexSuite, Types);
// Requirements on M::value_type: static_cast from uint64_t, operator==.
// The random tests run >= 1,000,000 operations per instantiated type in total.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"
#include "support/extent_model.hpp"

namespace rcukit::testing {

inline bool invariant_ok(bool b) { return b; }
inline bool invariant_ok(const absl::Status& s) { return s.ok(); }
inline std::string invariant_msg(bool) { return "check_invariants() returned false"; }
inline std::string invariant_msg(const absl::Status& s) { return s.ToString(); }

// Calls m.check_invariants() if M has it; records a failure otherwise-silent.
template <class M>
void maybe_check_invariants(const M& m, const char* where) {
  if constexpr (requires { m.check_invariants(); }) {
    const auto r = m.check_invariants();
    EXPECT_TRUE(invariant_ok(r)) << where << ": " << invariant_msg(r);
  }
}

template <class M>
class ExtentIndexSuite : public ::testing::Test {
 protected:
  using T = typename M::value_type;
  using F = typename M::rcu_flavor;
  using entry = typename M::entry;

  ExtentIndexSuite() {
    if constexpr (std::is_same_v<F, rcu::qsbr>) reg_.emplace();
    m_ = std::make_unique<M>();
  }
  ~ExtentIndexSuite() override {
    m_.reset();
    if constexpr (std::is_same_v<F, rcu::qsbr>) rcu::quiescent_state<F>();
    rcu::barrier<F>();
  }

  static T val(uint64_t x) { return static_cast<T>(x); }

  std::vector<entry> contents(uint64_t lo = 0, uint64_t hi = UINT64_MAX) const {
    std::vector<entry> v;
    m_->for_each(lo, hi, [&](const entry& e) { v.push_back(e); });
    return v;
  }
  // The same walk through range() inside a read side, and through
  // for_each stopping after `limit` extents.
  std::vector<entry> range_contents(uint64_t lo, uint64_t hi) const {
    rcu::read_guard<F> g;
    std::vector<entry> v;
    for (const entry& e : m_->range(g, lo, hi)) v.push_back(e);
    return v;
  }
  std::vector<entry> first_n(uint64_t lo, uint64_t hi, size_t limit) const {
    std::vector<entry> v;
    if (limit == 0) return v;
    m_->for_each(lo, hi, [&](const entry& e) {
      v.push_back(e);
      return v.size() < limit;
    });
    return v;
  }
  std::vector<entry> model_contents(uint64_t lo = 0, uint64_t hi = UINT64_MAX) const {
    std::vector<entry> v;
    model_.for_each(lo, hi, [&](const entry& e) { v.push_back(e); });
    return v;
  }

  // One random operation on both, compared. `u` draws keys, `s` sizes.
  template <class KeyGen, class SizeGen>
  void random_op(std::mt19937_64& rng, KeyGen&& u, SizeGen&& s, uint64_t step) {
    const unsigned op = static_cast<unsigned>(rng() % 100);
    const uint64_t k = u(rng);
    const uint64_t sz = s(rng);
    if (op < 30) {  // insert
      const absl::Status a = m_->insert(extent{k, sz}, val(step));
      const absl::Status b = model_.insert(extent{k, sz}, val(step));
      ASSERT_EQ(a.code(), b.code()) << "insert [" << k << ", +" << sz << ") " << a << " vs model " << b;
    } else if (op < 45) {  // erase
      const auto a = m_->erase(k, sz);
      const auto b = model_.erase(k, sz);
      ASSERT_EQ(a, b) << "erase(" << k << ", " << sz << ")";
    } else if (op < 55) {  // lookup
      ASSERT_EQ(m_->lookup(k, sz), model_.lookup(k, sz)) << "lookup(" << k << ", " << sz << ")";
    } else if (op < 62) {  // lookup_rcu
      rcu::read_guard<F> g;
      ASSERT_EQ(m_->lookup_rcu(g, k, sz), model_.lookup(k, sz)) << "lookup_rcu(" << k << ", " << sz << ")";
    } else if (op < 67) {
      ASSERT_EQ(m_->lower_bound(k), model_.lower_bound(k)) << "lower_bound(" << k << ")";
    } else if (op < 72) {
      ASSERT_EQ(m_->prev_extent(k), model_.prev_extent(k)) << "prev_extent(" << k << ")";
    } else if (op < 75) {  // assign: to an extent's start (when there is one near k) or anywhere
      uint64_t at = k;
      if (rng() & 1) {
        if (auto e = model_.lower_bound(k)) at = e->range.start;
      }
      ASSERT_EQ(m_->assign(at, val(step)).code(), model_.assign(at, val(step)).code()) << "assign(" << at << ")";
    } else if (op < 90) {  // insert_hole with random request
      hole_request r;
      r.dir = (rng() & 1) ? hole_request::direction::up : hole_request::direction::down;
      r.size = sz;
      r.align = uint64_t{1} << (rng() % 6);
      r.hint = (rng() % 4 == 0) ? 0 : u(rng);
      r.floor = (rng() % 3 == 0) ? 0 : u(rng);
      r.limit = (rng() % 3 == 0) ? UINT64_MAX : u(rng);
      if (rng() % 50 == 0) r.align = 3;  // bad input now and then
      if (rng() % 50 == 0) r.size = 0;
      const auto a = m_->insert_hole(r, val(step));
      const auto b = model_.insert_hole(r, val(step));
      ASSERT_EQ(a.status().code(), b.status().code())
          << "insert_hole hint=" << r.hint << " floor=" << r.floor << " limit=" << r.limit
          << " size=" << r.size << " align=" << r.align
          << " down=" << (r.dir == hole_request::direction::down);
      if (a.ok()) {
        ASSERT_EQ(*a, *b) << "insert_hole hint=" << r.hint << " floor=" << r.floor << " limit=" << r.limit
                          << " size=" << r.size << " align=" << r.align
                          << " down=" << (r.dir == hole_request::direction::down);
      }
    } else if (op < 95) {  // for_each over a random window, empty ones too
      // Ascending, equal (lo == hi: nothing) or reversed (lo > hi: nothing).
      const unsigned shape = static_cast<unsigned>(rng() % 8);
      const uint64_t k2 = shape == 0 ? k : u(rng);
      const uint64_t lo = shape == 1 ? std::max(k, k2) : std::min(k, k2);
      const uint64_t hi = shape == 1 ? std::min(k, k2) : std::max(k, k2);
      const auto want = model_contents(lo, hi);
      switch (rng() % 3) {
        case 0:
          ASSERT_EQ(contents(lo, hi), want) << "for_each(" << lo << ", " << hi << ")";
          break;
        case 1:
          ASSERT_EQ(range_contents(lo, hi), want) << "range(" << lo << ", " << hi << ")";
          break;
        default: {
          const size_t limit = static_cast<size_t>(rng() % 6);
          const std::vector<entry> head(want.begin(), want.begin() + std::min(limit, want.size()));
          ASSERT_EQ(first_n(lo, hi, limit), head) << "for_each(" << lo << ", " << hi << ") stopping after " << limit;
        }
      }
    } else if (op < 99) {
      ASSERT_EQ(m_->size(), model_.size());
      ASSERT_EQ(m_->empty(), model_.empty());
    } else if (rng() % 40 == 0) {
      m_->clear();
      model_.clear();
      ASSERT_TRUE(m_->empty());
    }
  }

  template <class KeyGen, class SizeGen>
  void run_random(uint64_t seed, uint64_t ops, KeyGen&& u, SizeGen&& s) {
    std::mt19937_64 rng(seed);
    for (uint64_t i = 0; i < ops; ++i) {
      random_op(rng, u, s, i);
      if (::testing::Test::HasFatalFailure()) {
        ADD_FAILURE() << "seed " << seed << " step " << i;
        return;
      }
      if (i % 4096 == 0) {
        maybe_check_invariants(*m_, "random ops");
        ASSERT_EQ(contents(), model_.all()) << "seed " << seed << " step " << i;
      }
    }
    maybe_check_invariants(*m_, "end of random ops");
    ASSERT_EQ(contents(), model_.all());
    ASSERT_EQ(m_->size(), model_.size());
  }

  std::optional<rcu::thread_registration<F>> reg_;
  std::unique_ptr<M> m_;
  extent_model<T> model_;
};

TYPED_TEST_SUITE_P(ExtentIndexSuite);

TYPED_TEST_P(ExtentIndexSuite, EmptyIndex) {
  auto& m = *this->m_;
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.size(), 0u);
  EXPECT_FALSE(m.lookup(0));
  EXPECT_FALSE(m.lookup(UINT64_MAX - 1));
  EXPECT_FALSE(m.lower_bound(0));
  EXPECT_FALSE(m.prev_extent(UINT64_MAX));
  EXPECT_FALSE(m.erase(5));
  EXPECT_TRUE(this->contents().empty());
  maybe_check_invariants(m, "empty");
}

TYPED_TEST_P(ExtentIndexSuite, BasicInsertLookupErase) {
  auto& m = *this->m_;
  using E = typename TestFixture::entry;
  ASSERT_TRUE(m.insert(extent{100, 10}, this->val(1)).ok());
  ASSERT_TRUE(m.insert(extent{110, 5}, this->val(2)).ok());  // adjacent is fine
  ASSERT_TRUE(m.insert(extent{90, 10}, this->val(3)).ok());
  EXPECT_EQ(m.insert(extent{95, 1}, this->val(4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(m.insert(extent{114, 100}, this->val(4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(m.insert(extent{0, 91}, this->val(4)).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(m.size(), 3u);
  EXPECT_EQ(m.lookup(105), (E{extent{100, 10}, this->val(1)}));
  EXPECT_EQ(m.lookup(89), std::nullopt);
  EXPECT_EQ(m.lookup(80, 11), (E{extent{90, 10}, this->val(3)}));  // lowest overlapping
  EXPECT_EQ(m.lookup(115), std::nullopt);
  EXPECT_EQ(m.lower_bound(91), (E{extent{100, 10}, this->val(1)}));
  EXPECT_EQ(m.prev_extent(100), (E{extent{90, 10}, this->val(3)}));
  EXPECT_EQ(m.erase(112), (E{extent{110, 5}, this->val(2)}));
  EXPECT_EQ(m.erase(112), std::nullopt);
  EXPECT_EQ(m.size(), 2u);
  {
    rcu::read_guard<typename TestFixture::F> g;
    EXPECT_EQ(m.lookup_rcu(g, 99), (E{extent{90, 10}, this->val(3)}));
  }
  maybe_check_invariants(m, "basic");
  m.clear();
  EXPECT_TRUE(m.empty());
  EXPECT_EQ(m.size(), 0u);
  maybe_check_invariants(m, "after clear");
}

TYPED_TEST_P(ExtentIndexSuite, BadInputChangesNothing) {
  auto& m = *this->m_;
  ASSERT_TRUE(m.insert(extent{10, 10}, this->val(1)).ok());
  EXPECT_EQ(m.insert(extent{30, 0}, this->val(2)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.insert(extent{UINT64_MAX, 1}, this->val(2)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(m.insert(extent{UINT64_MAX - 5, 10}, this->val(2)).code(), absl::StatusCode::kInvalidArgument);
  hole_request r;
  r.size = 0;
  EXPECT_EQ(m.insert_hole(r, this->val(3)).status().code(), absl::StatusCode::kInvalidArgument);
  r.size = 4;
  r.align = 0;
  EXPECT_EQ(m.insert_hole(r, this->val(3)).status().code(), absl::StatusCode::kInvalidArgument);
  r.align = 6;
  EXPECT_EQ(m.insert_hole(r, this->val(3)).status().code(), absl::StatusCode::kInvalidArgument);
  r.align = 1;
  r.floor = 100;
  r.limit = 103;
  EXPECT_EQ(m.insert_hole(r, this->val(3)).status().code(), absl::StatusCode::kInvalidArgument);
  r.floor = 200;
  r.limit = 100;
  EXPECT_EQ(m.insert_hole(r, this->val(3)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(m.lookup(5, 0));
  EXPECT_FALSE(m.lookup(UINT64_MAX, 1));
  EXPECT_FALSE(m.erase(15, 0));
  EXPECT_EQ(m.size(), 1u);
  const auto c = this->contents();
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0], (typename TestFixture::entry{extent{10, 10}, this->val(1)}));
  maybe_check_invariants(m, "bad input");
}

TYPED_TEST_P(ExtentIndexSuite, InsertHoleScripted) {
  auto& m = *this->m_;
  hole_request r;
  r.size = 8;
  r.align = 8;
  r.hint = 10;
  auto s = m.insert_hole(r, this->val(1));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 16u);  // up: lowest aligned start >= hint
  s = m.insert_hole(r, this->val(2));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 24u);
  r.hint = 20;
  r.limit = 32;
  s = m.insert_hole(r, this->val(3));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 0u);  // wrapped around to the floor
  s = m.insert_hole(r, this->val(4));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 8u);
  s = m.insert_hole(r, this->val(5));
  EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(m.size(), 4u);
  hole_request d;
  d.dir = hole_request::direction::down;
  d.size = 16;
  d.align = 16;
  s = m.insert_hole(d, this->val(6));  // hint 0 = limit = UINT64_MAX
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, UINT64_MAX - 31);  // highest 16-aligned start with end <= UINT64_MAX
  d.hint = 64;
  d.floor = 40;
  s = m.insert_hole(d, this->val(7));
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, 48u);
  s = m.insert_hole(d, this->val(8));  // [40, 64) has no other aligned 16: wraps to the top
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, UINT64_MAX - 47);
  maybe_check_invariants(m, "insert_hole scripted");
}

TYPED_TEST_P(ExtentIndexSuite, ManyExtentsAscendingDescending) {
  auto& m = *this->m_;
  auto& model = this->model_;
  for (uint64_t i = 0; i < 5000; ++i) {
    ASSERT_TRUE(m.insert(extent{i * 4, 3}, this->val(i)).ok());
    ASSERT_TRUE(model.insert(extent{i * 4, 3}, this->val(i)).ok());
  }
  for (uint64_t i = 10000; i-- > 5000;) {
    ASSERT_TRUE(m.insert(extent{i * 4, 3}, this->val(i)).ok());
    ASSERT_TRUE(model.insert(extent{i * 4, 3}, this->val(i)).ok());
  }
  maybe_check_invariants(m, "many inserted");
  EXPECT_EQ(m.size(), 10000u);
  EXPECT_EQ(this->contents(), model.all());
  for (uint64_t i = 0; i < 10000; i += 2) ASSERT_EQ(m.erase(i * 4 + 1), model.erase(i * 4 + 1));
  maybe_check_invariants(m, "half erased");
  EXPECT_EQ(this->contents(), model.all());
  for (uint64_t i = 1; i < 10000; i += 2) ASSERT_EQ(m.erase(i * 4), model.erase(i * 4));
  EXPECT_TRUE(m.empty());
  maybe_check_invariants(m, "all erased");
}

// The first fitting hole at every distance from the hint, from next to it
// to several leaves away, going down and going up, aligned and not: a
// search may look near the hint first (the skiplist reads a bounded number
// of extents there before it turns to its hole index), and its answer must
// be API.md's on either side of that bound.
TYPED_TEST_P(ExtentIndexSuite, InsertHoleFirstFitAtEveryDistance) {
  auto& m = *this->m_;
  auto& model = this->model_;
  // [4i, 4i + 3) for i < 400 except 200 and 201: gaps of 1, and [799, 808).
  for (uint64_t i = 0; i < 400; ++i) {
    if (i == 200 || i == 201) continue;
    ASSERT_TRUE(m.insert(extent{4 * i, 3}, this->val(i)).ok());
    ASSERT_TRUE(model.insert(extent{4 * i, 3}, this->val(i)).ok());
  }
  for (uint64_t d = 0; d < 190; ++d) {
    for (uint64_t align : {1, 4}) {
      for (auto dir : {hole_request::direction::down, hole_request::direction::up}) {
        hole_request r;
        r.dir = dir;
        r.size = 6;
        r.align = align;
        r.hint = dir == hole_request::direction::down ? 4 * (202 + d) + 1 : 4 * (199 - d) + 2;
        const auto a = m.insert_hole(r, this->val(d));
        const auto b = model.insert_hole(r, this->val(d));
        ASSERT_TRUE(a.ok() && b.ok()) << "d=" << d;
        ASSERT_EQ(*a, *b) << "d=" << d << " align=" << align
                          << " down=" << (dir == hole_request::direction::down);
        ASSERT_TRUE(m.erase(*a).has_value());
        ASSERT_TRUE(model.erase(*b).has_value());
      }
    }
  }
  maybe_check_invariants(m, "first fit at every distance");
  EXPECT_EQ(this->contents(), model.all());
}

// API.md: for_each(lo, hi) visits every extent overlapping [lo, hi); when
// lo >= hi that range is empty and nothing is visited -- in particular not
// the extent that contains lo. The same on every backend.
TYPED_TEST_P(ExtentIndexSuite, EmptyRangeVisitsNothing) {
  auto& m = *this->m_;
  ASSERT_TRUE(m.insert(extent{10, 100}, this->val(1)).ok());
  ASSERT_TRUE(m.insert(extent{200, 1}, this->val(2)).ok());
  ASSERT_TRUE(m.insert(extent{UINT64_MAX - 10, 10}, this->val(3)).ok());
  std::vector<uint64_t> keys = {0, 9, 10, 11, 50, 109, 110, 150, 199, 200, 201};
  for (uint64_t below_top : {11, 10, 5, 1, 0}) keys.push_back(UINT64_MAX - below_top);
  for (uint64_t lo : keys) {
    EXPECT_TRUE(this->contents(lo, lo).empty()) << "for_each(" << lo << ", " << lo << ") visited something";
    if (lo > 0) {
      EXPECT_TRUE(this->contents(lo, lo - 1).empty()) << "for_each(" << lo << ", " << lo - 1 << ")";
      EXPECT_TRUE(this->contents(lo, 0).empty()) << "for_each(" << lo << ", 0)";
    }
  }
  // The smallest non-empty ranges next to them still see their extent.
  using E = typename TestFixture::entry;
  EXPECT_EQ(this->contents(50, 51), (std::vector<E>{E{extent{10, 100}, this->val(1)}}));
  EXPECT_EQ(this->contents(200, 201), (std::vector<E>{E{extent{200, 1}, this->val(2)}}));
  EXPECT_EQ(this->contents(UINT64_MAX - 1, UINT64_MAX),
            (std::vector<E>{E{extent{UINT64_MAX - 10, 10}, this->val(3)}}));
  EXPECT_TRUE(this->contents(110, 200).empty());
}

// assign (API.md): the value of the extent starting exactly there changes in
// place; anything else is NotFound and changes nothing.
TYPED_TEST_P(ExtentIndexSuite, AssignChangesTheValueInPlace) {
  auto& m = *this->m_;
  using E = typename TestFixture::entry;
  for (uint64_t i = 0; i < 300; ++i) ASSERT_TRUE(m.insert(extent{i * 10, 4}, this->val(i)).ok());
  ASSERT_TRUE(m.assign(1230, this->val(9999)).ok());
  EXPECT_EQ(m.lookup(1232), (std::optional<E>{E{extent{1230, 4}, this->val(9999)}}));
  EXPECT_EQ(m.assign(1231, this->val(1)).code(), absl::StatusCode::kNotFound) << "inside an extent, not its start";
  EXPECT_EQ(m.assign(1235, this->val(1)).code(), absl::StatusCode::kNotFound) << "a gap";
  EXPECT_EQ(m.assign(UINT64_MAX, this->val(1)).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(m.assign(0, this->val(7)).ok());
  ASSERT_TRUE(m.assign(2990, this->val(8)).ok());
  for (uint64_t i = 0; i < 300; ++i) {
    const uint64_t want = i == 123 ? 9999 : i == 0 ? 7 : i == 299 ? 8 : i;
    ASSERT_EQ(m.lookup(i * 10 + 3), (std::optional<E>{E{extent{i * 10, 4}, this->val(want)}})) << i;
  }
  EXPECT_EQ(m.size(), 300u);
  maybe_check_invariants(m, "after assign");
}

// Visitors that return false stop the walk (API.md, "Common rules"); range()
// is the same walk as for_each, usable with range-for and std::ranges.
TYPED_TEST_P(ExtentIndexSuite, ForEachStopsAndRangeWalks) {
  auto& m = *this->m_;
  using E = typename TestFixture::entry;
  for (uint64_t i = 0; i < 500; ++i) ASSERT_TRUE(m.insert(extent{i * 8, 5}, this->val(i)).ok());
  EXPECT_EQ(this->range_contents(0, UINT64_MAX).size(), 500u);
  EXPECT_EQ(this->range_contents(405, 408).size(), 0u);
  EXPECT_EQ(this->range_contents(403, 900).size(), 63u);  // [400, 405) through [896, 901)
  size_t calls = 0;
  m.for_each(0, UINT64_MAX, [&](const E&) { return ++calls < 3; });
  EXPECT_EQ(calls, 3u) << "a visitor returning false did not stop the walk";
  calls = 0;
  m.for_each(0, UINT64_MAX, [&](const E&) { return ++calls < 1000; });
  EXPECT_EQ(calls, 500u);
  EXPECT_EQ(this->first_n(403, 900, 4),
            (std::vector<E>{E{extent{400, 5}, this->val(50)}, E{extent{408, 5}, this->val(51)},
                            E{extent{416, 5}, this->val(52)}, E{extent{424, 5}, this->val(53)}}));
  for (auto [lo, hi] : {std::pair<uint64_t, uint64_t>{0, UINT64_MAX}, {403, 900}, {405, 408}, {1, 0},
                        {3999, 4000}, {4000, UINT64_MAX}, {7, 8}}) {
    EXPECT_EQ(this->range_contents(lo, hi), this->contents(lo, hi)) << "range(" << lo << ", " << hi << ")";
  }
  {
    rcu::read_guard<typename TestFixture::F> g;
    const auto odd = std::ranges::count_if(m.range(g, 0, UINT64_MAX),
                                           [&](const E& e) { return e.value == this->val(e.range.start / 8) && (e.range.start / 8) % 2 == 1; });
    EXPECT_EQ(odd, 250);
    auto r = m.range(g, 100, 200);
    auto it = std::ranges::find_if(r, [](const E& e) { return e.range.start >= 150; });
    ASSERT_NE(it, r.end());
    EXPECT_EQ(it->range.start, 152u);
  }
}

// lookup and erase clamp a query range at the top of the key space: an
// extent ending there is found by a range whose end would overflow.
TYPED_TEST_P(ExtentIndexSuite, QueriesClampAtTheTop) {
  auto& m = *this->m_;
  using E = typename TestFixture::entry;
  const E top{extent{UINT64_MAX - 10, 10}, this->val(1)};
  ASSERT_TRUE(m.insert(top.range, top.value).ok());
  EXPECT_EQ(m.lookup(UINT64_MAX - 20, 100), std::optional<E>{top});
  EXPECT_EQ(m.lookup(UINT64_MAX - 20, UINT64_MAX), std::optional<E>{top});
  EXPECT_EQ(m.lookup(UINT64_MAX - 1, 2), std::optional<E>{top});
  EXPECT_EQ(m.lookup(UINT64_MAX, 5), std::nullopt) << "no extent contains UINT64_MAX";
  EXPECT_EQ(m.lookup(UINT64_MAX - 5, 0), std::nullopt) << "an empty query meets nothing";
  {
    rcu::read_guard<typename TestFixture::F> g;
    EXPECT_EQ(m.lookup_rcu(g, 0, UINT64_MAX), std::optional<E>{top});
  }
  EXPECT_EQ(m.erase(UINT64_MAX - 100, 1000), std::optional<E>{top});
  EXPECT_TRUE(m.empty());
}

// 4 x 250,000 = 1,000,000 random operations per instantiated type.
TYPED_TEST_P(ExtentIndexSuite, RandomDense) {
  this->run_random(
      1, 250000, [](std::mt19937_64& g) { return g() % 4096; },
      [](std::mt19937_64& g) { return 1 + g() % 16; });
}
TYPED_TEST_P(ExtentIndexSuite, RandomSparse) {
  this->run_random(
      2, 250000, [](std::mt19937_64& g) { return g() % (1u << 20); },
      [](std::mt19937_64& g) { return 1 + g() % ((g() & 1) ? 8 : 2048); });
}
TYPED_TEST_P(ExtentIndexSuite, RandomEdgeValues) {
  // Keys near 0 and near UINT64_MAX (inserts that overflow are rejected by
  // both sides identically), sizes up to 2^40 now and then.
  this->run_random(
      3, 250000,
      [](std::mt19937_64& g) -> uint64_t {
        const uint64_t off = g() % 2048;
        return (g() & 1) ? off : UINT64_MAX - off;
      },
      [](std::mt19937_64& g) -> uint64_t {
        return (g() % 64 == 0) ? (uint64_t{1} << (g() % 41)) : 1 + g() % 32;
      });
}
TYPED_TEST_P(ExtentIndexSuite, RandomHoleHeavy) {
  // A small space so that insert_hole fills it, wraps, and hits ResourceExhausted.
  this->run_random(
      4, 250000, [](std::mt19937_64& g) { return g() % 1024; },
      [](std::mt19937_64& g) { return 1 + g() % 8; });
}

REGISTER_TYPED_TEST_SUITE_P(ExtentIndexSuite, EmptyIndex, BasicInsertLookupErase, BadInputChangesNothing,
                            InsertHoleScripted, InsertHoleFirstFitAtEveryDistance, ManyExtentsAscendingDescending,
                            EmptyRangeVisitsNothing, AssignChangesTheValueInPlace, ForEachStopsAndRangeWalks,
                            QueriesClampAtTheTop, RandomDense, RandomSparse, RandomEdgeValues, RandomHoleHeavy);

}  // namespace rcukit::testing
