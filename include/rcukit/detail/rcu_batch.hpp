// SPDX-License-Identifier: MIT
// rcukit/detail/rcu_batch.hpp -- batched RCU retire: many objects, one
// rcu_head, and a bounded shared depot for what comes back.
//
// The idea. A writer that retires an object on every update pays, through
// rcu::retire_with, one enqueue on liburcu's shared callback queue each time.
// Here each thread collects what it retires in a batch (cap objects, one
// rcu_head); a full batch goes through one rcu::retire_with. When its grace
// period ends the callback accounts for the objects (Policy::
// grace_period_over) and parks the batch in a process-wide depot, unless the
// depot already holds Policy::depot_max_bytes: then it frees the objects
// itself (Policy::free_foreign). Any thread's next update takes the parked
// batches (drain()) and frees their objects through Policy::free_owned
// (e.g. into its thread-local cache), so a busy writer keeps reusing the
// blocks it retires, and a thread that goes idle holds none of them.
// rcu::barrier() runs the depot's trim once the callbacks ran (rcu.hpp,
// run_barrier_hooks), which frees whatever is parked: after it, every
// retired object that was handed to RCU before it is freed or reused.
//
// The allocator is the Policy (all members static and noexcept):
//   cap                               objects per batch (constexpr unsigned)
//   depot_max_bytes                   the depot's bound (constexpr size_t)
//   holding                           a statistic with a member
//                                     std::atomic<std::size_t> bytes, summed
//                                     by the allocator while linked
//   link(holding*), unlink(holding*)  add it to / remove it from that sum
//   meta_allocate(bytes), meta_free(p, bytes)
//                                     memory for batches
//   object_bytes(size)                what one queued object of `size`
//                                     counts in a holding
//   grace_period_over(n)              n objects passed their grace period
//                                     (liburcu's callback thread)
//   free_owned(p, size)               frees on a thread that updates
//   free_foreign(p, size)             frees on any thread
//
// Invariants:
//  (R1) An object in a batch is unreachable for new readers; it is freed
//       only after the grace period of the batch's rcu::retire_with.
//  (R2) A batch is in exactly one place: a thread's open or spare slot,
//       liburcu's queue, or the depot. Only its thread touches a batch in
//       its slots; the depot hands parked batches to a drainer (a release
//       push, an acquire exchange that takes the whole list).
//  (R3) A thread's holding counts its open and spare batch structures and
//       object_bytes() of the objects in its open batch; only that thread
//       writes it (relaxed load and store). The depot's holding counts every
//       queued and parked batch (structure and objects); it is written with
//       relaxed read-modify-writes by any thread.
//  (R4) The depot parks at most depot_max_bytes: a callback reserves its
//       batch's bytes in `parked` before pushing it, and frees the batch
//       instead if the reservation would exceed the bound; a drainer
//       releases the bytes of what it took after taking it. So `parked` is
//       never below the bytes actually in the list.
// Nothing here takes a lock: a callback preempted on this 2-CPU machine
// must not make a writer spin.
// Not supported: a thread that retired objects and then never calls
// retire(), flush() or drain() again keeps its open batch (at most cap - 1
// objects, not yet handed to RCU) and one spare batch structure until it
// exits: bounded, and counted in its holding.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "rcukit/rcu.hpp"

