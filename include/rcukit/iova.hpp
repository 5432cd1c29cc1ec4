// rcukit/iova.hpp -- the IOVA hole allocator over any extent index, and the
// per-thread magazine cache in front of it.
//
// The idea. An I/O virtual address domain hands out page ranges
// [pfn_lo, pfn_lo + npages) below a per-request inclusive limit, top-down,
// as Linux's drivers/iommu/iova.c alloc_iova() does: allocations live as
// extents in an extent index (extent_skiplist, rbtree_extent_map,
// rbtree_extent_map_augmented -- anything satisfying rcukit::extent_index),
// and one allocation is one insert_hole(direction::down) whose hint is the
// domain's cached position (the kernel's cached_node): after an allocation
// the next search starts below it; freeing a range at or above the cached
// position moves the cache up to the allocation above the freed range.
// The index's two-pass insert_hole (hint window first, then the whole
// [start_pfn, limit] window) is the 2020 kernel fix: a cached-node miss can
// never turn a fitting request into a failure. Which index is used decides
// the cost: the rbtree baseline walks linearly under one lock (the 2013
// kernel), the augmented rbtree and the skiplist search in O(log n).
//
// iova_magazine_cache puts the kernel's per-CPU range caches
// (detail/iova_magazine.hpp) in front of a domain: per-thread loaded and
// previous magazines per power-of-two size class, a bounded depot, direct
// domain calls for sizes above 32 pages.
//
// Invariants:
//  (1) every allocation [pfn_lo, pfn_lo + n) has start_pfn <= pfn_lo,
//      pfn_lo + n <= end_pfn, pfn_lo + n - 1 <= limit_pfn of its request,
//      and pfn_lo % bit_ceil(n) == 0 when size_aligned;
//  (2) allocations and reservations never overlap (the index's invariant);
//  (3) reserved ranges are never handed out and never freed;
//  (4) the cached hint is only a hint (relaxed atomic): any value gives a
//      correct result, only the search start differs.
//
// Not supported: the kernel's 32-bit/64-bit split caches (one hint serves
// every limit; a hint above a request's limit is ignored by insert_hole),
// the "max32_alloc_size" fail-fast shortcut, merging a reservation with a
// live allocation (reserve() over an allocation is AlreadyExists), and
// concurrent double-free of the same range (a caller bug, as in the kernel;
// a sequential double free returns NotFound).
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/iova_magazine.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rbtree.hpp"

#if __has_include("rcukit/extent_skiplist.hpp")
#include "rcukit/extent_skiplist.hpp"
#define RCUKIT_IOVA_HAVE_SKIPLIST 1
#else
#define RCUKIT_IOVA_HAVE_SKIPLIST 0
#endif

namespace rcukit {

namespace detail {
#if RCUKIT_IOVA_HAVE_SKIPLIST
using iova_default_index = extent_skiplist<uint64_t>;
#else
// Fallback while <rcukit/extent_skiplist.hpp> is absent from the tree.
using iova_default_index = rbtree_extent_map_augmented<uint64_t>;
#endif
}  // namespace detail

template <class Index = detail::iova_default_index>
requires extent_index<Index>
class iova_domain {
 public:
  using index_type = Index;
  using value_type = typename Index::value_type;
  static constexpr uint64_t kAllocated = 0;  // value stored for an allocation
  static constexpr uint64_t kReserved = 1;   // value stored for a reservation

  // Usable pfns are [start_pfn, end_pfn). An empty range (end_pfn <=
  // start_pfn) makes every alloc() ResourceExhausted. `granule` is the page
  // size in bytes, only reported back by granule().
  iova_domain(uint64_t granule, uint64_t start_pfn, uint64_t end_pfn)
      : granule_(granule), start_pfn_(start_pfn), end_pfn_(end_pfn) {}
  iova_domain(const iova_domain&) = delete;
  iova_domain& operator=(const iova_domain&) = delete;

