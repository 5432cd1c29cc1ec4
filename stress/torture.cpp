// SPDX-License-Identifier: MIT
// rcukit-torture -- rcutorture-style torture for every rcukit structure.
//
// One binary, one torture per --structure, each for --seconds with
// --threads threads, and a --seed that is printed and replays the same
// random choices (thread interleaving is the OS's). --yield adds random
// sleeps where they widen a race window: readers sleep INSIDE their read
// sides while holding what they read (the RCU reader its object; index
// readers between lookup_rcu/find_rcu calls in one read_guard, and while
// holding a skiplist leaf view before stepping on with prev_leaf/next_leaf),
// so a grace period that ends too early, or a leaf freed under a view, hits
// them; the RCU writer sleeps between unlinking an object and waiting for
// its grace period; the other writers, the IOVA threads and the executor's
// completers sleep between operations (this spreads them out in time, it
// opens no read-side window).
//
// What each torture checks (any violation is counted, printed, and makes the
// exit status 1):
//  rcu         rcutorture's pipeline: a writer replaces the published object,
//              and every grace period after its removal ages it by one;
//              readers record the age of what they hold at the end of their
//              read side: an age of 2 or more means a grace period ended under
//              a reader (the classic RCU bug). Objects carry a magic that
//              their destructor poisons: reading a poisoned object is a read
//              of a retired object. Threads register and exit all run long.
//  skiplist,   writers own disjoint key sets and keep an exact local model
//  rbtree,     (insert/erase results must match it); readers look up stable
//  rbtree-aug  keys (never touched: must always be found with their value)
//  judy        and random keys (if found, the value must match the key);
//              scanners check order, no duplicates, stable keys present. At
//              the end: size and contents equal stable + every writer's model
//              (added = removed + present, nothing duplicated). Judy readers
//              also ask lower_equal/upper_equal at random points: exact among
//              the stable keys (no writer key lies there), and beyond them
//              never past the nearest stable key, never outside the query's
//              side, always a key with its own value.
//  iova        threads allocate and free through the domain and a magazine
//              cache; a global interval set proves no range is handed out
//              twice; at the end, after flush, the whole space is free
//              again (the index is empty, one allocation covers it all).
//  executor    jobs complete (done()) from foreign threads in random order,
//              inline, or race a throw from parallel() after a hand-off,
//              while a thread removes and re-adds callback CPUs (set_cpus,
//              remove_cpu, add_cpu); serial() must see each cb_cpu's jobs
//              in submission order, on that CPU, exactly once; a watchdog
//              reports stranded jobs instead of hanging in drain().
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "harness/report.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/judy_array.hpp"
#include "rcukit/ordered_executor.hpp"
#include "rcukit/rbtree.hpp"

ABSL_FLAG(std::string, structure, "rcu,skiplist,rbtree,rbtree-augmented,judy,iova,executor",
          "comma-separated structures to torture");
ABSL_FLAG(int, threads, 4, "threads per torture (readers and writers split between them)");
ABSL_FLAG(double, seconds, 5, "seconds per structure");
ABSL_FLAG(bool, yield, false,
          "random sleeps inside read sides while holding references (and between writer operations)");
ABSL_FLAG(uint64_t, seed, 0, "random seed (0: pick one and print it)");
ABSL_FLAG(std::string, format, "table", "output format: table, tsv or json");

namespace {

using namespace rcukit;
using clock_type = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// Shared plumbing
// ---------------------------------------------------------------------------
struct context {
  double seconds;
  int threads;
  bool yield;
  uint64_t seed;
};

struct outcome {
  uint64_t reads = 0, writes = 0, errors = 0;
  std::string detail;  // counts specific to the structure
  std::string first_error;
};

class error_log {
 public:
  void report(std::string msg) {
    if (count_.fetch_add(1, std::memory_order_relaxed) == 0) {  // relaxed: a counter
      std::lock_guard g(mu_);
      first_ = std::move(msg);
    }
  }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  std::string first() const {
    std::lock_guard g(mu_);
    return first_;
  }

 private:
  std::atomic<uint64_t> count_{0};
  mutable std::mutex mu_;
  std::string first_;
};

// --yield between operations (outside read sides): with probability 1/16
// sleep 0-50 us, else nothing.
inline void maybe_yield(const context& c, std::mt19937_64& rng) {
  if (c.yield && (rng() & 15) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
  }
}

// --yield inside a read side, while the caller holds references obtained in
// it: as maybe_yield, plus, with probability 1/1024, 1-2 ms, longer than a
// grace period here, so one that ends early ends under the sleeper.
inline void held_yield(const context& c, std::mt19937_64& rng) {
  if (!c.yield) return;
  const uint64_t r = rng();
  if ((r & 1023) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 1000));
  } else if ((r & 15) == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(rng() % 50));
  }
}

