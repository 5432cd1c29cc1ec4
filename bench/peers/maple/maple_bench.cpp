// SPDX-License-Identifier: MIT
//
// bench_peers_maple -- the kernel's maple tree (bench/peers/maple/, GPL-2.0)
// beside rcukit's extent skiplist on the workloads of CONVENTIONS.md
// ("Benchmarks that tell the truth"): random sparse 64-bit keys, inserted in
// random order. The maple tree runs twice, labelled by where its nodes come
// from: `maple_slab` (the kernel test harness's slab emulation as shipped)
// and `maple_cache` (a plain per-thread node cache). Sides alternate round
// by round, the first one rotating; every figure is a median over the
// rounds, every ratio a median of per-round ratios with its range.
//
//   BM_point_paired/N        one thread: insert N point extents [k, k + 1)
//                            (random order), look each up (lookup(), and
//                            lookup_rcu() inside one read side), erase all;
//                            ns per operation, and memory per extent: the
//                            skiplist's as malloc sees it (mallinfo2), the
//                            maple tree's nodes at 256 bytes each (what a
//                            kernel slab holds for them; maple_slab only).
//   BM_mix/N/R/T             T threads on a tree prefilled with N of 2N
//                            sparse keys: R% lookups, the rest inserts and
//                            erases half and half; Mops/s summed.
//   mixed_80r_10i_10e/..., read_insert_90r_10i/...
//                            bench_peers_mixed's workload (mixed_workload.hpp)
//                            with the maple tree, and the skiplist again as
//                            the anchor of the same run.
//
// `bench_peers_maple --smoke` checks the adapters instead (results against a
// std::map model, the IOVA allocation's bounds, alignment and fullness) and
// exits non-zero on any mismatch; ctest runs it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness/paired.hpp"
#include "harness/point_keys.hpp"
#include "maple_extent_map.hpp"
#include "mixed_workload.hpp"
#include "rcukit/extent_skiplist.hpp"

