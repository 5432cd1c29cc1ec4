// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_write.hpp -- the writer protocol of extent_skiplist.
//
// The idea (Chris Mason's 2013 patch, v2): a writer descends without locks,
// locks the one to three adjacent leaves it changes, left to right,
// re-validates them (live, still adjacent, still covering what the descent
// found) and changes them inside their seqcount write sections. Writers in
// different parts of the key space take different locks and write no
// location shared by all writers: no list-wide counter, version or lock.
//
//  * insert: lock the covering leaf (and its successor when the extent
//    crosses into it), check for overlap, store in place. A full leaf gives
//    its upper extents to its successor when that has room (a right
//    redistribution: the successor's key goes down, never up) or splits
//    into a preallocated leaf (preload: nothing is allocated under a lock),
//    which is published at level 0 in the split leaf's write section and
//    then linked above (skiplist_index.hpp) while the split leaf stays
//    locked. An insert at the end of a leaf splits it unevenly (the new
//    leaf starts with the new extent), so ascending fills leave full leaves.
//  * erase: one descent; under the leaf's lock an unchanged sequence proves
//    the probe still holds. A leaf that empties is removed: its predecessor
//    is locked too, the leaf leaves the index blocks and the towers while it
//    is still live, then it is marked dead and bypassed at level 0 in one
//    step, and handed to the node pool for reuse after a grace period.
//  * the hole index (skiplist_holes.hpp), when on: every bound a change
//    affects rises before the change becomes visible (so a search that sees
//    the change also sees the bound, holes.hpp search_log). An erase raises
//    the owner of the gap it opens (the leaf after the erased extent, which
//    is the successor leaf for a last extent, so that one is locked too)
//    and the spans above it; an extent inserted as the last of a leaf takes
//    over part of the next leaf's first gap, so its leaf is raised; a split
//    copies bounds; a redistribution raises the receiving leaf before it
//    moves the extents. A writer that finds the index off trusts that only
//    inside a read side (keep_bounds).
//
// Locks: leaf locks left to right (at most three adjacent leaves), each
// taken only after the lock of the one before it showed that leaf live and
// linked to it (lock_set); then tower and block locks (skiplist_index.hpp).
// A lock is never held across a grace period or an allocation.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <new>
#include <optional>
#include <utility>

#include "rcukit/detail/skiplist_core.hpp"
#include "rcukit/detail/skiplist_holes.hpp"
#include "rcukit/detail/skiplist_index.hpp"
#include "rcukit/detail/skiplist_level.hpp"
#include "rcukit/detail/skiplist_read.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

enum class sl_outcome { ok, exists, nomem };

template <class S>
struct sl_write {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using block = typename S::block;
  using raw = typename S::raw;
  using state = sl_state<S>;
  using rd = sl_read<S>;
  using holes = sl_holes<S>;
  using index = sl_index<S>;
  using probe = typename rd::probe;
  using Rcu = typename S::rcu_flavor;
  static constexpr unsigned kCap = S::kCap;

  // --- nodes -------------------------------------------------------------------

  // An unpublished leaf (dead until published: see skiplist_core.hpp's
  // construct) with its tower (height drawn here, so a split never
  // allocates) and index block; nullptr (nothing kept) on failure. The
  // leaf itself is recycled, never constructed again: only the plain
  // fields are set here, which no stale finger reads (skiplist_read.hpp).
  static leaf* alloc_leaf(state& st) noexcept {
    void* m = st.pool.allocate(0);
    if (m == nullptr) return nullptr;
    leaf* l = static_cast<leaf*>(m);
    l->tower = nullptr;
    unsigned h = S::kDense ? std::min(S::kLevels, 1 + random_level(S::kLevels)) : random_level(S::kLevels);
    // Traits::draw_height (optional): a scripted height (tests), 0 = random.
    if constexpr (requires { S::traits::draw_height(); }) {
      if (const unsigned want = S::traits::draw_height(); want >= (S::kDense ? 2u : 1u) && want <= S::kLevels) h = want;
    }
    l->height = static_cast<uint8_t>(h);
    if (h == 1) return l;
    void* tm = st.pool.allocate(2 + h);
    if (tm == nullptr) {
      st.pool.deallocate_now(l, 0);
      return nullptr;
    }
    l->tower = tower::construct(tm, h, l);
    if constexpr (S::kBlocks) {
      if (tower::has_block(h)) {
        void* bm = st.pool.allocate(1);
        if (bm == nullptr) {
          st.pool.deallocate_now(tm, 2 + h);
          st.pool.deallocate_now(l, 0);
          return nullptr;
        }
        l->tower->block_slot() = ::new (bm) block();
      }
    }
    return l;
  }
  // Returns a leaf that was never published (an unused preload).
  static void free_unpublished(state& st, leaf* l) noexcept {
    S::parts(l, [&](void* p, unsigned c) { st.pool.deallocate_now(p, c); });
  }