// Runs `body(t, stop)` on n threads for ctx.seconds.
template <class Body>
void run_threads(const context& ctx, int n, Body body) {
  std::atomic<bool> stop{false};  // relaxed: a stop request, no data handed over
  std::vector<std::thread> pool;
  for (int t = 0; t < n; ++t) pool.emplace_back([&, t] { body(t, stop); });
  std::this_thread::sleep_for(std::chrono::duration<double>(ctx.seconds));
  stop.store(true, std::memory_order_relaxed);
  for (auto& th : pool) th.join();
}

// ---------------------------------------------------------------------------
// rcu: rcutorture's pipeline ages
// ---------------------------------------------------------------------------
constexpr uint64_t kMagicLive = 0x7a11ab1e5eed0001;
constexpr uint64_t kMagicDead = 0xdeaddeaddeaddead;
constexpr int kPipeLen = 10;

std::atomic<int64_t> g_torture_live{0};  // relaxed counter, read after barrier()

struct torture_obj : rcu::retirable {
  torture_obj() { g_torture_live.fetch_add(1, std::memory_order_relaxed); }
  ~torture_obj() {
    magic.store(kMagicDead, std::memory_order_relaxed);  // poison: readers must never see it
    g_torture_live.fetch_sub(1, std::memory_order_relaxed);
  }
  std::atomic<uint64_t> magic{kMagicLive};  // relaxed: only ever compared
  std::atomic<int> age{0};                  // grace periods since removal; relaxed, see reader
};

