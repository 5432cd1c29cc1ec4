// SPDX-License-Identifier: MIT
// rcukit/detail/iova_state.hpp -- one state byte per pfn of an iova_domain:
// whether a live allocation starts there (and its size class) or a range
// that an iova_magazine_cache holds. It lets the cache check a free without
// touching the extent index (<rcukit/iova.hpp>, invariant 6).
//
// A sparse radix tree over the pfn's offset from start_pfn: 12 bits per
// level, leaves of 4096 bytes, as many levels as the domain's span needs
// (2 up to 2^24 pages, 3 up to 2^36, 6 for the whole 64-bit space). Nodes
// are created on first use, installed with a compare-and-swap, and freed
// only with the table: a reader never sees a node go away.
//
// Invariants:
//  (1) a child pointer, once non-null, never changes (installed by CAS);
//  (2) a node is zero-filled before it is published (release CAS, acquire
//      load);
//  (3) the entries themselves are written only by whoever holds the range
//      the entry describes (the domain's alloc and free, the cache): the
//      header of iova.hpp says why that needs no read-modify-write.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <new>

namespace rcukit::detail {

// Entry values.
inline constexpr std::uint8_t kIovaNoStart = 0;       // no live allocation starts at this pfn
inline constexpr std::uint8_t kIovaLiveOther = 0x40;  // a live allocation of a size the cache never keeps
inline constexpr std::uint8_t kIovaCachedBit = 0x80;  // ORed into a size class: held by a magazine cache

// The entry of a live allocation of npages: 1 + log2(npages) for the
// cache's classes (1 .. 32 pages, powers of two), else kIovaLiveOther.
// (No std::has_single_bit: without -mpopcnt it is a libgcc call, which
// showed up at 2.5% of the magazine path.)
constexpr std::uint8_t iova_live_state(std::uint64_t npages) noexcept {
  return npages != 0 && npages <= 32 && (npages & (npages - 1)) == 0
             ? static_cast<std::uint8_t>(1 + std::countr_zero(npages))
             : kIovaLiveOther;
}

// A range handed out again from a magazine is live again: clears the cached
// bit of its entry (invariant 3; the caller popped it, so it holds it).
inline void iova_state_uncache(std::atomic<std::uint8_t>* st) noexcept {
  // relaxed: invariant 3 (only the holder writes the entry).
  st->store(static_cast<std::uint8_t>(st->load(std::memory_order_relaxed) & ~kIovaCachedBit),
            std::memory_order_relaxed);
}

class iova_state_table {
 public:
  // Entries for offsets [0, span).
  explicit iova_state_table(std::uint64_t span) {
    const int bits = span <= 1 ? 0 : std::bit_width(span - 1);
    levels_ = bits <= kBits ? 1 : (bits + kBits - 1) / kBits;
    root_ = levels_ == 1 ? static_cast<void*>(new leaf()) : static_cast<void*>(new inner());
  }
  ~iova_state_table() { destroy(root_, levels_); }
  iova_state_table(const iova_state_table&) = delete;
  iova_state_table& operator=(const iova_state_table&) = delete;

  // The entry of offset `off`. Without `create`, nullptr where no entry was
  // ever made (its value is kIovaNoStart); with it, nullptr only when a
  // node cannot be allocated. Lock-free: `levels_ - 1` pointer loads, and a
  // CAS per node created.
  std::atomic<std::uint8_t>* at(std::uint64_t off, bool create) noexcept {
    return create ? make(off) : find(off);
  }

  // at(off, false): small enough to inline into the magazine path.
  std::atomic<std::uint8_t>* find(std::uint64_t off) const noexcept {
    void* node = root_;
    for (int l = levels_ - 1; l > 0; --l) {
      // acquire: pairs with the release CAS in make() (invariant 2).
      node = static_cast<inner*>(node)->child[(off >> (kBits * l)) & (kFan - 1)].load(std::memory_order_acquire);
      if (node == nullptr) return nullptr;
    }
    return &static_cast<leaf*>(node)->state[off & (kFan - 1)];
  }

 private:
  // at(off, true).
  std::atomic<std::uint8_t>* make(std::uint64_t off) noexcept {
    void* node = root_;
    for (int l = levels_ - 1; l > 0; --l) {
      std::atomic<void*>& slot = static_cast<inner*>(node)->child[(off >> (kBits * l)) & (kFan - 1)];
      // acquire: pairs with the release CAS below that published the child
      // zero-filled (invariant 2).
      void* child = slot.load(std::memory_order_acquire);
      if (child == nullptr) {
        void* fresh = l == 1 ? static_cast<void*>(new (std::nothrow) leaf())
                             : static_cast<void*>(new (std::nothrow) inner());
        if (fresh == nullptr) return nullptr;
        // acq_rel: release publishes the zeroed node; acquire (also on
        // failure) reads the node another thread installed first.
        if (slot.compare_exchange_strong(child, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) {
          child = fresh;
        } else {
          destroy(fresh, l);  // lost the race: use the winner's (invariant 1)
        }
      }
      node = child;
    }
    return &static_cast<leaf*>(node)->state[off & (kFan - 1)];
  }

  static constexpr int kBits = 12;
  static constexpr std::size_t kFan = std::size_t{1} << kBits;
  struct leaf {
    std::atomic<std::uint8_t> state[kFan] = {};
  };
  struct inner {
    std::atomic<void*> child[kFan] = {};
  };

  // Frees a node of height `level` (1 = leaf) and everything below it.
  static void destroy(void* node, int level) noexcept {
    if (level == 1) {
      delete static_cast<leaf*>(node);
      return;
    }
    inner* in = static_cast<inner*>(node);
    for (auto& c : in->child) {
      void* p = c.load(std::memory_order_relaxed);  // relaxed: only the destructor (or the CAS loser) is left
      if (p != nullptr) destroy(p, level - 1);
    }
    delete in;
  }

  int levels_ = 1;
  void* root_ = nullptr;
};

}  // namespace rcukit::detail
