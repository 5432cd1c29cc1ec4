// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_holes.hpp -- the hole index of extent_skiplist:
// conservative gap bounds and the hole search that uses them.
//
// The idea (the largest-free-gap augmentation of the kernel's
// rbtree_augmented.h and of the maple tree, moved to skiplist spans). Every
// free gap is owned by exactly one leaf: the leaf holding the extent the
// gap ends at (gap-before ownership; the last leaf also owns the final gap
// up to UINT64_MAX, and with no extent at all the head owns everything).
// A leaf's gap0 bounds the gaps it owns; a tower's bound at level l bounds
// the gaps owned by the leaves of its level-l span. A search descends like
// a key search and skips every span whose bound is below the request, so in
// a fragmented space it visits O(log n) spans instead of every extent.
//
// Invariants (check_invariants verifies L and U when quiescent):
//  (L) gap0 >= every gap its leaf owns, except inside the operation that
//      opened the gap; gap0 is written only under the leaf's lock.
//  (U) a tower's bound at level l >= the bound of every child of its
//      level-l span (towers at level l-1, or leaves at level 1), except
//      inside the operation that raised the child.
// Together: once the operation that opened a gap has returned, every bound
// above it covers it, and a span is skipped only when it cannot fit.
//
// Who writes bounds, and why that is enough:
//  * An erase that opens a gap of length v raises its owner's gap0 (an
//    exchange, under the owner's lock) and then climbs: at each level it
//    raises the head of the span holding the owner if below v and re-
//    validates that head (still linked, still heading that key; else it
//    raises the real head too), up to the top (a head already >= v may
//    belong to another climb still on its way up). A raise happens only
//    when the leaf's bound rose; an insert writes nothing unless it moves
//    a gap to another leaf (skiplist_write.hpp).
//  * A search may lower a bound to the maximum over what it proved
//    (tightening). A leaf is tightened under its lock (try_lock), from its
//    own contents. A tower bound is lowered by a CAS from the value it read,
//    then re-validated: the span's end, every listed child's successor, and
//    every child's bound <= the new value. If anything changed it raises
//    the bound back to the value it read and climbs. Each raise is a
//    seq_cst RMW on the child followed by seq_cst loads of the parent, and
//    each tightening a seq_cst CAS on the parent followed by seq_cst loads of
//    the children, so in the single total order one side sees the other.
//  * A new tower (split) starts with a copy of its predecessor's bound and,
//    once linked, raises itself to the maximum of its children read by RMW
//    (then climbs); a removed tower's bound is merged into its predecessor.
//    Either order of a racing raise and the structural change is covered:
//    whichever RMW comes second in the bound's modification order sees the
//    other's link store.
//  * A new leaf copies the splitting leaf's gap0; a right redistribution
//    raises the receiving leaf before the giving leaf drops the extents.
//  * A search first walks the extents next to the window's near edge (the
//    hint), up to one leaf's worth: an allocator that keeps a hint finds
//    most holes there, for one key descent or none (the thread's finger,
//    skiplist_read.hpp). It takes only a fit from that walk (the first
//    from the edge, so the exact answer when quiescent); anything else is
//    left to the index, so no failure rests on the walk.
// Writers that never see an insert_hole pay nothing: the index is off
// until the first insert_hole, then "arming" (writers keep bounds) for one
// grace period, after which searches may tighten (so no writer that missed
// the switch can still be running, rcu_poll.hpp: a writer reads "off" only
// inside a read side it holds until its change is visible).
// Not supported: exact bounds (they are over-estimates until tightened).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>

#include "rcukit/detail/rcu_poll.hpp"
#include "rcukit/detail/skiplist_core.hpp"
#include "rcukit/detail/skiplist_read.hpp"
#include "rcukit/extent.hpp"

namespace rcukit::detail {

inline constexpr uint64_t kGapUnknown = ~uint64_t{0};

template <class S>
struct sl_holes {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using raw = typename S::raw;
  using state = sl_state<S>;
  using rd = sl_read<S>;

  // --- the switch ------------------------------------------------------------