  // --- locking -----------------------------------------------------------------

  // Up to four adjacent leaves, locked left to right. A writer holding leaf
  // locks waits only for the live successor of the last leaf it holds, read
  // under that leaf's lock (where it is stable: changing a leaf's link needs
  // the leaf's lock): so no cycle of waits can form, even when the set was
  // chosen from a stale probe (docs/DESIGN.md, "No lock-order cycle").
  struct lock_set {
    leaf* l[4] = {};
    unsigned n = 0;
    // x must not be null. (The null test lives in add_if, apart: a test here
    // let GCC thread a null `l` through the caller's later dereferences and
    // warn -Wstringop-overflow about a path that cannot run.)
    void add(leaf& x) noexcept {
      for (unsigned i = 0; i < n; ++i) {
        if (l[i] == &x) return;
      }
      unsigned i = n++;
      // relaxed (keys): only a guess at the left-to-right order; the locking
      // below checks each link before it waits.
      while (i > 0 && l[i - 1]->key.load(std::memory_order_relaxed) > x.key.load(std::memory_order_relaxed)) {
        l[i] = l[i - 1];
        --i;
      }
      l[i] = &x;
    }
    void add_if(leaf* x) noexcept {
      if (x != nullptr) add(*x);
    }
    // True with every leaf locked, live and linked to the next one; false
    // with none locked.
    bool lock_and_validate() noexcept {
      for (unsigned i = 0; i < n; ++i) {
        if (i > 0 && !live_and_linked(i - 1)) {
          unlock_first(i);
          return false;
        }
        if constexpr (sl_has_sync<typename S::traits>) {
          sl_sync_point<typename S::traits>(sl_sync::lock_leaf, l[i]->key.load(std::memory_order_relaxed), i);
        }
        l[i]->lock.lock();
      }
      if (!live_and_linked(n - 1)) {
        unlock();
        return false;
      }
      return true;
    }
    // Under l[i]'s lock. relaxed: dead and link 0 are written only under it.
    bool live_and_linked(unsigned i) const noexcept {
      return !l[i]->dead.load(std::memory_order_relaxed) &&
             (i + 1 == n || l[i]->next0(std::memory_order_relaxed) == l[i + 1]);
    }
    void unlock_first(unsigned k) noexcept {
      for (unsigned i = k; i-- > 0;) l[i]->lock.unlock();
    }
    void unlock() noexcept { unlock_first(n); }
  };

  // True if locked leaf l (live) covers key now.
  static bool covers(const leaf* l, uint64_t key) noexcept {
    const leaf* n = l->next0(std::memory_order_relaxed);  // under l's lock
    // relaxed (keys): changed only under the locks of both leaves at a boundary; we hold l's.
    return l->key.load(std::memory_order_relaxed) <= key &&
           (n == nullptr || n->key.load(std::memory_order_relaxed) > key);
  }
  static uint32_t find_slot_locked(const leaf* l, uint64_t start) noexcept {
    const uint32_t n = l->count.load(std::memory_order_relaxed);  // under l's lock
    for (uint32_t i = 0; i < n; ++i) {
      if (l->starts[i].load(std::memory_order_relaxed) == start) return i;
    }
    return n;
  }

