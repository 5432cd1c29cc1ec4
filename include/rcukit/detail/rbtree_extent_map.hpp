// SPDX-License-Identifier: MIT
// rcukit/detail/rbtree_extent_map.hpp -- extents in an intrusive rbtree
// behind one global spinlock: the 2013 kernel baseline and its augmented
// (subtree max-gap) variant, one class template with a compile-time switch.
// The implementation of the maps whose contract <rcukit/rbtree.hpp> states.
//
// The idea. Every extent [start, start + size) is one rbtree node keyed by
// start. One spinlock (detail/spin_lock.hpp) serialises everything,
// readers included, exactly as drivers/iommu/iova.c did in 2013 with
// iova_rbtree_lock; nodes are freed right after unlinking (no reader can see
// them without the lock, so no RCU is needed).
//
// insert_hole, baseline (Augmented = false). As the kernel's
// __alloc_and_insert_iova_range: start at the node next to the hint (the
// kernel kept a pointer to it, the "cached node"; here the domain above
// passes the hint as a number and the start node is found by one O(log n)
// descent) and walk the gaps between neighbours one node at a time, with
// rb::prev for direction::down (top-down, as the IOMMU allocates) and rb::next
// for direction::up, until a gap fits or the window ends; then the
// wrap-around pass of API.md from the window's other end. Cost: linear in the
// number of extents skipped, under the global lock. Deliberately not improved.
//
// insert_hole, augmented (Augmented = true). Each node also stores gap =
// start - (end of the previous extent, or 0) and max_gap = the largest gap in
// its subtree, kept exact through rb::augment_callbacks on every rotation,
// insert and erase (erase also changes the successor's gap). The search
// descends in key order and skips every subtree whose max_gap < size or that
// lies outside the window, so it is O(log n) unless alignment makes many
// large-enough gaps unusable. This is the shape of FreeBSD's iommu_gas and of
// the 2026 augmented-rbtree proposal for alloc_iova. Still one lock.
// The gap after the last extent (up to UINT64_MAX) is not stored in any node;
// both searches treat it explicitly.
//
// Invariants (check_invariants() verifies all of them):
//  (1) the rbtree invariants of detail/rbtree_core.hpp;
//  (2) every extent is valid and in-order extents do not overlap;
//  (3) count_ equals the number of nodes;
//  (4) Augmented: gap = start - previous end (0 for the first node) and
//      max_gap = max(gap, children's max_gap) for every node;
//  (5) every read or write of the tree and count_ happens with lock_ held.
//
// Results are exactly those of API.md (and tests/support/extent_model.hpp).
// Not supported: lock-free readers (by design: this is the baseline), RCU
// leaf iteration (first_leaf/next_leaf are skiplist-only), preload tokens
// (a node is allocated before the lock is taken instead).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/fatal.hpp"
#include "rcukit/detail/rbtree_core.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// Node allocation policy: plain nothrow new/delete. Tests substitute a
// policy that fails on demand (allocation-failure injection).
struct rb_default_alloc {
  static void* allocate(std::size_t n) noexcept { return ::operator new(n, std::nothrow); }
  static void deallocate(void* p, std::size_t) noexcept { ::operator delete(p); }
};

// The rb::node is a base, so node* <-> rb_extent_node* is a static_cast.
template <class T>
struct rb_extent_node : rb::node {
  rb_extent_node(extent e, const T& v) noexcept : range(e), value(v) {}
  extent range;
  uint64_t gap = 0;      // Augmented only: free space right before range.start
  uint64_t max_gap = 0;  // Augmented only: max gap in this subtree
  T value;
};

template <class T>
inline rb_extent_node<T>* as_extent(rb::node* n) noexcept {
  return static_cast<rb_extent_node<T>*>(n);
}
template <class T>
inline const rb_extent_node<T>* as_extent(const rb::node* n) noexcept {
  return static_cast<const rb_extent_node<T>*>(n);
}

