// SPDX-License-Identifier: MIT
// rcukit/detail/iova_magazine.hpp -- the pieces of iova_magazine_cache:
// magazines, the per-thread cache block, and the thread-exit registry.
//
// The idea (Peleg, Morrison, Serebrin, Tsafrir, "Utilizing the IOMMU
// Scalably", USENIX ATC 2015; Linux drivers/iommu/iova.c rcaches since 4.7):
// a magazine is a small stack of freed ranges of one power-of-two size. Each
// thread keeps two per size class, `loaded` and `previous`; frees push onto
// loaded, allocations pop from it, and when loaded is full (empty) the two
// swap, so a thread that alternates alloc and free never touches shared
// state. Only when both are full (empty) does a whole magazine move to (from)
// a bounded global depot. Here the per-thread magazines are embedded in the
// thread's block (swapping is an index flip) and depot magazines are heap
// objects whose contents are copied in and out (a 2 KiB copy per 127 ranges:
// each pfn travels with the address of its state entry).
//
// Invariants:
//  (1) every pfn in a magazine or the depot is an allocation of its
//      class's size in the domain, held by the cache (not by any user), and
//      stored there as cached, not live (<rcukit/iova.hpp>, invariant 6);
//  (2) a per-thread block is read and written only with its mutex held
//      (the owner thread, flush(), thread exit and the cache destructor all
//      lock it);
//  (3) the depot holds at most kDepotMax magazines per class, only full ones;
//  (4) no allocation happens while a cache mutex is held.
// Lock order: registry mutex -> per-thread mutex -> depot mutex -> (domain).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

namespace rcukit::detail {

inline constexpr int kIovaCacheClasses = 6;    // sizes 1, 2, 4, 8, 16, 32 pages
inline constexpr uint32_t kIovaMagSize = 127;  // as the kernel since 2023 (its 1 KiB magazines)
inline constexpr size_t kIovaDepotMax = 32;    // full magazines per class in the depot

// Beside each pfn, the address of its entry in the domain's state table
// (detail/iova_state.hpp), so that handing the range out again marks it
// live without walking the table.
struct iova_magazine {
  uint32_t count = 0;
  uint64_t pfns[kIovaMagSize];
  std::atomic<uint8_t>* states[kIovaMagSize];

  bool full() const noexcept { return count == kIovaMagSize; }
  bool empty() const noexcept { return count == 0; }
  void push(uint64_t pfn, std::atomic<uint8_t>* st) noexcept {
    pfns[count] = pfn;
    states[count++] = st;
  }
  // Pops the most recently pushed pfn whose range [pfn, pfn + size) ends at
  // or below limit_pfn (inclusive), as the kernel's iova_magazine_pop; false
  // if none does.
  bool pop_fitting(uint64_t size, uint64_t limit_pfn, uint64_t* out, std::atomic<uint8_t>** st) noexcept {
    for (uint32_t i = count; i-- > 0;) {
      if (pfns[i] + (size - 1) <= limit_pfn) {
        *out = pfns[i];
        *st = states[i];
        --count;
        pfns[i] = pfns[count];
        states[i] = states[count];
        return true;
      }
    }
    return false;
  }
};

// Magazine allocation policy for the depot (tests inject failures).
struct iova_default_mag_alloc {
  static iova_magazine* allocate() noexcept { return new (std::nothrow) iova_magazine; }
  static void deallocate(iova_magazine* m) noexcept { delete m; }
};

// One thread's magazines. Guarded by m (invariant 2).
struct iova_cpu_cache {
  std::mutex m;
  std::array<std::array<iova_magazine, 2>, kIovaCacheClasses> mags{};
  std::array<uint8_t, kIovaCacheClasses> loaded{};  // index of the loaded magazine per class
  iova_magazine& loaded_mag(int c) noexcept { return mags[c][loaded[c]]; }
  iova_magazine& prev_mag(int c) noexcept { return mags[c][loaded[c] ^ 1]; }
  void swap(int c) noexcept { loaded[c] ^= 1; }
};

// Type-erased owner so a thread's exit hook can hand its block back to
// whichever cache created it.
struct iova_cache_owner {
  virtual ~iova_cache_owner() = default;
  virtual void thread_exit(const std::shared_ptr<iova_cpu_cache>& c) noexcept = 0;
};

struct iova_tls_entry {
  const void* key;  // the owning cache's identity (its state object)
  std::weak_ptr<iova_cache_owner> owner;
  std::shared_ptr<iova_cpu_cache> cache;
};

// Per-thread list of blocks, one per live cache this thread used; the
// destructor (thread exit) returns every block's ranges to its cache's domain.
struct iova_tls_list {
  std::vector<iova_tls_entry> entries;
  ~iova_tls_list() {
    for (auto& e : entries) {
      if (auto o = e.owner.lock()) o->thread_exit(e.cache);
    }
  }
};

inline iova_tls_list& iova_tls() noexcept {
  static thread_local iova_tls_list list;
  return list;
}

}  // namespace rcukit::detail