  // Whether this change must keep the hole bounds (holes.hpp). "On" and
  // "arming" never turn back to "off"; "off" may be trusted only inside a
  // read side entered before it was read, because the arming grace period
  // (after which searches may lower bounds) then waits for the change to be
  // visible. So an "off" is read again inside g, which the caller holds
  // until its change is published.
  static bool keep_bounds(const state& st, std::optional<rcu::read_guard<Rcu>>& g) noexcept {
    if (holes::maintained(st) || !S::kHoleIndex) return S::kHoleIndex;
    if (!g) g.emplace();
    return holes::maintained(st);
  }

  // --- insert ------------------------------------------------------------------

  // Inserts r. tok: a preallocated leaf or null (filled on demand, with no
  // lock held). Blocking.
  static sl_outcome insert(state& st, const raw& r, leaf*& tok) noexcept {
    const uint64_t end = r.start + r.size;
    for (;;) {
      // The read side keeps what a descent reads alive until it is locked
      // and validated; a finger hit needs none (skiplist_read.hpp), so the
      // common case of an insert next to the previous one enters it only if
      // it has to descend later, or to trust a hole index that is off.
      std::optional<rcu::read_guard<Rcu>> g;
      probe p;
      if (!rd::finger_probe(st, r.start, UINT64_MAX, p)) {
        g.emplace();
        rd::find_leaf_remember(st, r.start, UINT64_MAX, p);
      }
      leaf* l = p.self;
      leaf* nx = p.next;
      const bool need_next = nx != nullptr && end > p.next_key;
      lock_set ls;
      ls.add(*l);
      if (need_next) ls.add(*nx);
      if (!ls.lock_and_validate()) continue;
      // Under l's lock: its successor and that successor's key are stable
      // (a redistribution that lowers the key holds l's lock too). The probe
      // may predate such a lowering: if r now reaches into nx, nx must be
      // locked as well (invariant 2 of extent_skiplist.hpp), so look again.
      if (l->next0(std::memory_order_relaxed) != nx || !covers(l, r.start) ||
          (!need_next && nx != nullptr && end > nx->key.load(std::memory_order_relaxed))) {
        ls.unlock();
        continue;
      }
      // relaxed (slots, count): written only under l's lock, which we hold.
      const uint32_t n = l->count.load(std::memory_order_relaxed);
      uint32_t idx = 0;
      while (idx < n && l->starts[idx].load(std::memory_order_relaxed) <= r.start) ++idx;
      bool overlap = false;
      if (idx > 0) {
        overlap = l->end_locked(idx - 1) > r.start;
      } else if (l != &st.head) {
        // An extent that crosses into l's range was inserted while l was
        // locked (we hold it), so this look at the previous leaf is stable.
        if (!g) g.emplace();
        const uint64_t k = l->key.load(std::memory_order_relaxed);
        if (auto b = rd::last_le(st, k - 1); b && b->start + b->size > r.start) overlap = true;
      }
      if (!overlap && idx < n && l->starts[idx].load(std::memory_order_relaxed) < end) overlap = true;
      // nx is live, locked and non-empty.
      if (!overlap && need_next && nx->starts[0].load(std::memory_order_relaxed) < end) overlap = true;
      if (overlap) {
        ls.unlock();
        return sl_outcome::exists;
      }
      // An extent that becomes the last of its leaf while a next leaf
      // exists takes over the gap before it from that leaf (gap-before
      // ownership, holes.hpp): its own leaf must cover that gap.
      const bool keep = keep_bounds(st, g);
      const uint64_t owned = keep && idx == n && nx != nullptr ? r.start - (n > 0 ? l->end_locked(n - 1) : 0) : 0;
      // Everything below but the plain in-place store may descend.
      if (!g && (n == kCap || owned != 0)) g.emplace();
      if (n < kCap) {
        // Bounds rise before the change is visible: a search that sees the
        // new owner also finds its bound raised (holes.hpp, search_log).
        if (owned != 0 && holes::raise_leaf(l, owned)) holes::climb(st, l, owned);
        l->seq.write_begin();
        raw tmp;
        for (uint32_t i = n; i > idx; --i) {
          l->load_locked(i - 1, tmp);
          l->store_release(i, tmp);
        }
        l->store_release(idx, r);
        l->count.store(n + 1, std::memory_order_release);  // seq-protected
        l->seq.write_end();
        ls.unlock();
        return sl_outcome::ok;
      }
      // Full: give the upper extents to the successor if it has room (no
      // allocation, no new tower; keeps leaves fuller, see the header).
      if (nx != nullptr) {
        if (!need_next) nx->lock.lock();  // left to right after l; nx cannot die while l is held
        // relaxed: under nx's lock.
        if (nx->count.load(std::memory_order_relaxed) + kCap / 8 < kCap) {
          const uint64_t k = redistribute_locked(st, l, nx, idx, r, keep);
          if (!need_next) nx->lock.unlock();
          ls.unlock();
          index::lower_key(st, nx, k);
          return sl_outcome::ok;
        }
        if (!need_next) nx->lock.unlock();
      }
      if (tok == nullptr) {
        ls.unlock();  // never allocate under a lock: drop everything, allocate, retry
        tok = alloc_leaf(st);
        if (tok == nullptr) return sl_outcome::nomem;
        continue;
      }
      leaf* const nl = std::exchange(tok, nullptr);
      split_locked(st, l, idx, r, nl, owned);
      ls.unlock();
      return sl_outcome::ok;
    }
  }