  // True when writers must keep bounds (arming or on).
  static bool maintained(const state& st) noexcept {
    // acquire: pairs with the release CAS in arm(); a writer that sees the
    // index off runs entirely before the arming grace period ends.
    return S::kHoleIndex && st.holes.load(std::memory_order_acquire) != 0;
  }
  // Turns the index on at the first insert_hole. Wait-free.
  static void arm(state& st) noexcept {
    if (!S::kHoleIndex) return;
    uint8_t off = 0;
    // acq_rel: publishes the switch before the cookie is taken (a grace
    // period counted by it began after the switch was visible).
    if (!st.holes.compare_exchange_strong(off, 1, std::memory_order_acq_rel)) return;
    // release: pairs with the acquire load in may_tighten().
    st.holes_cookie.store(rcu::detail::gp_poll<typename S::rcu_flavor>::start(), std::memory_order_release);
  }
  static bool may_tighten(state& st) noexcept {
    if (!S::kHoleIndex) return false;
    // acquire: see maintained().
    const uint8_t h = st.holes.load(std::memory_order_acquire);
    if (h == 2) return true;
    if (h == 0) return false;
    const uint64_t c = st.holes_cookie.load(std::memory_order_acquire);  // pairs with arm()
    if (c == 0 || !rcu::detail::gp_poll<typename S::rcu_flavor>::done(c)) return false;
    uint8_t arming = 1;
    st.holes.compare_exchange_strong(arming, 2, std::memory_order_acq_rel);
    return true;
  }

  // --- raising (erases, redistributions, structural changes) ----------------

  // Under o's lock: makes o->gap0 >= v. True if it rose (the caller climbs).
  static bool raise_leaf(leaf* o, uint64_t v) noexcept {
    // relaxed: only lock holders write gap0 (invariant L), and we hold it.
    if (o->gap0.load(std::memory_order_relaxed) >= v) return false;
    // seq_cst RMW: ordered before the climb's loads of the heads (U protocol).
    o->gap0.exchange(v, std::memory_order_seq_cst);
    return true;
  }
  // Raises a tower bound to at least v; true if it rose.
  static bool raise_bound(std::atomic<uint64_t>& b, uint64_t v) noexcept {
    // seq_cst: see the header (U protocol).
    uint64_t cur = b.load(std::memory_order_seq_cst);
    while (cur < v) {
      if (b.compare_exchange_weak(cur, v, std::memory_order_seq_cst)) return true;
    }
    return false;
  }

  // True if t heads the level-lvl span holding `key` now. seq_cst loads:
  // ordered after the caller's raise (U protocol).
  static bool heads(const tower* t, unsigned lvl, uint64_t key) noexcept {
    const auto& s = t->st();
    if (s.removed.load(std::memory_order_seq_cst) != 0 || s.linked.load(std::memory_order_seq_cst) < lvl) {
      return false;
    }
    if (t->key.load(std::memory_order_seq_cst) > key) return false;
    const tower* n = t->next(lvl, std::memory_order_seq_cst);
    return n == nullptr || n->key.load(std::memory_order_seq_cst) > key;
  }

  // After o->gap0 rose to >= v: every span head above o covers v (U).
  // Inside a read side; takes no lock.
  static void climb(state& st, leaf* o, uint64_t v) noexcept {
    const uint64_t key = o->key.load(std::memory_order_seq_cst);
    tower* t = o->tower;
    if (t == nullptr || !heads(t, 1, key)) t = nullptr;
    climb_from(st, t, 1, v, key);
  }
  // From level lvl up: raise the head of the span holding `key` to v until
  // one is already >= v. h: the believed head at lvl (null: look it up).
  static void climb_from(state& st, tower* h, unsigned lvl, uint64_t v, uint64_t key) noexcept {
    tower* path[S::kLevels] = {};
    bool have_path = false;
    for (;;) {
      // seq_cst: a level added after this load is covered by tightening's
      // re-validation of its children (which include the heads we raise).
      const unsigned top = st.levels.load(std::memory_order_seq_cst);
      if (lvl >= top) {  // the root has no bound
        sl_sync_point<typename S::traits>(sl_sync::climb_done, key, lvl);
        return;
      }
      if (h == nullptr) {
        rd::heads_of(st, key, top, path);
        have_path = true;
        h = path[lvl];
      }
      raise_bound(h->gap(lvl), v);
      if (!heads(h, lvl, key)) {  // the span changed: raise the real head too
        rd::heads_of(st, key, top, path);
        have_path = true;
        h = path[lvl];
        continue;
      }
      // No early stop at a head that is already >= v: another raise may be
      // half way up (its head raised, the next not yet), and this call must
      // return only once every head above covers v.
      ++lvl;
      if (h->leaf->height > lvl && heads(h, lvl, key)) continue;
      h = have_path && lvl < top ? path[lvl] : nullptr;
    }
  }

