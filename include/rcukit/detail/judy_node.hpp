// rcukit/detail/judy_node.hpp -- node encodings of the RCU Judy-style array.
//
// The idea. A 256-way digital tree over 64-bit keys: the node at depth d
// (0 = root) discriminates key byte d, most significant first. Child slots
// hold tagged words: 0 = empty, bit 0 set = a bucket (a small sorted array
// of full keys and values, judy_bucket below), otherwise an inner node. Keys
// live in buckets hung as high as possible: a slot holds a bucket until it
// overflows, then splits into a node of smaller buckets, and a node whose
// children are all buckets holding at most half a bucket merges back (the
// split/merge gap is the bucket hysteresis). This replaces libJudy's
// compressed leaves and costs no path of single-child nodes for sparse keys.
// The node encodings follow Mathieu Desnoyers' RCU Judy arrays (rcuja,
// liburcu branches, 2012-2016), re-derived here, sized to cache lines with a
// 24-byte header (rcu_head, lock, kind, count):
//
//   kind      bytes  children  layout
//   lin4        64     1..4    sorted key bytes, then child words
//   lin11      128     3..11   "
//   lin25      256     8..25   "
//   pool       928    16..100  4 sorted segments of <= 25, chosen by the key
//                              byte's two high bits (b >> 6)
//   pigeon    2080    24..256  a seqcount, then 256 child words indexed by
//                              the key byte
//
// The overlapping ranges are the hysteresis: a node grows when its class is
// full and shrinks only when it falls well below the smaller class's
// capacity (lin11 -> lin4 below 3, lin25 -> lin11 below 8, pool -> lin25
// below 16, pigeon -> lin25 below 24), so alternating insert/erase at a
// boundary does not reallocate on every call.
//
// Invariants (checked by judy_array::check_invariants()):
//  (1) Key bytes and segment counts of lin*/pool nodes are immutable after the
//      node is published; only child words change in place (atomically), and
//      only to replace an existing child by another non-empty one.
//  (2) Pigeon nodes change in place: a slot is set or cleared with a release
//      store under the node lock, inside a write section of the node's
//      seqcount (odd while the store is in flight), so a reader that samples
//      the seqcount before and after reading slots knows whether any slot
//      changed in between; count_ is atomic.
//  (3) Keys are sorted inside every segment; a pool key sits in segment b>>6.
//  (4) A node's kind matches its child count (table above); no node is empty;
//      no node's children are all buckets with <= cap/2 keys in total (it
//      would have merged); buckets hold 1..cap sorted keys on their path.
//  (5) A node is never modified after dead_ is set (it has been replaced).
//
// Allocation (below): nodes and buckets come from a per-thread block cache
// in 16-byte size classes, and what a thread retires is batched and
// returned to it after the grace period, so the thread that allocates is
// the one that frees (no malloc arena shared between writers and liburcu's
// callback thread). judy_alloc::live counts objects not yet past their
// grace period; every byte taken from malloc is accounted for in one of
// three states (nodes, cached, pending: "Memory accounting" below).
//
// Not supported here: path compression of inner-node chains (a long shared
// prefix over more than a bucket of keys costs one lin4 node per shared
// byte), key-suffix compression in buckets (keys are stored whole: 8 bytes).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit::detail {

// Statistics stripes: each thread updates one (chosen once per thread), so
// writers on different cores do not bounce one cache line.
inline constexpr unsigned judy_stripes = 8;
inline unsigned judy_stripe_index() noexcept {
  static std::atomic<unsigned> next{0};
  // relaxed: only spreads threads over stripes; any value is correct.
  static thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed) % judy_stripes;
  return mine;
}

// A striped signed counter (a statistic): add() touches the caller's stripe,
// load() sums them. Relaxed throughout: readers sum it only after a join or
// rcu::barrier(), which orders the updates before the read.
struct judy_striped_counter {
  struct alignas(64) cell {
    std::atomic<long> v{0};
  };
  cell cells[judy_stripes];
  void add(long d) noexcept { cells[judy_stripe_index()].v.fetch_add(d, std::memory_order_relaxed); }
  long load(std::memory_order = std::memory_order_relaxed) const noexcept {
    long n = 0;
    for (const cell& c : cells) n += c.v.load(std::memory_order_relaxed);  // statistic, see above
    return n;
  }
};