template <class T>
struct rb_gap_compute {
  static uint64_t max_of(const rb::node* n) noexcept { return n == nullptr ? 0 : as_extent<T>(n)->max_gap; }
  static bool recompute(rb::node* n) noexcept {
    auto* e = as_extent<T>(n);
    uint64_t m = e->gap;
    const uint64_t l = max_of(n->left), r = max_of(n->right);
    if (l > m) m = l;
    if (r > m) m = r;
    if (m == e->max_gap) return false;
    e->max_gap = m;
    return true;
  }
  static void copy_summary(const rb::node* from, rb::node* to) noexcept {
    as_extent<T>(to)->max_gap = as_extent<T>(from)->max_gap;
  }
};

template <class T, class Rcu, bool Augmented, class Alloc>
class rb_extent_map_impl {
  static_assert(std::is_trivially_copyable_v<T>,
                "rcukit rbtree extent maps: the value type T must be trivially copyable "
                "(results are returned by value)");

  using node_t = rb_extent_node<T>;
  using callbacks = std::conditional_t<Augmented, rb::augment_callbacks<rb_gap_compute<T>>, rb::no_augment>;

 public:
  using value_type = T;
  using rcu_flavor = Rcu;
  using entry = extent_entry<T>;

  rb_extent_map_impl() = default;
  rb_extent_map_impl(const rb_extent_map_impl&) = delete;
  rb_extent_map_impl& operator=(const rb_extent_map_impl&) = delete;
  ~rb_extent_map_impl() { free_all(root_.top); }

  // The members' contracts are stated in <rcukit/rbtree.hpp>
  // (basic_rbtree_extent_map); the comments here are about how.

