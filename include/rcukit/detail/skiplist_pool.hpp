// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_pool.hpp -- the node pool of one extent_skiplist:
// where its leaves, towers and index blocks come from and go back to.
//
// The idea (SLUB's per-CPU caches in front of a shared slab, seeds/
// lwn-2007-04-slub-sysfs.txt; SLAB_TYPESAFE_BY_RCU's reuse after a grace
// period). Objects are carved from large chunks per size class (class 0:
// leaves, 1: index blocks, 2 + h: towers of height h), so towers of a large
// list sit densely on few pages and leaves on huge pages (chunks of 2 MiB
// and more are aligned and advised MADV_HUGEPAGE). In front of the shared
// chunk state (one spin lock, taken a batch at a time) sit kStripes
// stripes; a thread always uses the same stripe (threads are dealt to
// stripes round-robin), so two writers normally share no pool line.
//
// Reclamation without a callback per node: a removed leaf (with its tower
// and block) goes to its stripe's open batch; a batch of kBatch is sealed
// with a grace-period cookie (rcu_poll.hpp) and its nodes are reused once
// that grace period has ended; the grace period is asked for only when a
// stripe runs out of free nodes. Nothing outlives the pool: no RCU callback
// refers to it, and its destructor frees every chunk (the skiplist's
// destructor runs when no reader can hold a node). The cost: up to one open
// batch per stripe is held until more nodes are removed or the list dies.
//
// Invariants:
//  (1) every object handed out lies inside one chunk (or is one own
//      allocation when the chunk size is 0), aligned to its class.
//  (2) an object in a sealed batch is reused only after done(cookie).
//  (3) every field of a stripe is touched under that stripe's lock; the
//      shared state under lock_.
// Not supported: returning chunk memory before the pool dies.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <new>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "rcukit/detail/rcu_poll.hpp"
#include "rcukit/detail/spin_lock.hpp"

namespace rcukit::detail {

// Which stripe this thread uses (threads dealt round-robin on first use).
inline unsigned sl_stripe_of_thread(unsigned stripes) noexcept {
  static std::atomic<unsigned> next{0};  // relaxed: only needs distinct values
  static thread_local const unsigned mine = next.fetch_add(1, std::memory_order_relaxed);
  return mine & (stripes - 1);
}

// Shape: describes the objects. Shape::kClasses classes, Shape::size(c),
// Shape::align(c); Shape::kChunk: largest chunk for class 0 and 1 (leaves,
// blocks), Shape::kTowerChunk for the towers (0: own allocations).
// Node: the leaf type (has pool_next, tower, height); the pool returns a
// removed leaf's tower and block with it through Shape::parts().
template <class Shape, class Traits, class Rcu>
class sl_pool {
 public:
  static constexpr unsigned kClasses = Shape::kClasses;
  static constexpr unsigned kStripes = 8;
  static constexpr unsigned kBatch = 16;       // leaves per sealed batch
  static constexpr unsigned kRefill = 8;       // objects moved per refill from the shared state
  static constexpr unsigned kStripeMax = 64;   // a stripe keeps at most this many free objects a class
  static constexpr std::size_t kFirstChunk = 4096;
  static constexpr std::size_t kHugePage = std::size_t{2} << 20;
  using leaf = typename Shape::leaf;

  sl_pool() noexcept = default;
  sl_pool(const sl_pool&) = delete;
  sl_pool& operator=(const sl_pool&) = delete;
  // Exclusive access: every object (in use or not) is freed with the chunks.
  ~sl_pool() {
    for (unsigned g = 0; g < 2; ++g) {
      void* c = chunks_[g];
      while (c != nullptr) {
        void* n = *static_cast<void**>(c);
        Traits::deallocate(c);
        c = n;
      }
    }
    // Own allocations (chunk size 0) are listed through a header word.
    void* o = owned_;
    while (o != nullptr) {
      void* n = *static_cast<void**>(o);
      Traits::deallocate(o);
      o = n;
    }
  }

  // Memory for one object of class c, or nullptr (allocation failure).
  // Blocking (stripe and pool spin locks, the allocator); call with no
  // skiplist lock held.
  // Objects are constructed once, when carved (Shape::construct), and
  // recycled as they are: a caller re-initializes what it needs (leaves must
  // never be re-constructed, skiplist_read.hpp's fingers may read them).
  void* allocate(unsigned c) noexcept {
    stripe& s = stripes_[sl_stripe_of_thread(kStripes)];
    s.lock.lock();
    void* p = pop(s, c);
    if (p == nullptr) {
      reclaim_ready(s);
      p = pop(s, c);
    }
    s.lock.unlock();
    if (p != nullptr) return p;
    return refill_and_take(c);
  }
  // Returns an object that was never published (a failed or unused preload).
  void deallocate_now(void* p, unsigned c) noexcept {
    stripe& s = stripes_[sl_stripe_of_thread(kStripes)];
    s.lock.lock();
    push(s, c, p);
    void* spill = trim(s, c);
    s.lock.unlock();
    give_back(spill, c);
  }
  // A removed leaf (with its tower and block, Shape::parts) becomes
  // reusable after a grace period (invariant 2). Never blocks for long.
  void retire(leaf* l) noexcept {
    stripe& s = stripes_[sl_stripe_of_thread(kStripes)];
    s.lock.lock();
    l->pool_next = s.open;
    s.open = l;
    if (++s.open_n >= kBatch) seal_locked(s);
    s.lock.unlock();
  }