// ---------------------------------------------------------------------------
// Memory accounting. Every byte the judy allocator takes from malloc is, at
// any time, in exactly one of these states:
//   (M1) a node or bucket: counted by its judy_array (node_bytes(), once
//        published; an update's unpublished objects are in flight);
//   (M2) a free block in a thread's block cache: that cache's holding;
//   (M3) retired and not yet back in a cache or freed (in a batch waiting
//        for its grace period, or returned to its thread and not yet
//        drained), together with the batch structures and the per-thread
//        box: that box's holding; or retired alone through call_rcu (no
//        batch could be had): judy_alloc::solo_pending.
// Holdings (M2, M3) sit in one process-wide list, so judy_alloc::held_bytes()
// can sum them. A holding is written by its thread only (a relaxed load and
// store: no read-modify-write on the hot path), except a box's after its
// thread exited (see judy_reclaimer::thread_exit). judy_alloc::malloc_bytes()
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
inline void judy_holding_add_own(judy_holding& h, std::ptrdiff_t d) noexcept {
  // relaxed load and store: a single writer; readers sum holdings as a
  // statistic (exact when the writers are quiescent).
  h.bytes.store(h.bytes.load(std::memory_order_relaxed) + static_cast<std::size_t>(d),
                std::memory_order_relaxed);
}

// Bytes obtained from malloc and not yet freed by the judy allocator (all
// of M1-M3). Touched only at malloc and free, which cost far more.
inline constinit judy_striped_counter judy_malloc_count{};
inline void* judy_sys_malloc(std::size_t bytes) noexcept {
  void* p = std::malloc(bytes);
  if (p != nullptr) judy_malloc_count.add(static_cast<long>(bytes));
  return p;
}
inline void judy_sys_free(void* p, std::size_t bytes) noexcept {
  if (p == nullptr) return;
  judy_malloc_count.add(-static_cast<long>(bytes));
  std::free(p);
}

// ---------------------------------------------------------------------------
// Per-thread block cache. Every update allocates a bucket and frees the one
// it replaced a grace period later; through glibc that pair cost about a
// third of an update (_int_free's coalescing of a burst of freed chunks).
// Each thread keeps freed blocks in exact 16-byte size classes (up to
// judy_cache_max_bytes in all) and reuses them. Plain thread-local data,
// constant-initialized and trivially destructible, so it stays usable while
// other thread-locals are destroyed; a guard empties and disables it at
// thread exit.
// ---------------------------------------------------------------------------
inline constexpr std::size_t judy_cache_classes = 133;  // 16-byte classes up to 2112 bytes (a bitmap leaf of 8-byte values)
inline constexpr std::size_t judy_cache_max_bytes = 256 * 1024;

struct judy_block_cache {
  void* heads[judy_cache_classes];  // free blocks, linked through their first word
  judy_holding held;                // bytes in all classes (M2), linked while state == 1
  unsigned char state;              // 0 = unused yet, 1 = on, 2 = off (thread exiting)
};
inline thread_local constinit judy_block_cache judy_tls_cache{};

inline std::size_t judy_size_class(std::size_t bytes) noexcept { return (bytes + 15) / 16; }
// The size of the block the allocator takes from malloc for `bytes`.
inline std::size_t judy_block_bytes(std::size_t bytes) noexcept {
  const std::size_t c = judy_size_class(bytes);
  return c < judy_cache_classes ? c * 16 : bytes;
}

