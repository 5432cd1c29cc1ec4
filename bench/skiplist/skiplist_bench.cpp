// SPDX-License-Identifier: MIT
// Single-thread micro-benchmarks of extent_skiplist against std::map behind a
// spin lock and absl::btree_map behind a std::mutex (the locks are taken on
// every call, uncontended, as a concurrent user would have to), at 10^3 ..
// 10^7 extents: lookup, lookup_rcu, insert+erase, insert_hole+erase, in-order
// walk; insert_hole on a space fragmented to 50% by random frees, where
// the request does not fit any hole in the fragmented part, so a linear walk
// visits every extent; and BM_lookup_paired, the lookup_rcu/btree and
// lookup/btree ratios measured in alternating slices (the figures to quote
// for the lookup target: separate runs drift apart on a shared machine),
// also at 10^6 and 10^7 for the list without index blocks and the list
// whose leaves sit on ordinary pages.
//
// Run: build/<dir>/bench/skiplist/skiplist_bench --benchmark_min_time=0.2s
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <type_traits>
#include <vector>

#include "absl/container/btree_map.h"
#include "harness/paired.hpp"
#include "harness/peers.hpp"
#include "rcukit/extent_skiplist.hpp"

namespace {

using rcukit::extent;
using rcukit::hole_request;
using entry = rcukit::extent_entry<uint64_t>;

using skiplist = rcukit::extent_skiplist<uint64_t>;
// The same with every index tower in its own operator-new allocation
// instead of the packed per-skiplist arena (the measured alternative), and
// with the plain p = 1/2 heights (height-1 leaves have no tower, so a
// descent walks level 0 through leaves for its last step).
struct own_tower_traits : rcukit::skiplist_traits {
  static constexpr std::size_t tower_chunk_bytes = 0;
};
struct sparse_index_traits : rcukit::skiplist_traits {
  static constexpr bool dense_index = false;
};
using skiplist_own_towers = rcukit::extent_skiplist<uint64_t, rcukit::rcu::default_flavor, own_tower_traits>;
using skiplist_sparse = rcukit::extent_skiplist<uint64_t, rcukit::rcu::default_flavor, sparse_index_traits>;
// What the lookup owes to the index blocks and to the node arena's huge
// pages (extent_skiplist.hpp, "Index blocks", "Node arena"): the default
// list without blocks, and with node-arena chunks below 2 MiB (ordinary
// pages, as where transparent huge pages are off).
struct no_block_traits : rcukit::skiplist_traits {
  static constexpr unsigned index_block_level = 0;
};
struct small_page_traits : rcukit::skiplist_traits {
  static constexpr std::size_t leaf_chunk_bytes = std::size_t{1} << 20;
};
using skiplist_no_blocks = rcukit::extent_skiplist<uint64_t, rcukit::rcu::default_flavor, no_block_traits>;
using skiplist_small_pages = rcukit::extent_skiplist<uint64_t, rcukit::rcu::default_flavor, small_page_traits>;
// The peers shared with the harnesses (src/harness/peers.hpp): insert_hole
// there is the plain linear gap walk a sorted map offers.
using std_map_spin = rcukit::harness::std_map_spinlock<uint64_t>;
using btree_mutex = rcukit::harness::btree_mutex<uint64_t>;

// n extents [16 i, 16 i + 8), inserted in random order.
template <class M>
std::unique_ptr<M> filled(int64_t n) {
  auto m = std::make_unique<M>();
  std::vector<uint64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), std::mt19937_64(42));
  for (uint64_t i : idx) (void)m->insert(extent{i * 16, 8}, i);
  return m;
}

