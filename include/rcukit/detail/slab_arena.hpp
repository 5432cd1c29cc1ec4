// rcukit/detail/slab_arena.hpp -- a reference-counted slab of fixed size
// classes, carved from large chunks, for the nodes of one skiplist.
//
// The idea: the index structures here are walked by lookups that miss the
// cache at every node they reach, and in a large structure they miss the TLB
// too (a page walk, nested under a hypervisor, before the line is even
// requested). The kernel's own index structures live in its linear map,
// which is mapped with huge pages; this arena gives user-space nodes the
// same: nodes of one kind are packed into chunks, and chunks of at least
// kHugePage bytes are aligned to it and advised as transparent huge pages
// (Linux; elsewhere, and when THP is off, they are ordinary pages). So a
// structure of a few hundred MB spans a few hundred TLB entries instead of
// ~10^5. Smaller objects (the skiplist's towers) use the same arena with
// small chunks only for packing.
//
// Size classes: Classes fixed sizes given at creation, each a multiple of
// the arena's alignment; a free list per class, bump allocation from chunks
// that double from kFirstChunk up to the arena's max chunk; all behind one
// spin lock (callers allocate outside their own locks; frees come from RCU
// callbacks). Chunks come from Traits::allocate, so allocation-failure
// injection reaches them.
// Lifetime: reference counted, one reference held by the owner and one by
// every object carved and not yet freed; whoever drops the last reference
// frees the chunks and the arena. So an RCU callback that frees an object
// after its owner was destroyed still finds the arena.
//
// Invariants:
//  (1) refs == 1 (the owner, until it releases) + objects carved and not
//      freed; the arena is freed exactly when refs hits 0.
//  (2) every object is aligned to the arena's alignment and lies inside one
//      chunk.
// Not supported: returning chunk memory before the arena dies (freed
// objects go to the free list of their class and are reused).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "rcukit/detail/spin_lock.hpp"

namespace rcukit::detail {

template <class Traits, unsigned Classes>
class slab_arena {
 public:
  static constexpr std::size_t kFirstChunk = 4096;
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;

  // A new arena holding the owner's reference; nullptr if allocation
  // failed. size[c]: the bytes of class c (a multiple of align, which is a
  // power of two); max_chunk: the largest chunk.
  static slab_arena* create(const std::array<std::size_t, Classes>& size, std::size_t align,
                            std::size_t max_chunk) noexcept {
    void* m = Traits::allocate(sizeof(slab_arena));
    if (m == nullptr) return nullptr;
    return new (m) slab_arena(size, align, max_chunk);
  }

  // Memory for one object of class c; nullptr if a new chunk was needed and
  // its allocation failed. Takes a reference. Blocking (the arena's spin
  // lock, and the allocator).
  void* allocate(unsigned c) noexcept {
    lock_.lock();
    void* p = free_[c];
    if (p != nullptr) {
      free_[c] = *static_cast<void**>(p);
    } else {
      const std::size_t need = size_[c];
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
  // Returns an object's memory (already destroyed) to class c; drops its reference.
  void deallocate(void* p, unsigned c) noexcept {
    lock_.lock();
    *static_cast<void**>(p) = free_[c];
    free_[c] = p;
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
    this->~slab_arena();
    Traits::deallocate(this);
  }

 private:
  slab_arena(const std::array<std::size_t, Classes>& size, std::size_t align, std::size_t max_chunk) noexcept
      : align_(align), max_chunk_(max_chunk) {
    for (unsigned c = 0; c < Classes; ++c) size_[c] = size[c];
  }

  // Under lock_: a new chunk with at least `need` usable bytes. Its first
  // word links the chunk list; objects start at the next multiple of the
  // alignment (of kHugePage for a huge chunk). The old chunk's tail is dropped.
  bool grow(std::size_t need) noexcept {
    std::size_t sz = next_chunk_ < max_chunk_ ? next_chunk_ : max_chunk_;
    if (sz < need) sz = need;
    const bool huge = sz >= kHugePage && sz % kHugePage == 0;
    const std::size_t align = huge ? kHugePage : align_;
    // Room for the link word and for aligning; a huge chunk's slack is
    // address space that is never touched.
    void* c = Traits::allocate(sz + align + sizeof(void*));
    if (c == nullptr) return false;
    *static_cast<void**>(c) = chunks_;
    chunks_ = c;
    const auto base = reinterpret_cast<uintptr_t>(c) + sizeof(void*);
    const auto a = (base + align - 1) & ~uintptr_t{align - 1};
    cur_ = reinterpret_cast<char*>(a);
    left_ = sz;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // A hint: failure (THP off or unsupported) leaves ordinary pages.
    if (huge) (void)::madvise(cur_, sz, MADV_HUGEPAGE);
#endif
    if (next_chunk_ < max_chunk_) next_chunk_ *= 2;
    return true;
  }

  spin_lock lock_;
  std::atomic<long> refs_{1};  // invariant 1
  std::size_t size_[Classes] = {};
  std::size_t align_;
  std::size_t max_chunk_;
  std::size_t next_chunk_ = kFirstChunk;
  void* chunks_ = nullptr;
  char* cur_ = nullptr;
  std::size_t left_ = 0;
  void* free_[Classes] = {};
};

}  // namespace rcukit::detail
