// SPDX-License-Identifier: MIT
// Linearizability of judy_array's point operations (label: concurrent;
// bounded by RCUKIT_TEST_SECONDS), with the Wing-Gong checker of
// tests/support/linearizability.hpp.
//
// Each round: a fresh array with tiny buckets (2 keys, so three keys already
// split a bucket into a node and erases merge it back) is prefilled with a
// random subset of twelve keys, spread over five root subtrees and down to
// the last level (keys that differ only in their last byte), plus, in two
// rounds out of three, a fixed background that turns a node into a pigeon
// (32 root subtrees: the root; or 32 subtrees at depth 4 below one key's
// path). Three threads then run six random operations each (insert,
// insert_or_assign, erase, find, lower_equal, upper_equal; queries also at
// a neighbour of a key, usually absent) on those keys, recording logical
// invocation/response times from one shared counter; the 18-operation
// history must be linearizable against std::map.
// What can fail: an update visible to one reader and then invisible to a
// later one (a publication that is not one atomic store), a lost update when
// two writers rebuild the same node, a bound query combining slots read at
// different times into a state that never existed.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "rcukit/judy_array.hpp"
#include "support/linearizability.hpp"

namespace {

namespace rcu = rcukit::rcu;
using alloc = rcukit::detail::judy_alloc;
using array = rcukit::judy_array<std::uint64_t, rcu::memb, 2>;

double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

// Root subtrees 0x00 (down to the last level), 0x01, 0x3f, 0x80 (down to
// depth 4, where the deep background hangs) and 0xff.
constexpr std::uint64_t kKeys[] = {1,
                                   2,
                                   0x100,
                                   0x1000000,
                                   0x0100000000000005,
                                   0x3f00000000000005,
                                   0x3f00000000000999,
                                   0x80000000000000ff,
                                   0x8000000100000000,
                                   0x80000001ff000000,
                                   0xff00000000000000,
                                   ~std::uint64_t{0}};
constexpr unsigned kNumKeys = sizeof(kKeys) / sizeof(kKeys[0]);

enum class background { none, pigeon_root, pigeon_depth4 };
// Keys never touched by the operations, present from the start.
std::vector<std::uint64_t> background_keys(background b) {
  std::vector<std::uint64_t> out;
  for (std::uint64_t i = 0; i < 32; ++i) {
    if (b == background::pigeon_root) out.push_back(((0xa0 + i) << 56) | 0x77);
    if (b == background::pigeon_depth4) out.push_back(0x8000000100000000 | ((0x40 + i) << 24) | 0x77);
  }
  return out;
}

enum class kind { insert, assign, erase, find, lower, upper };
struct op {
  kind k;
  std::uint64_t key;
  std::uint64_t val;
};
struct result {
  bool flag = false;  // insert ok / assign inserted / present
  std::uint64_t key = 0, val = 0;
  bool operator==(const result&) const = default;
};
struct model {
  std::map<std::uint64_t, std::uint64_t> m;
  bool operator==(const model& o) const { return m == o.m; }
  std::size_t hash() const {
    std::size_t h = m.size();
    for (const auto& [k, v] : m) h = h * 1000003u ^ (k * 31 + v);
    return h;
  }
};

result step(model& s, const op& o) {
  result r;
  switch (o.k) {
    case kind::insert:
      r.flag = s.m.emplace(o.key, o.val).second;
      break;
    case kind::assign:
      r.flag = s.m.find(o.key) == s.m.end();
      s.m[o.key] = o.val;
      break;
    case kind::erase: {
      auto it = s.m.find(o.key);
      if (it != s.m.end()) {
        r = {true, it->first, it->second};
        s.m.erase(it);
      }
      break;
    }
    case kind::find: {
      auto it = s.m.find(o.key);
      if (it != s.m.end()) r = {true, it->first, it->second};
      break;
    }
    case kind::lower: {
      auto it = s.m.upper_bound(o.key);
      if (it != s.m.begin()) {
        --it;
        r = {true, it->first, it->second};
      }
      break;
    }
    case kind::upper: {
      auto it = s.m.lower_bound(o.key);
      if (it != s.m.end()) r = {true, it->first, it->second};
      break;
    }
  }
  return r;
}

result run_op(array& a, const op& o) {
  result r;
  auto from_pair = [&](const std::optional<std::pair<std::uint64_t, std::uint64_t>>& p) {
    if (p) r = {true, p->first, p->second};
  };
  switch (o.k) {
    case kind::insert:
      r.flag = a.insert(o.key, o.val).ok();
      break;
    case kind::assign:
      r.flag = a.insert_or_assign(o.key, o.val);
      break;
    case kind::erase:
      if (auto v = a.erase(o.key)) r = {true, o.key, *v};
      break;
    case kind::find:
      if (auto v = a.find(o.key)) r = {true, o.key, *v};
      break;
    case kind::lower:
      from_pair(a.lower_equal(o.key));
      break;
    case kind::upper:
      from_pair(a.upper_equal(o.key));
      break;
  }
  return r;
}

using event = rcukit::testing::lin_event<op, result>;

TEST(JudyLinearizability, PointOperationsAreLinearizable) {
  constexpr int kThreads = 3, kOpsPerThread = 6;
  std::unique_ptr<array> a;
  model initial;
  std::atomic<std::uint64_t> clock{0};  // seq_cst fetch_add: the logical time line
  std::atomic<bool> stop{false};
  std::vector<std::vector<event>> recorded(kThreads);
  std::barrier<> sync(kThreads + 1);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(500 + t);
      for (;;) {
        sync.arrive_and_wait();                           // round start
        if (stop.load(std::memory_order_relaxed)) break;  // relaxed: ordered by the barrier
        recorded[t].clear();
        for (int i = 0; i < kOpsPerThread; ++i) {
          const kind k = static_cast<kind>(rng() % 6);
          std::uint64_t key = kKeys[rng() % kNumKeys];
          // Queries also probe a neighbour (usually absent: bounds then
          // have to look beyond the key's own slot).
          if (k >= kind::find) key += static_cast<std::uint64_t>(static_cast<int>(rng() % 3) - 1);
          const op o{k, key, rng() % 4};
          event e{o, {}, 0, 0, t};
          e.call = clock.fetch_add(1);
          e.result = run_op(*a, o);
          e.ret = clock.fetch_add(1);
          recorded[t].push_back(e);
        }
        sync.arrive_and_wait();  // round end
      }
    });
  }
  std::mt19937_64 rng(1);
  long rounds = 0, failures = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(test_seconds());
  while (std::chrono::steady_clock::now() < deadline || rounds < 50) {
    a = std::make_unique<array>();
    initial.m.clear();
    for (std::uint64_t k : background_keys(static_cast<background>(rounds % 3))) {
      ASSERT_TRUE(a->insert(k, k & 3).ok());
      initial.m[k] = k & 3;
    }
    for (std::uint64_t k : kKeys) {
      if (rng() % 2 == 0) {
        ASSERT_TRUE(a->insert(k, k & 3).ok());
        initial.m[k] = k & 3;
      }
    }
    sync.arrive_and_wait();  // start
    sync.arrive_and_wait();  // end
    std::vector<event> h;
    for (const auto& r : recorded) h.insert(h.end(), r.begin(), r.end());
    if (!rcukit::testing::is_linearizable(h, initial, step)) ++failures;
    ASSERT_TRUE(a->check_invariants().ok()) << a->check_invariants();
    ++rounds;
  }
  stop.store(true, std::memory_order_relaxed);
  sync.arrive_and_wait();
  for (auto& th : threads) th.join();
  a.reset();
  std::printf("judy linearizability: %ld rounds of %d operations checked\n", rounds,
              kThreads * kOpsPerThread);
  EXPECT_EQ(failures, 0) << "non-linearizable histories out of " << rounds << " rounds";
  rcu::barrier();
  EXPECT_EQ(alloc::live.load(), 0);
}

}  // namespace
