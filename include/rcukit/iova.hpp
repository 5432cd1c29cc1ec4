// SPDX-License-Identifier: MIT
// rcukit/iova.hpp -- the IOVA hole allocator over any extent index, and the
// per-thread magazine cache in front of it.
//
// The idea. An I/O virtual address domain hands out page ranges
// [pfn_lo, pfn_lo + npages) below a per-request inclusive limit, top-down,
// as Linux's drivers/iommu/iova.c alloc_iova() does: allocations live as
// extents in an extent index (extent_skiplist, rbtree_extent_map,
// rbtree_extent_map_augmented -- anything satisfying rcukit::extent_index),
// and one allocation is one insert_hole(direction::down) whose hint is one of
// the domain's two cached positions, as the kernel's cached32_node and
// cached_node: requests whose window ends at or below 4 GiB ("32-bit") use
// the 32-bit hint, wider requests the wide one. After an allocation, the
// hint of the half it landed in (below or above 4 GiB) moves to it; freeing
// a range at or above a hint moves that hint up to the allocation above the
// freed range. A wide request first searches only above 4 GiB, and only
// when nothing fits there the whole window (from the 32-bit hint), so wide
// requests never take the scarce space below 4 GiB while space above fits.
// The index's two-pass insert_hole (hint window first, then the whole
// window) is the 2020 kernel fix: a cached-node miss can never turn a
// fitting request into a failure. Which index is used decides the cost: the
// rbtree baseline walks linearly under one lock (the 2013 kernel), the
// augmented rbtree and the skiplist search in O(log n).
//
// reserve() over an arbitrary index. A reservation that covers one free
// range is one insert: atomic by the index. One that must fill several gaps
// between existing reservations is several inserts, and an allocation racing
// with it can make a later piece fail, so the earlier ones are rolled back:
// in between, allocations and find() could see a reservation that then never
// happens. Such multi-piece reserves are serialised by a domain mutex that
// only reserve() takes, and bracketed by a sequence count (odd while pieces
// may be uncommitted). Every allocation and find() reads the count before
// its search (a cache line only reserve() writes, so the read stays in the
// reader's cache) and, only if the search failed (or found a reserved
// piece), again after it: an unchanged even count means no multi-piece
// reserve overlapped the search and the outcome stands; otherwise it waits
// for the reserve (blocking on the mutex) and searches again.
// docs/DESIGN.md says which alternatives were rejected and why.
//
// iova_magazine_cache puts the kernel's per-CPU range caches
// (detail/iova_magazine.hpp) in front of a domain: per-thread loaded and
// previous magazines per power-of-two size class, a bounded depot, direct
// domain calls for sizes above 32 pages. Whatever the size, a request the
// domain cannot serve flushes every cache and is retried once.
//
// Invariants:
//  (1) every allocation [pfn_lo, pfn_lo + n) has start_pfn <= pfn_lo,
//      pfn_lo + n <= end_pfn, pfn_lo + n - 1 <= limit_pfn of its request,
//      and pfn_lo % bit_ceil(n) == 0 when size_aligned;
//  (2) allocations and reservations never overlap (the index's invariant);
//  (3) reserved ranges are never handed out and never freed;
//  (4) the cached hints are only hints (relaxed atomics): any value gives a
//      correct result, only the search start differs;
//  (5) reserve_seq_ is odd exactly while a multi-piece reserve() holds
//      reserve_mu_ and the index may hold pieces of it that are not
//      committed; it is written only under reserve_mu_. (Relies on the
//      index being linearizable in the memory-model sense too: a search
//      that observes an insert happens after it, as a lock or an RCU
//      publication gives.)
//
//  (6) states_ (detail/iova_state.hpp) holds, for the first pfn of every
//      live allocation, its size class (iova_live_state), and for a range
//      that iova_magazine_cache holds, that class with kIovaCachedBit set;
//      every other pfn reads kIovaNoStart. alloc() sets the entry after its
//      insert and before it returns; free() clears it before its erase; the
//      cache sets the cached bit before the range enters a magazine and
//      clears it before the range leaves one (handed out again, or erased).
//      So a free of a range that sits in a magazine is refused, by the
//      cache and by iova_domain::free() alike, and the cache checks a free
//      with one load and one store instead of an index lookup.
//
// Why the entries need no read-modify-write (relaxed loads and stores):
// each entry is written only by whoever holds the range at that moment, and
// every hand-off of a range already orders the writes. The domain's
// alloc() is the holder between its insert and its return; a later
// allocation of the same pfn comes after the free that cleared the entry
// (cleared before the erase, and the index orders an insert after the erase
// it observed). Live -> cached is written by the free() of the user holding
// the allocation, before the push (a magazine mutex or the depot's mutex
// orders it before the pop). Cached -> live is written by the thread that
// popped the range (a magazine entry is popped once, under that magazine's
// mutex), before alloc() returns it to its new user. Cached -> gone (flush,
// depot overflow, destruction) is written by whoever took the entry out of
// a magazine. Only two frees of one range at the same time (the caller bug
// below) can both read "live".
//
// Not supported: the "max32_alloc_size" fail-fast shortcut, merging a
// reservation with a live allocation (reserve() over an allocation is
// AlreadyExists), and concurrent double-free of the same range (a caller
// bug, as in the kernel; a sequential double free returns NotFound, through
// the magazine cache too).
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
#include "rcukit/detail/fatal.hpp"
#include "rcukit/detail/iova_magazine.hpp"
#include "rcukit/detail/iova_state.hpp"
#include "rcukit/extent.hpp"
// The default index (API.md: iova_domain<> works after including this header
// alone). The domain itself sees any index only through rcukit::extent_index;
// callers of the rbtree maps include <rcukit/rbtree.hpp> themselves.
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

