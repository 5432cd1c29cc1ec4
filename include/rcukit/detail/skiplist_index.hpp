// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_index.hpp -- the upper levels of extent_skiplist:
// linking and unlinking towers, and keeping the index blocks.
//
// The idea (the 2013 patch's per-node locks, applied to the towers only):
// level 0 is the skiplist; the towers above are an index that readers take
// as hints. A writer changes a tower's links only under that tower's own
// spin lock, so splits and leaf removals in different parts of the key
// space take different locks and share nothing.
//  * link (after a split published the new leaf at level 0): bottom up, at
//    each level lock the predecessor tower, re-validate it (not removed, its
//    successor past the new key; else move right or look it up again), point
//    the new tower at the successor, publish it from the predecessor,
//    count the level in `linked`, unlock.
//  * unlink (before a removal takes the leaf off level 0): mark the tower
//    removed under its own lock (no tower is linked after it from then on),
//    then top down, lock the predecessor and the tower (left to right), re-
//    validate, bypass, unlock.
// Lock order: leaf locks (left to right) before tower locks; at most two
// tower locks, of one level, left to right; a block's lock is taken with no
// tower lock held (two block locks: left to right). Nothing here allocates.
//
// Index blocks (skiplist_tower.hpp) are kept under their own locks: a new
// or removed level-1 tower updates the block of its owner (the tower at the
// block level heading it), validated under the block lock; a new or removed
// block tower rebuilds the blocks concerned from level 1. Entries are hints,
// so a block may lag its span by a concurrent update; a leaf is listed only
// after its publication and unlisted before it is marked dead.
//
// The hole index rides along (skiplist_holes.hpp): a new tower starts with
// its predecessor's bound, then covers its children; a removed tower's
// bound is merged into its predecessor.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <utility>

#include "rcukit/detail/skiplist_core.hpp"
#include "rcukit/detail/skiplist_holes.hpp"
#include "rcukit/detail/skiplist_read.hpp"

namespace rcukit::detail {

template <class S>
struct sl_index {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using block = typename S::block;
  using state = sl_state<S>;
  using rd = sl_read<S>;
  using holes = sl_holes<S>;
  static constexpr unsigned kLevels = S::kLevels;
  static constexpr unsigned kB = S::kBlockLevel;

  // Links nl's tower at levels [1, height). nl is published at level 0 and
  // its level-0 predecessor is locked by the caller (so nl cannot be
  // removed meanwhile). Blocking (tower and block spin locks).
  static void link(state& st, leaf* nl) noexcept {
    tower* const nt = nl->tower;
    if (nt == nullptr) return;
    const unsigned h = nl->height;
    // relaxed: nl's key changes only under its level-0 predecessor's lock
    // and its own (a redistribution), and we hold the former.
    const uint64_t key = nl->key.load(std::memory_order_relaxed);
    tower* preds[kLevels] = {};
    // One descent: the predecessors at every level nt needs and, at the
    // block level, the owner of nt's block entry (a hint, validated later).
    const unsigned top = std::max<unsigned>({h, st.levels.load(std::memory_order_acquire), kB + 1});
    rd::preds_of(st, key, top, preds);
    tower* const owner_hint = preds[kB];
    const bool keep = holes::maintained(st);
    tower* pred1 = preds[1];  // the level-1 predecessor nt was linked after
    for (unsigned lvl = 1; lvl < h; ++lvl) {
      tower* p = preds[lvl];
      for (;;) {
        p->st().lock.lock();
        // relaxed (removed, link): written only under p's lock, which we hold.
        if (p->st().removed.load(std::memory_order_relaxed) != 0) {
          p->st().lock.unlock();
          rd::preds_of(st, key, top, preds);  // p is on its way out: look again
          p = preds[lvl];
          continue;
        }
        tower* n = p->next(lvl, std::memory_order_relaxed);
        if (n != nullptr && n->key.load(std::memory_order_acquire) < key) {
          p->st().lock.unlock();  // a tower was linked after p meanwhile: move right
          p = n;
          continue;
        }
        // relaxed: nt is not reachable at this level until p's release store below.
        nt->link_at(lvl).ptr.store(n, std::memory_order_relaxed);
        nt->link_at(lvl).key.store(n != nullptr ? n->key.load(std::memory_order_relaxed) : kNoKey,
                                   std::memory_order_relaxed);
        // Start from the predecessor's bound: it covers every child nt
        // takes over, and nt's parent covers it (U, holes.hpp). seq_cst: U protocol.
        nt->gap(lvl).store(p->gap(lvl).load(std::memory_order_seq_cst), std::memory_order_seq_cst);
        p->set_link(lvl, nt);  // release: publishes nt at lvl
        // seq_cst: read by holes::heads after a raise (U protocol).
        nt->st().linked.store(static_cast<uint8_t>(lvl), std::memory_order_seq_cst);
        if (lvl == 1) pred1 = p;
        p->st().lock.unlock();
        break;
      }
      if (keep) cover_children(st, nt, lvl, key);
    }
    // The level hint grows monotonically. release: pairs with the acquire
    // loads of searches (the links above are published before it).
    unsigned lv = st.levels.load(std::memory_order_relaxed);
    while (lv < h && !st.levels.compare_exchange_weak(lv, h, std::memory_order_release)) {
    }
    if constexpr (S::kBlocks) {
      if (tower::has_block(h)) {
        split_block(st, nt, key, top);
      } else {
        block_insert(st, nl, pred1->leaf, owner_hint, key, top);
      }
    }
  }

