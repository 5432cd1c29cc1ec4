// Linearizability of extent_skiplist, checked with the Wing-Gong search of
// tests/support/linearizability.hpp on recorded histories: 3 threads x up to
// 5 operations (insert, erase, lookup, lookup_rcu, lower_bound, prev_extent,
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

struct lin_model {
  extent_model<uint64_t> m;
  bool operator==(const lin_model& o) const { return m.all() == o.m.all(); }
  size_t hash() const {
    size_t h = 1469598103934665603ULL;
    for (const auto& e : m.all())
      h = (h ^ (e.range.start * 131 + e.range.size * 7 + e.value)) * 1099511628211ULL;
    return h;
  }
};

struct model_step {
  result operator()(lin_model& s, const op& o) const { return apply(s.m, o); }
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
template <class Idx>
long run_histories(int rounds, uint64_t seed, bool report) {
  constexpr int kThreads = 3;
  std::barrier sync(kThreads);
  std::atomic<uint64_t> clock{0};  // seq_cst: the logical real-time order of calls and returns
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
        const int pre = static_cast<int>(setup_rng() % 12);
        for (int i = 0; i < pre; ++i) {
          const extent e{setup_rng() % 64, 1 + setup_rng() % 4};
          if (init.m.insert(e, 1000 + i).ok()) (void)idx->insert(e, 1000 + i);
        }
      }
      per_thread[t].clear();
      sync.arrive_and_wait();
      const int nops = 1 + static_cast<int>(rng() % 5);
      for (int i = 0; i < nops; ++i) {
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
  EXPECT_EQ(run_histories<tiny_list>(history_rounds(), 11, true), 0);
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

}  // namespace
}  // namespace rcukit::testing
