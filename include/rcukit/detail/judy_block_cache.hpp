// SPDX-License-Identifier: MIT
// rcukit/detail/judy_block_cache.hpp -- the Judy array's allocator: a
// per-thread block cache over malloc, with byte accounting and a fault
// injection hook, and the batched retire (detail/rcu_batch.hpp) bound to it.
//
// The idea. Nodes and leaves are allocated and retired on nearly every
// update. Each thread keeps the blocks it freed in exact 16-byte size
// classes and reuses them. What threads retire waits for its grace period
// in batches (rcu_batch.hpp); past it, a batch is parked in a process-wide
// depot (up to judy_depot_max_bytes; a callback frees what would not fit)
// and updates take parked batches into their caches, so busy writers keep
// reusing blocks. rcu::barrier() frees what is parked, so a thread that
// goes idle holds no retired object past its grace period.
// judy_alloc::live counts objects not yet past their grace period; every
// byte taken from malloc is accounted for in one of three states (nodes,
// cached, pending: "Memory accounting" below).
//
// Bounds. After the last update of a thread and rcu::barrier(), the thread
// holds at most judy_idle_thread_max_bytes(largest object): its cache, its
// open batch (fewer than judy_batch_policy::cap retired objects not yet
// handed to RCU: its next update, flush, exit or destruction of a
// judy_array hands them over) and two batch structures; the depot is empty.
// Not supported: returning cached memory before the thread exits
// (judy_cache_trim() empties the caller's cache).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "rcukit/detail/rcu_batch.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/detail/striped_counter.hpp"

namespace rcukit::detail {

// ---------------------------------------------------------------------------
// Memory accounting. Every byte the judy allocator takes from malloc is, at
// any time, in exactly one of these states:
//   (M1) a node or leaf: counted by its judy_array (node_bytes(), once
//        published; an update's unpublished objects are in flight);
//   (M2) a free block in a thread's block cache: that cache's holding;
//   (M3) retired and not yet back in a cache or freed: in a thread's open
//        batch, with its open and spare batch structures (that thread's
//        batch holding); in a batch waiting for its grace period or parked
//        in the depot (the depot's holding); or retired alone through
//        call_rcu (no batch could be had): judy_alloc::solo_pending.
// Holdings (M2, M3) sit in one process-wide list, so judy_alloc::held_bytes()
// can sum them. A thread's holdings are written by that thread only (a
// relaxed load and store: no read-modify-write on the hot path); the
// depot's with relaxed read-modify-writes, once per batch (rcu_batch.hpp,
// invariant R3). judy_alloc::malloc_bytes()
// counts the same bytes from the other side (malloc'd minus freed, at the
// calls), so tests can check that the states add up. Sizes are the block
// sizes requested from malloc (judy_block_bytes), not malloc's chunk headers.
// ---------------------------------------------------------------------------
struct judy_holding {
  std::atomic<std::size_t> bytes{0};
  judy_holding* prev = nullptr;  // list links: guarded by judy_holdings_lock
  judy_holding* next = nullptr;
};
inline constinit spin_lock judy_holdings_lock;
inline constinit judy_holding* judy_holdings_head = nullptr;

inline void judy_holding_link(judy_holding* h) noexcept {
  judy_holdings_lock.lock();
  h->prev = nullptr;
  h->next = judy_holdings_head;
  if (h->next != nullptr) h->next->prev = h;
  judy_holdings_head = h;
  judy_holdings_lock.unlock();
}
inline void judy_holding_unlink(judy_holding* h) noexcept {
  judy_holdings_lock.lock();
  if (h->prev != nullptr) {
    h->prev->next = h->next;
  } else {
    judy_holdings_head = h->next;
  }
  if (h->next != nullptr) h->next->prev = h->prev;
  h->prev = h->next = nullptr;
  judy_holdings_lock.unlock();
}
// Adds d to a holding written by the calling thread alone.
inline void judy_holding_add_own(judy_holding& h, std::ptrdiff_t d) noexcept { rcu_batch_add_own(h, d); }

// Bytes obtained from malloc and not yet freed by the judy allocator (all
// of M1-M3). Touched only at malloc and free, which cost far more.
inline constinit striped_counter<> judy_malloc_count{};
inline void* judy_sys_malloc(std::size_t bytes) noexcept {
  void* p = std::malloc(bytes);
  if (p != nullptr) judy_malloc_count.add(static_cast<std::ptrdiff_t>(bytes));
  return p;
}
inline void judy_sys_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  judy_malloc_count.add(-static_cast<std::ptrdiff_t>(bytes));
  std::free(p);
}

// ---------------------------------------------------------------------------
// Per-thread block cache. Every update allocates a leaf and frees the one
// it replaced a grace period later (docs/DESIGN.md says why not malloc
// alone). Each thread keeps freed blocks in exact 16-byte size classes (up to
// judy_cache_max_bytes in all) and reuses them. Plain thread-local data,
// constant-initialized and trivially destructible, so it stays usable while
// other thread-locals are destroyed; a guard empties and disables it at
// thread exit.
// ---------------------------------------------------------------------------
inline constexpr std::size_t judy_cache_classes =
    134;  // 16-byte classes up to 2120 bytes (a bitmap leaf of 8-byte values: 2112)
