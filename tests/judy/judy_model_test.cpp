// SPDX-License-Identifier: MIT
// Single-threaded tests of <rcukit/judy_array.hpp>.
//
// What can fail here: any member function disagreeing with std::map on
// dense, sparse 64-bit, long-shared-prefix and edge keys (0, UINT64_MAX, byte
// boundaries); a structural invariant broken after a mutation (node class vs
// child count, unsorted keys, empty or single-leaf nodes, size or byte
// accounting); node_bytes() not returning to 0 when the array empties; a
// node class flipping at every alternate insert/erase (no hysteresis); an
// allocation failure leaving the array changed; leaked or double-freed nodes
// (live-allocation counter not 0 after rcu::barrier()).
#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <thread>
#include <vector>

#include "rcukit/judy_array.hpp"

namespace {

namespace rcu = rcukit::rcu;
using rcukit::judy_array;
using alloc = rcukit::detail::judy_alloc;

constexpr std::uint64_t kMax = ~std::uint64_t{0};

template <class A, class M>
void expect_same_contents(const A& a, const M& m) {
  std::vector<std::pair<std::uint64_t, typename M::mapped_type>> got;
  a.for_each(0, kMax, [&](std::uint64_t k, const auto& v) { got.emplace_back(k, v); });
  ASSERT_EQ(got.size(), m.size());
  auto it = m.begin();
  for (const auto& [k, v] : got) {
    ASSERT_EQ(k, it->first);
    ASSERT_EQ(v, it->second);
    ++it;
  }
  ASSERT_EQ(a.size(), m.size());
}

class JudyTest : public ::testing::Test {
 protected:
  void TearDown() override {
    rcu::barrier();
    EXPECT_EQ(alloc::live.load(), 0) << "nodes or leaves leaked or freed twice";
  }
};

enum class keyset { dense, sparse, prefix, edge, mixed };

struct key_source {
  std::mt19937_64 rng;
  keyset ks;
  std::vector<std::uint64_t> pool;
  key_source(keyset k, std::uint64_t seed) : rng(seed), ks(k) {
    for (int i = 0; i < 3000; ++i) pool.push_back(rng());
    const std::uint64_t edges[] = {0,
                                   1,
                                   2,
                                   255,
                                   256,
                                   257,
                                   65535,
                                   65536,
                                   kMax,
                                   kMax - 1,
                                   kMax - 255,
                                   kMax - 256,
                                   std::uint64_t{1} << 63,
                                   (std::uint64_t{1} << 63) - 1,
                                   (std::uint64_t{1} << 63) + 1,
                                   0x00ff00ff00ff00ffull,
                                   0xff00ff00ff00ff00ull,
                                   0x0100000000000000ull,
                                   0x00ffffffffffffffull,
                                   0x8000000000000000ull - 256};
    edge.assign(std::begin(edges), std::end(edges));
  }
  std::vector<std::uint64_t> edge;
  std::uint64_t next() {
    keyset k = ks;
    if (k == keyset::mixed) k = static_cast<keyset>(rng() % 4);
    switch (k) {
      case keyset::dense:
        return rng() % 4096;
      case keyset::sparse:
        return (rng() % 8 == 0) ? rng() : pool[rng() % pool.size()];
      case keyset::prefix: {
        const std::uint64_t r = rng();
        switch (r % 3) {
          case 0:
            return 0x0123456789abcd00ull | (r >> 8 & 0xff);  // 7 shared bytes
          case 1:
            return 0xdeadbeefcafe0000ull | (r >> 8 & 0xffff);  // 6 shared bytes
          default:
            return 0xdeadbeef00000000ull | ((r >> 8 & 0xf) << 20) | (r >> 16 & 0x3);  // long chains
        }
      }
      case keyset::edge:
      default: {
        const std::uint64_t e = edge[rng() % edge.size()];
        const std::uint64_t d = rng() % 5;
        return (rng() % 2) ? e + d : e - d;  // wraps around 0 / UINT64_MAX on purpose
      }
    }
  }
};

// One model-based phase: `ops` random operations on key set ks, compared op
// by op with std::map, invariants checked every 1000 operations, then the
// array is emptied and must hold 0 bytes.
template <unsigned Cap = 32>
void run_phase(keyset ks, int ops, std::uint64_t seed) {
  judy_array<std::uint64_t, rcu::memb, Cap> a;
  std::map<std::uint64_t, std::uint64_t> m;
  key_source src(ks, seed);
  std::mt19937_64& rng = src.rng;
  for (int i = 0; i < ops; ++i) {
    const std::uint64_t k = src.next();
    const std::uint64_t v = rng();
    const unsigned op = static_cast<unsigned>(rng() % 100);
    if (op < 22) {
      const absl::Status s = a.insert(k, v);
      const bool fresh = m.emplace(k, v).second;
      ASSERT_EQ(s.ok(), fresh) << s;
      if (!fresh) {
        ASSERT_EQ(s.code(), absl::StatusCode::kAlreadyExists);
      }
    } else if (op < 34) {
      const bool fresh = m.find(k) == m.end();
      m[k] = v;
      ASSERT_EQ(a.insert_or_assign(k, v), fresh);
    } else if (op < 56) {
      auto it = m.find(k);
      std::optional<std::uint64_t> e = a.erase(k);
      if (it == m.end()) {
        ASSERT_FALSE(e.has_value());
      } else {
        ASSERT_TRUE(e.has_value());
        ASSERT_EQ(*e, it->second);
        m.erase(it);
      }
    } else if (op < 74) {
      auto it = m.find(k);
      std::optional<std::uint64_t> f = a.find(k);
      ASSERT_EQ(f.has_value(), it != m.end());
      if (f) {
        ASSERT_EQ(*f, it->second);
      }
    } else if (op < 83) {
      auto le = a.lower_equal(k);
      auto it = m.upper_bound(k);
      if (it == m.begin()) {
        ASSERT_FALSE(le.has_value()) << k;
      } else {
        --it;
        ASSERT_TRUE(le.has_value()) << k;
        ASSERT_EQ(le->first, it->first);
        ASSERT_EQ(le->second, it->second);
      }
    } else if (op < 92) {
      auto ue = a.upper_equal(k);
      auto it = m.lower_bound(k);
      if (it == m.end()) {
        ASSERT_FALSE(ue.has_value()) << k;
      } else {
        ASSERT_TRUE(ue.has_value()) << k;
        ASSERT_EQ(ue->first, it->first);
        ASSERT_EQ(ue->second, it->second);
      }
    } else if (op < 97) {
      // for_each over [lo, hi]: bounded width mostly, sometimes inverted or full.
      std::uint64_t lo = k, hi;
      const unsigned w = static_cast<unsigned>(rng() % 8);
      if (w == 0) {
        hi = kMax;
      } else if (w == 1) {
        hi = lo - 1;  // inverted (empty) unless lo == 0
      } else {
        hi = lo + (rng() % (std::uint64_t{1} << (8 * (w - 1))));
        if (hi < lo) hi = kMax;
      }
      std::vector<std::pair<std::uint64_t, std::uint64_t>> got;
      a.for_each(lo, hi, [&](std::uint64_t kk, std::uint64_t vv) { got.emplace_back(kk, vv); });
      std::vector<std::pair<std::uint64_t, std::uint64_t>> want;
      if (lo <= hi) {
        for (auto it = m.lower_bound(lo); it != m.end() && it->first <= hi; ++it) want.emplace_back(*it);
      }
      ASSERT_EQ(got, want) << "for_each [" << lo << ", " << hi << "]";
      // The same walk stopped after a random number of keys: exactly that
      // prefix, and f is not called again after it returned false.
      if (!want.empty()) {
        const std::size_t stop_after = 1 + rng() % want.size();
        std::vector<std::pair<std::uint64_t, std::uint64_t>> part;
        a.for_each(lo, hi, [&](std::uint64_t kk, std::uint64_t vv) {
          part.emplace_back(kk, vv);
          return part.size() < stop_after;
        });
        ASSERT_EQ(part.size(), stop_after) << "for_each stop [" << lo << ", " << hi << "]";
        ASSERT_TRUE(std::equal(part.begin(), part.end(), want.begin()));
      }
    } else {
      ASSERT_EQ(a.size(), m.size());
      ASSERT_EQ(a.empty(), m.empty());
      ASSERT_EQ(a.node_bytes() == 0, m.empty());
      ASSERT_EQ(a.contains(k), m.count(k) == 1) << k;
    }
    if (i % 1000 == 999) {
      ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
    }
  }
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  expect_same_contents(a, m);
  // Empty it in random order: every byte must come back.
  std::vector<std::uint64_t> keys;
  for (const auto& kv : m) keys.push_back(kv.first);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    ASSERT_EQ(a.erase(keys[i]), m[keys[i]]);
    if (i % 512 == 0) {
      ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
    }
  }
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.node_bytes(), 0u);
  EXPECT_TRUE(a.check_invariants().ok());
  EXPECT_FALSE(a.upper_equal(0).has_value());
  EXPECT_FALSE(a.lower_equal(kMax).has_value());
}