  // l is locked and full: buf gets its kCap extents with r at slot idx.
  static void merge_locked(const leaf* l, uint32_t idx, const raw& r, raw (&buf)[kCap + 1]) noexcept {
    for (uint32_t i = 0, j = 0; i < kCap + 1; ++i) {
      if (i == idx) {
        buf[i] = r;
      } else {
        l->load_locked(j++, buf[i]);
      }
    }
  }

  // l (full) and its successor nx (with room) are locked; r goes to slot
  // idx of l's merged sequence. The top of that sequence moves to the front
  // of nx, whose key goes down to the first extent moved (never up: readers
  // rely on it, skiplist_read.hpp). Returns the new key of nx.
  // Order: nx covers the gaps it takes over (holes.hpp: raised before the
  // change is visible); then l's write section encloses nx's, so the move
  // is one step for every reader. A reader that trusts l's link key as the
  // end of l's range, or that pairs a snapshot of l with one of nx, waits
  // for or re-validates l's sequence, which turned odd before nx changed;
  // and nx alone is reached only at or above its old key, where nothing
  // moved (docs/DESIGN.md, "Splits and redistribution").
  static uint64_t redistribute_locked(state& st, leaf* l, leaf* nx, uint32_t idx, const raw& r, bool keep) noexcept {
    constexpr uint32_t total = kCap + 1;
    raw buf[total];
    merge_locked(l, idx, r, buf);
    // relaxed (count, slots): under nx's lock.
    const uint32_t m = nx->count.load(std::memory_order_relaxed);
    const uint32_t keep_n = (total + m + 1) / 2 < total ? (total + m + 1) / 2 : total - 1;
    const uint32_t moved = total - keep_n;  // >= 1, and m + moved <= kCap
    const uint64_t key = buf[keep_n].start;
    // relaxed (l's bound): under l's lock.
    if (keep) {
      const uint64_t v = l->gap0.load(std::memory_order_relaxed);
      if (holes::raise_leaf(nx, v)) holes::climb(st, nx, v);
    }
    l->seq.write_begin();  // nx's release stores below keep this odd value before them (seqcount.hpp)
    nx->seq.write_begin();
    raw tmp;
    for (uint32_t i = m; i-- > 0;) {
      nx->load_locked(i, tmp);
      nx->store_release(i + moved, tmp);
    }
    for (uint32_t i = 0; i < moved; ++i) nx->store_release(i, buf[keep_n + i]);
    nx->count.store(m + moved, std::memory_order_release);  // seq-protected
    // release: a reader that sees the lower key also sees nx's new extents
    // (it is stored inside nx's write section, skiplist_read.hpp).
    nx->key.store(key, std::memory_order_release);
    if (nx->tower != nullptr) nx->tower->key.store(key, std::memory_order_release);
    nx->seq.write_end();
    sl_sync_point<typename S::traits>(sl_sync::redistributed, key, 0);
    for (uint32_t i = 0; i < keep_n; ++i) l->store_release(i, buf[i]);
    l->count.store(keep_n, std::memory_order_release);  // seq-protected
    l->set_next0(nx);                                   // the same successor, its new key
    l->seq.write_end();
    return key;
  }

