// rcukit/detail/skiplist_tower.hpp -- the index towers of extent_skiplist and
// their index blocks.
//
// The idea: a skiplist descent spends its time in the upper levels, and in a
// skiplist of fat leaves (32 extents, ~1 KB each) a tower embedded in its
// leaf puts every upper link on its own page: at 10^6 extents the ~45k
// leaves span ~50 MB, more than the last-level cache, and every level of the
// descent is a DRAM and TLB miss. So the upper levels live apart from the
// leaves, in a small "tower" object sized to the leaf's height (a leaf of
// height 1, which exists only with skiplist_traits::dense_index false, has
// none): its key (a copy of the leaf's immutable key), its
// leaf, and for every level 1..height-1 a fat link (the successor TOWER and
// a copy of that successor's key) and that level's gap bound
// (detail/skiplist_gap.hpp). Towers are carved out of large chunks of one
// per-skiplist arena, so all towers of 10^6 extents (~45k towers with the
// default dense index, ~3 MB, estimated) sit on ~750 pages and the upper
// levels of a descent stay in
// cache; the descent misses (DRAM-wise) only at the leaves it ends on. The
// arena is a plain size-class slab.
//
// Tower layout. Size is what matters: the towers of a large skiplist fill
// about as much of the last-level cache as a lookup gets, so nothing the
// descent does not need sits in a tower (this layout against one with a
// 32-byte header holding the height and gaps after the links, ~83 bytes
// on average: lookup_rcu/btree at 10^6 ~1.8x -> ~1.5x, BM_lookup_paired in
// skiplist_bench, docs/RESULTS.md). The height is not stored (it is
// the leaf's); the gap bounds, which only hole searches read, sit below the
// header in reverse level order, so level l's bound is l words below the
// header whatever the height. In memory: [padding][gap h-1 .. gap 1]
// [header: key, leaf (16 bytes)][links[1 .. h-1]] (with a block slot after
// link B when h > B, see below), the header and links
// 16-byte aligned (a 16-byte link never straddles a cache line). The tower
// pointer points to the header; base() gives the allocation back. Heights
// 2, 3, 4 take 48, 64, 96 bytes (~68 bytes on average for p = 1/2).
//
// Index blocks. With skiplist_traits::index_block_level B, a tower of
// height > B (1 in 2^(B-1) with the dense index) also carries the address
// of an index block: the keys and leaves of the level-1 towers up to its
// next tower at level B, so a descent steps from level B straight to the
// leaf instead of walking levels B-1 .. 1, whose towers (most of them) no
// longer fit in the cache of a large list. The block lives apart (in the
// skiplist's node arena, detail/slab_arena.hpp), so the tall towers every
// descent walks stay small; its address sits in a 16-byte slot after link
// B, so links above B follow the slot. extent_skiplist.hpp ("Index blocks")
// has the rules and the figures.
//
// The arena: the skiplist's towers come from a detail::slab_arena with one
// size class per height and chunks up to Traits::tower_chunk_bytes
// (allocation happens in preload(), never under a leaf lock; frees happen
// in RCU callbacks). Each tower holds a reference on the arena, so a
// callback that frees a tower after the skiplist was destroyed still finds
// it (the skiplist's destructor does not need rcu::barrier()).
// Traits::tower_chunk_bytes == 0 disables the arena: every tower is its own
// Traits::allocate allocation (the measured alternative; see the header
// essay of extent_skiplist.hpp).
//
// Invariants:
//  (1) key and leaf never change after the tower is published;
//      key == leaf->key, and the tower has leaf->height - 1 levels.
//  (2) links[l - 1] points to a tower of height > l whose key is greater
//      than this tower's key (or is null); when no writer is between its two
//      link stores, links[l - 1].key equals links[l - 1].ptr->key (kNoKey
//      for null).
//  (3) a tower of height > B has its block slot set before it is
//      published, and the block lives until the tower is freed.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_gap.hpp"

namespace rcukit::detail {

template <class Leaf, unsigned BlockLevel = 0, unsigned BlockEntries = 0>
struct sl_tower {
  struct link {
    std::atomic<sl_tower*> ptr{nullptr};
    std::atomic<uint64_t> key{UINT64_MAX};  // hint: the key of *ptr (kNoKey when null)
  };
  static constexpr std::size_t kAlign = 16;

