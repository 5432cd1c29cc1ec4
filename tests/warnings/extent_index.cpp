// SPDX-License-Identifier: MIT
// Every public member of the extent indexes (<rcukit/extent_skiplist.hpp>,
// <rcukit/rbtree.hpp>): the common extent_index surface on each backend and
// flavour, then what only the skiplist has (preload, leaf views).
#include <rcukit/extent_skiplist.hpp>
#include <rcukit/rbtree.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "check.hpp"

namespace {

struct wide {  // a value of several words, as a user's mapping record
  std::uint64_t phys;
  std::uint32_t prot;
  std::uint32_t flags;
  std::array<std::uint16_t, 4> tags;
};

template <class V>
V make(std::uint64_t i) {
  if constexpr (std::is_same_v<V, wide>) {
    return wide{i, static_cast<std::uint32_t>(i), 7, {1, 2, 3, 4}};
  } else {
    return static_cast<V>(i);
  }
}

template <class M>
void exercise_index() {
  using V = typename M::value_type;
  using F = typename M::rcu_flavor;
  static_assert(rcukit::extent_index<M>);
  rcukit::rcu::thread_registration<F> reg;  // required for qsbr, harmless otherwise
  M m;
  WARN_CHECK(m.empty());
  for (std::uint64_t i = 0; i < 200; ++i) WARN_CHECK(m.insert({i * 10, 5}, make<V>(i)).ok());
  WARN_CHECK(m.insert({12, 1}, make<V>(0)).code() == absl::StatusCode::kAlreadyExists);
  WARN_CHECK(m.insert({0, 0}, make<V>(0)).code() == absl::StatusCode::kInvalidArgument);
  WARN_CHECK(m.lookup(13)->range.start == 10);
  WARN_CHECK(!m.lookup(16).has_value());
  WARN_CHECK(m.lookup(16, 10)->range.start == 20);
  {
    rcukit::rcu::read_guard<F> g;
    WARN_CHECK(m.lookup_rcu(g, 21)->range.start == 20);
    WARN_CHECK(m.lookup_rcu(g, 25, 1) == std::nullopt);
  }
  WARN_CHECK(m.lower_bound(11)->range.start == 20);
  WARN_CHECK(m.prev_extent(20)->range.start == 10);
  std::uint64_t seen = 0;
  m.for_each(0, 1000, [&](const typename M::entry& e) { seen += e.range.size; });
  WARN_CHECK(seen == 100 * 5);
  std::size_t visited = 0;
  m.for_each(0, 1000, [&](const typename M::entry&) { return ++visited < 7; });
  WARN_CHECK(visited == 7);
  WARN_CHECK(m.assign(20, make<V>(77)).ok());
  WARN_CHECK(m.assign(21, make<V>(77)).code() == absl::StatusCode::kNotFound);
  WARN_CHECK(m.lookup(UINT64_MAX - 100, 1000) == std::nullopt);  // clamped at the top: nothing up there
  {
    rcukit::rcu::read_guard<F> g;
    std::uint64_t n = 0;
    for (const auto& e : m.range(g, 15, 45)) n += e.range.start;
    WARN_CHECK(n == 20 + 30 + 40);  // [10, 15) ends where the window starts
    WARN_CHECK(std::ranges::count_if(m.range(g, 0, 1000), [](const auto& e) { return e.range.start % 20 == 0; }) == 50);
  }
  rcukit::hole_request r;
  r.size = 3;
  r.align = 2;
  r.hint = 1000;
  r.dir = rcukit::hole_request::direction::down;
  auto h = m.insert_hole(r, make<V>(1));
  WARN_CHECK(h.ok() && *h == 996);
  r.dir = rcukit::hole_request::direction::up;
  r.hint = 0;
  h = m.insert_hole(r, make<V>(2));
  WARN_CHECK(h.ok() && *h == 6);
  WARN_CHECK(m.erase(6).has_value());
  WARN_CHECK(m.erase(7, 3) == std::nullopt);
  WARN_CHECK(m.size() == 201);
  WARN_CHECK(m.check_invariants().ok());
  m.clear();
  WARN_CHECK(m.empty() && m.size() == 0);
  rcukit::rcu::barrier<F>();
}

template <class T, class F>
void exercise_skiplist_only() {
  using M = rcukit::extent_skiplist<T, F>;
  rcukit::rcu::thread_registration<F> reg;
  M m;
  for (std::uint64_t i = 0; i < 300; ++i) {
    auto tok = m.preload();
    WARN_CHECK(tok.ok());
    WARN_CHECK(m.insert({i * 4, 2}, make<T>(i), std::move(*tok)).ok());
  }
  std::uint64_t forward = 0, backward = 0;
  {
    rcukit::rcu::read_guard<F> g;
    for (auto v = m.first_leaf(g); v; v = m.next_leaf(g, v)) {
      for (std::size_t i = 0; i < v.size(); ++i) forward += v.at(i).range.size;
      WARN_CHECK(!v.empty());
    }
    for (auto v = m.last_leaf(g); v; v = m.prev_leaf(g, v)) backward += v.size();
  }
  WARN_CHECK(forward == 600 && backward == 300);
  WARN_CHECK(m.leaf_count() > 1 && m.memory_bytes() > 0);
  m.clear();
  rcukit::rcu::barrier<F>();
}

}  // namespace

int main() {
  using namespace rcukit;
  exercise_index<extent_skiplist<std::uint64_t>>();
  exercise_index<extent_skiplist<wide, rcu::qsbr>>();
  exercise_index<extent_skiplist<int, rcu::mb>>();
  exercise_index<rbtree_extent_map<std::uint64_t>>();
  exercise_index<rbtree_extent_map<wide, rcu::bp>>();
  exercise_index<rbtree_extent_map_augmented<std::uint64_t>>();
  exercise_index<rbtree_extent_map_augmented<wide, rcu::qsbr>>();
  exercise_skiplist_only<std::uint64_t, rcu::memb>();
  exercise_skiplist_only<wide, rcu::qsbr>();
  return 0;
}