// 10 phases x 120,000 = 1,200,000 model-checked operations per run: default
// buckets, and tiny buckets (2 keys) that grow deep trees where every node
// class and transition is exercised on every key set.
TEST_F(JudyTest, ModelDense) { run_phase(keyset::dense, 120000, 1); }
TEST_F(JudyTest, ModelSparse64) { run_phase(keyset::sparse, 120000, 2); }
TEST_F(JudyTest, ModelSharedLongPrefix) { run_phase(keyset::prefix, 120000, 3); }
TEST_F(JudyTest, ModelEdgeKeys) { run_phase(keyset::edge, 120000, 4); }
TEST_F(JudyTest, ModelMixed) { run_phase(keyset::mixed, 120000, 5); }
TEST_F(JudyTest, ModelDenseTinyBuckets) { run_phase<2>(keyset::dense, 120000, 11); }
TEST_F(JudyTest, ModelSparse64TinyBuckets) { run_phase<2>(keyset::sparse, 120000, 12); }
TEST_F(JudyTest, ModelSharedLongPrefixTinyBuckets) { run_phase<2>(keyset::prefix, 120000, 13); }
TEST_F(JudyTest, ModelEdgeKeysTinyBuckets) { run_phase<2>(keyset::edge, 120000, 14); }
TEST_F(JudyTest, ModelMixedTinyBuckets) { run_phase<2>(keyset::mixed, 120000, 15); }