  // nt was just linked at lvl: its bound there must cover its children
  // (read by RMW, so a racing raise either is seen here or sees nt's link),
  // then whatever heads nt above must cover it.
  static void cover_children(state& st, tower* nt, unsigned lvl, uint64_t key) noexcept {
    uint64_t v = 0;
    if (lvl == 1) {
      const tower* end = nt->next(1, std::memory_order_seq_cst);
      const uint64_t end_key = end != nullptr ? end->key.load(std::memory_order_seq_cst) : kNoKey;
      for (leaf* y = nt->leaf; y != nullptr; y = y->next0(std::memory_order_seq_cst)) {
        if (y != nt->leaf && y->key.load(std::memory_order_seq_cst) >= end_key) break;
        // seq_cst RMW (reads the latest value): see the function comment.
        v = std::max(v, y->gap0.fetch_add(0, std::memory_order_seq_cst));
      }
    } else {
      const tower* end = nt->next(lvl, std::memory_order_seq_cst);
      for (tower* y = nt; y != nullptr && y != end; y = y->next(lvl - 1, std::memory_order_seq_cst)) {
        if (y != nt && end != nullptr &&
            y->key.load(std::memory_order_seq_cst) >= end->key.load(std::memory_order_seq_cst)) {
          break;
        }
        v = std::max(v, y->gap(lvl - 1).fetch_add(0, std::memory_order_seq_cst));
      }
    }
    if (holes::raise_bound(nt->gap(lvl), v)) holes::climb_from(st, nullptr, lvl + 1, v, key);
  }

  // Unlinks d's tower from every level (top down) and d from the index
  // blocks. The caller holds the leaf locks of d and its level-0
  // predecessor, d is still live at level 0 (so its tower is fully linked).
  static void unlink(state& st, leaf* d) noexcept {
    tower* const dt = d->tower;
    if (dt == nullptr) return;
    const unsigned h = d->height;
    const uint64_t key = d->key.load(std::memory_order_relaxed);  // d is locked: stable
    const unsigned top = std::max<unsigned>({h, st.levels.load(std::memory_order_acquire), kB + 1});
    tower* preds[kLevels] = {};
    rd::preds_of(st, key, top, preds);  // one descent: predecessors and the block owner (hints)
    dt->st().lock.lock();
    // seq_cst: read by holes::heads after a raise (U protocol). Set before
    // the block update, so that a refill of the block leaves dt out.
    dt->st().removed.store(1, std::memory_order_seq_cst);
    dt->st().lock.unlock();
    if constexpr (S::kBlocks) {
      if (!tower::has_block(h)) block_erase(st, d, preds[kB], key, top);
    }
    const bool keep = holes::maintained(st);
    for (unsigned lvl = h; lvl-- > 1;) {
      tower* p = preds[lvl];
      for (;;) {
        p->st().lock.lock();
        dt->st().lock.lock();  // left to right
        // relaxed (removed, links): written only under the locks we hold.
        if (p->st().removed.load(std::memory_order_relaxed) != 0 || p->next(lvl, std::memory_order_relaxed) != dt) {
          dt->st().lock.unlock();
          p->st().lock.unlock();
          tower* n = p->next(lvl, std::memory_order_acquire);
          if (p->st().removed.load(std::memory_order_acquire) == 0 && n != nullptr && n != dt &&
              n->key.load(std::memory_order_acquire) < key) {
            p = n;  // a tower was linked between: move right
          } else {
            rd::preds_of(st, key, top, preds);
            p = preds[lvl];
          }
          continue;
        }
        // dt keeps its own links: a reader standing on it moves on (read.hpp (a)).
        p->set_link(lvl, dt->next(lvl, std::memory_order_relaxed));
        dt->st().lock.unlock();
        p->st().lock.unlock();
        break;
      }
      if (keep) {
        // p's span absorbed dt's: p must cover dt's bound (RMW read: a raise
        // of dt either is seen here or sees dt removed and raises p itself).
        const uint64_t v = dt->gap(lvl).fetch_add(0, std::memory_order_seq_cst);
        if (holes::raise_bound(p->gap(lvl), v) && !holes::heads(p, lvl, key - 1)) {
          holes::climb_from(st, nullptr, lvl, v, key - 1);
        }
      }
    }
    if constexpr (S::kBlocks) {
      if (tower::has_block(h)) {
        // d's span joins its owner's; its own block stays as it was for
        // readers still standing on d (it is retired with d).
        tower* owner = owner_of(st, key, top);
        lock_owner_block(st, owner, key, top);
        rebuild_block(owner);
        owner->index_block().lock.unlock();
      }
    }
  }

