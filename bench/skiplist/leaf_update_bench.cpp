// SPDX-License-Identifier: MIT
// How should one skiplist leaf be updated while lockless readers search it?
// Issue 3 asks to measure the two candidates and choose; this benchmark
// isolates the leaf, so the comparison is not blurred by the descent.
//
//  * seqcount (what extent_skiplist does): the slots live in the leaf as
//    atomics; a writer holding the leaf lock opens a seqcount write section
//    and shifts slots in place with release stores; a reader snapshots the
//    counter, binary-searches with acquire loads, copies the entry, and
//    retries if the counter moved (the fence-free protocol of
//    include/rcukit/detail/seqcount.hpp, modelled here so the experiment
//    does not depend on the library's internals).
//  * copy-on-write: the slots live in an immutable block reached through one
//    atomic pointer; a writer holding the leaf lock allocates a new block,
//    copies the slots with the change applied, publishes it with a release
//    store and retires the old block through rcu::retire (no allocation:
//    the block derives from rcu::retirable). A reader loads the pointer with
//    acquire under its RCU read side and searches plain memory, never
//    retrying.
//
// The leaf holds 32 extents of (start, size, 8-byte value), kept half full
// (16 resident extents); a write is an insert at a random free position
// followed by the erase of the same extent. Cases:
//   BM_write/<strategy>           one thread, writes only;
//   BM_read/<strategy>            one thread, lookups only;
//   BM_read_vs_writer/<strategy>/<pace>  one reader while another thread
//                                 writes the same leaf, as fast as it can
//                                 (pace 0; the worst case for the seqcount:
//                                 retries are reported) or at a fixed rate of
//                                 write pairs per second (the same for both
//                                 strategies, so the readers compare alone);
//                                 the writer's achieved rate is reported.
// The COW cost includes the allocator and liburcu's call_rcu thread freeing
// the old blocks (on this 2-core machine that thread competes for a CPU).
//
// Run: build/<dir>/bench/skiplist/leaf_update_bench --benchmark_min_time=0.5s
#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <random>
#include <thread>
#include <type_traits>

#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/rcu.hpp"

namespace {

constexpr unsigned kCap = 32;
constexpr unsigned kResident = 16;
constexpr uint64_t kStride = 16;  // resident extent i is [16 i, 16 i + 8)

struct slot {
  uint64_t start, size, value;
};

// --- seqcount leaf ---------------------------------------------------------
class seq_leaf {
 public:
  seq_leaf() {
    for (unsigned i = 0; i < kResident; ++i) store(i, slot{i * kStride, 8, i});
    count_.store(kResident, std::memory_order_relaxed);  // not yet shared
  }

  void insert(const slot& s) {
    lock_.lock();
    const unsigned n = count_.load(std::memory_order_relaxed);  // ours under the lock
    unsigned pos = 0;
    while (pos < n && starts_[pos].load(std::memory_order_relaxed) < s.start) ++pos;
    begin_write();
    for (unsigned i = n; i > pos; --i) store(i, load_relaxed(i - 1));
    store(pos, s);
    // release: covered by the seqcount, pairs with the reader's acquire loads.
    count_.store(n + 1, std::memory_order_release);
    end_write();
    lock_.unlock();
  }
  void erase(uint64_t start) {
    lock_.lock();
    const unsigned n = count_.load(std::memory_order_relaxed);  // ours under the lock
    unsigned pos = 0;
    while (pos < n && starts_[pos].load(std::memory_order_relaxed) != start) ++pos;
    if (pos < n) {
      begin_write();
      for (unsigned i = pos; i + 1 < n; ++i) store(i, load_relaxed(i + 1));
      count_.store(n - 1, std::memory_order_release);  // as in insert()
      end_write();
    }
    lock_.unlock();
  }
  // The extent containing key, by value; false if none. Lock-free reader.
  bool lookup(uint64_t key, slot& out, uint64_t& retries) const {
    for (;;) {
      // acquire: pairs with end_write(); the slots it covers are visible.
      const uint64_t s0 = seq_.load(std::memory_order_acquire);
      if (s0 & 1) {
        ++retries;
        rcukit::detail::cpu_relax();
        continue;
      }
      // acquire on every protected load: a reader that sees any new value
      // also sees the odd counter in its final check (seqcount.hpp).
      unsigned lo = 0, hi = count_.load(std::memory_order_acquire);
      if (hi > kCap) hi = kCap;  // torn count: the final check rejects it
      while (lo < hi) {
        const unsigned mid = (lo + hi) / 2;
        if (starts_[mid].load(std::memory_order_acquire) <= key)
          lo = mid + 1;
        else
          hi = mid;
      }
      bool hit = false;
      if (lo > 0) {
        out = slot{starts_[lo - 1].load(std::memory_order_acquire),
                   sizes_[lo - 1].load(std::memory_order_acquire),
                   values_[lo - 1].load(std::memory_order_acquire)};
        hit = key - out.start < out.size;
      }
      // relaxed: the acquire loads above cannot move below it.
      if (seq_.load(std::memory_order_relaxed) == s0) return hit;
      ++retries;
    }
  }