TEST_F(JudyTest, WholeKeyRangeAndBounds) {
  judy_array<int> a;
  EXPECT_FALSE(a.find(0).has_value());
  EXPECT_FALSE(a.lower_equal(kMax).has_value());
  ASSERT_TRUE(a.insert(kMax, 1).ok());
  ASSERT_TRUE(a.insert(0, 2).ok());
  EXPECT_EQ(a.insert(0, 3).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(a.find(0), 2);
  EXPECT_EQ(a.find(kMax), 1);
  EXPECT_EQ(a.lower_equal(kMax - 1)->first, 0u);
  EXPECT_EQ(a.upper_equal(1)->first, kMax);
  EXPECT_FALSE(a.insert_or_assign(kMax, 7));
  EXPECT_EQ(a.find(kMax), 7);
  int calls = 0;
  a.for_each(0, kMax, [&](std::uint64_t, int) { ++calls; });
  EXPECT_EQ(calls, 2);
  a.for_each(kMax, 0, [&](std::uint64_t, int) { ++calls; });  // lo > hi: nothing
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  EXPECT_EQ(a.erase(kMax), 7);
  EXPECT_EQ(a.erase(0), 2);
  EXPECT_EQ(a.node_bytes(), 0u);
}

TEST_F(JudyTest, NodeClassesGrowAndShrinkWithHysteresis) {
  judy_array<std::uint64_t> a;
  using kind = rcukit::detail::judy_kind;
  // Group g = 9 keys (g << 8) | j: more than a leaf at depth < 7 may merge
  // (16), so the keys sit below one node at depth 6 with one leaf per group
  // (the root record skips depths 0..5): that node's class follows the
  // number of groups.
  auto add = [&](std::uint64_t g) {
    for (std::uint64_t j = 0; j < 9; ++j) ASSERT_TRUE(a.insert((g << 8) | j, j).ok());
  };
  auto del = [&](std::uint64_t g) {
    for (std::uint64_t j = 0; j < 9; ++j) ASSERT_TRUE(a.erase((g << 8) | j).has_value());
  };
  auto kind_of_bottom = [&]() {
    auto s = a.stats();
    for (int k = 4; k >= 1; --k) {
      if (s.nodes[k] != 0) return k;
    }
    return s.nodes[0] == 1 ? 0 : -1;  // a lin4 bottom (the root record skips the chain above it)
  };
  for (std::uint64_t g = 0; g < 4; ++g) add(g);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin4));
  add(4);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin11));
  // Alternating erase/insert at the boundary keeps lin11 (hysteresis).
  for (int i = 0; i < 5; ++i) {
    del(4);
    EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin11));
    add(4);
    EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin11));
  }
  del(4);
  del(3);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin11));  // 3 children: still lin11
  del(2);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin4));  // 2 < 3: shrinks
  for (std::uint64_t g = 2; g < 25; ++g) add(g);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin25));  // 25 groups
  add(25);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::pigeon));  // 26, all in pool segment 0
  del(25);
  del(24);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::pigeon));  // 24: hysteresis
  del(23);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::lin25));  // 23 < 24
  add(23);
  add(24);
  add(200);  // 26 groups over two segments
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::pool));
  for (std::uint64_t g = 64; g < 64 + 25; ++g) add(g);
  for (std::uint64_t g = 128; g < 128 + 25; ++g) add(g);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::pool));
  for (std::uint64_t g = 201; g < 256; ++g) add(g);
  EXPECT_EQ(kind_of_bottom(), static_cast<int>(kind::pigeon));
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  for (std::uint64_t g = 0; g < 256; ++g) {
    for (std::uint64_t j = 0; j < 9; ++j) a.erase((g << 8) | j);
    ASSERT_TRUE(a.check_invariants().ok()) << g << ": " << a.check_invariants();
  }
  EXPECT_EQ(a.node_bytes(), 0u);
}