  // --- the owned gaps of a leaf ----------------------------------------------

  struct leaf_gaps {
    uint32_t n = 0;
    bool dead = false;
    leaf* next = nullptr;
    uint64_t seq = 0;  // the leaf's sequence at the copy
    uint64_t lo[S::kCap + 1];
    uint64_t hi[S::kCap + 1];
  };
  // The gaps a leaf owns in a recent state: before each extent (from the end
  // of the one before, which for the first may sit in an earlier leaf) and,
  // for the last leaf, the final gap. Lockless (a commit re-checks).
  static void owned_gaps(const state& st, const leaf* l, leaf_gaps& out) noexcept {
    raw buf[S::kCap];
    const auto c = rd::copy_leaf(l, buf);
    out.n = 0;
    out.dead = c.dead;
    out.next = c.next;
    out.seq = c.seq;
    if (c.dead) return;
    uint64_t prev_end = 0;
    const uint64_t first = c.n > 0 ? buf[0].start : kNoKey;
    if (first > 0) {
      if (auto b = rd::last_le(st, first == kNoKey ? UINT64_MAX : first - 1)) prev_end = b->start + b->size;
    }
    for (uint32_t i = 0; i < c.n; ++i) {
      if (buf[i].start > prev_end) {
        out.lo[out.n] = prev_end;
        out.hi[out.n++] = buf[i].start;
      }
      prev_end = std::max(prev_end, buf[i].start + buf[i].size);
    }
    if (c.next == nullptr && prev_end < UINT64_MAX) {
      out.lo[out.n] = prev_end;
      out.hi[out.n++] = UINT64_MAX;
    }
  }
  static uint64_t largest(const leaf_gaps& g) noexcept {
    uint64_t m = 0;
    for (uint32_t i = 0; i < g.n; ++i) m = std::max(m, g.hi[i] - g.lo[i]);
    return m;
  }
  // Lowers l->gap0 to the largest gap it owns, if its lock is free. Under
  // the lock the owned gaps can only shrink (erasing the extent before l's
  // first needs l's lock too), so the value stays an upper bound.
  static void tighten_leaf(const state& st, leaf* l) noexcept {
    if (!l->lock.try_lock()) return;
    // relaxed: dead is written under the lock we hold.
    if (!l->dead.load(std::memory_order_relaxed)) {
      leaf_gaps g;
      owned_gaps(st, l, g);
      // release: a plain publication; seq_cst is not needed for lowering (U
      // keeps holding: the parent covers the old, larger value).
      l->gap0.store(largest(g), std::memory_order_release);
    }
    l->lock.unlock();
  }

  // --- the search --------------------------------------------------------------

  enum class found { yes, no, fallback };

  // What a search relied on, re-checked before it reports failure: a
  // failure is allowed only if no fitting range stayed free for the whole
  // call (API.md), and a range can change owner while the search runs (an
  // extent inserted as the last of a leaf takes over part of the next
  // leaf's first gap). Such a move raises the new owner's bounds before the
  // extent becomes visible, and changes the owner's sequence; so if every
  // skipped bound is still below the request, every skipped span still ends
  // where it did, and every leaf the search read is unchanged, then no range
  // the search missed was free throughout. Otherwise it searches again.
  struct search_log {
    struct skip {
      const std::atomic<uint64_t>* bound;
      const void* node;  // tower (cl >= 1) or leaf (cl == 0)
      const void* listed;
      unsigned cl;
    };
    struct seen {
      const leaf* l;
      uint64_t seq;
    };
    static constexpr unsigned kMax = 128;
    skip skips[kMax];
    seen leaves[kMax];
    unsigned nskips = 0, nleaves = 0;
    bool overflow = false;
    void skipped(const std::atomic<uint64_t>& b, const void* node, const void* listed, unsigned cl) noexcept {
      if (nskips == kMax) {
        overflow = true;
      } else {
        skips[nskips++] = skip{&b, node, listed, cl};
      }
    }
    void read(const leaf* l, uint64_t seq) noexcept {
      if (nleaves == kMax) {
        overflow = true;
      } else {
        leaves[nleaves++] = seen{l, seq};
      }
    }
    // seq_cst: ordered after the raises of a concurrent owner move (header).
    bool still_holds(uint64_t size) const noexcept {
      for (unsigned i = 0; i < nskips; ++i) {
        const skip& k = skips[i];
        if (k.bound->load(std::memory_order_seq_cst) >= size) return false;
        const void* now = k.cl == 0 ? static_cast<const void*>(static_cast<const leaf*>(k.node)->next0(std::memory_order_seq_cst))
                                    : static_cast<const void*>(static_cast<const tower*>(k.node)->next(k.cl, std::memory_order_seq_cst));
        if (now != k.listed) return false;
      }
      for (unsigned i = 0; i < nleaves; ++i) {
        if (leaves[i].l->seq.current() != leaves[i].seq) return false;
      }
      return true;
    }
  };

