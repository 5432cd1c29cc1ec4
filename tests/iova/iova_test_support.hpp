// SPDX-License-Identifier: MIT
// tests/iova/iova_test_support.hpp -- shared pieces of the IOVA tests: the
// list of index types under test, a reference index adapter over
// extent_model, and a shadow of the domain's state with the invariant checks.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <new>
#include <optional>
#include <thread>
#include <vector>

#include "rcukit/extent_skiplist.hpp"
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
  absl::Status assign(uint64_t start, const T& v) { return m_.assign(start, v); }
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (hi > lo) m_.for_each(lo, hi, std::forward<F>(f));
  }
  // A snapshot is a range of entries too (the model has no concurrency).
  std::vector<entry> range(const rcukit::rcu::read_guard<rcu_flavor>&, uint64_t lo, uint64_t hi) const {
    std::vector<entry> v;
    for_each(lo, hi, [&](const entry& e) { v.push_back(e); });
    return v;
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

// An index that forwards to Inner and lets a test stop a domain operation at
// a chosen point: on_insert runs in the inserting thread right after every
// successful insert() (reserve() inserts through it, allocations do not), and
// searches / lookups count the insert_hole() / lookup() calls that returned.
// The hook is set before the threads that use it start (thread creation
// orders it); it is not changed while they run.
template <class Inner>
class hooked_index {
 public:
  using value_type = typename Inner::value_type;
  using rcu_flavor = typename Inner::rcu_flavor;
  using entry = typename Inner::entry;
  static inline std::function<void(rcukit::extent, value_type)> on_insert;
  // seq_cst: counters the test polls while the counted calls run in other threads.
  static inline std::atomic<int> searches{0};
  static inline std::atomic<int> lookups{0};
  static void reset() {
    on_insert = nullptr;
    searches.store(0);
    lookups.store(0);
  }
  // Spins (yielding) until counter reaches at least n.
  static void wait_for(const std::atomic<int>& counter, int n) {
    while (counter.load() < n) std::this_thread::yield();
  }

  absl::Status insert(rcukit::extent e, const value_type& v) {
    absl::Status s = m_.insert(e, v);
    if (s.ok() && on_insert) on_insert(e, v);
    return s;
  }
  std::optional<entry> lookup(uint64_t k, uint64_t s = 1) const {
    auto r = m_.lookup(k, s);
    lookups.fetch_add(1);
    return r;
  }
  std::optional<entry> lookup_rcu(const rcukit::rcu::read_guard<rcu_flavor>& g, uint64_t k,
                                  uint64_t s = 1) const {
    return m_.lookup_rcu(g, k, s);
  }
  std::optional<entry> erase(uint64_t k, uint64_t s = 1) { return m_.erase(k, s); }
  absl::StatusOr<uint64_t> insert_hole(const rcukit::hole_request& r, const value_type& v) {
    auto s = m_.insert_hole(r, v);
    searches.fetch_add(1);
    return s;
  }
  absl::Status assign(uint64_t start, const value_type& v) { return m_.assign(start, v); }
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    m_.for_each(lo, hi, std::forward<F>(f));
  }
  auto range(const rcukit::rcu::read_guard<rcu_flavor>& g, uint64_t lo, uint64_t hi) const {
    return m_.range(g, lo, hi);
  }
  std::optional<entry> lower_bound(uint64_t k) const { return m_.lower_bound(k); }
  std::optional<entry> prev_extent(uint64_t k) const { return m_.prev_extent(k); }
  size_t size() const { return m_.size(); }
  bool empty() const { return m_.empty(); }
  void clear() { m_.clear(); }

 private:
  Inner m_;
};
static_assert(rcukit::extent_index<hooked_index<rcukit::rbtree_extent_map<uint64_t>>>);