TEST_F(JudyTest, BucketsSplitAndMerge) {
  judy_array<std::uint64_t> a;
  // 32 keys differing in byte 0 fit the root bucket; the 33rd splits it.
  for (std::uint64_t i = 0; i < 32; ++i) ASSERT_TRUE(a.insert(i << 56, i).ok());
  EXPECT_EQ(a.stats().buckets, 1u);
  ASSERT_TRUE(a.insert(std::uint64_t{32} << 56, 32).ok());
  EXPECT_EQ(a.stats().buckets, 33u);
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  // Erase down to 17: still split (hysteresis); at 16 it merges back.
  for (std::uint64_t i = 32; i >= 17; --i) ASSERT_TRUE(a.erase(i << 56).has_value());
  EXPECT_EQ(a.stats().buckets, 17u);
  ASSERT_TRUE(a.erase(std::uint64_t{16} << 56).has_value());
  EXPECT_EQ(a.stats().buckets, 1u);
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  // 256 keys differing only in the last byte share one bucket.
  judy_array<std::uint64_t> b;
  for (std::uint64_t i = 0; i < 256; ++i) ASSERT_TRUE(b.insert(0xabcdef0102030400ull | i, i).ok());
  EXPECT_EQ(b.stats().buckets, 1u);
  EXPECT_EQ(b.stats().bitmaps, 1u) << "a full last-level leaf is a bitmap leaf";
  ASSERT_TRUE(b.check_invariants().ok()) << b.check_invariants();
  // Erasing it down to half a sorted leaf turns it back into a sorted leaf.
  for (std::uint64_t i = 0; i < 256 - 16; ++i) ASSERT_TRUE(b.erase(0xabcdef0102030400ull | i).has_value());
  EXPECT_EQ(b.stats().bitmaps, 0u);
  EXPECT_EQ(b.size(), 16u);
  ASSERT_TRUE(b.check_invariants().ok()) << b.check_invariants();
}

