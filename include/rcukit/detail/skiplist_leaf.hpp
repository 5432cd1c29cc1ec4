// rcukit/detail/skiplist_leaf.hpp -- the leaf (node) layout of extent_skiplist.
//
// A leaf is one skiplist node that carries up to Cap extents, as in Chris
// Mason's 2013 patch: a sorted array of (start, size, value) slots, the
// level-0 link, a spin lock that serialises writers of this leaf, and a
// seqcount that lets lockless readers take a consistent snapshot. The upper
// levels (1 .. height-1) are NOT in the leaf: they live in a separate tower
// (detail/skiplist_tower.hpp) packed with the other towers in a per-skiplist
// arena, so the index a descent walks stays cache-resident; `tower` points
// to it (null for a leaf of height 1).
//
// Fat link. Link 0 holds the successor pointer AND a copy of the
// successor's (immutable) key, so a level-0 walk decides "do not advance"
// from the cache line it is already on, without touching the successor. The
// copy is a hint outside a seqcount section: pointer and key are two words
// and a reader may pair a new one with an old one, so a reader that advances
// re-checks the real key of the leaf it moves to (extent_skiplist::find_leaf
// explains why a stale hint can only stop the descent early or restart it,
// never send it wrong). Inside a seq section of the owning leaf, link 0's
// pointer and key are a consistent pair (both are written in the same write
// section).
//
// Cache layout (the leaf is 64-byte aligned): line 0 holds the rcu_head,
// key, seq, count, height, lock, dead and link 0, i.e. everything a probe
// needs besides the slots. Slot starts are a separate array (Cap * 8 bytes:
// 4 lines for 32 slots) so the in-leaf binary search touches only them, and
// each slot's size and value words sit together, so reading the found slot
// is one more line. The cold fields (tower, gap0, allocation bookkeeping)
// come last.
//
// Every field a reader may load while a writer stores is a std::atomic and is
// covered by `seq` (see detail/seqcount.hpp for the fence-free protocol:
// writers store with release inside write_begin/write_end, readers load with
// acquire between read_begin/retry). `key`, `height`, `tower` and `arena`
// are plain: they are written before the leaf is published (release store of
// a link pointer) and never again. Values of type T are kept as
// ceil(sizeof(T)/8) atomic words.
//
// Invariants (the skiplist relies on them, check_invariants() verifies):
//  (1) key, height and tower never change after publication; keys of live
//      leaves are unique and strictly increasing along level 0; tower is
//      null exactly when height == 1, else tower->leaf == this,
//      tower->key == key and tower->height == height.
//  (2) slots [0, count) hold extents sorted by start, each with
//      key <= start < link0.ptr->key.
//  (3) dead is set, together with count = 0, in the same write section that
//      precedes unlinking; a dead leaf is never revived.
//  (4) a live leaf other than the head is never observed empty by a reader
//      (emptying and marking dead happen in one write section).
//  (5) when no writer is between its two link stores, link0.key equals
//      link0.ptr->key (kNoKey for a null pointer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_gap.hpp"
#include "rcukit/detail/skiplist_tower.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// The cached key of a null link: above every leaf key (a leaf key is the start
// of a valid extent, so at most UINT64_MAX - 1).
inline constexpr uint64_t kNoKey = UINT64_MAX;

// One slot as a plain value (copied out of / into a leaf).
template <unsigned W>
struct sl_raw_entry {
  uint64_t start;
  uint64_t size;
  uint64_t w[W];
};

template <class Leaf>
struct sl_link {
  std::atomic<Leaf*> ptr{nullptr};
  std::atomic<uint64_t> key{kNoKey};  // hint: the key of *ptr (header essay)
};

// BlockLevel/BlockEntries: the index blocks of the towers (0: none; see
// skiplist_tower.hpp).
template <unsigned W, unsigned Cap, unsigned BlockLevel = 0, unsigned BlockEntries = 0>
struct alignas(64) sl_leaf : rcu::retirable {
  using raw = sl_raw_entry<W>;
  using link = sl_link<sl_leaf>;
  using tower_type = sl_tower<sl_leaf, BlockLevel, BlockEntries>;

  sl_leaf() noexcept = default;