 private:
  // relaxed: the release stores of the fields that follow keep it first.
  void begin_write() { seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  // release: pairs with the reader's first acquire load of seq_.
  void end_write() { seq_.store(seq_.load(std::memory_order_relaxed) + 1, std::memory_order_release); }
  slot load_relaxed(unsigned i) const {  // under the lock: our own stores only
    return slot{starts_[i].load(std::memory_order_relaxed), sizes_[i].load(std::memory_order_relaxed),
                values_[i].load(std::memory_order_relaxed)};
  }
  void store(unsigned i, const slot& s) {  // release: see lookup()
    starts_[i].store(s.start, std::memory_order_release);
    sizes_[i].store(s.size, std::memory_order_release);
    values_[i].store(s.value, std::memory_order_release);
  }

  rcukit::detail::spin_lock lock_;
  std::atomic<uint64_t> seq_{0};
  std::atomic<unsigned> count_{0};
  std::atomic<uint64_t> starts_[kCap]{};
  std::atomic<uint64_t> sizes_[kCap]{};
  std::atomic<uint64_t> values_[kCap]{};
};

// --- copy-on-write leaf ----------------------------------------------------
struct cow_block : rcukit::rcu::retirable {
  unsigned count = 0;
  slot slots[kCap];
};

class cow_leaf {
 public:
  cow_leaf() {
    auto* b = new cow_block;
    for (unsigned i = 0; i < kResident; ++i) b->slots[i] = slot{i * kStride, 8, i};
    b->count = kResident;
    block_.store(b, std::memory_order_relaxed);  // not yet shared
  }
  ~cow_leaf() { delete block_.load(std::memory_order_relaxed); }  // single-threaded teardown

  void insert(const slot& s) {
    auto* nb = new (std::nothrow) cow_block;  // COW allocates on every write
    if (nb == nullptr) return;
    lock_.lock();
    const cow_block* ob = block_.load(std::memory_order_relaxed);  // ours under the lock
    unsigned pos = 0;
    while (pos < ob->count && ob->slots[pos].start < s.start) ++pos;
    std::memcpy(nb->slots, ob->slots, pos * sizeof(slot));
    nb->slots[pos] = s;
    std::memcpy(nb->slots + pos + 1, ob->slots + pos, (ob->count - pos) * sizeof(slot));
    nb->count = ob->count + 1;
    publish(nb, ob);
  }
  void erase(uint64_t start) {
    auto* nb = new (std::nothrow) cow_block;
    if (nb == nullptr) return;
    lock_.lock();
    const cow_block* ob = block_.load(std::memory_order_relaxed);  // ours under the lock
    unsigned pos = 0;
    while (pos < ob->count && ob->slots[pos].start != start) ++pos;
    if (pos == ob->count) {
      lock_.unlock();
      delete nb;
      return;
    }
    std::memcpy(nb->slots, ob->slots, pos * sizeof(slot));
    std::memcpy(nb->slots + pos, ob->slots + pos + 1, (ob->count - pos - 1) * sizeof(slot));
    nb->count = ob->count - 1;
    publish(nb, ob);
  }
  bool lookup(uint64_t key, slot& out, uint64_t& /*retries: never*/) const {
    rcukit::rcu::read_guard<> g;
    // acquire: pairs with the release store in publish(); the block's
    // contents, written before it, are visible and never change again.
    const cow_block* b = block_.load(std::memory_order_acquire);
    unsigned lo = 0, hi = b->count;
    while (lo < hi) {
      const unsigned mid = (lo + hi) / 2;
      if (b->slots[mid].start <= key)
        lo = mid + 1;
      else
        hi = mid;
    }
    if (lo == 0) return false;
    out = b->slots[lo - 1];
    return key - out.start < out.size;
  }