// Keys sharing their high bytes sit below a root record: no chain of
// single-child nodes above them. A key outside the shared prefix rebuilds
// the root above the old top; bound queries on both sides of the prefix
// and for_each across it agree with std::map at every step.
TEST_F(JudyTest, RootRecordSkipsTheSharedPrefix) {
  judy_array<std::uint64_t> a;
  std::map<std::uint64_t, std::uint64_t> m;
  auto agree = [&](const char* when) {
    ASSERT_TRUE(a.check_invariants().ok()) << when << ": " << a.check_invariants();
    expect_same_contents(a, m);
    for (std::uint64_t q : {std::uint64_t{0}, std::uint64_t{999}, std::uint64_t{5000}, std::uint64_t{1} << 40,
                            (std::uint64_t{1} << 63) - 1, std::uint64_t{1} << 63, kMax}) {
      auto it = m.upper_bound(q);
      auto le = a.lower_equal(q);
      ASSERT_EQ(le.has_value(), it != m.begin()) << when << " q=" << q;
      if (le) {
        ASSERT_EQ(le->first, std::prev(it)->first) << when << " q=" << q;
      }
      auto it2 = m.lower_bound(q);
      auto ue = a.upper_equal(q);
      ASSERT_EQ(ue.has_value(), it2 != m.end()) << when << " q=" << q;
      if (ue) {
        ASSERT_EQ(ue->first, it2->first) << when << " q=" << q;
      }
    }
  };
  for (std::uint64_t k = 0; k < 1000; ++k) {
    ASSERT_TRUE(a.insert(k, k).ok());
    m[k] = k;
  }
  // Keys 0..999 differ in bytes 6 and 7 only: one node at depth 6 over four
  // leaves, not seven levels of nodes.
  auto st = a.stats();
  EXPECT_EQ(st.nodes[0] + st.nodes[1] + st.nodes[2] + st.nodes[3] + st.nodes[4], 1u);
  agree("dense keys below a record");
  for (std::uint64_t k : {std::uint64_t{1} << 40, std::uint64_t{1} << 63, kMax}) {
    ASSERT_TRUE(a.insert(k, k).ok());
    m[k] = k;
    agree("after a key outside the prefix");
  }
  for (std::uint64_t k : {std::uint64_t{1} << 63, std::uint64_t{1} << 40, kMax}) {
    ASSERT_EQ(a.erase(k), k);
    m.erase(k);
    agree("after erasing it");
  }
  for (std::uint64_t k = 0; k < 1000; ++k) {
    ASSERT_EQ(a.erase(k), k);
    m.erase(k);
  }
  agree("emptied");
  EXPECT_EQ(a.node_bytes(), 0u);
}

// Every allocation of an update, in turn, fails: the Status/StatusOr calls
// must report ResourceExhausted, and insert_or_assign/erase (no error channel
// in API.md) must throw std::bad_alloc, each leaving contents, size, bytes
// and invariants unchanged. TearDown checks that nothing leaked.
template <unsigned Cap>
void allocation_failure_run(std::uint64_t seed) {
  judy_array<std::uint64_t, rcu::memb, Cap> a;
  std::map<std::uint64_t, std::uint64_t> m;
  key_source src(keyset::mixed, seed);
  int failures = 0, throws = 0;
  for (int i = 0; i < 3000; ++i) {
    const std::uint64_t k = src.next();
    const std::uint64_t v = src.rng();
    const unsigned op = static_cast<unsigned>(src.rng() % 5);
    for (long n = 0;; ++n) {
      const std::size_t bytes = a.node_bytes(), size = a.size();
      alloc::fail_after(n);
      bool failed = false;
      if (op == 0) {
        absl::Status s = a.insert(k, v);
        failed = s.code() == absl::StatusCode::kResourceExhausted;
        if (!failed) {
          ASSERT_EQ(s.ok(), m.emplace(k, v).second);
        }
      } else if (op == 1) {
        absl::StatusOr<bool> r = a.try_insert_or_assign(k, v);
        failed = !r.ok();
        if (failed) {
          ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
        } else {
          ASSERT_EQ(*r, m.find(k) == m.end());
          m[k] = v;
        }
      } else if (op == 2) {
        absl::StatusOr<std::optional<std::uint64_t>> r = a.try_erase(k);
        failed = !r.ok();
        if (failed) {
          ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
        } else {
          auto it = m.find(k);
          ASSERT_EQ(r->has_value(), it != m.end());
          if (it != m.end()) m.erase(it);
        }
      } else if (op == 3) {
        try {
          const bool inserted = a.insert_or_assign(k, v);
          ASSERT_EQ(inserted, m.find(k) == m.end());
          m[k] = v;
        } catch (const std::bad_alloc&) {
          failed = true;
          ++throws;
        }
      } else {
        try {
          const std::optional<std::uint64_t> r = a.erase(k);
          auto it = m.find(k);
          ASSERT_EQ(r.has_value(), it != m.end());
          if (it != m.end()) {
            ASSERT_EQ(*r, it->second);
            m.erase(it);
          }
        } catch (const std::bad_alloc&) {
          failed = true;
          ++throws;
        }
      }
      alloc::fail_after(-1);
      if (!failed) break;
      ++failures;
      ASSERT_EQ(a.node_bytes(), bytes);
      ASSERT_EQ(a.size(), size);
      if (i % 50 == 0) {
        ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
        expect_same_contents(a, m);
      }
      ASSERT_LT(n, 100) << "an update needed more than 100 allocations";  // a split: <= 33 buckets + nodes
    }
  }
  // Only updates that rebuild a leaf (new, full, shrinking, emptied, changing
  // encoding) or a node allocate; in-place ones cannot fail. Mixed keys on
  // a small array still rebuild often enough that failures are injected at
  // every kind of step many times.
  EXPECT_GT(failures, 600);
  EXPECT_GT(throws, 150);
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  expect_same_contents(a, m);
}