namespace detail {
struct iova_cache_access;
}  // namespace detail

template <class Index = extent_skiplist<uint64_t>>
requires extent_index<Index>
class iova_domain {
 public:
  using index_type = Index;
  using value_type = typename Index::value_type;
  static constexpr uint64_t kAllocated = 0;  // value stored for an allocation
  static constexpr uint64_t kReserved = 1;   // value stored for a reservation

  // Usable pfns are [start_pfn, end_pfn). An empty range (end_pfn <=
  // start_pfn) is bad input: status() reports InvalidArgument and every
  // alloc(), free() and reserve() returns it (create() refuses it instead).
  // `granule` is the page size in bytes; it places 4 GiB at pfn
  // 2^32 / granule for the 32-bit hint (a granule of 0 makes every request
  // wide; any granule is accepted, it only places that boundary).
  iova_domain(uint64_t granule, uint64_t start_pfn, uint64_t end_pfn)
      : granule_(granule),
        start_pfn_(start_pfn),
        end_pfn_(end_pfn),
        dma32_end_(granule == 0 ? 0 : (uint64_t{1} << 32) / granule),
        status_(end_pfn <= start_pfn ? absl::InvalidArgumentError("iova_domain: empty range (end_pfn <= start_pfn)")
                                     : absl::OkStatus()),
        states_(end_pfn <= start_pfn ? 1 : end_pfn - start_pfn) {}
  iova_domain(const iova_domain&) = delete;
  iova_domain& operator=(const iova_domain&) = delete;

  // Same, but an empty range is returned as InvalidArgument instead of a
  // domain that refuses every call.
  static absl::StatusOr<std::unique_ptr<iova_domain>> create(uint64_t granule, uint64_t start_pfn,
                                                             uint64_t end_pfn) {
    if (end_pfn <= start_pfn) return absl::InvalidArgumentError("iova_domain::create: end_pfn <= start_pfn");
    return std::make_unique<iova_domain>(granule, start_pfn, end_pfn);
  }

  // Construction result: OK, or InvalidArgument for an empty range.
  absl::Status status() const { return status_; }

