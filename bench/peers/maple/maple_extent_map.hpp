// SPDX-License-Identifier: MIT
//
// bench/peers/maple/maple_extent_map.hpp -- the kernel's maple tree as a peer
// of rcukit's extent indexes: the subset of the extent_index surface the
// harnesses use (insert, lookup, lookup_rcu, erase, for_each, size), and an
// IOVA allocation over the same tree. Linked only into the GPL-2.0 binaries
// of bench/peers/maple/ (README.md there); the library never includes it.
//
// The tree is the kernel's (lib/maple_tree.c via maple_unit.c), in RCU mode
// with gap tracking: readers walk it under rcu_read_lock() and never block;
// every writer takes the tree's one lock (a pthread mutex in the kernel's
// user-space shims) and copies the nodes it changes. Extents [s, s + n) are
// stored as the inclusive ranges [s, s + n - 1] the tree keeps.
//
// Node is where the tree's nodes come from (maple_c.h):
//   slab_emulation  the kernel test harness's kmem_cache emulation as
//                   shipped (tools/testing/shared/linux.c)
//   node_cache      a plain per-thread node cache (maple_node_cache.c)
//
// Every call enters rcukit's read side of the memb flavour first: that
// registers the thread with liburcu's memb flavour, which the tree's
// rcu_read_lock() and call_rcu() are (nesting costs a counter increment).
#pragma once

#include <errno.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "maple_c.h"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::maple {

#define RCUKIT_MAPLE_NODE_POLICY(name, v, label)                                                 \
  struct name {                                                                                  \
    static constexpr const char* kLabel = label;                                                 \
    static void* create() { return rcukit_maple_##v##_create(); }                                \
    static void destroy(void* t) { rcukit_maple_##v##_destroy(t); }                              \
    static int insert(void* t, unsigned long first, unsigned long last, unsigned long value) {   \
      return rcukit_maple_##v##_insert(t, first, last, value);                                   \
    }                                                                                            \
    static int find(void* t, unsigned long lo, unsigned long hi, rcukit_maple_range* out) {      \
      return rcukit_maple_##v##_find(t, lo, hi, out);                                            \
    }                                                                                            \
    static int erase(void* t, unsigned long index, rcukit_maple_range* out) {                    \
      return rcukit_maple_##v##_erase(t, index, out);                                            \
    }                                                                                            \
    static unsigned long walk(void* t, unsigned long lo, unsigned long hi, rcukit_maple_visit f, \
                              void* ctx) {                                                       \
      return rcukit_maple_##v##_walk(t, lo, hi, f, ctx);                                         \
    }                                                                                            \
    static int alloc_rev(void* t, unsigned long size, unsigned long align, unsigned long min,    \
                         unsigned long max, unsigned long value, unsigned long* start) {         \
      return rcukit_maple_##v##_alloc_rev(t, size, align, min, max, value, start);               \
    }                                                                                            \
    static unsigned long node_bytes() { return rcukit_maple_##v##_node_bytes(); }                \
  }

RCUKIT_MAPLE_NODE_POLICY(slab_emulation, slab, "maple tree (kernel 6.12; the test harness's slab emulation)");
RCUKIT_MAPLE_NODE_POLICY(node_cache, node_cache, "maple tree (kernel 6.12; a per-thread node cache)");
#undef RCUKIT_MAPLE_NODE_POLICY

// The values the tree can hold: XArray value entries carry 63 bits.
inline constexpr uint64_t kMaxValue = (uint64_t{1} << 63) - 1;

inline absl::Status status_of(int rc, const char* what) {
  switch (rc) {
    case 0:
      return absl::OkStatus();
    case -EEXIST:
      return absl::AlreadyExistsError(what);
    case -EBUSY:
      return absl::ResourceExhaustedError(what);
    case -ENOMEM:
      return absl::ResourceExhaustedError("maple tree: out of memory");
    case -EINVAL:
      return absl::InvalidArgumentError(what);
    default:
      return absl::InternalError(what);
  }
}

// One maple tree; the calls' costs and guarantees are the tree's own.
template <class Node>
class tree {
 public:
  tree() : t_(Node::create()) {}
  tree(const tree&) = delete;
  tree& operator=(const tree&) = delete;
  // No concurrent use; the nodes go through call_rcu (rcu::barrier() frees them).
  ~tree() {
    if (t_ != nullptr) Node::destroy(t_);
  }
  void* get() const { return t_; }

 private:
  void* t_;
};

// Extents over a maple tree, values up to kMaxValue. Readers never block;
// writers serialise on the tree's lock.
template <class Node>
class extent_map {
 public:
  using entry = extent_entry<uint64_t>;

  // AlreadyExists if e overlaps a stored extent; InvalidArgument for an
  // invalid extent or a value above kMaxValue.
  absl::Status insert(extent e, uint64_t v) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    if (v > kMaxValue) return absl::InvalidArgumentError("maple tree values carry 63 bits");
    rcu::read_guard<rcu::memb> g;
    return status_of(Node::insert(t_.get(), e.start, e.start + (e.size - 1), v), "overlap");
  }
  // The lowest extent overlapping [key, key + size).
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    rcu::read_guard<rcu::memb> g;
    return find(key, size);
  }
  std::optional<entry> lookup_rcu(const rcu::read_guard<rcu::memb>&, uint64_t key, uint64_t size = 1) const {
    return find(key, size);
  }
  // Removes the lowest extent overlapping [key, key + size) and returns it.
  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    if (!is_valid_extent(key, size)) return std::nullopt;
    rcu::read_guard<rcu::memb> g;
    uint64_t at = key;
    if (size > 1) {
      auto e = find(key, size);
      if (!e) return std::nullopt;
      at = e->range.start;
    }
    rcukit_maple_range r;
    if (!Node::erase(t_.get(), at, &r)) return std::nullopt;
    return to_entry(r);
  }
  // f(entry) for each extent overlapping [lo, hi), in order; f may return
  // false to stop.
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (lo >= hi) return;
    rcu::read_guard<rcu::memb> g;
    auto visit = +[](void* ctx, const rcukit_maple_range* r) -> int {
      F& fn = *static_cast<F*>(ctx);
      if constexpr (std::is_same_v<decltype(fn(std::declval<const entry&>())), bool>) {
        return fn(to_entry(*r)) ? 1 : 0;
      } else {
        fn(to_entry(*r));
        return 1;
      }
    };
    Node::walk(t_.get(), lo, hi - 1, visit, &f);
  }
  // Counts the extents (a walk: O(n)).
  size_t size() const {
    size_t n = 0;
    for_each(0, UINT64_MAX, [&](const entry&) { ++n; });
    return n;
  }
  void* raw() const { return t_.get(); }

 private:
  static entry to_entry(const rcukit_maple_range& r) {
    return entry{{r.first, r.last - r.first + 1}, r.value};
  }
  std::optional<entry> find(uint64_t key, uint64_t size) const {
    if (!is_valid_extent(key, size)) return std::nullopt;
    rcukit_maple_range r;
    if (!Node::find(t_.get(), key, key + (size - 1), &r)) return std::nullopt;
    return to_entry(r);
  }

  tree<Node> t_;
};