TEST_F(JudyTest, AllocationFailureChangesNothing) { allocation_failure_run<32>(99); }
TEST_F(JudyTest, AllocationFailureChangesNothingTinyBuckets) { allocation_failure_run<2>(98); }

// Retired nodes are batched per thread and freed by the retiring thread.
// A thread_local array is destroyed after that thread's reclamation state
// (constructed later, destroyed first): its destructor and the updates
// before it must still free everything exactly once (TearDown checks).
TEST_F(JudyTest, ArrayOutlivingItsThreadsReclaimState) {
  std::size_t left = 0;
  std::thread([&left] {
    thread_local judy_array<std::uint64_t> a;
    for (std::uint64_t k = 0; k < 5000; ++k) ASSERT_TRUE(a.insert(k * 0x9e3779b97f4a7c15ull, k).ok());
    for (std::uint64_t k = 0; k < 5000; k += 2) ASSERT_EQ(a.erase(k * 0x9e3779b97f4a7c15ull), k);
    left = a.size();
  }).join();
  EXPECT_EQ(left, 2500u);
}

// Updates from many short-lived threads: each exits with batches in flight
// (handed to RCU's callback thread, which then frees them itself).
TEST_F(JudyTest, ShortLivedWriterThreads) {
  judy_array<std::uint64_t> a;
  for (int t = 0; t < 16; ++t) {
    std::thread([&a, t] {
      for (std::uint64_t k = 0; k < 300; ++k) {
        const std::uint64_t key = (std::uint64_t{static_cast<unsigned>(t)} << 40) | k;
        ASSERT_TRUE(a.insert(key, k).ok());
        if (k % 3 == 0) {
          ASSERT_EQ(a.erase(key), k);
        }
      }
    }).join();
  }
  EXPECT_EQ(a.size(), 16u * 200u);
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
}

// memory_bytes() is what the process holds from malloc for the array:
// nodes, the block cache its frees filled, retired objects waiting for their
// grace period or parked in the shared depot, and the retire batches.
// The judy allocator counts the same bytes at its malloc and free calls
// (judy_alloc::malloc_bytes()); with one array in the process the two must
// agree whenever no callback runs (after rcu::barrier()). They must also
// agree at every stage: after erases (the barrier that precedes each
// comparison freed what the callbacks parked), after the next update,
// after trimming the cache (cold), and after the array is gone.
TEST_F(JudyTest, MemoryBytesIsWhatTheAllocatorHandedOut) {
  auto agree = [](const auto& a, const char* when) {
    rcu::barrier();  // no judy callback runs while we compare
    EXPECT_EQ(a.memory_bytes(), alloc::malloc_bytes()) << when;
    EXPECT_EQ(a.memory_bytes(), a.node_bytes() + alloc::held_bytes()) << when;
  };
  rcukit::detail::judy_cache_trim();
  {
    judy_array<std::uint64_t> a;
    agree(a, "empty");
    std::mt19937_64 rng(7);
    std::vector<std::uint64_t> keys;
    for (int i = 0; i < 60000; ++i) keys.push_back(i % 2 ? rng() : rng() % 100000);
    for (std::uint64_t k : keys) (void)a.insert(k, k);
    agree(a, "after inserts");
    EXPECT_GT(a.node_bytes(), 60000u * 8);
    EXPECT_GT(alloc::held_bytes(), 0u) << "a build retires every bucket it outgrows";
    for (std::size_t i = 0; i < keys.size(); i += 2) (void)a.erase(keys[i]);
    agree(a, "after erases");
    (void)a.insert(1, 1);
    agree(a, "after an update");
    const std::size_t before_trim = a.memory_bytes();
    rcukit::detail::judy_cache_trim();
    agree(a, "after trimming the cache");
    EXPECT_LT(a.memory_bytes(), before_trim) << "the cache held blocks that memory_bytes() counted";
    for (std::uint64_t k : keys) (void)a.erase(k);
    (void)a.erase(1);
    EXPECT_EQ(a.node_bytes(), 0u);
    agree(a, "emptied");
  }
  judy_array<std::uint64_t> fresh;
  agree(fresh, "after the array was destroyed (its nodes are in this thread's cache)");
  EXPECT_EQ(fresh.node_bytes(), 0u);
}

