// SPDX-License-Identifier: MIT
// Concurrent tests of <rcukit/judy_array.hpp> (label: concurrent; each test
// runs for RCUKIT_TEST_SECONDS, default 1 s; the tsan preset runs them).
//
// What can fail here: a reader missing a key that is present for the whole
// run (a rebuilt node published before it was complete, a child lost in a
// copy-on-write race between two writers, a dead node modified after its
// replacement was published); a bound query at an absent key answering
// beyond the nearest stable key, outside its range, or with a value that
// does not belong to the key it returns; a bound query returning a key
// whose presence implied a nearer one that it skipped (a walk combining
// slots read at different times); a reader seeing keys out of order or
// twice in for_each; a writer's own operation returning a result its private model
// contradicts (each writer owns its keys, so its results are deterministic);
// the final contents, size() or node_bytes() not exact after the threads
// join; nodes leaked or freed while still reachable (ASan/TSan builds and
// the live-allocation counter after rcu::barrier()).
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
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

// Writers' values carry a 32-bit tag of their key in the high half (the low
// half is random), so a reader can tell that a (key, value) pair it got for
// a key it does not track was written for that key. Stable keys hold ~key.
std::uint64_t tagged_value(std::uint64_t key, std::uint64_t r) {
  return (mix(key) & 0xffffffff00000000ull) | (r & 0xffffffffull);
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
        const std::uint64_t v = tagged_value(k, rng());
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
  // A (key, value) pair a reader may see: a stable key with ~key, or a
  // writer's key with a value tagged for it.
  auto pair_ok = [&](std::uint64_t k, std::uint64_t v) {
    return stable_sorted.count(k) != 0 ? v == ~k : v >> 32 == mix(k) >> 32;
  };
  for (unsigned r = 0; r < readers; ++r) {
    threads.emplace_back([&, r] {
      std::mt19937_64 rng(77 + r);
      long n = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
        const std::uint64_t k = stable[rng() % stable.size()];
        const unsigned op = static_cast<unsigned>(rng() % 64);
        // Bound queries at arbitrary points too (mostly absent keys, near a
        // stable key or anywhere): the nearest stable key on the query's
        // side bounds the answer, since stable keys are never removed.
        std::uint64_t q = k;
        if (op >= 44 && op < 62) {
          const std::uint64_t d = 1 + rng() % (8 * lay.ways);
          q = rng() % 8 == 0 ? rng() : (rng() % 2 ? k + d : k - d);
        }
        if (op < 32) {
          const std::optional<std::uint64_t> f = a.find(k);
          if (!f || *f != ~k) report(res.reader_errors, "stable key not found by find " + std::to_string(k));
        } else if (op < 38) {
          auto le = a.lower_equal(k);
          if (!le || le->first != k || le->second != ~k)
            report(res.reader_errors, "lower_equal missed a stable key");
        } else if (op < 44) {
          auto ue = a.upper_equal(k);
          if (!ue || ue->first != k || ue->second != ~k)
            report(res.reader_errors, "upper_equal missed a stable key");
        } else if (op < 53) {
          // lower_equal(q): in [greatest stable key <= q, q], or none only
          // when no stable key is <= q; a pair written for its key.
          auto le = a.lower_equal(q);
          auto it = stable_sorted.upper_bound(q);
          const bool has_floor = it != stable_sorted.begin();
          const std::uint64_t floor = has_floor ? std::prev(it)->first : 0;
          if (le ? (le->first > q || (has_floor && le->first < floor) || !pair_ok(le->first, le->second))
                 : has_floor) {
            report(res.reader_errors, "lower_equal(" + std::to_string(q) + ") answered " +
                                          (le ? std::to_string(le->first) : std::string("none")) +
                                          " with the stable floor " + std::to_string(floor));
          }
        } else if (op < 62) {
          // upper_equal(q): in [q, least stable key >= q], likewise.
          auto ue = a.upper_equal(q);
          auto it = stable_sorted.lower_bound(q);
          const bool has_ceil = it != stable_sorted.end();
          const std::uint64_t ceil = has_ceil ? it->first : 0;
          if (ue ? (ue->first < q || (has_ceil && ue->first > ceil) || !pair_ok(ue->first, ue->second))
                 : has_ceil) {
            report(res.reader_errors, "upper_equal(" + std::to_string(q) + ") answered " +
                                          (ue ? std::to_string(ue->first) : std::string("none")) +
                                          " with the stable ceiling " + std::to_string(ceil));
          }
        } else {
          // Ordered walk over a window: strictly ascending, every stable key
          // of the window visited with its value.
          const std::uint64_t lo = k, hi = (op == 63) ? kMax : k + 4096 * lay.ways;
          auto it = stable_sorted.lower_bound(lo);
          std::uint64_t prev = 0;
          bool first = true, ok = true;
          a.for_each(lo, hi, [&](std::uint64_t kk, std::uint64_t vv) {
            if (!first && kk <= prev) ok = false;
            if (kk < lo || kk > hi || !pair_ok(kk, vv)) ok = false;
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
          if (!ok) {
            report(res.reader_errors,
                   "for_each out of order, out of range, missing a stable key or with a foreign value");
          }
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
  // Everything the writers' caches and batches hold is gone with them (the
  // threads exited); what is left is this thread's and the nodes, and the
  // allocator-side count must agree once no callback runs.
  rcu::barrier();
  EXPECT_EQ(a.memory_bytes(), alloc::malloc_bytes());
  for (const auto& kv : want) ASSERT_EQ(a.erase(kv.first), kv.second);
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.node_bytes(), 0u);
  rcu::barrier();
  EXPECT_EQ(a.memory_bytes(), alloc::malloc_bytes());
}

class JudyConcurrent : public ::testing::Test {
 protected:
  void TearDown() override {
    rcu::barrier();
    EXPECT_EQ(alloc::live.load(), 0) << "nodes or leaves leaked or freed twice";
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

// memory_bytes() counts what live writer threads hold for the array: each
// one's block cache and open retire batch, and the shared depot. Writers
// update, then park (alive) while the main thread compares memory_bytes()
// with the allocator-side count; then they exit, which frees their caches
// and hands their batches to RCU, and the counts must agree again, not
// higher, with nothing left besides nodes but what this thread holds
// itself (rcu::barrier() empties the shared depot). A writer's cache may
// be empty when it parks (the blocks it retired come back through the
// depot, to whichever writer drains it first, after a grace period), so
// the figure need not drop.
TEST_F(JudyConcurrent, MemoryBytesCountsEveryWritersCacheAndBatches) {
  judy_array<std::uint64_t> a;
  constexpr int kWriters = 3;
  std::barrier<> parked(kWriters + 1);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      std::mt19937_64 rng(300 + w);
      for (int i = 0; i < 40000; ++i) {
        const std::uint64_t k = (rng() % 20000) * kWriters + static_cast<unsigned>(w);
        if (rng() % 3 == 0) {
          (void)a.erase(k);
        } else {
          (void)a.insert_or_assign(k, k);
        }
      }
      parked.arrive_and_wait();  // parked: the main thread measures
      parked.arrive_and_wait();  // released: exit
    });
  }
  parked.arrive_and_wait();
  rcu::barrier();  // no judy callback runs while we compare
  const std::size_t with_writers = a.memory_bytes();
  EXPECT_EQ(with_writers, alloc::malloc_bytes());
  EXPECT_GT(with_writers, a.node_bytes()) << "the writers' caches and batches are not counted";
  parked.arrive_and_wait();
  for (auto& t : threads) t.join();
  rcu::barrier();  // the exited writers' batches are freed by their callbacks
  EXPECT_EQ(a.memory_bytes(), alloc::malloc_bytes());
  EXPECT_LE(a.memory_bytes(), with_writers);
  EXPECT_LE(a.memory_bytes() - a.node_bytes(),
            rcukit::detail::judy_idle_thread_max_bytes(rcukit::detail::judy_leaf<std::uint64_t>::bitmap_bytes))
      << "the exited writers' caches or batches were not released";
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
}

// Bound queries are linearizable (API.md: every member is). One writer
// cycles two pairs of keys so that one key's presence implies another's:
//   k1 < k2, k2 present => k1 present   (insert k1, insert k2, erase k2, erase k1)
//   k3 < k4, k3 present => k4 present   (insert k4, insert k3, erase k3, erase k4)
// with k1, k2, k3, k4 in four different root subtrees. upper_equal(q), for q
// in a root subtree below k1's that holds only a smaller key, may return k1
// or s3f (the stable key just above k2), never k2: whenever k2 is the least
// key >= q, k1 is present and smaller. Mirror: lower_equal(q') for q' above
// k4 returns k4 or s80, never k3. A bound that reads k1's slot (empty) and
// later k2's subtree (holding k2), without checking that what it read first
// is still current, returns k2.
enum class bound_layout {
  pigeon_root,  // 64 stable root subtrees between the pairs: the root is a
                // pigeon node whose slots are set and cleared in place
  lin_nodes,    // 2-key buckets, 6 root subtrees at most: k1 and k4 appearing
                // rebuild the root (copy-on-write) while k2 and k3 replace a
                // bucket in place in a depth-1 node the old and new roots share
};

template <unsigned Cap>
void bound_implication_run(bound_layout lay) {
  judy_array<std::uint64_t, rcu::memb, Cap> a;
  auto at = [](std::uint64_t root_byte, std::uint64_t low) { return (root_byte << 56) | low; };
  if (lay == bound_layout::pigeon_root) {
    for (std::uint64_t b = 0x40; b < 0x80; ++b) ASSERT_TRUE(a.insert(at(b, 0x1234), ~at(b, 0x1234)).ok());
  }
  // Upper pair below the stable subtrees, lower pair above them; each pair
  // far apart in the root, so a bound scans many root slots between them.
  const std::uint64_t s00 = at(0x00, 1), q = at(0x00, 0x100);   // q's subtree: only a smaller key
  const std::uint64_t k1 = at(0x01, 5);                         // alone in its subtree
  const std::uint64_t k2 = at(0x3f, 5), s3f = at(0x3f, 0x999);  // k2's bucket: a larger stable key
  const std::uint64_t x3f = at(0x3f, std::uint64_t{1} << 48);   // two larger ones in the next
  const std::uint64_t y3f = x3f + 1;                            //   depth-1 slot
  const std::uint64_t sff = at(0xff, 0xffff), qq = at(0xff, 0x100);
  const std::uint64_t k4 = at(0xfe, 5);                                 // alone in its subtree
  const std::uint64_t k3 = at(0x80, (std::uint64_t{1} << 48) | 0x500);  // k3's bucket:
  const std::uint64_t s80 = at(0x80, (std::uint64_t{1} << 48) | 1);     //   a smaller stable key
  const std::uint64_t x80 = at(0x80, 7), y80 = x80 + 1;  // two smaller ones, previous depth-1 slot
  for (std::uint64_t k : {s00, s3f, x3f, y3f, sff, s80, x80, y80}) ASSERT_TRUE(a.insert(k, ~k).ok());
  if (lay == bound_layout::lin_nodes) {
    const auto shape = a.stats();
    ASSERT_EQ(shape.nodes[4] + shape.nodes[3] + shape.nodes[2], 0u) << "expected lin4/lin11 nodes only";
    ASSERT_GE(shape.nodes[0] + shape.nodes[1], 3u) << "expected the root and two depth-1 nodes";
  }

  std::atomic<bool> stop{false};
  std::atomic<long> bad_upper{0}, bad_lower{0}, cycles{0}, queries{0};  // relaxed: read after join
  std::uint64_t first_bad[2] = {0, 0};                                  // per reader; read after join
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
      const bool ok = a.insert(k1, ~k1).ok() && a.insert(k4, ~k4).ok() && a.insert(k2, ~k2).ok() &&
                      a.insert(k3, ~k3).ok() && a.erase(k2).has_value() && a.erase(k3).has_value() &&
                      a.erase(k1).has_value() && a.erase(k4).has_value();
      if (!ok) {
        ADD_FAILURE() << "the writer's own cycle failed";
        break;
      }
      ++n;
    }
    cycles.fetch_add(n, std::memory_order_relaxed);
  });
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      long n = 0, bu = 0, bl = 0;
      while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
        if (r == 0) {
          const auto ue = a.upper_equal(q);
          if (!ue || (ue->first != k1 && ue->first != s3f) || ue->second != ~ue->first) {
            if (bu++ == 0) first_bad[r] = ue ? ue->first : 0;
          }
        } else {
          const auto le = a.lower_equal(qq);
          if (!le || (le->first != k4 && le->first != s80) || le->second != ~le->first) {
            if (bl++ == 0) first_bad[r] = le ? le->first : 0;
          }
        }
        ++n;
      }
      bad_upper.fetch_add(bu, std::memory_order_relaxed);
      bad_lower.fetch_add(bl, std::memory_order_relaxed);
      queries.fetch_add(n, std::memory_order_relaxed);
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();
  std::printf("bounds: %ld writer cycles, %ld queries\n", cycles.load(), queries.load());
  EXPECT_GT(cycles.load(), 0);
  EXPECT_EQ(bad_upper.load(), 0) << "upper_equal(q) must be k1 or s3f; first bad: " << std::hex
                                 << first_bad[0] << (first_bad[0] == k2 ? " (k2)" : "");
  EXPECT_EQ(bad_lower.load(), 0) << "lower_equal(q') must be k4 or s80; first bad: " << std::hex
                                 << first_bad[1] << (first_bad[1] == k3 ? " (k3)" : "");
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
}