  // l is locked and full; r goes to slot idx of the merged sequence. The
  // upper part moves to the preallocated leaf nl, published at level 0 in
  // the write section that truncates l, then linked above (l stays locked,
  // so nl cannot be removed before its tower is fully linked).
  // owned: the gap before r when r is the last extent and a next leaf exists
  // (see insert), which the new leaf must cover.
  static void split_locked(state& st, leaf* l, uint32_t idx, const raw& r, leaf* nl, uint64_t owned) noexcept {
    constexpr uint32_t total = kCap + 1;
    raw buf[total];
    merge_locked(l, idx, r, buf);
    // An insert past l's last extent keeps l full and starts nl with it.
    const uint32_t left = idx == kCap ? kCap : total / 2;
    const uint64_t key = buf[left].start;
    // nl is recycled memory a stale finger may still probe: it is filled in
    // its own write section (release stores, seqcount.hpp) while it is dead.
    leaf* const succ = l->next0(std::memory_order_relaxed);  // under l's lock
    nl->seq.write_begin();
    nl->key.store(key, std::memory_order_release);
    for (uint32_t i = left; i < total; ++i) nl->store_release(i - left, buf[i]);
    nl->count.store(total - left, std::memory_order_release);
    nl->link0.ptr.store(succ, std::memory_order_release);
    nl->link0.key.store(succ != nullptr ? succ->key.load(std::memory_order_relaxed) : kNoKey,
                        std::memory_order_release);
    nl->seq.write_end();
    // relaxed: the tower is unpublished (its links publish it).
    if (nl->tower != nullptr) nl->tower->key.store(key, std::memory_order_relaxed);
    // The gaps before nl's extents were l's (gap-before ownership): nl
    // starts with l's bound. relaxed: under l's lock; nl unpublished.
    nl->gap0.store(std::max(l->gap0.load(std::memory_order_relaxed), owned), std::memory_order_relaxed);
    // r, the last extent of nl, takes over the gap before it from the next
    // leaf: the spans nl is about to join cover it before nl is visible.
    if (owned != 0) holes::climb_from(st, nullptr, 1, owned, key);
    l->seq.write_begin();
    for (uint32_t i = 0; i < left; ++i) l->store_release(i, buf[i]);
    l->count.store(left, std::memory_order_release);  // seq-protected
    l->set_next0(nl);  // release (both stores): seq-protected and publishing
    l->seq.write_end();
    // Live from here on (a reader that reached it through l's link a moment
    // ago saw it dead and started over).
    nl->seq.write_begin();
    nl->dead.store(false, std::memory_order_release);  // seq-protected
    nl->seq.write_end();
    index::link(st, nl);
  }

  // --- erase -------------------------------------------------------------------