  // Allocates npages top-down: the highest fitting range below the cached
  // position, else the highest fitting range at all, with
  // pfn_lo + npages - 1 <= limit_pfn (inclusive) and pfn_lo aligned to
  // bit_ceil(npages) when size_aligned. InvalidArgument for npages == 0 or
  // limit_pfn < start_pfn; ResourceExhausted only when no range fits (or the
  // index cannot allocate a node). Nothing changes on failure. Progress and
  // cost are the index's insert_hole (blocking and linear for the rbtree
  // baseline; lock-free search plus leaf locks for the skiplist).
  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned) {
    if (npages == 0) return absl::InvalidArgumentError("iova_domain::alloc: npages == 0");
    if (limit_pfn < start_pfn_)
      return absl::InvalidArgumentError("iova_domain::alloc: limit_pfn < start_pfn");
    if (end_pfn_ <= start_pfn_) return absl::ResourceExhaustedError("iova_domain::alloc: empty domain");
    const uint64_t limit_excl = std::min(limit_pfn, end_pfn_ - 1) + 1;  // exclusive end of the window
    if (npages > limit_excl - start_pfn_)
      return absl::ResourceExhaustedError("iova_domain::alloc: too large");
    uint64_t align = 1;
    if (size_aligned) {
      if (npages > (uint64_t{1} << 63)) return absl::ResourceExhaustedError("iova_domain::alloc: too large");
      align = std::bit_ceil(npages);
    }
    hole_request r;
    // relaxed: a hint only (invariant 4); nothing is published through it.
    r.hint = cached_.load(std::memory_order_relaxed);
    r.limit = limit_excl;
    r.size = npages;
    r.align = align;
    r.dir = hole_request::direction::down;
    r.floor = start_pfn_;
    auto s = index_.insert_hole(r, static_cast<value_type>(kAllocated));
    if (!s.ok()) {
      if (s.status().code() == absl::StatusCode::kInvalidArgument) {
        return absl::ResourceExhaustedError("iova_domain::alloc: no range fits");
      }
      return s.status();
    }
    cached_.store(*s, std::memory_order_relaxed);  // relaxed: hint (invariant 4)
    return *s;
  }

  // Frees the allocation that starts at pfn_lo. NotFound if no allocation
  // starts there (reservations are never freed). Progress: the index's
  // lookup + erase.
  absl::Status free(uint64_t pfn_lo) {
    auto e = index_.lookup(pfn_lo);
    if (!e || e->range.start != pfn_lo || static_cast<uint64_t>(e->value) != kAllocated) {
      return absl::NotFoundError("iova_domain::free: no allocation starts at this pfn");
    }
    // The caller owns [pfn_lo, ...): nobody else can remove it between the
    // lookup and the erase (concurrent double free is a caller bug).
    auto gone = index_.erase(pfn_lo);
    if (!gone || gone->range.start != pfn_lo) {
      return absl::NotFoundError("iova_domain::free: allocation vanished (concurrent double free?)");
    }
    // The kernel's __cached_rbnode_delete_update: a free at or above the
    // cached position restarts the next search just below the allocation
    // above the freed one, so the freed space is found first.
    const uint64_t hint = cached_.load(std::memory_order_relaxed);  // relaxed: hint
    if (hint != 0 && pfn_lo >= hint) {
      auto above = index_.lower_bound(gone->range.end());
      cached_.store(above ? above->range.start : 0, std::memory_order_relaxed);  // 0 = from the top
    }
    return absl::OkStatus();
  }

  // The allocation or reservation containing pfn, as an extent in pages.
  // O(log n) (lock-free for the skiplist, locked for the rbtree maps).
  std::optional<extent> find(uint64_t pfn) const {
    auto e = index_.lookup(pfn);
    if (!e) return std::nullopt;
    return e->range;
  }

  // Reserves the inclusive range [pfn_lo, pfn_hi] so it is never handed
  // out; parts already reserved are kept. InvalidArgument if pfn_hi < pfn_lo;
  // AlreadyExists if it overlaps a live
  // allocation; ResourceExhausted if the index cannot allocate. Nothing
  // changes on failure.
  absl::Status reserve(uint64_t pfn_lo, uint64_t pfn_hi) {
    if (pfn_hi < pfn_lo) return absl::InvalidArgumentError("iova_domain::reserve: pfn_hi < pfn_lo");
    // pfn UINT64_MAX can never be allocated (end_pfn is exclusive), so a
    // reservation up to it is clipped to UINT64_MAX - 1.
    if (pfn_lo == UINT64_MAX) return absl::OkStatus();
    const uint64_t hi = pfn_hi == UINT64_MAX ? UINT64_MAX : pfn_hi + 1;  // exclusive
    for (;;) {
      std::vector<extent> holes;
      bool overlaps_alloc = false;
      uint64_t cursor = pfn_lo;
      index_.for_each(pfn_lo, hi, [&](const typename Index::entry& e) {
        if (static_cast<uint64_t>(e.value) == kAllocated) overlaps_alloc = true;
        if (e.range.start > cursor) holes.push_back(extent{cursor, e.range.start - cursor});
        cursor = std::max(cursor, e.range.end());
      });
      if (overlaps_alloc) return absl::AlreadyExistsError("iova_domain::reserve: overlaps an allocation");
      if (cursor < hi) holes.push_back(extent{cursor, hi - cursor});
      size_t done = 0;
      absl::Status st;
      for (; done < holes.size(); ++done) {
        st = index_.insert(holes[done], static_cast<value_type>(kReserved));
        if (!st.ok()) break;
      }
      if (done == holes.size()) return absl::OkStatus();
      for (size_t i = 0; i < done; ++i) index_.erase(holes[i].start);  // roll back
      if (st.code() != absl::StatusCode::kAlreadyExists) return st;
      // A concurrent allocation took part of a hole: look again.
    }
  }