// Leaves change in place (judy_leaf.hpp): an insert or erase shifts the
// entries of a sorted leaf, an assignment rewrites a value, a bitmap leaf
// sets and clears slots. Values here are eight words that must agree
// ({key, x, x, ..., key ^ x}), so a reader that used a torn read (a value
// half rewritten, or a key paired with its neighbour's value during a
// shift) reports it. Stable keys are present throughout, with values
// assigned over and over; writers insert and erase other keys in the same
// leaf. Everything happens in one leaf, so readers and writers meet there
// constantly: a sorted leaf (the root leaf, shifted by every insert and
// erase), or a bitmap leaf (dense keys at the last level).
struct octet {
  std::uint64_t key, x, pad[5], check;
  bool operator==(const octet&) const = default;
};
octet octet_for(std::uint64_t key, std::uint64_t x) {
  octet o{key, x, {x, x, x, x, x}, key ^ x};
  return o;
}
bool octet_ok(std::uint64_t key, const octet& o) {
  for (std::uint64_t p : o.pad) {
    if (p != o.x) return false;
  }
  return o.key == key && o.check == (key ^ o.x);
}

enum class hot_leaf { sorted, bitmap };

void in_place_run(hot_leaf kind) {
  judy_array<octet> a;
  // sorted: 12 stable keys 0, 10, .., 110 and writer keys between them (at
  // most 24 keys in all: one root leaf); bitmap: 128 stable even keys of one
  // last-level leaf, writer keys odd.
  const std::uint64_t base = 0x7700000000000000ull;
  std::vector<std::uint64_t> stable, mine;
  if (kind == hot_leaf::sorted) {
    for (std::uint64_t i = 0; i < 12; ++i) stable.push_back(base + 10 * i);
    for (std::uint64_t i = 0; i < 12; ++i) mine.push_back(base + 10 * i + 5);
  } else {
    for (std::uint64_t i = 0; i < 128; ++i) stable.push_back(base + 2 * i);
    for (std::uint64_t i = 0; i < 128; ++i) mine.push_back(base + 2 * i + 1);
  }
  for (std::uint64_t k : stable) ASSERT_TRUE(a.insert(k, octet_for(k, 0)).ok());
  ASSERT_EQ(a.stats().buckets, 1u);
  ASSERT_EQ(a.stats().bitmaps, kind == hot_leaf::bitmap ? 1u : 0u);
  std::atomic<bool> stop{false};
  std::atomic<long> torn{0}, missing{0}, reads{0}, writes{0};  // relaxed: read after join
  std::thread threads[2];  // a plain array: g++ 12 reports a false -Warray-bounds on vector growth here
  threads[0] = std::thread([&] {
    std::mt19937_64 rng(40);
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
      const std::uint64_t r = rng();
      if (r % 2 == 0) {  // reassign a stable key in place
        const std::uint64_t k = stable[(r >> 8) % stable.size()];
        (void)a.insert_or_assign(k, octet_for(k, r));
      } else {  // insert or erase a key between stable ones (shifts the sorted leaf)
        const std::uint64_t k = mine[(r >> 8) % mine.size()];
        if ((r >> 4) % 2 == 0) {
          (void)a.insert_or_assign(k, octet_for(k, r));
        } else {
          (void)a.erase(k);
        }
      }
      ++n;
    }
    writes.fetch_add(n, std::memory_order_relaxed);
  });
  threads[1] = std::thread([&] {
    std::mt19937_64 rng(80);
    long n = 0;
    while (!stop.load(std::memory_order_relaxed)) {  // relaxed: a flag polled by loops
      const std::uint64_t k = stable[rng() % stable.size()];
      const unsigned op = static_cast<unsigned>(rng() % 8);
      if (op < 5) {
        const auto f = a.find(k);
        if (!f) missing.fetch_add(1, std::memory_order_relaxed);
        if (f && !octet_ok(k, *f)) torn.fetch_add(1, std::memory_order_relaxed);
      } else if (op == 5) {
        const auto le = a.lower_equal(k);
        if (!le || le->first != k) missing.fetch_add(1, std::memory_order_relaxed);
        if (le && !octet_ok(le->first, le->second)) torn.fetch_add(1, std::memory_order_relaxed);
      } else if (op == 6) {
        const auto ue = a.upper_equal(k + 1);
        if (ue && !octet_ok(ue->first, ue->second)) torn.fetch_add(1, std::memory_order_relaxed);
      } else {
        a.for_each(base, base + 1000, [&](std::uint64_t kk, const octet& o) {
          if (!octet_ok(kk, o)) torn.fetch_add(1, std::memory_order_relaxed);
        });
      }
      ++n;
    }
    reads.fetch_add(n, std::memory_order_relaxed);
  });
  std::this_thread::sleep_for(std::chrono::duration<double>(test_seconds()));
  stop.store(true, std::memory_order_relaxed);
  for (auto& t : threads) t.join();
  std::printf("in-place: %ld writes, %ld reads\n", writes.load(), reads.load());
  EXPECT_GT(writes.load(), 0);
  EXPECT_GT(reads.load(), 0);
  EXPECT_EQ(torn.load(), 0) << "a reader returned a value that was never written for its key";
  EXPECT_EQ(missing.load(), 0) << "a reader missed a stable key";
  ASSERT_TRUE(a.check_invariants().ok()) << a.check_invariants();
  for (std::uint64_t k : stable) {
    const auto f = a.find(k);
    ASSERT_TRUE(f.has_value() && octet_ok(k, *f));
  }
}

TEST_F(JudyConcurrent, InPlaceChangesNeverTearValuesSortedLeaf) { in_place_run(hot_leaf::sorted); }
TEST_F(JudyConcurrent, InPlaceChangesNeverTearValuesBitmapLeaf) { in_place_run(hot_leaf::bitmap); }

TEST_F(JudyConcurrent, BoundNeverSkipsAnImpliedKeyPigeonRoot) {
  bound_implication_run<32>(bound_layout::pigeon_root);
}
TEST_F(JudyConcurrent, BoundNeverSkipsAnImpliedKeyLinNodes) {
  bound_implication_run<2>(bound_layout::lin_nodes);
}

}  // namespace
