// SPDX-License-Identifier: MIT
// rcukit/detail/judy_check.hpp -- judy_array's checker (check_invariants)
// and population count (stats), for quiescent arrays: every structural
// invariant of judy_node.hpp (3)-(4) and judy_leaf.hpp (L2), leaves sorted,
// within their capacity class, on their path and of the encoding their
// depth allows, no dead node reachable, and the key and byte statistics
// equal to what the tree holds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "rcukit/detail/judy_write.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_check : judy_write<T, Rcu, BucketCap> {
  using base = judy_write<T, Rcu, BucketCap>;
  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;
  using entry = std::pair<std::uint64_t, T>;
  using typename base::rec;
  using base::as_leaf;
  using base::as_node;
  using base::as_rec;
  using base::cap_for;
  using base::count_bytes_field;
  using base::count_keys_field;
  using base::counts_;
  using base::is_rec;
  using base::merge_max;
  using base::prefix_mask;
  using base::root_;
  using base::word_bytes;

  template <class Shape>
  static void count_shape(word w, Shape& s) {
    if (w == 0) return;
    if (detail::judy_is_leaf(w)) {
      ++s.buckets;
      if (as_leaf(w)->bitmap()) ++s.bitmaps;
      return;
    }
    node* n = as_node(w);
    ++s.nodes[static_cast<unsigned>(n->kind_)];
    n->template visit<true>(0, 255, [&](unsigned, word c) {
      count_shape(c, s);
      return false;
    });
  }

  static void check_leaf(const leaf* l, unsigned d, std::uint64_t prefix, std::uint64_t mask, std::size_t& keys,
                         std::string& err) {
    const unsigned c = l->n.load(std::memory_order_relaxed);
    keys += c;
    if (l->bitmap()) {
      if (d != 7) err = "bitmap leaf at slot depth " + std::to_string(d);
      if (l->prefix() != prefix) err = "bitmap leaf prefix off its path";
      unsigned pop = 0;
      for (unsigned w = 0; w < 4; ++w) pop += static_cast<unsigned>(__builtin_popcountll(l->bits(w)));
      if (pop != c) err = "bitmap leaf count " + std::to_string(c) + " != bits " + std::to_string(pop);
      if (c <= merge_max) err = "bitmap leaf of " + std::to_string(c) + " keys should be sorted";
      return;
    }
    if (c == 0 || c > l->cap) err = "leaf of " + std::to_string(c) + " keys, capacity " + std::to_string(l->cap);
    if (l->cap > BucketCap || (l->cap != cap_for(l->cap))) err = "leaf capacity " + std::to_string(l->cap);
    for (unsigned i = 0; i < c && err.empty(); ++i) {
      if ((l->key_at(i) & mask) != prefix) err = "leaf key " + std::to_string(l->key_at(i)) + " off its path";
      if (i > 0 && l->key_at(i - 1) >= l->key_at(i)) err = "leaf keys not sorted";
    }
  }

  static void check(word w, unsigned d, std::uint64_t prefix, std::size_t& keys, std::size_t& bytes,
                    std::string& err) {
    if (w == 0 || !err.empty()) return;
    const std::uint64_t mask = d == 0 ? 0 : (d >= 8 ? ~std::uint64_t{0} : ~(~std::uint64_t{0} >> (8 * d)));
    if (detail::judy_is_leaf(w)) {
      bytes += word_bytes(w);
      check_leaf(as_leaf(w), d, prefix, mask, keys, err);
      return;
    }
    if (d >= 7) {
      err = "inner node at depth " + std::to_string(d);
      return;
    }
    const node* n = as_node(w);
    bytes += word_bytes(w);
    if (n->is_dead()) err = "dead node reachable";
    const detail::judy_kind_info& in = n->info();
    unsigned live = 0;
    if (n->kind_ == kind::pigeon) {
      for (unsigned b = 0; b < 256; ++b) {
        if (n->children()[b].load(std::memory_order_relaxed) != 0) ++live;
      }
    } else {
      unsigned total = 0;
      for (unsigned s = 0; s < in.nseg; ++s) {
        const unsigned c = n->seg_counts()[s];
        total += c;
        if (c > in.segcap) err = "segment overflow";
        for (unsigned i = 0; i < c && i < in.segcap; ++i) {
          const unsigned at = s * in.segcap + i;
          const unsigned b = n->keys()[at];
          if (i > 0 && n->keys()[at - 1] >= b) err = "keys not sorted in node";
          if (in.nseg == 4 && (b >> 6) != s) err = "pool key in the wrong segment";
          if (n->children()[at].load(std::memory_order_relaxed) != 0) ++live;
        }
      }
      if (total != live) err = "empty child word in a linear/pool node";
    }
    if (!err.empty()) return;
    if (live != n->count())
      err = "count_ " + std::to_string(n->count()) + " != children " + std::to_string(live);
    if (live == 0) err = "empty node";
    if (live < in.min_count || live > in.max_count) {
      err = "node kind " + std::to_string(static_cast<unsigned>(n->kind_)) + " holds " + std::to_string(live) +
            " children (class range " + std::to_string(in.min_count) + ".." + std::to_string(in.max_count) + ")";
    }
    if (!err.empty()) return;
    n->template visit<true>(0, 255, [&](unsigned b, word c) {
      check(c, d + 1, prefix | (std::uint64_t{b} << (56 - 8 * d)), keys, bytes, err);
      return !err.empty();
    });
  }

  // stats(): counts the reachable population into s (quiescent).
  template <class Shape>
  void shape_of(Shape& s) const {
    const word root = root_.load(std::memory_order_acquire);  // as find_in
    count_shape(is_rec(root) ? as_rec(root)->top : root, s);
  }

  // check_invariants(): the first broken invariant, or "" (quiescent).
  std::string check_all() const {
    std::size_t keys = 0, bytes = 0;
    std::string err;
    const word root = root_.load(std::memory_order_acquire);  // as find_in
    if (is_rec(root)) {
      const rec* r = as_rec(root);
      bytes += word_bytes(root);
      if (r->depth == 0 || r->depth > 6 || (r->prefix & ~prefix_mask(r->depth)) != 0) err = "bad root record";
      if (r->top == 0 || detail::judy_is_leaf(r->top)) err = "root record over a leaf or nothing";
      check(r->top, r->depth, r->prefix, keys, bytes, err);
    } else {
      check(root, 0, 0, keys, bytes, err);
    }
    const std::size_t size = static_cast<std::size_t>(counts_.load(count_keys_field));  // quiescent
    const std::size_t node_bytes = static_cast<std::size_t>(counts_.load(count_bytes_field));  // quiescent
    if (err.empty() && keys != size) err = "size() " + std::to_string(size) + " != keys " + std::to_string(keys);
    if (err.empty() && bytes != node_bytes) {
      err = "node_bytes() " + std::to_string(node_bytes) + " != counted " + std::to_string(bytes);
    }
    return err;
  }
};

}  // namespace rcukit::detail