  // Removes and returns the lowest extent overlapping [key, key + size)
  // (a valid query). Blocking.
  static std::optional<raw> erase(state& st, uint64_t key, uint64_t size) noexcept {
    const uint64_t end = key + size;
    for (;;) {
      // As in insert: no read side unless something descends.
      std::optional<rcu::read_guard<Rcu>> g;
      const bool keep = keep_bounds(st, g);
      leaf* l;  // the leaf holding x
      uint32_t idx;
      raw xr;
      lock_set ls;
      probe q;
      if (!rd::finger_probe(st, key, end, q)) {
        if (!g) g.emplace();  // (emplace on a held guard would end its read side)
        rd::find_leaf_remember(st, key, end, q);
      }
      leaf* p = nullptr;   // l's predecessor, locked when l empties
      leaf* nx = nullptr;  // l's successor, locked when it owns the gap x leaves
      uint64_t expect_seq = 0;
      bool fast = false;
      if (q.has_le && q.le.start + q.le.size > key) {
        // Fast path: x contains key, in the covering leaf; an unchanged
        // sequence under l's lock proves the probe still holds.
        l = q.self;
        xr = q.le;
        idx = q.idx - 1;
        expect_seq = q.seq;
        fast = true;
        if (keep && idx + 1 == q.n) nx = q.next;
        if (q.n == 1 && l != &st.head) {
          if (!g) g.emplace();
          p = rd::find_leaf(st, l->key.load(std::memory_order_acquire) - 1, 0).self;
        }
      } else {
        if (!g) g.emplace();
        // General path: x may start after key (maybe in the next leaf) or
        // sit in the previous leaf; lock every leaf involved and re-run the
        // query under the locks.
        const auto x = rd::lookup(st, key, size);
        if (!x) return std::nullopt;
        const probe px = rd::find_leaf(st, x->start, 0);
        l = px.self;
        xr = *x;
        idx = px.idx - 1;
        ls.add(*q.self);
        if (keep && px.idx == px.n) nx = px.next;
        if (px.n == 1 && l != &st.head) p = rd::find_leaf(st, l->key.load(std::memory_order_acquire) - 1, 0).self;
      }
      ls.add_if(p);
      ls.add(*l);
      ls.add_if(nx);
      if (!ls.lock_and_validate()) continue;
      if (fast) {
        if (l->seq.current() != expect_seq) {  // under l's lock: stable
          ls.unlock();
          continue;
        }
      } else {
        if (!covers(q.self, key) || !covers(l, xr.start)) {
          ls.unlock();
          continue;
        }
        const auto y = rd::lookup(st, key, size);  // the answer with every relevant leaf locked
        if (!y || y->start != xr.start || y->size != xr.size || std::memcmp(y->w, xr.w, sizeof(xr.w)) != 0) {
          ls.unlock();
          continue;
        }
        idx = find_slot_locked(l, xr.start);
      }
      // relaxed (count, slots, links): written only under the locks we hold.
      const uint32_t n = l->count.load(std::memory_order_relaxed);
      if (idx >= n || l->starts[idx].load(std::memory_order_relaxed) != xr.start) {
        sl_fatal("erase: located extent vanished under lock");
      }
      const bool removal = n == 1 && l != &st.head;
      leaf* const succ = l->next0(std::memory_order_relaxed);
      if ((removal && p == nullptr) || (keep && idx + 1 == n && succ != nullptr && nx != succ)) {
        ls.unlock();  // the lock set the probe chose is not the one needed now: look again
        continue;
      }
      // The gap x leaves: [prev_end, next_start), owned by the leaf of the
      // extent after x (holes.hpp). prev_end is unknown for l's first
      // extent when l stays: then l's own bound (which covers the gap before
      // x) plus x's extent and the gap after it bound the new gap.
      leaf* owner = nullptr;
      uint64_t v = 0;
      if (keep) {
        const uint64_t next_start = idx + 1 < n  ? l->starts[idx + 1].load(std::memory_order_relaxed)
                                    : succ != nullptr ? succ->starts[0].load(std::memory_order_relaxed)
                                                      : UINT64_MAX;
        owner = idx + 1 < n ? l : succ != nullptr ? succ : removal ? p : l;
        if (idx > 0) {
          v = next_start - l->end_locked(idx - 1);
        } else if (l == &st.head) {
          v = next_start;  // nothing before the head's first extent
        } else if (removal) {
          const uint32_t pn = p->count.load(std::memory_order_relaxed);
          v = next_start - (pn > 0 ? p->end_locked(pn - 1) : 0);
        } else {
          const uint64_t own = l->gap0.load(std::memory_order_relaxed);
          const uint64_t add = next_start - xr.start;
          v = own > kGapUnknown - add ? kGapUnknown : own + add;
        }
      }
      // Raised before the change (as every bound raise): see insert.
      if (removal && !g) g.emplace();  // index::unlink descends
      if (keep && holes::raise_leaf(owner, v)) {
        if (!g) g.emplace();
        holes::climb(st, owner, v);
      }
      if (removal) {
        remove_locked(st, p, l, succ);
      } else {
        l->seq.write_begin();
        raw tmp;
        for (uint32_t i = idx + 1; i < n; ++i) {
          l->load_locked(i, tmp);
          l->store_release(i - 1, tmp);
        }
        l->count.store(n - 1, std::memory_order_release);  // seq-protected
        l->seq.write_end();
      }
      ls.unlock();
      if (removal) st.pool.retire(l);
      return xr;
    }
  }