  // A child of the span being searched: a tower at level cl >= 1 or a leaf
  // (cl == 0), its listed successor and the key range it had when listed.
  struct child {
    tower* t;
    leaf* l;
    const void* listed;  // successor at cl when listed
    uint64_t lo, hi;     // [lo, hi): hi = UINT64_MAX when open
    std::atomic<uint64_t>& bound(unsigned cl) const noexcept { return cl == 0 ? l->gap0 : t->gap(cl); }
    // seq_cst: the tightening protocol reads successors after its CAS.
    bool unsplit(unsigned cl) const noexcept {
      const void* now = cl == 0 ? static_cast<const void*>(l->next0(std::memory_order_seq_cst))
                                : static_cast<const void*>(t->next(cl, std::memory_order_seq_cst));
      return now == listed;
    }
    bool gone(unsigned cl) const noexcept {
      return cl == 0 ? l->dead.load(std::memory_order_seq_cst)
                     : t->st().removed.load(std::memory_order_seq_cst) != 0;
    }
  };
  static constexpr unsigned kMaxChildren = 48;
  // Extents the near-edge walk reads before search() turns to the index.
  static constexpr uint64_t kNearExtents = S::kCap;

  // Searches the span of tower x at level lvl (children at lvl - 1), listed
  // up to the tower `end` (null: to the list end), for the API.md fit inside
  // w, and lowers the bounds it can (when `tighten`). root: x is the head at
  // the top level, which has no bound of its own.
  static found search_span(state& st, tower* x, const tower* end, unsigned lvl, detail::hole_window w,
                           const hole_request& r, bool root, bool tighten, search_log& log, uint64_t& out) noexcept {
    const bool up = r.dir == hole_request::direction::up;
    // seq_cst: the tightening CAS compares against it (header).
    const uint64_t seen = root ? 0 : x->gap(lvl).load(std::memory_order_seq_cst);
    // acquire (keys): a key only goes down; a lower end key only narrows
    // the listing to what x's span still holds.
    const uint64_t end_key = end != nullptr ? end->key.load(std::memory_order_acquire) : UINT64_MAX;
    child kids[kMaxChildren];
    unsigned nk = 0;
    const unsigned cl = lvl - 1;
    if (cl >= 1) {
      for (tower* y = x; y != nullptr && y != end;) {
        const uint64_t yk = y->key.load(std::memory_order_acquire);
        if (y != x && yk >= end_key) break;
        if (nk == kMaxChildren) return found::fallback;
        tower* yn = y->next(cl, std::memory_order_acquire);  // pairs with tower::set_link's release store
        const uint64_t hk = yn == nullptr ? end_key : std::min(yn->key.load(std::memory_order_acquire), end_key);
        kids[nk++] = child{y, nullptr, yn, yk, hk};
        y = yn;
      }
    } else {
      for (leaf* y = x->leaf; y != nullptr;) {
        const uint64_t yk = y->key.load(std::memory_order_acquire);
        if (y != x->leaf && yk >= end_key) break;
        if (nk == kMaxChildren) return found::fallback;
        leaf* yn = y->next0(std::memory_order_acquire);  // pairs with set_next0's release store
        const uint64_t hk = yn == nullptr ? end_key : std::min(yn->key.load(std::memory_order_acquire), end_key);
        kids[nk++] = child{nullptr, y, yn, yk, hk};
        y = yn;
      }
    }
    // Children are in key order, and so are the gaps they own (by their end
    // and by their start). A child whose range ends at or below w.lo owns
    // no gap reaching into w; of the children starting at or above w.hi only
    // the first can (its first gap may start below w.hi).
    unsigned last_useful = nk - 1;
    for (unsigned k = 0; k < nk; ++k) {
      if (kids[k].lo >= w.hi) {
        last_useful = k;
        break;
      }
    }
    for (unsigned k = 0; k <= last_useful; ++k) {
      const unsigned ci = up ? k : last_useful - k;
      const child& c = kids[ci];
      if (c.hi <= w.lo) continue;
      // A bound is trusted only for the span the child was listed with (a
      // split since may have moved part of it to a child this list lacks);
      // otherwise the child is searched over its whole listed range.
      // seq_cst: see the header.
      if (c.bound(cl).load(std::memory_order_seq_cst) < r.size && c.unsplit(cl)) {
        log.skipped(c.bound(cl), cl == 0 ? static_cast<const void*>(c.l) : static_cast<const void*>(c.t), c.listed, cl);
        continue;
      }
      const found f = cl == 0 ? search_leaves(st, c.l, c.hi, w, r, tighten, log, out)
                              : search_span(st, c.t, static_cast<const tower*>(c.listed), cl, w, r, false,
                                            tighten, log, out);
      if (f != found::no) return f;
    }
    // The largest child bound bounds x's span whatever was searched: lower
    // x's own bound to it (validated, see tighten_tower).
    if (!root && tighten) tighten_tower(st, x, lvl, end, seen, kids, nk, cl);
    return found::no;
  }

