// alloc+free throughput of iova_domain on a fragmented domain, one thread,
// for every index, and the same with iova_magazine_cache in front.
//
// Setup (per index and live count n, built once and reused across runs):
// a domain of 2n + 2^20 pages; 2n one-page allocations top-down fill the top
// 2n pages; n of them, chosen at random, are freed, leaving n live ranges
// and n one-page holes scattered among them, with 2^20 free pages at the
// bottom. One iteration is the IOMMU pattern of random completion order:
//   free a random live 1-page range (the cached position moves up to it),
//   alloc 1 page (refills that hole), alloc 2 pages (no 1-page hole fits:
//   the search goes down to the bottom free space), free the 2 pages.
// That is two alloc+free pairs per iteration (items = pairs). The rbtree
// baseline walks every extent below the freed one (linear in n, as the
// 2013 kernel); the augmented rbtree and the skiplist skip subtrees / spans
// whose largest gap is too small (logarithmic). With the cache in front the
// same calls go through iova_magazine_cache (sizes round up to 1 and 2
// pages, size-aligned) and are served from per-thread magazines.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"

namespace {

constexpr uint64_t kBottom = uint64_t{1} << 20;

template <class Index>
struct fixture {
  std::unique_ptr<rcukit::iova_domain<Index>> d;
  std::vector<uint64_t> live;  // live 1-page allocations
  std::mt19937_64 rng{42};
  uint64_t top = 0;

  explicit fixture(uint64_t n) {
    top = 1 + kBottom + 2 * n;
    d = std::make_unique<rcukit::iova_domain<Index>>(4096, 1, top);
    std::vector<uint64_t> all;
    all.reserve(2 * n);
    for (uint64_t i = 0; i < 2 * n; ++i) all.push_back(*d->alloc(1, top - 1, false));
    std::shuffle(all.begin(), all.end(), rng);
    for (uint64_t i = 0; i < n; ++i) (void)d->free(all[i]);
    live.assign(all.begin() + static_cast<long>(n), all.end());
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
    const size_t i = f.rng() % f.live.size();
    if (!d.free(f.live[i]).ok()) state.SkipWithError("free failed");
    auto one = d.alloc(1, f.top - 1, false);
    auto two = d.alloc(2, f.top - 1, false);
    if (!one.ok() || !two.ok()) {
      state.SkipWithError("alloc failed");
      break;
    }
    f.live[i] = *one;
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
      const size_t i = f.rng() % f.live.size();
      cache.free(f.live[i], 1);
      auto one = cache.alloc(1, f.top - 1);
      auto two = cache.alloc(2, f.top - 1);
      if (!one.ok() || !two.ok()) {
        state.SkipWithError("alloc failed");
        break;
      }
      f.live[i] = *one;
      benchmark::DoNotOptimize(*two);
      cache.free(*two, 2);
    }
    // The cache's destructor returns its magazines; the fixture keeps n live.
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
