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
#include "mixed_workload.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"

namespace {

using namespace rcukit;

using cds_rcu = cds::urcu::gc<cds::urcu::general_buffered<>>;
using cds_map = cds::container::SkipListMap<cds_rcu, uint64_t, uint64_t>;

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

struct cds_adapter {
  using thread_scope = cds_thread_scope;
  cds_map map;
  bool insert(uint64_t k) { return map.insert(k * bench::kSlotSize, k); }
  bool lookup(uint64_t k) { return map.contains(k * bench::kSlotSize); }
  bool erase(uint64_t k) { return map.erase(k * bench::kSlotSize); }
  static constexpr bool has_erase = true;
};

struct tbb_adapter {
  using thread_scope = bench::no_thread_scope;
  tbb::concurrent_map<uint64_t, uint64_t> map;
  bool insert(uint64_t k) { return map.emplace(k * bench::kSlotSize, k).second; }
  bool lookup(uint64_t k) const { return map.find(k * bench::kSlotSize) != map.end(); }
  bool erase(uint64_t) { return false; }  // never called: has_erase is false
  static constexpr bool has_erase = false;
};

RCUKIT_MIXED(bench::extent_adapter<extent_skiplist<uint64_t>>, "rcukit_skiplist");
RCUKIT_MIXED(bench::extent_adapter<rbtree_extent_map<uint64_t>>, "rcukit_rbtree_2013");
RCUKIT_MIXED(bench::extent_adapter<rbtree_extent_map_augmented<uint64_t>>, "rcukit_rbtree_augmented");
RCUKIT_MIXED(bench::extent_adapter<harness::std_map_spinlock<uint64_t>>, "std_map_spinlock");
RCUKIT_MIXED(bench::extent_adapter<harness::btree_mutex<uint64_t>>, "absl_btree_mutex");
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