  // The node is allocated before the lock is taken.
  absl::Status insert(extent e, const T& v) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    node_t* n = make_node(e, v);
    if (n == nullptr) return absl::ResourceExhaustedError("rbtree_extent_map: node allocation failed");
    bool linked;
    {
      std::lock_guard<spin_lock> g(lock_);
      linked = link_locked(n);
    }
    if (!linked) {
      destroy(n);
      return absl::AlreadyExistsError("rbtree_extent_map: extent overlaps an existing extent");
    }
    return absl::OkStatus();
  }

  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    const auto sz = clamp_query(key, size);
    if (!sz) return std::nullopt;
    std::lock_guard<spin_lock> g(lock_);
    const node_t* n = find_overlap_locked(key, *sz);
    if (n == nullptr) return std::nullopt;
    return entry{n->range, n->value};
  }

  // The baseline has no lockless read path: the global lock, as lookup().
  std::optional<entry> lookup_rcu(const rcu::read_guard<Rcu>&, uint64_t key, uint64_t size = 1) const {
    return lookup(key, size);
  }

  // The node is freed after the lock is dropped.
  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    const auto sz = clamp_query(key, size);
    if (!sz) return std::nullopt;
    node_t* n;
    {
      std::lock_guard<spin_lock> g(lock_);
      n = find_overlap_locked(key, *sz);
      if (n == nullptr) return std::nullopt;
      unlink_locked(n);
    }
    entry out{n->range, n->value};
    destroy(n);
    return out;
  }

  // Both passes of API.md (the hint window, then the whole window) under one
  // lock hold; the node is allocated before it.
  absl::StatusOr<uint64_t> insert_hole(const hole_request& r, const T& v) {
    if (auto s = validate_hole_request(r); !s.ok()) return s;
    node_t* n = make_node(extent{0, r.size}, v);
    if (n == nullptr) return absl::ResourceExhaustedError("rbtree_extent_map: node allocation failed");
    std::optional<uint64_t> start;
    {
      std::lock_guard<spin_lock> g(lock_);
      start = find_hole_locked(first_pass(r), r);
      if (!start) start = find_hole_locked(second_pass(r), r);
      if (start) {
        n->range.start = *start;
        const bool linked = link_locked(n);
        if (!linked) {
          fatal("rbtree_extent_map", "internal corruption: insert_hole found a hole that overlaps");
        }
      }
    }
    if (!start) {
      destroy(n);
      return absl::ResourceExhaustedError("rbtree_extent_map: no hole fits");
    }
    return *start;
  }

  // The value changes in place under the lock: a reader sees the old or the new.
  absl::Status assign(uint64_t start, const T& v) {
    std::lock_guard<spin_lock> g(lock_);
    rb::node* n = floor_locked(start);
    if (n == nullptr || as_extent<T>(n)->range.start != start) {
      return absl::NotFoundError("rbtree_extent_map::assign: no extent starts there");
    }
    as_extent<T>(n)->value = v;
    return absl::OkStatus();
  }

  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (hi <= lo) return;
    std::lock_guard<spin_lock> g(lock_);
    for (const rb::node* n = first_overlap_locked(lo); n != nullptr; n = rb::next(n)) {
      const node_t* e = as_extent<T>(n);
      if (e->range.start >= hi) break;
      const entry copy{e->range, e->value};
      if (!visit_continues(f, copy)) break;
    }
  }

  // The baseline has no lock-free walk: each step takes the global lock and
  // finds the next extent by key, so the nodes may change between steps
  // (the guard protects nothing here; the signature is the common one).
  class range_cursor {
   public:
    range_cursor(const rb_extent_map_impl* m, uint64_t lo, uint64_t hi) : m_(m), hi_(hi) {
      if (lo >= hi) return;
      std::lock_guard<spin_lock> g(m_->lock_);
      take(m_->first_overlap_locked(lo));
    }
    const entry* get() const noexcept { return cur_ ? &*cur_ : nullptr; }
    void next() {
      const uint64_t after = cur_->range.start + 1;  // no overflow: start < end <= UINT64_MAX
      std::lock_guard<spin_lock> g(m_->lock_);
      take(m_->first_at_or_after_locked(after));
    }

   private:
    void take(const rb::node* n) {
      cur_.reset();
      if (n != nullptr && as_extent<T>(n)->range.start < hi_) cur_ = entry{as_extent<T>(n)->range, as_extent<T>(n)->value};
    }
    const rb_extent_map_impl* m_;
    uint64_t hi_;
    std::optional<entry> cur_;
  };
  detail::cursor_view<range_cursor> range(const rcu::read_guard<Rcu>&, uint64_t lo, uint64_t hi) const {
    return detail::cursor_view<range_cursor>(range_cursor(this, lo, hi));
  }

  std::optional<entry> lower_bound(uint64_t key) const {
    std::lock_guard<spin_lock> g(lock_);
    const rb::node* best = first_at_or_after_locked(key);
    if (best == nullptr) return std::nullopt;
    return entry{as_extent<T>(best)->range, as_extent<T>(best)->value};
  }

  std::optional<entry> prev_extent(uint64_t key) const {
    if (key == 0) return std::nullopt;
    std::lock_guard<spin_lock> g(lock_);
    const rb::node* n = floor_locked(key - 1);
    if (n == nullptr) return std::nullopt;
    return entry{as_extent<T>(n)->range, as_extent<T>(n)->value};
  }

  size_t size() const {
    std::lock_guard<spin_lock> g(lock_);
    return count_;
  }
  bool empty() const { return size() == 0; }

  // Nodes are freed after the lock is dropped.
  void clear() {
    rb::node* top;
    {
      std::lock_guard<spin_lock> g(lock_);
      top = root_.top;
      root_.top = nullptr;
      count_ = 0;
    }
    free_all(top);
  }

  // Invariants (1)-(4), under the lock.
  absl::Status check_invariants() const {
    std::lock_guard<spin_lock> g(lock_);
    std::string err;
    size_t nodes = 0;
    if (!rb::is_black(root_.top)) return absl::InternalError("root is red");
    if (root_.top != nullptr && rb::parent(root_.top) != nullptr) {
      return absl::InternalError("root has a parent");
    }
    if (check_subtree(root_.top, nullptr, &nodes, &err) < 0) return absl::InternalError(err);
    if (nodes != count_) return absl::InternalError("count_ differs from the number of nodes");
    uint64_t prev_end = 0;
    bool first = true;
    for (const rb::node* n = rb::first(&root_); n != nullptr; n = rb::next(n)) {
      const node_t* e = as_extent<T>(n);
      if (!is_valid_extent(e->range.start, e->range.size)) return absl::InternalError("invalid extent");
      if (!first && e->range.start < prev_end) return absl::InternalError("extents overlap or are unsorted");
      if constexpr (Augmented) {
        if (e->gap != e->range.start - (first ? 0 : prev_end)) {
          return absl::InternalError("stale gap at " + std::to_string(e->range.start));
        }
      }
      prev_end = e->range.end();
      first = false;
    }
    return absl::OkStatus();
  }

 private:
  static node_t* make_node(extent e, const T& v) noexcept {
    void* mem = Alloc::allocate(sizeof(node_t));
    if (mem == nullptr) return nullptr;
    return new (mem) node_t(e, v);
  }
  static void destroy(node_t* n) noexcept {
    n->~node_t();
    Alloc::deallocate(n, sizeof(node_t));
  }
  static void free_all(rb::node* top) noexcept {
    rb::root tmp;
    tmp.top = top;
    for (rb::node* n = rb::first_postorder(&tmp); n != nullptr;) {
      rb::node* nx = rb::next_postorder(n);
      destroy(as_extent<T>(n));
      n = nx;
    }
  }

  // Last node with start <= key, or nullptr.
  const rb::node* floor_locked(uint64_t key) const noexcept {
    const rb::node* n = root_.top;
    const rb::node* best = nullptr;
    while (n != nullptr) {
      if (as_extent<T>(n)->range.start <= key) {
        best = n;
        n = n->right;
      } else {
        n = n->left;
      }
    }
    return best;
  }
  rb::node* floor_locked(uint64_t key) noexcept {
    return const_cast<rb::node*>(std::as_const(*this).floor_locked(key));
  }

  // First node with start >= key, or nullptr.
  const rb::node* first_at_or_after_locked(uint64_t key) const noexcept {
    const rb::node* n = root_.top;
    const rb::node* best = nullptr;
    while (n != nullptr) {
      if (as_extent<T>(n)->range.start >= key) {
        best = n;
        n = n->left;
      } else {
        n = n->right;
      }
    }
    return best;
  }
  // First node that ends after lo (the first a walk from lo yields), or nullptr.
  const rb::node* first_overlap_locked(uint64_t lo) const noexcept {
    const rb::node* n = floor_locked(lo);
    if (n != nullptr && as_extent<T>(n)->range.end() > lo) return n;
    return n == nullptr ? rb::first(&root_) : rb::next(n);
  }

  // Lowest extent overlapping [key, key + size) (a valid query).
  node_t* find_overlap_locked(uint64_t key, uint64_t size) const noexcept {
    const rb::node* f = floor_locked(key);
    if (f != nullptr && as_extent<T>(f)->range.end() > key) return const_cast<node_t*>(as_extent<T>(f));
    const rb::node* nx = f == nullptr ? rb::first(&root_) : rb::next(f);
    if (nx != nullptr && as_extent<T>(nx)->range.start < key + size) {
      return const_cast<node_t*>(as_extent<T>(nx));
    }
    return nullptr;
  }

  static uint64_t end_of(const rb::node* n) noexcept {
    return n == nullptr ? 0 : as_extent<T>(n)->range.end();
  }

  // Links n unless it overlaps a neighbour. O(log n).
  bool link_locked(node_t* n) noexcept {
    const uint64_t key = n->range.start;
    rb::node** link = &root_.top;
    rb::node* p = nullptr;
    rb::node* pred = nullptr;  // last node passed on the right: start < key
    rb::node* succ = nullptr;  // last node passed on the left: start > key
    while (*link != nullptr) {
      p = *link;
      const uint64_t s = as_extent<T>(p)->range.start;
      if (key < s) {
        succ = p;
        link = &p->left;
      } else if (key > s) {
        pred = p;
        link = &p->right;
      } else {
        return false;
      }
    }
    if (pred != nullptr && as_extent<T>(pred)->range.end() > key) return false;
    if (succ != nullptr && as_extent<T>(succ)->range.start < n->range.end()) return false;
    rb::link_node(n, p, link);
    if constexpr (Augmented) {
      n->gap = key - end_of(pred);
      n->max_gap = n->gap;
      callbacks{}.propagate(p, nullptr);
      rb::insert_color(n, &root_, callbacks{});
      if (succ != nullptr) {
        as_extent<T>(succ)->gap = as_extent<T>(succ)->range.start - n->range.end();
        callbacks{}.propagate(succ, nullptr);
      }
    } else {
      rb::insert_color(n, &root_);
    }
    ++count_;
    return true;
  }

  void unlink_locked(node_t* n) noexcept {
    if constexpr (Augmented) {
      rb::node* succ = rb::next(n);
      const uint64_t pred_end = end_of(rb::prev(n));
      rb::erase(n, &root_, callbacks{});
      if (succ != nullptr) {
        as_extent<T>(succ)->gap = as_extent<T>(succ)->range.start - pred_end;
        callbacks{}.propagate(succ, nullptr);
      }
    } else {
      rb::erase(n, &root_);
    }
    --count_;
  }

  // --- hole search ---------------------------------------------------------
  std::optional<uint64_t> find_hole_locked(hole_window w, const hole_request& r) const noexcept {
    if (w.hi < w.lo) return std::nullopt;
    if constexpr (Augmented) {
      return r.dir == hole_request::direction::up ? aug_up(w, r) : aug_down(w, r);
    } else {
      return r.dir == hole_request::direction::up ? linear_up(w, r) : linear_down(w, r);
    }
  }

  // Candidate inside the free gap [glo, ghi) clipped to the window.
  static std::optional<uint64_t> fit_in(uint64_t glo, uint64_t ghi, hole_window w, const hole_request& r,
                                        bool lowest) noexcept {
    const uint64_t lo = glo > w.lo ? glo : w.lo;
    const uint64_t hi = ghi < w.hi ? ghi : w.hi;
    if (lo >= hi) return std::nullopt;
    return lowest ? fit_lowest(lo, hi, r.size, r.align) : fit_highest(lo, hi, r.size, r.align);
  }

  static constexpr uint64_t kTop = std::numeric_limits<uint64_t>::max();

  // Baseline, up: from the gap containing w.lo, rb::next until w.hi.
  std::optional<uint64_t> linear_up(hole_window w, const hole_request& r) const noexcept {
    const rb::node* n = floor_locked(w.lo);
    uint64_t glo = end_of(n);
    const rb::node* nx = n == nullptr ? rb::first(&root_) : rb::next(n);
    for (;;) {
      const uint64_t ghi = nx == nullptr ? kTop : as_extent<T>(nx)->range.start;
      if (auto s = fit_in(glo, ghi, w, r, true)) return s;
      if (nx == nullptr || ghi >= w.hi) return std::nullopt;
      glo = as_extent<T>(nx)->range.end();
      nx = rb::next(nx);
    }
  }

  // Baseline, down (the kernel's walk): from the gap just below w.hi,
  // rb::prev until w.lo.
  std::optional<uint64_t> linear_down(hole_window w, const hole_request& r) const noexcept {
    const rb::node* below = w.hi == 0 ? nullptr : floor_locked(w.hi - 1);  // last node with start < w.hi
    const rb::node* above = below == nullptr ? rb::first(&root_) : rb::next(below);
    uint64_t ghi = above == nullptr ? kTop : as_extent<T>(above)->range.start;
    for (;;) {
      const uint64_t glo = end_of(below);
      if (auto s = fit_in(glo, ghi, w, r, false)) return s;
      if (below == nullptr || as_extent<T>(below)->range.start <= w.lo) return std::nullopt;
      ghi = as_extent<T>(below)->range.start;
      below = rb::prev(below);
    }
  }

  // Augmented, up: lowest fitting gap, pruning by max_gap and window.
  std::optional<uint64_t> aug_up(hole_window w, const hole_request& r) const noexcept {
    if (auto s = aug_up_rec(root_.top, w, r)) return s;
    return fit_in(end_of(rb::last(&root_)), kTop, w, r, true);  // the gap after the last extent
  }
  std::optional<uint64_t> aug_up_rec(const rb::node* n, hole_window w, const hole_request& r) const noexcept {
    if (n == nullptr || as_extent<T>(n)->max_gap < r.size) return std::nullopt;
    const node_t* e = as_extent<T>(n);
    // Gaps in the left subtree end before e->range.start.
    if (e->range.start > w.lo) {
      if (auto s = aug_up_rec(n->left, w, r)) return s;
    }
    if (e->gap >= r.size) {
      if (auto s = fit_in(e->range.start - e->gap, e->range.start, w, r, true)) return s;
    }
    // Gaps in the right subtree start at or after e->range.end().
    if (e->range.end() < w.hi) return aug_up_rec(n->right, w, r);
    return std::nullopt;
  }

  // Augmented, down: highest fitting gap.
  std::optional<uint64_t> aug_down(hole_window w, const hole_request& r) const noexcept {
    if (auto s = fit_in(end_of(rb::last(&root_)), kTop, w, r, false)) return s;
    return aug_down_rec(root_.top, w, r);
  }
  std::optional<uint64_t> aug_down_rec(const rb::node* n, hole_window w,
                                       const hole_request& r) const noexcept {
    if (n == nullptr || as_extent<T>(n)->max_gap < r.size) return std::nullopt;
    const node_t* e = as_extent<T>(n);
    if (e->range.end() < w.hi) {
      if (auto s = aug_down_rec(n->right, w, r)) return s;
    }
    if (e->gap >= r.size) {
      if (auto s = fit_in(e->range.start - e->gap, e->range.start, w, r, false)) return s;
    }
    if (e->range.start > w.lo) return aug_down_rec(n->left, w, r);
    return std::nullopt;
  }

  // Returns the black height or -1 (with *err set).
  int check_subtree(const rb::node* n, const rb::node* expect_parent, size_t* nodes, std::string* err) const {
    if (n == nullptr) return 1;
    ++*nodes;
    if (rb::parent(n) != expect_parent) {
      *err = "parent link broken";
      return -1;
    }
    if (rb::is_red(n) && (rb::is_red(n->left) || rb::is_red(n->right))) {
      *err = "red node with a red child";
      return -1;
    }
    const int lh = check_subtree(n->left, n, nodes, err);
    if (lh < 0) return -1;
    const int rh = check_subtree(n->right, n, nodes, err);
    if (rh < 0) return -1;
    if (lh != rh) {
      *err = "black heights differ";
      return -1;
    }
    if constexpr (Augmented) {
      uint64_t m = as_extent<T>(n)->gap;
      if (rb_gap_compute<T>::max_of(n->left) > m) m = rb_gap_compute<T>::max_of(n->left);
      if (rb_gap_compute<T>::max_of(n->right) > m) m = rb_gap_compute<T>::max_of(n->right);
      if (m != as_extent<T>(n)->max_gap) {
        *err = "stale max_gap at " + std::to_string(as_extent<T>(n)->range.start);
        return -1;
      }
    }
    return lh + (rb::is_black(n) ? 1 : 0);
  }

  mutable spin_lock lock_;
  rb::root root_;     // guarded by lock_
  size_t count_ = 0;  // guarded by lock_
};

}  // namespace rcukit::detail