  // Allocates npages top-down: the highest fitting range below the hint of
  // its class, else the highest fitting range at all, with
  // pfn_lo + npages - 1 <= limit_pfn (inclusive) and pfn_lo aligned to
  // bit_ceil(npages) when size_aligned. A request whose window reaches above
  // 4 GiB lands below 4 GiB only when nothing fits above (exact when no other
  // writer runs). InvalidArgument for npages == 0 or limit_pfn < start_pfn;
  // ResourceExhausted only when no range fits (or the index cannot allocate
  // a node). Nothing changes on failure. Progress and cost are the index's
  // insert_hole (blocking and linear for the rbtree baseline; lock-free
  // search plus leaf locks for the skiplist); a call that fails while a
  // multi-piece reserve() runs waits for it and searches again.
  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn, bool size_aligned) {
    if (!status_.ok()) return status_;
    if (npages == 0) return absl::InvalidArgumentError("iova_domain::alloc: npages == 0");
    if (limit_pfn < start_pfn_)
      return absl::InvalidArgumentError("iova_domain::alloc: limit_pfn < start_pfn");
    const uint64_t limit_excl = std::min(limit_pfn, end_pfn_ - 1) + 1;  // exclusive end of the window
    if (npages > limit_excl - start_pfn_)
      return absl::ResourceExhaustedError("iova_domain::alloc: too large");
    uint64_t align = 1;
    if (size_aligned) {
      if (npages > (uint64_t{1} << 63)) return absl::ResourceExhaustedError("iova_domain::alloc: too large");
      align = std::bit_ceil(npages);
    }
    for (;;) {
      // acquire: pairs with the release store in reserve() that made the
      // count even, so pieces it rolled back are gone for the search below.
      const uint64_t seq = reserve_seq_.load(std::memory_order_acquire);
      absl::StatusOr<uint64_t> s = alloc_once(npages, limit_excl, align);
      if (s.ok()) return mark_live(*s, npages);
      if (!absl::IsResourceExhausted(s.status())) return s;
      // The failure may come from pieces of a multi-piece reserve() that is
      // then rolled back (invariant 5). It stands if no such reserve
      // overlapped the search: the count was even and is unchanged.
      // acquire: as above. If the search saw a piece of a later reserve, that
      // reserve's odd store is ordered before the piece (the index's own
      // release/acquire), so this load cannot return the old count.
      if ((seq & 1) == 0 && reserve_seq_.load(std::memory_order_acquire) == seq) return s;
      wait_reserve_idle();
    }
  }

  // Frees the allocation that starts at pfn_lo. NotFound if no allocation
  // starts there (reservations are never freed, nor ranges held by a
  // magazine cache). InvalidArgument for a domain with an empty range.
  // Progress: a lock-free state-table load (invariant 6), then the index's
  // erase.
  absl::Status free(uint64_t pfn_lo) {
    if (!status_.ok()) return status_;
    return erase_range(pfn_lo, 0, false, "iova_domain::free: no allocation starts at this pfn");
  }

  // The allocation or reservation containing pfn, as an extent in pages (a
  // reservation may be stored as several pieces). Never a piece of a
  // reservation that does not happen. O(log n) (lock-free for the skiplist,
  // locked for the rbtree maps); on a reserved pfn it waits for a
  // multi-piece reserve() in progress and looks again.
  std::optional<extent> find(uint64_t pfn) const {
    for (;;) {
      // acquire: as in alloc().
      const uint64_t seq = reserve_seq_.load(std::memory_order_acquire);
      auto e = index_.lookup(pfn);
      if (!e) return std::nullopt;
      // A reserved extent may be a piece of an uncommitted reservation
      // (invariant 5): it stands if no multi-piece reserve overlapped the
      // lookup (acquire: as in alloc()).
      if (static_cast<uint64_t>(e->value) != kReserved ||
          ((seq & 1) == 0 && reserve_seq_.load(std::memory_order_acquire) == seq)) {
        return e->range;
      }
      wait_reserve_idle();
    }
  }

  // Reserves the inclusive range [pfn_lo, pfn_hi] so it is never handed
  // out; parts already reserved are kept. All-or-nothing and atomic: no
  // allocation and no find() sees it half made. InvalidArgument if pfn_hi <
  // pfn_lo; AlreadyExists if it overlaps a live allocation; ResourceExhausted
  // if the index cannot allocate. Nothing changes on failure. Blocking: one
  // domain mutex serialises reserve() calls (see the header essay).
  absl::Status reserve(uint64_t pfn_lo, uint64_t pfn_hi) {
    if (!status_.ok()) return status_;
    if (pfn_hi < pfn_lo) return absl::InvalidArgumentError("iova_domain::reserve: pfn_hi < pfn_lo");
    // pfn UINT64_MAX can never be allocated (end_pfn is exclusive), so a
    // reservation up to it is clipped to UINT64_MAX - 1.
    if (pfn_lo == UINT64_MAX) return absl::OkStatus();
    const uint64_t hi = pfn_hi == UINT64_MAX ? UINT64_MAX : pfn_hi + 1;  // exclusive
    std::lock_guard<std::mutex> g(reserve_mu_);
    for (;;) {
      std::vector<extent> holes;
      bool overlaps_alloc = false;
      uint64_t cursor = pfn_lo;
      index_.for_each(pfn_lo, hi, [&](const typename Index::entry& e) {
        // (A range a magazine cache holds is stored as an allocation too.)
        if (static_cast<uint64_t>(e.value) == kAllocated) overlaps_alloc = true;
        if (e.range.start > cursor) holes.push_back(extent{cursor, e.range.start - cursor});
        cursor = std::max(cursor, e.range.end());
      });
      if (overlaps_alloc) return absl::AlreadyExistsError("iova_domain::reserve: overlaps an allocation");
      if (cursor < hi) holes.push_back(extent{cursor, hi - cursor});
      if (holes.empty()) return absl::OkStatus();
      absl::Status st;
      if (holes.size() == 1) {
        // One piece: one insert, atomic by the index; no count needed.
        st = index_.insert(holes[0], static_cast<value_type>(kReserved));
        if (st.ok()) return st;
      } else {
        const uint64_t seq = reserve_seq_.load(std::memory_order_relaxed);  // relaxed: only we write it
        // relaxed: an observer of a piece inserted below reads this odd value
        // or a later one by write-read coherence, because the index orders
        // the insert (release) before the observer's search (acquire).
        reserve_seq_.store(seq + 1, std::memory_order_relaxed);
        size_t done = 0;
        for (; done < holes.size(); ++done) {
          st = index_.insert(holes[done], static_cast<value_type>(kReserved));
          if (!st.ok()) break;
        }
        if (done < holes.size()) {
          for (size_t i = 0; i < done; ++i) index_.erase(holes[i].start);  // roll back
        }
        // release: pairs with the acquire loads in alloc() and find():
        // whoever reads the even count sees the pieces committed or rolled
        // back, never in between.
        reserve_seq_.store(seq + 2, std::memory_order_release);
        if (done == holes.size()) return absl::OkStatus();
      }
      if (st.code() != absl::StatusCode::kAlreadyExists) return st;
      // A concurrent allocation took part of a hole: look again.
    }
  }

  uint64_t granule() const noexcept { return granule_; }
  uint64_t start_pfn() const noexcept { return start_pfn_; }
  uint64_t end_pfn() const noexcept { return end_pfn_; }
  // The first pfn above 4 GiB (2^32 / granule): requests whose window ends at
  // or below it use the 32-bit hint.
  uint64_t dma32_end_pfn() const noexcept { return dma32_end_; }
  // The underlying index (tests and benchmarks inspect it).
  const Index& index() const noexcept { return index_; }

 private:
  friend struct detail::iova_cache_access;

  // The state entry of pfn (invariant 6), nullptr if it was never made
  // (then it reads kIovaNoStart) or pfn is outside the domain.
  std::atomic<uint8_t>* state_of(uint64_t pfn) noexcept {
    if (pfn < start_pfn_ || pfn >= end_pfn_) return nullptr;
    return states_.find(pfn - start_pfn_);
  }

  // alloc()'s last step: records the new allocation (invariant 6). If the
  // table cannot grow, the allocation is undone: ResourceExhausted.
  absl::StatusOr<uint64_t> mark_live(uint64_t pfn, uint64_t npages) {
    std::atomic<uint8_t>* st = states_.at(pfn - start_pfn_, true);
    if (st == nullptr) {
      (void)index_.erase(pfn);
      return absl::ResourceExhaustedError("iova_domain::alloc: out of memory");
    }
    // relaxed: this thread holds the range; the entry's hand-offs are
    // ordered by the index and by the caller (invariant 6, header essay).
    st->store(detail::iova_live_state(npages), std::memory_order_relaxed);
    return pfn;
  }

  // Erases the range that starts at pfn_lo if it is live (or, with
  // `cached`, held by a magazine cache) and, unless npages is 0, npages
  // long, then moves the hints. NotFound (`why`) otherwise; nothing changes
  // then.
  absl::Status erase_range(uint64_t pfn_lo, uint64_t npages, bool cached, const char* why) {
    std::atomic<uint8_t>* st = state_of(pfn_lo);
    // relaxed: invariant 6 (only the range's holder writes its entry).
    const uint8_t v = st == nullptr ? detail::kIovaNoStart : st->load(std::memory_order_relaxed);
    if (v == detail::kIovaNoStart || ((v & detail::kIovaCachedBit) != 0) != cached) {
      return absl::NotFoundError(why);
    }
    if (npages != 0) {
      auto e = index_.lookup(pfn_lo);
      if (!e || e->range.start != pfn_lo || e->range.size != npages ||
          static_cast<uint64_t>(e->value) != kAllocated) {
        return absl::NotFoundError(why);
      }
    }
    // Cleared before the erase: whoever allocates this pfn next does so
    // after the erase, so after this store (invariant 6).
    st->store(detail::kIovaNoStart, std::memory_order_relaxed);  // relaxed: invariant 6
    // The caller owns [pfn_lo, ...): nobody else can remove it between the
    // check and the erase (concurrent double free is a caller bug).
    auto gone = index_.erase(pfn_lo);
    if (!gone || gone->range.start != pfn_lo) {
      return absl::NotFoundError("iova_domain::free: allocation vanished (concurrent double free?)");
    }
    // The kernel's __cached_rbnode_delete_update, per hint: a free at or
    // above a hint restarts that hint's next search just below the
    // allocation above the freed one, so the freed space is found first.
    // The 32-bit hint moves only for a range wholly below 4 GiB.
    std::optional<uint64_t> above;  // start of the allocation above, 0 = none (from the top)
    auto above_start = [&] {
      if (!above) {
        auto a = index_.lower_bound(gone->range.end());
        above = a ? a->range.start : 0;
      }
      return *above;
    };
    const uint64_t wide = cached_.load(std::memory_order_relaxed);  // relaxed: hint (invariant 4)
    if (wide != 0 && pfn_lo >= wide) cached_.store(above_start(), std::memory_order_relaxed);
    const uint64_t h32 = cached32_.load(std::memory_order_relaxed);  // relaxed: hint (invariant 4)
    if (h32 != 0 && gone->range.end() <= dma32_end_ && pfn_lo >= h32) {
      const uint64_t a = above_start();
      cached32_.store(a < dma32_end_ ? a : 0, std::memory_order_relaxed);  // relaxed: hint
    }
    return absl::OkStatus();
  }

  // iova_magazine_cache::free() of a range of at most 32 pages: the live
  // allocation [pfn_lo, pfn_lo + npages) becomes a cached one (invariant
  // 6); *entry is its state entry, for detail::iova_state_uncache() when a
  // magazine hands it out again. NotFound if no live allocation of exactly
  // that size starts there (never allocated, reserved, freed, already
  // cached). One table walk, one load, one store; no index access.
  absl::Status cache_hold(uint64_t pfn_lo, uint64_t npages, std::atomic<uint8_t>** entry) {
    if (!status_.ok()) return status_;
    std::atomic<uint8_t>* st = state_of(pfn_lo);
    const uint8_t live = detail::iova_live_state(npages);
    // relaxed: invariant 6 (only the range's holder writes its entry).
    if (st == nullptr || live == detail::kIovaLiveOther || st->load(std::memory_order_relaxed) != live) {
      return absl::NotFoundError("iova_magazine_cache::free: not a live allocation of this size");
    }
    st->store(live | detail::kIovaCachedBit, std::memory_order_relaxed);  // relaxed: invariant 6
    *entry = st;
    return absl::OkStatus();
  }
  // A cached range leaves the cache: back to the free space.
  void cache_release(uint64_t pfn_lo) {
    if (!erase_range(pfn_lo, 0, true, "").ok()) {
      detail::fatal("iova_magazine_cache", "a cached range is not marked cached (corruption)");
    }
  }
  // A live range too large for the magazines goes straight back (checked).
  absl::Status cache_free_direct(uint64_t pfn_lo, uint64_t npages) {
    if (!status_.ok()) return status_;
    return erase_range(pfn_lo, npages, false, "iova_magazine_cache::free: not a live allocation of this size");
  }

  // One search in [floor, limit_excl) from `hint` (0 = from the top).
  absl::StatusOr<uint64_t> search(uint64_t hint, uint64_t floor, uint64_t limit_excl, uint64_t npages,
                                  uint64_t align) {
    if (floor >= limit_excl || limit_excl - floor < npages) {
      return absl::ResourceExhaustedError("iova_domain::alloc: no range fits");
    }
    hole_request r;
    r.hint = hint;
    r.limit = limit_excl;
    r.size = npages;
    r.align = align;
    r.dir = hole_request::direction::down;
    r.floor = floor;
    auto s = index_.insert_hole(r, static_cast<value_type>(kAllocated));
    if (!s.ok() && s.status().code() == absl::StatusCode::kInvalidArgument) {
      return absl::ResourceExhaustedError("iova_domain::alloc: no range fits");
    }
    return s;
  }

  // One allocation attempt (the request is valid). Moves the hint of the
  // half the range landed in (invariant 4).
  absl::StatusOr<uint64_t> alloc_once(uint64_t npages, uint64_t limit_excl, uint64_t align) {
    absl::StatusOr<uint64_t> s;
    if (limit_excl <= dma32_end_) {
      // 32-bit request. relaxed: a hint only (invariant 4).
      s = search(cached32_.load(std::memory_order_relaxed), start_pfn_, limit_excl, npages, align);
    } else {
      // Wide request: above 4 GiB first, from the wide hint.
      // relaxed: a hint only (invariant 4).
      s = search(cached_.load(std::memory_order_relaxed), std::max(start_pfn_, dma32_end_), limit_excl,
                 npages, align);
      if (!s.ok() && absl::IsResourceExhausted(s.status()) && start_pfn_ < dma32_end_) {
        // Nothing fits above 4 GiB: the whole window, below 4 GiB from the
        // 32-bit hint first, as a 32-bit request would search (a range
        // straddling 4 GiB is found by the second pass). A node allocation
        // that failed above falls through here too and is simply retried.
        const uint64_t h32 = cached32_.load(std::memory_order_relaxed);  // relaxed: hint
        s = search(h32 == 0 ? dma32_end_ : h32, start_pfn_, limit_excl, npages, align);
      }
    }
    if (s.ok()) {
      // relaxed: hints only (invariant 4).
      (*s >= dma32_end_ ? cached_ : cached32_).store(*s, std::memory_order_relaxed);
    }
    return s;
  }

  // Waits until no multi-piece reserve() is in progress. Blocks on
  // reserve_mu_, which the reserve holds for as long as the count is odd.
  void wait_reserve_idle() const {
    // relaxed: only decides whether to wait; the caller's next acquire load
    // of the count is what orders its next search.
    while ((reserve_seq_.load(std::memory_order_relaxed) & 1) != 0) {
      std::lock_guard<std::mutex> g(reserve_mu_);  // returns once that reserve has finished
    }
  }

  const uint64_t granule_;
  const uint64_t start_pfn_;
  const uint64_t end_pfn_;
  const uint64_t dma32_end_;  // first pfn above 4 GiB
  const absl::Status status_;  // construction result (InvalidArgument: empty range)
  Index index_;
  detail::iova_state_table states_;  // per-pfn allocation state (invariant 6)
  std::atomic<uint64_t> cached_{0};       // wide requests' hint; 0 = from the top of the window
  std::atomic<uint64_t> cached32_{0};     // 32-bit requests' hint; 0 = from the top of the 32-bit window
  mutable std::mutex reserve_mu_;         // serialises reserve(); waited on by alloc()/find() (invariant 5)
  std::atomic<uint64_t> reserve_seq_{0};  // odd while a multi-piece reserve may be half made (invariant 5)
};