inline constexpr std::size_t judy_cache_max_bytes = 256 * 1024;

struct judy_block_cache {
  void* heads[judy_cache_classes];  // free blocks, linked through their first word
  judy_holding held;                // bytes in all classes (M2), linked while state == 1
  unsigned char state;              // 0 = unused yet, 1 = on, 2 = off (thread exiting)
};
inline thread_local constinit judy_block_cache judy_tls_cache{};

// Class c holds blocks of 16c - 8 bytes: glibc's malloc adds an 8-byte size
// word to a request and rounds the sum up to 16, so a request of 16c - 8
// bytes fills a 16c-byte chunk exactly, where one of 16c bytes (the classes
// before 2026-12-07) took a (16c + 16)-byte chunk: 16 bytes more per leaf
// and node, ~1 byte per key at 10^6 random keys (docs/RESULTS.md, issue 26).
inline constexpr std::size_t judy_size_class(std::size_t bytes) noexcept { return (bytes + 8 + 15) / 16; }
inline constexpr std::size_t judy_class_bytes(std::size_t c) noexcept { return c * 16 - 8; }
// The size of the block the allocator takes from malloc for `bytes`.
inline constexpr std::size_t judy_block_bytes(std::size_t bytes) noexcept {
  const std::size_t c = judy_size_class(bytes);
  return c < judy_cache_classes ? judy_class_bytes(c) : bytes;
}
static_assert(judy_block_bytes(8) == 8 && judy_block_bytes(9) == 24 && judy_block_bytes(2112) == 2120);

// Frees every block in the calling thread's cache (the cache stays on).
// Memory measurements call it to start cold.
inline void judy_cache_trim() noexcept {
  judy_block_cache& c = judy_tls_cache;
  for (std::size_t k = 0; k < judy_cache_classes; ++k) {
    while (c.heads[k] != nullptr) {
      void* next = *static_cast<void**>(c.heads[k]);
      judy_sys_free(c.heads[k], judy_class_bytes(k));
      c.heads[k] = next;
    }
  }
  judy_holding_add_own(c.held, -static_cast<std::ptrdiff_t>(c.held.bytes.load(std::memory_order_relaxed)));
}

struct judy_block_cache_guard {
  ~judy_block_cache_guard() {
    judy_cache_trim();
    judy_tls_cache.state = 2;
    judy_holding_unlink(&judy_tls_cache.held);
  }
};

// A block of at least `bytes` (judy_block_bytes(bytes)), or nullptr.
inline void* judy_cache_get(std::size_t bytes) noexcept {
  const std::size_t c = judy_size_class(bytes);
  judy_block_cache& tc = judy_tls_cache;
  if (c < judy_cache_classes && tc.state == 1 && tc.heads[c] != nullptr) {
    void* p = tc.heads[c];
    tc.heads[c] = *static_cast<void**>(p);
    judy_holding_add_own(tc.held, -static_cast<std::ptrdiff_t>(judy_class_bytes(c)));
    return p;
  }
  if (tc.state == 0) {
    static thread_local judy_block_cache_guard guard;  // empties the cache at thread exit
    (void)guard;
    judy_holding_link(&tc.held);
    tc.state = 1;
  }
  return judy_sys_malloc(judy_block_bytes(bytes));
}

// Gives back a block from judy_cache_get(bytes): into this thread's cache,
// or to free() when the cache is full, off, or the block too big.
inline void judy_cache_put(void* p, std::size_t bytes) noexcept {
  const std::size_t c = judy_size_class(bytes);
  judy_block_cache& tc = judy_tls_cache;
  if (c < judy_cache_classes && tc.state == 1 &&
      tc.held.bytes.load(std::memory_order_relaxed) + judy_class_bytes(c) <= judy_cache_max_bytes) {  // own holding
    *static_cast<void**>(p) = tc.heads[c];
    tc.heads[c] = p;
    judy_holding_add_own(tc.held, static_cast<std::ptrdiff_t>(judy_class_bytes(c)));
    return;
  }
  judy_sys_free(p, judy_block_bytes(bytes));
}

// ---------------------------------------------------------------------------
// Allocation hook. Every node and leaf of every judy_array is allocated here,
// so tests can make the n-th allocation of the calling thread fail.
// ---------------------------------------------------------------------------
struct judy_alloc {
  // Live allocations (all arrays): tests check live.load() is 0 after the
  // arrays are destroyed and rcu::barrier() returned. A retired object stops
  // counting when its grace period ends (judy_batch_policy::grace_period_over),
  // even if it waits in the depot and a writer frees it later (judy_reclaimer).
  static inline striped_counter<> live{};
  // Block bytes of objects retired alone through call_rcu (M3).
  static inline striped_counter<> solo_pending{};
  // Per-thread fault injection: -1 = never fail; n >= 0 = the (n+1)-th
  // allocation by this thread fails (and the countdown then disarms).
  static inline thread_local long fail_countdown = -1;

