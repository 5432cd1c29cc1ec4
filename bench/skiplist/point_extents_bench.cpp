// SPDX-License-Identifier: MIT
// The extent skiplist against absl::btree_map on the default key set of
// CONVENTIONS.md ("Benchmarks that tell the truth"): random sparse 64-bit
// keys, stored as point extents [k, k + 1) with 8-byte values, inserted in
// random order. Every figure is a ratio of two sides measured in the same
// run, in alternating rounds (the machine drifts 10-20% over seconds):
//
//   BM_point_paired/N      one thread: insert all N keys (random order),
//                          look each up (random order; lookup() and
//                          lookup_rcu() inside one read side), erase all
//                          (random order); and the bytes the allocator hands
//                          out per extent after the inserts (mallinfo2:
//                          arena chunks, towers, blocks, slack). The peer is
//                          absl::btree_map<start, {size, value}> without a
//                          lock (the best honest single-thread answer).
//                          plain_kv_btree_* columns: the same keys in a plain
//                          absl::btree_map<uint64_t, uint64_t> (points, not
//                          extents): what an extent costs over a point.
//   BM_write_mix_paired/T  T threads, 10^6 extents prefilled from a key
//                          space of 2*10^6 sparse keys, then uniform random
//                          inserts and erases (50/50) for a fixed time:
//                          Mops/s against btree_map behind a std::mutex (the
//                          lock a user of a single-threaded map would pick).
//   BM_hole_index_cost/T   the write-only mix on two skiplists, the default
//                          one and one with the hole index compiled out
//                          (Traits::hole_index = false): what the index
//                          costs writers that never call insert_hole
//                          (ratio above 1 = the index's cost).
//   BM_fill_delete_paired  100k extents [4096 i, 4096 (i + 1)) inserted in
//                          shuffled order, then erased in shuffled order:
//                          ms per phase against btree_map behind a mutex.
//
// Counters: <side>_<figure> (medians over the rounds) and ratio_<figure>
// (median of the per-round skiplist/peer ratios; below 1 the skiplist is
// faster or smaller). Run:
//   build/release/bench/skiplist/point_extents_bench --benchmark_filter=point_paired
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/btree_map.h"
#include "harness/paired.hpp"
#include "harness/peers.hpp"
#include "harness/point_keys.hpp"
#include "rcukit/extent_skiplist.hpp"

