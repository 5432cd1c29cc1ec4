// SPDX-License-Identifier: MIT
// rcukit/extent_skiplist.hpp -- an RCU skiplist of extents with fat leaves.
//
// The idea (Chris Mason's cache-friendly skiplist for index ranges, LWN,
// June 2013): a skiplist whose nodes ("leaves") each hold up to 32 sorted
// extents, so a search touches a few cache-friendly arrays instead of one
// node per key, and whose writers lock single leaves, so writers in
// different parts of the key space run in parallel without rebalancing.
// Readers descend without locks under RCU and are correct by themselves
// (no caller-side re-check): each leaf has a seqcount, and an answer that
// needs two leaves re-validates the first after reading the second.
// docs/DESIGN.md has the reasoning behind each choice and docs/RESULTS.md
// the measurements.
//
// Where the parts live (each file opens with its own idea and invariants):
//   detail/skiplist_leaf.hpp, skiplist_tower.hpp   node layouts
//   detail/skiplist_pool.hpp                       node pool, reuse after a grace period
//   detail/skiplist_read.hpp                       descent, probes, scans
//   detail/skiplist_holes.hpp                      hole index and hole search
//   detail/skiplist_index.hpp                      tower links, index blocks
//   detail/skiplist_write.hpp                      writer protocol
//   detail/skiplist_check.hpp                      invariant checker
//
// Invariants of the whole (check_invariants() verifies them when quiescent):
//  (1) Level 0 from the head (key 0, never removed) visits every live leaf
//      in strictly increasing key order; a leaf owns the key range
//      [key, next->key), and every extent lives in the leaf owning its start.
//  (2) Extents never overlap. An extent that crosses its leaf's upper
//      boundary was inserted while the next leaf was locked too, so an
//      extent reaching into a leaf from the left appears only under that
//      leaf's lock.
//  (3) A live leaf other than the head is non-empty whenever its lock is
//      free; a leaf is marked dead in the write section that empties it,
//      before it leaves level 0, and is reused only after a grace period.
//  (4) Each upper level is the sequence of the towers of a subsequence of
//      level 0 (when quiescent: exactly the leaves taller than that level).
//      Correctness depends on level 0 only; the towers and index blocks are
//      hints a reader checks against level 0.
//  (5) The hole bounds cover every free gap once the operation that opened
//      it has returned (detail/skiplist_holes.hpp).
//
// Not supported (deliberately): merging leaves that are not empty, values
// that are not trivially copyable, exact insert_hole answers while other
// writers run (API.md: any fitting range free when inserted).
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <optional>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/skiplist_check.hpp"
#include "rcukit/detail/skiplist_core.hpp"
#include "rcukit/detail/skiplist_holes.hpp"
#include "rcukit/detail/skiplist_read.hpp"
#include "rcukit/detail/skiplist_write.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// Compile-time parameters of extent_skiplist. Derive and override to change
// the leaf capacity, the number of levels, or the allocator (tests inject
// allocation failures through allocate()).
struct skiplist_traits {
  static constexpr unsigned leaf_capacity = 32;  // extents per leaf
  static constexpr unsigned max_levels = 32;     // tower height cap (p = 1/2)
  // Every leaf but the head gets a tower (height >= 2), so tower level 1
  // lists every leaf and a descent reaches its leaf from the packed towers;
  // false: heights from 1 (p = 1/2), height-1 leaves have no tower.
  static constexpr bool dense_index = true;
  // With the dense index, every tower present at this level (1 in 2^(level
  // - 1)) carries an index block listing the leaves up to the next such
  // tower, so a descent goes from that level straight to the leaf; 0
  // disables. Entries per block: longer spans keep a prefix.
  static constexpr unsigned index_block_level = 7;
  static constexpr unsigned index_block_entries = 255;
  // The largest chunk the node pool carves towers from (chunks double from
  // 4 KiB up to it); 0: every tower is its own allocate() allocation.
  static constexpr std::size_t tower_chunk_bytes = std::size_t{256} << 10;
  // The same for leaves and index blocks; chunks of 2 MiB and more are
  // aligned to 2 MiB and advised as transparent huge pages.
  static constexpr std::size_t leaf_chunk_bytes = std::size_t{8} << 20;
  // Returns nullptr on failure; never throws. Every byte the list holds
  // comes from here, and goes back when the list is destroyed.
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

