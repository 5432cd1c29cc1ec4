// SPDX-License-Identifier: MIT
// rcukit/detail/judy_core.hpp -- judy_array's state and vocabulary: the
// root word and its lock, the striped statistics, the tagged words a slot
// holds (nothing, a node, a leaf, or at the root a record that skips a
// shared key prefix), leaf capacity classes and the placeholders dry
// planning uses. The layers above it, one concern each, derive from it in
// this order: judy_reclaim (freeing and retiring), judy_read (find, bound
// queries, walks), judy_rebuild (building and merging unpublished
// subtrees), judy_write (the writer's plan, locks and commit), judy_check
// (the checker); rcukit::judy_array derives privately from the last.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/detail/judy_leaf.hpp"
#include "rcukit/detail/judy_node.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/detail/striped_counter.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

template <class T, class Rcu, unsigned BucketCap>
struct judy_core {
  static_assert(std::is_trivially_copyable_v<T>,
                "rcukit::judy_array<T>: T must be trivially copyable (values are copied out of "
                "RCU-protected leaves while writers may change them)");
  static_assert(std::is_default_constructible_v<T>, "rcukit::judy_array<T>: T must be default constructible");
  static_assert(rcu::flavor<Rcu>, "rcukit::judy_array: Rcu must be an rcukit::rcu flavour");
  static_assert(BucketCap >= 2 && BucketCap <= 255, "rcukit::judy_array: BucketCap must be in [2, 255]");

  using node = judy_node;
  using leaf = judy_leaf<T>;
  using word = judy_word;
  using kind = judy_kind;

  // qsbr: the calling thread must be registered and online (rcu.hpp (8)).
  static void online(const detail::call_site& where) noexcept { rcu::detail::require_online<Rcu>(where); }

  using entry = std::pair<std::uint64_t, T>;
  // Capacity classes of sorted leaves: 2, 4, then every third (7, 10, 13,
  // ...) up to BucketCap, and BucketCap itself. cap_for(n): the least class
  // >= n. A leaf that grows is copied once per three inserts: with steps of
  // two (before 2026-12-07) the copies (malloc, memmove, retire, free) were
  // about a third of a random-key insert; steps of three cost ~0.5 byte per
  // key of slack at 10^6 random keys (docs/RESULTS.md, issue 26).
  static constexpr unsigned cap_for(unsigned n) noexcept {
    const unsigned c = n < 2 ? 2u : n <= 4 ? 4u : 4u + (n - 4 + 2) / 3 * 3;
    return c < BucketCap ? c : BucketCap;
  }
  static constexpr unsigned merge_max = BucketCap / 2;

  static const leaf* as_leaf(word w) noexcept { return reinterpret_cast<const leaf*>(w & ~detail::judy_leaf_tag); }
  static leaf* as_leaf_mut(word w) noexcept { return reinterpret_cast<leaf*>(w & ~detail::judy_leaf_tag); }
  static node* as_node(word w) noexcept { return reinterpret_cast<node*>(w); }
  static word leaf_word(leaf* l) noexcept { return reinterpret_cast<word>(l) | detail::judy_leaf_tag; }
  static word node_word(node* n) noexcept { return reinterpret_cast<word>(n); }

  // Root-level path compression. When every key shares its first `depth`
  // bytes (`prefix`), root_ holds a record (tag bit 1) that points at the
  // node at that depth, so readers and writers skip the single-child nodes
  // above it (dense keys: five levels). A record is immutable and replaced
  // as a whole, under the root lock, whenever the top node is; a top leaf
  // needs no record (leaves hold whole keys or their prefix).
  struct rec : rcu::retirable {
    std::uint64_t prefix;  // bytes [0, depth) shared by every key; the rest 0
    word top;              // a node at depth `depth`
    std::uint32_t depth;   // 1..6
  };
  static constexpr word kRecTag = 2;
  static bool is_rec(word w) noexcept { return (w & kRecTag) != 0; }
  static const rec* as_rec(word w) noexcept { return reinterpret_cast<const rec*>(w & ~kRecTag); }
  static rec* as_rec_mut(word w) noexcept { return reinterpret_cast<rec*>(w & ~kRecTag); }
  static constexpr std::uint64_t prefix_mask(unsigned depth) noexcept {
    return depth == 0 ? 0 : ~(~std::uint64_t{0} >> (8 * depth));
  }
  // A record word for top at depth (> 0), or 0 on allocation failure.
  static word make_rec(word top, unsigned depth, std::uint64_t some_key) noexcept {
    void* mem = detail::judy_alloc::allocate(sizeof(rec));
    if (mem == nullptr) return 0;
    rec* r = new (mem) rec();
    r->prefix = some_key & prefix_mask(depth);
    r->top = top;
    r->depth = depth;
    return reinterpret_cast<word>(r) | kRecTag;
  }

  // Planning placeholders (dry runs, never stored): a rebuilt node, and a
  // rebuilt leaf of c keys.
  static constexpr word kSomeNode = 2;
  static constexpr word fake_leaf(std::uint32_t c) noexcept { return (word{c} << 4) | 8 | detail::judy_leaf_tag; }
  // Keys of a leaf word: a placeholder's, or a leaf's (the lock holder's
  // exact count, or an estimate for dry planning).
  static std::uint32_t leaf_count(word w) noexcept {
    return (w & 8) != 0 ? static_cast<std::uint32_t>(w >> 4) : as_leaf(w)->count();
  }

  static constexpr int kMaxDepth = 8;  // levels of 8 key bits

  // Block bytes of a node or leaf (what the allocator took from malloc).
  static std::size_t word_bytes(word w) noexcept {
    if (is_rec(w)) return detail::judy_block_bytes(sizeof(rec));
    return detail::judy_block_bytes(detail::judy_is_leaf(w) ? as_leaf(w)->bytes() : as_node(w)->bytes());
  }

  // Statistics, striped per thread so writers in disjoint subtrees do not
  // share a cache line; relaxed: summed by size()/node_bytes(), which are
  // exact only when no writer runs.
  void count_keys(std::ptrdiff_t keys, std::ptrdiff_t bytes) noexcept {
    if (keys != 0) counts_.add(keys, count_keys_field);
    if (bytes != 0) counts_.add(bytes, count_bytes_field);
  }

  alignas(64) std::atomic<word> root_{0};  // release-published by update(), acquired by readers
  mutable detail::spin_lock root_lock_;    // writers' lock for the root word (depth -1)
  // Keys inserted - erased, and node/leaf bytes allocated - freed, by the
  // threads of each stripe (one cache line per stripe for both).
  static constexpr unsigned count_keys_field = 0, count_bytes_field = 1;
  alignas(64) detail::striped_counter<2> counts_;
};

}  // namespace rcukit::detail