  // Line 0 (after the 16-byte rcu_head of rcu::retirable).
  uint64_t key = 0;  // immutable once published (invariant 1)
  seqcount seq;
  std::atomic<uint32_t> count{0};  // seq-protected
  uint32_t height = 1;             // immutable once published
  spin_lock lock;
  std::atomic<bool> dead{false};  // seq-protected; written only under `lock`
  link link0;                     // seq-protected
  alignas(64) std::atomic<uint64_t> starts[Cap]{};
  struct slot_rest {
    std::atomic<uint64_t> size{0};
    std::atomic<uint64_t> w[W]{};
  };
  alignas(64) slot_rest rest[Cap]{};
  // Cold. The upper levels (null when height == 1); immutable once published.
  tower_type* tower = nullptr;
  // Bound on the free gaps intersecting this leaf's level-0 span
  // (detail/skiplist_gap.hpp; the upper levels' bounds are in the tower).
  // Not seq-protected: a monotone word of its own.
  std::atomic<uint64_t> gap0{kGapBig};  // unknown until tightened
  void* mem = nullptr;                  // the own allocation this leaf was placed in (no node arena)
  void* nodes = nullptr;                // the node arena this leaf and its block came from (or null)
  void* arena = nullptr;                // the tower arena `tower` came from (null: own allocation or none)
  void* tower_mem = nullptr;            // the tower's own allocation when it has no arena
  void* block_mem = nullptr;            // the block's own allocation when there is no node arena

  // A hint for the cache (no memory access, no ordering): every line a probe
  // of this leaf reads, so that their misses overlap instead of queueing
  // behind the search.
  void prefetch_slots() const noexcept {
    for (unsigned i = 0; i < Cap; i += 64 / sizeof(uint64_t)) __builtin_prefetch(&starts[i]);
    const char* r = reinterpret_cast<const char*>(&rest[0]);
    for (std::size_t off = 0; off < sizeof(rest); off += 64) __builtin_prefetch(r + off);
  }

  // Reader side (inside a seq read section): acquire loads, see seqcount.hpp.
  void load_acquire(unsigned i, raw& out) const noexcept {
    out.start = starts[i].load(std::memory_order_acquire);
    load_rest_acquire(i, out);
  }
  void load_rest_acquire(unsigned i, raw& out) const noexcept {
    out.size = rest[i].size.load(std::memory_order_acquire);
    for (unsigned k = 0; k < W; ++k) out.w[k] = rest[i].w[k].load(std::memory_order_acquire);
  }
  // Writer side, holding `lock`: our own previous stores are all we can see
  // change, so relaxed is enough.
  void load_locked(unsigned i, raw& out) const noexcept {
    out.start = starts[i].load(std::memory_order_relaxed);
    out.size = rest[i].size.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < W; ++k) out.w[k] = rest[i].w[k].load(std::memory_order_relaxed);
  }
  // Writer side, inside a seq write section: release, see seqcount.hpp.
  void store_release(unsigned i, const raw& in) noexcept {
    starts[i].store(in.start, std::memory_order_release);
    rest[i].size.store(in.size, std::memory_order_release);
    for (unsigned k = 0; k < W; ++k) rest[i].w[k].store(in.w[k], std::memory_order_release);
  }
  // Writer side, unpublished leaf: no reader can see it yet.
  void store_unpublished(unsigned i, const raw& in) noexcept {
    starts[i].store(in.start, std::memory_order_relaxed);
    rest[i].size.store(in.size, std::memory_order_relaxed);
    for (unsigned k = 0; k < W; ++k) rest[i].w[k].store(in.w[k], std::memory_order_relaxed);
  }

  // The successor at level 0.
  sl_leaf* next0(std::memory_order mo) const noexcept { return link0.ptr.load(mo); }
  // Points link 0 at n (null allowed). release (pointer): publishes n's
  // contents to readers that acquire the pointer. release (key): both words
  // are seq-protected and the caller is inside this leaf's write section
  // (seqcount.hpp), so seq readers see a consistent pair; lockless walkers
  // outside a seq section treat the key as a hint (find_leaf/walk_right0).
  void set_next0(sl_leaf* n) noexcept {
    link0.ptr.store(n, std::memory_order_release);
    link0.key.store(n != nullptr ? n->key : kNoKey, std::memory_order_release);
  }
};

}  // namespace rcukit::detail
