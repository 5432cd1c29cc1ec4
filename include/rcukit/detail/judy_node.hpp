// SPDX-License-Identifier: MIT
// rcukit/detail/judy_node.hpp -- node encodings of the RCU Judy-style array.
//
// The idea. A 256-way digital tree over 64-bit keys: the node at depth d
// (0 = root) discriminates key byte d, most significant first. Child slots
// hold tagged words: 0 = empty, bit 0 set = a leaf (judy_leaf.hpp: the keys
// of that slot with their values), otherwise an inner node. Keys live in
// leaves hung as high as possible: a slot holds a leaf until it overflows,
// then splits into a node of smaller leaves, and a node whose children are
// all leaves holding at most half a leaf merges back (the split/merge gap
// is the leaf hysteresis). The node encodings follow Mathieu Desnoyers' RCU
// Judy arrays (rcuja), sized to cache lines with a 24-byte header
// (rcu_head, lock, kind, count); docs/DESIGN.md says why:
//
//   kind      bytes  children  layout
//   lin4        64     1..4    sorted key bytes, then child words
//   lin11      128     3..11   "
//   lin25      256     8..25   "
//   pool       928    16..100  4 sorted segments of <= 25, chosen by the key
//                              byte's two high bits (b >> 6)
//   pigeon    2080    24..256  a seqcount, then 256 child words indexed by
//                              the key byte
//
// The overlapping ranges are the hysteresis: a node grows when its class is
// full and shrinks only when it falls well below the smaller class's
// capacity (lin11 -> lin4 below 3, lin25 -> lin11 below 8, pool -> lin25
// below 16, pigeon -> lin25 below 24), so alternating insert/erase at a
// boundary does not reallocate on every call.
//
// Invariants (checked by judy_array::check_invariants()):
//  (1) Key bytes and segment counts of lin*/pool nodes are immutable after the
//      node is published; only child words change in place (atomically), and
//      only to replace an existing child by another non-empty one.
//  (2) Pigeon nodes change in place: a slot is set or cleared with a release
//      store under the node lock, inside a write section of the node's
//      seqcount (odd while the store is in flight), so a reader that samples
//      the seqcount before and after reading slots knows whether any slot
//      changed in between; count_ is atomic.
//  (3) Keys are sorted inside every segment; a pool key sits in segment b>>6.
//  (4) A node's kind matches its child count (table above); no node is empty;
//      no node's children are all leaves with <= cap/2 keys in total (it
//      would have merged); leaves hold 1..cap sorted keys on their path.
//  (5) A node is never modified after dead_ is set (it has been replaced).
//
// Nodes are allocated from judy_alloc (detail/judy_block_cache.hpp) and
// retired in batches (detail/rcu_batch.hpp).
//
// Not supported here: path compression of inner-node chains (a long shared
// prefix over more than a leaf of keys below the root costs one lin4 node
// per shared byte), key-suffix compression in sorted leaves (keys are
// stored whole: 8 bytes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>

#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

enum class judy_kind : std::uint8_t { lin4 = 0, lin11 = 1, lin25 = 2, pool = 3, pigeon = 4 };

struct judy_kind_info {
  unsigned nseg;          // segments (1 for linear, 4 for pool, 0 for pigeon)
  unsigned segcap;        // capacity of one segment
  unsigned min_count;     // hysteresis floor (see the essay)
  unsigned max_count;     // capacity
  std::size_t bytes;      // allocation size
  std::size_t child_off;  // offset of the child words
};

inline constexpr std::size_t judy_header_bytes = 24;
inline constexpr std::size_t judy_keys_off = judy_header_bytes + 4;  // after 4 segment counts
constexpr std::size_t judy_align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
constexpr judy_kind_info judy_make_info(unsigned nseg, unsigned segcap, unsigned minc) {
  const std::size_t child_off = judy_align8(judy_keys_off + std::size_t{nseg} * segcap);
  return {nseg, segcap, minc, nseg * segcap, child_off + std::size_t{8} * nseg * segcap, child_off};
}
inline constexpr judy_kind_info judy_kinds[5] = {
    judy_make_info(1, 4, 1),
    judy_make_info(1, 11, 3),
    judy_make_info(1, 25, 8),
    judy_make_info(4, 25, 16),
    // pigeon: the header, the seqcount (8 bytes), the 256 child words.
    {0, 256, 24, 256, judy_header_bytes + 8 + 8 * 256, judy_header_bytes + 8},
};
static_assert(judy_kinds[0].bytes == 64 && judy_kinds[1].bytes == 128 && judy_kinds[2].bytes == 256);
static_assert(judy_kinds[3].bytes == 928 && judy_kinds[4].bytes == 2080);
static_assert(sizeof(seqcount) == 8, "a pigeon node's seqcount fills the 8 bytes before its child words");

// Tagged child word: 0, a node, or a leaf (bit 0). Allocations are
// 16-byte aligned (malloc), so bits 1..3 are free for planning placeholders.
using judy_word = std::uintptr_t;
inline constexpr judy_word judy_leaf_tag = 1;
inline bool judy_is_leaf(judy_word w) noexcept { return (w & judy_leaf_tag) != 0; }