namespace {

using rcukit::extent;
using skiplist = rcukit::extent_skiplist<uint64_t>;
using maple_slab = rcukit::maple::extent_map<rcukit::maple::slab_emulation>;
using maple_cache = rcukit::maple::extent_map<rcukit::maple::node_cache>;
using clock_type = std::chrono::steady_clock;

using rcukit::harness::heap_bytes;
using rcukit::harness::ns_since;
using rcukit::harness::sparse_keys;

// --- one thread: point extents ------------------------------------------------

struct point_round {
  double insert_ns = 0, lookup_ns = 0, lookup_rcu_ns = 0, erase_ns = 0, bytes = 0;
};

// Memory the structure holds after the inserts (RCU callbacks drained).
template <class M>
size_t memory_now() {
  if constexpr (std::is_same_v<M, maple_slab>) {
    return rcukit::maple::slab_emulation::node_bytes();
  } else if constexpr (std::is_same_v<M, maple_cache>) {
    return rcukit::maple::node_cache::node_bytes();
  } else {
    return heap_bytes();
  }
}

template <class M>
point_round run_point(const std::vector<uint64_t>& ins, const std::vector<uint64_t>& look,
                      const std::vector<uint64_t>& del) {
  point_round r;
  rcukit::rcu::barrier();
  const size_t m0 = memory_now<M>();
  auto m = std::make_unique<M>();
  auto t0 = clock_type::now();
  for (uint64_t k : ins) (void)m->insert(extent{k, 1}, k >> 1);
  r.insert_ns = ns_since(t0, ins.size());
  rcukit::rcu::barrier();
  r.bytes = static_cast<double>(memory_now<M>() - m0) / static_cast<double>(ins.size());
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

constexpr int kSides = 3;
const char* const kSideNames[kSides] = {"skiplist", "maple_slab", "maple_cache"};

// Runs f(side) for each side, starting at side `round % kSides`.
template <class F>
void each_side_rotating(int round, F f) {
  for (int i = 0; i < kSides; ++i) f((i + round) % kSides);
}

void report(benchmark::State& st, const std::string& figure,
            const std::vector<std::vector<double>>& by_side) {
  for (int s = 0; s < kSides; ++s)
    st.counters[std::string(kSideNames[s]) + "_" + figure] = rcukit::harness::median(by_side[s]);
  for (int s = 1; s < kSides; ++s) {
    std::vector<double> ratio;
    for (size_t i = 0; i < by_side[0].size(); ++i) ratio.push_back(by_side[s][i] / by_side[0][i]);
    rcukit::harness::set_ratio_counters(st, std::string(kSideNames[s]) + "_vs_skiplist_" + figure, ratio);
  }
}

void BM_point_paired(benchmark::State& st) {
  constexpr int kRounds = 3;
  const size_t n = static_cast<size_t>(st.range(0));
  std::vector<point_round> res[kSides];
  for (auto _ : st) {
    for (int r = 0; r < kRounds; ++r) {
      const auto keys = sparse_keys(n, 100 + r);
      std::mt19937_64 rng(200 + r);
      auto look = keys, del = keys;
      std::shuffle(look.begin(), look.end(), rng);
      std::shuffle(del.begin(), del.end(), rng);
      each_side_rotating(r, [&](int s) {
        if (s == 0) res[s].push_back(run_point<skiplist>(keys, look, del));
        if (s == 1) res[s].push_back(run_point<maple_slab>(keys, look, del));
        if (s == 2) res[s].push_back(run_point<maple_cache>(keys, look, del));
      });
    }
  }
  auto figure = [&](const char* name, double point_round::*f) {
    std::vector<std::vector<double>> v(kSides);
    for (int s = 0; s < kSides; ++s) {
      for (const point_round& x : res[s]) v[s].push_back(x.*f);
    }
    report(st, name, v);
  };
  figure("insert_ns", &point_round::insert_ns);
  figure("lookup_ns", &point_round::lookup_ns);
  figure("lookup_rcu_ns", &point_round::lookup_rcu_ns);
  figure("erase_ns", &point_round::erase_ns);
  figure("bytes_per_extent", &point_round::bytes);
  // The node cache keeps freed nodes across rounds, so its growth after the
  // first round says nothing; the tree's shape, hence its node bytes, is
  // the slab build's figure.
  for (auto it = st.counters.begin(); it != st.counters.end();) {
    const bool drop = it->first.find("maple_cache") != std::string::npos &&
                      it->first.find("bytes_per_extent") != std::string::npos;
    it = drop ? st.counters.erase(it) : std::next(it);
  }
}
BENCHMARK(BM_point_paired)->Arg(100000)->Arg(1000000)->Iterations(1)->Unit(benchmark::kMillisecond);

// --- threads: a read / write mix ------------------------------------------------

// Mops/s of `threads` threads for `seconds` on m (prefilled): read_pct%
// lookups, the rest inserts and erases of uniform keys from `space`.
template <class M>
double mix_round(const std::vector<uint64_t>& space, size_t fill, int read_pct, int threads, double seconds,
                 uint64_t seed) {
  auto m = std::make_unique<M>();
  for (size_t i = 0; i < fill; ++i) (void)m->insert(extent{space[i], 1}, space[i] >> 1);
  std::atomic<bool> stop{false};  // relaxed: a flag, nothing published through it
  std::vector<uint64_t> ops(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng(seed + t);
      uint64_t n = 0, hits = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 64; ++i) {
          const uint64_t r = rng();
          const uint64_t k = space[r % space.size()];
          const int op = static_cast<int>((r >> 40) % 100);
          if (op < read_pct) {
            hits += m->lookup(k).has_value();
          } else if ((r >> 60) & 1) {
            hits += m->insert(extent{k, 1}, k >> 1).ok();
          } else {
            hits += m->erase(k).has_value();
          }
        }
        n += 64;
      }
      benchmark::DoNotOptimize(hits);
      ops[t] = n;
    });
  }
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  const double el = std::chrono::duration<double>(clock_type::now() - t0).count();
  uint64_t total = 0;
  for (uint64_t x : ops) total += x;
  m.reset();
  rcukit::rcu::barrier();
  return static_cast<double>(total) / el / 1e6;
}