  // Bytes of memory this pool holds from Traits::allocate.
  std::size_t bytes_held() const noexcept { return held_.load(std::memory_order_relaxed); }

 private:
  static constexpr unsigned kSealed = 8;  // sealed batches a stripe queues
  struct batch {
    leaf* head = nullptr;
    uint64_t cookie = 0;
  };
  struct alignas(64) stripe {
    spin_lock lock;
    void* free[kClasses] = {};
    uint16_t nfree[kClasses] = {};
    leaf* open = nullptr;  // retired, not yet sealed
    unsigned open_n = 0;
    batch sealed[kSealed];  // FIFO ring
    unsigned first = 0, nsealed = 0;
  };

  // The word of a free object that links it in a free list: for leaves
  // their pool_next (a stale finger may read a free leaf's atomics, never
  // that field, skiplist_read.hpp), for the others their first word.
  static void*& link(void* p, unsigned c) noexcept {
    return *reinterpret_cast<void**>(static_cast<char*>(p) + Shape::link_offset(c));
  }
  static void* pop(stripe& s, unsigned c) noexcept {
    void* p = s.free[c];
    if (p != nullptr) {
      s.free[c] = link(p, c);
      --s.nfree[c];
    }
    return p;
  }
  static void push(stripe& s, unsigned c, void* p) noexcept {
    link(p, c) = s.free[c];
    s.free[c] = p;
    ++s.nfree[c];
  }
  // Under s.lock: if class c holds more than kStripeMax, detaches half of
  // it (a list) for the shared state.
  static void* trim(stripe& s, unsigned c) noexcept {
    if (s.nfree[c] <= kStripeMax) return nullptr;
    void* head = nullptr;
    for (unsigned i = 0; i < kStripeMax / 2; ++i) {
      void* p = pop(s, c);
      link(p, c) = head;
      head = p;
    }
    return head;
  }
  // Under s.lock: the open batch gets a cookie. With the ring full it joins
  // the newest sealed batch, which takes the new (later) cookie: waiting
  // longer for the older nodes is always safe.
  void seal_locked(stripe& s) noexcept {
    // Only stamped here: the grace period is asked for when a stripe runs
    // dry (reclaim_ready), so a list that removes and inserts at a steady
    // rate asks for few of them (each costs the memb flavour an IPI to every
    // CPU running the process).
    const uint64_t cookie = rcu::detail::gp_poll<Rcu>::cookie();
    if (s.nsealed == kSealed) {
      batch& last = s.sealed[(s.first + s.nsealed - 1) % kSealed];
      leaf* tail = s.open;
      while (tail->pool_next != nullptr) tail = tail->pool_next;
      tail->pool_next = last.head;
      last.head = s.open;
      last.cookie = cookie;
    } else {
      batch& b = s.sealed[(s.first + s.nsealed) % kSealed];
      b.head = s.open;
      b.cookie = cookie;
      ++s.nsealed;
    }
    s.open = nullptr;
    s.open_n = 0;
    // A large backlog (a clear(), a burst of removals) asks at once: the
    // memory it holds should come back without waiting for a dry stripe.
    if (s.nsealed >= kSealed / 2) rcu::detail::gp_poll<Rcu>::request(cookie);
  }
  // Under s.lock: every sealed batch whose grace period ended goes to the
  // free lists; an open batch is sealed, and the grace period the newest
  // batch needs is asked for, so that they will.
  void reclaim_ready(stripe& s) noexcept {
    while (s.nsealed > 0) {
      batch& b = s.sealed[s.first];
      if (!rcu::detail::gp_poll<Rcu>::done(b.cookie)) break;
      for (leaf* l = b.head; l != nullptr;) {
        leaf* n = l->pool_next;
        Shape::parts(l, [&](void* p, unsigned c) { push(s, c, p); });
        l = n;
      }
      b.head = nullptr;
      s.first = (s.first + 1) % kSealed;
      --s.nsealed;
    }
    if (s.open != nullptr) seal_locked(s);
    if (s.nsealed > 0) rcu::detail::gp_poll<Rcu>::request(s.sealed[(s.first + s.nsealed - 1) % kSealed].cookie);
  }

