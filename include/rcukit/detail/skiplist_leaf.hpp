// rcukit/detail/skiplist_leaf.hpp -- the leaf (node) layout of extent_skiplist.
//
// A leaf is one skiplist node that carries up to Cap extents, as in Chris
// Mason's 2013 patch: a sorted array of (start, size, value) slots, a tower of
// `height` links, a spin lock that serialises writers of this leaf, and a
// seqcount that lets lockless readers take a consistent snapshot.
//
// Fat links. Each tower link holds the successor pointer AND a copy of the
// successor's (immutable) key, so a descent decides "do not advance" from the
// cache line it is already on, without touching the successor (a cache miss
// at every level in a plain skiplist). The copy is a hint outside a seqcount
// section: pointer and key are two words and a reader may pair a new one with
// an old one, so a reader that advances re-checks the real key of the leaf it
// moves to (extent_skiplist::find_leaf explains why a stale hint can only
// stop the descent early, never send it wrong). Inside a seq section of the
// owning leaf, level 0's pointer and key are a consistent pair (both are
// written in the same write section).
//
// Cache layout (the leaf is 64-byte aligned): line 0 holds the rcu_head, key,
// seq, count, height, lock, dead and link 0, i.e. everything a probe needs
// besides the slots; links 1..4 share line 1. Slot starts are a separate
// array (Cap * 8 bytes: 4 lines for 32 slots) so the in-leaf binary search
// touches only them, and each slot's size and value words sit together, so
// reading the found slot is one more line.
//
// Every field a reader may load while a writer stores is a std::atomic and is
// covered by `seq` (see detail/seqcount.hpp for the fence-free protocol:
// writers store with release inside write_begin/write_end, readers load with
// acquire between read_begin/retry). `key` and `height` are plain: they are
// written before the leaf is published (release store of a link pointer) and
// never again. Values of type T are kept as ceil(sizeof(T)/8) atomic words.
//
// Invariants (the skiplist relies on them, check_invariants() verifies):
//  (1) key and height never change after publication; keys of live leaves are
//      unique and strictly increasing along every level.
//  (2) slots [0, count) hold extents sorted by start, each with
//      key <= start < links[0].ptr->key.
//  (3) dead is set, together with count = 0, in the same write section that
//      precedes unlinking; a dead leaf is never revived.
//  (4) a live leaf other than the head is never observed empty by a reader
//      (emptying and marking dead happen in one write section).
//  (5) when no writer is between its two link stores, links[l].key equals
//      links[l].ptr->key (kNoKey for a null pointer).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_gap.hpp"
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

template <unsigned W, unsigned Cap, unsigned MaxLevels>
struct alignas(64) sl_leaf : rcu::retirable {
  using raw = sl_raw_entry<W>;
  using link = sl_link<sl_leaf>;

  sl_leaf() noexcept {
    for (auto& g : gap) g.store(kGapBig, std::memory_order_relaxed);  // unpublished; unknown until tightened
  }

  // Line 0 (after the 16-byte rcu_head of rcu::retirable).
  uint64_t key = 0;  // immutable once published (invariant 1)
  seqcount seq;
  std::atomic<uint32_t> count{0};  // seq-protected
  uint32_t height = 1;             // immutable once published
  spin_lock lock;
  std::atomic<bool> dead{false};  // seq-protected; written only under `lock`
  // links[0] seq-protected; upper levels changed only under the index lock.
  link links[MaxLevels];
  alignas(64) std::atomic<uint64_t> starts[Cap]{};
  struct slot_rest {
    std::atomic<uint64_t> size{0};
    std::atomic<uint64_t> w[W]{};
  };
  alignas(64) slot_rest rest[Cap]{};
  // gap[l]: bound on the free gaps intersecting the span this leaf heads at
  // level l (detail/skiplist_gap.hpp). Not seq-protected: monotone words.
  std::atomic<uint64_t> gap[MaxLevels];
  void* mem = nullptr;  // the allocation this leaf was placed in (cold)

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

  // The successor at `lvl`.
  sl_leaf* next(unsigned lvl, std::memory_order mo) const noexcept { return links[lvl].ptr.load(mo); }
  // Points links[lvl] at n (null allowed). release (pointer): publishes n's
  // contents to readers that acquire the pointer. release (key): at level 0
  // both words are seq-protected and the caller is inside this leaf's write
  // section (seqcount.hpp), so seq readers see a consistent pair; above level
  // 0 the key is a hint and a mixed pair is harmless (find_leaf/walk_right).
  void set_link(unsigned lvl, sl_leaf* n) noexcept {
    links[lvl].ptr.store(n, std::memory_order_release);
    links[lvl].key.store(n != nullptr ? n->key : kNoKey, std::memory_order_release);
  }
};

}  // namespace rcukit::detail