inline unsigned judy_byte(std::uint64_t key, unsigned depth) noexcept {
  return static_cast<unsigned>(key >> (56 - 8 * depth)) & 0xffu;
}

// Inner node header; the key bytes and child words follow in the same
// allocation (offsets in judy_kinds).
struct judy_node : rcu::retirable {
  spin_lock lock_;                 // writers only; readers never touch it
  std::atomic<bool> dead_{false};  // set under lock_ when replaced (invariant 5)
  judy_kind kind_;                 // immutable
  std::uint8_t pad_ = 0;
  std::atomic<std::uint16_t> count_{0};  // children; changes in place only for pigeon

  explicit judy_node(judy_kind k) noexcept : kind_(k) {}

  const judy_kind_info& info() const noexcept { return judy_kinds[static_cast<unsigned>(kind_)]; }
  std::size_t bytes() const noexcept { return info().bytes; }
  char* raw() noexcept { return reinterpret_cast<char*>(this); }
  const char* raw() const noexcept { return reinterpret_cast<const char*>(this); }

  // Segment counts and key bytes (lin*/pool): immutable after publication.
  std::uint8_t* seg_counts() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_header_bytes); }
  const std::uint8_t* seg_counts() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_header_bytes);
  }
  std::uint8_t* keys() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_keys_off); }
  const std::uint8_t* keys() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_keys_off);
  }
  std::atomic<judy_word>* children() noexcept {
    return std::launder(reinterpret_cast<std::atomic<judy_word>*>(raw() + info().child_off));
  }
  const std::atomic<judy_word>* children() const noexcept {
    return std::launder(reinterpret_cast<const std::atomic<judy_word>*>(raw() + info().child_off));
  }
  // Pigeon nodes only: the seqcount of in-place slot changes (invariant 2).
  seqcount& pigeon_seq() noexcept {
    return *std::launder(reinterpret_cast<seqcount*>(raw() + judy_header_bytes));
  }
  const seqcount& pigeon_seq() const noexcept {
    return *std::launder(reinterpret_cast<const seqcount*>(raw() + judy_header_bytes));
  }
  unsigned count() const noexcept {
    // relaxed: pigeon counts change only under lock_ and are read by writers
    // holding it (or by quiescent invariant checks); others are immutable.
    return count_.load(std::memory_order_relaxed);
  }

  // Index of key byte b in the child words, or -1. Readers and writers.
  int index_of(unsigned b) const noexcept {
    if (kind_ == judy_kind::pigeon) return static_cast<int>(b);
    const judy_kind_info& in = info();
    const unsigned seg = in.nseg == 4 ? (b >> 6) : 0;
    const unsigned base = seg * in.segcap;
    const unsigned n = seg_counts()[seg];
    const std::uint8_t* k = keys() + base;
    // Eight key bytes at a time (immutable: invariant (1)): the lowest zero
    // byte of k ^ b is the first match (the has-zero test is exact for it).
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const std::uint64_t pat = ones * b;
    unsigned i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t x;
      std::memcpy(&x, k + i, 8);
      x ^= pat;
      const std::uint64_t z = (x - ones) & ~x & highs;
      if (z != 0) return static_cast<int>(base + i + static_cast<unsigned>(__builtin_ctzll(z)) / 8);
    }
    for (; i < n; ++i) {
      if (k[i] == b) return static_cast<int>(base + i);
    }
    return -1;
  }

  // Child word for key byte b (0 if none). acquire: pairs with the release
  // store that published the child (judy_array::commit() or a pigeon slot
  // store), so the child's contents are visible.
  judy_word child(unsigned b) const noexcept {
    const int i = index_of(b);
    return i < 0 ? 0 : children()[i].load(std::memory_order_acquire);
  }

  // Visits (byte, word) of non-empty children in ascending (Asc) or
  // descending byte order until f returns true; returns whether it did.
  template <bool Asc, class F>
  bool visit(unsigned from, unsigned to, F&& f) const {
    return visit_at<Asc>(from, to,
                         [&](unsigned b, const std::atomic<judy_word>*, judy_word w) { return f(b, w); });
  }
  // Same, with the child word's address: f(byte, at, word), word == *at as
  // loaded (acquire, as child()). For readers that re-check what they read.
  template <bool Asc, class F>
  bool visit_at(unsigned from, unsigned to, F&& f) const {
    // Visits bytes in [from, to] (inclusive), in the chosen order.
    if (from > to) return false;
    if (kind_ == judy_kind::pigeon) {
      const std::atomic<judy_word>* c = children();
      if constexpr (Asc) {
        for (unsigned b = from; b <= to; ++b) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + b, w)) return true;
        }
      } else {
        for (unsigned b = to + 1; b-- > from;) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + b, w)) return true;
        }
      }
      return false;
    }
    const judy_kind_info& in = info();
    const std::uint8_t* k = keys();
    const std::atomic<judy_word>* c = children();
    if constexpr (Asc) {
      for (unsigned s = 0; s < in.nseg; ++s) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = 0; i < n; ++i) {
          const unsigned b = k[base + i];
          if (b < from) continue;
          if (b > to) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + base + i, w)) return true;
        }
      }
    } else {
      for (unsigned s = in.nseg; s-- > 0;) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = n; i-- > 0;) {
          const unsigned b = k[base + i];
          if (b > to) continue;
          if (b < from) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + base + i, w)) return true;
        }
      }
    }
    return false;
  }

  // --- writer side -------------------------------------------------------
  // Blocking (spin_lock.hpp): acquire on lock, release on unlock, so this
  // writer's reads of the node come after the previous holder's writes.
  void lock() noexcept { lock_.lock(); }
  void unlock() noexcept { lock_.unlock(); }
  bool is_dead() const noexcept {
    // relaxed: written and read only under lock_, which orders it.
    return dead_.load(std::memory_order_relaxed);
  }
};
static_assert(sizeof(judy_node) == judy_header_bytes, "judy_node header must stay 24 bytes");