  void give_back(void* list, unsigned c) noexcept {
    if (list == nullptr) return;
    lock_.lock();
    while (list != nullptr) {
      void* n = link(list, c);
      link(list, c) = shared_free_[c];
      shared_free_[c] = list;
      list = n;
    }
    lock_.unlock();
  }

  // Takes up to kRefill objects of class c from the shared state (its free
  // list, then new chunk memory): returns one, stores the rest in this
  // thread's stripe.
  void* refill_and_take(unsigned c) noexcept {
    void* got[kRefill];
    bool carved[kRefill];
    // Own allocations gain nothing from a batch (and allocation-failure
    // injection should reach every one of them): one at a time.
    const unsigned want = (c < 2 ? Shape::kChunk : Shape::kTowerChunk) == 0 ? 1 : kRefill;
    unsigned n = 0;
    lock_.lock();
    while (n < want && shared_free_[c] != nullptr) {
      void* p = shared_free_[c];
      shared_free_[c] = link(p, c);
      carved[n] = false;
      got[n++] = p;
    }
    while (n < want) {
      void* p = carve(c);
      if (p == nullptr) break;
      carved[n] = true;
      got[n++] = p;
    }
    lock_.unlock();
    if (n == 0) return nullptr;
    for (unsigned i = 0; i < n; ++i) {
      if (carved[i]) Shape::construct(got[i], c);  // constructed once (allocate)
    }
    if (n > 1) {
      stripe& s = stripes_[sl_stripe_of_thread(kStripes)];
      s.lock.lock();
      for (unsigned i = 1; i < n; ++i) push(s, c, got[i]);
      s.lock.unlock();
    }
    return got[0];
  }

  // Under lock_: one new object of class c from the chunk of its group
  // (0: leaves and blocks, 1: towers), or an own allocation.
  void* carve(unsigned c) noexcept {
    const unsigned g = c < 2 ? 0 : 1;
    const std::size_t max_chunk = g == 0 ? Shape::kChunk : Shape::kTowerChunk;
    const std::size_t need = Shape::size(c), align = Shape::align(c);
    if (max_chunk == 0) {  // own allocation: [link word][pad][object]
      void* m = Traits::allocate(need + align + sizeof(void*));
      if (m == nullptr) return nullptr;
      *static_cast<void**>(m) = owned_;
      owned_ = m;
      held_.store(held_.load(std::memory_order_relaxed) + need + align + sizeof(void*),
                  std::memory_order_relaxed);
      return align_up(static_cast<char*>(m) + sizeof(void*), align);
    }
    char* cur = align_up(cur_[g], align);
    if (cur_[g] == nullptr || cur + need > end_[g]) {
      if (!grow(g, need, max_chunk)) return nullptr;
      cur = align_up(cur_[g], align);
    }
    cur_[g] = cur + need;
    return cur;
  }
  // A new chunk for group g. Sizes grow with what the pool holds (an eighth
  // of it, from kFirstChunk up to max_chunk), so the unused tail of the last
  // chunk stays a small part of the total. Chunks are not over-aligned to
  // 2 MiB (that slack would count as memory the list holds): the huge
  // pages that fit inside a large chunk are advised instead.
  bool grow(unsigned g, std::size_t need, std::size_t max_chunk) noexcept {
    const std::size_t held = held_.load(std::memory_order_relaxed);  // under lock_
    std::size_t sz = std::max<std::size_t>(kFirstChunk, std::min<std::size_t>(max_chunk, held / 8));
    if (sz < need + 64) sz = need + 64;
    void* c = Traits::allocate(sz + 64 + sizeof(void*));
    if (c == nullptr) return false;
    held_.store(held + sz + 64 + sizeof(void*), std::memory_order_relaxed);
    *static_cast<void**>(c) = chunks_[g];
    chunks_[g] = c;
    char* base = align_up(static_cast<char*>(c) + sizeof(void*), 64);
    cur_[g] = base;
    end_[g] = base + sz;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // A hint (ordinary pages where THP is off): the 2 MiB pages inside.
    char* h0 = align_up(base, kHugePage);
    char* h1 = reinterpret_cast<char*>(reinterpret_cast<uintptr_t>(base + sz) & ~uintptr_t{kHugePage - 1});
    if (h1 > h0) (void)::madvise(h0, static_cast<std::size_t>(h1 - h0), MADV_HUGEPAGE);
#endif
    return true;
  }
  static char* align_up(void* p, std::size_t a) noexcept {
    return reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(p) + a - 1) & ~uintptr_t{a - 1});
  }

  stripe stripes_[kStripes];
  alignas(64) spin_lock lock_;
  void* shared_free_[kClasses] = {};
  void* chunks_[2] = {};
  char* cur_[2] = {};
  char* end_[2] = {};
  void* owned_ = nullptr;
  std::atomic<std::size_t> held_{0};  // written under lock_; relaxed: a statistic
};

}  // namespace rcukit::detail
