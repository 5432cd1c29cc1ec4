// SPDX-License-Identifier: MIT
// rcukit/detail/skiplist_read.hpp -- the lockless side of extent_skiplist:
// the descent, leaf probes, the two-leaf answers, scans and leaf views.
// Every function here runs inside the caller's RCU read side and takes no
// lock; a reader retries only while a writer rewrites a leaf it reads.
//
// The descent (find_leaf). From the head tower, walk each level right while
// the successor's cached key is <= key (touching only towers, packed and
// normally cached), then the index block of the tower reached at the block
// level names a leaf, then level 0 is walked the same way, and the leaf it
// ends on is probed under its seqcount. Cached keys and block entries are
// hints; correctness rests on two facts:
//  (a) links only point to higher keys (along every level, for live or
//      dead nodes alike: a removed leaf and its tower keep their forward
//      links until they are reused after a grace period), and a leaf's key
//      only goes down while it is live (skiplist_leaf.hpp invariant 2);
//  (b) the probe of the last leaf sees, in one snapshot, that it is live and
//      that its successor's key is > key; its own key, read before, is <= key
//      and can only have gone down since.
// So a hint that is too high only stops a level early (the next level walks
// further); one that is too low can only lead to a node whose real key is
// > key, which the final check catches (restart). Dead leaves restart too.
//
// Two-leaf answers (the extent before a key may sit in the previous leaf):
// the reader probes both and re-validates the first leaf's sequence after
// reading the second, so both snapshots held at one instant (linearizable).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>

#include "rcukit/detail/skiplist_core.hpp"

namespace rcukit::detail {

template <class S>
struct sl_read {
  using leaf = typename S::leaf;
  using tower = typename S::tower;
  using raw = typename S::raw;
  using state = sl_state<S>;
  static constexpr unsigned kCap = S::kCap;
  static constexpr uint32_t kGroup = 64 / sizeof(uint64_t);  // slot starts per cache line

  // One consistent look at a leaf around `key`: le = last slot with start
  // <= key (slot idx - 1), gt = first slot with start > key (slot idx).
  // gt.start is always filled in; its size and value only when gt.start <
  // the caller's gt_limit. next_key is read in the same snapshot as next.
  struct probe {
    leaf* self = nullptr;
    leaf* next = nullptr;
    uint64_t key = 0;  // self's key, in the same snapshot
    uint64_t next_key = kNoKey;
    uint64_t seq = 0;
    uint32_t n = 0;
    uint32_t idx = 0;
    bool dead = false;
    bool has_le = false;
    bool has_gt = false;
    // Zeroed once per probe object (a few stores per operation): which
    // fields a probe fills depends on has_le / has_gt and gt_limit, a
    // correlation the compiler cannot follow through the retry loops, so it
    // would warn -Wmaybe-uninitialized on every answer copied out of them.
    raw le{};  // valid when has_le
    raw gt{};  // gt.start valid when has_gt, the rest when gt.start < gt_limit
  };

  // The number of keys <= key among key_at(0 .. n-1), sorted, in two rounds
  // of independent loads (one per cache line, then inside one line). Torn
  // keys only give a wrong count (<= n), which the caller's retry discards.
  template <uint32_t Group, class KeyAt>
  static uint32_t count_le(uint32_t n, uint64_t key, KeyAt key_at) noexcept {
    uint32_t g = 0;
    for (uint32_t j = Group; j < n; j += Group) g += key_at(j) <= key ? 1 : 0;
    const uint32_t lo = g * Group, hi = std::min(lo + Group, n);
    uint32_t idx = lo;
    for (uint32_t i = lo; i < hi; ++i) idx += key_at(i) <= key ? 1 : 0;
    return idx;
  }

  // Tests hold a writer inside a write section and need to know when a
  // reader waits for it (Traits::sync_point; compiled out otherwise).
  static void note_wait(const leaf* l, uint64_t key) noexcept {
    if constexpr (sl_has_sync<typename S::traits>) {
      if ((l->seq.current() & 1) != 0) sl_sync_point<typename S::traits>(sl_sync::reader_waits, key, 0);
    }
  }

