// rcukit/detail/skiplist_leaf.hpp -- the leaf (node) layout of extent_skiplist.
//
// A leaf is one skiplist node that carries up to Cap extents, as in Chris
// Mason's 2013 patch: a sorted array of (start, size, value) slots, a tower of
// `height` next pointers, a spin lock that serialises writers of this leaf,
// and a seqcount that lets lockless readers take a consistent snapshot.
//
// Every field a reader may load while a writer stores is a std::atomic and is
// covered by `seq` (see detail/seqcount.hpp for the fence-free protocol:
// writers store with release inside write_begin/write_end, readers load with
// acquire between read_begin/retry). `key` and `height` are plain: they are
// written before the leaf is published (release store of a next pointer) and
// never again. Values of type T are kept as ceil(sizeof(T)/8) atomic words.
//
// Invariants (the skiplist relies on them, check_invariants() verifies):
//  (1) key and height never change after publication; keys of live leaves are
//      unique and strictly increasing along every level.
//  (2) slots [0, count) hold extents sorted by start, each with
//      key <= start < next[0]->key.
//  (3) dead is set, together with count = 0, in the same write section that
//      precedes unlinking; a dead leaf is never revived.
//  (4) a live leaf other than the head is never observed empty by a reader
//      (emptying and marking dead happen in one write section).
#pragma once

#include <atomic>
#include <cstdint>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_gap.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// One slot as a plain value (copied out of / into a leaf).
template <unsigned W>
struct sl_raw_entry {
  uint64_t start;
  uint64_t size;
  uint64_t w[W];
};

template <unsigned W, unsigned Cap, unsigned MaxLevels>
struct sl_leaf : rcu::retirable {
  using raw = sl_raw_entry<W>;

  sl_leaf() noexcept {
    for (auto& n : next) n.store(nullptr, std::memory_order_relaxed);  // unpublished: no reader yet
    for (auto& g : gap) g.store(kGapBig, std::memory_order_relaxed);   // unknown until tightened
  }

  // Hot for the descent first: key and the tower share the first cache lines.
  uint64_t key = 0;                       // immutable once published (invariant 1)
  unsigned height = 1;                    // immutable once published
  std::atomic<sl_leaf*> next[MaxLevels];  // next[0] seq-protected; upper levels under the index lock
  spin_lock lock;
  seqcount seq;
  std::atomic<uint32_t> count{0};  // seq-protected
  std::atomic<bool> dead{false};   // seq-protected; written only under `lock`
  std::atomic<uint64_t> starts[Cap]{};
  std::atomic<uint64_t> sizes[Cap]{};
  std::atomic<uint64_t> vals[Cap][W]{};
  // gap[l]: bound on the free gaps intersecting the span this leaf heads at
  // level l (detail/skiplist_gap.hpp). Not seq-protected: monotone words.
  std::atomic<uint64_t> gap[MaxLevels];

  // Reader side (inside a seq read section): acquire loads, see seqcount.hpp.
  void load_acquire(unsigned i, raw& out) const noexcept {
    out.start = starts[i].load(std::memory_order_acquire);
    out.size = sizes[i].load(std::memory_order_acquire);
    for (unsigned k = 0; k < W; ++k) out.w[k] = vals[i][k].load(std::memory_order_acquire);
  }
  // Writer side, holding `lock`: our own previous stores are all we can see
  // change, so relaxed is enough.
  void load_locked(unsigned i, raw& out) const noexcept {
    out.start = starts[i].load(std::memory_order_relaxed);
    out.size = sizes[i].load(std::memory_order_relaxed);
    for (unsigned k = 0; k < W; ++k) out.w[k] = vals[i][k].load(std::memory_order_relaxed);
  }
  // Writer side, inside a seq write section: release, see seqcount.hpp.
  void store_release(unsigned i, const raw& in) noexcept {
    starts[i].store(in.start, std::memory_order_release);
    sizes[i].store(in.size, std::memory_order_release);
    for (unsigned k = 0; k < W; ++k) vals[i][k].store(in.w[k], std::memory_order_release);
  }
};

}  // namespace rcukit::detail