// An IOVA domain over a maple tree: the allocation the 2026 kernel patches
// make (mas_empty_area_rev under the tree's lock, top-down), size-aligned.
// Pages [start_pfn, end_pfn); reserved ranges and allocations are entries
// with different values.
template <class Node>
class iova_tree {
 public:
  static constexpr uint64_t kAllocated = 1, kReserved = 2;

  iova_tree(uint64_t start_pfn, uint64_t end_pfn) : start_(start_pfn), end_(end_pfn) {}

  // The highest size-aligned range of npages ending at or below limit_pfn
  // (inclusive); ResourceExhausted when none fits.
  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn) {
    if (npages == 0 || limit_pfn < start_) return absl::InvalidArgumentError("iova_tree::alloc");
    uint64_t align = 1;
    while (align < npages) align <<= 1;
    unsigned long s = 0;
    rcu::read_guard<rcu::memb> g;
    const int rc =
        Node::alloc_rev(t_.get(), npages, align, start_, std::min(limit_pfn, end_ - 1), kAllocated, &s);
    if (rc != 0) return status_of(rc, "no room");
    return s;
  }
  // NotFound unless pfn starts a live allocation.
  absl::Status free(uint64_t pfn) {
    rcu::read_guard<rcu::memb> g;
    rcukit_maple_range r;
    if (!Node::find(t_.get(), pfn, pfn, &r) || r.first != pfn || r.value != kAllocated) {
      return absl::NotFoundError("not a live allocation");
    }
    Node::erase(t_.get(), pfn, &r);
    return absl::OkStatus();
  }
  absl::Status reserve(uint64_t lo, uint64_t hi) {
    rcu::read_guard<rcu::memb> g;
    return status_of(Node::insert(t_.get(), lo, hi, kReserved), "overlaps an allocation");
  }
  // True if no allocation is live (reservations aside). Quiescent.
  bool no_allocations() const {
    bool none = true;
    rcu::read_guard<rcu::memb> g;
    auto visit = +[](void* ctx, const rcukit_maple_range* r) -> int {
      if (r->value == kAllocated) *static_cast<bool*>(ctx) = false;
      return 1;
    };
    Node::walk(t_.get(), 0, ~0ul, visit, &none);
    return none;
  }

 private:
  const uint64_t start_, end_;
  tree<Node> t_;
};

}  // namespace rcukit::maple
