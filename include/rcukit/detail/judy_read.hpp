// SPDX-License-Identifier: MIT
// rcukit/detail/judy_read.hpp -- judy_array's readers: find, the bound
// queries (lower_equal, upper_equal) and ordered walks (for_each). Every
// function here runs inside the caller's RCU read side and takes no lock.
//
// Readers (find, lower_equal, upper_equal, for_each) run inside one RCU read
// side and never lock, never write shared memory. Every word they read is
// either immutable since the node was published or an atomic loaded with
// acquire. find and for_each walk down once; inside a leaf they wait out a
// writer's in-place change (a sequence count, a few stores) and read the
// leaf again: lock-free, not wait-free. find reads one child word per level, and the
// word it reads in a node that was replaced meanwhile is the one the node
// held when it was last live, which is inside the call: linearizable.
//
// Bound queries (lower_equal, upper_equal) read several words whose values
// must coexist: the key's own slot, then siblings. Read one by one while
// writers change buckets and pigeon slots in place, they can combine an
// empty slot from before an insert with a full one from after a later
// insert (a state that never existed: the result skips a smaller key that
// was present whenever the returned one was). So a bound query logs what it
// read from words that change in place and re-checks them at the end
// (read_set below), walking again if any changed:
//   - a lin/pool child word is re-read and compared: it changes only from
//     one object to another, and a replaced object is retired, so inside
//     the read side its address never comes back (no ABA);
//   - a pigeon node's slots go 0 -> w -> 0, so it is covered by its
//     seqcount instead (judy_node.hpp (2)), sampled before its first slot
//     read and compared at the end;
//   - the root word is compared like a child word (an empty tree returns at
//     once).
// If nothing changed, every word read held its value at one instant (the
// end of the walk, inside the call): the result is that instant's answer.
// A query retries only when an update changed a node it read (lock-free),
// and waits only for a writer inside a pigeon slot store (two stores).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <utility>