namespace rcukit::detail {

template <class Policy>
struct rcu_batch : rcu::retirable {
  rcu_batch* next = nullptr;  // in the depot
  unsigned n = 0;
  std::size_t bytes = 0;             // this structure plus object_bytes() of its objects
  void* objs[Policy::cap];           // queued objects
  std::uint32_t sizes[Policy::cap];  // their sizes
};

// Adds d to a holding written by the calling thread alone (R3).
template <class Holding>
inline void rcu_batch_add_own(Holding& h, std::ptrdiff_t d) noexcept {
  // relaxed load and store: a single writer; readers sum holdings as a
  // statistic (exact when the writers are quiescent).
  h.bytes.store(h.bytes.load(std::memory_order_relaxed) + static_cast<std::size_t>(d),
                std::memory_order_relaxed);
}

// Frees a batch's objects (already accounted as past their grace period)
// through free_owned (owner) or free_foreign; returns their object_bytes().
template <class Policy>
inline std::size_t rcu_batch_free_objects(rcu_batch<Policy>* b, bool owner) noexcept {
  std::size_t bytes = 0;
  for (unsigned i = 0; i < b->n; ++i) {
    bytes += Policy::object_bytes(b->sizes[i]);
    if (owner) {
      Policy::free_owned(b->objs[i], b->sizes[i]);
    } else {
      Policy::free_foreign(b->objs[i], b->sizes[i]);
    }
  }
  b->n = 0;
  return bytes;
}

template <class Policy>
inline void rcu_batch_free(rcu_batch<Policy>* b) noexcept {
  b->~rcu_batch<Policy>();
  Policy::meta_free(b, sizeof(rcu_batch<Policy>));
}

// The process-wide depot of batches past their grace period (one per
// Policy). Constant-initialized and trivially destructible: usable from
// callbacks and thread exits at any time, and never destroyed; what it
// parks at process exit stays reachable from it.
template <class Policy>
struct rcu_batch_depot {
  // Parked batches: a stack pushed by callbacks (release CAS), taken whole
  // by drainers (acquire exchange; no single pop, so no ABA).
  std::atomic<rcu_batch<Policy>*> head{nullptr};
  std::atomic<std::size_t> parked{0};  // bytes reserved by parked batches (R4)
  typename Policy::holding held;  // R3; linked once, by the first thread that opens a batch
};
template <class Policy>
inline constinit rcu_batch_depot<Policy> rcu_batch_depot_v{};

// Frees every batch parked in the depot (objects through free_foreign):
// rcu::barrier() calls it once the callbacks ran.
template <class Policy>
inline void rcu_batch_depot_trim() noexcept {
  rcu_batch_depot<Policy>& d = rcu_batch_depot_v<Policy>;
  // relaxed: only a hint; the exchange below acquires.
  if (d.head.load(std::memory_order_relaxed) == nullptr) return;
  // acquire: pairs with the release CAS in rcu_batch_done().
  rcu_batch<Policy>* l = d.head.exchange(nullptr, std::memory_order_acquire);
  std::size_t bytes = 0;
  while (l != nullptr) {
    rcu_batch<Policy>* next = l->next;
    bytes += l->bytes;
    rcu_batch_free_objects(l, /*owner=*/false);
    rcu_batch_free(l);
    l = next;
  }
  // relaxed: releases the reservations of the batches taken (R4).
  d.parked.fetch_sub(bytes, std::memory_order_relaxed);
  // relaxed RMW: a statistic written by every thread (R3).
  d.held.bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

template <class Policy>
inline void rcu_batch_depot_link() noexcept {
  // Thread-safe one-time initialization (a function-local static).
  static const bool linked = (Policy::link(&rcu_batch_depot_v<Policy>.held),
                              rcu::detail::add_barrier_hook(&rcu_batch_depot_trim<Policy>), true);
  (void)linked;
}

// RCU callback (liburcu's callback thread): the batch's grace period ended.
// Parks it in the depot, or frees it when the depot is full (R4).
template <class Policy>
inline void rcu_batch_done(rcu_batch<Policy>* b) noexcept {
  Policy::grace_period_over(b->n);
  rcu_batch_depot<Policy>& d = rcu_batch_depot_v<Policy>;
  const std::size_t bytes = b->bytes;
  // relaxed: the bound is a statistic-like reservation (R4); the batch
  // itself is handed over by the release CAS below.
  if (d.parked.fetch_add(bytes, std::memory_order_relaxed) + bytes <= Policy::depot_max_bytes) {
    rcu_batch<Policy>* head = d.head.load(std::memory_order_relaxed);  // only the CAS's expected value
    do {
      b->next = head;
      // release: hands the batch (and the end of its grace period, which the
      // rcu layer made happen-before this callback) to the acquire exchange
      // in drain(); relaxed on failure (head is only the next guess).
    } while (!d.head.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_relaxed));
    return;
  }
  d.parked.fetch_sub(bytes, std::memory_order_relaxed);  // the reservation failed (R4)
  rcu_batch_free_objects(b, /*owner=*/false);
  rcu_batch_free(b);
  // relaxed RMW: a statistic written by every thread (R3).
  d.held.bytes.fetch_sub(bytes, std::memory_order_relaxed);
}

// The calling thread's batches for one flavour and policy: plain
// thread-local state, constant-initialized and trivially destructible, so
// it stays valid (and says "exited") when it is used after this thread's
// thread-locals were destroyed, e.g. by a static structure at process exit.
template <class Policy>
struct rcu_batch_state {
  rcu_batch<Policy>* open;        // being filled
  rcu_batch<Policy>* spare;       // an emptied batch kept for reuse
  typename Policy::holding held;  // R3; linked while phase == 1
  unsigned char phase;            // 0 = unused yet, 1 = on, 2 = thread exited
};
template <class Rcu, class Policy>
inline thread_local constinit rcu_batch_state<Policy> rcu_batch_tls{};

// Batched retire for flavour Rcu; retire and flush act on the calling
// thread's batches, drain on the shared depot. Writers only, outside or
// inside a read side. Never blocks, never takes a lock.
template <class Rcu, class Policy>
class rcu_batch_retirer {
  using batch = rcu_batch<Policy>;