// A thread that erases a burst and then goes idle holds none of the nodes
// it retired (docs/API.md, memory_bytes()): once rcu::barrier() returns,
// what the judy allocator holds besides nodes is at most the per-thread
// bound for each thread that updated (its block cache, its open batch and
// two batch structures); barrier() emptied the shared depot. Retired nodes
// used to wait for the retiring thread's next update (3.2 MB here, for
// good).
TEST_F(JudyTest, IdleThreadHoldsNoRetiredNodesAfterBarrier) {
  judy_array<std::uint64_t> a;
  std::mt19937_64 rng(26);
  std::vector<std::uint64_t> keys(200000);
  for (std::uint64_t& k : keys) k = rng();
  for (std::uint64_t k : keys) (void)a.insert(k, k);
  std::mutex m;
  std::condition_variable cv;
  bool erased = false, release = false;  // guarded by m
  std::thread eraser([&] {
    for (std::uint64_t k : keys) (void)a.erase(k);
    {
      std::lock_guard<std::mutex> l(m);
      erased = true;
    }
    cv.notify_all();
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return release; });  // idle: no update until released
  });
  {
    std::unique_lock<std::mutex> l(m);
    cv.wait(l, [&] { return erased; });
  }
  rcu::barrier();  // every batch the eraser handed to RCU has been called back
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.node_bytes(), 0u);
  const std::size_t held = a.memory_bytes() - a.node_bytes();
  // Two threads updated: this one (the inserts) and the eraser.
  // rcu::barrier() emptied the shared depot.
  constexpr std::size_t bound =
      2 * rcukit::detail::judy_idle_thread_max_bytes(rcukit::detail::judy_leaf<std::uint64_t>::bitmap_bytes);
  EXPECT_LE(held, bound) << "retired nodes stayed with the idle thread";
  {
    std::lock_guard<std::mutex> l(m);
    release = true;
  }
  cv.notify_all();
  eraser.join();
}

struct wide {
  std::uint64_t a, b, c;
  bool operator==(const wide&) const = default;
};

template <class F>
void flavour_smoke() {
  {
    judy_array<wide, F> a;
    for (std::uint64_t k = 0; k < 5000; ++k)
      ASSERT_TRUE(a.insert(k * 0x9e3779b97f4a7c15ull, wide{k, k + 1, k + 2}).ok());
    for (std::uint64_t k = 0; k < 5000; ++k) {
      auto f = a.find(k * 0x9e3779b97f4a7c15ull);
      ASSERT_TRUE(f.has_value());
      ASSERT_EQ(*f, (wide{k, k + 1, k + 2}));
    }
    ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
    for (std::uint64_t k = 0; k < 5000; ++k) ASSERT_TRUE(a.erase(k * 0x9e3779b97f4a7c15ull).has_value());
    EXPECT_EQ(a.node_bytes(), 0u);
  }
  // Retired nodes are batched per thread; destroying the array hands this
  // thread's batch to F's callback thread, so F's barrier comes after it.
  rcu::barrier<F>();
}

TEST_F(JudyTest, OtherFlavoursAndWideValues) {
  flavour_smoke<rcu::mb>();
  flavour_smoke<rcu::bp>();
  {
    rcu::thread_registration<rcu::qsbr> reg;
    flavour_smoke<rcu::qsbr>();
  }
}

}  // namespace