outcome torture_rcu(const context& ctx) {
  error_log errs;
  std::atomic<torture_obj*> current{new torture_obj};
  std::atomic<uint64_t> reads{0}, writes{0}, churned{0};
  std::array<std::atomic<uint64_t>, kPipeLen + 1> age_hist{};
  const int readers = std::max(1, ctx.threads - 2);
  // threads: [0, readers) readers, readers = writer, readers+1 = churn
  run_threads(ctx, readers + 2, [&](int t, std::atomic<bool>& stop) {
    std::mt19937_64 rng(ctx.seed + t);
    if (t < readers) {
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        rcu::read_guard<> g;
        torture_obj* p = current.load(std::memory_order_acquire);  // pairs with the writer's exchange
        held_yield(ctx, rng);  // holding p: the checks below come after the sleep
        if (p->magic.load(std::memory_order_relaxed) != kMagicLive) {
          errs.report("reader saw a retired (poisoned) object");
        }
        // relaxed: the age only grows; reading it late can only overstate it.
        const int age = p->age.load(std::memory_order_relaxed);
        age_hist[std::min(age, kPipeLen)].fetch_add(1, std::memory_order_relaxed);
        if (age >= 2) errs.report(absl::StrCat("reader holds an object ", age, " grace periods old"));
        ++n;
      }
      reads.fetch_add(n, std::memory_order_relaxed);
    } else if (t == readers) {
      // Writer: replace, then age every removed object by one per grace period;
      // retire them when they leave the pipeline.
      std::deque<torture_obj*> pipe;
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        torture_obj* old = current.exchange(new torture_obj, std::memory_order_acq_rel);
        pipe.push_back(old);
        maybe_yield(ctx, rng);  // between the unlink and the grace period
        rcu::synchronize();
        for (torture_obj* p : pipe) p->age.fetch_add(1, std::memory_order_relaxed);
        while (!pipe.empty() && pipe.front()->age.load(std::memory_order_relaxed) >= kPipeLen) {
          rcu::retire(pipe.front());
          pipe.pop_front();
        }
        ++n;
      }
      for (torture_obj* p : pipe) rcu::retire(p);
      writes.fetch_add(n, std::memory_order_relaxed);
    } else {
      // Churn: short-lived threads register on first use and exit.
      while (!stop.load(std::memory_order_relaxed)) {
        std::thread([&] {
          rcu::read_guard<> g;
          torture_obj* p = current.load(std::memory_order_acquire);
          if (p->magic.load(std::memory_order_relaxed) != kMagicLive)
            errs.report("churn thread saw a retired object");
        }).join();
        churned.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  rcu::synchronize();
  delete current.load(std::memory_order_relaxed);
  rcu::barrier();
  if (const int64_t live = g_torture_live.load(std::memory_order_relaxed); live != 0) {
    errs.report(absl::StrCat(live, " torture objects leaked or freed twice"));
  }
  outcome o;
  o.reads = reads.load(std::memory_order_relaxed);
  o.writes = writes.load(std::memory_order_relaxed);
  o.errors = errs.count();
  o.first_error = errs.first();
  o.detail =
      absl::StrCat("grace periods ", o.writes, ", thread churn ", churned.load(std::memory_order_relaxed),
                   ", ages seen 0:", age_hist[0].load(std::memory_order_relaxed),
                   " 1:", age_hist[1].load(std::memory_order_relaxed));
  return o;
}

// ---------------------------------------------------------------------------
// Key/value tortures over a uniform adapter.
// ---------------------------------------------------------------------------
constexpr uint64_t kValueXor = 0x5bd1e9955bd1e995;
inline uint64_t value_of(uint64_t key) { return key ^ kValueXor; }

template <class Index>
struct extent_kv {
  // Extents of size 8 at key*16: gaps between them keep lookups honest.
  Index index;
  static uint64_t at(uint64_t k) { return k * 16; }
  absl::Status insert(uint64_t k) { return index.insert(extent{at(k), 8}, value_of(k)); }
  std::optional<uint64_t> find(uint64_t k) const { return checked(index.lookup(at(k) + 3), k); }
  std::optional<uint64_t> find_rcu(const rcu::read_guard<>& g, uint64_t k) const {
    return checked(index.lookup_rcu(g, at(k) + 3), k);
  }
  template <class E>
  static std::optional<uint64_t> checked(const E& e, uint64_t k) {
    if (!e) return std::nullopt;
    if (e->range.start != at(k) || e->range.size != 8) return uint64_t{~0ull};  // wrong extent: a bad value
    return e->value;
  }
  std::optional<uint64_t> erase(uint64_t k) {
    auto e = index.erase(at(k) + 5);
    if (!e) return std::nullopt;
    return e->value;
  }
  template <class F>
  void scan(uint64_t lo, uint64_t hi, F&& f) const {  // keys in [lo, hi)
    index.for_each(at(lo), at(hi), [&](const auto& e) { f(e.range.start / 16, e.value); });
  }
  size_t size() const { return index.size(); }
};

struct judy_kv {
  judy_array<uint64_t> index;
  absl::Status insert(uint64_t k) { return index.insert(k, value_of(k)); }
  std::optional<uint64_t> find(uint64_t k) const { return index.find(k); }
  std::optional<std::pair<uint64_t, uint64_t>> lower_equal(uint64_t k) const { return index.lower_equal(k); }
  std::optional<std::pair<uint64_t, uint64_t>> upper_equal(uint64_t k) const { return index.upper_equal(k); }
  std::optional<uint64_t> find_rcu(const rcu::read_guard<>& g, uint64_t k) const {
    return index.find_rcu(g, k);
  }
  std::optional<uint64_t> erase(uint64_t k) { return index.erase(k); }
  template <class F>
  void scan(uint64_t lo, uint64_t hi, F&& f) const {
    if (hi > lo) index.for_each(lo, hi - 1, f);
  }
  size_t size() const { return index.size(); }
};

constexpr uint64_t kStable = 4096;     // keys [0, kStable) never change
constexpr uint64_t kPerWriter = 8192;  // writer w owns [kStable + w*kPerWriter, ...)

// --yield: reads inside ONE read side with held_yield() between them, so the
// read side (and what it reached) is held across sleeps: lookups of stable
// and random keys; for the skiplist also a walk from the last leaf (the
// writers' keys) down with prev_leaf and back up with next_leaf, sleeping
// while holding each view before stepping from it. Each step must stay
// strictly ordered and every entry must carry its key's value.
template <class KV>
void held_reads(const context& ctx, std::mt19937_64& rng, const KV& kv, uint64_t key_space, error_log& errs) {
  rcu::read_guard<> g;
  for (int i = 0; i < 4; ++i) {
    const uint64_t stable = (rng() % (kStable / 2)) * 2;
    if (auto v = kv.find_rcu(g, stable); !v || *v != value_of(stable))
      errs.report(absl::StrCat("stable key ", stable, " not found intact inside a held read side"));
    held_yield(ctx, rng);
    const uint64_t any = rng() % key_space;
    if (auto w = kv.find_rcu(g, any); w && *w != value_of(any))
      errs.report(absl::StrCat("key ", any, " found with a wrong value inside a held read side"));
    held_yield(ctx, rng);
  }
  if constexpr (requires { kv.index.last_leaf(g); }) {
    auto check = [&](const auto& view, bool down, std::optional<uint64_t>& bound) {
      for (size_t j = 0; j < view.size(); ++j) {
        const auto e = view.at(down ? view.size() - 1 - j : j);
        if (bound && (down ? e.range.start >= *bound : e.range.start <= *bound))
          errs.report("leaf walk from a held view out of order or repeated");
        if (e.range.size != 8 || e.range.start % 16 != 0 || e.value != value_of(e.range.start / 16))
          errs.report("leaf walk from a held view saw a wrong entry");
        bound = e.range.start;
      }
    };
    std::optional<uint64_t> low;  // lowest start seen walking down
    auto view = kv.index.last_leaf(g);
    check(view, true, low);
    int steps = 0;
    for (; view && steps < 4; ++steps) {
      held_yield(ctx, rng);  // holding the view: prev_leaf must not follow a freed leaf
      auto below = kv.index.prev_leaf(g, view);
      if (!below) break;
      check(below, true, low);
      view = below;
    }
    std::optional<uint64_t> high;  // highest start seen walking back up
    if (view) check(view, false, high);
    for (int up = 0; view && up < steps; ++up) {
      held_yield(ctx, rng);  // holding the view: next_leaf follows the next pointer it copied
      view = kv.index.next_leaf(g, view);
      if (view) check(view, false, high);
    }
  }
}

template <class KV>
outcome torture_kv(const context& ctx) {
  error_log errs;
  auto kv = std::make_unique<KV>();
  for (uint64_t k = 0; k < kStable; k += 2) {
    if (!kv->insert(k).ok()) errs.report("setup insert failed");
  }
  const int writers = std::max(1, ctx.threads / 2);
  const int readers = std::max(1, ctx.threads - writers);
  std::vector<std::set<uint64_t>> models(writers);
  std::atomic<uint64_t> reads{0}, writes{0}, scans{0}, bounds{0}, held{0};

  run_threads(ctx, writers + readers, [&](int t, std::atomic<bool>& stop) {
    std::mt19937_64 rng(ctx.seed + 1000 + t);
    if (t < writers) {
      auto& model = models[t];
      const uint64_t base = kStable + t * kPerWriter;
      uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t k = base + rng() % kPerWriter;
        maybe_yield(ctx, rng);
        if (rng() & 1) {
          const absl::Status s = kv->insert(k);
          const bool present = model.count(k) != 0;
          if (s.ok() == present || (!s.ok() && !absl::IsAlreadyExists(s))) {
            errs.report(absl::StrCat("insert(", k, ") returned ", s.ToString(), " with key ",
                                     present ? "present" : "absent"));
          }
          model.insert(k);
        } else {
          auto v = kv->erase(k);
          const bool present = model.erase(k) != 0;
          if (v.has_value() != present || (v && *v != value_of(k))) {
            errs.report(absl::StrCat("erase(", k, ") disagrees with the writer's model"));
          }
        }
        ++n;
      }
      writes.fetch_add(n, std::memory_order_relaxed);
    } else {
      const uint64_t key_space = kStable + writers * kPerWriter;
      uint64_t n = 0, s = 0, b = 0, h = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        const uint64_t stable = (rng() % (kStable / 2)) * 2;
        if (ctx.yield && (rng() & 3) == 0) {
          held_reads(ctx, rng, *kv, key_space, errs);
          ++h;
        }
        auto v = kv->find(stable);
        if (!v || *v != value_of(stable))
          errs.report(absl::StrCat("stable key ", stable, " not found intact"));
        const uint64_t any = rng() % key_space;
        if (auto w = kv->find(any); w && *w != value_of(any)) {
          errs.report(absl::StrCat("key ", any, " found with a wrong value"));
        }
        n += 2;
        if constexpr (requires(const KV& x) { x.lower_equal(uint64_t{}); }) {
          // Bound queries. Stable keys are the even keys below kStable and
          // no writer key lies there, so below kStable the answer is exact;
          // above, it lies between the query and the nearest stable key
          // (none for upper_equal), and holds its own value.
          const uint64_t q = rng() % (key_space + 64);
          maybe_yield(ctx, rng);
          const auto le = kv->lower_equal(q);
          const uint64_t floor = q < kStable ? (q & ~uint64_t{1}) : kStable - 2;
          if (!le || le->first > q || le->first < floor || le->second != value_of(le->first) ||
              (q < kStable && le->first != floor)) {
            errs.report(absl::StrCat("lower_equal(", q, ") returned ", le ? absl::StrCat(le->first) : "none",
                                     ", the stable floor is ", floor));
          }
          const auto ue = kv->upper_equal(q);
          const uint64_t ceil = (q + 1) & ~uint64_t{1};  // the least even key >= q
          if (q < kStable - 1) {
            if (!ue || ue->first != ceil || ue->second != value_of(ceil)) {
              errs.report(absl::StrCat("upper_equal(", q, ") returned ",
                                       ue ? absl::StrCat(ue->first) : "none", ", the stable ceiling is ",
                                       ceil));
            }
          } else if (ue && (ue->first < q || ue->second != value_of(ue->first))) {
            errs.report(absl::StrCat("upper_equal(", q, ") returned ", ue->first, " (wrong side or value)"));
          }
          b += 2;
        }
        if ((rng() & 63) == 0) {  // scan a window: sorted, no duplicates, stable keys all there
          const uint64_t lo = rng() % key_space;
          const uint64_t hi = std::min(key_space, lo + 512);
          std::optional<uint64_t> prev;
          uint64_t stable_seen = 0;
          kv->scan(lo, hi, [&](uint64_t k, uint64_t val) {
            if (prev && k <= *prev) errs.report("scan out of order or duplicated");
            if (val != value_of(k)) errs.report("scan saw a wrong value");
            if (k < kStable) ++stable_seen;
            prev = k;
          });
          uint64_t stable_expected = 0;
          for (uint64_t k = lo; k < std::min(hi, kStable); ++k) stable_expected += (k % 2 == 0);
          if (stable_seen != stable_expected) errs.report("scan missed a stable key");
          ++s;
        }
      }
      reads.fetch_add(n, std::memory_order_relaxed);
      scans.fetch_add(s, std::memory_order_relaxed);
      bounds.fetch_add(b, std::memory_order_relaxed);
      held.fetch_add(h, std::memory_order_relaxed);
    }
  });

  // Final accounting: contents == stable + every model, exactly.
  size_t expected = kStable / 2;
  for (auto& m : models) expected += m.size();
  if (kv->size() != expected) errs.report(absl::StrCat("size ", kv->size(), " != expected ", expected));
  for (int w = 0; w < writers; ++w) {
    for (uint64_t k : models[w]) {
      if (kv->find(k) != value_of(k)) errs.report(absl::StrCat("key ", k, " lost"));
    }
  }
  kv.reset();
  rcu::barrier();
  outcome o;
  o.reads = reads.load(std::memory_order_relaxed);
  o.writes = writes.load(std::memory_order_relaxed);
  o.errors = errs.count();
  o.first_error = errs.first();
  o.detail = absl::StrCat("final size ", expected, ", scans ", scans.load(std::memory_order_relaxed),
                          ", held read sides ", held.load(std::memory_order_relaxed));
  if (bounds.load(std::memory_order_relaxed) != 0) {
    absl::StrAppend(&o.detail, ", bound queries ", bounds.load(std::memory_order_relaxed));
  }
  return o;
}

