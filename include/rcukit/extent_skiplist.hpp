// rcukit/extent_skiplist.hpp -- an RCU skiplist of extents with fat leaves.
//
// The idea (Chris Mason's cache-friendly skiplist for index ranges, LWN, June
// 2013; the design source is seeds/lwn-2013-06-skiplists.txt): a skiplist
// whose nodes ("leaves") each hold up to 32 sorted extents, so that a search
// touches a few cache-friendly arrays instead of one node per key, and whose
// writers lock single leaves, so that writers in different parts of the key
// space run in parallel without any rebalancing. Readers descend without
// locks under RCU.
//
// What differs from the 2013 patch, and why:
//  * Leaf keys are immutable. A leaf owns the key range [key, next->key);
//    the head leaf has key 0 and is never removed, so every key has exactly
//    one covering leaf. A split gives the new right leaf the start of its
//    first extent as key. Immutable keys make the lockless descent trivially
//    correct: a leaf's place in every level never changes while it is live.
//  * Readers are correct by themselves (no caller re-check). Each leaf has a
//    fence-free seqcount (detail/seqcount.hpp) covering its slots, count,
//    dead flag and link 0 (pointer and cached key); a reader snapshots a
//    leaf and retries on change.
//    When an answer needs two adjacent leaves, the reader re-validates the
//    first leaf's sequence after reading the second, so both snapshots held
//    at one instant: every reader is linearizable.
//    Why a seqcount and not copy-on-write slot blocks: COW needs a fresh
//    block for every insert and every erase, i.e. an allocation in erase()
//    (which has no way to report ResourceExhausted) or a pool refilled under
//    the lock; the seqcount needs no allocation outside splits, readers copy
//    only the slots they look at, and on x86-64 the acquire/release accesses
//    compile to plain moves. The cost is that a reader can retry while a
//    writer keeps rewriting one leaf; writers hold a leaf for a few dozen
//    stores, so retries are short. Measured in isolation on one 32-slot
//    leaf (bench/skiplist/leaf_update_bench.cpp, 2 vCPUs, idle): an
//    insert+erase costs 34 ns per operation with the seqcount against 750 ns
//    copy-on-write (allocation + retire); reads cost the same (35 ns) and
//    still do against a writer at 400k writes/s on that same leaf (40 vs
//    41 ns); only a writer rewriting one leaf non-stop makes seqcount
//    readers retry (7 retries, 548 ns per read, against 57 ns COW).
//  * Towers apart from the leaves (detail/skiplist_tower.hpp). A leaf holds
//    only level 0; its upper levels (1 .. height-1: links and gap bounds)
//    are a separate small tower object, and all towers of one skiplist are
//    packed in a per-skiplist arena of large chunks. At 10^6 extents the
//    ~45k leaves span ~50 MB (more than the last-level cache, one 4-KiB
//    page each), the ~45k towers ~3 MB on ~750 pages (estimates: leaves
//    ~70% full, mean tower height 3, ~68 bytes a tower): the descent walks
//    towers that stay cached and misses only at the leaf it ends on. By default
//    the index is dense (skiplist_traits::dense_index): every leaf but the
//    head has a tower (height >= 2), so tower level 1 lists every leaf and
//    the descent goes straight from a tower to the covering leaf instead of
//    walking level 0 leaf by leaf (a DRAM miss per step). The level-0 link
//    stays in the leaf, under its seqcount, because correctness depends
//    only on level 0. Measured (bench/skiplist/skiplist_bench.cpp,
//    BM_lookup_rcu vs BM_lookup<btree_mutex>, medians, on a shared 2-vCPU
//    VM whose memory-bound figures moved by +-15% between runs): at 10^7
//    towers in the leaf 3843 ns vs 1213 (3.2x), these towers 2327 ns vs
//    1141 (2.0x); at 10^6 one A/B gave 1.7-2.1x against 1.5-1.6x, a later
//    interleaved run ~1.8x for both; at 10^4-10^5, and for insert+erase,
//    the extra tower->leaf step costs 10-30%. skiplist_own_towers (towers
//    from plain operator new, slower than the arena at 10^6) and
//    skiplist_sparse are the alternatives in that benchmark. How big a
//    tower is matters as much as where it is: shrinking the mean tower
//    from ~83 to ~68 bytes (skiplist_tower.hpp) took the paired
//    lookup_rcu/btree ratio at 10^6 from ~1.8x to ~1.5x
//    (BM_lookup_paired, medians of 4 and 14 runs), and did nothing
//    measurable at 10^7 (~2.3x), where the lowest tower levels no longer
//    fit in the cache either way.
//  * Index blocks (detail/skiplist_tower.hpp). At 10^7 extents the ~450k
//    towers (~30 MB) do not fit in the cache either, and a descent paid a
//    DRAM miss at each of its lowest four or five levels, where a B-tree
//    pays about two. So every tower present at level B =
//    Traits::index_block_level (default 7: 1 tower in 64) carries an index
//    block: the key and leaf of every level-1 tower up to its next tower at
//    level B (64 on average, up to index_block_entries = 255; a longer
//    span keeps a prefix, and a descent past the prefix walks levels
//    B-1 .. 1 as before). A descent walks the few tall towers (cached) down
//    to level B, reads one block (its first 16 lines prefetched together)
//    and goes straight to the leaf: one miss where there were four or five.
//    Blocks are kept exact under the index lock, in place under a
//    per-block seqcount: a split or a removal shifts one block's entries,
//    and a new or removed block tower rebuilds the two blocks concerned
//    from level 1 (1 split in 64), so erase never allocates. Readers take
//    an entry as a hint, like a cached link key (block_floor). B and the
//    capacity were chosen by measurement (BM_lookup_paired, lookup_rcu/btree
//    at 10^7, medians of 3 runs each, node arena below): B = 5 / 63
//    entries, 6 / 127 and 7 / 255 gave ~1.58x, ~1.35x and ~1.29x with 6
//    prefetched block lines; 7 / 255 with 16 lines gave ~1.17x. At 10^6
//    all of them are at ~1.0-1.1x (before blocks: ~1.45x; at 10^7 ~2.3x).
//  * Node arena (detail/slab_arena.hpp). Leaves and index blocks are carved
//    from chunks of up to Traits::leaf_chunk_bytes (8 MiB); chunks of 2 MiB
//    and more are huge-page aligned and advised (MADV_HUGEPAGE). At 10^7
//    extents the leaves span ~450 MB, so every probe's leaf was a TLB miss
//    (a nested page walk under a hypervisor) on top of its cache miss; the
//    kernel's skiplist lives in the linear map, which is mapped with huge
//    pages, and this gives user space the same. Measured side by side
//    (BM_lookup_paired, lookup_rcu/btree, two runs): at 10^7 1.34x and
//    1.17x with huge pages, 1.47x and 1.35x for skiplist_small_pages (1 MiB
//    chunks, ordinary pages, as where THP is off); at 10^6 no difference
//    (~1.05-1.1x). Without index blocks the huge pages alone do nothing
//    (2.28x at 10^7, as before both). Freed leaves and blocks are reused; the
//    chunks go back to Traits::deallocate with the skiplist (the memory of
//    a list that shrinks is kept for its regrowth, as the towers' is).
//    Traits::leaf_chunk_bytes = 0 gives every leaf and block its own
//    Traits::allocate allocation, as before.
//  * Fat links: every link (link 0 in the leaf, each tower link) carries
//    the key of the node it points to, so the descent decides "do not
//    advance" from the line it is already on; only the leaf the descent
//    ends on has its real key checked (walk_tower explains why a stale
//    cached key can make the descent stop early or restart, never return a
//    wrong leaf). The leaf a descent reaches has its slot lines prefetched
//    together with its line 0; a probe finds the slot in two rounds of
//    independent loads (one per 8-slot cache line, then inside one line)
//    and loads the value words of the slot after the match only when the
//    query needs them.
//  * Tower links are changed only under one index lock (taken after the
//    leaf locks, never before them). Splits and leaf removals are about 1
//    in 16 writes, so the lock is cold; in exchange the upper levels are a
//    plain sequential skiplist for writers, with no cursor of neighbour
//    locks. Level 0 (the only level correctness depends on) is changed
//    under the leaf locks. A leaf's height is drawn and its tower allocated
//    by preload() (alloc_leaf), with the leaf, so a split never allocates.
//  * Towers and blocks are retired with their leaf (one RCU callback frees
//    all three). The arenas are reference counted by the skiplist and by
//    every object carved from them, so a callback that runs after the
//    skiplist's destructor still frees into a live arena, and the last
//    reference frees the chunks (the destructor needs no rcu::barrier()).
//    clear() returns leaves, towers and blocks to the arenas' free lists;
//    chunks go back only with the skiplist.
//
// Hole search: every span head (a leaf at level 0, a tower above) keeps a
// conservative bound on the largest free gap of the span it heads
// (detail/skiplist_gap.hpp); a search
// descends like a key search but skips spans whose bound is below the
// request, and tightens the bounds it proves. Erases raise the bounds of the
// spans around the gap they opened after their effect; insert_hole commits
// only when no erase ran during its search (invariants 6, 7).
//
// Locking: leaf locks are taken in ascending key order (left to right), at
// most three at once (predecessor, covering leaf, successor), then possibly
// the index lock. Nothing is ever allocated while a lock is held: a split
// uses a leaf preallocated by preload() (insert(e, v) preloads on demand,
// after dropping its locks, and retries).
//
// Erase: one descent finds the extent containing the key in its covering
// leaf; after locking that leaf (and its predecessor when the leaf empties)
// an unchanged leaf sequence proves the probe still holds, so the common
// case needs no second search under the locks. Other shapes (the extent
// starts after the key, or lies in a neighbour) re-run the query locked.
//
// Invariants (check_invariants() verifies 1-5 and 7 when quiescent):
//  (1) Level 0 from the head visits every live leaf in strictly increasing
//      key order; each upper level is the sequence of the towers of a
//      subsequence of level 0.
//  (2) Every extent lives in the leaf whose range contains its start; slots
//      are sorted; extents never overlap.
//  (3) A live leaf other than the head is non-empty whenever its lock is free
//      (so a reader never sees an empty live non-head leaf).
//  (4) An extent that crosses its leaf's upper boundary was inserted while
//      the next leaf was locked too; hence an extent overlapping a leaf's
//      range from the left can only appear while that leaf is locked.
//  (5) A leaf is marked dead (with count 0) before it is unlinked from level
//      0 and it is retired through rcu::retire only after it is unlinked
//      from every level; readers that meet a dead leaf restart the descent.
//      When quiescent, level k is exactly the towers of the level-0
//      sequence restricted to leaves taller than k, and every cached link
//      key equals its target's key (check_invariants compares links by
//      identity before following them, so the tower of a dead leaf left
//      linked is reported, not walked into). A leaf's tower is freed with
//      the leaf, after the grace period that follows its last unlink.
//  (6) An erase increments erases_in_flight_ before its effect, and after
//      its effect and its gap-bound marks increments erase_version_ and
//      decrements erases_in_flight_. insert_hole() commits only if, under its
//      leaf locks, no erase is in flight and erase_version_ is unchanged
//      since its search began: then no hole opened behind its scan and every
//      gap bound it trusted was an upper bound.
//  (7) Gap bounds (detail/skiplist_gap.hpp): when no erase is in flight,
//      leaf->gap0 (level 0) and tower->gap(l) (level l >= 1) are >= every
//      free gap intersecting the span the leaf or tower heads at that level.
//      New leaves and towers start at "unknown"; searches tighten lazily.
//      A split opens no gap but moves part of a span into a new one, so a
//      search trusts (skips by, or lowers its parent's bound from) a
//      child's bound only if the child's successor is still the one it
//      listed (search_span).
//
// Not supported (deliberately): leaf merging
// (a leaf is removed only when it becomes empty), values that are not
// trivially copyable.
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/seqcount.hpp"
#include "rcukit/detail/skiplist_gap.hpp"
#include "rcukit/detail/skiplist_leaf.hpp"
#include "rcukit/detail/skiplist_level.hpp"
#include "rcukit/detail/slab_arena.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// Compile-time parameters of extent_skiplist. Derive and override to change
// the leaf capacity, the number of levels, or the allocator (tests inject
// allocation failures through allocate()).
struct skiplist_traits {
  static constexpr unsigned leaf_capacity = 32;  // extents per leaf
  static constexpr unsigned max_levels = 32;     // tower height cap (p = 1/2)
  // Every leaf but the head gets an index tower (height >= 2), so tower
  // level 1 lists every leaf and a descent reaches its leaf from the packed
  // towers; false: heights from 1 (p = 1/2), height-1 leaves have no tower.
  static constexpr bool dense_index = true;
  // With the dense index, every tower present at this level (1 in 2^(level
  // - 1)) carries an index block listing the leaves up to the next such
  // tower, so a descent goes from that level straight to the leaf (header
  // essay, "Index blocks"); 0 disables. Entries per block: longer spans
  // keep a prefix, and a descent past it walks the lower levels.
  static constexpr unsigned index_block_level = 7;
  static constexpr unsigned index_block_entries = 255;
  // The largest chunk of the per-skiplist tower arena (chunks double from
  // 4 KiB up to it); 0: every tower is its own allocate() allocation.
  static constexpr std::size_t tower_chunk_bytes = std::size_t{256} << 10;
  // The same for the node arena that leaves and index blocks come from;
  // chunks of 2 MiB and more are aligned to 2 MiB and advised as
  // transparent huge pages (a hint; ordinary pages where THP is off).
  static constexpr std::size_t leaf_chunk_bytes = std::size_t{8} << 20;
  // Returns nullptr on failure; never throws. Arena chunks and the arenas
  // themselves, or own-allocation leaves, towers and blocks, come from here.
  static void* allocate(std::size_t n) noexcept { return ::operator new(n, std::nothrow); }
  static void deallocate(void* p) noexcept { ::operator delete(p); }
};

