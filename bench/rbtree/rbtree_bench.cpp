// SPDX-License-Identifier: MIT
// rbtree benchmarks, one thread.
//  BM_MapHoleDown<Map>/n: insert_hole(size 2, direction::down, random hint)
//    + erase on a map holding n one-unit extents with one-unit holes
//    between them above 2^20 free units: no hole among the extents fits,
//    so the baseline walks every extent below the hint (linear), the
//    augmented map descends by max_gap (logarithmic). Items = hole+erase pairs.
//  BM_Lookup<Map>/n: lookup of a random extent (both maps: O(log n) plus
//    the global lock).
//  BM_IntrusiveInsertErase / BM_StdSetInsertErase: the bare rb core against
//    std::set<uint64_t> (insert one random key, erase one), n keys resident.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <vector>

#include "rcukit/rbtree.hpp"

namespace {

constexpr uint64_t kBase = uint64_t{1} << 20;

template <class Map>
std::unique_ptr<Map> fragmented(uint64_t n) {
  auto m = std::make_unique<Map>();
  for (uint64_t i = 0; i < n; ++i) (void)m->insert(rcukit::extent{kBase + 2 * i, 1}, i);
  return m;
}

template <class Map>
void BM_MapHoleDown(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  static std::unique_ptr<Map> m;
  static uint64_t built = 0;
  if (built != n) {
    m = fragmented<Map>(n);
    built = n;
  }
  std::mt19937_64 rng(1);
  rcukit::hole_request r;
  r.size = 2;
  r.dir = rcukit::hole_request::direction::down;
  r.limit = kBase + 2 * n;
  for (auto _ : state) {
    r.hint = kBase + rng() % (2 * n);
    auto s = m->insert_hole(r, 0);
    benchmark::DoNotOptimize(s);
    (void)m->erase(*s);
  }
  state.SetItemsProcessed(state.iterations());
}

template <class Map>
void BM_Lookup(benchmark::State& state) {
  const uint64_t n = static_cast<uint64_t>(state.range(0));
  auto m = fragmented<Map>(n);
  std::mt19937_64 rng(2);
  for (auto _ : state) benchmark::DoNotOptimize(m->lookup(kBase + 2 * (rng() % n)));
  state.SetItemsProcessed(state.iterations());
}

struct item {
  rcukit::rb::node link;
  uint64_t key;
};
item* of(rcukit::rb::node* n) { return reinterpret_cast<item*>(n); }

bool rb_insert(rcukit::rb::root& r, item* it) {
  rcukit::rb::node** link = &r.top;
  rcukit::rb::node* p = nullptr;
  while (*link != nullptr) {
    p = *link;
    if (it->key < of(p)->key) {
      link = &p->left;
    } else if (it->key > of(p)->key) {
      link = &p->right;
    } else {
      return false;
    }
  }
  rcukit::rb::link_node(&it->link, p, link);
  rcukit::rb::insert_color(&it->link, &r);
  return true;
}

void BM_IntrusiveInsertErase(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::vector<item> pool(2 * n);
  std::vector<item*> in, out;
  rcukit::rb::root r;
  std::mt19937_64 rng(3);
  for (auto& it : pool) {
    it.key = rng();
    (in.size() < n && rb_insert(r, &it) ? in : out).push_back(&it);
  }
  for (auto _ : state) {
    const size_t i = rng() % in.size(), j = rng() % out.size();
    rcukit::rb::erase(&in[i]->link, &r);
    std::swap(in[i], out[j]);
    if (!rb_insert(r, in[i])) state.SkipWithError("duplicate key");
  }
  state.SetItemsProcessed(state.iterations());
}

void BM_StdSetInsertErase(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::set<uint64_t> s;
  std::vector<uint64_t> in, out;
  std::mt19937_64 rng(3);
  for (size_t k = 0; k < 2 * n; ++k) {
    const uint64_t key = rng();
    (in.size() < n && s.insert(key).second ? in : out).push_back(key);
  }
  for (auto _ : state) {
    const size_t i = rng() % in.size(), j = rng() % out.size();
    s.erase(in[i]);
    std::swap(in[i], out[j]);
    s.insert(in[i]);
  }
  state.SetItemsProcessed(state.iterations());
}

using rb_base = rcukit::rbtree_extent_map<uint64_t>;
using rb_aug = rcukit::rbtree_extent_map_augmented<uint64_t>;
#define SIZES RangeMultiplier(10)->Range(1000, 1000000)->Unit(benchmark::kMicrosecond)
BENCHMARK_TEMPLATE(BM_MapHoleDown, rb_base)->SIZES;
BENCHMARK_TEMPLATE(BM_MapHoleDown, rb_aug)->SIZES;
BENCHMARK_TEMPLATE(BM_Lookup, rb_base)->SIZES;
BENCHMARK_TEMPLATE(BM_Lookup, rb_aug)->SIZES;
BENCHMARK(BM_IntrusiveInsertErase)->SIZES;
BENCHMARK(BM_StdSetInsertErase)->SIZES;

}  // namespace