// ---------------------------------------------------------------------------
// iova: no range handed out twice; everything free at the end
// ---------------------------------------------------------------------------
outcome torture_iova(const context& ctx) {
  error_log errs;
  using domain = iova_domain<extent_skiplist<uint64_t>>;
  constexpr uint64_t kEnd = uint64_t{1} << 24;
  constexpr uint64_t k32BitLimit = (uint64_t{1} << 32) / 4096 - 1;  // last pfn below 4 GiB
  auto d = std::make_unique<domain>(4096, 1, kEnd);
  auto cache = std::make_unique<iova_magazine_cache<domain>>(*d);
  std::mutex mu;
  std::map<uint64_t, uint64_t> live;  // pfn_lo -> end, guarded by mu
  std::atomic<uint64_t> allocs{0}, frees{0};
  auto claim = [&](uint64_t lo, uint64_t n) {
    std::lock_guard g(mu);
    auto it = live.upper_bound(lo);
    if ((it != live.begin() && std::prev(it)->second > lo) || (it != live.end() && it->first < lo + n)) {
      errs.report(absl::StrCat("range [", lo, ", +", n, ") handed out twice"));
      return;
    }
    live.emplace(lo, lo + n);
  };
  auto unclaim = [&](uint64_t lo) {
    std::lock_guard g(mu);
    live.erase(lo);
  };
  run_threads(ctx, ctx.threads, [&](int t, std::atomic<bool>& stop) {
    std::mt19937_64 rng(ctx.seed + 2000 + t);
    std::vector<std::pair<uint64_t, uint64_t>> mine;  // (pfn, npages) this thread holds
    std::vector<bool> via_cache;                      // parallel to mine: allocated through the cache
    uint64_t a = 0, f = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      maybe_yield(ctx, rng);
      if (mine.size() < 64 && (mine.empty() || (rng() & 1))) {
        const uint64_t n = uint64_t{1} << (rng() % 7);  // 1..64 pages: in and above the cache classes
        const bool use_cache = rng() & 1;
        const uint64_t limit = (rng() & 1) ? k32BitLimit : kEnd - 1;
        auto r = use_cache ? cache->alloc(n, limit) : d->alloc(n, limit, true);
        if (!r.ok()) {
          if (!absl::IsResourceExhausted(r.status())) errs.report(r.status().ToString());
          continue;
        }
        if (*r + n - 1 > limit) errs.report("allocation above limit_pfn");
        claim(*r, n);
        mine.emplace_back(*r, n);
        via_cache.push_back(use_cache);
        ++a;
      } else {
        const size_t i = rng() % mine.size();
        auto [lo, n] = mine[i];
        if (!d->find(lo)) errs.report(absl::StrCat("live allocation at ", lo, " not found"));
        unclaim(lo);
        if (via_cache[i]) {
          if (auto s = cache->free(lo, n); !s.ok()) errs.report(absl::StrCat("cache free(", lo, "): ", s.ToString()));
        } else if (auto s = d->free(lo); !s.ok()) {
          errs.report(absl::StrCat("free(", lo, "): ", s.ToString()));
        }
        mine[i] = mine.back();
        mine.pop_back();
        via_cache[i] = via_cache.back();
        via_cache.pop_back();
        ++f;
      }
    }
    for (size_t i = 0; i < mine.size(); ++i) {
      unclaim(mine[i].first);
      if (via_cache[i]) {
        if (auto s = cache->free(mine[i].first, mine[i].second); !s.ok()) {
          errs.report(absl::StrCat("cache free(", mine[i].first, "): ", s.ToString()));
        }
      } else {
        (void)d->free(mine[i].first);
      }
      ++f;
    }
    allocs.fetch_add(a, std::memory_order_relaxed);
    frees.fetch_add(f, std::memory_order_relaxed);
  });
  cache->flush();
  // Everything is free again, the whole space [1, kEnd), not just part of it:
  // the index holds nothing, and one allocation of every usable page
  // succeeds (a range leaked anywhere, below 4 GiB too, makes it fail).
  if (!d->index().empty()) {
    errs.report(absl::StrCat("after flush ", d->index().size(), " ranges are still allocated"));
  }
  auto whole = d->alloc(kEnd - 1, kEnd - 1, false);
  if (!whole.ok()) {
    errs.report("after flush the space is not whole again: " + whole.status().ToString());
  } else if (*whole != 1) {
    errs.report(absl::StrCat("after flush the whole space was allocated at ", *whole, ", not at 1"));
  }
  cache.reset();
  d.reset();
  rcu::barrier();
  outcome o;
  o.writes = allocs.load(std::memory_order_relaxed) + frees.load(std::memory_order_relaxed);
  o.errors = errs.count();
  o.first_error = errs.first();
  o.detail = absl::StrCat("allocs ", allocs.load(std::memory_order_relaxed), ", frees ",
                          frees.load(std::memory_order_relaxed));
  return o;
}