// Frees every block in the calling thread's cache (the cache stays on).
// Memory measurements call it to start cold.
inline void judy_cache_trim() noexcept {
  judy_block_cache& c = judy_tls_cache;
  for (std::size_t k = 0; k < judy_cache_classes; ++k) {
    while (c.heads[k] != nullptr) {
      void* next = *static_cast<void**>(c.heads[k]);
      judy_sys_free(c.heads[k], k * 16);
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
    judy_holding_add_own(tc.held, -static_cast<std::ptrdiff_t>(c * 16));
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
      tc.held.bytes.load(std::memory_order_relaxed) + c * 16 <= judy_cache_max_bytes) {  // own holding
    *static_cast<void**>(p) = tc.heads[c];
    tc.heads[c] = p;
    judy_holding_add_own(tc.held, static_cast<std::ptrdiff_t>(c * 16));
    return;
  }
  judy_sys_free(p, judy_block_bytes(bytes));
}

// ---------------------------------------------------------------------------
// Allocation hook. Every node and bucket of every judy_array is allocated here,
// so tests can make the n-th allocation of the calling thread fail.
// ---------------------------------------------------------------------------
struct judy_alloc {
  // Live allocations (all arrays): tests check live.load() is 0 after the
  // arrays are destroyed and rcu::barrier() returned. A retired object stops
  // counting when its grace period ends (judy_batch_done), even if the
  // retiring thread frees the memory itself later (judy_reclaimer).
  static inline judy_striped_counter live{};
  // Block bytes of objects retired alone through call_rcu (M3).
  static inline judy_striped_counter solo_pending{};
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
    solo_pending.add(-static_cast<long>(judy_block_bytes(bytes)));
    judy_sys_free(p, judy_block_bytes(bytes));
  }

  // Bytes held besides nodes and buckets (M2 and M3), in the whole process:
  // every thread's block cache, every pending retired object and batch
  // structure. Exact when no judy_array update, drain or RCU callback of
  // an exited thread's batch runs. Blocking (a process-wide lock, held for
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

// ---------------------------------------------------------------------------
// Batched reclamation. Writers replace a bucket (and often nothing else) on
// every update; retiring each one through call_rcu costs an enqueue on
// liburcu's shared callback queue per update, and having liburcu's callback
// thread free() memory that the writers malloc()ed makes it fight the
// writers for their malloc arena locks (measured: most of the second
// writer's time went to futex wake-ups of glibc's arena lock). So each
// thread collects what it retires in a batch (judy_batch_cap objects, one
// rcu_head); a full batch goes through one rcu::retire_with; when its grace
// period ends the callback only accounts for the objects (judy_alloc::live)
// and pushes the batch back onto its owner's "returned" list, and the owner
// frees the memory itself at the start of its next update (same-thread
// free: no arena contention). A thread that exits hands its open batch to
// RCU and marks its list orphaned, after which callbacks free directly.
//
// Invariants:
//  (R1) An object in a batch is unreachable for new readers; it is freed
//       only after the grace period of the batch's rcu::retire_with.
//  (R2) A batch is in exactly one place: its owner's open slot, liburcu's
//       queue, the owner's returned list, or the owner's spare slot.
//  (R3) A box (the returned list) lives while its owner thread lives or a
//       batch of it is queued (refs counts both).
//  (R4) The box's holding counts the box, every batch structure of its
//       thread, and the block bytes of every object in them (M3). Its owner
//       writes it alone until it marks the list orphaned (an acq_rel
//       exchange); from then on every writer uses read-modify-writes.
// Not supported: a thread that retired objects and then never updates any
// judy_array again keeps up to one open batch (judy_batch_cap objects) until
// it exits or destroys a judy_array, and its returned batches until then;
// and each thread's block cache keeps up to judy_cache_max_bytes (256 KiB) of
// free blocks until the thread exits: memory is bounded, not returned
// promptly (judy_array::memory_bytes() reports it).
// ---------------------------------------------------------------------------
inline constexpr unsigned judy_batch_cap = 64;

struct judy_reclaim_box;
struct judy_retire_batch : rcu::retirable {
  judy_retire_batch* next = nullptr;  // in the owner's returned list
  judy_reclaim_box* box = nullptr;    // the owner's
  unsigned n = 0;
  void* objs[judy_batch_cap];           // allocations from judy_alloc::allocate
  std::uint32_t sizes[judy_batch_cap];  // their sizes
};

struct judy_reclaim_box {
  // Batches past their grace period: pushed by callbacks (release), taken
  // whole by the owner (acquire exchange). judy_orphan once the owner exited.
  std::atomic<judy_retire_batch*> returned{nullptr};
  // The owner's reference plus one per queued batch (invariant R3).
  std::atomic<long> refs{1};
  judy_holding held;  // invariant R4; linked for the box's whole life
};

inline judy_retire_batch* judy_orphan() noexcept {
  return reinterpret_cast<judy_retire_batch*>(std::uintptr_t{1});
}

// Frees a batch's objects (live already dropped): into the calling thread's
// cache when it is the owner, else straight to free(). Returns their block
// bytes (for the box's holding).
inline std::size_t judy_free_batch_objects(judy_retire_batch* b, bool owner) noexcept {
  std::size_t bytes = 0;
  for (unsigned i = 0; i < b->n; ++i) {
    bytes += judy_block_bytes(b->sizes[i]);
    if (owner) {
      judy_cache_put(b->objs[i], b->sizes[i]);
    } else {
      judy_sys_free(b->objs[i], judy_block_bytes(b->sizes[i]));
    }
  }
  b->n = 0;
  return bytes;
}

inline void judy_box_unref(judy_reclaim_box* box) noexcept {
  // acq_rel: the last decrement (acquire) sees every other holder's use of
  // the box, each of which released it with its own decrement.
  if (box->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    judy_holding_unlink(&box->held);
    box->~judy_reclaim_box();
    judy_sys_free(box, sizeof(judy_reclaim_box));
  }
}

// RCU callback (liburcu's callback thread): the batch's grace period ended.
inline void judy_batch_done(judy_retire_batch* b) noexcept {
  judy_alloc::live.add(-static_cast<long>(b->n));
  judy_reclaim_box* box = b->box;
  // acquire (here and on CAS failure): if the list is orphaned, pairs with
  // the owner's acq_rel exchange in thread_exit(), so its last writes to
  // the box's holding come before ours (invariant R4).
  judy_retire_batch* head = box->returned.load(std::memory_order_acquire);
  for (;;) {
    if (head == judy_orphan()) {
      const std::size_t bytes = judy_free_batch_objects(b, /*owner=*/false) + sizeof(judy_retire_batch);
      b->~judy_retire_batch();
      judy_sys_free(b, sizeof(judy_retire_batch));
      // relaxed RMW: the box's holding is a statistic; after the orphan
      // mark every writer uses RMWs (R4), so none is lost.
      box->held.bytes.fetch_sub(bytes, std::memory_order_relaxed);
      break;
    }
    b->next = head;
    // release: hands the batch (and the end of its grace period, which the
    // rcu layer made happen-before this callback) to the owner's acquire
    // exchange in judy_reclaimer::drain().
    if (box->returned.compare_exchange_weak(head, b, std::memory_order_release, std::memory_order_acquire)) {
      break;
    }
  }
  judy_box_unref(box);
}

// The calling thread's batches for flavour Rcu: plain thread-local state,
// constant-initialized and trivially destructible, so it stays valid (and
// says "exited") when a judy_array is destroyed after this thread's
// thread-locals, e.g. a static array at process exit.
struct judy_reclaim_state {
  judy_reclaim_box* box;
  judy_retire_batch* open;   // being filled
  judy_retire_batch* spare;  // an emptied batch kept for reuse
  unsigned char phase;       // 0 = unused yet, 1 = on, 2 = thread exited
};
template <class Rcu>
inline thread_local constinit judy_reclaim_state judy_tls_reclaim{};

template <class Rcu>
class judy_reclaimer {
 public:
  // Queues allocation `mem` of `bytes` (unreachable for new readers) for
  // freeing after a grace period. False if it could not be batched (no
  // memory for a batch, or the thread is exiting): the caller then retires
  // the object alone (rcu::retire_with does not allocate).
  static bool retire(void* mem, std::size_t bytes) noexcept {
    judy_reclaim_state& st = judy_tls_reclaim<Rcu>;
    if (st.open == nullptr && !open_batch(st)) return false;
    st.open->sizes[st.open->n] = static_cast<std::uint32_t>(bytes);
    st.open->objs[st.open->n++] = mem;
    judy_holding_add_own(st.box->held, static_cast<std::ptrdiff_t>(judy_block_bytes(bytes)));  // R4
    if (st.open->n == judy_batch_cap) flush();
    return true;
  }

  // Hands the calling thread's open batch (if any) to RCU.
  static void flush() noexcept {
    judy_reclaim_state& st = judy_tls_reclaim<Rcu>;
    if (st.open == nullptr || st.open->n == 0) return;
    judy_retire_batch* b = st.open;
    st.open = nullptr;
    // relaxed: call_rcu's enqueue orders this before the callback's unref.
    st.box->refs.fetch_add(1, std::memory_order_relaxed);
    rcu::retire_with<&judy_batch_done, Rcu>(b);
  }

  // Frees, into this thread's block cache, the objects of the calling
  // thread's batches whose grace period ended. One relaxed load when none.
  static void drain() noexcept {
    judy_reclaim_state& st = judy_tls_reclaim<Rcu>;
    if (st.phase != 1) return;
    // relaxed: only a hint; the exchange below acquires.
    if (st.box->returned.load(std::memory_order_relaxed) == nullptr) return;
    // acquire: pairs with the release CAS in judy_batch_done().
    judy_retire_batch* l = st.box->returned.exchange(nullptr, std::memory_order_acquire);
    std::size_t freed = 0;
    while (l != nullptr) {
      judy_retire_batch* next = l->next;
      freed += judy_free_batch_objects(l, /*owner=*/true);
      if (st.spare == nullptr) {
        st.spare = l;
      } else {
        l->~judy_retire_batch();
        judy_sys_free(l, sizeof(judy_retire_batch));
        freed += sizeof(judy_retire_batch);
      }
      l = next;
    }
    judy_holding_add_own(st.box->held, -static_cast<std::ptrdiff_t>(freed));  // R4
  }

 private:
  struct exit_guard {
    ~exit_guard() { thread_exit(); }
  };

  static void thread_exit() noexcept {
    judy_reclaim_state& st = judy_tls_reclaim<Rcu>;
    flush();
    std::size_t freed = 0;
    for (judy_retire_batch* b : {st.open, st.spare}) {  // empty (or null)
      if (b == nullptr) continue;
      b->~judy_retire_batch();
      judy_sys_free(b, sizeof(judy_retire_batch));
      freed += sizeof(judy_retire_batch);
    }
    judy_holding_add_own(st.box->held, -static_cast<std::ptrdiff_t>(freed));
    st.open = st.spare = nullptr;
    st.phase = 2;
    // acq_rel: acquire pairs with the release CAS in judy_batch_done();
    // release hands this thread's writes to the box's holding to the
    // callbacks that see the orphan mark (R4). From now on callbacks free
    // their batches themselves.
    judy_retire_batch* l = st.box->returned.exchange(judy_orphan(), std::memory_order_acq_rel);
    freed = 0;
    while (l != nullptr) {
      judy_retire_batch* next = l->next;
      freed += judy_free_batch_objects(l, /*owner=*/false);  // the block cache may be gone already
      l->~judy_retire_batch();
      judy_sys_free(l, sizeof(judy_retire_batch));
      freed += sizeof(judy_retire_batch);
      l = next;
    }
    // relaxed RMW: callbacks may write the holding too from now on (R4).
    st.box->held.bytes.fetch_sub(freed, std::memory_order_relaxed);
    judy_box_unref(st.box);
    st.box = nullptr;
  }

  static bool open_batch(judy_reclaim_state& st) noexcept {
    if (st.phase == 2) return false;
    if (st.phase == 0) {
      void* m = judy_sys_malloc(sizeof(judy_reclaim_box));
      if (m == nullptr) return false;
      st.box = new (m) judy_reclaim_box();
      judy_holding_add_own(st.box->held, sizeof(judy_reclaim_box));  // R4
      judy_holding_link(&st.box->held);
      st.phase = 1;
      static thread_local exit_guard guard;  // thread_exit() at thread exit
      (void)guard;
    }
    if (st.spare != nullptr) {
      st.open = st.spare;
      st.spare = nullptr;
    } else {
      void* m = judy_sys_malloc(sizeof(judy_retire_batch));
      if (m == nullptr) return false;
      st.open = new (m) judy_retire_batch();
      judy_holding_add_own(st.box->held, sizeof(judy_retire_batch));  // R4
    }
    st.open->box = st.box;
    st.open->n = 0;
    st.open->next = nullptr;
    return true;
  }
};

enum class judy_kind : std::uint8_t { lin4 = 0, lin11 = 1, lin25 = 2, pool = 3, pigeon = 4 };

struct judy_kind_info {
  unsigned nseg;          // segments (1 for linear, 4 for pool, 0 for pigeon)
  unsigned segcap;        // capacity of one segment
  unsigned min_count;     // hysteresis floor (see the essay)
  unsigned max_count;     // capacity
  std::size_t bytes;      // allocation size
  std::size_t child_off;  // offset of the child words
};

inline constexpr std::size_t judy_header_bytes = 24;
inline constexpr std::size_t judy_keys_off = judy_header_bytes + 4;  // after 4 segment counts
constexpr std::size_t judy_align8(std::size_t n) { return (n + 7) & ~std::size_t{7}; }
constexpr judy_kind_info judy_make_info(unsigned nseg, unsigned segcap, unsigned minc) {
  const std::size_t child_off = judy_align8(judy_keys_off + std::size_t{nseg} * segcap);
  return {nseg, segcap, minc, nseg * segcap, child_off + std::size_t{8} * nseg * segcap, child_off};
}
inline constexpr judy_kind_info judy_kinds[5] = {
    judy_make_info(1, 4, 1),
    judy_make_info(1, 11, 3),
    judy_make_info(1, 25, 8),
    judy_make_info(4, 25, 16),
    // pigeon: the header, the seqcount (8 bytes), the 256 child words.
    {0, 256, 24, 256, judy_header_bytes + 8 + 8 * 256, judy_header_bytes + 8},
};
static_assert(judy_kinds[0].bytes == 64 && judy_kinds[1].bytes == 128 && judy_kinds[2].bytes == 256);
static_assert(judy_kinds[3].bytes == 928 && judy_kinds[4].bytes == 2080);
static_assert(sizeof(seqcount) == 8, "a pigeon node's seqcount fills the 8 bytes before its child words");

// Tagged child word: 0, a node, or a bucket (bit 0). Allocations are
// 16-byte aligned (malloc), so bits 1..3 are free for planning placeholders.
using judy_word = std::uintptr_t;
inline constexpr judy_word judy_leaf_tag = 1;
inline bool judy_is_leaf(judy_word w) noexcept { return (w & judy_leaf_tag) != 0; }

inline unsigned judy_byte(std::uint64_t key, unsigned depth) noexcept {
  return static_cast<unsigned>(key >> (56 - 8 * depth)) & 0xffu;
}

// Inner node header; the key bytes and child words follow in the same
// allocation (offsets in judy_kinds).
struct judy_node : rcu::retirable {
  std::atomic<std::uint8_t> lock_{0};  // writers only; readers never touch it
  std::atomic<bool> dead_{false};      // set under lock_ when replaced (invariant 5)
  judy_kind kind_;                     // immutable
  std::uint8_t pad_ = 0;
  std::atomic<std::uint16_t> count_{0};  // children; changes in place only for pigeon

  explicit judy_node(judy_kind k) noexcept : kind_(k) {}

  const judy_kind_info& info() const noexcept { return judy_kinds[static_cast<unsigned>(kind_)]; }
  std::size_t bytes() const noexcept { return info().bytes; }
  char* raw() noexcept { return reinterpret_cast<char*>(this); }
  const char* raw() const noexcept { return reinterpret_cast<const char*>(this); }

  // Segment counts and key bytes (lin*/pool): immutable after publication.
  std::uint8_t* seg_counts() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_header_bytes); }
  const std::uint8_t* seg_counts() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_header_bytes);
  }
  std::uint8_t* keys() noexcept { return reinterpret_cast<std::uint8_t*>(raw() + judy_keys_off); }
  const std::uint8_t* keys() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(raw() + judy_keys_off);
  }
  std::atomic<judy_word>* children() noexcept {
    return std::launder(reinterpret_cast<std::atomic<judy_word>*>(raw() + info().child_off));
  }
  const std::atomic<judy_word>* children() const noexcept {
    return std::launder(reinterpret_cast<const std::atomic<judy_word>*>(raw() + info().child_off));
  }
  // Pigeon nodes only: the seqcount of in-place slot changes (invariant 2).
  seqcount& pigeon_seq() noexcept {
    return *std::launder(reinterpret_cast<seqcount*>(raw() + judy_header_bytes));
  }
  const seqcount& pigeon_seq() const noexcept {
    return *std::launder(reinterpret_cast<const seqcount*>(raw() + judy_header_bytes));
  }
  unsigned count() const noexcept {
    // relaxed: pigeon counts change only under lock_ and are read by writers
    // holding it (or by quiescent invariant checks); others are immutable.
    return count_.load(std::memory_order_relaxed);
  }

  // Index of key byte b in the child words, or -1. Readers and writers.
  int index_of(unsigned b) const noexcept {
    if (kind_ == judy_kind::pigeon) return static_cast<int>(b);
    const judy_kind_info& in = info();
    const unsigned seg = in.nseg == 4 ? (b >> 6) : 0;
    const unsigned base = seg * in.segcap;
    const unsigned n = seg_counts()[seg];
    const std::uint8_t* k = keys() + base;
    // Eight key bytes at a time (immutable: invariant (1)): the lowest zero
    // byte of k ^ b is the first match (the has-zero test is exact for it).
    constexpr std::uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    const std::uint64_t pat = ones * b;
    unsigned i = 0;
    for (; i + 8 <= n; i += 8) {
      std::uint64_t x;
      std::memcpy(&x, k + i, 8);
      x ^= pat;
      const std::uint64_t z = (x - ones) & ~x & highs;
      if (z != 0) return static_cast<int>(base + i + static_cast<unsigned>(__builtin_ctzll(z)) / 8);
    }
    for (; i < n; ++i) {
      if (k[i] == b) return static_cast<int>(base + i);
    }
    return -1;
  }

  // Child word for key byte b (0 if none). acquire: pairs with the release
  // store that published the child (judy_array::commit() or a pigeon slot
  // store), so the child's contents are visible.
  judy_word child(unsigned b) const noexcept {
    const int i = index_of(b);
    return i < 0 ? 0 : children()[i].load(std::memory_order_acquire);
  }

  // Visits (byte, word) of non-empty children in ascending (Asc) or
  // descending byte order until f returns true; returns whether it did.
  template <bool Asc, class F>
  bool visit(unsigned from, unsigned to, F&& f) const {
    return visit_at<Asc>(from, to,
                         [&](unsigned b, const std::atomic<judy_word>*, judy_word w) { return f(b, w); });
  }
  // Same, with the child word's address: f(byte, at, word), word == *at as
  // loaded (acquire, as child()). For readers that re-check what they read.
  template <bool Asc, class F>
  bool visit_at(unsigned from, unsigned to, F&& f) const {
    // Visits bytes in [from, to] (inclusive), in the chosen order.
    if (from > to) return false;
    if (kind_ == judy_kind::pigeon) {
      const std::atomic<judy_word>* c = children();
      if constexpr (Asc) {
        for (unsigned b = from; b <= to; ++b) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + b, w)) return true;
        }
      } else {
        for (unsigned b = to + 1; b-- > from;) {
          const judy_word w = c[b].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + b, w)) return true;
        }
      }
      return false;
    }
    const judy_kind_info& in = info();
    const std::uint8_t* k = keys();
    const std::atomic<judy_word>* c = children();
    if constexpr (Asc) {
      for (unsigned s = 0; s < in.nseg; ++s) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = 0; i < n; ++i) {
          const unsigned b = k[base + i];
          if (b < from) continue;
          if (b > to) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + base + i, w)) return true;
        }
      }
    } else {
      for (unsigned s = in.nseg; s-- > 0;) {
        const unsigned base = s * in.segcap, n = seg_counts()[s];
        for (unsigned i = n; i-- > 0;) {
          const unsigned b = k[base + i];
          if (b > to) continue;
          if (b < from) return false;
          const judy_word w = c[base + i].load(std::memory_order_acquire);  // as child()
          if (w != 0 && f(b, c + base + i, w)) return true;
        }
      }
    }
    return false;
  }

  // --- writer side -------------------------------------------------------
  void lock() noexcept {
    for (unsigned spins = 0;; ++spins) {
      // acquire: pairs with the release in unlock(); orders this writer's
      // reads of the node after the previous holder's writes.
      if (lock_.exchange(1, std::memory_order_acquire) == 0) return;
      while (lock_.load(std::memory_order_relaxed) != 0) {
        if (++spins > 64) std::this_thread::yield();  // 2 cores: let the holder run
      }
    }
  }
  void unlock() noexcept { lock_.store(0, std::memory_order_release); }  // pairs with lock()
  bool is_dead() const noexcept {
    // relaxed: written and read only under lock_, which orders it.
    return dead_.load(std::memory_order_relaxed);
  }
};
static_assert(sizeof(judy_node) == judy_header_bytes, "judy_node header must stay 24 bytes");

