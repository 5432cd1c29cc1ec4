// SPDX-License-Identifier: MIT
// harness/peers.hpp -- the libraries people would otherwise pick,
// adapted to the extent operations the harnesses need, used honestly: each
// peer gets the same work and its ordinary, documented locking.
//
//   std_map_spinlock  std::map<start, {size, value}> behind one spin lock
//   btree_mutex       absl::btree_map<start, {size, value}> behind std::mutex
//                     (a pthread mutex: ThreadSanitizer sees it; Debian's
//                     Abseil is built without TSan, so absl::Mutex would look unsynchronized)
//
// They implement the subset of the extent_index surface the harnesses and
// benchmarks use: insert, lookup(key, size), lookup_rcu (takes the lock),
// erase(key, size), insert_hole (linear walk, direction::up only),
// for_each(lo, hi, f), size().
// lookup/erase follow API.md: the lowest extent overlapping [key, key+size).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/extent.hpp"

namespace rcukit::harness {

// The same spin lock the rbtree baseline uses (one lock, readers included).
using spin_lock = detail::spin_lock;

// What an ordered peer map stores per start key.
template <class T>
struct extent_slot {
  uint64_t size;
  T value;
};

// Extent semantics over an ordered map keyed by start, shared by both peers.
template <class Map, class T>
struct ordered_map_extents {
  using entry = extent_entry<T>;

  // One descent per call, as a user of the map would write it: the
  // position found for the overlap check is the insert hint, and erase
  // removes through the iterator it found. (Until 2026-12-07 insert and
  // erase descended twice, which slowed the peer's writes; see
  // docs/RESULTS.md, issue 24.)
  static absl::Status insert(Map& m, extent e, const T& v) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    auto it = m.upper_bound(e.start);  // first start > e.start
    if (it != m.begin()) {
      auto p = std::prev(it);
      if (p->first + p->second.size > e.start) return absl::AlreadyExistsError("overlap");
    }
    if (it != m.end() && it->first - e.start < e.size) return absl::AlreadyExistsError("overlap");
    m.emplace_hint(it, e.start, extent_slot<T>{e.size, v});
    return absl::OkStatus();
  }
  static std::optional<entry> lookup(const Map& m, uint64_t key, uint64_t size) {
    const auto it = find_overlap(m, key, size);
    if (it == m.end()) return std::nullopt;
    return entry{{it->first, it->second.size}, it->second.value};
  }
  static std::optional<entry> erase(Map& m, uint64_t key, uint64_t size) {
    const auto it = find_overlap(m, key, size);
    if (it == m.end()) return std::nullopt;
    entry e{{it->first, it->second.size}, it->second.value};
    m.erase(it);
    return e;
  }
  // The lowest extent overlapping [key, key + size), or end().
  template <class M>
  static auto find_overlap(M& m, uint64_t key, uint64_t size) -> decltype(m.end()) {
    const auto sz = clamp_query(key, size);  // the query semantics every index has (extent.hpp)
    if (!sz) return m.end();
    auto it = m.upper_bound(key);
    if (it != m.begin()) {
      auto p = std::prev(it);
      if (p->first + p->second.size > key) return p;
    }
    if (it != m.end() && it->first - key < *sz) return it;
    return m.end();
  }
  // Linear next-fit walk over the gaps from max(hint, floor) upward, then
  // from floor (direction::up of API.md); what a plain ordered map offers.
  static absl::StatusOr<uint64_t> insert_hole_up(Map& m, const hole_request& r, const T& v) {
    if (auto s = validate_hole_request(r); !s.ok()) return s;
    if (r.dir != hole_request::direction::up) return absl::UnimplementedError("peer maps walk up only");
    for (const detail::hole_window w : {detail::first_pass(r), detail::second_pass(r)}) {
      uint64_t cursor = w.lo;
      auto it = m.upper_bound(cursor);
      if (it != m.begin()) cursor = std::max(cursor, std::prev(it)->first + std::prev(it)->second.size);
      for (;; ++it) {
        const uint64_t hi = it == m.end() ? w.hi : std::min(it->first, w.hi);
        if (cursor < hi) {
          if (auto s = detail::fit_lowest(cursor, hi, r.size, r.align)) {
            m.emplace(*s, extent_slot<T>{r.size, v});
            return *s;
          }
        }
        if (it == m.end() || it->first >= w.hi) break;
        cursor = std::max(cursor, it->first + it->second.size);
      }
    }
    return absl::ResourceExhaustedError("no hole");
  }
  template <class F>
  static void for_each(const Map& m, uint64_t lo, uint64_t hi, F&& f) {
    if (lo >= hi) return;  // [lo, hi) is empty
    auto it = m.upper_bound(lo);
    if (it != m.begin() && std::prev(it)->first + std::prev(it)->second.size > lo) --it;
    for (; it != m.end() && it->first < hi; ++it) f(entry{{it->first, it->second.size}, it->second.value});
  }
};

// An ordered map of extents behind one lock, taken by every call (a peer has
// no read side). Map is keyed by start and stores extent_slot<T>.
template <class Map, class Lock, class T>
class locked_extent_map {
  using ops = ordered_map_extents<Map, T>;

 public:
  using rcu_flavor = rcu::default_flavor;
  using entry = extent_entry<T>;
  absl::Status insert(extent e, const T& v) {
    std::lock_guard g(lock_);
    return ops::insert(map_, e, v);
  }
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    std::lock_guard g(lock_);
    return ops::lookup(map_, key, size);
  }
  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    std::lock_guard g(lock_);
    return ops::erase(map_, key, size);
  }
  std::optional<entry> lookup_rcu(const rcu::read_guard<>&, uint64_t key, uint64_t size = 1) const {
    return lookup(key, size);
  }
  absl::StatusOr<uint64_t> insert_hole(const hole_request& r, const T& v) {
    std::lock_guard g(lock_);
    return ops::insert_hole_up(map_, r, v);
  }
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    std::lock_guard g(lock_);
    ops::for_each(map_, lo, hi, f);
  }
  size_t size() const {
    std::lock_guard g(lock_);
    return map_.size();
  }

 private:
  mutable Lock lock_;
  Map map_;
};

template <class T>
using std_map_spinlock = locked_extent_map<std::map<uint64_t, extent_slot<T>>, spin_lock, T>;
template <class T>
using btree_mutex = locked_extent_map<absl::btree_map<uint64_t, extent_slot<T>>, std::mutex, T>;

}  // namespace rcukit::harness