template <class T, class Rcu = rcu::default_flavor, class Traits = skiplist_traits>
class extent_skiplist {
  static_assert(std::is_trivially_copyable_v<T>,
                "rcukit::extent_skiplist<T>: T must be trivially copyable (values are copied word by word "
                "under a seqcount and returned by value)");
  static_assert(Traits::leaf_capacity >= 2 && Traits::leaf_capacity <= 1024,
                "skiplist_traits::leaf_capacity must be in [2, 1024]");
  static_assert(Traits::max_levels >= 1 && Traits::max_levels <= 64,
                "skiplist_traits::max_levels must be in [1, 64]");

 public:
  using value_type = T;
  using rcu_flavor = Rcu;
  using traits_type = Traits;
  using entry = extent_entry<T>;
  static constexpr unsigned leaf_capacity = Traits::leaf_capacity;
  static constexpr unsigned max_levels = Traits::max_levels;

 private:
  static constexpr unsigned words_ = (sizeof(T) + 7) / 8;
  // Traits::dense_index (optional, default true): every leaf but the head
  // gets height >= 2, so tower level 1 lists every leaf (see the header
  // essay, "Towers"); false: the plain p = 1/2 heights from 1.
  static constexpr bool kDenseIndex = [] {
    if constexpr (requires { Traits::dense_index; }) {
      return static_cast<bool>(Traits::dense_index) && max_levels >= 2;
    } else {
      return max_levels >= 2;
    }
  }();
  // Traits::index_block_level / index_block_entries (optional, default 7
  // and 255; level 0 disables): the towers present at that level carry an
  // index block of the leaves up to their next tower at that level (header
  // essay, "Index blocks"). Only with the dense index, and only when some
  // tower can be that tall.
  static constexpr unsigned kBlockLevelWanted = [] {
    if constexpr (requires { Traits::index_block_level; }) {
      return static_cast<unsigned>(Traits::index_block_level);
    } else {
      return 7u;
    }
  }();
  static constexpr unsigned kBlockEntriesWanted = [] {
    if constexpr (requires { Traits::index_block_entries; }) {
      return static_cast<unsigned>(Traits::index_block_entries);
    } else {
      return 255u;
    }
  }();
  static constexpr bool kBlocks =
      kDenseIndex && kBlockLevelWanted >= 2 && kBlockLevelWanted < max_levels && kBlockEntriesWanted >= 1;
  static constexpr unsigned kBlockLevel = kBlocks ? kBlockLevelWanted : 0;
  static constexpr unsigned kBlockEntries = kBlocks ? kBlockEntriesWanted : 0;
  using leaf = detail::sl_leaf<words_, leaf_capacity, kBlockLevel, kBlockEntries>;
  using tower = typename leaf::tower_type;
  using block = typename tower::block;
  // Towers: one size class per height (classes 0 and 1 unused).
  using arena = detail::slab_arena<Traits, max_levels + 1>;
  // Leaves (class 0) and index blocks (class 1), 64-byte aligned.
  using node_arena = detail::slab_arena<Traits, 2>;
  static_assert(sizeof(tower) % tower::kAlign == 0, "tower links must stay kAlign-aligned after the header");
  static_assert(alignof(block) == alignof(leaf) && sizeof(block) % alignof(leaf) == 0,
                "leaves and blocks share the node arena's alignment");
  using raw = detail::sl_raw_entry<words_>;
  // Traits::tower_chunk_bytes (optional): the largest chunk of the tower
  // arena (detail/skiplist_tower.hpp); 0 = every tower is its own
  // Traits::allocate allocation.
  static constexpr std::size_t kTowerChunk = [] {
    if constexpr (requires { Traits::tower_chunk_bytes; }) {
      return static_cast<std::size_t>(Traits::tower_chunk_bytes);
    } else {
      return std::size_t{256} << 10;
    }
  }();
  // Traits::leaf_chunk_bytes (optional): the largest chunk of the node
  // arena that leaves and index blocks come from (detail/slab_arena.hpp;
  // chunks of 2 MiB and more are huge-page aligned and advised); 0 = every
  // leaf and block is its own Traits::allocate allocation.
  static constexpr std::size_t kLeafChunk = [] {
    if constexpr (requires { Traits::leaf_chunk_bytes; }) {
      return static_cast<std::size_t>(Traits::leaf_chunk_bytes);
    } else {
      return std::size_t{8} << 20;
    }
  }();

 public:
  // Holds a preallocated leaf so that insert() never allocates under a lock.
  // Move-only; an unused leaf is freed by the destructor.
  class preload_token {
   public:
    preload_token() = default;
    preload_token(preload_token&& o) noexcept : leaf_(std::exchange(o.leaf_, nullptr)) {}
    preload_token& operator=(preload_token&& o) noexcept {
      if (this != &o) {
        release();
        leaf_ = std::exchange(o.leaf_, nullptr);
      }
      return *this;
    }
    preload_token(const preload_token&) = delete;
    preload_token& operator=(const preload_token&) = delete;
    ~preload_token() { release(); }
    bool holds_leaf() const noexcept { return leaf_ != nullptr; }

   private:
    friend class extent_skiplist;
    void release() noexcept {
      if (leaf_ != nullptr) free_leaf(std::exchange(leaf_, nullptr));
    }
    leaf* leaf_ = nullptr;
  };

  // A consistent snapshot of one leaf's extents (a copy: valid after the read
  // side ends). Null at either end of the list. Views never repeat an extent
  // of the view they were derived from and never go backwards.
  class leaf_view {
   public:
    leaf_view() = default;
    explicit operator bool() const noexcept { return leaf_ != nullptr; }
    size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    // Precondition: i < size() (violations abort with a message).
    entry at(size_t i) const noexcept {
      if (i >= n_) fatal("leaf_view::at: index out of range");
      return to_entry(e_[i]);
    }

   private:
    friend class extent_skiplist;
    const leaf* leaf_ = nullptr;
    leaf* next_ = nullptr;
    uint32_t n_ = 0;
    raw e_[leaf_capacity];
  };

  extent_skiplist() noexcept {
    head_.key = 0;
    head_.height = max_levels;
    head_.tower = tower::construct(head_tower_mem_, max_levels, &head_);
    head_.tower->key = 0;
    if constexpr (kBlocks) head_.tower->block_slot() = &head_block_;
  }
  extent_skiplist(const extent_skiplist&) = delete;
  extent_skiplist& operator=(const extent_skiplist&) = delete;
  // Not thread-safe: no other thread may use the list or hold a view into it.
  // Leaves already retired are freed by their RCU callbacks (rcu::barrier());
  // those callbacks may run after the destructor: the arenas they free
  // into are reference counted (detail/slab_arena.hpp), so the destructor
  // does not wait for them. Never blocks.
  ~extent_skiplist() {
    leaf* l = head_.next0(std::memory_order_relaxed);  // exclusive access
    while (l != nullptr) {
      leaf* n = l->next0(std::memory_order_relaxed);
      free_leaf(l);
      l = n;
    }
    // relaxed: exclusive access (the destructor runs after every other use).
    if (arena* a = arena_.load(std::memory_order_relaxed)) a->release();
    if (node_arena* a = nodes_.load(std::memory_order_relaxed)) a->release();
  }

  // Allocates the leaf (and its index tower) an insert may need for a
  // split. Blocking only in the allocators (the tower arena's spin lock);
  // takes no skiplist lock. ResourceExhausted if an allocation fails, with
  // nothing allocated.
  absl::StatusOr<preload_token> preload() {
    preload_token t;
    t.leaf_ = alloc_leaf();
    if (t.leaf_ == nullptr) return absl::ResourceExhaustedError("extent_skiplist: leaf allocation failed");
    return t;
  }

  // Inserts [e.start, e.end()) with value v. Blocking (leaf spin locks, at
  // most three plus the index lock on a split); call outside a read side or
  // inside one (both work). InvalidArgument for an invalid extent,
  // AlreadyExists if it overlaps an extent, ResourceExhausted if a split
  // needed a leaf and the allocation failed; in every error case nothing
  // changed. Allocation happens only with no lock held.
  absl::Status insert(extent e, const T& v) {
    preload_token t;
    return insert(e, v, std::move(t));
  }
  absl::Status insert(extent e, const T& v, preload_token&& t) {
    if (auto s = validate_extent(e); !s.ok()) return s;
    preload_token tok = std::move(t);
    switch (insert_impl(make_raw(e, v), tok, nullptr)) {
      case outcome::ok:
        return absl::OkStatus();
      case outcome::exists:
        return absl::AlreadyExistsError("extent_skiplist::insert: extent overlaps an existing extent");
      case outcome::nomem:
        return absl::ResourceExhaustedError("extent_skiplist::insert: leaf allocation failed");
      case outcome::stale:
        break;
    }
    fatal("insert: unexpected outcome");
  }