void BM_mix(benchmark::State& st) {
  constexpr int kRounds = 3;
  constexpr double kSeconds = 0.25;
  const size_t n = static_cast<size_t>(st.range(0));
  const int read_pct = static_cast<int>(st.range(1));
  const int threads = static_cast<int>(st.range(2));
  std::vector<std::vector<double>> mops(kSides);
  for (auto _ : st) {
    auto space = sparse_keys(2 * n, 7);
    std::shuffle(space.begin(), space.end(), std::mt19937_64(8));
    for (int r = 0; r < kRounds; ++r) {
      each_side_rotating(r, [&](int s) {
        const uint64_t seed = 1000 * r;
        if (s == 0) mops[s].push_back(mix_round<skiplist>(space, n, read_pct, threads, kSeconds, seed));
        if (s == 1) mops[s].push_back(mix_round<maple_slab>(space, n, read_pct, threads, kSeconds, seed));
        if (s == 2) mops[s].push_back(mix_round<maple_cache>(space, n, read_pct, threads, kSeconds, seed));
      });
    }
  }
  report(st, "mops", mops);
}
BENCHMARK(BM_mix)
    ->ArgNames({"n", "read_pct", "threads"})
    ->ArgsProduct({{100000, 1000000}, {90, 0}, {1, 2}})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// --- bench_peers_mixed's workload ----------------------------------------------------

using rcukit::bench::extent_adapter;
RCUKIT_MIXED(extent_adapter<skiplist>, "rcukit_skiplist");
RCUKIT_MIXED(extent_adapter<maple_slab>, "maple_slab_emulation");
RCUKIT_MIXED(extent_adapter<maple_cache>, "maple_node_cache");

// --- --smoke: the adapters checked ------------------------------------------------

int failures = 0;
void expect(bool ok, const std::string& what) {
  if (!ok) {
    std::cerr << "FAIL: " << what << "\n";
    ++failures;
  }
}

// Extents: random inserts, lookups, erases and walks against std::map.
template <class M>
void smoke_extents(const char* name) {
  M m;
  std::map<uint64_t, uint64_t> model;  // start -> end (exclusive); value = start
  std::mt19937_64 rng(42);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t start = rng() % 100000, size = 1 + rng() % 16;
    const int op = static_cast<int>(rng() % 3);
    auto hit = model.upper_bound(start + size - 1);
    const bool overlaps = hit != model.begin() && std::prev(hit)->second > start;
    if (op == 0) {
      auto s = m.insert(extent{start, size}, start);
      expect(s.ok() == !overlaps, std::string(name) + ": insert agrees with the model");
      if (s.ok()) model.emplace(start, start + size);
    } else if (op == 1) {
      auto e = m.lookup(start, size);
      auto first = model.lower_bound(start);
      if (first != model.begin() && std::prev(first)->second > start) --first;
      const bool want = first != model.end() && first->first < start + size;
      expect(
          e.has_value() == want && (!want || (e->range.start == first->first &&
                                              e->range.end() == first->second && e->value == first->first)),
          std::string(name) + ": lookup returns the lowest overlapping extent");
    } else {
      auto e = m.erase(start);
      auto it = model.upper_bound(start);
      const bool want = it != model.begin() && std::prev(it)->second > start;
      expect(e.has_value() == want, std::string(name) + ": erase agrees with the model");
      if (want) {
        expect(e->range.start == std::prev(it)->first,
               std::string(name) + ": erase removes the whole extent");
        model.erase(std::prev(it));
      }
    }
  }
  size_t n = 0;
  auto it = model.begin();
  m.for_each(0, UINT64_MAX, [&](const auto& e) {
    expect(it != model.end() && e.range.start == it->first && e.range.end() == it->second,
           std::string(name) + ": walk in order");
    if (it != model.end()) ++it;
    ++n;
  });
  expect(n == model.size() && m.size() == model.size(), std::string(name) + ": walk sees every extent");
}