  uint64_t granule() const noexcept { return granule_; }
  uint64_t start_pfn() const noexcept { return start_pfn_; }
  uint64_t end_pfn() const noexcept { return end_pfn_; }
  // The underlying index (tests and benchmarks inspect it).
  const Index& index() const noexcept { return index_; }

 private:
  const uint64_t granule_;
  const uint64_t start_pfn_;
  const uint64_t end_pfn_;
  Index index_;
  std::atomic<uint64_t> cached_{0};  // search hint; 0 = from the top of the window
};

// Per-thread magazines in front of a domain (the kernel's iova rcache).
// Domain needs alloc(npages, limit_pfn, size_aligned) and free(pfn_lo) as
// iova_domain has. The domain must outlive the cache; the cache returns
// every range it holds to the domain when destroyed.
template <class Domain, class MagAlloc = detail::iova_default_mag_alloc>
class iova_magazine_cache {
 public:
  static constexpr uint64_t kMaxCachedPages = uint64_t{1} << (detail::kIovaCacheClasses - 1);  // 32

  explicit iova_magazine_cache(Domain& d) : st_(std::make_shared<state>(d)) {}
  iova_magazine_cache(const iova_magazine_cache&) = delete;
  iova_magazine_cache& operator=(const iova_magazine_cache&) = delete;
  ~iova_magazine_cache() { st_->shutdown(); }

