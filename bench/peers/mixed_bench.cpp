// SPDX-License-Identifier: MIT
// Mixed read/insert/erase throughput of rcukit's extent indexes against the
// libraries people would otherwise pick, on one workload:
//   key space: 65536 slots (key i*4096, size 4096), half present at start;
//   each operation picks a random slot: 80% lookup, 10% insert, 10% erase.
// Threads 1, 2 and 8 (8 oversubscribes a 2-core machine on purpose: lock-holder
// preemption shows there). Peers, each used through its documented API:
//   std::map behind a spin lock, absl::btree_map behind a std::mutex,
//   libcds SkipListMap with its RCU gc (general_buffered), and oneTBB
//   concurrent_map, which has no concurrency-safe erase: its erase workload is
//   reported as an error row "N/A", never emulated.
// A second workload without erase (90% lookup, 10% insert of absent keys,
// then the benchmark resets) lets concurrent_map take part.
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <random>

// libcds needs its RCU header before the container header (order matters).
// clang-format off
#include <cds/init.h>
#include <cds/urcu/general_buffered.h>
#include <cds/container/skip_list_map_rcu.h>
// clang-format on
#include <oneapi/tbb/concurrent_map.h>

#include "harness/peers.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"

namespace {

using namespace rcukit;
constexpr uint64_t kSlots = 1 << 16;
constexpr uint64_t kSize = 4096;

using cds_rcu = cds::urcu::gc<cds::urcu::general_buffered<>>;
using cds_map = cds::container::SkipListMap<cds_rcu, uint64_t, uint64_t>;

// Uniform adapter: keyed operations on item starts.
template <class Index>
struct extent_adapter {
  Index index;
  bool insert(uint64_t k) { return index.insert(extent{k * kSize, kSize}, k).ok(); }
  bool lookup(uint64_t k) const { return index.lookup(k * kSize).has_value(); }
  bool erase(uint64_t k) { return index.erase(k * kSize).has_value(); }
  static constexpr bool has_erase = true;
};

struct cds_adapter {
  cds_map map;
  bool insert(uint64_t k) { return map.insert(k * kSize, k); }
  bool lookup(uint64_t k) { return map.contains(k * kSize); }
  bool erase(uint64_t k) { return map.erase(k * kSize); }
  static constexpr bool has_erase = true;
};

struct tbb_adapter {
  tbb::concurrent_map<uint64_t, uint64_t> map;
  bool insert(uint64_t k) { return map.emplace(k * kSize, k).second; }
  bool lookup(uint64_t k) const { return map.find(k * kSize) != map.end(); }
  bool erase(uint64_t) { return false; }  // never called: has_erase is false
  static constexpr bool has_erase = false;
};

// libcds requires every thread that touches its containers to be attached.
struct cds_thread_scope {
  bool attached = false;
  cds_thread_scope() {
    if (!cds::threading::Manager::isThreadAttached()) {
      cds::threading::Manager::attachThread();
      attached = true;
    }
  }
  ~cds_thread_scope() {
    if (attached) cds::threading::Manager::detachThread();
  }
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
    cds_thread_scope cds_scope;
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

RCUKIT_MIXED(extent_adapter<extent_skiplist<uint64_t>>, "rcukit_skiplist");
RCUKIT_MIXED(extent_adapter<rbtree_extent_map<uint64_t>>, "rcukit_rbtree_2013");
RCUKIT_MIXED(extent_adapter<rbtree_extent_map_augmented<uint64_t>>, "rcukit_rbtree_augmented");
RCUKIT_MIXED(extent_adapter<harness::std_map_spinlock<uint64_t>>, "std_map_spinlock");
RCUKIT_MIXED(extent_adapter<harness::btree_mutex<uint64_t>>, "absl_btree_mutex");
RCUKIT_MIXED(cds_adapter, "libcds_skiplist_rcu");
RCUKIT_MIXED(tbb_adapter, "tbb_concurrent_map");

}  // namespace

int main(int argc, char** argv) {
  cds::Initialize();
  {
    cds_rcu gc;  // libcds' RCU singleton lives for the whole run
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    cds_thread_scope main_scope;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
  }
  cds::Terminate();
  return 0;
}