  using shape = detail::sl_shape<T, Rcu, Traits>;
  using state = detail::sl_state<shape>;
  using leaf = typename shape::leaf;
  using raw = typename shape::raw;
  using rd = detail::sl_read<shape>;
  using wr = detail::sl_write<shape>;
  using holes = detail::sl_holes<shape>;

 public:
  using value_type = T;
  using rcu_flavor = Rcu;
  using traits_type = Traits;
  using entry = extent_entry<T>;
  static constexpr unsigned leaf_capacity = Traits::leaf_capacity;
  static constexpr unsigned max_levels = Traits::max_levels;

  // Holds a preallocated leaf (with its tower) so that an insert never
  // allocates under a lock. Move-only; an unused leaf goes back to the
  // list's node pool. Must not outlive the list it came from.
  class preload_token {
   public:
    preload_token() = default;
    preload_token(preload_token&& o) noexcept
        : st_(std::exchange(o.st_, nullptr)), leaf_(std::exchange(o.leaf_, nullptr)) {}
    preload_token& operator=(preload_token&& o) noexcept {
      if (this != &o) {
        release();
        st_ = std::exchange(o.st_, nullptr);
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
      if (leaf_ != nullptr) wr::free_unpublished(*st_, std::exchange(leaf_, nullptr));
    }
    state* st_ = nullptr;
    leaf* leaf_ = nullptr;
  };

  // A consistent snapshot of one leaf's extents (a copy: readable after the
  // read side ends). Null at either end of the list.
  class leaf_view {
   public:
    leaf_view() = default;
    explicit operator bool() const noexcept { return leaf_ != nullptr; }
    size_t size() const noexcept { return n_; }
    bool empty() const noexcept { return n_ == 0; }
    // Precondition: i < size(); a violation aborts naming the caller.
    entry at(size_t i, detail::call_site where = detail::call_site::current()) const noexcept {
      if (i >= n_) detail::sl_fatal("leaf_view::at: index out of range", where);
      return to_entry(e_[i]);
    }

   private:
    friend class extent_skiplist;
    const leaf* leaf_ = nullptr;  // valid to follow only inside read side `side_`
    leaf* next_ = nullptr;
    uint64_t side_ = 0;
    uint32_t n_ = 0;
    raw e_[leaf_capacity];
  };

  extent_skiplist() noexcept = default;
  extent_skiplist(const extent_skiplist&) = delete;
  extent_skiplist& operator=(const extent_skiplist&) = delete;
  // Not thread-safe: no other thread may use the list, hold a view of it or
  // be inside a read side that reached it. Frees every node at once (the
  // node pool, detail/skiplist_pool.hpp). Never blocks.
  ~extent_skiplist() = default;

  // Allocates the leaf (and its tower) an insert may need for a split.
  // Blocking only in the node pool; takes no list lock. ResourceExhausted
  // if an allocation fails, with nothing allocated.
  absl::StatusOr<preload_token> preload(detail::call_site where = detail::call_site::current()) {
    online(where);
    preload_token t;
    t.st_ = &st_;
    t.leaf_ = wr::alloc_leaf(st_);
    if (t.leaf_ == nullptr) return absl::ResourceExhaustedError("extent_skiplist: leaf allocation failed");
    return t;
  }

  // Inserts [e.start, e.end()) with value v. Blocking (leaf spin locks, at
  // most two, plus tower locks on a split); callable inside or outside a
  // read side. InvalidArgument for an invalid extent, AlreadyExists if it
  // overlaps an extent, ResourceExhausted if a split needed a leaf and the
  // allocation failed; in every error case nothing changed. Linearizable.
  absl::Status insert(extent e, const T& v, detail::call_site where = detail::call_site::current()) {
    preload_token t;
    return insert(e, v, std::move(t), where);
  }
  absl::Status insert(extent e, const T& v, preload_token&& t, detail::call_site where = detail::call_site::current()) {
    online(where);
    if (auto s = validate_extent(e); !s.ok()) return s;
    preload_token tok = std::move(t);
    tok.st_ = &st_;
    switch (wr::insert(st_, make_raw(e, v), tok.leaf_)) {
      case detail::sl_outcome::ok:
        return absl::OkStatus();
      case detail::sl_outcome::exists:
        return absl::AlreadyExistsError("extent_skiplist::insert: extent overlaps an existing extent");
      case detail::sl_outcome::nomem:
        break;
    }
    return absl::ResourceExhaustedError("extent_skiplist::insert: leaf allocation failed");
  }

