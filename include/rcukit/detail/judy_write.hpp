// SPDX-License-Identifier: MIT
// rcukit/detail/judy_write.hpp -- judy_array's writer: one routine,
// update(), for insert, assign and erase.
//
//
// Writers. A change to key k rebuilds k's bucket (or splits it into a new
// subtree) and becomes "set slot b of node N to word w" at the deepest node
// N on k's path. It is absorbed in place when it keeps N's key
// set (replacing a child) or N is a pigeon node; otherwise N is rebuilt
// (copy-on-write), and the rebuilt node (or nothing, or a merged bucket) becomes
// a change to N's parent, and so on up. So every update is: a chain of
// rebuilt nodes below one in-place store at the top level t. The writer
//   1. descends under RCU and plans, without locking, the top level t;
//   2. locks the nodes from t down to N in depth order (the root word has its
//      own lock at depth -1), checks that the top node is live and that every
//      parent still points to the next node; retries the whole operation
//      otherwise;
//   3. re-plans under the locks, allocating the rebuilt nodes; if the plan
//      now needs a higher level, or an allocation fails, frees what it built
//      (nothing was published) and retries / returns ResourceExhausted;
//   4. publishes with one release store at level t, marks the replaced nodes
//      dead, unlocks, and retires them through RCU.
// Writers in different subtrees lock disjoint nodes and run in parallel;
// they meet only on a common ancestor that must absorb a rebuilt child (for
// a lin*/pool node, inserting a new key byte rebuilds it and locks its
// parent for the duration of that store). Readers' path nodes above the top
// level are only read, never locked or written.
//
// Short writer read sides. A writer needs RCU protection only until it has
// locked and validated its nodes: from then on everything it reads is a
// locked live node, a child of one, or an object it replaces and alone
// retires, so it leaves its read side before allocating, copying and
// committing.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/judy_rebuild.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_write : judy_rebuild<T, Rcu, BucketCap> {
  using base = judy_rebuild<T, Rcu, BucketCap>;
  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;
  using entry = std::pair<std::uint64_t, T>;
  using typename base::effect;
  using typename base::held_leaves;
  using typename base::rec;
  using base::apply;
  using base::as_leaf;
  using base::as_leaf_mut;
  using base::as_node;
  using base::as_rec;
  using base::cap_for;
  using base::count_keys;
  using base::free_one;
  using base::free_unpublished;
  using base::is_rec;
  using base::kMaxDepth;
  using base::leaf_word;
  using base::make_rec;
  using base::make_sorted;
  using base::merge_max;
  using base::node_word;
  using base::plan_bottom;
  using base::prefix_mask;
  using base::retire_word;
  using base::root_;
  using base::root_lock_;
  using base::subtree_bytes;
  using base::word_bytes;

  struct path {
    node* nodes[kMaxDepth];  // indexed by depth, from d0 to bottom
    unsigned bytes[kMaxDepth];
    int d0 = 0;         // depth of the top node (the root record's depth)
    int bottom = -1;    // depth of the deepest node on the path; d0 - 1 = the root word
    word root = 0;      // root_ as read
    bool diverged = false;  // key's first d0 bytes differ from the record's prefix
    int root_level() const noexcept { return d0 - 1; }
  };

  // Descends (under RCU) to the deepest node on key's path; returns the word
  // in its slot for key (0 or a leaf), or the root word if the key lies
  // outside the root record's prefix (p.diverged).
  word descend(std::uint64_t key, path& p) const {
    word w = p.root = root_.load(std::memory_order_acquire);  // as find_rcu
    p.d0 = 0;
    p.diverged = false;
    if (is_rec(w)) {
      const rec* r = as_rec(w);
      p.d0 = static_cast<int>(r->depth);
      if ((key & prefix_mask(r->depth)) != r->prefix) {
        p.diverged = true;
        p.bottom = p.d0 - 1;
        return w;
      }
      w = r->top;
    }
    p.bottom = p.d0 - 1;
    for (unsigned d = static_cast<unsigned>(p.d0); w != 0 && !detail::judy_is_leaf(w); ++d) {
      node* n = as_node(w);
      p.nodes[d] = n;
      p.bytes[d] = detail::judy_byte(key, d);
      p.bottom = static_cast<int>(d);
      w = n->child(p.bytes[d]);
    }
    return w;
  }

  // What an update does to the leaf in its slot: nothing, an in-place
  // change, or a rebuild (the leaf is full, falls below its class, changes
  // encoding or empties). found/pos: whether key is there, and where (index
  // or byte). Exact for the lock holder; an estimate otherwise.
  enum class leaf_op { noop, in_place, rebuild };
  struct leaf_plan {
    leaf_op op = leaf_op::noop;
    bool found = false;
    unsigned pos = 0;
  };
  static leaf_plan plan_leaf(const leaf* l, std::uint64_t key, const T* v, bool assign) {
    leaf_plan pl;
    const unsigned c = l->count();
    if (l->bitmap()) {
      pl.pos = static_cast<unsigned>(key & 0xff);
      pl.found = l->test(pl.pos);  // the path matched the leaf's prefix
      if (v == nullptr) {
        pl.op = !pl.found ? leaf_op::noop : c - 1 <= merge_max ? leaf_op::rebuild : leaf_op::in_place;
      } else {
        pl.op = pl.found && !assign ? leaf_op::noop : leaf_op::in_place;
      }
      return pl;
    }
    pl.pos = l->lower(key, c);
    pl.found = pl.pos < c && l->key_at(pl.pos) == key;
    if (v == nullptr) {
      if (!pl.found) {
        pl.op = leaf_op::noop;
      } else if (c == 1 || ((c - 1) * 2 < l->cap && cap_for(c + 1) < l->cap)) {
        pl.op = leaf_op::rebuild;  // empties, or shrinks to a smaller class
      } else {
        pl.op = leaf_op::in_place;
      }
    } else if (pl.found) {
      pl.op = assign ? leaf_op::in_place : leaf_op::noop;
    } else {
      pl.op = c < l->cap ? leaf_op::in_place : leaf_op::rebuild;
    }
    return pl;
  }
  // Carries out a noop or in-place plan on the locked, live leaf l; returns
  // update()'s result (inserted, or erased) and fills *erased.
  bool finish_in_place(leaf* l, const leaf_plan& pl, std::uint64_t key, const T* v, std::optional<T>* erased) {
    if (v == nullptr) {
      if (!pl.found) return false;
      T old;
      l->value(pl.pos, old);
      *erased = old;
      if (l->bitmap()) {
        l->bitmap_clear(pl.pos);
      } else {
        l->sorted_erase(pl.pos);
      }
      count_keys(-1, 0);
      return true;
    }
    if (pl.op == leaf_op::noop) return false;
    if (pl.found) {
      l->assign(pl.pos, *v);
      return false;
    }
    if (l->bitmap()) {
      l->bitmap_set(pl.pos, *v);
    } else {
      l->sorted_insert(pl.pos, key, *v);
    }
    count_keys(1, 0);
    return true;
  }

  // In-place part of an update at node n (locked): set/clear slot b.
  static void store_in_place(node* n, unsigned b, word w) {
    if (n->kind_ == kind::pigeon) {
      const word old = n->children()[b].load(std::memory_order_relaxed);  // under n's lock
      if (old == 0 && w != 0)
        n->count_.store(static_cast<std::uint16_t>(n->count() + 1), std::memory_order_relaxed);
      if (old != 0 && w == 0)
        n->count_.store(static_cast<std::uint16_t>(n->count() - 1), std::memory_order_relaxed);
      // Inside a write section of the node's seqcount (judy_node.hpp (2)):
      // bound queries that read slots of n across this store see the count
      // change and walk again.
      n->pigeon_seq().write_begin();
      // release: publishes w's contents; pairs with the acquire in child().
      // It also orders write_begin() before it (seqcount.hpp).
      n->children()[b].store(w, std::memory_order_release);
      n->pigeon_seq().write_end();
      return;
    }
    const int idx = n->index_of(b);
    if (idx >= 0) n->children()[idx].store(w, std::memory_order_release);  // pairs with child()
  }

  void lock_level(const path& p, int d) const {
    if (d < p.d0) {
      root_lock_.lock();
    } else {
      p.nodes[d]->lock();
    }
  }
  void unlock_range(const path& p, int top, int bottom) const {
    for (int d = bottom; d >= top; --d) {
      if (d < p.d0) {
        root_lock_.unlock();
      } else {
        p.nodes[d]->unlock();
      }
    }
  }

  // Inserts key, whose first p.d0 bytes differ from the root record's
  // prefix: a new top node at the first differing depth j over a new leaf
  // for key and a chain of single-child nodes down to the old top (only
  // the root may skip levels). Caller holds the root lock and checked that
  // root_ is still p.root. Returns the bytes added, or -1 on allocation
  // failure (nothing published).
  std::ptrdiff_t insert_diverged(const path& p, std::uint64_t key, const T* v) {
    const rec* r = as_rec(p.root);
    const unsigned j = static_cast<unsigned>(__builtin_clzll((key ^ r->prefix) & prefix_mask(r->depth))) / 8;
    std::ptrdiff_t bytes = 0;
    node* built[kMaxDepth];
    unsigned nbuilt = 0;
    auto fail = [&]() {
      while (nbuilt > 0) detail::judy_free_node(built[--nbuilt]);  // each one's child is published or freed next
      return std::ptrdiff_t{-1};
    };
    word chain = r->top;
    for (unsigned d = r->depth - 1; d > j; --d) {
      detail::judy_child_list l;
      l.push(detail::judy_byte(r->prefix, d), chain);
      node* n = detail::judy_build(kind::lin4, l);
      if (n == nullptr) return fail();
      built[nbuilt++] = n;
      bytes += static_cast<std::ptrdiff_t>(word_bytes(node_word(n)));
      chain = node_word(n);
    }
    leaf* nl = make_sorted(&key, reinterpret_cast<const char*>(v), 1, cap_for(2));
    if (nl == nullptr) return fail();
    detail::judy_child_list l;
    const unsigned kb = detail::judy_byte(key, j), pb = detail::judy_byte(r->prefix, j);
    if (kb < pb) {
      l.push(kb, leaf_word(nl));
      l.push(pb, chain);
    } else {
      l.push(pb, chain);
      l.push(kb, leaf_word(nl));
    }
    node* top = detail::judy_build(kind::lin4, l);
    word root = top == nullptr ? 0 : j == 0 ? node_word(top) : make_rec(node_word(top), j, key);
    if (root == 0) {
      if (top != nullptr) detail::judy_free_node(top);
      detail::judy_free_leaf<T>(nl);
      return fail();
    }
    bytes += static_cast<std::ptrdiff_t>(word_bytes(leaf_word(nl)) + word_bytes(node_word(top)));
    if (is_rec(root)) bytes += static_cast<std::ptrdiff_t>(word_bytes(root));
    root_.store(root, std::memory_order_release);  // pairs with the acquire loads of root_
    bytes -= static_cast<std::ptrdiff_t>(word_bytes(p.root));
    retire_word(p.root);  // the old record; the old top stays, below the chain
    return bytes;
  }

  // The single writer routine. v != nullptr: insert (assign: or replace),
  // returning true if the key was inserted, false if it was present.
  // v == nullptr: erase, returning true and filling *erased if removed.
  absl::StatusOr<bool> update(std::uint64_t key, const T* v, bool assign, std::optional<T>* erased) {
    // Take the batches parked in the depot (past their grace period) into
    // this thread's block cache (detail/rcu_batch.hpp, drain()).
    detail::judy_reclaimer<Rcu>::drain();
    for (;;) {
      // The read side covers the lock-free part (descend, plan, lock,
      // validate) and in-place changes; see "Short writer read sides".
      std::optional<rcu::read_guard<Rcu>> g;
      g.emplace();
      path p;
      word cur = descend(key, p);
      const unsigned s = static_cast<unsigned>(p.bottom + 1);  // depth of the bottom slot
      const int rl = p.root_level();

      if (p.diverged) {  // the key lies outside the root record's prefix: absent
        if (v == nullptr) return false;
        root_lock_.lock();
        if (root_.load(std::memory_order_relaxed) != p.root) {  // under the root lock
          root_lock_.unlock();
          continue;
        }
        g.reset();  // the record and its top change only under the root lock
        const std::ptrdiff_t added = insert_diverged(p, key, v);
        root_lock_.unlock();
        if (added < 0) return absl::ResourceExhaustedError("judy_array: allocation failed");
        count_keys(1, added);
        return true;
      }

      // 0. The common case: the key's leaf changes in place under its own
      //    lock (judy_leaf.hpp); nothing else is locked or written.
      if (cur != 0) {
        leaf* l = as_leaf_mut(cur);
        l->lock();
        if (l->is_dead()) {  // replaced since we read its slot
          l->unlock();
          continue;
        }
        const leaf_plan pl = plan_leaf(l, key, v, assign);
        if (pl.op != leaf_op::rebuild) {
          const bool r = finish_in_place(l, pl, key, v, erased);
          l->unlock();
          return r;
        }
        l->unlock();
      } else if (v == nullptr) {
        return false;  // erase: the key's slot is empty
      }

      // 1. Plan the top level without locks.
      word w = 0;
      plan_bottom(cur == 0 ? nullptr : as_leaf(cur), key, v, s, /*dry=*/true, w);
      int top = p.bottom;
      for (; top > rl; --top) {
        const effect e = apply(p.nodes[top], p.bytes[top], w, true, nullptr);
        if (e.in_place) break;
        w = e.repl;
      }

      // 2. Lock top..bottom in depth order (invariant 1) and validate: the
      //    top node is live, or the root word is as read, and every locked
      //    parent still points to the next node, so every locked node is
      //    live (invariant 2).
      bool valid = true;
      int locked = top - 1;
      for (int d = top; d <= p.bottom && valid; ++d) {
        lock_level(p, d);
        locked = d;
        if (d == rl) {
          valid = root_.load(std::memory_order_relaxed) == p.root;  // under the root lock
        } else if (d == top) {
          valid = !p.nodes[d]->is_dead();
        } else if (d > p.d0) {
          // Parent locked: its slot is stable.
          valid = p.nodes[d - 1]->child(p.bytes[d - 1]) == node_word(p.nodes[d]);
        }  // d == p.d0 below the locked root word: the root word is as read, so its top is nodes[d0]
      }
      if (!valid) {
        unlock_range(p, top, locked);
        continue;
      }
      // Re-read the bottom slot under its lock.
      cur = p.bottom == rl ? root_.load(std::memory_order_relaxed)  // under the root lock
                           : p.nodes[p.bottom]->child(p.bytes[p.bottom]);
      if (cur != 0 && !detail::judy_is_leaf(cur)) {  // a subtree grew below us: descend again
        unlock_range(p, top, p.bottom);
        continue;
      }
      // The leaf in the slot (locked after its parent: invariant 1) is live:
      // a leaf is replaced or removed only under its parent's lock.
      leaf* bl = cur == 0 ? nullptr : as_leaf_mut(cur);
      if (bl != nullptr) bl->lock();
      auto unlock_all = [&](held_leaves* h) {
        if (h != nullptr) h->unlock_from(0);
        if (bl != nullptr) bl->unlock();
        unlock_range(p, top, p.bottom);
      };
      // Everything read from here on is locked and live, a child of a
      // locked node (replacing it needs that lock), or an object this
      // update replaces and alone retires: none can be freed under us, so
      // the read side ends here and grace periods need not wait for the
      // allocation, the copy and the commit.
      g.reset();

      // 3. Plan for real, allocating (nothing is published yet). The leaf
      //    may have changed since step 0: it may now take the change in place.
      leaf_plan pl;
      if (bl != nullptr) {
        pl = plan_leaf(bl, key, v, assign);
        if (pl.op != leaf_op::rebuild) {
          const bool r = finish_in_place(bl, pl, key, v, erased);
          unlock_all(nullptr);
          return r;
        }
      } else if (v == nullptr) {
        unlock_all(nullptr);
        return false;
      }
      if (!plan_bottom(bl, key, v, s, /*dry=*/false, w)) {
        unlock_all(nullptr);
        return absl::ResourceExhaustedError("judy_array: allocation failed");
      }
      // A subtree built at the root word (the root leaf split): skip its
      // chain of single-child nodes (all unpublished) behind a root record.
      unsigned new_d0 = 0;
      if (p.bottom == rl && w != 0 && !detail::judy_is_leaf(w)) {
        while (new_d0 < 6 && as_node(w)->count() == 1) {
          word only = 0;
          as_node(w)->template visit<true>(0, 255, [&](unsigned, word c) {
            only = c;
            return true;
          });
          if (detail::judy_is_leaf(only)) break;
          detail::judy_free_node(as_node(w));
          w = only;
          ++new_d0;
        }
      }
      // repl[d]: node d's replacement in its parent (levels level+1 ..
      // bottom are replaced).
      word repl[kMaxDepth];
      const word fresh = w;  // the new bottom word: a wholly new leaf or subtree, or 0
      // Its size, measured before publication: once published, other writers
      // may change nodes inside a fresh subtree (and account for that).
      const std::size_t fresh_bytes = subtree_bytes(fresh);
      held_leaves held;
      int level = p.bottom;
      bool failed = false;
      // Never above `top`: those nodes are not locked, and outside the read
      // side they may be freed; needing them means retrying (below).
      for (; level > rl && level >= top; --level) {
        const effect e = apply(p.nodes[level], p.bytes[level], w, false, &held);
        if (e.alloc_failed) {
          failed = true;
          break;
        }
        if (e.in_place) break;
        repl[level] = e.repl;
        w = e.repl;
      }
      // At the root word, a node below a skipped prefix needs a new record.
      word new_rec = 0;
      if (!failed && level == rl && w != 0 && !detail::judy_is_leaf(w)) {
        const unsigned depth = p.bottom == rl ? new_d0 : static_cast<unsigned>(p.d0);
        if (depth > 0) {
          new_rec = make_rec(w, depth, key);
          failed = new_rec == 0;
        }
      }
      if (failed || level < top) {
        // Roll back: free everything built; nothing was published. A
        // rebuilt node is freed alone: its other children are published.
        for (int d = level + 1; d <= p.bottom; ++d) free_one(repl[d]);
        free_unpublished(fresh);
        unlock_all(&held);
        if (failed) return absl::ResourceExhaustedError("judy_array: allocation failed");
        continue;  // needs a level above the ones locked: retry
      }

      // 4. Commit: one release store at `level` publishes everything built.
      std::ptrdiff_t delta = 0;
      if (level == rl) {
        const word root = new_rec != 0 ? new_rec : w;
        root_.store(root, std::memory_order_release);  // pairs with the acquire loads of root_
        if (new_rec != 0) delta += static_cast<std::ptrdiff_t>(word_bytes(new_rec));
      } else {
        store_in_place(p.nodes[level], p.bytes[level], w);
      }
      for (int d = level + 1; d <= p.bottom; ++d) {
        p.nodes[d]->dead_.store(true, std::memory_order_relaxed);  // under its lock (invariant 5)
      }
      // Bytes and reclamation. A node merged into a leaf copied the word
      // set into it (unpublished: freed now) and its other child leaves
      // (published, locked in `held`: retired with it).
      auto merged = [&](int d) { return repl[d] != 0 && detail::judy_is_leaf(repl[d]); };
      if (fresh != 0) {
        if (p.bottom > level && merged(p.bottom)) {
          detail::judy_free_leaf<T>(as_leaf_mut(fresh));
        } else {
          delta += static_cast<std::ptrdiff_t>(fresh_bytes);
        }
      }
      for (int d = level + 1; d <= p.bottom; ++d) {
        if (repl[d] == 0) continue;
        if (d - 1 > level && merged(d - 1)) {
          free_one(repl[d]);  // copied into the merged leaf above
        } else {
          delta += static_cast<std::ptrdiff_t>(word_bytes(repl[d]));
        }
      }
      word retire_list[kMaxDepth + 2];
      int nretire = 0;
      for (int d = level + 1; d <= p.bottom; ++d) retire_list[nretire++] = node_word(p.nodes[d]);
      if (level == rl && is_rec(p.root)) retire_list[nretire++] = p.root;  // replaced with its top
      bool inserted = true;
      if (bl != nullptr) {
        if (v != nullptr) inserted = !pl.found;
        if (v == nullptr) {  // erase implies found (else in place: noop)
          T old;
          bl->value(pl.pos, old);
          *erased = old;
        }
        bl->mark_dead();  // (L3); unlocked below
        retire_list[nretire++] = cur;
      }
      for (unsigned i = 0; i < held.n; ++i) {  // merged siblings (L3)
        held.l[i]->mark_dead();
        held.l[i]->unlock();
      }
      unlock_all(nullptr);
      for (int i = 0; i < nretire; ++i) {
        delta -= static_cast<std::ptrdiff_t>(word_bytes(retire_list[i]));
        retire_word(retire_list[i]);
      }
      for (unsigned i = 0; i < held.n; ++i) {
        delta -= static_cast<std::ptrdiff_t>(word_bytes(leaf_word(held.l[i])));
        retire_word(leaf_word(held.l[i]));
      }
      count_keys(v != nullptr ? (inserted ? 1 : 0) : -1, delta);
      return v != nullptr ? inserted : true;
    }
  }
};

}  // namespace rcukit::detail