// Allocates an empty node of kind k (count 0, all child words 0), or nullptr.
inline judy_node* judy_new_node(judy_kind k) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  void* mem = judy_alloc::allocate(in.bytes);
  if (mem == nullptr) return nullptr;
  auto* n = new (mem) judy_node(k);
  char* raw = static_cast<char*>(mem);
  for (std::size_t i = judy_header_bytes; i < in.child_off; ++i) raw[i] = 0;
  if (k == judy_kind::pigeon) new (raw + judy_header_bytes) seqcount();
  for (unsigned i = 0; i < in.max_count; ++i) new (raw + in.child_off + 8 * i) std::atomic<judy_word>(0);
  return n;
}

// Frees an unpublished node (on the thread that may reuse the memory).
inline void judy_free_node(judy_node* n) noexcept {
  const std::size_t bytes = n->bytes();
  n->~judy_node();
  judy_alloc::deallocate(n, bytes);
}
// Frees a node retired alone (RCU callback thread).
inline void judy_free_node_remote(judy_node* n) noexcept {
  const std::size_t bytes = n->bytes();
  n->~judy_node();
  judy_alloc::deallocate_retired_alone(n, bytes);
}

// A sorted list of (byte, word) children, the input from which new nodes are
// built (copy-on-write).
struct judy_child_list {
  unsigned n = 0;
  std::uint8_t bytes[256];
  judy_word words[256];
  void push(unsigned b, judy_word w) noexcept {
    bytes[n] = static_cast<std::uint8_t>(b);
    words[n] = w;
    ++n;
  }
};

