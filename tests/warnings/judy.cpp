// SPDX-License-Identifier: MIT
// Every public member of <rcukit/judy_array.hpp>, for two flavours and a
// value of several words.
#include <rcukit/judy_array.hpp>

#include <array>
#include <cstdint>
#include <thread>
#include <utility>

#include "check.hpp"

namespace {

struct record {
  std::uint64_t a;
  std::array<std::uint32_t, 3> b;
};

template <class V>
V make(std::uint64_t i) {
  if constexpr (std::is_same_v<V, record>) {
    return record{i, {1, 2, 3}};
  } else {
    return static_cast<V>(i);
  }
}
template <class V>
std::uint64_t key_of(const V& v) {
  if constexpr (std::is_same_v<V, record>) {
    return v.a;
  } else {
    return static_cast<std::uint64_t>(v);
  }
}

template <class V, class F>
void exercise() {
  rcukit::rcu::thread_registration<F> reg;
  {
    rcukit::judy_array<V, F> j;
    WARN_CHECK(j.empty() && j.size() == 0);
    for (std::uint64_t k = 0; k < 5000; ++k) WARN_CHECK(j.insert(k * 7919, make<V>(k * 7919)).ok());
    WARN_CHECK(j.insert(7919, make<V>(1)).code() == absl::StatusCode::kAlreadyExists);
    WARN_CHECK(!j.insert_or_assign(7919, make<V>(7919)));
    WARN_CHECK(j.try_insert_or_assign(3, make<V>(3)).value());
    WARN_CHECK(j.contains(3) && !j.contains(4));
    WARN_CHECK(key_of(*j.find(7919 * 2)) == 7919 * 2);
    {
      rcukit::rcu::read_guard<F> g;
      WARN_CHECK(key_of(*j.find_rcu(g, 7919 * 3)) == 7919 * 3);
    }
    WARN_CHECK(j.lower_equal(7920)->first == 7919);
    WARN_CHECK(j.upper_equal(7920)->first == 7919 * 2);
    std::uint64_t n = 0;
    j.for_each(0, 7919 * 10, [&](std::uint64_t, const V&) { ++n; });
    WARN_CHECK(n == 12);  // 0, 3, 7919 .. 7919 * 10 (inclusive)
    n = 0;
    j.for_each(0, UINT64_MAX, [&](std::uint64_t, const V&) { return ++n < 4; });
    WARN_CHECK(n == 4);
    WARN_CHECK(key_of(*j.erase(3)) == 3 && !j.erase(3));
    WARN_CHECK(j.try_erase(7919).value().has_value());
    WARN_CHECK(j.size() == 4999 && !j.empty());
    WARN_CHECK(j.memory_bytes() >= j.node_bytes() && j.node_bytes() > 0);
    const auto s = j.stats();
    WARN_CHECK(s.buckets > 0 || s.bitmaps > 0 || s.nodes[0] > 0);
    WARN_CHECK(j.check_invariants().ok());
  }
  if constexpr (std::is_same_v<F, rcukit::rcu::qsbr>) rcukit::rcu::quiescent_state<F>();
  rcukit::rcu::barrier<F>();
}

}  // namespace

int main() {
  exercise<std::uint64_t, rcukit::rcu::memb>();
  exercise<record, rcukit::rcu::qsbr>();
  std::thread([] { exercise<int, rcukit::rcu::bp>(); }).join();
  return 0;
}