// A domain wrapper that knows how full the domain may have been during each
// allocation, so that a concurrent test can tell a legitimate
// ResourceExhausted (the space really was used up) from a wrong one.
//
// The oracle. started_ counts domain allocations that have begun (bumped
// before the call), ended_ counts ranges that are gone (bumped after a free
// returns, or after a failed allocation returns). A range that occupied the
// domain at some instant of a call C was allocated by a call that began
// before C ended and was not freed before C began, so at most
// started(at C's end) - ended(at C's start) - 1 ranges (minus C itself)
// existed during C: that is exact bookkeeping, every range the domain holds
// (users' and the magazines') goes through this wrapper. A range of at most
// kBlock pages touches at most two kBlock-aligned blocks, so when the window
// under C's limit holds more than twice that many whole blocks, one block
// was free for the whole of C, and every request of at most kBlock pages
// (size-aligned or not) fits in it: C must not fail (API.md: insert_hole "may
// not fail while a fitting hole stays free for the whole call").
// seq_cst on both counters: one total order, consistent with real time.
template <class D>
class counted_domain {
 public:
  using index_type = typename D::index_type;
  static constexpr uint64_t kBlock = 64;  // requests must be at most this many pages

  counted_domain(uint64_t granule, uint64_t start_pfn, uint64_t end_pfn) : d_(granule, start_pfn, end_pfn) {}

  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned) {
    const uint64_t ended0 = ended_.load();
    started_.fetch_add(1);
    absl::StatusOr<uint64_t> r = d_.alloc(npages, limit_pfn, size_aligned);
    const uint64_t started1 = started_.load();
    if (r.ok()) return r;
    if (absl::IsResourceExhausted(r.status())) {
      failures_.fetch_add(1);
      const uint64_t others = started1 - ended0 - 1;  // ranges that may have existed during the call
      if (npages <= kBlock && 2 * others < whole_blocks(limit_pfn)) wrong_failures_.fetch_add(1);
    }
    ended_.fetch_add(1);
    return r;
  }
  absl::Status free(uint64_t pfn_lo) {
    absl::Status s = d_.free(pfn_lo);
    if (s.ok()) ended_.fetch_add(1);
    return s;
  }
  std::optional<rcukit::extent> find(uint64_t pfn) const { return d_.find(pfn); }
  const index_type& index() const noexcept { return d_.index(); }

  // ResourceExhausted results in total, and those returned while a whole
  // block stayed free for the whole call (each one a bug).
  uint64_t failures() const { return failures_.load(); }
  uint64_t wrong_failures() const { return wrong_failures_.load(); }

 private:
  // iova_magazine_cache's private domain operations, forwarded; a range that
  // leaves the domain through them counts as ended, as free() does.
  friend struct rcukit::detail::iova_cache_access;
  using access = rcukit::detail::iova_cache_access;
  absl::Status cache_hold(uint64_t pfn, uint64_t n, std::atomic<uint8_t>** entry) {
    return access::hold(d_, pfn, n, entry);
  }
  void cache_release(uint64_t pfn) {
    access::release(d_, pfn);
    ended_.fetch_add(1);
  }
  absl::Status cache_free_direct(uint64_t pfn, uint64_t n) {
    absl::Status s = access::free_direct(d_, pfn, n);
    if (s.ok()) ended_.fetch_add(1);
    return s;
  }

  // Whole kBlock-aligned blocks inside [start_pfn, min(limit_pfn, end_pfn - 1)].
  uint64_t whole_blocks(uint64_t limit_pfn) const {
    const uint64_t hi = std::min(limit_pfn, d_.end_pfn() - 1) + 1;  // exclusive
    const uint64_t first = (d_.start_pfn() + kBlock - 1) / kBlock, last = hi / kBlock;
    return last > first ? last - first : 0;
  }

  D d_;
  std::atomic<uint64_t> started_{0}, ended_{0};
  std::atomic<uint64_t> failures_{0}, wrong_failures_{0};
};

inline double test_seconds() {
  const char* s = std::getenv("RCUKIT_TEST_SECONDS");
  return s != nullptr ? std::atof(s) : 1.0;
}

}  // namespace iova_testing
