// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_tower.hpp -- the index towers of extent_skiplist and
// their index blocks.
//
// The idea: a descent spends its time in the upper levels, and a tower
// embedded in a fat leaf (~1 KB) would put every upper link on its own page.
// So a leaf's levels 1 .. height-1 live apart, in a small tower: its key (a
// mirror of the leaf's), its leaf, and per level a fat link (successor
// tower and a copy of its key) and that level's hole bound
// (skiplist_holes.hpp). Towers of one skiplist are packed in its node pool
// (skiplist_pool.hpp), so the towers of a large list sit on few pages and
// stay in cache.
//
// Layout, low to high addresses:
//   [gap h-1 .. gap 1][state: lock, removed, linked][key, leaf][link 1 .. link h-1]
// with a 16-byte block slot after link BlockLevel when h > BlockLevel. The
// tower pointer points at the key; level l's bound is l words below the
// state word, so neither a bound nor a link needs the height (the height is
// the leaf's). Heights 2, 3, 4 take 48, 80, 96 bytes.
//
// Writers of the links: a tower's links change only under its own lock
// (the pred of a link or unlink holds it; an unlink also holds the target's
// lock), so the two words of a fat link are never written by two writers
// at once and a cached key is never left stale by a lost update.
//
// Index blocks. With BlockLevel B, a tower of height > B also carries an
// index block: the keys and leaves of the level-1 towers up to its next
// tower at level B, so a descent steps from level B straight to the leaf.
// A block has its own lock (writers) and seqcount (readers).
//
// Invariants:
//  (1) leaf never changes after the tower is published; key mirrors the
//      leaf's key (both only decrease, updated in the same operation).
//  (2) link l points to a tower of height > l with a greater key (or is
//      null); when no writer holds the lock, its cached key equals the
//      target's key or is above it (a target's key may have been lowered
//      since: a hint that only stops a descent early).
//  (3) removed, once set (under the lock), stays set; no link is added after
//      a removed tower. linked counts the levels the splitter has linked,
//      bottom up (a tower is a span head at level l only when linked >= l
//      and not removed).
//  (4) a tower of height > B has its block slot set before publication.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/spin_lock.hpp"

namespace rcukit::detail {

// The cached key of a null link: above every leaf key (a leaf key is the start
// of a valid extent, so at most UINT64_MAX - 1).
inline constexpr uint64_t kNoKey = UINT64_MAX;

template <class Leaf, unsigned BlockLevel = 0, unsigned BlockEntries = 0>
struct sl_tower {
  struct link {
    std::atomic<sl_tower*> ptr{nullptr};
    std::atomic<uint64_t> key{kNoKey};  // hint: the key of *ptr
  };
  static constexpr std::size_t kAlign = 16;

  struct block_entry {
    std::atomic<uint64_t> key{kNoKey};
    std::atomic<Leaf*> leaf{nullptr};
  };
  // The level-1 towers after this one up to its level-BlockLevel successor
  // (exclusive), in key order; when `partial`, only a prefix of them.
  // Written under `lock` inside a `seq` write section; read under `seq`.
  struct alignas(64) block {
    seqcount seq;
    spin_lock lock;
    std::atomic<uint32_t> n{0};        // seq-protected; <= BlockEntries
    std::atomic<uint32_t> partial{0};  // seq-protected; 1: e[0, n) is only a prefix
    block_entry e[BlockEntries > 0 ? BlockEntries : 1];
  };
  static constexpr bool kBlocks = BlockLevel > 0 && BlockEntries > 0;
  static constexpr std::size_t kBlockSlot = kBlocks ? kAlign : 0;
  static constexpr bool has_block(unsigned h) noexcept { return kBlocks && h > BlockLevel; }

  // The word below the header.
  struct state {
    spin_lock lock;
    std::atomic<uint8_t> removed{0};  // invariant 3
    std::atomic<uint8_t> linked{0};   // invariant 3
  };

  std::atomic<uint64_t> key{0};  // invariant 1
  Leaf* leaf = nullptr;          // immutable once published

  static constexpr std::size_t below_bytes(unsigned h) noexcept {
    return ((h - 1) * sizeof(std::atomic<uint64_t>) + sizeof(uint64_t) + kAlign - 1) & ~(kAlign - 1);
  }
  static constexpr std::size_t bytes(unsigned h) noexcept {
    return below_bytes(h) + sizeof(sl_tower) + (h - 1) * sizeof(link) + (has_block(h) ? kBlockSlot : 0);
  }
  // Placement-constructs a tower of height h (>= 2) in mem (bytes(h) bytes,
  // kAlign-aligned): links null, bounds "unknown" (~0), unlinked.
  static sl_tower* construct(void* mem, unsigned h, Leaf* l) noexcept {
    auto* t = new (static_cast<char*>(mem) + below_bytes(h)) sl_tower();
    t->leaf = l;
    new (&t->st()) state();
    for (unsigned i = 1; i < h; ++i) {
      new (&t->link_at(i)) link();
      new (&t->gap(i)) std::atomic<uint64_t>(~uint64_t{0});
    }
    if (has_block(h)) t->block_slot() = nullptr;  // set by the owner before publication
    return t;
  }
  // The memory construct(mem, h, ...) was given.
  static void* base(sl_tower* t, unsigned h) noexcept { return reinterpret_cast<char*>(t) - below_bytes(h); }

  state& st() noexcept { return *reinterpret_cast<state*>(reinterpret_cast<char*>(this) - sizeof(uint64_t)); }
  const state& st() const noexcept { return const_cast<sl_tower*>(this)->st(); }

  link& link_at(unsigned lvl) noexcept {
    char* p = reinterpret_cast<char*>(this + 1) + (lvl - 1) * sizeof(link);
    if (kBlocks && lvl > BlockLevel) p += kBlockSlot;
    return *reinterpret_cast<link*>(p);
  }
  const link& link_at(unsigned lvl) const noexcept { return const_cast<sl_tower*>(this)->link_at(lvl); }
  // Precondition: height > BlockLevel. Written once, before publication.
  block*& block_slot() noexcept {
    return *reinterpret_cast<block**>(reinterpret_cast<char*>(this + 1) + BlockLevel * sizeof(link));
  }
  block& index_block() noexcept { return *block_slot(); }
  const block& index_block() const noexcept { return *const_cast<sl_tower*>(this)->block_slot(); }
  // Level lvl's hole bound (skiplist_holes.hpp).
  std::atomic<uint64_t>& gap(unsigned lvl) noexcept {
    return *reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(this) - sizeof(uint64_t) -
                                                     lvl * sizeof(std::atomic<uint64_t>));
  }
  const std::atomic<uint64_t>& gap(unsigned lvl) const noexcept { return const_cast<sl_tower*>(this)->gap(lvl); }

  sl_tower* next(unsigned lvl, std::memory_order mo) const noexcept { return link_at(lvl).ptr.load(mo); }
  // Points level lvl at n (null allowed); the caller holds this tower's
  // lock. release (both): publishes n's contents to readers that acquire
  // the pointer; the key is a hint (invariant 2).
  void set_link(unsigned lvl, sl_tower* n) noexcept {
    link_at(lvl).ptr.store(n, std::memory_order_release);
    link_at(lvl).key.store(n != nullptr ? n->key.load(std::memory_order_relaxed) : kNoKey,
                           std::memory_order_release);
  }
};

}  // namespace rcukit::detail
