// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_leaf.hpp -- the leaf (node) layout of extent_skiplist.
//
// A leaf is one skiplist node carrying up to Cap extents, as in Chris
// Mason's 2013 patch: a sorted array of (start, size, value) slots, the
// level-0 link, a spin lock for its writers and a seqcount that lets
// lockless readers take a consistent snapshot. Its upper levels live apart,
// in a tower (skiplist_tower.hpp) packed with the other towers, so the index
// a descent walks stays in cache.
//
// Fat link. Link 0 holds the successor pointer and a copy of the successor's
// key, so a level-0 walk decides "do not advance" from the line it is on.
// Outside a seq section the copy is a hint (pointer and key are two words);
// inside one of the owning leaf they are a consistent pair.
//
// Cache layout (64-byte aligned): line 0 holds everything a probe needs
// besides the slots (key, seq, link 0, count) and the writer's state (lock,
// dead, gap bound, tower, pool link); slot starts are a separate array
// (8 to a line) so the in-leaf search touches only them; each slot's size
// and value words sit together.
//
// Invariants (extent_skiplist relies on them; check_invariants verifies):
//  (1) height and tower never change after publication; tower is null
//      exactly when height == 1, else tower->leaf == this.
//  (2) key only decreases while the leaf is live (a right redistribution
//      moves the boundary with the predecessor down, under both locks); keys
//      of live leaves are strictly increasing along level 0.
//  (3) slots [0, count) hold extents sorted by start, each with
//      key <= start < link0.ptr->key.
//  (4) dead is set, together with count = 0, in the write section before
//      the leaf is unlinked from level 0; a dead leaf is never revived.
//  (5) a live leaf other than the head is never observed empty by a reader
//      (emptying and marking dead happen in one write section).
//  (6) gap0 (the hole bound, skiplist_holes.hpp) is written only under lock.
// Every field a reader may load while a writer stores is an atomic covered
// by seq (seqcount.hpp: release stores inside write sections, acquire loads
// between read_begin and retry), except key, which readers use outside a
// section as a bound that only goes down (extent_skiplist's descent).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_tower.hpp"
#include "rcukit/detail/spin_lock.hpp"

namespace rcukit::detail {

// One slot as a plain value (copied out of / into a leaf).
template <unsigned W>
struct sl_raw_entry {
  uint64_t start;
  uint64_t size;
  uint64_t w[W];
};

template <class Node>
struct sl_link {
  std::atomic<Node*> ptr{nullptr};
  std::atomic<uint64_t> key{kNoKey};  // hint: the key of *ptr
};

// BlockLevel/BlockEntries: the index blocks of the towers (0: none).
template <unsigned W, unsigned Cap, unsigned BlockLevel = 0, unsigned BlockEntries = 0>
struct alignas(64) sl_leaf {
  using raw = sl_raw_entry<W>;
  using link = sl_link<sl_leaf>;
  using tower_type = sl_tower<sl_leaf, BlockLevel, BlockEntries>;

  // Line 0.
  std::atomic<uint64_t> key{0};   // invariant 2
  seqcount seq;
  link link0;                      // seq-protected
  std::atomic<uint64_t> gap0{~uint64_t{0}};  // invariant 6; "unknown" until tightened
  tower_type* tower = nullptr;     // invariant 1
  std::atomic<uint32_t> count{0};  // seq-protected
  uint8_t height = 1;              // invariant 1
  spin_lock lock;
  std::atomic<bool> dead{false};   // seq-protected; written under lock
  sl_leaf* pool_next = nullptr;    // the node pool's list link, used only once the leaf is unreachable
  alignas(64) std::atomic<uint64_t> starts[Cap]{};
  struct slot_rest {
    std::atomic<uint64_t> size{0};
    std::atomic<uint64_t> w[W]{};
  };
  alignas(64) slot_rest rest[Cap]{};

  // A hint for the cache (no memory access, no ordering): every line a probe
  // of this leaf reads, so their misses overlap instead of queueing behind
  // the search.
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
  // Writer side, holding `lock`: only our own stores can change these.
  void load_locked(unsigned i, raw& out) const noexcept {
    out.start = starts[i].load(std::memory_order_relaxed);
    out.size = rest[i].size.load(std::memory_order_relaxed);
    for (unsigned k = 0; k < W; ++k) out.w[k] = rest[i].w[k].load(std::memory_order_relaxed);
  }
  uint64_t end_locked(unsigned i) const noexcept {
    return starts[i].load(std::memory_order_relaxed) + rest[i].size.load(std::memory_order_relaxed);
  }
  // Writer side, inside a seq write section: release, see seqcount.hpp.
  void store_release(unsigned i, const raw& in) noexcept {
    starts[i].store(in.start, std::memory_order_release);
    rest[i].size.store(in.size, std::memory_order_release);
    for (unsigned k = 0; k < W; ++k) rest[i].w[k].store(in.w[k], std::memory_order_release);
  }

  sl_leaf* next0(std::memory_order mo) const noexcept { return link0.ptr.load(mo); }
  // Points link 0 at n (null allowed), inside this leaf's write section.
  // release (both): publishes n's contents to readers that acquire the
  // pointer; both words are seq-protected (seqcount.hpp).
  void set_next0(sl_leaf* n) noexcept {
    link0.ptr.store(n, std::memory_order_release);
    link0.key.store(n != nullptr ? n->key.load(std::memory_order_relaxed) : kNoKey, std::memory_order_release);
  }
};

}  // namespace rcukit::detail