  // The lowest extent overlapping [key, key + size); nullopt if none or if
  // the query range is empty (size 0). A range reaching past the top of the
  // key space is clamped there (extent.hpp, clamp_query). Lock-free (a reader retries only
  // while a writer rewrites a leaf it reads), linearizable. Opens its own
  // read side.
  std::optional<entry> lookup(uint64_t key, uint64_t size = 1, detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    return lookup_rcu(g, key, size);
  }
  // Same, inside the caller's read side. Never misses an extent present for
  // the whole call, never returns a torn entry.
  std::optional<entry> lookup_rcu(const rcu::read_guard<Rcu>&, uint64_t key, uint64_t size = 1) const {
    const auto sz = clamp_query(key, size);
    if (!sz) return std::nullopt;
    auto r = rd::lookup(st_, key, *sz);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Removes and returns the lowest extent overlapping [key, key + size).
  // Blocking (leaf locks, at most three); linearizable. nullopt if none (or
  // an empty range; the range is clamped as lookup's).
  std::optional<entry> erase(uint64_t key, uint64_t size = 1, detail::call_site where = detail::call_site::current()) {
    online(where);
    const auto sz = clamp_query(key, size);
    if (!sz) return std::nullopt;
    auto r = wr::erase(st_, key, *sz);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Gives the extent that starts exactly at `start` the value v, in place
  // (an mprotect-style update): one leaf lock and one seqcount write
  // section, so a concurrent reader sees the old value or the new one,
  // never no extent. NotFound if no extent starts there. Blocking (one leaf
  // lock); linearizable; callable inside or outside a read side.
  absl::Status assign(uint64_t start, const T& v, detail::call_site where = detail::call_site::current()) {
    online(where);
    if (!wr::assign(st_, start, make_raw(extent{start, 1}, v))) {
      return absl::NotFoundError("extent_skiplist::assign: no extent starts there");
    }
    return absl::OkStatus();
  }

  // Finds a free aligned range as API.md specifies (next-fit with
  // wrap-around, up or down), inserts it with value v and returns its
  // start. Blocking; call outside a read side or inside one. With no other
  // writer running the answer is exactly API.md's; while others run it is a
  // fitting range that was free when inserted, and it never fails while a
  // fitting hole stays free for the whole call (the search trusts only
  // bounds that cover every gap, the commit re-checks under the leaf locks,
  // a lost race searches again). A short walk next to the hint first, then
  // O(log n) expected through the hole index (detail/skiplist_holes.hpp),
  // which the first call switches on.
  // InvalidArgument for a malformed request, ResourceExhausted if no hole
  // fits or a needed leaf cannot be allocated; nothing changed on error.
  absl::StatusOr<uint64_t> insert_hole(const hole_request& r, const T& v, detail::call_site where = detail::call_site::current()) {
    online(where);
    if (auto s = validate_hole_request(r); !s.ok()) return s;
    holes::arm(st_);
    preload_token tok;
    tok.st_ = &st_;
    for (;;) {
      std::optional<uint64_t> s;
      {
        rcu::read_guard<Rcu> g;
        s = holes::search(st_, detail::first_pass(r), r);
        if (!s) s = holes::search(st_, detail::second_pass(r), r);
      }
      if (!s) return absl::ResourceExhaustedError("extent_skiplist::insert_hole: no hole fits");
      switch (wr::insert(st_, make_raw(extent{*s, r.size}, v), tok.leaf_)) {
        case detail::sl_outcome::ok:
          return *s;
        case detail::sl_outcome::nomem:
          return absl::ResourceExhaustedError("extent_skiplist::insert_hole: leaf allocation failed");
        case detail::sl_outcome::exists:
          break;  // another writer took it: search again
      }
    }
  }

  // Calls f(const entry&) for every extent overlapping [lo, hi), ascending;
  // lo >= hi visits nothing. f returns void, or bool where false stops the
  // walk. Lock-free; runs f inside a read side (f must not call synchronize
  // or barrier). Under concurrent writers: never yields an extent twice,
  // stays sorted, yields every extent present for the whole walk.
  template <class F>
  void for_each(uint64_t lo, uint64_t hi, F&& f, detail::call_site where = detail::call_site::current()) const {
    online(where);
    if (lo >= hi) return;
    rcu::read_guard<Rcu> g;
    if (lo > 0) {
      if (auto b = rd::last_le(st_, lo - 1); b && b->start + b->size > lo) {
        if (!detail::visit_continues(f, to_entry(*b))) return;
      }
    }
    rd::scan_forward(st_, lo, [&](const raw& x) {
      if (x.start >= hi) return false;
      return detail::visit_continues(f, to_entry(x));
    });
  }

 private:
  // The walk of range(): the extent reaching into [lo, hi) from below, then
  // leaf views from lo (next_leaf semantics: sorted, never a repeat, every
  // extent present for the whole walk).
  class range_cursor {
   public:
    range_cursor(const extent_skiplist* m, const rcu::read_guard<Rcu>& g, uint64_t lo, uint64_t hi)
        : m_(m), g_(&g), lo_(lo), hi_(hi) {
      if (lo >= hi) return;
      if (lo > 0) {
        if (auto b = rd::last_le(m_->st_, lo - 1); b && b->start + b->size > lo) {
          cur_ = to_entry(*b);
          has_ = true;
          straddler_ = true;
          return;
        }
      }
      load_from(lo);
    }
    const entry* get() const noexcept { return has_ ? &cur_ : nullptr; }
    void next() {
      if (straddler_) {
        straddler_ = false;
        load_from(lo_);
        return;
      }
      if (++i_ == v_.n_) {
        v_ = m_->next_leaf(*g_, v_);
        i_ = 0;
      }
      take();
    }

   private:
    void load_from(uint64_t from) {
      v_ = m_->view_from(*g_, from, nullptr);
      i_ = 0;
      take();
    }
    void take() {
      has_ = v_ && i_ < v_.n_ && v_.e_[i_].start < hi_;
      if (has_) cur_ = to_entry(v_.e_[i_]);
    }
    const extent_skiplist* m_;
    const rcu::read_guard<Rcu>* g_;
    uint64_t lo_;
    uint64_t hi_;
    leaf_view v_;
    uint32_t i_ = 0;
    bool has_ = false;
    bool straddler_ = false;
    entry cur_{};
  };

 public:
  // The same walk as for_each, as a single-pass C++20 view (input range) of
  // entries inside the caller's read side, for range-for and std::ranges:
  //   rcu::read_guard<> g;
  //   for (const auto& e : m.range(g, lo, hi)) ...
  // Holds one leaf's snapshot at a time (a copy): sorted, never repeats an
  // extent, yields every extent present for the whole walk. The view and
  // its iterators are valid only inside the guard's read side.
  detail::cursor_view<range_cursor> range(const rcu::read_guard<Rcu>& g, uint64_t lo, uint64_t hi) const {
    return detail::cursor_view<range_cursor>(range_cursor(this, g, lo, hi));
  }

  // First extent with start >= key. Lock-free, linearizable.
  std::optional<entry> lower_bound(uint64_t key, detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    auto r = rd::first_ge(st_, key);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Last extent with start < key. Lock-free, linearizable.
  std::optional<entry> prev_extent(uint64_t key, detail::call_site where = detail::call_site::current()) const {
    online(where);
    if (key == 0) return std::nullopt;
    rcu::read_guard<Rcu> g;
    auto r = rd::last_le(st_, key - 1);
    if (!r) return std::nullopt;
    return to_entry(*r);
  }

  // Number of extents: exact when no writer runs (per-leaf counts read one
  // leaf at a time, so it never goes negative). Lock-free, O(n / capacity).
  size_t size(detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    return rd::count_all(st_);
  }
  bool empty(detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    for (;;) {
      const uint64_t s = st_.head.seq.read_begin();
      // acquire (both, seq-protected): see detail/seqcount.hpp.
      const bool e = st_.head.count.load(std::memory_order_acquire) == 0 &&
                     st_.head.next0(std::memory_order_acquire) == nullptr;
      if (!st_.head.seq.retry(s)) return e;
    }
  }

  // Removes every extent; removed leaves go to the node pool after a grace
  // period. Blocking (two or three leaf locks at a time). Concurrent inserts
  // may survive (each leaf removal is atomic, the whole clear is not).
  void clear(detail::call_site where = detail::call_site::current()) {
    online(where);
    wr::clear(st_);
  }

  // Leaf iteration inside the caller's read side. Each view is a snapshot;
  // next_leaf/prev_leaf continue strictly after/before the extents of the
  // view passed in, so a walk never repeats an extent, stays sorted, and
  // yields every extent present for the whole walk. A view from an earlier
  // read side is stepped from by re-finding its last (first) key: safe,
  // never a freed leaf.
  leaf_view first_leaf(const rcu::read_guard<Rcu>& g) const { return view_from(g, 0, nullptr); }
  leaf_view next_leaf(const rcu::read_guard<Rcu>& g, const leaf_view& v) const {
    if (!v || v.n_ == 0) return {};
    const uint64_t last = v.e_[v.n_ - 1].start;
    return view_from(g, last + 1, v.side_ == g.id() ? v.next_ : nullptr);
  }
  leaf_view last_leaf(const rcu::read_guard<Rcu>& g) const { return view_before(g, UINT64_MAX, true); }
  leaf_view prev_leaf(const rcu::read_guard<Rcu>& g, const leaf_view& v) const {
    if (!v || v.n_ == 0 || v.e_[0].start == 0) return {};
    return view_before(g, v.e_[0].start, false);
  }

  // Verifies the invariants above and those of every detail/ file (call
  // when no writer runs). OK or Internal with the first violation.
  absl::Status check_invariants(detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    return detail::sl_check<shape>::run(st_);
  }
  // Debug/test statistics: leaves reachable now (quiescent), and the bytes
  // the list holds from Traits::allocate (node pool chunks).
  size_t leaf_count(detail::call_site where = detail::call_site::current()) const {
    online(where);
    rcu::read_guard<Rcu> g;
    return detail::sl_check<shape>::leaf_count(st_);
  }
  size_t memory_bytes() const noexcept { return st_.pool.bytes_held(); }

 private:
  // Every member a thread calls without a guard checks first that a qsbr
  // list is used from a registered, online thread, naming the caller
  // (rcu.hpp invariant 7); nothing for the other flavours.
  static void online(const detail::call_site& where) noexcept { rcu::detail::require_online<Rcu>(where); }

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

  // The view of the first leaf holding extents with start >= from (from
  // `start` when the caller holds a leaf of this read side), restricted to them.
  leaf_view view_from(const rcu::read_guard<Rcu>& g, uint64_t from, leaf* start) const {
    leaf_view v;
    const leaf* l = start != nullptr ? start : rd::find_leaf(st_, from).self;
    while (l != nullptr) {
      const auto c = rd::copy_leaf(l, v.e_);
      if (c.dead) {
        l = rd::find_leaf(st_, from).self;
        continue;
      }
      uint32_t k = 0;
      for (uint32_t i = 0; i < c.n; ++i) {
        if (v.e_[i].start >= from) v.e_[k++] = v.e_[i];
      }
      if (k > 0) {
        v.leaf_ = l;
        v.next_ = c.next;
        v.side_ = g.id();
        v.n_ = k;
        return v;
      }
      l = c.next;
    }
    return {};
  }
  // The view of the last leaf holding extents with start < bound (<= bound
  // when inclusive), restricted to them. Each step covers [c.key, probe_key]
  // from one snapshot (rd::copy_covering), the next starts below c.key.
  leaf_view view_before(const rcu::read_guard<Rcu>& g, uint64_t bound, bool inclusive) const {
    leaf_view v;
    uint64_t probe_key = inclusive ? bound : bound - 1;
    for (;;) {
      const auto c = rd::copy_covering(st_, probe_key, v.e_);
      uint32_t k = 0;
      for (uint32_t i = 0; i < c.n; ++i) {
        if (v.e_[i].start <= probe_key) v.e_[k++] = v.e_[i];
      }
      if (k > 0) {
        v.leaf_ = c.self;
        v.next_ = c.next;
        v.side_ = g.id();
        v.n_ = k;
        return v;
      }
      if (c.key == 0) return {};  // the head: nothing below
      probe_key = c.key - 1;
    }
  }

  state st_;
};

}  // namespace rcukit
