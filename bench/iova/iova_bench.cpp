// SPDX-License-Identifier: MIT
// alloc+free throughput of iova_domain on a fragmented domain, one thread,
// for every index, and the same with iova_magazine_cache in front.
//
// Setup (per index and live count n, built once and reused across runs):
// a domain of 2n + 1 + 2^20 pages; 2n + 1 one-page allocations top-down fill
// the top of it (the first, at the very top, is the "sentinel"); every other
// one below the sentinel is freed, leaving n + 1 live ranges and n isolated
// one-page holes, with 2^20 free pages at the bottom. One iteration is the
// kernel's pathology (a completion above the cached node sends the next walk
// back to the top):
//   free the sentinel (the cached position resets to the top), alloc 1 page
//   (takes the sentinel's page back), alloc 2 pages (no 1-page hole fits: the
//   search must get past all n holes to the bottom free space), free them.
// That is two alloc+free pairs per iteration (items = pairs).
//
// BM_capacity_paired/T: the allocator capacity the IOMMU experiment's device
// hides (issue 15, 19): T threads map and unmap flat out, each keeping 400
// mappings of 512 KiB (128 pages: an fio 20 MB IO at iodepth 10, split at
// the block layer's 512 KiB) and freeing them in random order, each new one
// size-aligned, tried below 4 GiB first and then anywhere (the 2013
// intel-iommu policy). Rounds alternate between the 2013 rbtree domain and
// the skiplist domain (the same with the magazine cache in front: requests
// of 128 pages bypass it, as in the kernel); counters: GB/s of IO mapped
// (= unmapped) and the skiplist/rbtree ratio per round. The rbtree
// baseline walks every extent (linear in n, as the 2013 kernel); the
// augmented rbtree and the skiplist skip subtrees / spans whose largest gap
// is too small (logarithmic). With the cache in front the same calls go
// through iova_magazine_cache and are served from per-thread magazines.
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "harness/paired.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"

namespace {

constexpr uint64_t kBottom = uint64_t{1} << 20;

template <class Index>
struct fixture {
  std::unique_ptr<rcukit::iova_domain<Index>> d;
  std::vector<uint64_t> live;  // live 1-page allocations
  uint64_t top = 0;

  uint64_t sentinel = 0;

  explicit fixture(uint64_t n) {
    top = 1 + kBottom + 2 * n + 1;
    d = std::make_unique<rcukit::iova_domain<Index>>(4096, 1, top);
    sentinel = *d->alloc(1, top - 1, false);
    for (uint64_t i = 0; i < 2 * n; ++i) {
      const uint64_t p = *d->alloc(1, top - 1, false);
      if (i % 2 == 0) {
        (void)d->free(p);
      } else {
        live.push_back(p);
      }
    }
  }