  // The index block of a tower of height > BlockLevel (see the header
  // essay): the keys and leaves of the level-1 towers after this one, up to
  // its level-BlockLevel successor (exclusive), in key order; when
  // `partial` is set, only a prefix of them. Written under the skiplist's
  // index lock inside a `seq` write section; read under `seq`.
  struct block_entry {
    std::atomic<uint64_t> key{UINT64_MAX};
    std::atomic<Leaf*> leaf{nullptr};
  };
  struct alignas(64) block {
    seqcount seq;
    std::atomic<uint32_t> n{0};        // seq-protected; <= BlockEntries
    std::atomic<uint32_t> partial{0};  // seq-protected; 1: e[0, n) is only a prefix
    block_entry e[BlockEntries > 0 ? BlockEntries : 1];
  };
  static constexpr bool kBlocks = BlockLevel > 0 && BlockEntries > 0;
  // A block lives apart from its tower (a ~1 KB block inline would spread
  // the tall towers, the ones every descent walks, over many times the
  // pages); the tower holds its address in a kAlign-sized slot.
  static constexpr std::size_t kBlockSlot = kBlocks ? kAlign : 0;
  static constexpr bool has_block(unsigned h) noexcept { return kBlocks && h > BlockLevel; }

  uint64_t key = 0;      // immutable once published (invariant 1)
  Leaf* leaf = nullptr;  // immutable once published

  // The gap bounds of levels h-1 .. 1 sit just below the header, padded so
  // the header (and the links after it) stay kAlign-aligned.
  static constexpr std::size_t gap_bytes(unsigned h) noexcept {
    return ((h - 1) * sizeof(std::atomic<uint64_t>) + kAlign - 1) & ~(kAlign - 1);
  }
  static constexpr std::size_t bytes(unsigned h) noexcept {
    return gap_bytes(h) + sizeof(sl_tower) + (h - 1) * sizeof(link) + (has_block(h) ? kBlockSlot : 0);
  }
  // Placement-constructs a tower of height h (>= 2) in mem (bytes(h) bytes,
  // kAlign-aligned), every link null and every gap bound "unknown". The
  // tower is not at mem: base(t, h) gives mem back.
  static sl_tower* construct(void* mem, unsigned h, Leaf* l) noexcept {
    auto* t = new (static_cast<char*>(mem) + gap_bytes(h)) sl_tower();
    t->leaf = l;
    for (unsigned i = 1; i < h; ++i) {
      new (&t->link_at(i)) link();
      new (&t->gap(i)) std::atomic<uint64_t>(kGapBig);  // unpublished; unknown until tightened
    }
    if (has_block(h)) t->block_slot() = nullptr;  // set by the owner before publication
    return t;
  }
  // The memory construct(mem, h, ...) was given (the tower already destroyed
  // or not: only its address is used).
  static void* base(sl_tower* t, unsigned h) noexcept { return reinterpret_cast<char*>(t) - gap_bytes(h); }

  // Links 1..BlockLevel follow the header; the block slot (heights above
  // BlockLevel only) follows link BlockLevel, on the line a descent at
  // BlockLevel reads anyway, and the links above it follow the slot. So
  // neither needs the height: a level above BlockLevel exists only in
  // towers that have a block.
  link& link_at(unsigned lvl) noexcept {
    char* p = reinterpret_cast<char*>(this + 1) + (lvl - 1) * sizeof(link);
    if (kBlocks && lvl > BlockLevel) p += kBlockSlot;
    return *reinterpret_cast<link*>(p);
  }
  const link& link_at(unsigned lvl) const noexcept { return const_cast<sl_tower*>(this)->link_at(lvl); }
  // Preconditions: the tower's height is > BlockLevel; index_block(): the
  // slot was set. The slot is written once, before the tower is published.
  block*& block_slot() noexcept {
    return *reinterpret_cast<block**>(reinterpret_cast<char*>(this + 1) + BlockLevel * sizeof(link));
  }
  block& index_block() noexcept { return *block_slot(); }
  const block& index_block() const noexcept { return *const_cast<sl_tower*>(this)->block_slot(); }
  // Level lvl's bound is lvl words below the header, so finding it needs no
  // height (the height is the leaf's, on another cache line).
  std::atomic<uint64_t>& gap(unsigned lvl) noexcept {
    return *reinterpret_cast<std::atomic<uint64_t>*>(reinterpret_cast<char*>(this) -
                                                     lvl * sizeof(std::atomic<uint64_t>));
  }
  const std::atomic<uint64_t>& gap(unsigned lvl) const noexcept {
    return const_cast<sl_tower*>(this)->gap(lvl);
  }

  // The successor at lvl (1 <= lvl < height).
  sl_tower* next(unsigned lvl, std::memory_order mo) const noexcept { return link_at(lvl).ptr.load(mo); }
  // Points level lvl at n (null allowed). release (both): publishes n's
  // contents to readers that acquire the pointer; the key is a hint and a
  // reader pairing a new pointer with an old key (or the reverse) is
  // harmless (extent_skiplist::walk_tower). Writers hold the index lock.
  void set_link(unsigned lvl, sl_tower* n) noexcept {
    link_at(lvl).ptr.store(n, std::memory_order_release);
    link_at(lvl).key.store(n != nullptr ? n->key : UINT64_MAX, std::memory_order_release);
  }
};

}  // namespace rcukit::detail