namespace {

using rcukit::extent;
using skiplist = rcukit::extent_skiplist<uint64_t>;
using slot = rcukit::harness::extent_slot<uint64_t>;
using btree = absl::btree_map<uint64_t, slot>;
using btree_ops = rcukit::harness::ordered_map_extents<btree, uint64_t>;
using btree_mutex = rcukit::harness::btree_mutex<uint64_t>;
using clock_type = std::chrono::steady_clock;

// The default key set and the two measurements (harness/point_keys.hpp).
using rcukit::harness::heap_bytes;
using rcukit::harness::ns_since;
using rcukit::harness::sparse_keys;

// Per-side figures of one round of BM_point_paired.
struct point_round {
  double insert_ns = 0, lookup_ns = 0, lookup_rcu_ns = 0, erase_ns = 0, bytes = 0;
};

point_round run_skiplist(const std::vector<uint64_t>& ins, const std::vector<uint64_t>& look,
                         const std::vector<uint64_t>& del) {
  point_round r;
  const size_t h0 = heap_bytes();
  auto m = std::make_unique<skiplist>();
  auto t0 = clock_type::now();
  for (uint64_t k : ins) (void)m->insert(extent{k, 1}, k);
  r.insert_ns = ns_since(t0, ins.size());
  r.bytes = static_cast<double>(heap_bytes() - h0) / static_cast<double>(ins.size());
  uint64_t sum = 0;
  t0 = clock_type::now();
  for (uint64_t k : look) sum += m->lookup(k)->value;
  r.lookup_ns = ns_since(t0, look.size());
  {
    rcukit::rcu::read_guard<> g;
    t0 = clock_type::now();
    for (uint64_t k : look) sum += m->lookup_rcu(g, k)->value;
    r.lookup_rcu_ns = ns_since(t0, look.size());
  }
  t0 = clock_type::now();
  for (uint64_t k : del) sum += m->erase(k)->value;
  r.erase_ns = ns_since(t0, del.size());
  benchmark::DoNotOptimize(sum);
  m.reset();
  rcukit::rcu::barrier();
  return r;
}

point_round run_btree(const std::vector<uint64_t>& ins, const std::vector<uint64_t>& look,
                      const std::vector<uint64_t>& del) {
  point_round r;
  const size_t h0 = heap_bytes();
  auto m = std::make_unique<btree>();
  auto t0 = clock_type::now();
  for (uint64_t k : ins) (void)btree_ops::insert(*m, extent{k, 1}, k);
  r.insert_ns = ns_since(t0, ins.size());
  r.bytes = static_cast<double>(heap_bytes() - h0) / static_cast<double>(ins.size());
  uint64_t sum = 0;
  t0 = clock_type::now();
  for (uint64_t k : look) sum += btree_ops::lookup(*m, k, 1)->value;
  r.lookup_ns = r.lookup_rcu_ns = ns_since(t0, look.size());
  t0 = clock_type::now();
  for (uint64_t k : del) sum += btree_ops::erase(*m, k, 1)->value;
  r.erase_ns = ns_since(t0, del.size());
  benchmark::DoNotOptimize(sum);
  return r;
}

// The same keys in a plain key -> value B-tree (absl::btree_map<uint64_t,
// uint64_t>): not a peer (it cannot answer "which extent holds k"), a
// reference that shows what storing an extent rather than a point costs.
point_round run_plain_btree(const std::vector<uint64_t>& ins, const std::vector<uint64_t>& look,
                            const std::vector<uint64_t>& del) {
  point_round r;
  const size_t h0 = heap_bytes();
  auto m = std::make_unique<absl::btree_map<uint64_t, uint64_t>>();
  auto t0 = clock_type::now();
  for (uint64_t k : ins) m->emplace(k, k);
  r.insert_ns = ns_since(t0, ins.size());
  r.bytes = static_cast<double>(heap_bytes() - h0) / static_cast<double>(ins.size());
  uint64_t sum = 0;
  t0 = clock_type::now();
  for (uint64_t k : look) sum += m->find(k)->second;
  r.lookup_ns = r.lookup_rcu_ns = ns_since(t0, look.size());
  t0 = clock_type::now();
  for (uint64_t k : del) {
    auto it = m->find(k);
    sum += it->second;
    m->erase(it);
  }
  r.erase_ns = ns_since(t0, del.size());
  benchmark::DoNotOptimize(sum);
  return r;
}

void BM_point_paired(benchmark::State& st) {
  constexpr int kRounds = 5;
  const size_t n = static_cast<size_t>(st.range(0));
  std::vector<point_round> sl, bt, kv;
  for (auto _ : st) {
    for (int r = 0; r < kRounds; ++r) {
      const auto keys = sparse_keys(n, 100 + r);
      std::mt19937_64 rng(200 + r);
      auto look = keys, del = keys;
      std::shuffle(look.begin(), look.end(), rng);
      std::shuffle(del.begin(), del.end(), rng);
      if (r % 2 == 0) {
        sl.push_back(run_skiplist(keys, look, del));
        bt.push_back(run_btree(keys, look, del));
      } else {
        bt.push_back(run_btree(keys, look, del));
        sl.push_back(run_skiplist(keys, look, del));
      }
      kv.push_back(run_plain_btree(keys, look, del));
    }
  }
  auto report = [&](const char* name, double point_round::*f) {
    std::vector<double> a, b, ratio;
    for (size_t i = 0; i < sl.size(); ++i) {
      a.push_back(sl[i].*f);
      b.push_back(bt[i].*f);
      ratio.push_back(sl[i].*f / bt[i].*f);
    }
    st.counters[std::string("skiplist_") + name] = rcukit::harness::median(a);
    st.counters[std::string("btree_") + name] = rcukit::harness::median(b);
    std::vector<double> c;
    for (const point_round& k : kv) c.push_back(k.*f);
    st.counters[std::string("plain_kv_btree_") + name] = rcukit::harness::median(c);
    rcukit::harness::set_ratio_counters(st, std::string("ratio_") + name, ratio);
  };
  report("insert_ns", &point_round::insert_ns);
  report("lookup_ns", &point_round::lookup_ns);
  report("lookup_rcu_ns", &point_round::lookup_rcu_ns);
  report("erase_ns", &point_round::erase_ns);
  report("bytes_per_extent", &point_round::bytes);
}
BENCHMARK(BM_point_paired)->Arg(100000)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- write-only mix ---------------------------------------------------------

constexpr size_t kMixSpace = 2000000;
constexpr size_t kMixFill = 1000000;

// Mops/s of `threads` threads doing 50/50 inserts and erases of uniform
// random keys from `space` for `seconds`, on a map prefilled with the first
// kMixFill keys of a shuffled key space.
template <class M>
double write_mix(M& m, const std::vector<uint64_t>& space, int threads, double seconds, uint64_t seed) {
  std::atomic<bool> stop{false};  // relaxed: a flag, nothing published through it
  std::vector<uint64_t> ops(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          const uint64_t k = space[rng() % space.size()];
          if (rng() & 1) {
            benchmark::DoNotOptimize(m.insert(extent{k, 1}, k));
          } else {
            benchmark::DoNotOptimize(m.erase(k));
          }
        }
        n += 64;
      }
      ops[t] = n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  uint64_t total = 0;
  for (uint64_t x : ops) total += x;
  return static_cast<double>(total) / seconds / 1e6;
}