// IOVA: size-aligned top-down allocation in a small window, against a
// brute-force model of the free pages: never out of bounds, misaligned or
// overlapping; the highest fitting range; and ResourceExhausted only when no
// aligned range fits.
template <class Node>
void smoke_iova(const char* name) {
  constexpr uint64_t kLo = 16, kHi = 4096;  // pages [kLo, kHi)
  rcukit::maple::iova_tree<Node> t(kLo, kHi);
  std::vector<bool> used(kHi, false);
  std::vector<std::pair<uint64_t, uint64_t>> live;
  std::mt19937_64 rng(7);
  expect(t.reserve(1000, 1099).ok(), std::string(name) + ": reserve");
  for (uint64_t p = 1000; p <= 1099; ++p) used[p] = true;
  auto best_fit = [&](uint64_t n, uint64_t limit) -> int64_t {  // highest aligned start, or -1
    uint64_t a = 1;
    while (a < n) a <<= 1;
    for (int64_t s = static_cast<int64_t>((limit + 1 - n) / a * a); s >= static_cast<int64_t>(kLo); s -= a) {
      bool free = true;
      for (uint64_t p = s; p < s + n && free; ++p) free = !used[p];
      if (free) return s;
    }
    return -1;
  };
  for (int i = 0; i < 4000; ++i) {
    if (!live.empty() && rng() % 3 == 0) {
      const size_t j = rng() % live.size();
      expect(t.free(live[j].first).ok(), std::string(name) + ": free of a live range");
      for (uint64_t p = live[j].first; p < live[j].first + live[j].second; ++p) used[p] = false;
      live[j] = live.back();
      live.pop_back();
      continue;
    }
    const uint64_t n = 1 + rng() % 40, limit = kLo + rng() % (kHi - kLo);
    if (limit + 1 < kLo + n) continue;
    auto s = t.alloc(n, limit);
    const int64_t want = best_fit(n, limit);
    if (!s.ok()) {
      expect(want < 0 && absl::IsResourceExhausted(s.status()),
             std::string(name) + ": alloc fails only when nothing fits (" + s.status().ToString() + ")");
      continue;
    }
    expect(static_cast<int64_t>(*s) == want, std::string(name) + ": alloc takes the highest aligned fit");
    expect(*s >= kLo && *s + n - 1 <= limit, std::string(name) + ": alloc within bounds");
    for (uint64_t p = *s; p < *s + n; ++p) {
      expect(!used[p], std::string(name) + ": alloc overlaps nothing");
      used[p] = true;
    }
    live.emplace_back(*s, n);
  }
  expect(!t.free(1000).ok(), std::string(name) + ": a reservation cannot be freed");
  for (auto [p, n] : live) expect(t.free(p).ok(), std::string(name) + ": final free");
  expect(t.no_allocations(), std::string(name) + ": empty after freeing everything");
}

// Two writers on disjoint keys and a reader, concurrently: every writer's
// extents are there at the end, the reader never sees a wrong value.
template <class M>
void smoke_threads(const char* name) {
  M m;
  std::atomic<bool> bad{false};  // relaxed: read after join()
  std::vector<std::thread> pool;
  for (int t = 0; t < 2; ++t) {
    pool.emplace_back([&, t] {
      for (uint64_t i = 0; i < 20000; ++i) {
        const uint64_t k = 2 * i + t;
        if (!m.insert(extent{k * 8, 8}, k).ok()) bad.store(true, std::memory_order_relaxed);
        if (i % 3 == 0 && !m.erase(k * 8)) bad.store(true, std::memory_order_relaxed);
      }
    });
  }
  pool.emplace_back([&] {
    for (int i = 0; i < 200000; ++i) {
      const uint64_t k = static_cast<uint64_t>(i) % 40000;
      if (auto e = m.lookup(k * 8 + 3); e && (e->value != k || e->range.start != k * 8))
        bad.store(true, std::memory_order_relaxed);
    }
  });
  for (auto& th : pool) th.join();
  expect(!bad.load(std::memory_order_relaxed), std::string(name) + ": concurrent writers and a reader agree");
  size_t n = 0;
  m.for_each(0, UINT64_MAX, [&](const auto&) { ++n; });
  expect(n == 2 * (20000 - 6667), std::string(name) + ": every extent left by the writers is there");
}

int smoke() {
  smoke_extents<maple_slab>("maple_slab");
  smoke_extents<maple_cache>("maple_cache");
  smoke_iova<rcukit::maple::slab_emulation>("maple_slab");
  smoke_iova<rcukit::maple::node_cache>("maple_cache");
  smoke_threads<maple_slab>("maple_slab");
  smoke_threads<maple_cache>("maple_cache");
  rcukit::rcu::barrier();
  std::cout << (failures ? "FAILED: " : "ok: ") << failures << " failed checks\n";
  return failures ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--smoke") == 0) return smoke();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  rcukit::rcu::barrier();
  return 0;
}