#include "rcukit/detail/judy_reclaim.hpp"
#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/visit.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_read : judy_reclaim<T, Rcu, BucketCap> {
  using base = judy_reclaim<T, Rcu, BucketCap>;
  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;
  using entry = std::pair<std::uint64_t, T>;
  using typename base::rec;
  using base::as_leaf;
  using base::as_node;
  using base::as_rec;
  using base::is_rec;
  using base::prefix_mask;
  using base::root_;

  static std::optional<T> leaf_find(const leaf* l, std::uint64_t key) {
    for (;;) {
      const std::uint32_t s = l->seq.read_begin();
      T out;
      bool hit;
      if (l->bitmap()) {
        const unsigned b = static_cast<unsigned>(key & 0xff);
        hit = (key & ~std::uint64_t{0xff}) == l->prefix() && l->test(b);
        if (hit) l->value(b, out);
      } else {
        const unsigned c = l->count();
        const unsigned i = l->lower(key, c);
        hit = i < c && l->key_at(i) == key;
        if (hit) l->value(i, out);
      }
      if (!l->seq.retry(s)) return hit ? std::optional<T>(out) : std::nullopt;
    }
  }

  // What a bound query read from nodes and leaves that change in place,
  // re-checked at its end: lin/pool child words with the word seen (such a
  // word, once replaced, never comes back while the query is in its read
  // side: the replaced object is retired, so its address is not reused,
  // and a replaced object is never published again), pigeon nodes with
  // their seqcount (their slots go 0 -> w -> 0, so the words alone could
  // not tell), and leaves with theirs (judy_leaf.hpp (L1)).
  struct read_set {
    static constexpr unsigned cap = 24;  // a consistent walk logs at most 15 words, 13 pigeons, 2 leaves
    struct word_read {
      const std::atomic<word>* at;
      word seen;
    };
    struct pigeon_read {
      const detail::seqcount* seq;
      std::uint64_t seen;
    };
    struct leaf_read {
      const detail::judy_seq* seq;
      std::uint32_t seen;
    };
    word_read words[cap];
    pigeon_read pigeons[cap];
    leaf_read leaves[cap];
    unsigned nwords = 0, npigeons = 0, nleaves = 0;
    bool overflow = false;  // more reads than logged: the walk cannot be trusted

    void note_word(const std::atomic<word>* at, word w) noexcept {
      if (nwords == cap) {
        overflow = true;
        return;
      }
      words[nwords++] = {at, w};
    }
    // Before reading any child word of n: a pigeon's seqcount is sampled
    // (spinning while a writer is inside a slot store).
    void enter(const node* n) noexcept {
      if (n->kind_ != kind::pigeon) return;
      if (npigeons == cap) {
        overflow = true;
        return;
      }
      const detail::seqcount& sc = n->pigeon_seq();
      pigeons[npigeons++] = {&sc, sc.read_begin()};
    }
    // Before reading any entry of leaf l: its sequence count is sampled.
    void enter_leaf(const leaf* l) noexcept {
      if (nleaves == cap) {
        overflow = true;
        return;
      }
      leaves[nleaves++] = {&l->seq, l->seq.read_begin()};
    }
    // The child word for byte b of n (0 if none), logged.
    word child(const node* n, unsigned b) noexcept {
      const int i = n->index_of(b);
      if (i < 0) return 0;  // lin/pool key bytes are immutable (judy_node.hpp (1))
      const std::atomic<word>* at = n->children() + i;
      const word w = at->load(std::memory_order_acquire);  // as judy_node::child()
      if (n->kind_ != kind::pigeon) note_word(at, w);
      return w;
    }
    // True if nothing logged changed since it was read: then every word the
    // walk read held its value at one instant, the end of the walk.
    bool still_current() const noexcept {
      if (overflow) return false;
      for (unsigned i = 0; i < nwords; ++i) {
        // acquire: as child(); like the walk's own acquire loads it keeps
        // this check after every read it checks.
        if (words[i].at->load(std::memory_order_acquire) != words[i].seen) return false;
      }
      for (unsigned i = 0; i < npigeons; ++i) {
        if (pigeons[i].seq->retry(pigeons[i].seen)) return false;  // seqcount.hpp: after the acquire reads
      }
      for (unsigned i = 0; i < nleaves; ++i) {
        if (leaves[i].seq->retry(leaves[i].seen)) return false;  // judy_leaf.hpp (L1): after the acquire reads
      }
      return true;
    }
  };

  static entry leaf_entry(const leaf* l, unsigned pos) {
    T v;
    l->value(pos, v);
    return entry(l->bitmap() ? (l->prefix() | pos) : l->key_at(pos), v);
  }
  // Least or greatest entry of leaf l (nullopt only in a torn read).
  static std::optional<entry> leaf_extreme(const leaf* l, bool want_min) {
    if (l->bitmap()) {
      const int b = want_min ? l->next_set(0) : l->prev_set(255);
      if (b < 0 || b > 255) return std::nullopt;
      return leaf_entry(l, static_cast<unsigned>(b));
    }
    const unsigned c = l->count();
    if (c == 0) return std::nullopt;
    return leaf_entry(l, want_min ? 0 : c - 1);
  }
  // Up: least entry >= key in leaf l; !Up: greatest entry <= key.
  template <bool Up>
  static std::optional<entry> leaf_bound(const leaf* l, std::uint64_t key) {
    if (l->bitmap()) {
      const std::uint64_t p = l->prefix(), kp = key & ~std::uint64_t{0xff};
      if (kp != p) {
        if (Up == (kp < p)) return leaf_extreme(l, Up);
        return std::nullopt;
      }
      const int b = Up ? l->next_set(static_cast<int>(key & 0xff)) : l->prev_set(static_cast<int>(key & 0xff));
      if (b < 0 || b > 255) return std::nullopt;
      return leaf_entry(l, static_cast<unsigned>(b));
    }
    const unsigned c = l->count();
    unsigned i = l->lower(key, c);
    if constexpr (Up) {
      if (i == c) return std::nullopt;
    } else {
      if (i == c || l->key_at(i) != key) {
        if (i == 0) return std::nullopt;
        --i;
      }
    }
    return leaf_entry(l, i);
  }

  // Least (want_min) or greatest key in subtree w, logging reads in rs;
  // nullopt if the subtree looks empty (only in a walk that will not
  // validate: no published node or leaf is empty).
  static std::optional<entry> extreme(word w, bool want_min, read_set& rs) {
    if (w == 0) return std::nullopt;
    if (detail::judy_is_leaf(w)) {
      rs.enter_leaf(as_leaf(w));
      return leaf_extreme(as_leaf(w), want_min);
    }
    const node* n = as_node(w);
    rs.enter(n);
    const bool pigeon = n->kind_ == kind::pigeon;
    std::optional<entry> out;
    auto f = [&](unsigned, const std::atomic<word>* at, word c) {
      if (!pigeon) rs.note_word(at, c);
      return (out = extreme(c, want_min, rs)).has_value() || rs.overflow;
    };
    if (want_min) {
      n->template visit_at<true>(0, 255, f);
    } else {
      n->template visit_at<false>(0, 255, f);
    }
    return out;
  }

  // Up: least key >= key in subtree w at depth d (whose prefix equals key's
  // first d bytes); !Up: greatest key <= key. Every changeable word read is
  // logged in rs; the caller trusts the result only if rs.still_current().
  template <bool Up>
  static std::optional<entry> bound(word w, unsigned d, std::uint64_t key, read_set& rs) {
    if (w == 0) return std::nullopt;
    if (detail::judy_is_leaf(w)) {
      rs.enter_leaf(as_leaf(w));
      return leaf_bound<Up>(as_leaf(w), key);
    }
    const node* n = as_node(w);
    rs.enter(n);
    const unsigned byte = detail::judy_byte(key, d);
    if (auto r = bound<Up>(rs.child(n, byte), d + 1, key, rs)) return r;
    const bool pigeon = n->kind_ == kind::pigeon;
    std::optional<entry> out;
    auto f = [&](unsigned, const std::atomic<word>* at, word c) {
      if (!pigeon) rs.note_word(at, c);
      return (out = extreme(c, Up, rs)).has_value() || rs.overflow;
    };
    if constexpr (Up) {
      if (byte < 255) n->template visit_at<true>(byte + 1, 255, f);
    } else {
      if (byte > 0) n->template visit_at<false>(0, byte - 1, f);
    }
    return out;
  }

  // A bound query inside the caller's read side: walks, then re-checks what
  // it read; walks again if a concurrent update changed any of it.
  template <bool Up>
  std::optional<entry> bound_query(std::uint64_t key) const {
    for (;;) {
      const word root = root_.load(std::memory_order_acquire);  // as find_rcu
      if (root == 0) return std::nullopt;                       // empty at this load
      read_set rs;
      rs.note_word(&root_, root);
      std::optional<entry> r;
      if (!is_rec(root)) {
        r = bound<Up>(root, 0, key, rs);
      } else {
        // Immutable record: the whole tree lies in [prefix, prefix | low ones].
        const rec* rc = as_rec(root);
        const std::uint64_t kp = key & prefix_mask(rc->depth);
        if (kp == rc->prefix) {
          r = bound<Up>(rc->top, rc->depth, key, rs);
        } else if ((kp < rc->prefix) == Up) {
          r = extreme(rc->top, Up, rs);  // every key is on the query's side
        }
      }
      if (rs.still_current()) return r;
    }
  }

  // Calls f on every entry of leaf l in [lo, hi], ascending: copies up to
  // kChunk entries at a time under the leaf's sequence count, and calls f on
  // a copy that validated (judy_leaf.hpp (L1)); the next chunk starts after
  // the last key passed to f, so a change between chunks neither repeats
  // nor skips a key present throughout. Returns true if f asked to stop.
  template <class F>
  static bool walk_leaf(const leaf* l, std::uint64_t lo, std::uint64_t hi, F& f) {
    constexpr unsigned kChunk = 32;
    std::uint64_t from = lo;
    for (;;) {
      std::uint64_t ks[kChunk];
      T vs[kChunk];
      unsigned m = 0;
      bool more = false;
      const std::uint32_t s = l->seq.read_begin();
      if (l->bitmap()) {
        const std::uint64_t p = l->prefix();
        int b = (from & ~std::uint64_t{0xff}) < p ? 0 : (from & ~std::uint64_t{0xff}) == p ? static_cast<int>(from & 0xff) : 256;
        for (b = l->next_set(b); b < 256; b = l->next_set(b + 1)) {
          const std::uint64_t k = p | static_cast<unsigned>(b);
          if (k > hi) break;
          if (m == kChunk) {
            more = true;
            break;
          }
          ks[m] = k;
          l->value(static_cast<unsigned>(b), vs[m]);
          ++m;
        }
      } else {
        const unsigned c = l->count();
        for (unsigned i = l->lower(from, c); i < c; ++i) {
          const std::uint64_t k = l->key_at(i);
          if (k > hi) break;
          if (m == kChunk) {
            more = true;
            break;
          }
          ks[m] = k;
          l->value(i, vs[m]);
          ++m;
        }
      }
      if (l->seq.retry(s)) continue;
      for (unsigned j = 0; j < m; ++j) {
        if (!detail::visit_continues(f, ks[j], vs[j])) return true;
      }
      if (!more) return false;
      from = ks[m - 1] + 1;  // more: a key above ks[m-1] exists, so no wrap
    }
  }

  // Returns true if f asked to stop.
  template <class F>
  static bool walk(word w, unsigned d, std::uint64_t lo, std::uint64_t hi, bool lo_tight, bool hi_tight,
                   F& f) {
    if (w == 0) return false;
    if (detail::judy_is_leaf(w)) return walk_leaf(as_leaf(w), lo, hi, f);
    const unsigned from = lo_tight ? detail::judy_byte(lo, d) : 0;
    const unsigned to = hi_tight ? detail::judy_byte(hi, d) : 255;
    return as_node(w)->template visit<true>(from, to, [&](unsigned b, word c) {
      return walk(c, d + 1, lo, hi, lo_tight && b == from, hi_tight && b == to, f);
    });
  }

  // find_rcu: the value of key, inside the caller's read side.
  std::optional<T> find_in(std::uint64_t key) const {
    word w = root_.load(std::memory_order_acquire);  // pairs with the release stores that publish
    unsigned d = 0;
    if (is_rec(w)) {  // skipped top bytes: the leaf compares whole keys, so no prefix check here
      d = as_rec(w)->depth;
      w = as_rec(w)->top;
    }
    for (; w != 0; ++d) {
      if (detail::judy_is_leaf(w)) return leaf_find(as_leaf(w), key);
      w = as_node(w)->child(detail::judy_byte(key, d));
    }
    return std::nullopt;
  }

  // for_each's walk over [lo, hi] (lo <= hi), inside the caller's read side.
  template <class F>
  void walk_range(std::uint64_t lo, std::uint64_t hi, F& f) const {
    const word root = root_.load(std::memory_order_acquire);  // as find_in
    if (!is_rec(root)) {
      (void)walk(root, 0, lo, hi, true, true, f);
      return;
    }
    const rec* r = as_rec(root);
    const std::uint64_t first = r->prefix, last = r->prefix | ~prefix_mask(r->depth);
    if (hi < first || lo > last) return;
    (void)walk(r->top, r->depth, lo, hi, lo >= first, hi <= last, f);
  }
};

}  // namespace rcukit::detail