// ---------------------------------------------------------------------------
// executor: order per callback CPU and exactly-once while callback CPUs are
// removed and re-added, done() comes from foreign threads in random order,
// and some parallel() halves throw right after handing their job off.
// ---------------------------------------------------------------------------
struct exec_torture;

struct torture_job final : ordered_job {
  enum mode_t { kCompleter, kInline, kHandOffThenThrow };
  uint64_t index = 0;
  int cb_cpu = 0;
  mode_t mode = kCompleter;
  exec_torture* t = nullptr;
  std::atomic<int> serial_runs{0};  // relaxed: single writer per run; read after drain()
  void parallel() override;
  void serial() override;
};

struct exec_torture {
  // Liveness bound: jobs outstanding and no job making any step for this
  // long is a stranded job (a generous bound; a correct executor moves in
  // microseconds). The executor cannot be torn down then, so the torture
  // reports and exits.
  static constexpr std::chrono::seconds kStall{20};

  error_log errs;
  std::mutex mu;
  std::deque<torture_job*> pending_done;  // guarded by mu: parked jobs; completers call done()
  std::mutex serial_mu;
  std::map<int, uint64_t> last_index;             // guarded by serial_mu: per cb_cpu, last index serialized
  std::atomic<uint64_t> submitted{0};             // relaxed counters below; read with the happens-before
  std::atomic<uint64_t> serialized{0};            // of drain() or of the joins, or as "did anything move"
  std::atomic<uint64_t> handed{0}, hand_done{0};  // jobs parked for a completer / their done() returned
  std::atomic<uint64_t> steps{0};                 // any step of any job: the watchdog's progress signal