// The write-only mix on two maps A and B (prefilled alike) in `rounds`
// alternating rounds: per-side medians of Mops/s, and the median of the
// per-round ratios A/B (or B/A with `invert`, i.e. time per op of A over B).
template <class A, class B>
void write_mix_rounds(benchmark::State& st, int rounds, const char* name_a, const char* name_b,
                      const char* ratio_name, bool invert) {
  constexpr double kSeconds = 0.5;
  const int threads = static_cast<int>(st.range(0));
  auto space = sparse_keys(kMixSpace, 7);
  auto ma = std::make_unique<A>();
  auto mb = std::make_unique<B>();
  for (size_t i = 0; i < kMixFill; ++i) {
    (void)ma->insert(extent{space[i], 1}, space[i]);
    (void)mb->insert(extent{space[i], 1}, space[i]);
  }
  std::vector<double> a, b, ratio;
  for (auto _ : st) {
    for (int r = 0; r < rounds; ++r) {
      double x, y;
      if (r % 2 == 0) {
        x = write_mix(*ma, space, threads, kSeconds, 10 * r);
        y = write_mix(*mb, space, threads, kSeconds, 10 * r);
      } else {
        y = write_mix(*mb, space, threads, kSeconds, 10 * r);
        x = write_mix(*ma, space, threads, kSeconds, 10 * r);
      }
      a.push_back(x);
      b.push_back(y);
      ratio.push_back(invert ? y / x : x / y);
    }
  }
  st.counters[name_a] = rcukit::harness::median(a);
  st.counters[name_b] = rcukit::harness::median(b);
  rcukit::harness::set_ratio_counters(st, ratio_name, ratio);
  ma.reset();
  mb.reset();
  rcukit::rcu::barrier();
}

void BM_write_mix_paired(benchmark::State& st) {
  write_mix_rounds<skiplist, btree_mutex>(st, 5, "skiplist_mops", "btree_mutex_mops", "ratio_mops", false);
}
BENCHMARK(BM_write_mix_paired)->Arg(1)->Arg(2)->Arg(4)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- what the hole index costs writers that never use it ---------------------

struct no_hole_index_traits : rcukit::skiplist_traits {
  static constexpr bool hole_index = false;
};
using skiplist_no_holes = rcukit::extent_skiplist<uint64_t, rcukit::rcu::default_flavor, no_hole_index_traits>;

void BM_hole_index_cost(benchmark::State& st) {
  // ratio_time: time per op with the index / without it.
  write_mix_rounds<skiplist, skiplist_no_holes>(st, 6, "with_index_mops", "without_index_mops", "ratio_time",
                                                true);
}
BENCHMARK(BM_hole_index_cost)->Arg(1)->Arg(2)->Iterations(1)->Unit(benchmark::kMillisecond)->UseRealTime();

// --- fill / delete of 4 KiB extents in shuffled order ------------------------

template <class M>
std::pair<double, double> fill_delete(const std::vector<uint64_t>& ins, const std::vector<uint64_t>& del) {
  auto m = std::make_unique<M>();
  auto t0 = clock_type::now();
  for (uint64_t i : ins) (void)m->insert(extent{i * 4096, 4096}, i);
  const double fill = ns_since(t0, 1) / 1e6;
  t0 = clock_type::now();
  for (uint64_t i : del) (void)m->erase(i * 4096);
  const double erase = ns_since(t0, 1) / 1e6;
  m.reset();
  rcukit::rcu::barrier();
  return {fill, erase};
}

void BM_fill_delete_paired(benchmark::State& st) {
  constexpr int kRounds = 7;
  constexpr size_t kItems = 100000;
  std::vector<double> fa, fb, da, db, fr, dr;
  for (auto _ : st) {
    for (int r = 0; r < kRounds; ++r) {
      std::vector<uint64_t> ins(kItems), del(kItems);
      for (size_t i = 0; i < kItems; ++i) ins[i] = del[i] = i;
      std::mt19937_64 rng(300 + r);
      std::shuffle(ins.begin(), ins.end(), rng);
      std::shuffle(del.begin(), del.end(), rng);
      std::pair<double, double> x, y;
      if (r % 2 == 0) {
        x = fill_delete<skiplist>(ins, del);
        y = fill_delete<btree_mutex>(ins, del);
      } else {
        y = fill_delete<btree_mutex>(ins, del);
        x = fill_delete<skiplist>(ins, del);
      }
      fa.push_back(x.first);
      fb.push_back(y.first);
      da.push_back(x.second);
      db.push_back(y.second);
      fr.push_back(x.first / y.first);
      dr.push_back(x.second / y.second);
    }
  }
  st.counters["skiplist_fill_ms"] = rcukit::harness::median(fa);
  st.counters["btree_mutex_fill_ms"] = rcukit::harness::median(fb);
  st.counters["skiplist_delete_ms"] = rcukit::harness::median(da);
  st.counters["btree_mutex_delete_ms"] = rcukit::harness::median(db);
  rcukit::harness::set_ratio_counters(st, "ratio_fill", fr);
  rcukit::harness::set_ratio_counters(st, "ratio_delete", dr);
}
BENCHMARK(BM_fill_delete_paired)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