  // The lowest extent overlapping [key, key + size); nullopt if none or if
  // the query range is empty or overflows. Lock-free (readers retry only
  // while a writer rewrites a leaf they read), linearizable. Opens its own
  // read side.
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1) const {
    rcu::read_guard<Rcu> g;
    return lookup_rcu(g, key, size);
  }
  // Same as lookup(), inside the caller's read side. Never misses an extent
  // present for the whole call, never returns a torn entry.
  std::optional<entry> lookup_rcu(const rcu::read_guard<Rcu>&, uint64_t key, uint64_t size = 1) const {
    if (!is_valid_query(key, size)) return std::nullopt;
    auto r = lookup_raw(key, size);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Removes and returns the lowest extent overlapping [key, key + size).
  // Blocking (leaf locks); linearizable. nullopt if none (or invalid range).
  std::optional<entry> erase(uint64_t key, uint64_t size = 1) {
    if (!is_valid_query(key, size)) return std::nullopt;
    const uint64_t end = key + size;  // valid query: no overflow
    bool want_pred = false;
    for (;;) {
      rcu::read_guard<Rcu> g;
      leaf* l;            // the leaf holding x
      leaf* p = nullptr;  // its predecessor, locked too when x is l's last extent
      uint32_t idx;       // x's slot in l
      raw xr;
      lock_set ls;
      probe q;
      find_leaf_into(key, end, q);
      if (q.has_le && q.le.start + q.le.size > key) {
        // Fast path: x is the extent containing key, in the leaf covering
        // key. One descent; under l's lock, an unchanged sequence proves that
        // l (its slots, count, link 0, so its range) is exactly what the
        // probe saw, so x is still there and still the lowest extent
        // overlapping the query (extents do not overlap, and x contains key).
        l = q.self;
        xr = q.le;
        if (q.n == 1 && l != &head_) {
          probe pq;
          find_leaf_into(l->key - 1, 0, pq);
          p = pq.self;
          ls.add(p);
        }
        ls.add(l);
        if (!ls.lock_and_validate()) continue;
        if (l->seq.current() != q.seq) {  // under l's lock: stable
          ls.unlock();
          continue;
        }
        idx = q.idx - 1;
      } else {
        // General path: x may start after key (possibly in the next leaf)
        // or sit in the previous leaf; lock every leaf involved and re-run
        // the query under the locks.
        const auto x = lookup_raw(key, size);
        if (!x) return std::nullopt;
        leaf* l0 = find_leaf(key).self;
        const probe px = find_leaf(x->start, 0);
        l = px.self;
        if ((want_pred || px.n == 1) && l != &head_) p = find_leaf(l->key - 1, 0).self;
        if (p != nullptr) ls.add(p);
        ls.add(l0);
        ls.add(l);
        if (!ls.lock_and_validate()) continue;
        if (!covers(l0, key) || !covers(l, x->start)) {
          ls.unlock();
          continue;
        }
        const auto y = lookup_raw(key, size);  // the answer with every relevant leaf locked
        if (!y || !same(*y, *x)) {
          ls.unlock();
          continue;
        }
        xr = *x;
        idx = find_slot_locked(l, x->start);
      }
      const uint32_t n = l->count.load(std::memory_order_relaxed);  // we hold l's lock
      if (idx >= n || l->starts[idx].load(std::memory_order_relaxed) != xr.start) {
        fatal("erase: located extent vanished under lock");
      }
      if (n == 1 && l != &head_ && p == nullptr) {
        ls.unlock();  // the leaf empties: its predecessor must be locked too (left to right)
        want_pred = true;
        continue;
      }
      // seq_cst: insert_hole() reads it under its leaf locks (invariant 6).
      erases_in_flight_.fetch_add(1, std::memory_order_seq_cst);
      wait_for_hole_commits();
      leaf* nx = l->next0(std::memory_order_relaxed);  // under l's lock
      const bool first = idx == 0, last = idx + 1 == n;
      bool removed = false;
      if (n == 1 && l != &head_) {
        remove_leaf_locked(p, l);
        removed = true;
      } else {
        l->seq.write_begin();
        raw tmp;
        for (uint32_t i = idx + 1; i < n; ++i) {
          l->load_locked(i, tmp);
          l->store_release(i - 1, tmp);
        }
        l->count.store(n - 1, std::memory_order_release);  // seq-protected (seqcount.hpp)
        l->seq.write_end();
      }
      ls.unlock();
      // The gap around x grew: raise the bounds of every span it intersects
      // (x's leaf, and its neighbours when x was at an edge), then publish.
      uint64_t marks[3] = {xr.start};
      unsigned nm = 1;
      if ((first || removed) && l != &head_) marks[nm++] = l->key - 1;
      if (last && nx != nullptr) marks[nm++] = nx->key;
      mark_keys(marks, nm);
      erase_version_.fetch_add(1, std::memory_order_seq_cst);
      erases_in_flight_.fetch_sub(1, std::memory_order_seq_cst);
      if (removed) rcu::retire_with<&extent_skiplist::free_leaf, Rcu>(l);
      return to_entry(xr);
    }
  }

  // Finds a free aligned range as API.md specifies (next-fit with wrap-around,
  // up or down), inserts it with value v, returns its start. Blocking; retries
  // lost races itself. InvalidArgument for a malformed request,
  // ResourceExhausted if no hole fits or a needed leaf cannot be allocated;
  // nothing changed on error. Linearizable: the search (O(log n) expected
  // through the gap bounds, invariant 7) runs lock-free on a recent state,
  // and the commit re-checks under the target leaf locks that no erase ran
  // meanwhile (invariant 6); otherwise it searches again. After 64 lost
  // rounds (erases never pause) it stops requiring that, uses the linear
  // walk, and commits the first hole still free: then the result may be a
  // hole that was the lowest a moment earlier (progress over exactness).
  // Erases wait (briefly, spinning) for commits that announced themselves.
  absl::StatusOr<uint64_t> insert_hole(const hole_request& r, const T& v) {
    if (auto s = validate_hole_request(r); !s.ok()) return s;
    preload_token tok;
    for (unsigned attempt = 0;; ++attempt) {
      const bool strict = attempt < kStrictAttempts;
      // seq_cst: pairs with the fetch_add in erase() (invariant 6).
      const uint64_t v0 = erase_version_.load(std::memory_order_seq_cst);
      std::optional<uint64_t> s;
      {
        rcu::read_guard<Rcu> g;
        if (strict && !kLinearHoles) {  // O(log n) expected: skips spans whose gap bound is too small
          s = search_summaries(detail::first_pass(r), r);
          if (!s) s = search_summaries(detail::second_pass(r), r);
        } else {  // starved by erases: the linear walk needs no bounds
          s = search_hole(detail::first_pass(r), r);
          if (!s) s = search_hole(detail::second_pass(r), r);
        }
      }
      if (!s) {
        if (!strict || erases_quiet(v0)) {
          return absl::ResourceExhaustedError("extent_skiplist::insert_hole: no hole fits");
        }
        continue;
      }
      switch (insert_impl(make_raw(extent{*s, r.size}, v), tok, strict ? &v0 : nullptr)) {
        case outcome::ok:
          return *s;
        case outcome::nomem:
          return absl::ResourceExhaustedError("extent_skiplist::insert_hole: leaf allocation failed");
        case outcome::exists:
        case outcome::stale:
          break;
      }
    }
  }

  // Calls f(const entry&) for every extent overlapping [lo, hi), ascending.
  // Lock-free; runs f inside a read side (f must not call synchronize or
  // barrier). Under concurrent writers: never yields an extent twice, stays
  // sorted, and yields every extent present for the whole walk.
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f) const {
    if (lo >= hi) return;
    rcu::read_guard<Rcu> g;
    if (lo > 0) {
      if (auto b = last_le_raw(lo - 1); b && b->start + b->size > lo) f(to_entry(*b));
    }
    scan_forward(lo, [&](const raw& x) {
      if (x.start >= hi) return false;
      f(to_entry(x));
      return true;
    });
  }

  // First extent with start >= key. Lock-free, linearizable.
  std::optional<entry> lower_bound(uint64_t key) const {
    rcu::read_guard<Rcu> g;
    for (;;) {
      const probe p = find_leaf(key);
      if (p.has_le && p.le.start == key) return to_entry(p.le);
      if (p.has_gt) return to_entry(p.gt);
      if (p.next == nullptr) return std::nullopt;
      const probe q = do_probe(p.next, key);
      if (q.dead || p.self->seq.current() != p.seq) continue;
      if (q.has_gt) return to_entry(q.gt);
      continue;  // a live non-head leaf is never empty (invariant 3): changed under us
    }
  }

  // Last extent with start < key. Lock-free, linearizable.
  std::optional<entry> prev_extent(uint64_t key) const {
    if (key == 0) return std::nullopt;
    rcu::read_guard<Rcu> g;
    auto r = last_le_raw(key - 1);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Number of extents: exact when no writer runs (a sum of per-leaf counts
  // read one leaf at a time, so it can never go negative or wrap).
  // Lock-free, O(n / leaf_capacity).
  size_t size() const {
    rcu::read_guard<Rcu> g;
    for (;;) {
      size_t total = 0;
      bool restart = false;
      for (const leaf* l = &head_; l != nullptr;) {
        uint32_t n;
        leaf* next;
        bool dead;
        for (;;) {
          const uint64_t s = l->seq.read_begin();
          dead = l->dead.load(std::memory_order_acquire);  // seq-protected
          next = l->next0(std::memory_order_acquire);
          n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), leaf_capacity);
          if (!l->seq.retry(s)) break;
        }
        if (dead) {
          restart = true;
          break;
        }
        total += n;
        l = next;
      }
      if (!restart) return total;
    }
  }

  bool empty() const {
    rcu::read_guard<Rcu> g;
    for (;;) {
      const uint64_t s = head_.seq.read_begin();
      const bool e = head_.count.load(std::memory_order_acquire) == 0 &&
                     head_.next0(std::memory_order_acquire) == nullptr;
      if (!head_.seq.retry(s)) return e;
    }
  }

  // Removes every extent; removed leaves are retired through RCU. Blocking
  // (locks the head and its successor, one leaf at a time). Concurrent
  // inserts may survive (each leaf removal is atomic, the whole clear is not).
  void clear() {
    for (;;) {
      rcu::read_guard<Rcu> g;
      head_.lock.lock();
      leaf* n = head_.next0(std::memory_order_relaxed);  // under head's lock
      if (n != nullptr) {
        n->lock.lock();  // left to right; n is live: removing it needs head's lock
        erases_in_flight_.fetch_add(1, std::memory_order_seq_cst);
        wait_for_hole_commits();
        remove_leaf_locked(&head_, n);
        n->lock.unlock();
        head_.lock.unlock();
        mark_key(0);
        erase_version_.fetch_add(1, std::memory_order_seq_cst);
        erases_in_flight_.fetch_sub(1, std::memory_order_seq_cst);
        rcu::retire_with<&extent_skiplist::free_leaf, Rcu>(n);
        continue;
      }
      const bool had = head_.count.load(std::memory_order_relaxed) != 0;
      if (had) {
        erases_in_flight_.fetch_add(1, std::memory_order_seq_cst);
        wait_for_hole_commits();
        head_.seq.write_begin();
        head_.count.store(0, std::memory_order_release);  // seq-protected
        head_.seq.write_end();
      }
      head_.lock.unlock();
      if (had) {
        mark_key(0);
        erase_version_.fetch_add(1, std::memory_order_seq_cst);
        erases_in_flight_.fetch_sub(1, std::memory_order_seq_cst);
      }
      return;
    }
  }

  // Leaf iteration inside the caller's read side. Each view is a snapshot;
  // next_leaf/prev_leaf continue strictly after/before the extents of the
  // view passed in, so a walk never repeats an extent and stays sorted.
  leaf_view first_leaf(const rcu::read_guard<Rcu>&) const { return view_from(0); }
  leaf_view next_leaf(const rcu::read_guard<Rcu>&, const leaf_view& v) const {
    if (!v || v.n_ == 0) return {};
    const uint64_t last = v.e_[v.n_ - 1].start;
    return view_from(last + 1, v.next_);
  }
  leaf_view last_leaf(const rcu::read_guard<Rcu>&) const { return view_before(UINT64_MAX, true); }
  leaf_view prev_leaf(const rcu::read_guard<Rcu>&, const leaf_view& v) const {
    if (!v || v.n_ == 0 || v.e_[0].start == 0) return {};
    return view_before(v.e_[0].start, false);
  }

  // Verifies invariants 1-5 and 7, and the leaf/tower invariants (call when
  // no writer runs; the acquire loads below pair with the writers' release
  // stores of their last mutation). OK or Internal with
  // the first violation found.
  absl::Status check_invariants() const {
    const leaf* prev = nullptr;
    bool have_end = false;
    uint64_t prev_end = 0;
    for (const leaf* l = &head_; l != nullptr; l = l->next0(std::memory_order_acquire)) {
      const uint32_t n = l->count.load(std::memory_order_acquire);
      const leaf* nx = l->next0(std::memory_order_acquire);
      if (l->dead.load(std::memory_order_acquire)) return bad("dead leaf reachable at level 0", l);
      if (n > leaf_capacity) return bad("count above capacity", l);
      if (l != &head_ && n == 0) return bad("empty live non-head leaf", l);
      if (prev != nullptr && l->key <= prev->key) return bad("leaf keys not increasing", l);
      if (l->height < 1 || l->height > max_levels) return bad("bad height", l);
      if (l->seq.current() & 1) return bad("seqcount odd when quiescent", l);
      for (uint32_t i = 0; i < n; ++i) {
        raw r;
        l->load_acquire(i, r);
        if (!is_valid_extent(r.start, r.size)) return bad("invalid extent stored", l);
        if (r.start < l->key) return bad("extent starts below its leaf key", l);
        if (nx != nullptr && r.start >= nx->key) return bad("extent starts beyond its leaf range", l);
        if (have_end && r.start < prev_end) return bad("extents overlap or are unsorted", l);
        prev_end = r.start + r.size;
        have_end = true;
      }
      prev = l;
    }
    // Leaf invariant 1: a tower exactly for the leaves taller than 1, with
    // the leaf's key and height and pointing back to it.
    for (const leaf* l = head_.next0(std::memory_order_acquire); l != nullptr;
         l = l->next0(std::memory_order_acquire)) {
      if ((l->tower != nullptr) != (l->height > 1)) return bad("tower present iff height > 1 violated", l);
      if (l->tower != nullptr) {
        if (l->tower->leaf != l) return bad("tower does not point back to its leaf", l);
        if (l->tower->key != l->key) return bad("tower key differs from its leaf's key", l);
      }
    }
    // Invariants 1 and 5 above level 0: level k must be exactly the towers
    // of the level-0 sequence restricted to leaves taller than k, in order.
    // Compared by pointer identity before any dereference, so a link to the
    // tower of a dead (maybe already freed) leaf, or one that skips or
    // reorders towers, is reported without touching the bad tower. Every
    // cached key must equal its target's.
    const unsigned top = levels_.load(std::memory_order_relaxed);
    std::vector<const leaf*> live;  // level 0, in order, without the head
    for (const leaf* l = head_.next0(std::memory_order_acquire); l != nullptr;
         l = l->next0(std::memory_order_acquire)) {
      live.push_back(l);
    }
    for (const leaf* l = &head_; l != nullptr; l = l->next0(std::memory_order_acquire)) {
      const leaf* n = l->next0(std::memory_order_acquire);
      if (l->link0.key.load(std::memory_order_acquire) != (n != nullptr ? n->key : detail::kNoKey)) {
        return bad("level-0 cached key differs from its target's key", l);
      }
      if (l != &head_ && l->height > top)
        return bad("leaf taller than the level hint (unreachable levels)", l);
    }
    for (unsigned k = 1; k < max_levels; ++k) {
      const tower* p = head_.tower;
      size_t i = 0;  // position in `live` after p's leaf
      for (;;) {
        while (i < live.size() && live[i]->height <= k) ++i;
        const tower* want = i < live.size() ? live[i]->tower : nullptr;
        const tower* n = p->next(k, std::memory_order_acquire);
        if (n != want) {
          if (n == nullptr) return bad("upper level ends before a tall enough leaf (skipped)", p->leaf);
          if (std::find_if(live.begin(), live.end(), [&](const leaf* l) { return l->tower == n; }) ==
              live.end()) {
            return bad("upper level links a tower whose leaf is dead or not at level 0", p->leaf);
          }
          return bad("upper level link skips or disorders towers", p->leaf);
        }
        if (p->link_at(k).key.load(std::memory_order_acquire) != (n != nullptr ? n->key : detail::kNoKey)) {
          return bad("upper-level cached key differs from its target's key", p->leaf);
        }
        if (n == nullptr) break;
        p = n;
        ++i;
      }
    }
    // The block invariant (index blocks, above rebuild_block): the levels
    // are verified above, so the walks below stay on live towers.
    if constexpr (kBlocks) {
      for (const tower* t = head_.tower; t != nullptr; t = t->next(kBlockLevel, std::memory_order_acquire)) {
        const auto& b = t->index_block();
        const tower* end = t->next(kBlockLevel, std::memory_order_acquire);
        const uint32_t n = b.n.load(std::memory_order_acquire);
        if (n > kBlockEntries) return bad("index block count above capacity", t->leaf);
        uint32_t i = 0;
        for (const tower* u = t->next(1, std::memory_order_acquire); u != end;
             u = u->next(1, std::memory_order_acquire), ++i) {
          if (i >= n) {
            if (b.partial.load(std::memory_order_acquire) == 0)
              return bad("index block misses a leaf", t->leaf);
            break;
          }
          if (b.e[i].leaf.load(std::memory_order_acquire) != u->leaf ||
              b.e[i].key.load(std::memory_order_acquire) != u->key) {
            return bad("index block entry differs from level 1", t->leaf);
          }
        }
        if (i < n) return bad("index block lists a leaf past its span", t->leaf);
        if (b.seq.current() & 1) return bad("index block seqcount odd when quiescent", t->leaf);
      }
    }
    // Invariant 7: every bound covers the true largest gap of its span.
    rcu::read_guard<Rcu> g;
    auto span_gap = [&](const leaf* x, const leaf* end) {
      uint64_t biggest = 0;
      for (const leaf* y = x; y != end; y = y->next0(std::memory_order_acquire)) {
        leaf_gaps lg;
        gaps_of(y, lg);
        for (uint32_t i = 0; i < lg.n; ++i) biggest = std::max(biggest, lg.g[i].second - lg.g[i].first);
      }
      return biggest;
    };
    for (const leaf* x = &head_; x != nullptr; x = x->next0(std::memory_order_acquire)) {
      if (!detail::gap_may_fit(x->gap0.load(std::memory_order_acquire),
                               span_gap(x, x->next0(std::memory_order_acquire)))) {
        return bad("level-0 gap bound below the true largest gap of its span", x);
      }
    }
    for (unsigned k = 1; k < top; ++k) {
      for (const tower* x = head_.tower; x != nullptr; x = x->next(k, std::memory_order_acquire)) {
        const tower* end = x->next(k, std::memory_order_acquire);
        if (!detail::gap_may_fit(x->gap(k).load(std::memory_order_acquire),
                                 span_gap(x->leaf, end != nullptr ? end->leaf : nullptr))) {
          return bad("upper-level gap bound below the true largest gap of its span", x->leaf);
        }
      }
    }
    return absl::OkStatus();
  }

  // Debug/test statistics: number of leaves reachable now (quiescent).
  size_t leaf_count() const {
    rcu::read_guard<Rcu> g;
    size_t n = 0;
    for (const leaf* l = &head_; l != nullptr; l = l->next0(std::memory_order_acquire)) ++n;
    return n;
  }

 private:
  enum class outcome { ok, exists, nomem, stale };
  static constexpr unsigned kStrictAttempts = 64;
  static constexpr uint32_t kGroup = 64 / sizeof(uint64_t);  // slot starts per cache line
  // Traits::linear_hole_search (optional, default false) forces the linear
  // walk, so tests can check it against the model too.
  static constexpr bool kLinearHoles = [] {
    if constexpr (requires { Traits::linear_hole_search; }) {
      return static_cast<bool>(Traits::linear_hole_search);
    } else {
      return false;
    }
  }();

  [[noreturn]] static void fatal(const char* what) noexcept {
    std::fprintf(stderr, "rcukit::extent_skiplist: %s\n", what);
    std::abort();
  }
  static absl::Status bad(const char* what, const leaf* l) {
    return absl::InternalError(std::string("extent_skiplist invariant: ") + what + " (leaf key " +
                               std::to_string(l != nullptr ? l->key : 0) + ")");
  }

  // Leaves are 64-byte aligned (the cache layout of skiplist_leaf.hpp): from
  // the node arena, or inside an allocation of Traits::allocate (which only
  // promises operator new's alignment) that the leaf remembers in `mem`. The
  // height is drawn here, so the tower (levels 1..height-1) and its index
  // block are allocated with the leaf and a split never allocates. nullptr
  // (nothing allocated) on failure.
  leaf* alloc_leaf() noexcept {
    node_arena* na = nullptr;
    leaf* l;
    if constexpr (kLeafChunk != 0) {
      na = get_arena(nodes_, kNodeSizes, alignof(leaf), kLeafChunk);
      void* lm = na != nullptr ? na->allocate(0) : nullptr;
      if (lm == nullptr) return nullptr;
      l = ::new (lm) leaf();
      l->nodes = na;
    } else {
      void* p = Traits::allocate(sizeof(leaf) + alignof(leaf));
      if (p == nullptr) return nullptr;
      l = ::new (align_up(p, alignof(leaf))) leaf();
      l->mem = p;
    }
    l->height = kDenseIndex ? std::min(max_levels, 1 + detail::random_level(max_levels))
                            : detail::random_level(max_levels);
    if (l->height == 1) return l;
    void* tm = nullptr;
    if constexpr (kTowerChunk == 0) {
      l->tower_mem = Traits::allocate(tower::bytes(l->height) + tower::kAlign);
      if (l->tower_mem != nullptr) tm = align_up(l->tower_mem, tower::kAlign);
    } else if (arena* ar = get_arena(arena_, kTowerSizes, tower::kAlign, kTowerChunk)) {
      tm = ar->allocate(l->height);
      if (tm != nullptr) l->arena = ar;
    }
    if (tm == nullptr) {
      free_leaf(l);
      return nullptr;
    }
    l->tower = tower::construct(tm, l->height, l);
    if constexpr (kBlocks) {
      if (tower::has_block(l->height)) {
        void* bm = nullptr;
        if (na != nullptr) {
          bm = na->allocate(1);
        } else {
          l->block_mem = Traits::allocate(sizeof(block) + alignof(block));
          if (l->block_mem != nullptr) bm = align_up(l->block_mem, alignof(block));
        }
        if (bm == nullptr) {
          free_leaf(l);
          return nullptr;
        }
        l->tower->block_slot() = ::new (bm) block();
      }
    }
    return l;
  }
  // Frees an unpublished leaf, or a retired one after its grace period
  // (rcu::retire_with callback), together with its tower and block.
  static void free_leaf(leaf* l) noexcept {
    node_arena* const na = static_cast<node_arena*>(l->nodes);
    if (tower* t = l->tower) {
      const unsigned h = l->height;
      if (tower::has_block(h) && t->block_slot() != nullptr) {
        block* b = t->block_slot();
        b->~block();
        if (na != nullptr) {
          na->deallocate(b, 1);
        } else {
          Traits::deallocate(l->block_mem);
        }
      }
      t->~tower();
      if (l->arena != nullptr) {
        static_cast<arena*>(l->arena)->deallocate(tower::base(t, h), h);
      } else {
        Traits::deallocate(l->tower_mem);
      }
    }
    void* p = l->mem;
    l->~leaf();
    if (na != nullptr) {
      na->deallocate(l, 0);
    } else {
      Traits::deallocate(p);
    }
  }
  static void* align_up(void* p, std::size_t a) noexcept {
    return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(p) + a - 1) & ~uintptr_t{a - 1});
  }
  static constexpr std::array<std::size_t, max_levels + 1> kTowerSizes = [] {
    std::array<std::size_t, max_levels + 1> z{};
    for (unsigned h = 0; h <= max_levels; ++h) z[h] = h >= 2 ? tower::bytes(h) : tower::kAlign;
    return z;
  }();
  static constexpr std::array<std::size_t, 2> kNodeSizes = {sizeof(leaf), sizeof(block)};
  // An arena of the skiplist, created on first use (nullptr if that
  // allocation fails).
  template <class A, std::size_t N>
  static A* get_arena(std::atomic<A*>& slot, const std::array<std::size_t, N>& sizes, std::size_t align,
                      std::size_t max_chunk) noexcept {
    // acquire: pairs with the release CAS below; the arena is constructed.
    A* a = slot.load(std::memory_order_acquire);
    if (a != nullptr) return a;
    A* n = A::create(sizes, align, max_chunk);
    if (n == nullptr) return nullptr;
    // acq_rel: publishes the new arena / acquires the winner's on failure.
    if (slot.compare_exchange_strong(a, n, std::memory_order_acq_rel, std::memory_order_acquire)) return n;
    n->release();  // another thread won
    return a;
  }

  static raw make_raw(extent e, const T& v) noexcept {
    raw r{};
    r.start = e.start;
    r.size = e.size;
    std::memcpy(r.w, &v, sizeof(T));
    return r;
  }
  static entry to_entry(const raw& r) noexcept {
    std::array<unsigned char, sizeof(T)> b;
    std::memcpy(b.data(), r.w, sizeof(T));
    return entry{extent{r.start, r.size}, std::bit_cast<T>(b)};
  }
  static bool same(const raw& a, const raw& b) noexcept {
    return a.start == b.start && a.size == b.size && std::memcmp(a.w, b.w, sizeof(a.w)) == 0;
  }

  // --- lockless reading ----------------------------------------------------

  // One consistent look at a leaf around `key`: le = last slot with
  // start <= key (slot idx - 1), gt = first slot with start > key (slot idx).
  // gt.start is always filled in; gt's size and value only when
  // gt.start < the caller's gt_limit (the rest is not needed, so not loaded).
  // next_key is the key of `next` (kNoKey for null), read in the same
  // snapshot, so the two are consistent.
  struct probe {
    leaf* self = nullptr;
    leaf* next = nullptr;
    uint64_t next_key = detail::kNoKey;
    uint64_t seq = 0;
    uint32_t n = 0;
    uint32_t idx = 0;
    bool dead = false;
    bool has_le = false;
    bool has_gt = false;
    raw le{};
    raw gt{};
  };

  static probe do_probe(const leaf* l, uint64_t key, uint64_t gt_limit = UINT64_MAX) noexcept {
    probe p;
    probe_into(l, key, gt_limit, p);
    return p;
  }
  // The same, filling the caller's probe in place (the hot paths: no copy of
  // the ~100-byte struct, whose piecewise stores and wide reloads stall store
  // forwarding).
  static void probe_into(const leaf* l, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    p.self = const_cast<leaf*>(l);
    l->prefetch_slots();  // the search and the slot reads below
    for (;;) {
      p.seq = l->seq.read_begin();
      p.dead = l->dead.load(std::memory_order_acquire);  // seq-protected
      // acquire (both, seq-protected): pair with set_link's release stores in split/remove.
      p.next = l->link0.ptr.load(std::memory_order_acquire);
      p.next_key = l->link0.key.load(std::memory_order_acquire);
      // Clamp: a torn count is discarded by the retry below, but must not index out of bounds.
      const uint32_t n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), leaf_capacity);
      p.n = n;
      // The number of starts <= key (8 to a line, prefetched above).
      // acquire (all): seq-protected slots (seqcount.hpp).
      const uint32_t idx =
          count_le<kGroup>(n, key, [l](uint32_t i) { return l->starts[i].load(std::memory_order_acquire); });
      p.idx = idx;
      p.has_le = idx > 0;
      p.has_gt = idx < n;
      if (p.has_le) l->load_acquire(idx - 1, p.le);
      if (p.has_gt) {
        p.gt.start = l->starts[idx].load(std::memory_order_acquire);  // seq-protected
        if (p.gt.start < gt_limit) l->load_rest_acquire(idx, p.gt);
      }
      if (!l->seq.retry(p.seq)) return;
    }
  }

  // The number of keys <= key among key_at(0 .. n-1), which are sorted, in
  // two rounds of independent loads: count the groups of Group keys (one
  // cache line each, prefetched by the caller) whose first key is <= key,
  // then count inside the chosen group. Unsorted (torn) keys only give a
  // wrong count, which the caller's seqcount retry discards; it stays <= n.
  template <uint32_t Group, class KeyAt>
  static uint32_t count_le(uint32_t n, uint64_t key, KeyAt key_at) noexcept {
    uint32_t g = 0;
    for (uint32_t j = Group; j < n; j += Group) g += key_at(j) <= key ? 1 : 0;
    const uint32_t lo = g * Group, hi = std::min(lo + Group, n);
    uint32_t idx = lo;
    for (uint32_t i = lo; i < hi; ++i) idx += key_at(i) <= key ? 1 : 0;
    return idx;
  }

  // Moves right from tower t along level lvl (>= 1) while the successor's
  // cached key is <= key, touching only the towers (packed in the arena, so
  // normally cached) and never a leaf. Then walk_right0 continues at level
  // 0 from t's leaf, and the caller checks the real key of the leaf the
  // whole descent ends on (find_leaf). Why that is enough, although pointer
  // and cached key are two words that a reader may see from two different
  // link updates (skiplist_tower.hpp, skiplist_leaf.hpp):
  //  (a) a cached key that is too high only makes us stay at t; every level
  //      below contains t (its leaf, at level 0) and continues from it in
  //      key order, so the descent stops a level early and the next level
  //      walks a little longer;
  //  (b) a cached key that is too low can move us to a tower (or, at level
  //      0, a leaf) whose real key is > key. Links only point to higher keys
  //      (along any level, live or dead leaves and their towers alike: a
  //      removed leaf and its tower keep their forward links until freed
  //      after a grace period), and a tower's leaf has the tower's key, so
  //      from then on every leaf or tower reached has a key > key too, and
  //      the final check of the real key of the leaf we end on catches it:
  //      find_leaf restarts. If that final key is <= key, every node on the
  //      path had a key <= key, which is all the plain descent relied on.
  // Both windows are one writer's two consecutive stores wide.
  static const tower* walk_tower(const tower* t, unsigned lvl, uint64_t key) noexcept {
    for (;;) {
      const auto& ln = t->link_at(lvl);
      // relaxed: a hint, checked through the final real-key check (above).
      if (ln.key.load(std::memory_order_relaxed) > key) return t;
      // acquire: pairs with the release store in tower::set_link; the
      // tower's immutable header and its links are visible.
      const tower* n = ln.ptr.load(std::memory_order_acquire);
      if (n == nullptr) return t;
      t = n;
    }
  }
  // The same along level 0 (the leaves' link 0; one line per move).
  static const leaf* walk_right0(const leaf* x, uint64_t key) noexcept {
    for (;;) {
      // relaxed: a hint, checked through the final real-key check (walk_tower (b)).
      if (x->link0.key.load(std::memory_order_relaxed) > key) return x;
      // acquire: pairs with the release store in set_next0; the leaf's
      // immutable key and link are visible.
      const leaf* n = x->link0.ptr.load(std::memory_order_acquire);
      if (n == nullptr) return x;
      n->prefetch_slots();  // it may be the leaf we probe: overlap its slot misses with its line 0
      x = n;
    }
  }

  // The leaf to walk level 0 from, from the index block of t (a tower of
  // height > kBlockLevel that the descent stands on at that level): the
  // last listed leaf whose key is <= key, or t's own leaf if none is; null
  // if the block is a partial prefix and key lies past its last entry (the
  // caller descends t's lower levels instead). Like a cached link key, the
  // result is a hint that find_leaf_into checks: the seqcount only rules out
  // a torn entry; a block can lag its tower's span by one index update, or
  // belong to a tower already unlinked, and still only name leaves that
  // were linked while we were inside the read side (so not yet freed), any
  // of which is a valid start of the level-0 walk if its key is <= key.
  static const leaf* block_floor(const tower* t, uint64_t key) noexcept {
    const auto& b = t->index_block();
    constexpr uint32_t kPerLine = 64 / sizeof(typename tower::block_entry);
    // Prefetch the lines a typical block spans (header and ~60 entries at
    // the default level), so the misses of the two rounds below overlap
    // (16 lines measured ~10% faster than 6 at 10^7, header essay).
    const char* base = reinterpret_cast<const char*>(&b);
    constexpr std::size_t kWarm = std::min<std::size_t>(sizeof(b), 16 * 64);
    for (std::size_t off = 0; off < kWarm; off += 64) __builtin_prefetch(base + off);
    for (;;) {
      const uint64_t s = b.seq.read_begin();
      // acquire (all): seq-protected fields (seqcount.hpp); the leaf
      // pointers also pair with the release stores of the block writers,
      // which follow the leaves' publication at level 0.
      const uint32_t n = std::min<uint32_t>(b.n.load(std::memory_order_acquire), kBlockEntries);
      const bool partial = b.partial.load(std::memory_order_acquire) != 0;
      const uint32_t idx =
          count_le<kPerLine>(n, key, [&b](uint32_t i) { return b.e[i].key.load(std::memory_order_acquire); });
      const leaf* x = idx == 0 ? t->leaf : b.e[idx - 1].leaf.load(std::memory_order_acquire);
      const bool past = partial && idx == n;
      if (!b.seq.retry(s)) return past ? nullptr : x;
    }
  }

  // The live leaf covering `key`, probed at `key` (gt_limit: see probe).
  // Restarts from the head when it meets a dead leaf (invariant 5). Caller
  // holds a read side.
  probe find_leaf(uint64_t key, uint64_t gt_limit = UINT64_MAX) const noexcept {
    probe p;
    find_leaf_into(key, gt_limit, p);
    return p;
  }
  void find_leaf_into(uint64_t key, uint64_t gt_limit, probe& p) const noexcept {
    for (;;) {
      const tower* t = head_.tower;
      // relaxed: a hint; a stale (lower) value only makes the descent longer.
      const unsigned top = levels_.load(std::memory_order_relaxed);
      const leaf* x;
      if constexpr (kBlocks) {
        // Down to the block level (the head has a block: a hint below it
        // starts here), then the block of the tower we stand on names the
        // leaf; past a partial block's prefix, the towers below do.
        for (unsigned lvl = top; lvl-- > kBlockLevel;) t = walk_tower(t, lvl, key);
        x = block_floor(t, key);
        if (x == nullptr) {
          for (unsigned lvl = kBlockLevel; lvl-- > 1;) t = walk_tower(t, lvl, key);
          x = t->leaf;  // immutable (tower invariant 1)
        }
      } else {
        for (unsigned lvl = top; lvl-- > 1;) t = walk_tower(t, lvl, key);
        x = t->leaf;  // immutable (tower invariant 1)
      }
      x->prefetch_slots();  // the descent's first leaf miss: overlap line 0 and the slots
      for (;;) {
        // Move right without a snapshot while the successor's key is <= key:
        // keys are immutable, so the covering leaf is at or after it.
        x = walk_right0(x, key);
        if (x->key > key) break;  // a stale cached key sent us too far (walk_tower (b)): restart
        probe_into(x, key, gt_limit, p);
        if (p.dead) break;
        if (p.next != nullptr && p.next_key <= key) {  // next_key is consistent with next (same snapshot)
          x = p.next;
          continue;
        }
        return;
      }
    }
  }

  // Last extent with start <= key (linearizable).
  std::optional<raw> last_le_raw(uint64_t key) const noexcept {
    for (;;) {
      const probe p = find_leaf(key);
      if (p.has_le) return p.le;
      if (p.self == &head_) return std::nullopt;
      const probe q = find_leaf(p.self->key - 1, 0);
      // Both snapshots held at one instant: q saw p.self as its successor and
      // p.self did not change since its probe.
      if (q.next != p.self || p.self->seq.current() != p.seq) continue;
      if (q.has_le) return q.le;
      return std::nullopt;
    }
  }

  std::optional<raw> lookup_raw(uint64_t key, uint64_t size) const noexcept {
    const uint64_t end = key + size;  // valid query: no overflow
    probe p;
    for (;;) {
      find_leaf_into(key, end, p);
      if (p.has_le) {
        if (p.le.start + p.le.size > key) return p.le;
      } else if (p.self != &head_) {
        probe q;
        find_leaf_into(p.self->key - 1, 0, q);
        if (q.next != p.self || p.self->seq.current() != p.seq) continue;
        if (q.has_le && q.le.start + q.le.size > key) return q.le;
      }
      if (p.has_gt) {
        if (p.gt.start < end) return p.gt;  // loaded in full (gt_limit = end)
        return std::nullopt;
      }
      if (p.next == nullptr || p.next_key >= end) return std::nullopt;
      probe r;
      probe_into(p.next, key, end, r);
      if (r.dead || p.self->seq.current() != p.seq) continue;
      if (!r.has_gt) continue;  // invariant 3: cannot be a consistent state
      if (r.gt.start < end) return r.gt;
      return std::nullopt;
    }
  }

  struct leaf_copy {
    leaf* next = nullptr;
    uint32_t n = 0;
    bool dead = false;
  };
  static leaf_copy copy_leaf(const leaf* l, raw* out) noexcept {
    leaf_copy c;
    for (;;) {
      const uint64_t s = l->seq.read_begin();
      c.dead = l->dead.load(std::memory_order_acquire);  // seq-protected
      c.next = l->next0(std::memory_order_acquire);      // seq-protected
      c.n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), leaf_capacity);
      for (uint32_t i = 0; i < c.n; ++i) l->load_acquire(i, out[i]);
      if (!l->seq.retry(s)) return c;
    }
  }

  // Calls f(raw) for extents with start >= from, ascending, until f returns
  // false. Never repeats an extent, never goes backwards; every extent
  // present for the whole scan is visited (each leaf is one snapshot, and the
  // next leaf is the successor recorded in that snapshot).
  template <class F>
  void scan_forward(uint64_t from, F&& f) const {
    uint64_t next_start = from;
    const leaf* l = find_leaf(from).self;
    raw buf[leaf_capacity];
    while (l != nullptr) {
      const leaf_copy c = copy_leaf(l, buf);
      if (c.dead) {
        l = find_leaf(next_start).self;
        continue;
      }
      for (uint32_t i = 0; i < c.n; ++i) {
        if (buf[i].start < next_start) continue;
        if (!f(buf[i])) return;
        next_start = buf[i].start + 1;  // start <= UINT64_MAX - 1 for a valid extent
      }
      if (c.next != nullptr && c.next->key > next_start) next_start = c.next->key;
      l = c.next;
    }
  }

  // Calls f(raw) for extents with start < below, descending, until f returns
  // false. Used by the downward hole search, whose result is re-validated
  // under locks, so it only needs to be a plausible recent state.
  template <class F>
  void scan_backward(uint64_t below, F&& f) const {
    if (below == 0) return;
    uint64_t bound = below;  // only extents with start < bound remain to visit
    const leaf* l = find_leaf(bound - 1).self;
    raw buf[leaf_capacity];
    for (;;) {
      const leaf_copy c = copy_leaf(l, buf);
      if (c.dead) {
        l = find_leaf(bound - 1).self;
        continue;
      }
      for (uint32_t i = c.n; i-- > 0;) {
        if (buf[i].start >= bound) continue;
        if (!f(buf[i])) return;
        bound = buf[i].start;
      }
      if (l == &head_ || l->key == 0) return;
      if (l->key < bound) bound = l->key;
      if (bound == 0) return;
      l = find_leaf(bound - 1).self;
    }
  }

  // The view of the first leaf holding extents with start >= from (starting
  // at `start` when the caller knows the leaf), restricted to those extents.
  leaf_view view_from(uint64_t from, leaf* start = nullptr) const {
    leaf_view v;
    const leaf* l = start != nullptr ? start : find_leaf(from).self;
    while (l != nullptr) {
      const leaf_copy c = copy_leaf(l, v.e_);
      if (c.dead) {
        l = find_leaf(from).self;
        continue;
      }
      uint32_t k = 0;
      for (uint32_t i = 0; i < c.n; ++i) {
        if (v.e_[i].start >= from) v.e_[k++] = v.e_[i];
      }
      if (k > 0) {
        v.leaf_ = l;
        v.next_ = c.next;
        v.n_ = k;
        return v;
      }
      l = c.next;
    }
    return {};
  }

  // The view of the last leaf holding extents with start < bound (or <= bound
  // when inclusive), restricted to those extents.
  leaf_view view_before(uint64_t bound, bool inclusive) const {
    leaf_view v;
    uint64_t probe_key = inclusive ? bound : bound - 1;
    for (;;) {
      const leaf* l = find_leaf(probe_key).self;
      const leaf_copy c = copy_leaf(l, v.e_);
      if (c.dead) continue;
      uint32_t k = 0;
      for (uint32_t i = 0; i < c.n; ++i) {
        if (v.e_[i].start <= probe_key) v.e_[k++] = v.e_[i];
      }
      if (k > 0) {
        v.leaf_ = l;
        v.next_ = c.next;
        v.n_ = k;
        return v;
      }
      if (l == &head_ || l->key == 0) return {};
      probe_key = l->key - 1;
    }
  }

  // --- hole search -----------------------------------------------------------

  // The API.md answer inside one pass window, on a lockless recent state.
  std::optional<uint64_t> search_hole(detail::hole_window w, const hole_request& r) const {
    if (w.hi < w.lo || w.hi - w.lo < r.size) return std::nullopt;
    std::optional<uint64_t> found;
    if (r.dir == hole_request::direction::up) {
      uint64_t cursor = w.lo;  // free space starts here (if not covered)
      if (w.lo > 0) {
        if (auto b = last_le_raw(w.lo - 1); b && b->start + b->size > cursor) cursor = b->start + b->size;
      }
      bool done = false;
      scan_forward(w.lo, [&](const raw& x) {
        if (cursor >= w.hi || w.hi - cursor < r.size) {
          done = true;
          return false;
        }
        if (x.start > cursor) {
          const uint64_t hi = std::min(x.start, w.hi);
          if (hi > cursor) {
            if (auto s = detail::fit_lowest(cursor, hi, r.size, r.align)) {
              found = s;
              return false;
            }
          }
        }
        cursor = std::max(cursor, x.start + x.size);
        return x.start < w.hi;
      });
      if (found || done) return found;
      if (cursor < w.hi) return detail::fit_lowest(cursor, w.hi, r.size, r.align);
      return std::nullopt;
    }
    uint64_t top = w.hi;  // free space ends here (exclusive) if not covered
    bool done = false;
    scan_backward(w.hi, [&](const raw& x) {
      const uint64_t xend = x.start + x.size;
      if (xend < top) {
        const uint64_t lo = std::max(xend, w.lo);
        if (top > lo) {
          if (auto s = detail::fit_highest(lo, top, r.size, r.align)) {
            found = s;
            return false;
          }
        }
      }
      top = std::min(top, x.start);
      if (top <= w.lo || top - w.lo < r.size) {
        done = true;
        return false;
      }
      return true;
    });
    if (found || done) return found;
    return detail::fit_highest(w.lo, top, r.size, r.align);
  }

  // --- gap bounds (invariant 7) ---------------------------------------------

  // An erase, announced in erases_in_flight_, lets announced insert_hole
  // commits finish before its effect (invariant 6). Commits hold no lock an
  // erase can hold and wait for nothing, so this wait is short and cannot
  // deadlock.
  void wait_for_hole_commits() const noexcept {
    int spins = 0;
    // seq_cst: pairs with the fetch_add in insert_impl() (Dekker-style).
    while (hole_commits_.load(std::memory_order_seq_cst) != 0) {
      if (++spins > 64) {
        std::this_thread::yield();
        spins = 0;
      }
    }
  }

  bool erases_quiet(uint64_t v0) const noexcept {
    // seq_cst (both): pairs with the RMWs in erase()/clear() (invariant 6).
    return erases_in_flight_.load(std::memory_order_seq_cst) == 0 &&
           erase_version_.load(std::memory_order_seq_cst) == v0;
  }

  // The node heading, at every level, the span that contains a key: the
  // leaf at level 0, a tower above.
  struct span_path {
    leaf* l0 = nullptr;
    tower* t[max_levels] = {};  // t[0] unused
    const void* node(unsigned lvl) const noexcept {
      return lvl == 0 ? static_cast<const void*>(l0) : static_cast<const void*>(t[lvl]);
    }
    std::atomic<uint64_t>& gap(unsigned lvl) const noexcept { return lvl == 0 ? l0->gap0 : t[lvl]->gap(lvl); }
  };

  // For every level, the node heading the span that contains `key`.
  // Above level 0 the walk follows cached link keys (as in find_leaf) inside
  // a read section of index_seq_: tower links change only in index_seq_
  // write sections, so an unchanged sequence means no link changed during
  // the walk, every cached key equalled its target's key (tower invariant
  // 2), and the result is what the exact walk would give. Level 0 compares
  // real keys.
  void span_heads(uint64_t key, span_path& out, unsigned top) const noexcept {
    const tower* t;
    for (;;) {
      const uint64_t s = index_seq_.read_begin();
      t = head_.tower;
      for (unsigned lvl = top; lvl-- > 1;) {
        for (;;) {
          const auto& ln = t->link_at(lvl);
          // acquire (both): index_seq_-protected (seqcount.hpp); pair with tower::set_link's release stores.
          if (ln.key.load(std::memory_order_acquire) > key) break;
          const tower* n = ln.ptr.load(std::memory_order_acquire);
          if (n == nullptr) break;
          t = n;
        }
        out.t[lvl] = const_cast<tower*>(t);
      }
      if (!index_seq_.retry(s)) break;
    }
    if (top == 0) return;
    const leaf* x = t->leaf;  // immutable (tower invariant 1)
    // acquire: pairs with the release stores of link 0 in split/remove.
    const leaf* n = x->next0(std::memory_order_acquire);
    while (n != nullptr && n->key <= key) {
      x = n;
      n = x->next0(std::memory_order_acquire);
    }
    out.l0 = const_cast<leaf*>(x);
  }

  // Raises the bound of every span containing one of `keys` (at most 3),
  // bottom level first, and repeats while those spans changed under it (a
  // concurrent split or removal), so that the spans containing each key when
  // it returns are all marked. A span shared by several keys (the upper
  // levels, nearly always) is marked once: one mark is as good as two.
  void mark_keys(const uint64_t* keys, unsigned nk) noexcept {
    rcu::read_guard<Rcu> g;
    span_path heads[3];
    span_path again;
    for (;;) {
      const unsigned top = levels_.load(std::memory_order_relaxed);  // new levels start "unknown"
      for (unsigned i = 0; i < nk; ++i) span_heads(keys[i], heads[i], top);
      for (unsigned lvl = 0; lvl < top; ++lvl) {
        for (unsigned i = 0; i < nk; ++i) {
          bool dup = false;
          for (unsigned j = 0; j < i; ++j) dup = dup || heads[j].node(lvl) == heads[i].node(lvl);
          if (!dup) detail::gap_mark(heads[i].gap(lvl));
        }
      }
      bool same_heads = true;
      for (unsigned i = 0; i < nk && same_heads; ++i) {
        span_heads(keys[i], again, top);
        for (unsigned lvl = 0; lvl < top; ++lvl)
          same_heads = same_heads && again.node(lvl) == heads[i].node(lvl);
      }
      if (same_heads) return;
    }
  }
  void mark_key(uint64_t key) noexcept { mark_keys(&key, 1); }

  // Free gaps intersecting leaf l's range, in ascending order, as [lo, hi)
  // pairs; n == 0 when l is dead. Reads l, the end of the extent before it
  // and the start of the extent after it (a recent state; commits re-check).
  struct leaf_gaps {
    uint32_t n = 0;
    bool dead = false;
    leaf* next = nullptr;
    std::pair<uint64_t, uint64_t> g[leaf_capacity + 1];
  };
  void gaps_of(const leaf* l, leaf_gaps& out) const noexcept {
    raw buf[leaf_capacity];
    const leaf_copy c = copy_leaf(l, buf);
    out.n = 0;
    out.dead = c.dead;
    out.next = c.next;
    if (c.dead) return;
    uint64_t cursor = 0;
    if (l != &head_) {
      if (auto b = last_le_raw(l->key - 1)) cursor = b->start + b->size;
    }
    uint64_t after = UINT64_MAX;  // start of the first extent after l
    if (c.next != nullptr) {
      const probe q = do_probe(c.next, c.next->key);
      // A dead (or, transiently, empty) successor: assume the gap runs on;
      // an over-estimate costs a failed commit at worst.
      if (!q.dead && q.has_le) after = q.le.start;
      if (!q.dead && !q.has_le && q.has_gt) after = q.gt.start;
    }
    for (uint32_t i = 0; i <= c.n; ++i) {
      const uint64_t hi = i < c.n ? buf[i].start : after;
      if (hi > cursor) out.g[out.n++] = {cursor, hi};
      if (i < c.n) cursor = std::max(cursor, buf[i].start + buf[i].size);
    }
  }

  enum class span_result { found, none, fallback };

  // Searches the level-0 span headed by leaf x (up to the leaf with key
  // end_key0, UINT64_MAX: the list end) for the API.md fit inside window w;
  // tightens the leaves' bounds it proves.
  span_result search_leaves(leaf* x, uint64_t end_key0, detail::hole_window w, const hole_request& r,
                            uint64_t& out) const {
    const bool up = r.dir == hole_request::direction::up;
    // The span is leaf x plus any leaf split off it since the caller listed
    // it: walk level 0 up to end_key0, so no split-off range is missed.
    constexpr unsigned kMaxChain = 4;
    leaf_gaps chain[kMaxChain];
    unsigned nc = 0;
    for (leaf* y = x; y != nullptr && (y == x || y->key < end_key0);) {
      if (nc == kMaxChain) return span_result::fallback;
      // acquire: pairs with gap_mark (seq_cst RMW).
      const uint64_t seen = y->gap0.load(std::memory_order_acquire);
      leaf_gaps& lg = chain[nc++];
      gaps_of(y, lg);
      if (lg.dead) {  // its range now belongs to a live predecessor (an erase is in flight)
        --nc;
        break;
      }
      uint64_t biggest = 0;
      for (uint32_t i = 0; i < lg.n; ++i) biggest = std::max(biggest, lg.g[i].second - lg.g[i].first);
      detail::gap_tighten(y->gap0, seen, biggest);
      y = lg.next;
    }
    for (unsigned ci = 0; ci < nc; ++ci) {
      const leaf_gaps& lg = chain[up ? ci : nc - 1 - ci];
      for (uint32_t k = 0; k < lg.n; ++k) {
        const auto& gap = lg.g[up ? k : lg.n - 1 - k];
        const uint64_t lo = std::max(gap.first, w.lo), hi = std::min(gap.second, w.hi);
        if (lo >= hi) continue;
        const auto s =
            up ? detail::fit_lowest(lo, hi, r.size, r.align) : detail::fit_highest(lo, hi, r.size, r.align);
        if (s) {
          out = *s;
          return span_result::found;
        }
      }
    }
    return span_result::none;
  }

  // Searches the span headed by tower x at level lvl >= 1 (ending before
  // tower `end`, or at the list end) for the API.md fit inside window w;
  // tightens the bounds it proves. Its children are the towers of level
  // lvl - 1 in it, or at lvl == 1 the leaves of level 0 from x's leaf. For
  // the root, pass x = the head's tower, lvl = number of levels, root = true
  // (the root has no bound of its own).
  span_result search_span(tower* x, const tower* end, unsigned lvl, detail::hole_window w,
                          const hole_request& r, bool root, uint64_t& out) const {
    const bool up = r.dir == hole_request::direction::up;
    // acquire: pairs with gap_mark (seq_cst RMW).
    const uint64_t seen = root ? 0 : x->gap(lvl).load(std::memory_order_acquire);
    const uint64_t end_key = end != nullptr ? end->key : UINT64_MAX;
    constexpr unsigned kMaxChildren = 48;
    struct child {
      tower* th;           // the child's head at cl >= 1
      leaf* lh;            // the child's head at cl == 0
      const tower* te;     // the child's end at cl >= 1
      const void* listed;  // the head's successor at cl when listed
      uint64_t lo;
      uint64_t hi;  // key range [lo, hi) of the child span (hi = UINT64_MAX: open)
      std::atomic<uint64_t>& gap(unsigned cl) const noexcept { return cl == 0 ? lh->gap0 : th->gap(cl); }
      // True if the head's successor at cl is still the listed one, i.e. no
      // split has cut the child's span since it was listed. acquire (both):
      // pair with the release link stores of split_locked/link_upper; the
      // caller loads the child's bound first (see below).
      bool unsplit(unsigned cl) const noexcept {
        return (cl == 0 ? static_cast<const void*>(lh->next0(std::memory_order_acquire))
                        : static_cast<const void*>(th->next(cl, std::memory_order_acquire))) == listed;
      }
    };
    child kids[kMaxChildren];
    unsigned nk = 0;
    const unsigned cl = lvl - 1;
    if (cl >= 1) {
      for (tower* y = x; y != nullptr && y != end && (y == x || y->key < end_key);) {
        if (nk == kMaxChildren) return span_result::fallback;
        // acquire: pairs with tower::set_link's release stores.
        tower* yn = y->next(cl, std::memory_order_acquire);
        const tower* ye = (yn == nullptr || (end != nullptr && yn->key >= end_key)) ? end : yn;
        kids[nk++] = child{y, nullptr, ye, yn, y->key, ye != nullptr ? ye->key : UINT64_MAX};
        y = yn;
      }
    } else {
      for (leaf* y = x->leaf; y != nullptr && (y == x->leaf || y->key < end_key);) {
        if (nk == kMaxChildren) return span_result::fallback;
        // acquire: pairs with the release stores of link 0 in split/remove.
        leaf* yn = y->next0(std::memory_order_acquire);
        const uint64_t hi = (yn == nullptr || yn->key >= end_key) ? end_key : yn->key;
        kids[nk++] = child{nullptr, y, nullptr, yn, y->key, hi};
        y = yn;
      }
    }
    for (unsigned k = 0; k < nk; ++k) {
      const unsigned ci = up ? k : nk - 1 - k;
      const child& c = kids[ci];
      // Skip children outside the window (a gap that reaches into the window
      // also intersects the child containing the window's edge) and children
      // whose bound proves no gap of r.size. (The child headed by x is not
      // skipped for starting at or past w.hi.)
      if (c.hi <= w.lo || (c.lo >= w.hi && ci != 0)) continue;
      // A bound is trusted only for the span the child was listed with: a
      // split since then may have moved part of that span (and its gaps)
      // to a new child this list lacks, while the bound was tightened over
      // what is left. Whoever tightened it had seen the split's link
      // (search_span lists a child's successor before tightening it;
      // search_leaves snapshots the leaf's link 0), so after the acquire
      // load of the bound (pairs with gap_mark and gap_tighten, seq_cst
      // RMWs) the successor reads as changed, and the child is searched
      // over its whole listed range instead (c.hi / c.te; the walks below
      // stop at those keys, not at the successor, so they find the
      // split-off part).
      if (!detail::gap_may_fit(c.gap(cl).load(std::memory_order_acquire), r.size) && c.unsplit(cl)) continue;
      const span_result sr =
          cl == 0 ? search_leaves(c.lh, c.hi, w, r, out) : search_span(c.th, c.te, cl, w, r, false, out);
      if (sr != span_result::none) return sr;
    }
    if (!root) {
      uint64_t biggest = 0;
      bool listed = true;  // the list is still x's children (see the skip above)
      for (unsigned k = 0; k < nk; ++k) {
        // acquire: pairs with gap_mark (seq_cst RMW) and gap_tighten; ordered before unsplit()'s loads.
        biggest = std::max(biggest, detail::gap_value(kids[k].gap(cl).load(std::memory_order_acquire)));
        listed = listed && kids[k].unsplit(cl);
      }
      // Without the check, a child bound tightened over its post-split
      // range would stand in for a list lacking the split-off child, and
      // x's bound would omit that child's gaps for good (splits mark
      // nothing; invariant 7). A bound left high is always allowed.
      if (listed) detail::gap_tighten(x->gap(lvl), seen, biggest);
    }
    return span_result::none;
  }

  // The API.md answer inside one pass window using the gap bounds; falls
  // back to the linear walk in the (improbable) case of a very wide span.
  std::optional<uint64_t> search_summaries(detail::hole_window w, const hole_request& r) const {
    if (w.hi < w.lo || w.hi - w.lo < r.size) return std::nullopt;
    uint64_t out = 0;
    const unsigned top = levels_.load(std::memory_order_relaxed);
    switch (search_span(head_.tower, nullptr, top, w, r, true, out)) {
      case span_result::found:
        return out;
      case span_result::none:
        return std::nullopt;
      case span_result::fallback:
        break;
    }
    return search_hole(w, r);
  }

  // --- writers ---------------------------------------------------------------

  // Up to three leaves, locked in ascending key order, validated adjacent and live.
  struct lock_set {
    leaf* l[3] = {};
    unsigned n = 0;
    void add(leaf* x) noexcept {
      for (unsigned i = 0; i < n; ++i) {
        if (l[i] == x) return;
      }
      unsigned i = n++;
      while (i > 0 && l[i - 1]->key > x->key) {
        l[i] = l[i - 1];
        --i;
      }
      l[i] = x;
    }
    bool lock_and_validate() noexcept {
      for (unsigned i = 0; i < n; ++i) l[i]->lock.lock();  // left to right
      for (unsigned i = 0; i < n; ++i) {
        // relaxed: dead and link 0 are written only under the leaf's lock, which we hold.
        if (l[i]->dead.load(std::memory_order_relaxed) ||
            (i + 1 < n && l[i]->next0(std::memory_order_relaxed) != l[i + 1])) {
          unlock();
          return false;
        }
      }
      return true;
    }
    void unlock() noexcept {
      for (unsigned i = n; i-- > 0;) l[i]->lock.unlock();
    }
  };

  // True if locked leaf l (live) covers key now.
  static bool covers(const leaf* l, uint64_t key) noexcept {
    const leaf* n = l->next0(std::memory_order_relaxed);  // under l's lock
    return l->key <= key && (n == nullptr || n->key > key);
  }

  static uint32_t find_slot_locked(const leaf* l, uint64_t start) noexcept {
    const uint32_t n = l->count.load(std::memory_order_relaxed);
    for (uint32_t i = 0; i < n; ++i) {
      if (l->starts[i].load(std::memory_order_relaxed) == start) return i;
    }
    return n;
  }

  // Inserts r. With `expect`, fails with `stale` if an erase happened since
  // the caller read *expect (insert_hole's validation, invariant 6).
  outcome insert_impl(const raw& r, preload_token& tok, const uint64_t* expect) {
    const uint64_t end = r.start + r.size;
    for (;;) {
      rcu::read_guard<Rcu> g;  // keeps the probed leaves alive until locked and validated
      const probe p = find_leaf(r.start);
      leaf* l = p.self;
      leaf* nx = p.next;
      const bool need_next = nx != nullptr && end > nx->key;
      lock_set ls;
      ls.add(l);
      if (need_next) ls.add(nx);
      if (!ls.lock_and_validate()) continue;
      if (l->next0(std::memory_order_relaxed) != nx) {  // under l's lock
        ls.unlock();
        continue;
      }
      const uint32_t n = l->count.load(std::memory_order_relaxed);
      uint32_t idx = 0;
      while (idx < n && l->starts[idx].load(std::memory_order_relaxed) <= r.start) ++idx;
      outcome verdict = outcome::ok;
      if (idx > 0) {
        raw prev;
        l->load_locked(idx - 1, prev);
        if (prev.start + prev.size > r.start) verdict = outcome::exists;
      } else if (l != &head_) {
        // Invariant 4: with l locked, no extent can newly cross into l's range.
        if (auto b = last_le_raw(l->key - 1); b && b->start + b->size > r.start) verdict = outcome::exists;
      }
      if (verdict == outcome::ok && idx < n && l->starts[idx].load(std::memory_order_relaxed) < end) {
        verdict = outcome::exists;
      }
      if (verdict == outcome::ok && need_next && nx->starts[0].load(std::memory_order_relaxed) < end) {
        verdict = outcome::exists;  // nx is live, locked and non-empty (invariant 3)
      }
      if (verdict == outcome::ok && n >= leaf_capacity && tok.leaf_ == nullptr) {
        ls.unlock();  // never allocate under a lock: drop everything, allocate, retry
        tok.leaf_ = alloc_leaf();
        if (tok.leaf_ == nullptr) return outcome::nomem;
        continue;
      }
      // insert_hole: announce the commit, then require no erase in flight or
      // completed since the search (invariant 6). An erase announces itself
      // and then waits for announced commits, so one of the two always sees
      // the other (both seq_cst): a hole cannot open behind the scan between
      // this check and the write below.
      const bool committing = verdict == outcome::ok && expect != nullptr;
      if (committing) {
        hole_commits_.fetch_add(1, std::memory_order_seq_cst);
        if (!erases_quiet(*expect)) verdict = outcome::stale;
      }
      if (verdict != outcome::ok) {
        if (committing) hole_commits_.fetch_sub(1, std::memory_order_seq_cst);
        ls.unlock();
        return verdict;
      }
      if (n < leaf_capacity) {
        l->seq.write_begin();
        raw tmp;
        for (uint32_t i = n; i > idx; --i) {
          l->load_locked(i - 1, tmp);
          l->store_release(i, tmp);
        }
        l->store_release(idx, r);
        l->count.store(n + 1, std::memory_order_release);  // seq-protected
        l->seq.write_end();
      } else {
        split_locked(l, idx, r, std::exchange(tok.leaf_, nullptr));
      }
      if (committing) hole_commits_.fetch_sub(1, std::memory_order_seq_cst);
      ls.unlock();
      return outcome::ok;
    }
  }

  // l is locked and full; r goes to slot idx of the merged sequence. The
  // upper half moves to the preallocated leaf nl, which is published at
  // level 0 in the same write section that truncates l, then linked above.
  void split_locked(leaf* l, uint32_t idx, const raw& r, leaf* nl) noexcept {
    constexpr uint32_t total = leaf_capacity + 1;
    raw buf[total];
    for (uint32_t i = 0, j = 0; i < total; ++i) {
      if (i == idx) {
        buf[i] = r;
      } else {
        l->load_locked(j++, buf[i]);
      }
    }
    const uint32_t left = total / 2;
    nl->key = buf[left].start;  // nl->height was drawn by alloc_leaf(), its tower allocated there
    if (nl->tower != nullptr) nl->tower->key = nl->key;  // unpublished: plain write
    for (uint32_t i = left; i < total; ++i) nl->store_release(i - left, buf[i]);
    nl->count.store(total - left, std::memory_order_relaxed);  // unpublished
    // relaxed: nl is not reachable yet; the release store of l's link 0 below publishes it.
    leaf* const succ = l->next0(std::memory_order_relaxed);  // under l's lock
    nl->link0.ptr.store(succ, std::memory_order_relaxed);
    nl->link0.key.store(succ != nullptr ? succ->key : detail::kNoKey, std::memory_order_relaxed);
    l->seq.write_begin();
    for (uint32_t i = 0; i < left; ++i) l->store_release(i, buf[i]);
    l->count.store(left, std::memory_order_release);  // seq-protected
    // release: publishes nl's contents; pairs with the acquire loads of link 0 in readers.
    l->set_next0(nl);  // release (both stores): seq-protected and publishing
    l->seq.write_end();
    if (nl->height > 1) {
      index_lock_.lock();
      link_upper(nl);
      index_lock_.unlock();
    }
  }

  // Under the index lock: links nl's tower at levels [1, height), bottom up.
  void link_upper(leaf* nl) noexcept {
    tower* const nt = nl->tower;
    tower* preds[max_levels];
    tower* x = head_.tower;
    // From the top level down (starting at nl's height would walk level
    // height-1 from the head: O(n) per split); preds below nl's height only are used.
    for (unsigned lvl = max_levels; lvl-- > 1;) {
      // relaxed: tower links change only under the index lock, which we hold.
      tower* n = x->next(lvl, std::memory_order_relaxed);
      while (n != nullptr && n->key < nt->key) {
        x = n;
        n = x->next(lvl, std::memory_order_relaxed);
      }
      preds[lvl] = x;
    }
    index_seq_.write_begin();  // span_heads() validates its cached-key walk by it
    for (unsigned lvl = 1; lvl < nl->height; ++lvl) {
      // release (both): readers that reach nt at lvl see its header and
      // successor; pairs with the acquire loads in walk_tower()/span_heads().
      nt->set_link(lvl, preds[lvl]->next(lvl, std::memory_order_relaxed));
      preds[lvl]->set_link(lvl, nt);
    }
    index_seq_.write_end();
    if constexpr (kBlocks) {
      // nl is published at level 0 (split_locked) and now at level 1, so
      // its block entry may be read. A new block tower splits its owner's
      // span: both blocks are rebuilt (1 in 2^(kBlockLevel-1) splits).
      tower* const owner = preds[kBlockLevel];
      if (tower::has_block(nl->height)) {
        rebuild_block(owner);
        rebuild_block(nt);
      } else {
        block_insert(owner, nl);
      }
    }
    if (levels_.load(std::memory_order_relaxed) < nl->height) {
      levels_.store(nl->height, std::memory_order_relaxed);  // a hint (see find_leaf)
    }
  }

  // --- index blocks (under the index lock) ----------------------------------
  // Block invariant (check_invariants): the entries of the block of a tower
  // t are the first n of the towers strictly between t and t's successor at
  // kBlockLevel along level 1 (key, leaf), in order; when partial is 0, all
  // of them. Entries are stored with release inside the block's write
  // section (pairs with block_floor's acquire loads): a leaf is listed only
  // after its publication at level 0 and unlisted before it is retired.

  // Recomputes t's block from level 1. The walk (a miss per tower in a large
  // list) runs before the write section, so readers never wait on it.
  void rebuild_block(tower* t) noexcept {
    auto& b = t->index_block();
    // relaxed (all tower links): they change only under the index lock, which we hold.
    const tower* const end = t->next(kBlockLevel, std::memory_order_relaxed);
    std::pair<uint64_t, leaf*> got[kBlockEntries];
    uint32_t n = 0;
    const tower* u = t->next(1, std::memory_order_relaxed);
    for (; u != end && n < kBlockEntries; u = u->next(1, std::memory_order_relaxed))
      got[n++] = {u->key, u->leaf};
    b.seq.write_begin();
    for (uint32_t i = 0; i < n; ++i) {
      b.e[i].key.store(got[i].first, std::memory_order_release);
      b.e[i].leaf.store(got[i].second, std::memory_order_release);
    }
    b.n.store(n, std::memory_order_release);
    b.partial.store(u != end ? 1 : 0, std::memory_order_release);
    b.seq.write_end();
  }
  // Inside b's write section: entry `from` is copied to `to`. relaxed
  // loads: only index-lock holders write blocks; release stores: see above.
  static void move_entry(block& b, uint32_t from, uint32_t to) noexcept {
    b.e[to].key.store(b.e[from].key.load(std::memory_order_relaxed), std::memory_order_release);
    b.e[to].leaf.store(b.e[from].leaf.load(std::memory_order_relaxed), std::memory_order_release);
  }
  // Lists nl (not a block tower, just linked at level 1) in its owner's
  // block: in place, keeping a full block a prefix.
  void block_insert(tower* owner, leaf* nl) noexcept {
    auto& b = owner->index_block();
    // relaxed (block fields): written only under the index lock, which we hold.
    const uint32_t n = b.n.load(std::memory_order_relaxed);
    const bool partial = b.partial.load(std::memory_order_relaxed) != 0;
    uint32_t i = 0;
    while (i < n && b.e[i].key.load(std::memory_order_relaxed) < nl->key) ++i;
    if (i == n && partial) return;  // past the prefix: not listed
    b.seq.write_begin();
    if (i == kBlockEntries) {
      b.partial.store(1, std::memory_order_release);  // full: the prefix stays
    } else {
      const uint32_t m = n < kBlockEntries ? n + 1 : kBlockEntries;  // a full block drops its last
      for (uint32_t j = m - 1; j > i; --j) move_entry(b, j - 1, j);
      b.e[i].key.store(nl->key, std::memory_order_release);
      b.e[i].leaf.store(nl, std::memory_order_release);
      b.n.store(m, std::memory_order_release);
      if (n == kBlockEntries) b.partial.store(1, std::memory_order_release);
    }
    b.seq.write_end();
  }
  // Unlists d (not a block tower, already unlinked) from its owner's block;
  // a partial block that fell to half is refilled from level 1.
  void block_erase(tower* owner, const leaf* d) noexcept {
    auto& b = owner->index_block();
    // relaxed (block fields): written only under the index lock, which we hold.
    const uint32_t n = b.n.load(std::memory_order_relaxed);
    const bool partial = b.partial.load(std::memory_order_relaxed) != 0;
    uint32_t i = 0;
    while (i < n && b.e[i].leaf.load(std::memory_order_relaxed) != d) ++i;
    if (i == n) {
      if (!partial) fatal("remove_leaf: leaf missing from its index block");
      return;  // past the prefix
    }
    b.seq.write_begin();
    for (uint32_t j = i + 1; j < n; ++j) move_entry(b, j, j - 1);
    b.n.store(n - 1, std::memory_order_release);
    b.seq.write_end();
    if (partial && n - 1 < kBlockEntries / 2) rebuild_block(owner);
  }

  // p and d locked, p->next0() == d, d not the head. Marks d dead and unlinks
  // it from every level (invariant 5). The caller retires d after unlocking.
  void remove_leaf_locked(leaf* p, leaf* d) noexcept {
    index_lock_.lock();
    d->seq.write_begin();
    d->dead.store(true, std::memory_order_release);  // seq-protected
    d->count.store(0, std::memory_order_release);
    d->seq.write_end();
    p->seq.write_begin();
    // release: pairs with the acquire loads of link 0 in readers.
    p->set_next0(d->next0(std::memory_order_relaxed));  // d locked: its link 0 is stable
    p->seq.write_end();
    // d's tower keeps its forward links: a reader standing on it moves on
    // (walk_tower (b)); it is freed with d after a grace period.
    tower* const dt = d->tower;
    tower* x = head_.tower;
    tower* owner = nullptr;                                // d's block owner (kBlocks)
    index_seq_.write_begin();                              // span_heads() validates its cached-key walk by it
    for (unsigned lvl = max_levels; lvl-- > 1;) {          // from the top: O(log n) expected
      tower* n = x->next(lvl, std::memory_order_relaxed);  // index lock held
      while (n != nullptr && n->key < d->key) {
        x = n;
        n = x->next(lvl, std::memory_order_relaxed);
      }
      if (lvl == kBlockLevel) owner = x;
      if (lvl < d->height) {
        if (n != dt) fatal("remove_leaf: leaf missing from an upper level");
        // release: pairs with the acquire loads in walk_tower()/span_heads().
        x->set_link(lvl, dt->next(lvl, std::memory_order_relaxed));
      }
    }
    index_seq_.write_end();
    if constexpr (kBlocks) {
      // A removed block tower's span joins its owner's; its own block stays
      // as it was for readers still standing on it (block_floor).
      if (tower::has_block(d->height)) {
        rebuild_block(owner);
      } else if (dt != nullptr) {
        block_erase(owner, d);
      }
    }
    index_lock_.unlock();
  }

  leaf head_;
  // The head's tower (all max_levels levels), not in the arena.
  alignas(tower::kAlign) unsigned char head_tower_mem_[tower::bytes(max_levels)];
  // The head's index block (kBlocks; unused otherwise).
  typename tower::block head_block_;
  // The tower and node arenas (created by the first allocation, released by
  // the destructor).
  std::atomic<arena*> arena_{nullptr};
  std::atomic<node_arena*> nodes_{nullptr};
  alignas(64) mutable detail::spin_lock index_lock_;
  // Written only under index_lock_, around every change of a link above
  // level 0 (link_upper, remove_leaf_locked); read by span_heads().
  detail::seqcount index_seq_;
  std::atomic<unsigned> levels_{1};
  // Invariant 6. Both seq_cst: insert_hole's validation must see an erase
  // either in flight or counted.
  alignas(64) std::atomic<uint64_t> erase_version_{0};
  std::atomic<uint64_t> erases_in_flight_{0};
  std::atomic<uint64_t> hole_commits_{0};  // insert_hole commits in progress
};

}  // namespace rcukit
