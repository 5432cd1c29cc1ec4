// Concurrent tests of <rcukit/judy_array.hpp> (label: concurrent; each test
// runs for RCUKIT_TEST_SECONDS, default 1 s; the tsan preset runs them).
//
// What can fail here: a reader missing a key that is present for the whole
// run (a rebuilt node published before it was complete, a child lost in a
// copy-on-write race between two writers, a dead node modified after its
// replacement was published); a reader seeing keys out of order or twice in
// for_each; a writer's own operation returning a result its private model
// contradicts (each writer owns its keys, so its results are deterministic);
// the final contents, size() or memory_bytes() not exact after the threads
// join; nodes leaked or freed while still reachable (ASan/TSan builds and
// the live-allocation counter after rcu::barrier()).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "rcukit/judy_array.hpp"

namespace {

namespace rcu = rcukit::rcu;
using rcukit::judy_array;
using alloc = rcukit::detail::judy_alloc;
using clock_type = std::chrono::steady_clock;

constexpr std::uint64_t kMax = ~std::uint64_t{0};

double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

std::uint64_t mix(std::uint64_t x) {  // splitmix64 finalizer: a bijection
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// Key layouts. Class c in {0 = stable, 1.. = writer c-1}; `ways` classes.
// dense: consecutive multiples share bottom nodes with the other classes
// (maximal lock and rebuild conflicts); sparse: random 64-bit keys (disjoint
// subtrees mostly); the class is in the low bits so sets never overlap.
struct layout {
  unsigned ways;
  std::uint64_t dense_span;  // dense keys i in [0, dense_span)
  std::uint64_t key(unsigned cls, std::uint64_t i, bool sparse) const {
    if (sparse) return (mix(i * 131 + cls) & ~std::uint64_t{7}) | cls;
    return i * ways + cls;
  }
};

struct error_log {
  std::atomic<long> count{0};  // relaxed: read after join
  std::string first;           // written only by the thread that bumped count 0 -> 1
};
struct run_result {
  error_log reader_errors;
  error_log writer_errors;
  std::atomic<long> reads{0};
};

void run(unsigned writers, unsigned readers, layout lay, std::uint64_t sparse_per_class) {
  judy_array<std::uint64_t> a;
  // Stable keys (class 0): present for the whole run.
  std::vector<std::uint64_t> stable;
  for (std::uint64_t i = 0; i < lay.dense_span; ++i) stable.push_back(lay.key(0, i, false));
  for (std::uint64_t i = 0; i < sparse_per_class; ++i) stable.push_back(lay.key(0, i, true));
  for (std::uint64_t k : stable) ASSERT_TRUE(a.insert(k, ~k).ok());
  std::map<std::uint64_t, std::uint64_t> stable_sorted;
  for (std::uint64_t k : stable) stable_sorted[k] = ~k;

  run_result res;
  std::atomic<bool> stop{false};
  std::vector<std::map<std::uint64_t, std::uint64_t>> models(writers);
  auto report = [](error_log& log, std::string what) {
    if (log.count.fetch_add(1, std::memory_order_relaxed) == 0) log.first = std::move(what);
  };

  std::vector<std::thread> threads;
  for (unsigned w = 0; w < writers; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(1000 + w);
      std::map<std::uint64_t, std::uint64_t>& m = models[w];
      const unsigned cls = w + 1;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
        const bool sparse = rng() % 2 == 0;
        const std::uint64_t i = sparse ? rng() % (sparse_per_class + 1) : rng() % lay.dense_span;
        const std::uint64_t k = lay.key(cls, i, sparse);
        const std::uint64_t v = rng();
        const unsigned op = static_cast<unsigned>(rng() % 4);
        if (op == 0) {
          const absl::Status s = a.insert(k, v);
          const bool fresh = m.emplace(k, v).second;
          if (s.ok() != fresh) report(res.writer_errors, "insert result disagrees with the writer's model");
        } else if (op == 1) {
          const bool fresh = m.find(k) == m.end();
          m[k] = v;
          if (a.insert_or_assign(k, v) != fresh) report(res.writer_errors, "insert_or_assign result wrong");
        } else if (op == 2) {
          auto it = m.find(k);
          const std::optional<std::uint64_t> e = a.erase(k);
          if (e.has_value() != (it != m.end()) || (e && *e != it->second)) {
            report(res.writer_errors, "erase result wrong");
          }
          if (it != m.end()) m.erase(it);
        } else {
          auto it = m.find(k);
          const std::optional<std::uint64_t> f = a.find(k);
          if (f.has_value() != (it != m.end()) || (f && *f != it->second)) {
            report(res.writer_errors, "writer's find of its own key wrong");
          }
        }
      }
    });
  }
  for (unsigned r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(77 + r);
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
        const std::uint64_t k = stable[rng() % stable.size()];
        const unsigned op = static_cast<unsigned>(rng() % 64);
        if (op < 40) {
          const std::optional<std::uint64_t> f = a.find(k);
          if (!f || *f != ~k) report(res.reader_errors, "stable key not found by find " + std::to_string(k));
        } else if (op < 51) {
          auto le = a.lower_equal(k);
          if (!le || le->first != k || le->second != ~k)
            report(res.reader_errors, "lower_equal missed a stable key");
        } else if (op < 62) {
          auto ue = a.upper_equal(k);
          if (!ue || ue->first != k || ue->second != ~k)
            report(res.reader_errors, "upper_equal missed a stable key");
        } else {
          // Ordered walk over a window: strictly ascending, every stable key
          // of the window visited with its value.
          const std::uint64_t lo = k, hi = (op == 63) ? kMax : k + 4096 * lay.ways;
          auto it = stable_sorted.lower_bound(lo);
          std::uint64_t prev = 0;
          bool first = true, ok = true;
          a.for_each(lo, hi, [&](std::uint64_t kk, std::uint64_t vv) {
            if (!first && kk <= prev) ok = false;
            if (kk < lo || kk > hi) ok = false;
            first = false;
            prev = kk;
            while (it != stable_sorted.end() && it->first < kk) {
              ok = false;  // a stable key was skipped
              ++it;
            }
            if (it != stable_sorted.end() && it->first == kk) {
              if (vv != it->second) ok = false;
              ++it;
            }
          });
          if (it != stable_sorted.end() && it->first <= hi) ok = false;
          if (!ok) report(res.reader_errors, "for_each out of order, out of range or missing a stable key");
        }
        ++n;
      }
      res.reads.fetch_add(n, std::memory_order_relaxed);  // read after join
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();

  EXPECT_EQ(res.reader_errors.count.load(), 0) << res.reader_errors.first;
  EXPECT_EQ(res.writer_errors.count.load(), 0) << res.writer_errors.first;
  EXPECT_GT(res.reads.load(), 0);
  // Exact final accounting.
  std::map<std::uint64_t, std::uint64_t> want = stable_sorted;
  for (const auto& m : models) want.insert(m.begin(), m.end());
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  ASSERT_EQ(a.size(), want.size());
  auto it = want.begin();
  std::size_t seen = 0;
  bool same = true;
  a.for_each(0, kMax, [&](std::uint64_t k, std::uint64_t v) {
    if (it == want.end() || it->first != k || it->second != v) same = false;
    if (it != want.end()) ++it;
    ++seen;
  });
  EXPECT_TRUE(same);
  EXPECT_EQ(seen, want.size());
  for (const auto& kv : want) ASSERT_EQ(a.erase(kv.first), kv.second);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.memory_bytes(), 0u);
}

class JudyConcurrent : public ::testing::Test {
 protected:
  void TearDown() override {
    rcu::barrier();
    EXPECT_EQ(alloc::live.load(std::memory_order_relaxed), 0) << "nodes or leaves leaked or freed twice";
  }
};

// Two writers on disjoint key sets (dense ones interleaved with each other
// and with the stable keys, sparse ones spread over the whole key range) and
// two readers of stable keys.
TEST_F(JudyConcurrent, DisjointWritersStableReaders) { run(2, 2, layout{3, 20000}, 20000); }

// The same with all classes packed into a few bottom nodes: every writer
// operation rebuilds or changes the class of a node shared with the other
// writer and with the stable keys (lin/pool/pigeon transitions under races).
TEST_F(JudyConcurrent, WritersFightOverTheSameNodes) { run(2, 2, layout{4, 200}, 0); }

// Many writers (oversubscribed on 2 cores: lock-holder preemption) and one reader.
TEST_F(JudyConcurrent, OversubscribedWriters) { run(6, 1, layout{7, 3000}, 3000); }

}  // namespace