  // Searches leaf x and any leaf split off it since it was listed (up to
  // the listed end key), then tightens their bounds. The chain is walked
  // first and each leaf's copy must still link to the next one (the last to
  // a leaf at or past end_key): a split after the walk would otherwise hide
  // the extents it moved, with every copy consistent on its own.
  static found search_leaves(state& st, leaf* x, uint64_t end_key, detail::hole_window w, const hole_request& r,
                             bool tighten, search_log& log, uint64_t& out) noexcept {
    const bool up = r.dir == hole_request::direction::up;
    constexpr unsigned kMaxChain = 4;
    for (int attempt = 0; attempt < 8; ++attempt) {
      leaf* chain[kMaxChain];
      unsigned n = 0;
      for (leaf* y = x; y != nullptr && (y == x || y->key.load(std::memory_order_acquire) < end_key);
           y = y->next0(std::memory_order_acquire)) {  // acquire: pairs with set_next0's release store
        if (n == kMaxChain) return found::fallback;
        chain[n++] = y;
      }
      leaf_gaps g[kMaxChain];
      bool same = true;
      for (unsigned k = 0; k < n && same; ++k) {
        owned_gaps(st, chain[k], g[k]);
        log.read(chain[k], g[k].seq);
        const leaf* nx = g[k].next;
        same = !g[k].dead && (k + 1 < n ? nx == chain[k + 1]
                                        : nx == nullptr || nx->key.load(std::memory_order_acquire) >= end_key);
      }
      if (!same) continue;  // the chain changed under us: walk it again
      for (unsigned k = 0; k < n; ++k) {
        const leaf_gaps& lg = g[up ? k : n - 1 - k];
        for (uint32_t j = 0; j < lg.n; ++j) {
          const uint32_t i = up ? j : lg.n - 1 - j;
          const uint64_t lo = std::max(lg.lo[i], w.lo), hi = std::min(lg.hi[i], w.hi);
          if (lo >= hi) continue;
          const auto s = up ? detail::fit_lowest(lo, hi, r.size, r.align) : detail::fit_highest(lo, hi, r.size, r.align);
          if (s) {
            out = *s;
            return found::yes;
          }
        }
      }
      if (tighten) {
        for (unsigned k = 0; k < n; ++k) tighten_leaf(st, chain[k]);
      }
      return found::no;
    }
    return found::fallback;
  }

  // Lowers x's bound at lvl to the largest child bound, then re-validates:
  // x still linked, its span still ending at `end`, every child still
  // linked with its listed successor and a bound <= the new value. On any
  // change it raises the bound back to `seen` and climbs (header).
  static void tighten_tower(state& st, tower* x, unsigned lvl, const tower* end, uint64_t seen,
                            const child* kids, unsigned nk, unsigned cl) noexcept {
    uint64_t v = 0;
    // seq_cst (all loads and the CAS): the U protocol (header).
    for (unsigned k = 0; k < nk; ++k) v = std::max(v, kids[k].bound(cl).load(std::memory_order_seq_cst));
    if (v >= seen) return;
    sl_sync_point<typename S::traits>(sl_sync::before_tighten, x->key.load(std::memory_order_relaxed), lvl);
    uint64_t expect = seen;
    if (!x->gap(lvl).compare_exchange_strong(expect, v, std::memory_order_seq_cst)) return;
    bool ok = x->st().removed.load(std::memory_order_seq_cst) == 0 &&
              static_cast<const tower*>(x->next(lvl, std::memory_order_seq_cst)) == end;
    for (unsigned k = 0; ok && k < nk; ++k) {
      ok = !kids[k].gone(cl) && kids[k].unsplit(cl) && kids[k].bound(cl).load(std::memory_order_seq_cst) <= v;
    }
    if (!ok) climb_from(st, x, lvl, seen, x->key.load(std::memory_order_seq_cst));
  }


