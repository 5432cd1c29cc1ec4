// SPDX-License-Identifier: MIT
// tests/support/linearizability.hpp -- a linearizability checker for small
// recorded concurrent histories.
//
// The idea (Wing & Gong, "Testing and verifying concurrent objects", JPDC
// 1993; with Lowe's memoization, "Testing for linearizability", CCPE 2017):
// a history is a set of completed operations, each with an invocation time,
// a response time and the result it returned. It is linearizable when some
// total order of the operations (a) respects real time: if a responded
// before b was invoked, a comes first, and (b) replayed one by one on the
// sequential model, gives every operation the result it really returned.
// The search picks, at each step, any not-yet-linearized operation that is
// "minimal" (invoked before every remaining operation's response), applies
// it to a copy of the model, and recurses if the result matches. A failed
// (set of linearized operations, model state) pair is remembered, so each
// configuration is explored at most once: with n <= 64 operations this is
// exponential only in the width of concurrency, not in history length.
//
// Requirements:
//   Model: copyable, `bool operator==(const Model&) const`, and a hash via
//          `size_t hash() const`.
//   Step:  callable `Result step(Model&, const Op&)` that applies an
//          operation to the model and returns what a correct object returns,
//          or `Result step(Model&, const Op&, const Result& recorded)` for
//          operations that may return one of several answers (it returns the
//          recorded result when that one is allowed).
//   Result: `operator==`.
//   Optional: `bool Model::complete() const`, asked once every operation is
//          linearized (a model that still holds an open obligation rejects).
// Invariants of the search: (1) `done` holds exactly the operations
// linearized on the current path; (2) `model` is the initial model with those
// operations applied in path order; (3) a (done, model) pair in `failed_`
// has no linearizable completion.
// Not supported: pending (unfinished) operations, histories above 64 ops.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

namespace rcukit::testing {

template <class Op, class Result>
struct lin_event {
  Op op;
  Result result;
  uint64_t call;  // logical invocation time
  uint64_t ret;   // logical response time (> call)
  int thread = 0;
};

template <class Model, class Op, class Result, class Step>
class lin_checker {
 public:
  using event = lin_event<Op, Result>;

  lin_checker(std::vector<event> history, Model initial, Step step)
      : h_(std::move(history)), init_(std::move(initial)), step_(std::move(step)) {}

  // True if the history is linearizable. On success, order() holds one
  // witness order (indices into the history).
  bool check() {
    if (h_.size() > 64) return false;
    failed_.clear();
    order_.clear();
    explored_ = 0;
    Model m = init_;
    return search(0, m);
  }
  const std::vector<size_t>& order() const { return order_; }
  size_t explored() const { return explored_; }

 private:
  struct config {
    uint64_t done;
    Model model;
    bool operator==(const config& o) const { return done == o.done && model == o.model; }
  };
  struct config_hash {
    size_t operator()(const config& c) const {
      return std::hash<uint64_t>{}(c.done) ^ (c.model.hash() * 0x9e3779b97f4a7c15ULL);
    }
  };

  bool search(uint64_t done, Model& model) {
    ++explored_;
    const size_t n = h_.size();
    if (done == (n == 64 ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) {
      // A model with obligations still open at the end (complete()) rejects.
      if constexpr (requires { model.complete(); }) {
        return model.complete();
      } else {
        return true;
      }
    }
    // Minimal operations: invoked before the earliest response among the remaining.
    uint64_t min_ret = std::numeric_limits<uint64_t>::max();
    for (size_t i = 0; i < n; ++i) {
      if (!(done >> i & 1)) min_ret = std::min(min_ret, h_[i].ret);
    }
    for (size_t i = 0; i < n; ++i) {
      if ((done >> i & 1) || h_[i].call > min_ret) continue;
      Model next = model;
      if constexpr (std::is_invocable_v<Step&, Model&, const Op&, const Result&>) {
        // A step that needs the recorded result (to accept any of several
        // allowed answers, e.g. insert_hole under concurrency).
        if (!(step_(next, h_[i].op, h_[i].result) == h_[i].result)) continue;
      } else {
        if (!(step_(next, h_[i].op) == h_[i].result)) continue;
      }
      const uint64_t d = done | (uint64_t{1} << i);
      config c{d, next};
      if (failed_.count(c) != 0) continue;
      order_.push_back(i);
      if (search(d, next)) return true;
      order_.pop_back();
      failed_.insert(std::move(c));
    }
    return false;
  }

  std::vector<event> h_;
  Model init_;
  Step step_;
  std::unordered_set<config, config_hash> failed_;
  std::vector<size_t> order_;
  size_t explored_ = 0;
};

// Convenience: check(history, model, step).
template <class Model, class Op, class Result, class Step>
bool is_linearizable(std::vector<lin_event<Op, Result>> history, Model initial, Step step) {
  lin_checker<Model, Op, Result, Step> c(std::move(history), std::move(initial), std::move(step));
  return c.check();
}

}  // namespace rcukit::testing
