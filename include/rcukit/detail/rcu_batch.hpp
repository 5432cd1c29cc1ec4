// SPDX-License-Identifier: MIT
// rcukit/detail/rcu_batch.hpp -- batched RCU retire: many objects, one
// rcu_head, freed by the thread that retired them.
//
// The idea. A writer that retires an object on every update pays, through
// rcu::retire_with, one enqueue on liburcu's shared callback queue each time,
// and liburcu's callback thread ends up freeing memory that the writers
// allocate. Here each thread collects what it retires in a batch (cap
// objects, one rcu_head); a full batch goes through one rcu::retire_with;
// when its grace period ends the callback only accounts for the objects
// (Policy::grace_period_over) and pushes the batch back onto its owner's
// "returned" list, and the owner frees the objects itself (Policy::
// free_owned, e.g. into a thread-local cache) when it next calls drain(). A
// thread that exits hands its open batch to RCU and marks its list orphaned,
// after which callbacks free directly (Policy::free_foreign).
//
// The allocator is the Policy (all members static and noexcept):
//   cap                               objects per batch (constexpr unsigned)
//   holding                           a statistic with a member
//                                     std::atomic<std::size_t> bytes, summed
//                                     by the allocator while linked
//   link(holding*), unlink(holding*)  add it to / remove it from that sum
//   meta_allocate(bytes), meta_free(p, bytes)
//                                     memory for batches and boxes
//   object_bytes(size)                what one queued object of `size`
//                                     counts in the holding
//   grace_period_over(n)              n objects passed their grace period
//                                     (liburcu's callback thread)
//   free_owned(p, size)               frees on the owner thread
//   free_foreign(p, size)             frees on any thread
//
// Invariants:
//  (R1) An object in a batch is unreachable for new readers; it is freed
//       only after the grace period of the batch's rcu::retire_with.
//  (R2) A batch is in exactly one place: its owner's open slot, liburcu's
//       queue, the owner's returned list, or the owner's spare slot.
//  (R3) A box (the returned list) lives while its owner thread lives or a
//       batch of it is queued (refs counts both).
//  (R4) The box's holding counts the box, every batch structure of its
//       thread, and object_bytes() of every object in them. Its owner
//       writes it alone until it marks the list orphaned (an acq_rel
//       exchange); from then on every writer uses read-modify-writes.
// Not supported: a thread that retired objects and then never calls
// retire(), flush() or drain() again keeps up to one open batch (cap
// objects) until it exits, and its returned batches until then: memory is
// bounded, not returned promptly.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <new>

#include "rcukit/rcu.hpp"

namespace rcukit::detail {

template <class Policy>
struct rcu_batch_box;

template <class Policy>
struct rcu_batch : rcu::retirable {
  rcu_batch* next = nullptr;             // in the owner's returned list
  rcu_batch_box<Policy>* box = nullptr;  // the owner's
  unsigned n = 0;
  void* objs[Policy::cap];           // queued objects
  std::uint32_t sizes[Policy::cap];  // their sizes
};

template <class Policy>
struct rcu_batch_box {
  // Batches past their grace period: pushed by callbacks (release), taken
  // whole by the owner (acquire exchange). orphan() once the owner exited.
  std::atomic<rcu_batch<Policy>*> returned{nullptr};
  // The owner's reference plus one per queued batch (invariant R3).
  std::atomic<long> refs{1};
  typename Policy::holding held;  // invariant R4; linked for the box's whole life

  static rcu_batch<Policy>* orphan() noexcept {
    return reinterpret_cast<rcu_batch<Policy>*>(std::uintptr_t{1});
  }
};

// Adds d to a holding written by the calling thread alone (R4).
template <class Holding>
inline void rcu_batch_add_own(Holding& h, std::ptrdiff_t d) noexcept {
  // relaxed load and store: a single writer; readers sum holdings as a
  // statistic (exact when the writers are quiescent).
  h.bytes.store(h.bytes.load(std::memory_order_relaxed) + static_cast<std::size_t>(d),
                std::memory_order_relaxed);
}

// Frees a batch's objects (already accounted as past their grace period):
// through free_owned when the caller is the owner, else free_foreign.
// Returns their object_bytes() (for the box's holding).
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

template <class Policy>
inline void rcu_batch_box_unref(rcu_batch_box<Policy>* box) noexcept {
  // acq_rel: the last decrement (acquire) sees every other holder's use of
  // the box, each of which released it with its own decrement.
  if (box->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    Policy::unlink(&box->held);
    box->~rcu_batch_box<Policy>();
    Policy::meta_free(box, sizeof(rcu_batch_box<Policy>));
  }
}

// RCU callback (liburcu's callback thread): the batch's grace period ended.
template <class Policy>
inline void rcu_batch_done(rcu_batch<Policy>* b) noexcept {
  Policy::grace_period_over(b->n);
  rcu_batch_box<Policy>* box = b->box;
  // acquire (here and on CAS failure): if the list is orphaned, pairs with
  // the owner's acq_rel exchange in thread_exit(), so its last writes to
  // the box's holding come before ours (invariant R4).
  rcu_batch<Policy>* head = box->returned.load(std::memory_order_acquire);
  for (;;) {
    if (head == rcu_batch_box<Policy>::orphan()) {
      const std::size_t bytes = rcu_batch_free_objects(b, /*owner=*/false) + sizeof(rcu_batch<Policy>);
      rcu_batch_free(b);
      // relaxed RMW: the box's holding is a statistic; after the orphan
      // mark every writer uses RMWs (R4), so none is lost.
      box->held.bytes.fetch_sub(bytes, std::memory_order_relaxed);
      break;
    }
    b->next = head;
    // release: hands the batch (and the end of its grace period, which the
    // rcu layer made happen-before this callback) to the owner's acquire
    // exchange in rcu_batch_retirer::drain().
    if (box->returned.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_acquire)) {
      break;
    }
  }
  rcu_batch_box_unref(box);
}