  // Like alloc_iova_fast: npages is rounded up to a power of two (when at
  // most 32) and the range is size-aligned. Served from this thread's
  // magazines or the depot when a cached range ends at or below limit_pfn;
  // otherwise from the domain; if the domain has no room, every cache is
  // flushed and the domain asked once more. InvalidArgument for npages == 0
  // (and whatever the domain rejects); ResourceExhausted when nothing fits.
  // Blocking: per-thread mutex (uncontended unless flushing), depot mutex.
  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn) {
    if (npages == 0) return absl::InvalidArgumentError("iova_magazine_cache::alloc: npages == 0");
    if (npages > kMaxCachedPages) return st_->d.alloc(npages, limit_pfn, true);
    const uint64_t size = std::bit_ceil(npages);
    const int cls = std::countr_zero(size);
    if (detail::iova_cpu_cache* c = my_cache()) {
      uint64_t pfn;
      if (st_->get(*c, cls, size, limit_pfn, &pfn)) return pfn;
    }
    auto r = st_->d.alloc(size, limit_pfn, true);
    if (r.ok() || r.status().code() != absl::StatusCode::kResourceExhausted) return r;
    flush();
    return st_->d.alloc(size, limit_pfn, true);
  }

  // Like free_iova_fast: npages must be what was passed to alloc(). Ranges
  // of more than 32 pages go straight to the domain. Never fails (a range the
  // cache cannot keep goes back to the domain).
  void free(uint64_t pfn_lo, uint64_t npages) {
    if (npages == 0 || npages > kMaxCachedPages) {
      (void)st_->d.free(pfn_lo);
      return;
    }
    const int cls = std::countr_zero(std::bit_ceil(npages));
    detail::iova_cpu_cache* c = my_cache();
    if (c == nullptr) {
      (void)st_->d.free(pfn_lo);
      return;
    }
    st_->put(*c, cls, pfn_lo);
  }

  // Returns every cached range (all threads' magazines and the depot) to the
  // domain. Exact when no alloc/free runs concurrently; a concurrent free may
  // leave its range cached. Blocking.
  void flush() { st_->flush(); }

 private:
  struct state : detail::iova_cache_owner {
    explicit state(Domain& dom) : d(dom) {}
    Domain& d;
    std::mutex reg_m;  // guards cpus and dead
    bool dead = false;
    std::vector<std::shared_ptr<detail::iova_cpu_cache>> cpus;
    std::mutex depot_m;  // guards depot
    std::array<std::vector<detail::iova_magazine*>, detail::kIovaCacheClasses> depot;

    static uint64_t pages(int cls) { return uint64_t{1} << cls; }

    void drain(detail::iova_magazine& m) {
      for (uint32_t i = 0; i < m.count; ++i) (void)d.free(m.pfns[i]);
      m.count = 0;
    }
    void drain_cpu(detail::iova_cpu_cache& c) {
      std::lock_guard<std::mutex> g(c.m);
      for (int k = 0; k < detail::kIovaCacheClasses; ++k) {
        drain(c.mags[k][0]);
        drain(c.mags[k][1]);
      }
    }
    void drain_depot() {
      std::array<std::vector<detail::iova_magazine*>, detail::kIovaCacheClasses> taken;
      {
        std::lock_guard<std::mutex> g(depot_m);
        taken.swap(depot);
      }
      for (auto& v : taken) {
        for (detail::iova_magazine* m : v) {
          drain(*m);
          MagAlloc::deallocate(m);
        }
      }
    }

    bool get(detail::iova_cpu_cache& c, int cls, uint64_t size, uint64_t limit_pfn, uint64_t* out) {
      {
        std::lock_guard<std::mutex> g(c.m);
        if (c.loaded_mag(cls).empty() && !c.prev_mag(cls).empty()) c.swap(cls);
        if (!c.loaded_mag(cls).empty()) return c.loaded_mag(cls).pop_fitting(size, limit_pfn, out);
      }
      // Both empty: take a full magazine from the depot.
      detail::iova_magazine* full = nullptr;
      {
        std::lock_guard<std::mutex> g(depot_m);
        if (!depot[cls].empty()) {
          full = depot[cls].back();
          depot[cls].pop_back();
        }
      }
      if (full == nullptr) return false;
      bool ok;
      {
        std::lock_guard<std::mutex> g(c.m);
        detail::iova_magazine& l = c.loaded_mag(cls);
        // Only the owner fills its magazines, so loaded is still empty.
        l = *full;
        ok = l.pop_fitting(size, limit_pfn, out);
      }
      MagAlloc::deallocate(full);
      return ok;
    }

    void put(detail::iova_cpu_cache& c, int cls, uint64_t pfn) {
      detail::iova_magazine spill;  // a full magazine leaving this thread
      {
        std::lock_guard<std::mutex> g(c.m);
        if (c.loaded_mag(cls).full() && !c.prev_mag(cls).full()) c.swap(cls);
        if (!c.loaded_mag(cls).full()) {
          c.loaded_mag(cls).push(pfn);
          return;
        }
        // Both full: the loaded one goes to the depot (outside this lock).
        spill = c.loaded_mag(cls);
        c.loaded_mag(cls).count = 0;
        c.loaded_mag(cls).push(pfn);
      }
      detail::iova_magazine* m = MagAlloc::allocate();  // no lock held (invariant 4)
      if (m != nullptr) {
        *m = spill;
        std::lock_guard<std::mutex> g(depot_m);
        if (depot[cls].size() < detail::kIovaDepotMax) {
          depot[cls].push_back(m);
          return;
        }
      }
      // No memory or the depot is full: give the ranges back to the domain.
      drain(spill);
      if (m != nullptr) MagAlloc::deallocate(m);
    }

    void flush() {
      std::vector<std::shared_ptr<detail::iova_cpu_cache>> snapshot;
      {
        std::lock_guard<std::mutex> g(reg_m);
        if (dead) return;
        snapshot = cpus;
      }
      for (auto& c : snapshot) drain_cpu(*c);
      drain_depot();
    }

    void thread_exit(const std::shared_ptr<detail::iova_cpu_cache>& c) noexcept override {
      std::lock_guard<std::mutex> g(reg_m);
      if (dead) return;  // the cache's destructor drained it already
      drain_cpu(*c);
      cpus.erase(std::remove(cpus.begin(), cpus.end(), c), cpus.end());
    }

    void shutdown() {
      std::lock_guard<std::mutex> g(reg_m);
      dead = true;
      for (auto& c : cpus) drain_cpu(*c);
      cpus.clear();
      drain_depot();
    }
  };

  // This thread's block for this cache, created on first use (nullptr if it
  // cannot be allocated: the caller then bypasses the cache).
  detail::iova_cpu_cache* my_cache() {
    auto& list = detail::iova_tls().entries;
    for (size_t i = 0; i < list.size();) {
      if (list[i].owner.expired()) {  // a destroyed cache: prune
        list[i] = std::move(list.back());
        list.pop_back();
        continue;
      }
      if (list[i].key == st_.get()) return list[i].cache.get();
      ++i;
    }
    std::shared_ptr<detail::iova_cpu_cache> c(new (std::nothrow) detail::iova_cpu_cache);
    if (!c) return nullptr;
    {
      std::lock_guard<std::mutex> g(st_->reg_m);
      st_->cpus.push_back(c);
    }
    list.push_back(detail::iova_tls_entry{st_.get(), std::weak_ptr<detail::iova_cache_owner>(st_), c});
    return c.get();
  }

  std::shared_ptr<state> st_;
};

}  // namespace rcukit
