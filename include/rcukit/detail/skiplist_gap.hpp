// rcukit/detail/skiplist_gap.hpp -- conservative largest-gap summaries for
// the extent skiplist's hole search.
//
// The idea (DESIGN.md "Design notes"; the augmented-tree trick of the
// kernel's rbtree_augmented.h / iova "largest free gap in subtree", moved to
// skiplist spans): every span head keeps an upper bound on the length of
// every free gap that intersects the key span it heads (level 0: a leaf,
// its own range [key, next->key), in the leaf's gap0; level l >= 1: a
// tower, the ranges of the level-0 leaves from its leaf up to the leaf of
// its level-l successor, in the tower's gap(l); detail/skiplist_tower.hpp).
// A hole search skips a span
// whose bound is below the requested size, so in a fragmented space it
// visits O(log n) spans instead of every extent.
//
// A bound is a 64-bit word: a 24-bit generation and a 40-bit value (values
// saturate at kGapBig, which means "unknown or >= 2^40": never skipped).
//  * mark(): sets the value to kGapBig and bumps the generation. Erases call
//    it after their effect (a gap may have grown), bottom level first.
//  * tighten(w, seen, v): lowers the value to v only if the word is still
//    `seen`, i.e. no mark happened since the caller read it before computing
//    v. So a value computed from a state older than a mark can never
//    overwrite that mark (invariant below). Splits mark nothing: the
//    caller must also know that v covers the span as it is now (a split
//    only shrinks a span, but a value computed over child spans listed
//    before a split can miss the part split off; extent_skiplist's
//    search_span checks that the listed successors did not change).
// Invariant: once every mark() caused by an erase has returned, every bound
// is >= the true largest gap of its span. Between an erase's effect and its
// marks a bound may be low; insert_hole() detects that window through the
// skiplist's erase counters and retries.
// Not supported: exact bounds (they are tightened lazily by searches).
#pragma once

#include <atomic>
#include <cstdint>

namespace rcukit::detail {

inline constexpr unsigned kGapValueBits = 40;
inline constexpr uint64_t kGapBig = (uint64_t{1} << kGapValueBits) - 1;
inline constexpr uint64_t kGapValueMask = kGapBig;

constexpr uint64_t gap_value(uint64_t word) noexcept { return word & kGapValueMask; }
constexpr uint64_t gap_saturate(uint64_t v) noexcept { return v < kGapBig ? v : kGapBig; }
// True if a span with this bound may hold a free gap of `size`.
constexpr bool gap_may_fit(uint64_t word, uint64_t size) noexcept {
  const uint64_t v = gap_value(word);
  return v == kGapBig || v >= size;
}

inline void gap_mark(std::atomic<uint64_t>& w) noexcept {
  // seq_cst: ordered after the erase's effect and before its counter bump
  // (see extent_skiplist::erase); a tightener that reads the new word sees
  // the state the mark was made for.
  uint64_t old = w.load(std::memory_order_seq_cst);
  for (;;) {
    const uint64_t gen = (old >> kGapValueBits) + 1;
    const uint64_t nw = (gen << kGapValueBits) | kGapBig;
    if (w.compare_exchange_weak(old, nw, std::memory_order_seq_cst)) return;
  }
}

inline void gap_tighten(std::atomic<uint64_t>& w, uint64_t seen, uint64_t v) noexcept {
  const uint64_t nw = (seen & ~kGapValueMask) | gap_saturate(v);
  if (gap_value(nw) >= gap_value(seen)) return;  // nothing to lower
  // seq_cst: fails if a mark() intervened since `seen` was loaded.
  w.compare_exchange_strong(seen, nw, std::memory_order_seq_cst);
}

}  // namespace rcukit::detail
