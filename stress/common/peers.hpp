// stress/common/peers.hpp -- the libraries people would otherwise pick,
// adapted to the extent operations the harnesses need, used honestly: each
// peer gets the same work and its ordinary, documented locking.
//
//   std_map_spinlock  std::map<start, {size, value}> behind one spin lock
//   btree_mutex       absl::btree_map<start, {size, value}> behind absl::Mutex
//
// They implement the subset of the extent_index surface the harnesses use:
// insert, lookup(key, size), erase(key, size), for_each(lo, hi, f), size().
// lookup/erase follow API.md: the lowest extent overlapping [key, key+size).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "absl/container/btree_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "rcukit/extent.hpp"

namespace rcukit::harness {

// Test-and-test-and-set spin lock, like the kernel's spinlock_t in spirit.
class spin_lock {
 public:
  void lock() noexcept {
    // acquire: pairs with the release store in unlock().
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) __builtin_ia32_pause();  // relaxed: just a hint
    }
  }
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }  // pairs with lock()

 private:
  std::atomic<bool> locked_{false};
};

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

  static absl::Status insert(Map& m, extent e, const T& v) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    if (lookup(m, e.start, e.size)) return absl::AlreadyExistsError("overlap");
    m.emplace(e.start, extent_slot<T>{e.size, v});
    return absl::OkStatus();
  }
  static std::optional<entry> lookup(const Map& m, uint64_t key, uint64_t size) {
    if (!is_valid_query(key, size)) return std::nullopt;
    auto it = m.upper_bound(key);
    if (it != m.begin()) {
      auto p = std::prev(it);
      if (p->first + p->second.size > key) return entry{{p->first, p->second.size}, p->second.value};
    }
    if (it != m.end() && it->first < key + size) return entry{{it->first, it->second.size}, it->second.value};
    return std::nullopt;
  }
  static std::optional<entry> erase(Map& m, uint64_t key, uint64_t size) {
    auto e = lookup(m, key, size);
    if (e) m.erase(e->range.start);
    return e;
  }
  template <class F>
  static void for_each(const Map& m, uint64_t lo, uint64_t hi, F&& f) {
    if (lo >= hi) return;  // [lo, hi) is empty
    auto it = m.upper_bound(lo);
    if (it != m.begin() && std::prev(it)->first + std::prev(it)->second.size > lo) --it;
    for (; it != m.end() && it->first < hi; ++it) f(entry{{it->first, it->second.size}, it->second.value});
  }
};

template <class T>
class std_map_spinlock {
  using map = std::map<uint64_t, extent_slot<T>>;
  using ops = ordered_map_extents<map, T>;

 public:
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
  mutable spin_lock lock_;
  map map_;
};

template <class T>
class btree_mutex {
  using map = absl::btree_map<uint64_t, extent_slot<T>>;
  using ops = ordered_map_extents<map, T>;

 public:
  using entry = extent_entry<T>;
  absl::Status insert(extent e, const T& v) {
    absl::MutexLock g(&mu_);
    return ops::insert(map_, e, v);
  }
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    absl::MutexLock g(&mu_);
    return ops::lookup(map_, key, size);
  }
  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    absl::MutexLock g(&mu_);
    return ops::erase(map_, key, size);
  }
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    absl::MutexLock g(&mu_);
    ops::for_each(map_, lo, hi, f);
  }
  size_t size() const {
    absl::MutexLock g(&mu_);
    return map_.size();
  }

 private:
  mutable absl::Mutex mu_;
  map map_;
};

}  // namespace rcukit::harness
