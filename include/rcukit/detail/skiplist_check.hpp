// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_check.hpp -- the invariant checker of
// extent_skiplist (tests and debugging; call when no writer runs).
//
// It verifies, in this order, and reports the first violation:
//  * level 0: leaves live, keys strictly increasing, counts within
//    capacity, no empty leaf but the head, even seqcounts, extents valid,
//    sorted, inside their leaf's range and not overlapping, every cached
//    link key equal to its target's key (skiplist_leaf.hpp);
//  * towers: present exactly for leaves taller than 1, pointing back to
//    their leaf with its key, fully linked, not removed, unlocked;
//  * every upper level is exactly the towers of the leaves taller than it,
//    in order (compared by identity before any dereference, so a link to
//    the tower of a dead leaf is reported, not followed), with cached keys
//    at or above their targets' keys; the level hint covers every height;
//  * index blocks: entries equal to level 1 within the span (a prefix when
//    partial), even seqcounts, unlocked;
//  * hole bounds: every leaf's gap0 covers the gaps it owns (L) and every
//    tower bound covers its children's bounds (U) (skiplist_holes.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "rcukit/detail/skiplist_core.hpp"
#include "rcukit/detail/skiplist_holes.hpp"
#include "rcukit/detail/skiplist_read.hpp"
#include "rcukit/extent.hpp"

namespace rcukit::detail {

template <class S>
struct sl_check {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using raw = typename S::raw;
  using state = sl_state<S>;
  using holes = sl_holes<S>;

  static absl::Status bad(const char* what, const leaf* l) {
    return absl::InternalError(std::string("extent_skiplist invariant: ") + what + " (leaf key " +
                               std::to_string(l != nullptr ? l->key.load(std::memory_order_acquire) : 0) + ")");
  }
  static uint64_t key_of(const leaf* l) noexcept { return l->key.load(std::memory_order_acquire); }