 public:
  // Queues allocation `mem` of `bytes` (unreachable for new readers) for
  // freeing after a grace period. False if it could not be batched (no
  // memory for a batch, or the thread is exiting): the caller then retires
  // the object alone (rcu::retire_with does not allocate).
  static bool retire(void* mem, std::size_t bytes) noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.open == nullptr && !open_batch(st)) return false;
    batch* b = st.open;
    const std::size_t ob = Policy::object_bytes(bytes);
    b->sizes[b->n] = static_cast<std::uint32_t>(bytes);
    b->objs[b->n++] = mem;
    b->bytes += ob;
    rcu_batch_add_own(st.held, static_cast<std::ptrdiff_t>(ob));  // R3
    if (b->n == Policy::cap) flush();
    return true;
  }

  // Hands the calling thread's open batch (if any) to RCU; its bytes move
  // from the thread's holding to the depot's (R3).
  static void flush() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.open == nullptr || st.open->n == 0) return;
    batch* b = st.open;
    st.open = nullptr;
    rcu_batch_add_own(st.held, -static_cast<std::ptrdiff_t>(b->bytes));  // R3
    // relaxed RMW: a statistic written by every thread (R3).
    rcu_batch_depot_v<Policy>.held.bytes.fetch_add(b->bytes, std::memory_order_relaxed);
    rcu::retire_with<&rcu_batch_done<Policy>, Rcu>(b);
  }

  // Takes every batch parked in the depot and frees their objects through
  // Policy::free_owned on the calling thread (into its cache; what does not
  // fit goes back to malloc from this thread). One relaxed load when the
  // depot is empty. A thread that never opened a batch, or is exiting,
  // leaves the depot alone.
  static void drain() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.phase != 1) return;
    rcu_batch_depot<Policy>& d = rcu_batch_depot_v<Policy>;
    // relaxed: only a hint; the exchange below acquires.
    if (d.head.load(std::memory_order_relaxed) == nullptr) return;
    // acquire: pairs with the release CAS in rcu_batch_done().
    batch* l = d.head.exchange(nullptr, std::memory_order_acquire);
    std::size_t bytes = 0;
    for (batch* b = l; b != nullptr; b = b->next) bytes += b->bytes;
    // relaxed: releases the reservations of the batches taken (R4).
    d.parked.fetch_sub(bytes, std::memory_order_relaxed);
    while (l != nullptr) {
      batch* next = l->next;
      rcu_batch_free_objects(l, /*owner=*/true);
      if (st.spare == nullptr) {
        l->bytes = sizeof(batch);
        l->next = nullptr;
        st.spare = l;
        rcu_batch_add_own(st.held, static_cast<std::ptrdiff_t>(sizeof(batch)));  // R3
      } else {
        rcu_batch_free(l);
      }
      l = next;
    }
    // relaxed RMW: a statistic written by every thread (R3).
    d.held.bytes.fetch_sub(bytes, std::memory_order_relaxed);
  }

 private:
  struct exit_guard {
    ~exit_guard() { thread_exit(); }
  };

  static void thread_exit() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    flush();
    for (batch* b : {st.open, st.spare}) {  // empty (or null)
      if (b == nullptr) continue;
      rcu_batch_free(b);
      rcu_batch_add_own(st.held, -static_cast<std::ptrdiff_t>(sizeof(batch)));  // R3
    }
    st.open = st.spare = nullptr;
    st.phase = 2;
    Policy::unlink(&st.held);
  }

  static bool open_batch(rcu_batch_state<Policy>& st) noexcept {
    if (st.phase == 2) return false;
    if (st.phase == 0) {
      rcu_batch_depot_link<Policy>();
      Policy::link(&st.held);
      st.phase = 1;
      static thread_local exit_guard guard;  // thread_exit() at thread exit
      (void)guard;
    }
    if (st.spare != nullptr) {
      st.open = st.spare;
      st.spare = nullptr;
    } else {
      void* m = Policy::meta_allocate(sizeof(batch));
      if (m == nullptr) return false;
      st.open = new (m) batch();
      rcu_batch_add_own(st.held, static_cast<std::ptrdiff_t>(sizeof(batch)));  // R3
    }
    st.open->n = 0;
    st.open->bytes = sizeof(batch);
    st.open->next = nullptr;
    return true;
  }
};

}  // namespace rcukit::detail