 private:
  void publish(cow_block* nb, const cow_block* ob) {
    // release: pairs with the acquire load in lookup().
    block_.store(nb, std::memory_order_release);
    lock_.unlock();
    rcukit::rcu::retire(const_cast<cow_block*>(ob));  // freed after readers are done
  }

  rcukit::detail::spin_lock lock_;
  std::atomic<cow_block*> block_{nullptr};
};

// The seqcount reader runs no RCU read side of its own; in the skiplist it
// is inside one anyway (for the descent), so give it the same cost here.
template <class Leaf>
bool guarded_lookup(const Leaf& l, uint64_t key, slot& out, uint64_t& retries) {
  if constexpr (std::is_same_v<Leaf, seq_leaf>) {
    rcukit::rcu::read_guard<> g;
    return l.lookup(key, out, retries);
  } else {
    return l.lookup(key, out, retries);
  }
}

// A write: insert one extent into a free gap of the resident set, erase it.
template <class Leaf>
void write_pair(Leaf& l, std::mt19937_64& rng) {
  const uint64_t start = (rng() % kResident) * kStride + 9;
  l.insert(slot{start, 4, start});
  l.erase(start);
}

template <class Leaf>
void BM_write(benchmark::State& st) {
  {
    Leaf l;
    std::mt19937_64 rng(1);
    for (auto _ : st) write_pair(l, rng);
    st.SetItemsProcessed(st.iterations() * 2);
    rcukit::rcu::barrier();  // free retired blocks before the leaf goes
  }
}

template <class Leaf>
void BM_read(benchmark::State& st) {
  Leaf l;
  std::mt19937_64 rng(2);
  uint64_t retries = 0;
  slot s{};
  for (auto _ : st)
    benchmark::DoNotOptimize(guarded_lookup(l, (rng() % kResident) * kStride + 3, s, retries));
  st.SetItemsProcessed(st.iterations());
}

template <class Leaf>
void BM_read_vs_writer(benchmark::State& st) {
  Leaf l;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> writes{0};
  const int64_t pace = st.range(0);  // write pairs per second, 0 = as fast as possible
  std::thread writer([&] {
    std::mt19937_64 rng(3);
    uint64_t n = 0;
    const auto t0 = std::chrono::steady_clock::now();
    // relaxed: a stop flag; the join below orders everything else.
    while (!stop.load(std::memory_order_relaxed)) {
      write_pair(l, rng);
      n += 2;
      if (pace > 0) {  // same write rate for both strategies: compare readers alone
        const auto due = t0 + std::chrono::nanoseconds(static_cast<int64_t>(n / 2) * 1'000'000'000 / pace);
        while (std::chrono::steady_clock::now() < due && !stop.load(std::memory_order_relaxed)) {
          rcukit::detail::cpu_relax();
        }
      }
    }
    writes.store(n, std::memory_order_relaxed);  // read after join
  });
  std::mt19937_64 rng(4);
  uint64_t retries = 0, misses = 0;
  slot s{};
  for (auto _ : st) {
    // Resident extents are always present: a miss would be a torn read.
    if (!guarded_lookup(l, (rng() % kResident) * kStride + 3, s, retries)) ++misses;
  }
  stop.store(true, std::memory_order_relaxed);
  writer.join();
  rcukit::rcu::barrier();
  if (misses != 0) st.SkipWithError("a resident extent was missed: the reader is broken");
  st.SetItemsProcessed(st.iterations());
  st.counters["retries_per_read"] = static_cast<double>(retries) / static_cast<double>(st.iterations());
  st.counters["writer_ops"] = benchmark::Counter(static_cast<double>(writes.load(std::memory_order_relaxed)),
                                                 benchmark::Counter::kIsRate);
}

BENCHMARK_TEMPLATE(BM_write, seq_leaf)->Name("BM_write/seqcount");
BENCHMARK_TEMPLATE(BM_write, cow_leaf)->Name("BM_write/cow");
BENCHMARK_TEMPLATE(BM_read, seq_leaf)->Name("BM_read/seqcount");
BENCHMARK_TEMPLATE(BM_read, cow_leaf)->Name("BM_read/cow");
BENCHMARK_TEMPLATE(BM_read_vs_writer, seq_leaf)
    ->Name("BM_read_vs_writer/seqcount")
    ->Arg(0)
    ->Arg(200000)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_read_vs_writer, cow_leaf)
    ->Name("BM_read_vs_writer/cow")
    ->Arg(0)
    ->Arg(200000)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