  // After a redistribution lowered n's key to `key`: the cached keys of the
  // links to n's tower and n's index block entry are lowered too (they are
  // hints: too high only makes descents stop early and walk level 0 one
  // leaf longer, so this is for speed). Under each predecessor's tower lock
  // and the block's lock; a link or entry no longer naming n is left alone,
  // and a racing later lowering can only leave a value that is too high.
  static void lower_key(const state& st, leaf* n, uint64_t key) noexcept {
    tower* const nt = n->tower;
    if (nt == nullptr) return;
    const unsigned h = n->height;
    // One descent gives the predecessors and, at the block level, the owner.
    const unsigned top = std::max<unsigned>({h, st.levels.load(std::memory_order_acquire), kB + 1});
    tower* preds[kLevels] = {};
    rd::preds_of(st, key, top, preds);
    for (unsigned lvl = 1; lvl < h; ++lvl) {
      tower* p = preds[lvl];
      p->st().lock.lock();
      // relaxed (link pointer): written only under p's lock, which we hold.
      if (p->next(lvl, std::memory_order_relaxed) == nt) {
        // release: a hint (walk_tower reads it relaxed); ordered after the key it mirrors.
        p->link_at(lvl).key.store(key, std::memory_order_release);
      }
      p->st().lock.unlock();
    }
    if constexpr (S::kBlocks) {
      if (tower::has_block(h)) return;  // listed in no block
      tower* o = preds[kB];
      lock_owner_block(st, o, key, top);
      auto& b = o->index_block();
      // relaxed (block fields): under the block lock.
      const uint32_t cnt = b.n.load(std::memory_order_relaxed);
      for (uint32_t i = 0; i < cnt; ++i) {
        if (b.e[i].leaf.load(std::memory_order_relaxed) == n) {
          // Not below the entry before it: keys stay non-decreasing (block_insert).
          const uint64_t k = i > 0 ? std::max(key, b.e[i - 1].key.load(std::memory_order_relaxed)) : key;
          b.seq.write_begin();
          b.e[i].key.store(k, std::memory_order_release);  // inside the write section (block_floor)
          b.seq.write_end();
          break;
        }
      }
      b.lock.unlock();
    }
  }

  // --- index blocks -----------------------------------------------------------

  // The tower at the block level whose span holds `key` (a recent state).
  static tower* owner_of(const state& st, uint64_t key, unsigned top) noexcept {
    tower* preds[kLevels] = {};
    rd::preds_of(st, key, std::max(top, kB + 1), preds);
    return preds[kB];
  }
  // Locks the block of the owner of key, re-finding the owner until the
  // locked one is linked and heads key at the block level. Returns it in o.
  static void lock_owner_block(const state& st, tower*& o, uint64_t key, unsigned top) noexcept {
    for (;;) {
      o->index_block().lock.lock();
      // acquire (all): pair with the release stores of link/unlink.
      const tower* n = o->next(kB, std::memory_order_acquire);
      if (o->st().removed.load(std::memory_order_acquire) == 0 &&
          o->st().linked.load(std::memory_order_acquire) >= kB &&
          (n == nullptr || n->key.load(std::memory_order_acquire) >= key)) {
        return;
      }
      o->index_block().lock.unlock();
      o = owner_of(st, key, top);
    }
  }