// Whether the sorted list fits kind k (pool: every segment <= segcap).
inline bool judy_fits(judy_kind k, const judy_child_list& l) noexcept {
  const judy_kind_info& in = judy_kinds[static_cast<unsigned>(k)];
  if (l.n > in.max_count) return false;
  if (k == judy_kind::pool) {
    unsigned seg[4] = {0, 0, 0, 0};
    for (unsigned i = 0; i < l.n; ++i) ++seg[l.bytes[i] >> 6];
    for (unsigned s = 0; s < 4; ++s) {
      if (seg[s] > in.segcap) return false;
    }
  }
  return true;
}

// Builds an unpublished node of kind k holding the sorted list l (which must
// fit). Relaxed stores: the node is published later by a release store.
inline judy_node* judy_build(judy_kind k, const judy_child_list& l) noexcept {
  judy_node* n = judy_new_node(k);
  if (n == nullptr) return nullptr;
  n->count_.store(static_cast<std::uint16_t>(l.n), std::memory_order_relaxed);
  std::atomic<judy_word>* c = n->children();
  if (k == judy_kind::pigeon) {
    for (unsigned i = 0; i < l.n; ++i) c[l.bytes[i]].store(l.words[i], std::memory_order_relaxed);
    return n;
  }
  const judy_kind_info& in = n->info();
  std::uint8_t* sc = n->seg_counts();
  std::uint8_t* keys = n->keys();
  for (unsigned i = 0; i < l.n; ++i) {
    const unsigned seg = in.nseg == 4 ? (l.bytes[i] >> 6) : 0;
    const unsigned at = seg * in.segcap + sc[seg]++;
    keys[at] = l.bytes[i];
    c[at].store(l.words[i], std::memory_order_relaxed);
  }
  return n;
}

// The kind a node of kind `cur` takes for the list l after a change
// (grow when full, shrink only below the hysteresis floor).
inline judy_kind judy_choose_kind(judy_kind cur, const judy_child_list& l) noexcept {
  unsigned k = static_cast<unsigned>(cur);
  // Shrink below the floor: to the smallest class whose floor admits n.
  while (k > 0 && l.n < judy_kinds[k].min_count) {
    k = (k == static_cast<unsigned>(judy_kind::pigeon)) ? static_cast<unsigned>(judy_kind::lin25) : k - 1;
  }
  // Grow until it fits.
  while (!judy_fits(static_cast<judy_kind>(k), l)) ++k;
  return static_cast<judy_kind>(k);
}

}  // namespace rcukit::detail