// The calling thread's batches for one flavour and policy: plain
// thread-local state, constant-initialized and trivially destructible, so
// it stays valid (and says "exited") when it is used after this thread's
// thread-locals were destroyed, e.g. by a static structure at process exit.
template <class Policy>
struct rcu_batch_state {
  rcu_batch_box<Policy>* box;
  rcu_batch<Policy>* open;   // being filled
  rcu_batch<Policy>* spare;  // an emptied batch kept for reuse
  unsigned char phase;       // 0 = unused yet, 1 = on, 2 = thread exited
};
template <class Rcu, class Policy>
inline thread_local constinit rcu_batch_state<Policy> rcu_batch_tls{};

// Batched retire for flavour Rcu; every member acts on the calling thread's
// batches. Never blocks (drain and flush take no lock); writers only, outside
// or inside a read side.
template <class Rcu, class Policy>
class rcu_batch_retirer {
  using batch = rcu_batch<Policy>;
  using box = rcu_batch_box<Policy>;

 public:
  // Queues allocation `mem` of `bytes` (unreachable for new readers) for
  // freeing after a grace period. False if it could not be batched (no
  // memory for a batch, or the thread is exiting): the caller then retires
  // the object alone (rcu::retire_with does not allocate).
  static bool retire(void* mem, std::size_t bytes) noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.open == nullptr && !open_batch(st)) return false;
    st.open->sizes[st.open->n] = static_cast<std::uint32_t>(bytes);
    st.open->objs[st.open->n++] = mem;
    rcu_batch_add_own(st.box->held, static_cast<std::ptrdiff_t>(Policy::object_bytes(bytes)));  // R4
    if (st.open->n == Policy::cap) flush();
    return true;
  }

  // Hands the calling thread's open batch (if any) to RCU.
  static void flush() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.open == nullptr || st.open->n == 0) return;
    batch* b = st.open;
    st.open = nullptr;
    // relaxed: call_rcu's enqueue orders this before the callback's unref.
    st.box->refs.fetch_add(1, std::memory_order_relaxed);
    rcu::retire_with<&rcu_batch_done<Policy>, Rcu>(b);
  }

  // Frees, through Policy::free_owned, the objects of the calling thread's
  // batches whose grace period ended. One relaxed load when none.
  static void drain() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    if (st.phase != 1) return;
    // relaxed: only a hint; the exchange below acquires.
    if (st.box->returned.load(std::memory_order_relaxed) == nullptr) return;
    // acquire: pairs with the release CAS in rcu_batch_done().
    batch* l = st.box->returned.exchange(nullptr, std::memory_order_acquire);
    std::size_t freed = 0;
    while (l != nullptr) {
      batch* next = l->next;
      freed += rcu_batch_free_objects(l, /*owner=*/true);
      if (st.spare == nullptr) {
        st.spare = l;
      } else {
        rcu_batch_free(l);
        freed += sizeof(batch);
      }
      l = next;
    }
    rcu_batch_add_own(st.box->held, -static_cast<std::ptrdiff_t>(freed));  // R4
  }

 private:
  struct exit_guard {
    ~exit_guard() { thread_exit(); }
  };

  static void thread_exit() noexcept {
    rcu_batch_state<Policy>& st = rcu_batch_tls<Rcu, Policy>;
    flush();
    std::size_t freed = 0;
    for (batch* b : {st.open, st.spare}) {  // empty (or null)
      if (b == nullptr) continue;
      rcu_batch_free(b);
      freed += sizeof(batch);
    }
    rcu_batch_add_own(st.box->held, -static_cast<std::ptrdiff_t>(freed));
    st.open = st.spare = nullptr;
    st.phase = 2;
    // acq_rel: acquire pairs with the release CAS in rcu_batch_done();
    // release hands this thread's writes to the box's holding to the
    // callbacks that see the orphan mark (R4). From now on callbacks free
    // their batches themselves.
    batch* l = st.box->returned.exchange(box::orphan(), std::memory_order_acq_rel);
    freed = 0;
    while (l != nullptr) {
      batch* next = l->next;
      freed += rcu_batch_free_objects(l, /*owner=*/false);  // the owner's cache may be gone already
      rcu_batch_free(l);
      freed += sizeof(batch);
      l = next;
    }
    // relaxed RMW: callbacks may write the holding too from now on (R4).
    st.box->held.bytes.fetch_sub(freed, std::memory_order_relaxed);
    rcu_batch_box_unref(st.box);
    st.box = nullptr;
  }

  static bool open_batch(rcu_batch_state<Policy>& st) noexcept {
    if (st.phase == 2) return false;
    if (st.phase == 0) {
      void* m = Policy::meta_allocate(sizeof(box));
      if (m == nullptr) return false;
      st.box = new (m) box();
      rcu_batch_add_own(st.box->held, sizeof(box));  // R4
      Policy::link(&st.box->held);
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
      rcu_batch_add_own(st.box->held, sizeof(batch));  // R4
    }
    st.open->box = st.box;
    st.open->n = 0;
    st.open->next = nullptr;
    return true;
  }
};

}  // namespace rcukit::detail