  // The API.md answer inside one pass window, through the bounds (the
  // linear walk when a span is too wide to list, or with the index off).
  static std::optional<uint64_t> search(state& st, detail::hole_window w, const hole_request& r) noexcept {
    if (w.hi < w.lo || w.hi - w.lo < r.size) return std::nullopt;
    if constexpr (S::kHoleIndex) {
      // Near the window's edge first (header: "A search first walks").
      uint64_t near = 0;
      if (walk(st, w, r, kNearExtents, near) == found::yes) return near;
      for (;;) {
        uint64_t out = 0;
        search_log log;
        // acquire: pairs with the release update of the level hint (index.hpp).
        const unsigned top = st.levels.load(std::memory_order_acquire);
        const found f = search_span(st, st.head.tower, nullptr, top, w, r, true, may_tighten(st), log, out);
        if (f == found::yes) return out;
        if (f == found::fallback || log.overflow) break;
        if (log.still_holds(r.size)) {
          return std::nullopt;
        }
        // Something the search relied on changed: search again (a writer made progress).
      }
    }
    return search_linear(st, w, r);
  }

  // The API.md answer inside one window by a walk over the extents (no
  // bounds needed): the reference the bounded search must agree with.
  static std::optional<uint64_t> search_linear(const state& st, detail::hole_window w,
                                               const hole_request& r) noexcept {
    uint64_t out = 0;
    if (walk(st, w, r, UINT64_MAX, out) == found::yes) return out;
    return std::nullopt;
  }

  // The walk behind search_linear, from the window's near edge (w.lo going
  // up, w.hi going down), reading at most `budget` extents: yes (out is the
  // first fit from that edge, so the API.md answer when no writer runs),
  // no (nothing fits), or fallback (the budget ran out first).
  static found walk(const state& st, detail::hole_window w, const hole_request& r, uint64_t budget,
                    uint64_t& out) noexcept {
    if (w.hi < w.lo || w.hi - w.lo < r.size) return found::no;
    std::optional<uint64_t> found_at;
    bool done = false, spent = false;
    if (r.dir == hole_request::direction::up) {
      uint64_t cursor = w.lo;
      if (w.lo > 0) {
        if (auto b = rd::last_le(st, w.lo - 1); b && b->start + b->size > cursor) cursor = b->start + b->size;
      }
      rd::scan_forward(st, w.lo, [&](const raw& x) {
        if (cursor >= w.hi || w.hi - cursor < r.size) {
          done = true;
          return false;
        }
        if (budget-- == 0) {
          spent = true;
          return false;
        }
        if (x.start > cursor) {
          const uint64_t hi = std::min(x.start, w.hi);
          if (hi > cursor) {
            if (auto s = detail::fit_lowest(cursor, hi, r.size, r.align)) {
              found_at = s;
              return false;
            }
          }
        }
        cursor = std::max(cursor, x.start + x.size);
        return x.start < w.hi;
      });
      if (!found_at && !done && !spent && cursor < w.hi) found_at = detail::fit_lowest(cursor, w.hi, r.size, r.align);
    } else {
      uint64_t top = w.hi;
      rd::scan_backward(st, w.hi, [&](const raw& x) {
        if (budget-- == 0) {
          spent = true;
          return false;
        }
        const uint64_t xend = x.start + x.size;
        if (xend < top) {
          const uint64_t lo = std::max(xend, w.lo);
          if (top > lo) {
            if (auto s = detail::fit_highest(lo, top, r.size, r.align)) {
              found_at = s;
              return false;
            }
          }
        }
        top = std::min(top, x.start);
        if (top <= w.lo || top - w.lo < r.size) {
          done = true;
          return false;
        }
        return true;
      });
      if (!found_at && !done && !spent) found_at = detail::fit_highest(w.lo, top, r.size, r.align);
    }
    if (found_at) {
      out = *found_at;
      return found::yes;
    }
    return spent ? found::fallback : found::no;
  }
};

}  // namespace rcukit::detail