  // Under t's block lock: recomputes t's block from level 1.
  static void rebuild_block(tower* t) noexcept {
    auto& b = t->index_block();
    // acquire (links): pair with tower::set_link's release stores.
    const tower* const end = t->next(kB, std::memory_order_acquire);
    std::pair<uint64_t, leaf*> got[S::kBlockEntries];
    uint32_t n = 0;
    const tower* u = t->next(1, std::memory_order_acquire);
    for (; u != end && u != nullptr && n < S::kBlockEntries; u = u->next(1, std::memory_order_acquire)) {
      if (u->st().removed.load(std::memory_order_acquire) == 0) got[n++] = {u->key.load(std::memory_order_acquire), u->leaf};
    }
    b.seq.write_begin();
    for (uint32_t i = 0; i < n; ++i) {
      // release (all, inside the write section): pair with block_floor's acquire loads.
      b.e[i].key.store(got[i].first, std::memory_order_release);
      b.e[i].leaf.store(got[i].second, std::memory_order_release);
    }
    b.n.store(n, std::memory_order_release);
    b.partial.store(u != end && u != nullptr ? 1 : 0, std::memory_order_release);
    b.seq.write_end();
  }
  static void move_entry(block& b, uint32_t from, uint32_t to) noexcept {
    // relaxed loads: only the block lock holder writes entries; release stores: see rebuild_block.
    b.e[to].key.store(b.e[from].key.load(std::memory_order_relaxed), std::memory_order_release);
    b.e[to].leaf.store(b.e[from].leaf.load(std::memory_order_relaxed), std::memory_order_release);
  }
  // Lists nl (not a block tower, just linked at level 1 right after the
  // tower of its level-0 predecessor `after`, which the caller holds
  // locked) in its owner's block, right after the entry of `after`.
  // Entries are placed by their leaf, not by their key: an entry's key may
  // be stale-high after a key lowering (lower_key), and the keys must stay
  // in non-decreasing order for block_floor. So nl's entry takes
  // max(nl's key, the key before it): never below the real key (a hint
  // that is too high only makes a descent walk level 0 a little longer).
  static void block_insert(const state& st, leaf* nl, const leaf* after, tower* o, uint64_t key,
                           unsigned top) noexcept {
    lock_owner_block(st, o, key, top);
    auto& b = o->index_block();
    // relaxed (block fields): written only under the block lock, which we hold.
    const uint32_t n = b.n.load(std::memory_order_relaxed);
    const bool partial = b.partial.load(std::memory_order_relaxed) != 0;
    uint32_t i = 0;  // nl's slot
    bool found = after == o->leaf;
    for (uint32_t j = 0; !found && j < n; ++j) {
      if (b.e[j].leaf.load(std::memory_order_relaxed) == after) {
        i = j + 1;
        found = true;
      }
    }
    if (found && !(i < n && b.e[i].leaf.load(std::memory_order_relaxed) == nl) && !(i == n && partial)) {
      const uint64_t k = i > 0 ? std::max(key, b.e[i - 1].key.load(std::memory_order_relaxed)) : key;
      b.seq.write_begin();
      if (i == S::kBlockEntries) {
        b.partial.store(1, std::memory_order_release);  // full: the prefix stays
      } else {
        const uint32_t m = n < S::kBlockEntries ? n + 1 : S::kBlockEntries;  // a full block drops its last
        for (uint32_t j = m - 1; j > i; --j) move_entry(b, j - 1, j);
        // release (all, inside the write section): pair with block_floor's acquire loads.
        b.e[i].key.store(k, std::memory_order_release);
        b.e[i].leaf.store(nl, std::memory_order_release);
        b.n.store(m, std::memory_order_release);
        if (n == S::kBlockEntries) b.partial.store(1, std::memory_order_release);
      }
      b.seq.write_end();
    } else if (!found && !partial) {
      rebuild_block(o);  // `after` is missing (a concurrent rebuild left it out): recompute
    }
    b.lock.unlock();
  }
  // Unlists d (not a block tower, still linked) from its owner's block; a
  // partial block that fell to half is refilled.
  static void block_erase(const state& st, leaf* d, tower* o, uint64_t key, unsigned top) noexcept {
    lock_owner_block(st, o, key, top);
    auto& b = o->index_block();
    // relaxed (block fields): written only under the block lock, which we hold.
    const uint32_t n = b.n.load(std::memory_order_relaxed);
    const bool partial = b.partial.load(std::memory_order_relaxed) != 0;
    uint32_t i = 0;
    while (i < n && b.e[i].leaf.load(std::memory_order_relaxed) != d) ++i;
    if (i < n) {
      b.seq.write_begin();
      for (uint32_t j = i + 1; j < n; ++j) move_entry(b, j, j - 1);
      b.n.store(n - 1, std::memory_order_release);
      b.seq.write_end();
      if (partial && n - 1 < S::kBlockEntries / 2) rebuild_block(o);
    }
    b.lock.unlock();
  }
  // nt (a new block tower, linked at every level) splits its owner's span:
  // both blocks are rebuilt from level 1 (left to right under their locks).
  static void split_block(const state& st, tower* nt, uint64_t key, unsigned top) noexcept {
    tower* o = owner_of(st, key, top);  // key's strict predecessor at the block level
    lock_owner_block(st, o, key - 1, top);
    nt->index_block().lock.lock();
    rebuild_block(o);
    rebuild_block(nt);
    nt->index_block().lock.unlock();
    o->index_block().lock.unlock();
  }
};

}  // namespace rcukit::detail
