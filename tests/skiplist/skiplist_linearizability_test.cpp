// SPDX-License-Identifier: MIT
// Linearizability of extent_skiplist, checked with the Wing-Gong search of
// tests/support/linearizability.hpp on recorded histories: 3 threads x up to
// 8 operations (insert, erase, lookup, lookup_rcu, lower_bound, prev_extent,
// insert_hole up and down) on a small, pre-populated key space with 4-extent
// leaves, so splits and leaf removals happen inside histories. Scans are
// checked by the weaker rule in skiplist_concurrent_test.cpp.
//
// What can fail here: any recorded history the sequential model cannot
// explain; the checker accepting a history of a deliberately broken variant
// (an erase that sometimes reports success without removing), or rejecting a
// hand-made linearizable history / accepting a hand-made non-linearizable one.
#include <gtest/gtest.h>

#include <atomic>
#include <barrier>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
#include "skiplist_test_traits.hpp"
#include "support/extent_model.hpp"
#include "support/linearizability.hpp"

namespace rcukit::testing {
namespace {

enum class kind : uint8_t { insert, erase, lookup, lookup_rcu, lower_bound, prev_extent, hole_up, hole_down };

struct op {
  kind k;
  uint64_t a;
  uint64_t b;
  uint64_t v;
  uint64_t call = 0, ret = 0;  // copied from the event (the model needs real time, see lin_model)
};

struct result {
  int code = 0;
  bool has = false;
  uint64_t start = 0, size = 0, value = 0;
  bool operator==(const result&) const = default;
};

result from(const std::optional<extent_entry<uint64_t>>& e) {
  result r;
  if (e) r = result{0, true, e->range.start, e->range.size, e->value};
  return r;
}

// Applies o to any index with the extent_index surface (or the model).
template <class Idx>
result apply(Idx& m, const op& o) {
  switch (o.k) {
    case kind::insert:
      return result{static_cast<int>(m.insert(extent{o.a, o.b}, o.v).code())};
    case kind::erase:
      return from(m.erase(o.a, o.b));
    case kind::lookup:
      return from(m.lookup(o.a, o.b));
    case kind::lookup_rcu:
      if constexpr (requires { typename Idx::rcu_flavor; }) {
        rcu::read_guard<typename Idx::rcu_flavor> g;
        return from(m.lookup_rcu(g, o.a, o.b));
      } else {
        return from(m.lookup(o.a, o.b));
      }
    case kind::lower_bound:
      return from(m.lower_bound(o.a));
    case kind::prev_extent:
      return from(m.prev_extent(o.a));
    case kind::hole_up:
    case kind::hole_down: {
      hole_request r;
      r.hint = o.a;
      r.size = o.b;
      r.limit = 64;
      r.align = (o.v & 1) ? 2 : 1;
      r.dir = o.k == kind::hole_up ? hole_request::direction::up : hole_request::direction::down;
      const auto s = m.insert_hole(r, o.v);
      result res{static_cast<int>(s.status().code())};
      if (s.ok()) res.start = *s;
      return res;
    }
  }
  return {};
}

// The sequential model, with API.md's rule for insert_hole under
// concurrency: a success may be any fitting range that is free when it is
// inserted (not only the one the deterministic rule picks); a failure is
// allowed only if no fitting range stays free for the whole call. The model
// tracks that with an open obligation per failed call: the fitting starts
// free when the failure is linearized, narrowed by every state linearized
// before the call returned (an op invoked after the return closes it); an
// obligation that still has a start at its close, or at the end, rejects.
constexpr uint64_t kLimit = 64;  // every hole request here: floor 0, limit 64
struct hole_obligation {
  uint64_t ret;
  uint64_t size, align;
  uint64_t starts;  // bit s: [s, s + size) fits and was free in every state so far
  bool operator==(const hole_obligation&) const = default;
};
struct lin_model {
  extent_model<uint64_t> m;
  std::vector<hole_obligation> open;
  bool operator==(const lin_model& o) const { return m.all() == o.m.all() && open == o.open; }
  size_t hash() const {
    size_t h = 1469598103934665603ULL;
    for (const auto& e : m.all())
      h = (h ^ (e.range.start * 131 + e.range.size * 7 + e.value)) * 1099511628211ULL;
    for (const auto& o : open) h = (h ^ (o.starts * 31 + o.ret)) * 1099511628211ULL;
    return h;
  }
  bool complete() const {
    for (const auto& o : open) {
      if (o.starts != 0) return false;
    }
    return true;
  }
  // Bit s set when [s, s + size) is inside [0, kLimit), aligned and free now.
  uint64_t fitting(uint64_t size, uint64_t align) const {
    uint64_t bits = 0;
    for (uint64_t s = 0; s + size <= kLimit; s += align) {
      if (!m.lookup(s, size)) bits |= uint64_t{1} << s;
    }
    return bits;
  }
  void narrow() {
    for (auto& o : open) o.starts &= fitting(o.size, o.align);
  }
};

struct model_step {
  result operator()(lin_model& s, const op& o, const result& recorded) const {
    // Obligations of calls that returned before this op was invoked close now.
    for (auto it = s.open.begin(); it != s.open.end();) {
      if (o.call > it->ret) {
        if (it->starts != 0) return result{-1};  // a fitting range stayed free for the whole call
        it = s.open.erase(it);
      } else {
        ++it;
      }
    }
    result r;
    if (o.k == kind::hole_up || o.k == kind::hole_down) {
      const uint64_t align = (o.v & 1) ? 2 : 1;
      if (recorded.code != 0) {  // a failure: opens an obligation
        r = recorded;
        const uint64_t fits = s.fitting(o.b, align);
        if (fits != 0) s.open.push_back(hole_obligation{o.ret, o.b, align, fits});
      } else if (recorded.start % align == 0 && recorded.start + o.b <= kLimit &&
                 s.m.insert(extent{recorded.start, o.b}, o.v).ok()) {
        r = recorded;  // a fitting range that was free: allowed
      } else {
        r = result{-2};
      }
    } else {
      r = apply(s.m, o);
    }
    s.narrow();
    return r;
  }
};

using event = lin_event<op, result>;

op random_op(std::mt19937_64& rng, uint64_t value) {
  const auto k = static_cast<kind>(rng() % 8);
  return op{k, rng() % 64, 1 + rng() % 4, value};
}

std::string describe(const std::vector<event>& h) {
  static const char* names[] = {"insert",      "erase",       "lookup",  "lookup_rcu",
                                "lower_bound", "prev_extent", "hole_up", "hole_down"};
  std::ostringstream os;
  for (const auto& e : h) {
    os << "  t" << e.thread << " [" << e.call << "," << e.ret << "] " << names[static_cast<int>(e.op.k)]
       << "(" << e.op.a << "," << e.op.b << "," << e.op.v << ") -> code=" << e.result.code
       << " has=" << e.result.has << " start=" << e.result.start << " size=" << e.result.size
       << " value=" << e.result.value << "\n";
  }
  return os.str();
}

using tiny_list = extent_skiplist<uint64_t, rcu::memb, tiny_test_traits>;

// Deliberately broken: every other erase on a thread reports the extent as
// removed but leaves it in place.
struct broken_list {
  using value_type = uint64_t;
  using rcu_flavor = rcu::memb;
  tiny_list inner;
  absl::Status insert(extent e, uint64_t v) { return inner.insert(e, v); }
  std::optional<extent_entry<uint64_t>> erase(uint64_t k, uint64_t s) {
    static thread_local unsigned n = 0;
    if (++n % 2 == 0) return inner.lookup(k, s);
    return inner.erase(k, s);
  }
  auto lookup(uint64_t k, uint64_t s) const { return inner.lookup(k, s); }
  auto lookup_rcu(const rcu::read_guard<rcu::memb>& g, uint64_t k, uint64_t s) const {
    return inner.lookup_rcu(g, k, s);
  }
  auto lower_bound(uint64_t k) const { return inner.lower_bound(k); }
  auto prev_extent(uint64_t k) const { return inner.prev_extent(k); }
  auto insert_hole(const hole_request& r, uint64_t v) { return inner.insert_hole(r, v); }
};

// Runs `rounds` histories of 3 threads x up to 5 ops on fresh instances of
// Idx; returns the number of histories the checker rejected (the first few
// are printed when `report`).
// Also counts, in *racing, the histories in which the leaf structure changed
// (a split or a leaf removal) while an insert and an erase overlapped in time.
template <class Idx>
long run_histories(int rounds, uint64_t seed, bool report, long* racing = nullptr) {
  constexpr int kThreads = 3;
  constexpr int kMaxOps = 8;
  size_t leaves_before = 0;
  std::barrier sync(kThreads);
  std::atomic<uint64_t> clock{0};  // seq_cst: the logical real-time order of calls and returns
  std::atomic<int> go{0};          // seq_cst: the spinning start of each round
  std::vector<std::vector<event>> per_thread(kThreads);
  std::unique_ptr<Idx> idx;
  lin_model init;
  long rejected = 0;
  std::mt19937_64 setup_rng(seed);
  auto worker = [&](int t) {
    std::mt19937_64 rng(seed * 1000 + t);
    for (int round = 0; round < rounds; ++round) {
      if (t == 0) {
        idx = std::make_unique<Idx>();
        init = lin_model{};
        const int pre = static_cast<int>(setup_rng() % 24);
        for (int i = 0; i < pre; ++i) {
          const extent e{setup_rng() % 64, 1 + setup_rng() % 4};
          if (init.m.insert(e, 1000 + i).ok()) (void)idx->insert(e, 1000 + i);
        }
      }
      per_thread[t].clear();
      if constexpr (requires { idx->leaf_count(); }) {
        if (t == 0) leaves_before = idx->leaf_count();
      }
      sync.arrive_and_wait();
      // A barrier wakes its waiters microseconds apart, longer than a whole
      // history: meet again on a spin so that the operations overlap.
      go.fetch_add(1);
      for (int spins = 0; go.load() < kThreads * (round + 1);) {
        if (++spins > 4096) std::this_thread::yield();
      }
      const int nops = 1 + static_cast<int>(rng() % kMaxOps);
      for (int i = 0; i < nops; ++i) {
        for (uint64_t d = rng() % 64; d > 0; --d) rcukit::detail::cpu_relax();  // vary the interleaving
        const op o = random_op(rng, (uint64_t(t) << 8) | uint64_t(i));
        event e{o, {}, 0, 0, t};
        e.call = clock.fetch_add(1);
        e.result = apply(*idx, o);
        e.ret = clock.fetch_add(1);
        per_thread[t].push_back(e);
      }
      sync.arrive_and_wait();
      if (t == 0) {
        std::vector<event> h;
        for (const auto& v : per_thread) h.insert(h.end(), v.begin(), v.end());
        for (auto& e : h) {
          e.op.call = e.call;
          e.op.ret = e.ret;
        }
        if constexpr (requires { idx->leaf_count(); }) {
          bool overlap = false;
          for (const auto& a : h) {
            for (const auto& b : h) {
              overlap = overlap || (a.op.k == kind::insert && b.op.k == kind::erase && a.call < b.ret && b.call < a.ret);
            }
          }
          if (racing != nullptr && overlap && idx->leaf_count() != leaves_before) ++*racing;
        }
        if (!is_linearizable(h, init, model_step{})) {
          if (report && rejected < 3) {
            std::ostringstream st;
            for (const auto& e : init.m.all())
              st << " [" << e.range.start << ",+" << e.range.size << ")=" << e.value;
            ADD_FAILURE() << "non-linearizable history from state" << st.str() << ":\n" << describe(h);
          }
          ++rejected;
        }
      }
      // The next round's setup (thread 0) happens while the others wait at
      // the first barrier; nobody touches idx between the barriers but t0.
      sync.arrive_and_wait();
    }
  };
  std::vector<std::thread> threads;
  for (int t = 1; t < kThreads; ++t) threads.emplace_back(worker, t);
  worker(0);
  for (auto& th : threads) th.join();
  idx.reset();
  return rejected;
}

int history_rounds() {
  const char* s = std::getenv("RCUKIT_LIN_HISTORIES");
  return s != nullptr ? std::atoi(s) : 10000;
}

TEST(SkiplistLinearizability, RecordedHistoriesAreLinearizable) {
  // Rounds come in batches until enough histories had a split or a leaf
  // removal while an insert and an erase overlapped (on a busy 2-core
  // machine the threads overlap less often), up to 8x the base count.
  long racing = 0, rejected = 0;
  int rounds = 0;
  for (uint64_t seed = 11; rounds < 8 * history_rounds() && (rounds < history_rounds() || racing < 50); ++seed) {
    rejected += run_histories<tiny_list>(2000, seed, rejected == 0, &racing);
    rounds += 2000;
  }
  EXPECT_EQ(rejected, 0);
  std::printf("histories with a structural change while an insert and an erase overlapped: %ld of %d\n", racing,
              rounds);
  EXPECT_GT(racing, 0) << "no history had a structural change under a race";
  rcu::barrier<rcu::memb>();
  EXPECT_EQ(tiny_test_traits::live.load(), 0);
}

TEST(SkiplistLinearizability, CheckerRejectsBrokenVariant) {
  EXPECT_GT(run_histories<broken_list>(2000, 12, false), 0)
      << "the checker accepted a broken erase every time";
  rcu::barrier<rcu::memb>();
  EXPECT_EQ(tiny_test_traits::live.load(), 0);
}

TEST(LinearizabilityChecker, HandMadeHistories) {
  lin_model init;
  const op ins{kind::insert, 10, 2, 7};
  const op look{kind::lookup, 10, 1, 0};
  const result ok{0};
  const result found{0, true, 10, 2, 7};
  const result none{};
  // Sequential: insert then lookup that misses: not linearizable.
  EXPECT_FALSE(
      is_linearizable(std::vector<event>{{ins, ok, 0, 1, 0}, {look, none, 2, 3, 1}}, init, model_step{}));
  // Overlapping: the lookup may come first: linearizable.
  EXPECT_TRUE(
      is_linearizable(std::vector<event>{{ins, ok, 0, 3, 0}, {look, none, 1, 2, 1}}, init, model_step{}));
  EXPECT_TRUE(
      is_linearizable(std::vector<event>{{ins, ok, 0, 3, 0}, {look, found, 1, 2, 1}}, init, model_step{}));
  // A lookup that sees the extent before the insert was invoked: not linearizable.
  EXPECT_FALSE(
      is_linearizable(std::vector<event>{{look, found, 0, 1, 1}, {ins, ok, 2, 3, 0}}, init, model_step{}));
  // Two erases of one extent both succeeding: not linearizable, however they overlap.
  lin_model one;
  (void)one.m.insert(extent{10, 2}, 7);
  const op er{kind::erase, 10, 1, 0};
  EXPECT_FALSE(
      is_linearizable(std::vector<event>{{er, found, 0, 3, 0}, {er, found, 1, 2, 1}}, one, model_step{}));
  EXPECT_TRUE(
      is_linearizable(std::vector<event>{{er, found, 0, 3, 0}, {er, none, 1, 2, 1}}, one, model_step{}));
}

// insert_hole under concurrency (API.md): any fitting free range may be
// returned; a failure needs every fitting range to be taken at some moment
// of the call.
TEST(LinearizabilityChecker, HandMadeHoleHistories) {
  auto ev = [](op o, result r, uint64_t call, uint64_t ret, int t) {
    o.call = call;
    o.ret = ret;
    return event{o, r, call, ret, t};
  };
  lin_model full;  // [0, 64) taken but for [20, 24)
  (void)full.m.insert(extent{0, 20}, 1);
  (void)full.m.insert(extent{24, 40}, 2);
  const op hole4{kind::hole_up, 0, 4, 0};  // size 4, align 1
  const result failed{static_cast<int>(absl::StatusCode::kResourceExhausted)};
  // [20, 24) is free for the whole call: the failure is not allowed.
  EXPECT_FALSE(is_linearizable(std::vector<event>{ev(hole4, failed, 0, 5, 0)}, full, model_step{}));
  // A concurrent insert takes [20, 24) during the call: allowed.
  const op take{kind::insert, 20, 4, 9};
  EXPECT_TRUE(is_linearizable(std::vector<event>{ev(hole4, failed, 0, 5, 0), ev(take, result{0}, 1, 2, 1)}, full,
                              model_step{}));
  // The insert starts after the call returned: the hole was free throughout.
  EXPECT_FALSE(is_linearizable(std::vector<event>{ev(hole4, failed, 0, 1, 0), ev(take, result{0}, 2, 3, 1)}, full,
                               model_step{}));
  // The only hole moves during the call (one erase frees [0, 4), then an
  // insert takes [20, 24)): no range stayed free throughout, so a failure is allowed.
  const op free0{kind::erase, 0, 1, 0};
  lin_model split = full;
  (void)split.m.erase(0, 1);
  (void)split.m.insert(extent{4, 16}, 1);
  (void)split.m.insert(extent{0, 4}, 3);
  EXPECT_TRUE(is_linearizable(std::vector<event>{ev(hole4, failed, 0, 9, 0),
                                                 ev(free0, result{0, true, 0, 4, 3}, 3, 4, 1),
                                                 ev(take, result{0}, 1, 2, 2)},
                              split, model_step{}));
  // A success at a fitting free range that is not the lowest: allowed
  // (the lowest was [20, 24)); one overlapping an extent: not.
  lin_model two = full;
  (void)two.m.erase(24, 1);
  (void)two.m.insert(extent{30, 34}, 2);  // free: [20, 24) and [24, 30)
  EXPECT_TRUE(is_linearizable(std::vector<event>{ev(hole4, result{0, false, 25}, 0, 1, 0)}, two, model_step{}));
  EXPECT_FALSE(is_linearizable(std::vector<event>{ev(hole4, result{0, false, 28}, 0, 1, 0)}, two, model_step{}));
}

}  // namespace
}  // namespace rcukit::testing