// Allocates an empty node of kind k (count 0, all child words 0), or nullptr.
inline judy_node* judy_new_node(judy_kind k) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  void* mem = judy_alloc::allocate(in.bytes);
  if (mem == nullptr) return nullptr;
  auto* n = new (mem) judy_node(k);
  char* raw = static_cast<char*>(mem);
  for (std::size_t i = judy_header_bytes; i < in.child_off; ++i) raw[i] = 0;
  if (k == judy_kind::pigeon) new (raw + judy_header_bytes) seqcount();
  for (unsigned i = 0; i < in.max_count; ++i) new (raw + in.child_off + 8 * i) std::atomic<judy_word>(0);
  return n;
}

// Frees an unpublished node (on the thread that may reuse the memory).
inline void judy_free_node(judy_node* n) noexcept {
  const std::size_t bytes = n->bytes();
  n->~judy_node();
  judy_alloc::deallocate(n, bytes);
}
// Frees a node retired alone (RCU callback thread).
inline void judy_free_node_remote(judy_node* n) noexcept {
  const std::size_t bytes = n->bytes();
  n->~judy_node();
  judy_alloc::deallocate_retired_alone(n, bytes);
}

// A sorted list of (byte, word) children, the input from which new nodes are
// built (copy-on-write).
struct judy_child_list {
  unsigned n = 0;
  std::uint8_t bytes[256];
  judy_word words[256];
  void push(unsigned b, judy_word w) noexcept {
    bytes[n] = static_cast<std::uint8_t>(b);
    words[n] = w;
    ++n;
  }
};

// Whether the sorted list fits kind k (pool: every segment <= segcap).
inline bool judy_fits(judy_kind k, const judy_child_list& l) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  if (l.n > in.max_count) return false;
  if (k == judy_kind::pool) {
    unsigned seg[4] = {0, 0, 0, 0};
    for (unsigned i = 0; i < l.n; ++i) ++seg[l.bytes[i] >> 6];
    for (unsigned s = 0; s < 4; ++s) {
      if (seg[s] > in.segcap) return false;
    }
  }
  return true;
}

// Builds an unpublished node of kind k holding the sorted list l (which must
// fit). Relaxed stores: the node is published later by a release store.
inline judy_node* judy_build(judy_kind k, const judy_child_list& l) noexcept {
  judy_node* n = judy_new_node(k);
  if (n == nullptr) return nullptr;
  n->count_.store(static_cast<std::uint16_t>(l.n), std::memory_order_relaxed);
  std::atomic<judy_word>* c = n->children();
  if (k == judy_kind::pigeon) {
    for (unsigned i = 0; i < l.n; ++i) c[l.bytes[i]].store(l.words[i], std::memory_order_relaxed);
    return n;
  }
  const judy_kind_info& in = n->info();
  std::uint8_t* sc = n->seg_counts();
  std::uint8_t* keys = n->keys();
  for (unsigned i = 0; i < l.n; ++i) {
    const unsigned seg = in.nseg == 4 ? (l.bytes[i] >> 6) : 0;
    const unsigned at = seg * in.segcap + sc[seg]++;
    keys[at] = l.bytes[i];
    c[at].store(l.words[i], std::memory_order_relaxed);
  }
  return n;
}

// The kind a node of kind `cur` takes for the list l after a change
// (grow when full, shrink only below the hysteresis floor).
inline judy_kind judy_choose_kind(judy_kind cur, const judy_child_list& l) noexcept {
  unsigned k = static_cast<unsigned>(cur);
  // Shrink below the floor: to the smallest class whose floor admits n.
  while (k > 0 && l.n < judy_kinds[k].min_count) {
    k = (k == static_cast<unsigned>(judy_kind::pigeon)) ? static_cast<unsigned>(judy_kind::lin25) : k - 1;
  }
  // Grow until it fits.
  while (!judy_fits(static_cast<judy_kind>(k), l)) ++k;
  return static_cast<judy_kind>(k);
}

}  // namespace rcukit::detail