  static void probe_into(const leaf* l, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    p.self = const_cast<leaf*>(l);
    l->prefetch_slots();
    for (;;) {
      note_wait(l, key);
      p.seq = l->seq.read_begin();
      // acquire (all, seq-protected): pair with the writers' release stores
      // inside their write sections (seqcount.hpp); link 0 also with the
      // release store that published its target.
      p.dead = l->dead.load(std::memory_order_acquire);
      p.key = l->key.load(std::memory_order_acquire);  // written inside write sections only
      p.next = l->link0.ptr.load(std::memory_order_acquire);
      p.next_key = l->link0.key.load(std::memory_order_acquire);
      // Clamp: a torn count is discarded by the retry, but must not index out of bounds.
      const uint32_t n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), kCap);
      p.n = n;
      const uint32_t idx =
          count_le<kGroup>(n, key, [l](uint32_t i) { return l->starts[i].load(std::memory_order_acquire); });
      p.idx = idx;
      p.has_le = idx > 0;
      p.has_gt = idx < n;
      if (p.has_le) l->load_acquire(idx - 1, p.le);
      if (p.has_gt) {
        p.gt.start = l->starts[idx].load(std::memory_order_acquire);
        if (p.gt.start < gt_limit) l->load_rest_acquire(idx, p.gt);
      }
      if (!l->seq.retry(p.seq)) return;
    }
  }
  static probe do_probe(const leaf* l, uint64_t key, uint64_t gt_limit = UINT64_MAX) noexcept {
    probe p;
    probe_into(l, key, gt_limit, p);
    return p;
  }

  // Moves right along level lvl >= 1 while the successor's cached key is <=
  // key (facts (a), (b) above).
  static const tower* walk_tower(const tower* t, unsigned lvl, uint64_t key) noexcept {
    for (;;) {
      const auto& ln = t->link_at(lvl);
      // relaxed: a hint, checked by the final real-key check.
      if (ln.key.load(std::memory_order_relaxed) > key) return t;
      // acquire: pairs with the release store in tower::set_link; the
      // target's header and links are visible.
      const tower* n = ln.ptr.load(std::memory_order_acquire);
      if (n == nullptr) return t;
      t = n;
    }
  }
  // The same along level 0.
  static const leaf* walk_right0(const leaf* x, uint64_t key) noexcept {
    for (;;) {
      // relaxed: a hint (see walk_tower).
      if (x->link0.key.load(std::memory_order_relaxed) > key) return x;
      // acquire: pairs with the release store in leaf::set_next0.
      const leaf* n = x->link0.ptr.load(std::memory_order_acquire);
      if (n == nullptr) return x;
      n->prefetch_slots();  // it may be the leaf we probe: overlap its slot misses with its line 0
      x = n;
    }
  }

  // The leaf to walk level 0 from, from the index block of t (a tower the
  // descent stands on at the block level): the last listed leaf whose key
  // is <= key, or t's own leaf; null if the block is a partial prefix and key
  // lies past it. A hint like a cached key: a block lags its span by at most
  // one update, and only names leaves linked during our read side.
  static const leaf* block_floor(const tower* t, uint64_t key) noexcept {
    const auto& b = t->index_block();
    constexpr uint32_t kPerLine = 64 / sizeof(typename tower::block_entry);
    const char* base = reinterpret_cast<const char*>(&b);
    constexpr std::size_t kWarm = std::min<std::size_t>(sizeof(b), 16 * 64);
    for (std::size_t off = 0; off < kWarm; off += 64) __builtin_prefetch(base + off);
    for (;;) {
      const uint64_t s = b.seq.read_begin();
      // acquire (all, seq-protected): pair with the block writers' release stores.
      const uint32_t n = std::min<uint32_t>(b.n.load(std::memory_order_acquire), S::kBlockEntries);
      const bool partial = b.partial.load(std::memory_order_acquire) != 0;
      const uint32_t idx =
          count_le<kPerLine>(n, key, [&b](uint32_t i) { return b.e[i].key.load(std::memory_order_acquire); });
      const leaf* x = idx == 0 ? t->leaf : b.e[idx - 1].leaf.load(std::memory_order_acquire);
      const bool past = partial && idx == n;
      if (!b.seq.retry(s)) return past ? nullptr : x;
    }
  }

  // The live leaf covering `key`, probed at key (gt_limit: see probe).
  static void find_leaf_into(const state& st, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    for (;;) {
      const tower* t = st.head.tower;
      // relaxed: a hint; a stale (lower) value only makes the descent longer.
      const unsigned top = st.levels.load(std::memory_order_relaxed);
      const leaf* x;
      if constexpr (S::kBlocks) {
        for (unsigned lvl = top; lvl-- > S::kBlockLevel;) t = walk_tower(t, lvl, key);
        x = block_floor(t, key);
        if (x == nullptr) {
          for (unsigned lvl = S::kBlockLevel; lvl-- > 1;) t = walk_tower(t, lvl, key);
          x = t->leaf;
        }
      } else {
        for (unsigned lvl = top; lvl-- > 1;) t = walk_tower(t, lvl, key);
        x = t->leaf;
      }
      x->prefetch_slots();
      for (;;) {
        x = walk_right0(x, key);
        // acquire: pairs with the release store of a lowered key (write.hpp);
        // keys only go down while live (fact (a)).
        if (x->key.load(std::memory_order_acquire) > key) break;  // a too-low hint: restart
        probe_into(x, key, gt_limit, p);
        if (p.dead) break;
        if (p.next != nullptr && p.next_key <= key) {
          x = p.next;
          continue;
        }
        return;
      }
    }
  }
  // The finger (a search hint, as B-trees keep for sequential access): per
  // thread and per list shape, the last leaf a descent of this thread ended
  // on, with the key range it covered then. A key inside that range probes
  // the leaf first and takes it if the probe's snapshot shows it live and
  // covering the key: then it IS the covering leaf, whatever happened to it
  // since (a live leaf is linked: new leaves stay dead until published, and
  // removal marks them dead first). That is safe on a stale pointer because
  // a list's leaves are never freed or constructed again while the list
  // lives (skiplist_pool.hpp, skiplist_core.hpp's construct): a recycled
  // leaf is re-filled in its own write sections, so the probe sees either a
  // dead leaf or a consistent one. The list id rules out a finger into a
  // destroyed list; only atomics of the leaf are read.
  struct finger {
    const state* list = nullptr;
    uint64_t id = 0;
    const leaf* l = nullptr;
    uint64_t lo = 1, hi = 0;  // the range it covered: empty until set
  };
  static inline thread_local constinit finger tls_finger{};

  // The covering leaf of key through the finger; false if the finger does
  // not cover key (nothing else is read then). Needs no read side: the leaf
  // is type-stable and the snapshot validates it (see above).
  static bool finger_probe(const state& st, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    finger& f = tls_finger;
    if (key < f.lo || key >= f.hi || f.list != &st || f.id != st.id) return false;
    probe_into(f.l, key, gt_limit, p);
    if (p.dead || p.key > key || (p.next != nullptr && p.next_key <= key)) return false;
    f.lo = p.key;
    f.hi = p.next_key;
    return true;
  }
  // find_leaf_into, then the finger remembers the leaf. Inside a read side.
  static void find_leaf_remember(const state& st, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    find_leaf_into(st, key, gt_limit, p);
    tls_finger = finger{&st, st.id, p.self, p.key, p.next == nullptr ? kNoKey : p.next_key};
  }
  // Both: the finger first, a descent if it misses. Inside a read side.
  static void find_leaf_fast(const state& st, uint64_t key, uint64_t gt_limit, probe& p) noexcept {
    if (!finger_probe(st, key, gt_limit, p)) find_leaf_remember(st, key, gt_limit, p);
  }

  static probe find_leaf(const state& st, uint64_t key, uint64_t gt_limit = UINT64_MAX) noexcept {
    probe p;
    find_leaf_into(st, key, gt_limit, p);
    return p;
  }
  // The same answer through this thread's finger (find_leaf_fast): walks
  // and hole searches that start where the thread last worked skip the
  // descent. Inside a read side.
  static probe find_leaf_near(const state& st, uint64_t key, uint64_t gt_limit = UINT64_MAX) noexcept {
    probe p;
    find_leaf_fast(st, key, gt_limit, p);
    return p;
  }

  // For every level lvl in [1, top), the tower heading the level-lvl span
  // that contains `key` (the last tower at that level whose key is <= key),
  // by real keys (seq_cst loads: the hole index orders them against its
  // raises, skiplist_holes.hpp). out[0] is unused. A recent state: callers
  // validate what they use.
  static void heads_of(const state& st, uint64_t key, unsigned top, tower** out) noexcept {
    tower* t = st.head.tower;
    for (unsigned lvl = top; lvl-- > 1;) {
      for (;;) {
        tower* n = t->next(lvl, std::memory_order_seq_cst);
        if (n == nullptr || n->key.load(std::memory_order_seq_cst) > key) break;
        t = n;
      }
      out[lvl] = t;
    }
  }
  // For every level in [1, top), the last tower whose key is < key (the
  // predecessors a new tower with that key is linked after). Same rules.
  static void preds_of(const state& st, uint64_t key, unsigned top, tower** out) noexcept {
    tower* t = st.head.tower;
    for (unsigned lvl = top; lvl-- > 1;) {
      for (;;) {
        tower* n = t->next(lvl, std::memory_order_acquire);
        if (n == nullptr || n->key.load(std::memory_order_acquire) >= key) break;
        t = n;
      }
      out[lvl] = t;
    }
  }

  // Last extent with start <= key (linearizable).
  static std::optional<raw> last_le(const state& st, uint64_t key) noexcept {
    for (;;) {
      const probe p = find_leaf_near(st, key);
      if (p.has_le) return p.le;
      if (p.self == &st.head || p.key == 0) return std::nullopt;
      const probe q = find_leaf(st, p.key - 1, 0);
      // Both snapshots held at one instant: q saw p.self as its successor and
      // p.self did not change since its probe.
      if (q.next != p.self || p.self->seq.current() != p.seq) continue;
      if (q.has_le) return q.le;
      return std::nullopt;
    }
  }

  // The lowest extent overlapping [key, key + size) (valid query).
  static std::optional<raw> lookup(const state& st, uint64_t key, uint64_t size) noexcept {
    const uint64_t end = key + size;
    probe p;
    for (;;) {
      find_leaf_fast(st, key, end, p);
      if (p.has_le) {
        if (p.le.start + p.le.size > key) return p.le;
      } else if (p.self != &st.head) {
        probe q;
        find_leaf_into(st, p.key - 1, 0, q);
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
      if (!r.has_gt) continue;  // a live non-head leaf is never empty: changed under us
      if (r.gt.start < end) return r.gt;
      return std::nullopt;
    }
  }

  // First extent with start >= key (linearizable).
  static std::optional<raw> first_ge(const state& st, uint64_t key) noexcept {
    for (;;) {
      const probe p = find_leaf(st, key);
      if (p.has_le && p.le.start == key) return p.le;
      if (p.has_gt) return p.gt;
      if (p.next == nullptr) return std::nullopt;
      const probe q = do_probe(p.next, key);
      // Both snapshots held at one instant (p.self unchanged since its probe).
      if (q.dead || p.self->seq.current() != p.seq) continue;
      if (q.has_le && q.le.start == key) return q.le;
      if (q.has_gt) return q.gt;
    }
  }

  // One snapshot of a leaf: its extents, and its key range [key, next_key).
  struct leaf_copy {
    const leaf* self = nullptr;
    leaf* next = nullptr;
    uint64_t key = 0;
    uint64_t next_key = kNoKey;
    uint64_t seq = 0;  // the sequence the copy was taken at
    uint32_t n = 0;
    bool dead = false;
  };
  static leaf_copy copy_leaf(const leaf* l, raw* out) noexcept {
    leaf_copy c;
    c.self = l;
    for (;;) {
      note_wait(l, 0);
      const uint64_t s = l->seq.read_begin();
      // acquire (all, seq-protected): see probe_into.
      c.dead = l->dead.load(std::memory_order_acquire);
      c.key = l->key.load(std::memory_order_acquire);
      c.next = l->next0(std::memory_order_acquire);
      c.next_key = l->link0.key.load(std::memory_order_acquire);
      c.n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), kCap);
      for (uint32_t i = 0; i < c.n; ++i) l->load_acquire(i, out[i]);
      c.seq = s;
      if (!l->seq.retry(s)) return c;
    }
  }

  // Calls f(raw) for extents with start >= from, ascending, until f returns
  // false. Never repeats an extent, never goes backwards; visits every
  // extent present for the whole scan (each leaf is one snapshot, and the
  // next leaf is the successor recorded in it).
  template <class F>
  static void scan_forward(const state& st, uint64_t from, F&& f) {
    uint64_t next_start = from;
    const leaf* l = find_leaf_near(st, from).self;
    raw buf[kCap];
    while (l != nullptr) {
      const leaf_copy c = copy_leaf(l, buf);
      if (c.dead) {
        l = find_leaf_near(st, next_start).self;
        continue;
      }
      for (uint32_t i = 0; i < c.n; ++i) {
        if (buf[i].start < next_start) continue;
        if (!f(buf[i])) return;
        next_start = buf[i].start + 1;  // start <= UINT64_MAX - 1 for a valid extent
      }
      l = c.next;
    }
  }

  // The live leaf covering key, copied in one snapshot that shows it live
  // and covering key: out[0, c.n) holds every extent with start in
  // [c.key, key] at that instant. The step of every backward walk. Extents
  // only move right (a redistribution gives a leaf's top extents to its
  // successor and lowers the successor's key), so a walk going down must
  // take both ends of the range it covers from the snapshot it yields: a key
  // read after the copy may have gone down over extents just moved in, and
  // a leaf copied after it gave extents away no longer covers key.
  static leaf_copy copy_covering(const state& st, uint64_t key, raw* out) noexcept {
    for (;;) {
      const leaf* l = find_leaf_near(st, key).self;
      sl_sync_point<typename S::traits>(sl_sync::walk_found, key, 0);
      const leaf_copy c = copy_leaf(l, out);
      if (c.dead || c.key > key || (c.next != nullptr && c.next_key <= key)) continue;
      sl_sync_point<typename S::traits>(sl_sync::walk_copied, key, 0);
      return c;
    }
  }

  // Calls f(raw) for extents with start < below, descending, until f returns
  // false. Never repeats an extent; visits every extent present for the
  // whole scan (each step covers [c.key, bound) from one snapshot, and the
  // next step starts below c.key).
  template <class F>
  static void scan_backward(const state& st, uint64_t below, F&& f) {
    uint64_t bound = below;  // only extents with start < bound remain to visit
    raw buf[kCap];
    while (bound > 0) {
      const leaf_copy c = copy_covering(st, bound - 1, buf);
      for (uint32_t i = c.n; i-- > 0;) {
        if (buf[i].start >= bound) continue;
        if (!f(buf[i])) return;
        bound = buf[i].start;
      }
      bound = c.key;  // <= every start yielded from c; 0 for the head
    }
  }

  // Number of extents, one leaf at a time (exact when quiescent).
  static size_t count_all(const state& st) noexcept {
    for (;;) {
      size_t total = 0;
      bool restart = false;
      for (const leaf* l = &st.head; l != nullptr;) {
        uint32_t n;
        leaf* next;
        bool dead;
        for (;;) {
          const uint64_t s = l->seq.read_begin();
          // acquire (all, seq-protected): see probe_into.
          dead = l->dead.load(std::memory_order_acquire);
          next = l->next0(std::memory_order_acquire);
          n = std::min<uint32_t>(l->count.load(std::memory_order_acquire), kCap);
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
};

}  // namespace rcukit::detail