  static void fail_after(long n) noexcept { fail_countdown = n; }
  static void* allocate(std::size_t bytes) noexcept {
    if (fail_countdown >= 0) {
      if (fail_countdown == 0) {
        fail_countdown = -1;
        return nullptr;
      }
      --fail_countdown;
    }
    void* p = judy_cache_get(bytes);
    if (p != nullptr) live.add(1);
    return p;
  }
  // Frees a block of `bytes` from allocate() on the calling thread (cached).
  static void deallocate(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    live.add(-1);
    judy_cache_put(p, bytes);
  }
  // Frees an object of `bytes` retired alone (solo_pending), from liburcu's
  // callback thread: straight to free(), so that thread keeps no cache.
  static void deallocate_retired_alone(void* p, std::size_t bytes) noexcept {
    if (p == nullptr) return;
    live.add(-1);
    solo_pending.add(-static_cast<std::ptrdiff_t>(judy_block_bytes(bytes)));
    judy_sys_free(p, judy_block_bytes(bytes));
  }

  // Bytes held besides nodes and leaves (M2 and M3), in the whole process:
  // every thread's block cache, every pending retired object and batch
  // structure. Exact when no judy_array update or judy RCU callback runs
  // (e.g. after joining the writers and rcu::barrier()). Blocking (a process-wide lock, held for
  // one pass over a list with one entry per thread and flavour).
  static std::size_t held_bytes() noexcept {
    std::size_t n = 0;
    judy_holdings_lock.lock();
    for (const judy_holding* h = judy_holdings_head; h != nullptr; h = h->next) {
      n += h->bytes.load(std::memory_order_relaxed);  // statistic, see above
    }
    judy_holdings_lock.unlock();
    return n + static_cast<std::size_t>(solo_pending.load());
  }
  // Bytes malloc'd minus freed by the judy allocator (M1 + M2 + M3), counted
  // at the malloc and free calls: the allocator-side figure tests compare
  // with judy_array::memory_bytes().
  static std::size_t malloc_bytes() noexcept { return static_cast<std::size_t>(judy_malloc_count.load()); }
};

// The batched retire of judy_array (rcu_batch.hpp) over this allocator:
// batch structures come from malloc (counted in judy_malloc_count), each
// thread's batch holding and the depot's are process-wide holdings (M3),
// parked objects go into the draining writer's block cache, a callback
// that finds the depot full frees its batch's objects to malloc, and
// rcu::barrier() frees what is parked. The bound is large because one
// grace period of a busy writer returns a few MB at once here: a 256 KiB
// depot overflowed on every burst, and the callback's frees (against the
// writer's mallocs, for glibc's arena) slowed a 10^6-key build 1.5-1.7x.
inline constexpr std::size_t judy_depot_max_bytes = 16 * 1024 * 1024;
struct judy_batch_policy {
  static constexpr unsigned cap = 64;
  static constexpr std::size_t depot_max_bytes = judy_depot_max_bytes;
  using holding = judy_holding;
  static void link(judy_holding* h) noexcept { judy_holding_link(h); }
  static void unlink(judy_holding* h) noexcept { judy_holding_unlink(h); }
  static void* meta_allocate(std::size_t bytes) noexcept { return judy_sys_malloc(bytes); }
  static void meta_free(void* p, std::size_t bytes) noexcept { judy_sys_free(p, bytes); }
  static std::size_t object_bytes(std::size_t bytes) noexcept { return judy_block_bytes(bytes); }
  // A retired object stops counting as live when its grace period ends,
  // even if it is parked in the depot and freed later.
  static void grace_period_over(unsigned n) noexcept {
    judy_alloc::live.add(-static_cast<std::ptrdiff_t>(n));
  }
  static void free_owned(void* p, std::size_t bytes) noexcept { judy_cache_put(p, bytes); }
  static void free_foreign(void* p, std::size_t bytes) noexcept { judy_sys_free(p, judy_block_bytes(bytes)); }
};
// At most what a thread that updated judy arrays holds once it stopped
// updating and rcu::barrier() returned, when no retired object exceeds
// `largest` bytes: its block cache, an open batch of fewer than cap
// objects, and its open and spare batch structures. (rcu::barrier() empties
// the process-wide depot.)
constexpr std::size_t judy_idle_thread_max_bytes(std::size_t largest) noexcept {
  return judy_cache_max_bytes + (judy_batch_policy::cap - 1) * judy_block_bytes(largest) +
         2 * sizeof(rcu_batch<judy_batch_policy>);
}
template <class Rcu>
using judy_reclaimer = rcu_batch_retirer<Rcu, judy_batch_policy>;

}  // namespace rcukit::detail