template <class M>
void BM_lookup(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  std::mt19937_64 rng(1);
  for (auto _ : st) benchmark::DoNotOptimize(m->lookup((rng() % n) * 16 + 3));
  st.SetItemsProcessed(st.iterations());
}
template <class M>
void BM_lookup_rcu(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  std::mt19937_64 rng(1);
  rcukit::rcu::read_guard<> g;
  for (auto _ : st) benchmark::DoNotOptimize(m->lookup_rcu(g, (rng() % n) * 16 + 3));
  st.SetItemsProcessed(st.iterations());
}
// lookup_rcu (Via = via_lookup_rcu: inside one read side per slice) or
// lookup (via_lookup: each call opens its own read side) on M against
// lookup on absl::btree_map behind a mutex, in paired slices: kRounds rounds, each timing kSlice lookups of the same
// random keys on both (after kWarm untimed ones, so each slice starts with
// its own structure in the cache), in alternating order. Drift of a shared
// machine (10-20% over seconds here) then hits both sides of each per-round
// ratio alike, which back-to-back runs of BM_lookup_rcu and BM_lookup
// cannot promise. Reports the median, min and max of the ratios
// (ratio_median <= 1.5 is issue 3's lookup target) and the median ns per
// lookup of each side.
struct via_lookup_rcu {};
struct via_lookup {};
template <class M, class Via>
void BM_lookup_paired(benchmark::State& st) {
  constexpr int kRounds = 21, kSlice = 100000, kWarm = 50000;
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  auto b = filled<btree_mutex>(n);
  std::mt19937_64 rng(1);
  std::vector<uint64_t> keys(kWarm + kSlice);
  std::vector<double> ratio, ns_m, ns_b;
  // ns per lookup of the timed part of keys; f(k) looks k up.
  auto slice = [&](auto&& f) {
    for (int i = 0; i < kWarm; ++i) benchmark::DoNotOptimize(f(keys[i]));
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = kWarm; i < kWarm + kSlice; ++i) benchmark::DoNotOptimize(f(keys[i]));
    return std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / kSlice;
  };
  auto on_m = [&] {
    if constexpr (std::is_same_v<Via, via_lookup>) {
      return slice([&](uint64_t k) { return m->lookup(k); });
    } else {
      rcukit::rcu::read_guard<> g;
      return slice([&](uint64_t k) { return m->lookup_rcu(g, k); });
    }
  };
  auto on_b = [&] { return slice([&](uint64_t k) { return b->lookup(k); }); };
  for (auto _ : st) {
    for (int r = 0; r < kRounds; ++r) {
      for (auto& k : keys) k = (rng() % n) * 16 + 3;
      double tm, tb;
      if (r % 2 == 0) {
        tm = on_m();
        tb = on_b();
      } else {
        tb = on_b();
        tm = on_m();
      }
      ratio.push_back(tm / tb);
      ns_m.push_back(tm);
      ns_b.push_back(tb);
    }
  }
  rcukit::harness::set_ratio_counters(st, "ratio", ratio);
  st.counters["ns_skiplist"] = rcukit::harness::median(ns_m);
  st.counters["ns_btree"] = rcukit::harness::median(ns_b);
}
template <class M>
void BM_insert_erase(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  std::mt19937_64 rng(1);
  for (auto _ : st) {
    const uint64_t k = (rng() % n) * 16 + 9;  // the free space between two extents
    benchmark::DoNotOptimize(m->insert(extent{k, 4}, k));
    benchmark::DoNotOptimize(m->erase(k));
  }
  st.SetItemsProcessed(st.iterations() * 2);
}
template <class M>
void BM_insert_hole(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  std::mt19937_64 rng(1);
  for (auto _ : st) {
    hole_request r;
    r.size = 4;
    r.hint = (rng() % n) * 16;
    auto s = m->insert_hole(r, 1);
    benchmark::DoNotOptimize(s);
    if (s.ok()) (void)m->erase(*s);
  }
  st.SetItemsProcessed(st.iterations());
}
template <class M>
void BM_walk(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = filled<M>(n);
  for (auto _ : st) {
    uint64_t sum = 0;
    m->for_each(0, UINT64_MAX, [&](const entry& e) { sum += e.value; });
    benchmark::DoNotOptimize(sum);
  }
  st.SetItemsProcessed(st.iterations() * n);
}
// 50% fragmented: 2n extents of size 8 at stride 8 (no gaps), then a random
// half freed; free gaps are multiples of 8 and almost all < 64. The request
// (size 64, hint 0) fits only past the fragmented part.
template <class M>
void BM_insert_hole_fragmented(benchmark::State& st) {
  const int64_t n = st.range(0);
  auto m = std::make_unique<M>();
  for (int64_t i = 0; i < 2 * n; ++i) (void)m->insert(extent{uint64_t(i) * 8, 8}, i);
  std::mt19937_64 rng(3);
  std::vector<uint64_t> idx(2 * n);
  for (int64_t i = 0; i < 2 * n; ++i) idx[i] = i;
  std::shuffle(idx.begin(), idx.end(), rng);
  for (int64_t i = 0; i < n; ++i) (void)m->erase(idx[i] * 8);
  // Close any gap of 64 or more so that the request cannot fit inside.
  for (int64_t i = 0; i < 2 * n; i += 7) (void)m->insert(extent{uint64_t(i) * 8, 8}, i);
  for (auto _ : st) {
    hole_request r;
    r.size = 64;
    auto s = m->insert_hole(r, 1);
    benchmark::DoNotOptimize(s);
    if (s.ok()) (void)m->erase(*s);
  }
  st.SetItemsProcessed(st.iterations());
}

// 10^3 .. 10^7 extents, as issue 3 asks. A 10^7 case fills its structure
// first (10-30 s, up to ~1 GB); skip those with
// --benchmark_filter='-.*/10000000' (scripts/main.sh quick skips 10^6 and up).
#define RCUKIT_SIZES ->RangeMultiplier(10)->Range(1000, 10000000)
BENCHMARK_TEMPLATE(BM_lookup, skiplist) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup, std_map_spin) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup, btree_mutex) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup_rcu, skiplist) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup_rcu, skiplist_own_towers) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup_rcu, skiplist_sparse) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_lookup_paired, skiplist, via_lookup_rcu)->RangeMultiplier(10)->Range(1000, 10000000)->Iterations(1);
BENCHMARK_TEMPLATE(BM_lookup_paired, skiplist, via_lookup)->RangeMultiplier(10)->Range(1000, 10000000)->Iterations(1);
BENCHMARK_TEMPLATE(BM_lookup_paired, skiplist_no_blocks, via_lookup_rcu)->Arg(1000000)->Arg(10000000)->Iterations(1);
BENCHMARK_TEMPLATE(BM_lookup_paired, skiplist_small_pages, via_lookup_rcu)->Arg(1000000)->Arg(10000000)->Iterations(1);
BENCHMARK_TEMPLATE(BM_insert_erase, skiplist) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_erase, std_map_spin) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_erase, btree_mutex) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_hole, skiplist) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_hole, std_map_spin) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_hole, btree_mutex) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_walk, skiplist) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_walk, std_map_spin) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_walk, btree_mutex) RCUKIT_SIZES;
BENCHMARK_TEMPLATE(BM_insert_hole_fragmented, skiplist)->RangeMultiplier(10)->Range(10000, 1000000);
BENCHMARK_TEMPLATE(BM_insert_hole_fragmented, std_map_spin)->RangeMultiplier(10)->Range(10000, 1000000);

}  // namespace

BENCHMARK_MAIN();
