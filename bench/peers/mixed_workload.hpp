// SPDX-License-Identifier: MIT
// bench/peers/mixed_workload.hpp -- the mixed read/insert/erase workload of
// bench_peers_mixed, shared with bench_peers_maple so that the maple tree
// runs exactly the same loop:
//   key space: 65536 slots (key i*4096, size 4096), half present at start;
//   each operation picks a random slot: LookupPct% lookup, InsertPct%
//   insert, the rest erase; Mops/s summed over the threads.
// An adapter offers insert/lookup/erase of slot k (true on success),
// has_erase, and thread_scope: an RAII type each benchmark thread holds
// (libcds attaches its threads with it; empty for the others).
#pragma once

#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <random>

#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::bench {

inline constexpr uint64_t kSlots = 1 << 16;
inline constexpr uint64_t kSlotSize = 4096;

struct no_thread_scope {};

// Keyed operations on item starts over anything with the extent_index
// subset (insert, lookup, erase).
template <class Index>
struct extent_adapter {
  using thread_scope = no_thread_scope;
  Index index;
  bool insert(uint64_t k) { return index.insert(extent{k * kSlotSize, kSlotSize}, k).ok(); }
  bool lookup(uint64_t k) const { return index.lookup(k * kSlotSize).has_value(); }
  bool erase(uint64_t k) { return index.erase(k * kSlotSize).has_value(); }
  static constexpr bool has_erase = true;
};

template <class Adapter>
std::unique_ptr<Adapter>& shared_instance() {
  static std::unique_ptr<Adapter> p;
  return p;
}

template <class Adapter, int LookupPct, int InsertPct>
void bm_mixed(benchmark::State& state) {
  constexpr bool needs_erase = LookupPct + InsertPct < 100;
  if constexpr (needs_erase && !Adapter::has_erase) {
    state.SkipWithError("N/A: no concurrency-safe erase in this peer");
    for (auto _ : state) {
    }
    return;
  } else {
    [[maybe_unused]] typename Adapter::thread_scope scope;  // held for the whole benchmark
    auto& inst = shared_instance<Adapter>();
    if (state.thread_index() == 0) {
      inst = std::make_unique<Adapter>();
      for (uint64_t k = 0; k < kSlots; k += 2) inst->insert(k);
    }
    std::mt19937_64 rng(state.thread_index() + 1);
    uint64_t hits = 0;
    for (auto _ : state) {
      const uint64_t r = rng();
      const uint64_t k = (r >> 8) % kSlots;
      const int op = static_cast<int>(r % 100);
      if (op < LookupPct) {
        hits += inst->lookup(k);
      } else if (op < LookupPct + InsertPct) {
        hits += inst->insert(k);
      } else {
        hits += inst->erase(k);
      }
    }
    benchmark::DoNotOptimize(hits);
    state.SetItemsProcessed(state.iterations());
    if (state.thread_index() == 0) {
      inst.reset();
      rcu::barrier();
    }
  }
}

}  // namespace rcukit::bench

// Both workloads of one peer at 1, 2 and 8 threads (8 oversubscribes a
// 2-core machine on purpose: lock-holder preemption shows there).
// BENCHMARK_TEMPLATE pastes the function's name into an identifier, so it
// must be unqualified.
using rcukit::bench::bm_mixed;
#define RCUKIT_MIXED(adapter, name)             \
  BENCHMARK_TEMPLATE(bm_mixed, adapter, 80, 10) \
      ->Name("mixed_80r_10i_10e/" name)         \
      ->Threads(1)                              \
      ->Threads(2)                              \
      ->Threads(8)                              \
      ->UseRealTime();                          \
  BENCHMARK_TEMPLATE(bm_mixed, adapter, 90, 10) \
      ->Name("read_insert_90r_10i/" name)       \
      ->Threads(1)                              \
      ->Threads(2)                              \
      ->Threads(8)                              \
      ->UseRealTime()