  void park(torture_job& j) {
    handed.fetch_add(1, std::memory_order_relaxed);  // relaxed: see hand_done
    std::lock_guard g(mu);
    pending_done.push_back(&j);
  }
  // Returns once every parked job's done() has returned (a late done()
  // after a throw still touches its job, which the caller then frees).
  void wait_hand_offs() {
    // acquire: pairs with the completers' release increments of hand_done.
    while (hand_done.load(std::memory_order_acquire) != handed.load(std::memory_order_relaxed)) {
      std::this_thread::yield();
    }
  }
};

void torture_job::parallel() {
  t->steps.fetch_add(1, std::memory_order_relaxed);
  switch (mode) {
    case kCompleter:
      t->park(*this);
      return;
    case kInline:
      done();
      return;
    case kHandOffThenThrow:
      t->park(*this);  // the completer's done() races with the throw: exactly one completes the job
      throw std::runtime_error("torture: parallel() throws after handing its job off");
  }
}

void torture_job::serial() {
  t->steps.fetch_add(1, std::memory_order_relaxed);
  if (serial_runs.fetch_add(1, std::memory_order_relaxed) != 0) {
    t->errs.report(absl::StrCat("serial() ran twice for job ", index));
    return;
  }
  if (sched_getcpu() != cb_cpu) t->errs.report("serial() ran off its cb_cpu");
  {
    std::lock_guard g(t->serial_mu);
    auto [it, fresh] = t->last_index.try_emplace(cb_cpu, index);
    if (!fresh) {
      if (index <= it->second) {
        t->errs.report(absl::StrCat("serial() out of submission order on cpu ", cb_cpu, ": job ", index,
                                    " after job ", it->second));
      }
      it->second = index;
    }
  }
  t->serialized.fetch_add(1, std::memory_order_relaxed);
}

