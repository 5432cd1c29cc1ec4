// tests/iova/iova_test_support.hpp -- shared pieces of the IOVA tests: the
// list of index types under test, a reference index adapter over
// extent_model, and a shadow of the domain's state with the invariant checks.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>

#include "rcukit/iova.hpp"
#include "rcukit/rbtree.hpp"
#include "support/extent_model.hpp"

namespace iova_testing {

// extent_model behind the extent_index surface: the domain over it is the
// reference every other domain must agree with, step by step.
template <class T>
class model_index {
 public:
  using value_type = T;
  using rcu_flavor = rcukit::rcu::default_flavor;
  using entry = rcukit::extent_entry<T>;
  absl::Status insert(rcukit::extent e, const T& v) { return m_.insert(e, v); }
  std::optional<entry> lookup(uint64_t k, uint64_t s = 1) const { return m_.lookup(k, s); }
  std::optional<entry> lookup_rcu(const rcukit::rcu::read_guard<rcu_flavor>&, uint64_t k,
                                  uint64_t s = 1) const {
    return m_.lookup(k, s);
  }
  std::optional<entry> erase(uint64_t k, uint64_t s = 1) { return m_.erase(k, s); }
  absl::StatusOr<uint64_t> insert_hole(const rcukit::hole_request& r, const T& v) {
    return m_.insert_hole(r, v);
  }
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (hi > lo) m_.for_each(lo, hi, std::forward<F>(f));
  }
  std::optional<entry> lower_bound(uint64_t k) const { return m_.lower_bound(k); }
  std::optional<entry> prev_extent(uint64_t k) const { return m_.prev_extent(k); }
  size_t size() const { return m_.size(); }
  bool empty() const { return m_.empty(); }
  void clear() { m_.clear(); }

 private:
  rcukit::testing::extent_model<T> m_;
};
static_assert(rcukit::extent_index<model_index<uint64_t>>);

// Node allocator for the rbtree maps that fails on demand (per thread).
struct failing_alloc {
  static inline thread_local int fail_next = 0;
  static void* allocate(std::size_t n) noexcept {
    if (fail_next > 0) {
      --fail_next;
      return nullptr;
    }
    return ::operator new(n, std::nothrow);
  }
  static void deallocate(void* p, std::size_t) noexcept { ::operator delete(p); }
};

// Magazine allocator that fails on demand (global switch, relaxed: a test knob).
struct failing_mag_alloc {
  static inline std::atomic<bool> fail{false};
  static inline std::atomic<long> live{0};
  static rcukit::detail::iova_magazine* allocate() noexcept {
    if (fail.load(std::memory_order_relaxed)) return nullptr;
    live.fetch_add(1, std::memory_order_relaxed);
    return new (std::nothrow) rcukit::detail::iova_magazine;
  }
  static void deallocate(rcukit::detail::iova_magazine* m) noexcept {
    live.fetch_sub(1, std::memory_order_relaxed);
    delete m;
  }
};

inline double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

}  // namespace iova_testing
