// SPDX-License-Identifier: MIT
// rcukit/detail/judy_rebuild.hpp -- what a writer builds before it
// publishes anything: the word that replaces a leaf (a new leaf, a subtree
// of leaves, or nothing), and the effect of that word on each node up the
// path (absorbed in place, or the node rebuilt in the class its fan-out
// picks, or merged with its sibling leaves into one leaf, or removed).
// Everything built here is unpublished: plain stores, published later by
// the writer's one release store (judy_write.hpp), or freed on rollback.
//
// Merges. A node whose children are all leaves holding at most merge_max
// (BucketCap / 2) keys in all becomes one sorted leaf. Merges are checked
// only when an update rebuilds a leaf (it grows, shrinks or empties), not
// on in-place erases, so an erase that changes a leaf in place never
// locks its siblings. The merged siblings are locked by the update (held
// in held_leaves), marked dead and retired at its commit.
//
// Dry runs. The writer first plans without locks (dry == true): nothing
// is allocated or locked and rebuilt objects are placeholders (kSomeNode,
// fake_leaf(count)); the plan only finds the top level the update must
// lock. Under the locks it plans again for real.
#pragma once

#include <cstdint>
#include <cstring>

#include "rcukit/detail/judy_read.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_rebuild : judy_read<T, Rcu, BucketCap> {
  using base = judy_read<T, Rcu, BucketCap>;
  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;
  using entry = std::pair<std::uint64_t, T>;
  using base::as_leaf;
  using base::as_leaf_mut;
  using base::as_node;
  using base::cap_for;
  using base::fake_leaf;
  using base::free_unpublished;
  using base::kSomeNode;
  using base::leaf_count;
  using base::leaf_word;
  using base::merge_max;
  using base::node_word;
  using base::word_bytes;

  // A sorted leaf of capacity cap from sorted parallel arrays, or nullptr.
  static leaf* make_sorted(const std::uint64_t* keys, const char* values, unsigned n, unsigned cap) {
    leaf* l = detail::judy_new_sorted_leaf<T>(cap);
    if (l == nullptr) return nullptr;
    std::memcpy(l->key_words(), keys, 8 * std::size_t{n});
    std::memcpy(l->value_slot(0), values, sizeof(T) * std::size_t{n});
    l->n.store(static_cast<std::uint16_t>(n), std::memory_order_relaxed);  // published later (release)
    return l;
  }
  static leaf* make_bitmap(const std::uint64_t* keys, const char* values, unsigned n) {
    leaf* l = detail::judy_new_bitmap_leaf<T>(keys[0]);
    if (l == nullptr) return nullptr;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned b = static_cast<unsigned>(keys[i] & 0xff);
      l->bit_words()[b >> 6] |= std::uint64_t{1} << (b & 63);
      std::memcpy(l->value_slot(b), values + sizeof(T) * i, sizeof(T));
    }
    l->n.store(static_cast<std::uint16_t>(n), std::memory_order_relaxed);  // published later (release)
    return l;
  }
  static std::size_t subtree_bytes(word w) {
    if (w == 0) return 0;
    if (detail::judy_is_leaf(w)) return word_bytes(w);
    std::size_t s = word_bytes(w);
    as_node(w)->template visit<true>(0, 255, [&](unsigned, word c) {
      s += subtree_bytes(c);
      return false;
    });
    return s;
  }
  // The subtree for n sorted entries sharing bytes [0, s): one sorted leaf
  // (capacity cap_for(n + slack)) if they fit, a bitmap leaf at depth 7,
  // else a node at depth s over subtrees. 0 on allocation failure (nothing
  // leaked).
  static word build_subtree(const std::uint64_t* keys, const char* values, unsigned n, unsigned s,
                            unsigned slack) {
    if (n <= BucketCap) {
      // At the last level a growing leaf doubles: dense keys reach the
      // bitmap leaf after a few copies instead of one per two keys.
      const unsigned want = s >= 7 && slack == 1 && 2 * n - 2 > n + slack ? 2 * n - 2 : n + slack;
      leaf* l = make_sorted(keys, values, n, cap_for(want));
      return l == nullptr ? 0 : leaf_word(l);
    }
    if (s >= 7) {
      leaf* l = make_bitmap(keys, values, n);
      return l == nullptr ? 0 : leaf_word(l);
    }
    detail::judy_child_list l;
    for (unsigned i = 0; i < n;) {
      const unsigned byte = detail::judy_byte(keys[i], s);
      unsigned j = i;
      while (j < n && detail::judy_byte(keys[j], s) == byte) ++j;
      const word c = build_subtree(keys + i, values + sizeof(T) * i, j - i, s + 1, slack);
      if (c == 0) {
        for (unsigned x = 0; x < l.n; ++x) free_unpublished(l.words[x]);
        return 0;
      }
      l.push(byte, c);
      i = j;
    }
    node* nd = detail::judy_build(detail::judy_choose_kind(kind::lin4, l), l);
    if (nd == nullptr) {
      for (unsigned x = 0; x < l.n; ++x) free_unpublished(l.words[x]);
      return 0;
    }
    return node_word(nd);
  }

  // The word that replaces leaf l (locked; nullptr = empty slot) in its slot
  // at depth s after the update: a new leaf or subtree, or 0 (emptied).
  // With dry == true (l unlocked, an estimate) out is a placeholder.
  // Returns false on allocation failure.
  static bool plan_bottom(const leaf* l, std::uint64_t key, const T* v, unsigned s, bool dry, word& out) {
    if (dry) {
      unsigned n = l == nullptr ? 0 : l->count();
      n = v == nullptr ? (n == 0 ? 0 : n - 1) : n + 1;
      out = n == 0 ? 0 : (n <= BucketCap || s >= 7) ? fake_leaf(n) : kSomeNode;
      return true;
    }
    std::uint64_t keys[257];
    alignas(T) char values[sizeof(T) * 257];
    unsigned n = l == nullptr ? 0 : l->gather(keys, values);
    unsigned i = 0;
    while (i < n && keys[i] < key) ++i;
    const bool found = i < n && keys[i] == key;
    if (v == nullptr) {
      if (found) {
        std::memmove(keys + i, keys + i + 1, 8 * std::size_t{n - i - 1});
        std::memmove(values + sizeof(T) * i, values + sizeof(T) * (i + 1), sizeof(T) * std::size_t{n - i - 1});
        --n;
      }
    } else if (found) {
      std::memcpy(values + sizeof(T) * i, static_cast<const void*>(v), sizeof(T));
    } else {
      std::memmove(keys + i + 1, keys + i, 8 * std::size_t{n - i});
      std::memmove(values + sizeof(T) * (i + 1), values + sizeof(T) * i, sizeof(T) * std::size_t{n - i});
      keys[i] = key;
      std::memcpy(values + sizeof(T) * i, static_cast<const void*>(v), sizeof(T));
      ++n;
    }
    if (n == 0) {
      out = 0;
      return true;
    }
    out = build_subtree(keys, values, n, s, v == nullptr ? 2 : 1);
    return out != 0;
  }

  // Sibling leaves a merge copied (locked by this update; marked dead and
  // retired at its commit, unlocked at its end either way).
  struct held_leaves {
    static constexpr unsigned cap = 2 * 128 + 8;
    leaf* l[cap];
    unsigned n = 0;
    void unlock_from(unsigned from) noexcept {
      while (n > from) l[--n]->unlock();
    }
  };

  // The effect of "set slot b of n (at depth d) to w" (w == 0: remove).
  // in_place: n absorbs it; otherwise `repl` replaces n in its parent (0 =
  // n vanishes; a leaf = n merged into one leaf because its children are
  // all leaves holding <= merge_max keys; a node = n rebuilt in the class
  // the hysteresis rules pick). With dry == true nothing is allocated or
  // locked and `repl` is a placeholder. Caller holds n's lock unless dry; a
  // merge then locks n's other child leaves into `held`.
  struct effect {
    bool in_place = false;
    word repl = 0;
    bool alloc_failed = false;
  };
  static effect apply(const node* n, unsigned b, word w, bool dry, held_leaves* held) {
    effect e;
    const int idx = n->index_of(b);
    const bool present = idx >= 0 && n->children()[idx].load(std::memory_order_acquire) != 0;  // as child()
    const unsigned cnt = n->count();
    const unsigned after = cnt + (present ? 0u : 1u) - (w == 0 ? 1u : 0u);
    if (!present && w == 0) {
      e.in_place = true;  // nothing to do (callers never ask)
      return e;
    }
    if (after == 0) return e;  // repl = 0: n vanishes
    // Merge check: every child a leaf and at most merge_max keys in all.
    // Merges are considered when an update rebuilds a leaf (grows, shrinks
    // or removes it), not on in-place erases: see the essay.
    if (after <= merge_max && (w == 0 || detail::judy_is_leaf(w))) {
      const unsigned mark = dry ? 0 : held->n;
      std::uint32_t total = w == 0 ? 0 : leaf_count(w);
      bool all_leaves = true;
      n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
        if (cb == b) return false;
        if (!detail::judy_is_leaf(cw)) {
          all_leaves = false;
          return true;
        }
        if (!dry) {
          as_leaf_mut(cw)->lock();  // n is locked: cw stays its child, and live
          held->l[held->n++] = as_leaf_mut(cw);
        }
        total += as_leaf(cw)->count();
        return total > merge_max;
      });
      if (all_leaves && total <= merge_max) {
        if (dry) {
          e.repl = fake_leaf(total);
          return e;
        }
        std::uint64_t keys[BucketCap / 2 + 256];
        alignas(T) char values[sizeof(T) * (BucketCap / 2 + 256)];
        std::uint32_t m = 0;
        auto take = [&](word cw) { m += as_leaf(cw)->gather(keys + m, values + sizeof(T) * m); };
        bool placed = w == 0;
        n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
          if (!placed && cb >= b) {
            take(w);
            placed = true;
          }
          if (cb != b) take(cw);
          return false;
        });
        if (!placed) take(w);
        leaf* ml = make_sorted(keys, values, m, cap_for(m + 2));
        if (ml == nullptr) {
          e.alloc_failed = true;
          return e;
        }
        e.repl = leaf_word(ml);
        return e;
      }
      if (!dry) held->unlock_from(mark);  // no merge: these leaves stay as they are
    }
    const bool pigeon = n->kind_ == kind::pigeon;
    if (present && w != 0) {  // replace a child: the key set is unchanged
      e.in_place = true;
      return e;
    }
    if (pigeon && (w != 0 || after >= detail::judy_kinds[static_cast<unsigned>(kind::pigeon)].min_count)) {
      e.in_place = true;  // pigeon slots change in place
      return e;
    }
    // Rebuild n with the change (copy-on-write).
    if (dry) {
      e.repl = kSomeNode;
      return e;
    }
    detail::judy_child_list l;
    bool added = false;
    n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
      if (w != 0 && !added && cb > b) {
        l.push(b, w);
        added = true;
      }
      if (cb != b) l.push(cb, cw);
      return false;
    });
    if (w != 0 && !added) l.push(b, w);
    node* r = detail::judy_build(detail::judy_choose_kind(n->kind_, l), l);
    if (r == nullptr) {
      e.alloc_failed = true;
      return e;
    }
    e.repl = node_word(r);
    return e;
  }
};

}  // namespace rcukit::detail
