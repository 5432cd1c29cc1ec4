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
// That is two alloc+free pairs per iteration (items = pairs). The rbtree
// baseline walks every extent (linear in n, as the 2013 kernel); the
// augmented rbtree and the skiplist skip subtrees / spans whose largest gap
// is too small (logarithmic). With the cache in front the same calls go
// through iova_magazine_cache and are served from per-thread magazines.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <map>
#include <memory>
#include <vector>

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
      cache.free(f.sentinel, 1);
      auto one = cache.alloc(1, f.top - 1);
      auto two = cache.alloc(2, f.top - 1);
      if (!one.ok() || !two.ok() || *one != f.sentinel) {
        state.SkipWithError("alloc failed or sentinel not reused");
        break;
      }
      benchmark::DoNotOptimize(*two);
      cache.free(*two, 2);
    }
    // The cache's destructor returns its magazines (the sentinel is live again).
  }
  state.SetItemsProcessed(state.iterations() * 2);
}

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
