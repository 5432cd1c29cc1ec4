// rcukit/detail/skiplist_tower.hpp -- the index towers of extent_skiplist and
// the packed arena they live in.
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
// [header: key, leaf (16 bytes)][links[1 .. h-1]], the header and links
// 16-byte aligned (a 16-byte link never straddles a cache line). The tower
// pointer points to the header; base() gives the allocation back. Heights
// 2, 3, 4 take 48, 64, 96 bytes (~68 bytes on average for p = 1/2).
//
// The arena (sl_tower_arena): size classes by height, a free list per class,
// bump allocation from chunks that double from 4 KiB up to
// Traits::tower_chunk_bytes, all behind one spin lock (allocation happens in
// preload(), never under a leaf lock; frees happen in RCU callbacks). Chunks
// come from Traits::allocate, so allocation-failure injection reaches them.
// Lifetime: the arena is reference counted, one reference held by the
// skiplist and one by every tower carved from it; whoever drops the last
// reference frees the chunks and the arena. So an RCU callback that frees a
// tower after the skiplist was destroyed still finds its arena (the
// skiplist's destructor does not need rcu::barrier()).
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
//  (3) arena: refs == 1 (the skiplist, until it releases) + number of towers
//      carved and not freed; the arena is freed exactly when refs hits 0.
// Not supported: returning chunk memory before the arena dies (freed towers
// go to the free list of their class and are reused).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "rcukit/detail/skiplist_gap.hpp"
#include "rcukit/detail/spin_lock.hpp"

namespace rcukit::detail {

template <class Leaf>
struct sl_tower {
  struct link {
    std::atomic<sl_tower*> ptr{nullptr};
    std::atomic<uint64_t> key{UINT64_MAX};  // hint: the key of *ptr (kNoKey when null)
  };
  static constexpr std::size_t kAlign = 16;

  uint64_t key = 0;      // immutable once published (invariant 1)
  Leaf* leaf = nullptr;  // immutable once published

  // The gap bounds of levels h-1 .. 1 sit just below the header, padded so
  // the header (and the links after it) stay kAlign-aligned.
  static constexpr std::size_t gap_bytes(unsigned h) noexcept {
    return ((h - 1) * sizeof(std::atomic<uint64_t>) + kAlign - 1) & ~(kAlign - 1);
  }
  static constexpr std::size_t bytes(unsigned h) noexcept {
    return gap_bytes(h) + sizeof(sl_tower) + (h - 1) * sizeof(link);
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
    return t;
  }
  // The memory construct(mem, h, ...) was given (the tower already destroyed
  // or not: only its address is used).
  static void* base(sl_tower* t, unsigned h) noexcept { return reinterpret_cast<char*>(t) - gap_bytes(h); }

  link& link_at(unsigned lvl) noexcept { return reinterpret_cast<link*>(this + 1)[lvl - 1]; }
  const link& link_at(unsigned lvl) const noexcept {
    return reinterpret_cast<const link*>(this + 1)[lvl - 1];
  }
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

// The packed arena of one skiplist's towers (header essay). Traits supplies
// allocate/deallocate (nullptr on failure, never throws).
template <class Tower, class Traits, unsigned MaxLevels>
class sl_tower_arena {
 public:
  static constexpr std::size_t kFirstChunk = 4096;

  // A new arena holding the owner's reference; nullptr if allocation failed.
  static sl_tower_arena* create(std::size_t max_chunk) noexcept {
    void* m = Traits::allocate(sizeof(sl_tower_arena));
    if (m == nullptr) return nullptr;
    return new (m) sl_tower_arena(max_chunk);
  }

  // Memory for a tower of height h (2 <= h <= MaxLevels), kAlign-aligned;
  // nullptr if a new chunk was needed and its allocation failed. Takes a
  // reference. Blocking (the arena's spin lock, and the allocator).
  void* allocate(unsigned h) noexcept {
    lock_.lock();
    void* p = free_[h];
    if (p != nullptr) {
      free_[h] = *static_cast<void**>(p);
    } else {
      const std::size_t need = Tower::bytes(h);
      if (left_ < need && !grow(need)) {
        lock_.unlock();
        return nullptr;
      }
      p = cur_;
      cur_ += need;
      left_ -= need;
    }
    lock_.unlock();
    // relaxed: only the count matters; the drop to 0 synchronises (release()).
    refs_.fetch_add(1, std::memory_order_relaxed);
    return p;
  }
  // Returns a tower's memory (already destroyed) to its class; drops its reference.
  void deallocate(void* p, unsigned h) noexcept {
    lock_.lock();
    *static_cast<void**>(p) = free_[h];
    free_[h] = p;
    lock_.unlock();
    release();
  }
  // Drops one reference; the last one frees every chunk and the arena.
  void release() noexcept {
    // acq_rel: every use of the arena by other droppers happens-before the
    // destruction by the last one (the usual refcount pairing).
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    void* c = chunks_;
    while (c != nullptr) {
      void* n = *static_cast<void**>(c);
      Traits::deallocate(c);
      c = n;
    }
    this->~sl_tower_arena();
    Traits::deallocate(this);
  }

 private:
  explicit sl_tower_arena(std::size_t max_chunk) noexcept : max_chunk_(max_chunk) {}

  // Under lock_: a new chunk of at least `need` usable bytes. Its first
  // kAlign bytes link the chunk list. The tail of the old chunk is dropped.
  bool grow(std::size_t need) noexcept {
    std::size_t sz = next_chunk_ < max_chunk_ ? next_chunk_ : max_chunk_;
    if (sz < need + Tower::kAlign) sz = need + Tower::kAlign;
    void* c = Traits::allocate(sz + Tower::kAlign);  // room to align
    if (c == nullptr) return false;
    *static_cast<void**>(c) = chunks_;
    chunks_ = c;
    const auto base = reinterpret_cast<uintptr_t>(c) + sizeof(void*);
    const auto a = (base + Tower::kAlign - 1) & ~uintptr_t{Tower::kAlign - 1};
    cur_ = reinterpret_cast<char*>(a);
    left_ = sz + Tower::kAlign - (a - reinterpret_cast<uintptr_t>(c));
    if (next_chunk_ < max_chunk_) next_chunk_ *= 2;
    return true;
  }

  spin_lock lock_;
  std::atomic<long> refs_{1};  // invariant 3
  std::size_t max_chunk_;
  std::size_t next_chunk_ = kFirstChunk;
  void* chunks_ = nullptr;
  char* cur_ = nullptr;
  std::size_t left_ = 0;
  void* free_[MaxLevels + 1] = {};
};

}  // namespace rcukit::detail