  // acquire (all loads below): pair with the writers' release stores of
  // their last mutation (the caller guarantees no writer runs).
  static absl::Status run(const state& st) {
    std::vector<const leaf*> live;  // level 0 without the head
    const leaf* prev = nullptr;
    bool have_end = false;
    uint64_t prev_end = 0;
    for (const leaf* l = &st.head; l != nullptr; l = l->next0(std::memory_order_acquire)) {
      const uint32_t n = l->count.load(std::memory_order_acquire);
      const leaf* nx = l->next0(std::memory_order_acquire);
      if (l->dead.load(std::memory_order_acquire)) return bad("dead leaf reachable at level 0", l);
      if (n > S::kCap) return bad("count above capacity", l);
      if (l != &st.head && n == 0) return bad("empty live non-head leaf", l);
      if (prev != nullptr && key_of(l) <= key_of(prev)) return bad("leaf keys not increasing", l);
      if (l->seq.current() & 1) return bad("seqcount odd when quiescent", l);
      if (!const_cast<leaf*>(l)->lock.try_lock()) return bad("leaf lock held when quiescent", l);
      const_cast<leaf*>(l)->lock.unlock();
      if (l->link0.key.load(std::memory_order_acquire) != (nx != nullptr ? key_of(nx) : kNoKey)) {
        return bad("level-0 cached key differs from its target's key", l);
      }
      for (uint32_t i = 0; i < n; ++i) {
        raw r;
        l->load_acquire(i, r);
        if (!is_valid_extent(r.start, r.size)) return bad("invalid extent stored", l);
        if (r.start < key_of(l)) return bad("extent starts below its leaf key", l);
        if (nx != nullptr && r.start >= key_of(nx)) return bad("extent starts beyond its leaf range", l);
        if (have_end && r.start < prev_end) return bad("extents overlap or are unsorted", l);
        prev_end = r.start + r.size;
        have_end = true;
      }
      if (l != &st.head) live.push_back(l);
      prev = l;
    }
    const unsigned hint = st.levels.load(std::memory_order_acquire);
    for (const leaf* l : live) {
      if (l->height < 1 || l->height > S::kLevels) return bad("bad height", l);
      if (S::kDense && l->height < 2) return bad("dense index: a leaf without a tower", l);
      if (l->height > hint) return bad("leaf taller than the level hint", l);
      if ((l->tower != nullptr) != (l->height > 1)) return bad("tower present iff height > 1 violated", l);
      if (const tower* t = l->tower) {
        if (t->leaf != l) return bad("tower does not point back to its leaf", l);
        if (t->key.load(std::memory_order_acquire) != key_of(l)) return bad("tower key differs from its leaf's", l);
        if (t->st().removed.load(std::memory_order_acquire) != 0) return bad("live leaf with a removed tower", l);
        if (t->st().linked.load(std::memory_order_acquire) != l->height - 1) return bad("tower not fully linked", l);
        if (!const_cast<tower*>(t)->st().lock.try_lock()) return bad("tower lock held when quiescent", l);
        const_cast<tower*>(t)->st().lock.unlock();
      }
    }
    // Upper levels: level k is exactly the towers of the leaves taller than k.
    for (unsigned k = 1; k < S::kLevels; ++k) {
      const tower* p = st.head.tower;
      size_t i = 0;
      for (;;) {
        while (i < live.size() && live[i]->height <= k) ++i;
        const tower* want = i < live.size() ? live[i]->tower : nullptr;
        const tower* n = p->next(k, std::memory_order_acquire);
        if (n != want) {
          if (n == nullptr) return bad("upper level ends before a tall enough leaf (skipped)", p->leaf);
          if (std::find_if(live.begin(), live.end(), [&](const leaf* l) { return l->tower == n; }) == live.end()) {
            return bad("upper level links a tower whose leaf is dead or not at level 0", p->leaf);
          }
          return bad("upper level link skips or disorders towers", p->leaf);
        }
        const uint64_t cached = p->link_at(k).key.load(std::memory_order_acquire);
        if (cached < (n != nullptr ? n->key.load(std::memory_order_acquire) : kNoKey)) {
          return bad("upper-level cached key below its target's key", p->leaf);
        }
        if (n == nullptr) break;
        p = n;
        ++i;
      }
    }
    if constexpr (S::kBlocks) {
      constexpr unsigned kB = S::kBlockLevel;
      for (const tower* t = st.head.tower; t != nullptr; t = t->next(kB, std::memory_order_acquire)) {
        const auto& b = t->index_block();
        const tower* end = t->next(kB, std::memory_order_acquire);
        const uint32_t n = b.n.load(std::memory_order_acquire);
        if (n > S::kBlockEntries) return bad("index block count above capacity", t->leaf);
        uint32_t i = 0;
        for (const tower* u = t->next(1, std::memory_order_acquire); u != end;
             u = u->next(1, std::memory_order_acquire), ++i) {
          if (i >= n) {
            if (b.partial.load(std::memory_order_acquire) == 0) return bad("index block misses a leaf", t->leaf);
            break;
          }
          if (b.e[i].leaf.load(std::memory_order_acquire) != u->leaf ||
              b.e[i].key.load(std::memory_order_acquire) < u->key.load(std::memory_order_acquire)) {
            return bad("index block entry differs from level 1", t->leaf);
          }
        }
        if (i < n) return bad("index block lists a leaf past its span", t->leaf);
        for (uint32_t j = 1; j < n; ++j) {
          if (b.e[j].key.load(std::memory_order_acquire) < b.e[j - 1].key.load(std::memory_order_acquire)) {
            return bad("index block keys decrease", t->leaf);
          }
        }
        if (b.seq.current() & 1) return bad("index block seqcount odd when quiescent", t->leaf);
        if (!const_cast<typename S::block&>(b).lock.try_lock()) return bad("index block lock held", t->leaf);
        const_cast<typename S::block&>(b).lock.unlock();
      }
    }
    // (L): every leaf's bound covers the gaps it owns.
    for (const leaf* l = &st.head; l != nullptr; l = l->next0(std::memory_order_acquire)) {
      typename holes::leaf_gaps g;
      holes::owned_gaps(st, l, g);
      if (l->gap0.load(std::memory_order_acquire) < holes::largest(g)) {
        return bad("leaf hole bound below a gap it owns", l);
      }
    }
    // (U): every tower bound covers its children's bounds.
    for (unsigned k = 1; k < hint; ++k) {
      for (const tower* x = st.head.tower; x != nullptr; x = x->next(k, std::memory_order_acquire)) {
        const tower* end = x->next(k, std::memory_order_acquire);
        const uint64_t b = x->gap(k).load(std::memory_order_acquire);
        uint64_t need = 0;
        if (k == 1) {
          for (const leaf* y = x->leaf; y != nullptr && (end == nullptr || y != end->leaf);
               y = y->next0(std::memory_order_acquire)) {
            need = std::max(need, y->gap0.load(std::memory_order_acquire));
          }
        } else {
          for (const tower* y = x; y != nullptr && y != end; y = y->next(k - 1, std::memory_order_acquire)) {
            need = std::max(need, y->gap(k - 1).load(std::memory_order_acquire));
          }
        }
        if (b < need) return bad("tower hole bound below a child's bound", x->leaf);
      }
    }
    return absl::OkStatus();
  }

  // Leaves reachable at level 0 (quiescent).
  static size_t leaf_count(const state& st) noexcept {
    size_t n = 0;
    for (const leaf* l = &st.head; l != nullptr; l = l->next0(std::memory_order_acquire)) ++n;
    return n;
  }
};

}  // namespace rcukit::detail