outcome torture_executor(const context& ctx) {
  exec_torture t;
  const cpu_set all = cpu_set::all();
  const std::vector<int> cpus = all.ids();
  ordered_executor ex(all);
  std::deque<std::unique_ptr<torture_job>> jobs;
  std::atomic<bool> stop{false};        // relaxed: a stop request (changer); the joins order the rest
  std::atomic<bool> stop_watch{false};  // relaxed: the same, for the watchdog

  // Watchdog: a stranded job makes drain() wait forever; report it instead.
  std::thread watchdog([&] {
    uint64_t last = UINT64_MAX;
    auto since = clock_type::now();
    while (!stop_watch.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      const uint64_t now_steps = t.steps.load(std::memory_order_relaxed);
      const uint64_t sub = t.submitted.load(std::memory_order_relaxed);
      const uint64_t ser = t.serialized.load(std::memory_order_relaxed);
      const uint64_t out = sub > ser ? sub - ser : 0;
      if (out == 0 || now_steps != last) {
        last = now_steps;
        since = clock_type::now();
      } else if (clock_type::now() - since > exec_torture::kStall) {
        std::cerr << "torture executor: no job made progress for " << exec_torture::kStall.count()
                  << " s with " << out
                  << " jobs submitted but never serialized (stranded jobs; the executor cannot be torn "
                  << "down): FAILED\n";
        std::_Exit(1);
      }
    }
  });

  std::atomic<bool> stop_completers{false};  // relaxed: a stop request, joined afterwards
  std::vector<std::thread> completers;
  for (int c = 0; c < 2; ++c) {
    completers.emplace_back([&, c] {
      std::mt19937_64 rng(ctx.seed + 3000 + c);
      while (!stop_completers.load(std::memory_order_relaxed)) {
        torture_job* j = nullptr;
        {
          std::lock_guard g(t.mu);
          if (!t.pending_done.empty()) {
            const size_t i = rng() % t.pending_done.size();  // complete in random order
            j = t.pending_done[i];
            t.pending_done.erase(t.pending_done.begin() + static_cast<std::ptrdiff_t>(i));
          }
        }
        if (j) {
          maybe_yield(ctx, rng);
          j->done();
          t.steps.fetch_add(1, std::memory_order_relaxed);
          t.hand_done.fetch_add(1, std::memory_order_release);  // pairs with wait_hand_offs()
        } else {
          std::this_thread::yield();
        }
      }
    });
  }

  // Callback CPUs come and go while jobs are in flight: set_cpus to a random
  // non-empty subset, remove_cpu and add_cpu of random CPUs. A removed CPU
  // keeps serving the jobs already submitted with it (API.md).
  std::atomic<uint64_t> cpu_changes{0};
  std::thread changer([&] {
    std::mt19937_64 rng(ctx.seed + 5000);
    while (!stop.load(std::memory_order_relaxed)) {
      const int c = cpus[rng() % cpus.size()];
      absl::Status st;
      switch (rng() % 3) {
        case 0: {
          cpu_set s;
          for (int x : cpus) {
            if (rng() & 1) s.insert(x);
          }
          if (s.empty()) s.insert(c);
          st = ex.set_cpus(s);
          break;
        }
        case 1:
          st = ex.remove_cpu(c);  // refused if c is the last CPU or not in the set
          break;
        default:
          st = ex.add_cpu(c);
          break;
      }
      if (st.ok()) {
        cpu_changes.fetch_add(1, std::memory_order_relaxed);
      } else if (!absl::IsInvalidArgument(st)) {
        t.errs.report("cpu-set change: " + st.ToString());
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50 + rng() % 200));
    }
  });

  std::mt19937_64 rng(ctx.seed + 4000);
  const auto end = clock_type::now() + std::chrono::duration_cast<clock_type::duration>(
                                           std::chrono::duration<double>(ctx.seconds));
  uint64_t refused = 0, throwing = 0;
  std::set<int> cb_used;
  std::vector<int> now = ex.cpus().ids();
  auto check_batch = [&] {  // after drain(): every job serialized exactly once
    for (auto& j : jobs) {
      if (const int runs = j->serial_runs.load(std::memory_order_relaxed); runs != 1) {
        t.errs.report(absl::StrCat("job ", j->index, ": serial() ran ", runs, " times"));
      }
    }
  };
  for (uint64_t index = 0; clock_type::now() < end; ++index) {
    auto j = std::make_unique<torture_job>();
    j->index = index;
    j->t = &t;
    const uint64_t r = rng() % 8;
    j->mode = r < 5 ? torture_job::kCompleter : r < 7 ? torture_job::kInline : torture_job::kHandOffThenThrow;
    if ((index & 63) == 0) now = ex.cpus().ids();
    absl::Status s;
    for (;;) {
      j->cb_cpu = now[rng() % now.size()];
      s = ex.submit(*j, j->cb_cpu);
      if (!absl::IsInvalidArgument(s)) break;
      ++refused;  // the callback CPU was removed meanwhile: pick again from the current set
      now = ex.cpus().ids();
    }
    if (!s.ok()) {
      t.errs.report("submit: " + s.ToString());
      break;
    }
    t.submitted.fetch_add(1, std::memory_order_relaxed);
    t.steps.fetch_add(1, std::memory_order_relaxed);
    throwing += j->mode == torture_job::kHandOffThenThrow;
    cb_used.insert(j->cb_cpu);
    jobs.push_back(std::move(j));
    if (jobs.size() > 4096) {
      ex.drain();
      t.wait_hand_offs();
      check_batch();
      jobs.clear();
    }
  }
  stop.store(true, std::memory_order_relaxed);
  changer.join();
  ex.drain();
  t.wait_hand_offs();
  check_batch();
  stop_completers.store(true, std::memory_order_relaxed);
  for (auto& c : completers) c.join();
  stop_watch.store(true, std::memory_order_relaxed);
  watchdog.join();
  const uint64_t submitted = t.submitted.load(std::memory_order_relaxed);
  if (t.serialized.load(std::memory_order_relaxed) != submitted) {
    t.errs.report(
        absl::StrCat("serialized ", t.serialized.load(std::memory_order_relaxed), " of ", submitted));
  }
  // A worker counts a throw after the job may already have been serialized
  // elsewhere (drain() does not wait for it): give the count a liveness bound.
  const auto counted_by = clock_type::now() + exec_torture::kStall;
  while (ex.parallel_errors() < throwing && clock_type::now() < counted_by) std::this_thread::yield();
  if (ex.parallel_errors() != throwing) {
    t.errs.report(absl::StrCat("parallel_errors() ", ex.parallel_errors(), " != ", throwing, " throws"));
  }
  if (ex.duplicate_dones() != 0) t.errs.report("a late done() after a throw was counted as a second done()");
  if (cpus.size() > 1 && cb_used.size() < 2) t.errs.report("only one callback CPU was used");
  outcome o;
  o.writes = submitted;
  o.errors = t.errs.count();
  o.first_error = t.errs.first();
  o.detail = absl::StrCat("jobs ", submitted, ", callback cpus ", cb_used.size(), ", cpu-set changes ",
                          cpu_changes.load(std::memory_order_relaxed), ", refused submits ", refused,
                          ", throwing parallel() ", throwing);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  auto fmt = harness::parse_command_line(
      argc, argv,
      "rcutorture-style torture for rcukit structures.\n"
      "Example: rcukit-torture --structure rcu,skiplist --threads 4 --seconds 30 --yield",
      FLAGS_format);
  if (!fmt.ok()) return harness::fail(fmt.status().message());
  const std::vector<std::string> all = {"rcu",  "skiplist", "rbtree",  "rbtree-augmented",
                                        "judy", "iova",     "executor"};
  auto chosen = harness::parse_name_list(absl::GetFlag(FLAGS_structure), all);
  if (!chosen.ok()) return harness::fail(absl::StrCat("--structure: ", chosen.status().message()));
  context ctx{absl::GetFlag(FLAGS_seconds), absl::GetFlag(FLAGS_threads), absl::GetFlag(FLAGS_yield),
              absl::GetFlag(FLAGS_seed)};
  if (ctx.seconds <= 0 || ctx.threads < 2) return harness::fail("--seconds must be > 0 and --threads >= 2");
  if (ctx.seed == 0) ctx.seed = std::random_device{}() | 1;
  std::cerr << "rcukit-torture: seed " << ctx.seed << " (replay with --seed " << ctx.seed << ")\n";

  harness::table out(absl::StrCat("rcukit-torture: ", ctx.threads, " threads, ", ctx.seconds,
                                  " s each, seed ", ctx.seed, ctx.yield ? ", --yield" : ""),
                     {{"structure", "Structure", false},
                      {"reads", "Reads"},
                      {"writes", "Writes"},
                      {"errors", "Errors"},
                      {"detail", "Detail", false}});
  harness::progress prog("torture");
  uint64_t errors = 0;
  for (const std::string& s : *chosen) {
    prog.update(s);
    outcome o;
    if (s == "rcu") o = torture_rcu(ctx);
    if (s == "skiplist") o = torture_kv<extent_kv<extent_skiplist<uint64_t>>>(ctx);
    if (s == "rbtree") o = torture_kv<extent_kv<rbtree_extent_map<uint64_t>>>(ctx);
    if (s == "rbtree-augmented") o = torture_kv<extent_kv<rbtree_extent_map_augmented<uint64_t>>>(ctx);
    if (s == "judy") o = torture_kv<judy_kv>(ctx);
    if (s == "iova") o = torture_iova(ctx);
    if (s == "executor") o = torture_executor(ctx);
    if (o.errors)
      std::cerr << "torture " << s << ": " << o.errors << " errors; first: " << o.first_error << "\n";
    errors += o.errors;
    out.add_row({s, std::to_string(o.reads), std::to_string(o.writes), std::to_string(o.errors), o.detail});
  }
  prog.done(errors ? "ERRORS" : "clean");
  out.print(*fmt, std::cout);
  return errors ? 1 : 0;
}