  static fixture& get(uint64_t n) {
    static std::map<uint64_t, std::unique_ptr<fixture>> cache;
    auto& f = cache[n];
    if (!f) f = std::make_unique<fixture>(n);
    return *f;
  }
};

template <class Index>
void BM_DomainFragmented(benchmark::State& state) {
  auto& f = fixture<Index>::get(static_cast<uint64_t>(state.range(0)));
  auto& d = *f.d;
  for (auto _ : state) {
    if (!d.free(f.sentinel).ok()) state.SkipWithError("free failed");
    auto one = d.alloc(1, f.top - 1, false);
    auto two = d.alloc(2, f.top - 1, false);
    if (!one.ok() || !two.ok() || *one != f.sentinel) {
      state.SkipWithError("alloc failed or sentinel not reused");
      break;
    }
    benchmark::DoNotOptimize(*two);
    (void)d.free(*two);
  }
  state.SetItemsProcessed(state.iterations() * 2);
  state.counters["live"] = static_cast<double>(f.live.size());
}

template <class Index>
void BM_CacheFragmented(benchmark::State& state) {
  auto& f = fixture<Index>::get(static_cast<uint64_t>(state.range(0)));
  auto& d = *f.d;
  {
    rcukit::iova_magazine_cache<rcukit::iova_domain<Index>> cache(d);
    for (auto _ : state) {
      if (!cache.free(f.sentinel, 1).ok()) state.SkipWithError("free failed");
      auto one = cache.alloc(1, f.top - 1);
      auto two = cache.alloc(2, f.top - 1);
      if (!one.ok() || !two.ok() || *one != f.sentinel) {
        state.SkipWithError("alloc failed or sentinel not reused");
        break;
      }
      benchmark::DoNotOptimize(*two);
      if (!cache.free(*two, 2).ok()) state.SkipWithError("free failed");
    }
    // The cache's destructor returns its magazines (the sentinel is live again).
  }
  state.SetItemsProcessed(state.iterations() * 2);
}

// --- capacity ---------------------------------------------------------------

constexpr uint64_t kPages = 128;            // 512 KiB of 4 KiB pages
constexpr uint64_t kLive = 400;             // per thread
constexpr uint64_t kPfn32 = uint64_t{1} << 20;  // 4 GiB in pages
constexpr uint64_t kEnd = uint64_t{1} << 36;    // a 48-bit space

template <class A>
double capacity_round(int threads, double seconds, uint64_t seed) {
  rcukit::iova_domain<typename A::index> d(4096, 1, kEnd);
  std::atomic<bool> stop{false};  // relaxed: a flag only
  std::vector<uint64_t> pairs(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      A a(d);
      std::mt19937_64 rng(seed + t);
      std::vector<uint64_t> live;
      auto map = [&] {
        auto p = a.alloc(kPages, kPfn32 - 1);
        if (!p.ok()) p = a.alloc(kPages, kEnd - 1);
        if (p.ok()) live.push_back(*p);
      };
      for (uint64_t i = 0; i < kLive; ++i) map();
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (int i = 0; i < 32 && !live.empty(); ++i) {
          const size_t j = rng() % live.size();
          a.unmap(live[j]);
          live[j] = live.back();
          live.pop_back();
          map();
          ++n;
        }
      }
      for (uint64_t p : live) a.unmap(p);
      pairs[t] = n;
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
  uint64_t total = 0;
  for (uint64_t x : pairs) total += x;
  return static_cast<double>(total) * kPages * 4096 / seconds / 1e9;  // GB/s of IO
}

template <class Index>
struct direct {
  using index = Index;
  rcukit::iova_domain<Index>& d;
  explicit direct(rcukit::iova_domain<Index>& dom) : d(dom) {}
  absl::StatusOr<uint64_t> alloc(uint64_t n, uint64_t limit) { return d.alloc(n, limit, true); }
  void unmap(uint64_t p) { (void)d.free(p); }
};
template <class Index>
struct cached {
  using index = Index;
  rcukit::iova_magazine_cache<rcukit::iova_domain<Index>> c;
  explicit cached(rcukit::iova_domain<Index>& dom) : c(dom) {}
  absl::StatusOr<uint64_t> alloc(uint64_t n, uint64_t limit) { return c.alloc(n, limit); }
  void unmap(uint64_t p) { (void)c.free(p, kPages); }  // a live range: cannot be refused
};

template <template <class> class Front>
void BM_capacity_paired(benchmark::State& st) {
  constexpr int kRounds = 5;
  constexpr double kSeconds = 0.5;
  const int threads = static_cast<int>(st.range(0));
  std::vector<double> a, b, ratio;
  for (auto _ : st) {
    for (int r = 0; r < kRounds; ++r) {
      double x, y;
      if (r % 2 == 0) {
        x = capacity_round<Front<rcukit::extent_skiplist<uint64_t>>>(threads, kSeconds, 10 * r);
        y = capacity_round<Front<rcukit::rbtree_extent_map<uint64_t>>>(threads, kSeconds, 10 * r);
      } else {
        y = capacity_round<Front<rcukit::rbtree_extent_map<uint64_t>>>(threads, kSeconds, 10 * r);
        x = capacity_round<Front<rcukit::extent_skiplist<uint64_t>>>(threads, kSeconds, 10 * r);
      }
      a.push_back(x);
      b.push_back(y);
      ratio.push_back(x / y);
    }
  }
  st.counters["skiplist_gbps"] = rcukit::harness::median(a);
  st.counters["rbtree_gbps"] = rcukit::harness::median(b);
  rcukit::harness::set_ratio_counters(st, "ratio", ratio);
  rcukit::rcu::barrier();
}
BENCHMARK_TEMPLATE(BM_capacity_paired, direct)->Arg(1)->Arg(2)->Arg(16)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_capacity_paired, cached)->Arg(16)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

using rb_base = rcukit::rbtree_extent_map<uint64_t>;
using rb_aug = rcukit::rbtree_extent_map_augmented<uint64_t>;
using skiplist = rcukit::extent_skiplist<uint64_t>;

#define IOVA_SIZES RangeMultiplier(10)->Range(1000, 1000000)->Unit(benchmark::kMicrosecond)
BENCHMARK_TEMPLATE(BM_DomainFragmented, rb_base)->IOVA_SIZES;
BENCHMARK_TEMPLATE(BM_DomainFragmented, rb_aug)->IOVA_SIZES;
BENCHMARK_TEMPLATE(BM_DomainFragmented, skiplist)->IOVA_SIZES;
BENCHMARK_TEMPLATE(BM_CacheFragmented, rb_base)->IOVA_SIZES;
BENCHMARK_TEMPLATE(BM_CacheFragmented, rb_aug)->IOVA_SIZES;
BENCHMARK_TEMPLATE(BM_CacheFragmented, skiplist)->IOVA_SIZES;

}  // namespace