namespace detail {
// How iova_magazine_cache reaches a domain's private cache operations
// (cache_hold, cache_release, cache_free_direct). A wrapper domain (tests)
// befriends this too and forwards them.
struct iova_cache_access {
  template <class D>
  static absl::Status hold(D& d, uint64_t pfn, uint64_t n, std::atomic<uint8_t>** entry) {
    return d.cache_hold(pfn, n, entry);
  }
  template <class D>
  static void release(D& d, uint64_t pfn) { d.cache_release(pfn); }
  template <class D>
  static absl::Status free_direct(D& d, uint64_t pfn, uint64_t n) { return d.cache_free_direct(pfn, n); }
};
}  // namespace detail

// Per-thread magazines in front of a domain (the kernel's iova rcache).
// Domain needs alloc(npages, limit_pfn, size_aligned) as iova_domain has,
// and the private cache operations that detail::iova_cache_access calls.
// The domain must outlive the cache; the cache returns every range it holds
// to the domain when destroyed.
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
  // otherwise from the domain (directly for more than 32 pages); whatever
  // the size, if the domain has no room, every cache is flushed and the
  // domain asked once more. InvalidArgument for npages == 0 (and whatever
  // the domain rejects); ResourceExhausted when nothing fits.
  // Blocking: per-thread mutex (uncontended unless flushing), depot mutex.
  absl::StatusOr<uint64_t> alloc(uint64_t npages, uint64_t limit_pfn) {
    if (npages == 0) return absl::InvalidArgumentError("iova_magazine_cache::alloc: npages == 0");
    uint64_t size = npages;  // above the cached classes: not rounded, as alloc_iova_fast
    if (npages <= kMaxCachedPages) {
      size = std::bit_ceil(npages);
      const int cls = std::countr_zero(size);
      if (detail::iova_cpu_cache* c = my_cache()) {
        uint64_t pfn;
        std::atomic<uint8_t>* entry;
        if (st_->get(*c, cls, size, limit_pfn, &pfn, &entry)) {
          detail::iova_state_uncache(entry);  // live again before the caller sees it (invariant 6)
          return pfn;
        }
      }
    }
    auto r = st_->d.alloc(size, limit_pfn, true);
    if (r.ok() || r.status().code() != absl::StatusCode::kResourceExhausted) return r;
    flush();  // the cached ranges may be what stands in the way, for any size
    return st_->d.alloc(size, limit_pfn, true);
  }

  // Like free_iova_fast: npages must be what was passed to alloc() (any
  // npages that alloc() rounds to the same size names the same range).
  // Checked: a range that is not a live allocation of this domain of that
  // size (never allocated, reserved, freed already, or sitting in a
  // magazine) is NotFound and is never handed out again; npages == 0 is
  // InvalidArgument; nothing changes on error. Ranges of more than 32 pages
  // go straight to the domain, others into this thread's magazine (a range
  // the cache cannot keep goes back to the domain). Cost: one load and one
  // store of the domain's state table (invariant 6) more than an unchecked
  // push, and one store more per range popped.
  absl::Status free(uint64_t pfn_lo, uint64_t npages) {
    if (npages == 0) return absl::InvalidArgumentError("iova_magazine_cache::free: npages == 0");
    if (npages > kMaxCachedPages) return detail::iova_cache_access::free_direct(st_->d, pfn_lo, npages);
    const uint64_t size = std::bit_ceil(npages);
    detail::iova_cpu_cache* c = my_cache();
    if (c == nullptr) return detail::iova_cache_access::free_direct(st_->d, pfn_lo, size);
    // Marked cached before it enters a magazine (invariant 6).
    std::atomic<uint8_t>* entry = nullptr;
    if (absl::Status s = detail::iova_cache_access::hold(st_->d, pfn_lo, size, &entry); !s.ok()) return s;
    st_->put(*c, std::countr_zero(size), pfn_lo, entry);
    return absl::OkStatus();
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
      for (uint32_t i = 0; i < m.count; ++i) detail::iova_cache_access::release(d, m.pfns[i]);
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

    bool get(detail::iova_cpu_cache& c, int cls, uint64_t size, uint64_t limit_pfn, uint64_t* out,
             std::atomic<uint8_t>** entry) {
      {
        std::lock_guard<std::mutex> g(c.m);
        if (c.loaded_mag(cls).empty() && !c.prev_mag(cls).empty()) c.swap(cls);
        if (!c.loaded_mag(cls).empty()) return c.loaded_mag(cls).pop_fitting(size, limit_pfn, out, entry);
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
        ok = l.pop_fitting(size, limit_pfn, out, entry);
      }
      MagAlloc::deallocate(full);
      return ok;
    }

    void put(detail::iova_cpu_cache& c, int cls, uint64_t pfn, std::atomic<uint8_t>* entry) {
      detail::iova_magazine spill;  // a full magazine leaving this thread
      {
        std::lock_guard<std::mutex> g(c.m);
        if (c.loaded_mag(cls).full() && !c.prev_mag(cls).full()) c.swap(cls);
        if (!c.loaded_mag(cls).full()) {
          c.loaded_mag(cls).push(pfn, entry);
          return;
        }
        // Both full: the loaded one goes to the depot (outside this lock).
        spill = c.loaded_mag(cls);
        c.loaded_mag(cls).count = 0;
        c.loaded_mag(cls).push(pfn, entry);
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