  // p, d (and d's successor, if any) are locked; p->next0() == d, d is not
  // the head. Takes d off the index (blocks, towers) while it is still live,
  // then marks it dead and bypasses it at level 0 in one step each. The
  // caller hands d to the pool after unlocking.
  static void remove_locked(state& st, leaf* p, leaf* d, leaf* succ) noexcept {
    index::unlink(st, d);
    d->seq.write_begin();
    d->dead.store(true, std::memory_order_release);  // seq-protected
    d->count.store(0, std::memory_order_release);
    d->seq.write_end();
    p->seq.write_begin();
    p->set_next0(succ);  // release: pairs with the acquire loads of link 0 in readers
    p->seq.write_end();
  }

  // --- clear -------------------------------------------------------------------

  // Removes every extent, one leaf at a time (each removal is atomic, the
  // whole clear is not).
  // --- assign ------------------------------------------------------------------

  // Gives the extent starting exactly at `start` the value words of r, in
  // place: one leaf locked, one seqcount write section, so a reader sees the
  // old value or the new one and never a gap. False if no extent starts
  // there. Blocking.
  static bool assign(state& st, uint64_t start, const raw& r) noexcept {
    for (;;) {
      rcu::read_guard<Rcu> g;  // not a hot path: a plain descent, no finger-only probe
      probe p;
      rd::find_leaf_fast(st, start, UINT64_MAX, p);
      leaf* l = p.self;
      lock_set ls;
      ls.add(*l);
      if (!ls.lock_and_validate()) continue;
      if (!covers(l, start)) {  // the leaf split or gave extents away since the descent
        ls.unlock();
        continue;
      }
      const uint32_t idx = find_slot_locked(l, start);
      if (idx == l->count.load(std::memory_order_relaxed)) {  // relaxed: under l's lock
        ls.unlock();
        return false;
      }
      raw cur;
      l->load_locked(idx, cur);
      std::memcpy(cur.w, r.w, sizeof(cur.w));
      l->seq.write_begin();
      l->store_release(idx, cur);
      l->seq.write_end();
      ls.unlock();
      return true;
    }
  }

  static void clear(state& st) noexcept {
    for (;;) {
      rcu::read_guard<Rcu> g;
      const bool keep = holes::maintained(st);
      lock_set ls;
      ls.add(st.head);
      leaf* n = st.head.next0(std::memory_order_acquire);  // pairs with set_next0
      if (n != nullptr) {
        ls.add(*n);
        ls.add_if(n->next0(std::memory_order_acquire));
      }
      if (!ls.lock_and_validate()) continue;
      // relaxed: under the locks.
      if (n != nullptr && (st.head.next0(std::memory_order_relaxed) != n ||
                           (ls.n == 2 && n->next0(std::memory_order_relaxed) != nullptr))) {
        ls.unlock();
        continue;
      }
      if (n != nullptr) {
        leaf* succ = n->next0(std::memory_order_relaxed);
        leaf* owner = succ != nullptr ? succ : &st.head;
        if (keep && holes::raise_leaf(owner, kGapUnknown)) holes::climb(st, owner, kGapUnknown);
        remove_locked(st, &st.head, n, succ);
        ls.unlock();
        st.pool.retire(n);
        continue;
      }
      const bool had = st.head.count.load(std::memory_order_relaxed) != 0;
      if (had) {
        if (keep && holes::raise_leaf(&st.head, kGapUnknown)) holes::climb(st, &st.head, kGapUnknown);
        st.head.seq.write_begin();
        st.head.count.store(0, std::memory_order_release);  // seq-protected
        st.head.seq.write_end();
      }
      ls.unlock();
      return;
    }
  }
};

}  // namespace rcukit::detail
