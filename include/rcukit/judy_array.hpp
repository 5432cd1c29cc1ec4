// SPDX-License-Identifier: MIT
// rcukit/judy_array.hpp -- RCU Judy-style array: a 256-way digital tree
// mapping 64-bit keys (the whole range, 0 and UINT64_MAX included) to values.
//
// The idea. Mathieu Desnoyers' RCU Judy arrays (liburcu rcuja branches,
// 2012-2016; after Doug Baskins' libJudy), re-derived: a radix-256 tree
// whose nodes change encoding with their fan-out (detail/judy_node.hpp),
// read without locks under RCU, updated under per-node locks. Keys live in
// leaves hung as high as possible (detail/judy_leaf.hpp). Why this shape,
// and the history of the design: docs/DESIGN.md, "Judy array".
//
// Readers (find, lower_equal, upper_equal, for_each) run inside one RCU read
// side and never lock, never write shared memory. Every word they read is
// either immutable since the node was published or an atomic loaded with
// acquire. find and for_each walk down once; inside a leaf they wait out a
// writer's in-place change (a sequence count, a few stores) and read the
// leaf again: lock-free, not wait-free. find reads one child word per level, and the
// word it reads in a node that was replaced meanwhile is the one the node
// held when it was last live, which is inside the call: linearizable.
//
// Bound queries (lower_equal, upper_equal) read several words whose values
// must coexist: the key's own slot, then siblings. Read one by one while
// writers change buckets and pigeon slots in place, they can combine an
// empty slot from before an insert with a full one from after a later
// insert (a state that never existed: the result skips a smaller key that
// was present whenever the returned one was). So a bound query logs what it
// read from words that change in place and re-checks them at the end
// (read_set below), walking again if any changed:
//   - a lin/pool child word is re-read and compared: it changes only from
//     one object to another, and a replaced object is retired, so inside
//     the read side its address never comes back (no ABA);
//   - a pigeon node's slots go 0 -> w -> 0, so it is covered by its
//     seqcount instead (judy_node.hpp (2)), sampled before its first slot
//     read and compared at the end;
//   - the root word is compared like a child word (an empty tree returns at
//     once).
// If nothing changed, every word read held its value at one instant (the
// end of the walk, inside the call): the result is that instant's answer.
// A query retries only when an update changed a node it read (lock-free),
// and waits only for a writer inside a pigeon slot store (two stores).
//
// Writers. A change to key k rebuilds k's bucket (or splits it into a new
// subtree) and becomes "set slot b of node N to word w" at the deepest node
// N on k's path. It is absorbed in place when it keeps N's key
// set (replacing a child) or N is a pigeon node; otherwise N is rebuilt
// (copy-on-write), and the rebuilt node (or nothing, or a merged bucket) becomes
// a change to N's parent, and so on up. So every update is: a chain of
// rebuilt nodes below one in-place store at the top level t. The writer
//   1. descends under RCU and plans, without locking, the top level t;
//   2. locks the nodes from t down to N in depth order (the root word has its
//      own lock at depth -1), checks that the top node is live and that every
//      parent still points to the next node; retries the whole operation
//      otherwise;
//   3. re-plans under the locks, allocating the rebuilt nodes; if the plan
//      now needs a higher level, or an allocation fails, frees what it built
//      (nothing was published) and retries / returns ResourceExhausted;
//   4. publishes with one release store at level t, marks the replaced nodes
//      dead, unlocks, and retires them through RCU.
// Writers in different subtrees lock disjoint nodes and run in parallel;
// they meet only on a common ancestor that must absorb a rebuilt child (for
// a lin*/pool node, inserting a new key byte rebuilds it and locks its
// parent for the duration of that store). Readers' path nodes above the top
// level are only read, never locked or written.
//
// Short writer read sides. A writer needs RCU protection only until it has
// locked and validated its nodes: from then on everything it reads is a
// locked live node, a child of one, or an object it replaces and alone
// retires, so it leaves its read side before allocating, copying and
// committing.
//
// Reclamation. Each thread batches what it retires (detail/rcu_batch.hpp:
// one rcu::retire_with per batch). When a batch's grace period ends, the
// callback parks it in a bounded process-wide depot or, when the depot is
// full, frees it; each update takes the parked batches into its
// thread's block cache (detail/judy_block_cache.hpp). So a busy writer
// reuses what it retires, and a thread that stops updating holds no
// retired object past its grace period: only its cache and its open batch
// (fewer than 64 objects not yet handed to RCU), both bounded.
//
// Allocation failure. insert, try_insert_or_assign and try_erase return
// ResourceExhausted; insert_or_assign and erase (API.md gives them no error
// channel) throw std::bad_alloc, as std::map's do. In every case the update
// built nothing visible: the array is unchanged (invariant 3 below).
//
// Invariants (in addition to detail/judy_node.hpp's):
//  (1) Locks are taken in increasing depth only: no deadlock.
//  (2) A node is modified only by a writer holding its lock, after checking
//      it is not dead; a node is replaced only by a writer holding its lock
//      and its parent's (or the root lock).
//  (3) Nothing is published until every allocation of the update succeeded:
//      an update either happens completely (one release store) or not at all.
//  (4) Replaced nodes and buckets are unreachable for new readers before they
//      are retired; they are freed after a grace period.
//  (5) size() counts keys; node_bytes() counts the block bytes of reachable
//      nodes and buckets; both are exact when no writer runs and return to 0
//      when empty. memory_bytes() adds what the judy allocator holds besides
//      nodes (per-thread caches, pending retired objects and their batches).
//
// Not supported: path compression of inner-node chains, concurrent use of
// the destructor, and with rcu::qsbr, unregistered threads (see rcu.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/detail/judy_leaf.hpp"
#include "rcukit/detail/judy_node.hpp"
#include "rcukit/detail/spin_lock.hpp"
#include "rcukit/detail/striped_counter.hpp"
#include "rcukit/detail/visit.hpp"
#include "rcukit/detail/fatal.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// BucketCap: the largest sorted leaf (keys per leaf above the last level; a
// bitmap leaf at the last level holds up to 256). Tests use tiny leaves to
// grow deep trees; the default suits memory and lookups.
template <class T, class Rcu = rcu::default_flavor, unsigned BucketCap = 32>
class judy_array {
  static_assert(std::is_trivially_copyable_v<T>,
                "rcukit::judy_array<T>: T must be trivially copyable (values are copied out of "
                "RCU-protected leaves while writers may change them)");
  static_assert(std::is_default_constructible_v<T>, "rcukit::judy_array<T>: T must be default constructible");
  static_assert(rcu::flavor<Rcu>, "rcukit::judy_array: Rcu must be an rcukit::rcu flavour");
  static_assert(BucketCap >= 2 && BucketCap <= 255, "rcukit::judy_array: BucketCap must be in [2, 255]");

  using node = detail::judy_node;
  using leaf = detail::judy_leaf<T>;
  using word = detail::judy_word;
  using kind = detail::judy_kind;

 public:
  judy_array() = default;
  judy_array(const judy_array&) = delete;
  judy_array& operator=(const judy_array&) = delete;
  // Frees every node at once. Precondition: no other thread uses the array.
  // Also hands the calling thread's pending retired nodes (of any array) to
  // RCU, so that the next rcu::barrier() frees them or parks them in the
  // bounded depot.
  ~judy_array() {
    destroy(root_.load(std::memory_order_relaxed));  // quiescent
    detail::judy_reclaimer<Rcu>::flush();
    detail::judy_reclaimer<Rcu>::drain();
  }

  // Inserts key -> v. AlreadyExists if key is present; ResourceExhausted if a
  // node allocation failed. Either way nothing changed. Blocking (per-node
  // locks); readers see the key from the linearization point (the store
  // that publishes it: in the leaf, or of a new leaf or subtree) on. Call
  // outside or inside a read side.
  absl::Status insert(std::uint64_t key, const T& v, detail::call_site where = detail::call_site::current()) {
    online(where);
    absl::StatusOr<bool> r = update(key, &v, /*assign=*/false, nullptr);
    if (!r.ok()) return r.status();
    return *r ? absl::OkStatus() : absl::AlreadyExistsError("judy_array::insert: key already present");
  }

  // Inserts or replaces; true if inserted. Blocking writer (per-node locks);
  // the linearization point is the publishing store. On allocation failure
  // it throws std::bad_alloc and nothing changed (the API.md signature has
  // no error channel; std::map::insert_or_assign behaves the same way).
  // try_insert_or_assign reports ResourceExhausted instead.
  bool insert_or_assign(std::uint64_t key, const T& v, detail::call_site where = detail::call_site::current()) {
    absl::StatusOr<bool> r = try_insert_or_assign(key, v, where);
    if (!r.ok()) throw std::bad_alloc();
    return *r;
  }
  // As insert_or_assign; ResourceExhausted (nothing changed) on allocation
  // failure. Never throws.
  absl::StatusOr<bool> try_insert_or_assign(std::uint64_t key, const T& v, detail::call_site where = detail::call_site::current()) {
    online(where);
    return update(key, &v, /*assign=*/true, nullptr);
  }

  // Removes key; returns its value, or nullopt if absent. An erase that
  // shrinks or removes a leaf rebuilds it and may merge nodes, so it can
  // allocate: on allocation failure it throws std::bad_alloc and nothing
  // changed (use try_erase to get ResourceExhausted instead). Blocking writer.
  std::optional<T> erase(std::uint64_t key, detail::call_site where = detail::call_site::current()) {
    absl::StatusOr<std::optional<T>> r = try_erase(key, where);
    if (!r.ok()) throw std::bad_alloc();
    return *r;
  }
  // As erase; ResourceExhausted (nothing changed) on allocation failure.
  // Never throws.
  absl::StatusOr<std::optional<T>> try_erase(std::uint64_t key, detail::call_site where = detail::call_site::current()) {
    online(where);
    std::optional<T> out;
    absl::StatusOr<bool> r = update(key, nullptr, false, &out);
    if (!r.ok()) return r.status();
    return out;
  }

  // Value of key, or nullopt. Lock-free: never locks or writes shared
  // memory; waits out a writer inside an in-place change of the key's leaf
  // (a few stores) and reads the leaf again if one changed it meanwhile.
  // Takes its own read side.
  std::optional<T> find(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return find_rcu(g, key);
  }
  // Whether key is present. As find.
  bool contains(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return find_rcu(g, key).has_value();
  }
  // Same, inside the caller's read side.
  std::optional<T> find_rcu(const rcu::read_guard<Rcu>&, std::uint64_t key) const {
    word w = root_.load(std::memory_order_acquire);  // pairs with the release stores that publish
    unsigned d = 0;
    if (is_rec(w)) {  // skipped top bytes: the leaf compares whole keys, so no prefix check here
      d = as_rec(w)->depth;
      w = as_rec(w)->top;
    }
    for (; w != 0; ++d) {
      if (detail::judy_is_leaf(w)) return leaf_find(as_leaf(w), key);
      w = as_node(w)->child(detail::judy_byte(key, d));
    }
    return std::nullopt;
  }

  // Greatest key <= key with its value. Linearizable (see "Bound queries"
  // in the essay): lock-free, never locks or writes shared memory; retries
  // its walk when a concurrent update changed a node or leaf it read, and
  // waits out a writer inside an in-place change (a few stores). Takes its
  // own read side.
  std::optional<std::pair<std::uint64_t, T>> lower_equal(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return bound_query<false>(key);
  }
  // Least key >= key with its value. As lower_equal.
  std::optional<std::pair<std::uint64_t, T>> upper_equal(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return bound_query<true>(key);
  }

  // Calls f(key, value) for every key in [lo, hi] (inclusive), ascending.
  // One walk inside one read side; each leaf is copied in validated chunks
  // (re-read only if a writer changed it meanwhile), and f runs on the copy,
  // inside the read side: f must not call rcu::synchronize/barrier and
  // should be short (it delays grace periods); it may call writers of this
  // array. Under concurrent updates every key present for the whole walk is
  // visited once, keys come strictly ascending, and no key is visited twice.
  // f returns void, or bool: false stops the walk (no further key is read).
  template <class F>
  void for_each(std::uint64_t lo, std::uint64_t hi, F&& f, detail::call_site where = detail::call_site::current()) const {
    online(where);
    if (lo > hi) return;
    rcu::read_guard<Rcu> g(where);
    const word root = root_.load(std::memory_order_acquire);  // as find_rcu
    if (!is_rec(root)) {
      (void)walk(root, 0, lo, hi, true, true, f);
      return;
    }
    const rec* r = as_rec(root);
    const std::uint64_t first = r->prefix, last = r->prefix | ~prefix_mask(r->depth);
    if (hi < first || lo > last) return;
    (void)walk(r->top, r->depth, lo, hi, lo >= first, hi <= last, f);
  }

  // Keys present. Exact when no writer runs; relaxed snapshot otherwise.
  std::size_t size() const noexcept {
    return static_cast<std::size_t>(counts_.load(count_keys_field));  // statistic: relaxed sum
  }
  // size() == 0. As size().
  bool empty() const noexcept { return size() == 0; }
  // Bytes the process holds from malloc for judy arrays, seen from this
  // array: node_bytes() (its reachable nodes and leaves) plus
  // detail::judy_alloc::held_bytes(), which covers the whole process:
  //   - free blocks in the block caches of live threads that allocated judy
  //     nodes (at most detail::judy_cache_max_bytes each; freed when the
  //     thread exits);
  //   - every retired node and leaf not yet reused or freed: in a thread's
  //     open batch (fewer than 64, handed to RCU by that thread's next
  //     update, exit or destruction of a judy_array), in a batch waiting
  //     for its grace period, or past it in the process-wide depot (at
  //     most detail::judy_depot_max_bytes; updates of any thread take from
  //     it, and callbacks free what would not fit);
  //   - the retire batch structures, and objects retired alone when no
  //     batch could be allocated.
  // So after the last update and rcu::barrier() no thread holds a retired
  // node past its grace period: this figure minus node_bytes() is at most
  // detail::judy_idle_thread_max_bytes() per thread that updated, plus the
  // depot.
  // Sizes are the blocks requested from malloc (16-byte classes); malloc's
  // own chunk headers and this judy_array object itself are not included.
  // The held part is shared: caches and batches belong to threads, not to
  // arrays, so with several judy_arrays each figure includes all of it
  // (their sum overcounts; node_bytes() is the per-array part). With one
  // array it is everything the structure makes the process hold through
  // the judy allocator. Exact when no update or judy RCU callback runs
  // (e.g. after joining the writers and rcu::barrier()); a relaxed snapshot
  // otherwise. Blocking: takes a
  // process-wide spin lock for one pass over the per-thread holdings.
  std::size_t memory_bytes() const noexcept { return node_bytes() + detail::judy_alloc::held_bytes(); }
  // Block bytes of this array's reachable nodes and leaves (0 when empty).
  // Exact when no writer runs; relaxed snapshot otherwise. Wait-free.
  std::size_t node_bytes() const noexcept {
    return static_cast<std::size_t>(counts_.load(count_bytes_field));  // statistic: relaxed sum
  }

  // Node population by kind (lin4, lin11, lin25, pool, pigeon) and leaves
  // (`buckets`, of which `bitmaps` are bitmap leaves). Quiescent only.
  struct shape {
    std::size_t nodes[5] = {0, 0, 0, 0, 0};
    std::size_t buckets = 0;
    std::size_t bitmaps = 0;
  };
  shape stats(detail::call_site where = detail::call_site::current()) const {
    shape s;
    rcu::read_guard<Rcu> g(where);
    const word root = root_.load(std::memory_order_acquire);
    count_shape(is_rec(root) ? as_rec(root)->top : root, s);
    return s;
  }

  // Checks every structural invariant (detail/judy_node.hpp (3)-(4),
  // detail/judy_leaf.hpp (L2), leaves sorted, within capacity, on their
  // path and of the encoding their depth allows, size and memory
  // accounting). Quiescent only.
  absl::Status check_invariants(detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    std::size_t keys = 0, bytes = 0;
    std::string err;
    const word root = root_.load(std::memory_order_acquire);
    if (is_rec(root)) {
      const rec* r = as_rec(root);
      bytes += word_bytes(root);
      if (r->depth == 0 || r->depth > 6 || (r->prefix & ~prefix_mask(r->depth)) != 0) err = "bad root record";
      if (r->top == 0 || detail::judy_is_leaf(r->top)) err = "root record over a leaf or nothing";
      check(r->top, r->depth, r->prefix, keys, bytes, err);
    } else {
      check(root, 0, 0, keys, bytes, err);
    }
    if (err.empty() && keys != size())
      err = "size() " + std::to_string(size()) + " != keys " + std::to_string(keys);
    if (err.empty() && bytes != node_bytes()) {
      err = "node_bytes() " + std::to_string(node_bytes()) + " != counted " + std::to_string(bytes);
    }
    return err.empty() ? absl::OkStatus() : absl::InternalError("judy_array: " + err);
  }

 private:
  // qsbr: the calling thread must be registered and online (rcu.hpp (8)).
  static void online(const detail::call_site& where) noexcept { rcu::detail::require_online<Rcu>(where); }

  using entry = std::pair<std::uint64_t, T>;
  // Capacity classes of sorted leaves: even, from 2 up to BucketCap (and
  // BucketCap itself when odd). cap_for(n): the least class >= n.
  static constexpr unsigned cap_for(unsigned n) noexcept {
    const unsigned c = n < 2 ? 2u : (n + 1) & ~1u;
    return c < BucketCap ? c : BucketCap;
  }
  static constexpr unsigned merge_max = BucketCap / 2;

  static const leaf* as_leaf(word w) noexcept { return reinterpret_cast<const leaf*>(w & ~detail::judy_leaf_tag); }
  static leaf* as_leaf_mut(word w) noexcept { return reinterpret_cast<leaf*>(w & ~detail::judy_leaf_tag); }
  static node* as_node(word w) noexcept { return reinterpret_cast<node*>(w); }
  static word leaf_word(leaf* l) noexcept { return reinterpret_cast<word>(l) | detail::judy_leaf_tag; }
  static word node_word(node* n) noexcept { return reinterpret_cast<word>(n); }

  // Root-level path compression. When every key shares its first `depth`
  // bytes (`prefix`), root_ holds a record (tag bit 1) that points at the
  // node at that depth, so readers and writers skip the single-child nodes
  // above it (dense keys: five levels). A record is immutable and replaced
  // as a whole, under the root lock, whenever the top node is; a top leaf
  // needs no record (leaves hold whole keys or their prefix).
  struct rec : rcu::retirable {
    std::uint64_t prefix;  // bytes [0, depth) shared by every key; the rest 0
    word top;              // a node at depth `depth`
    std::uint32_t depth;   // 1..6
  };
  static constexpr word kRecTag = 2;
  static bool is_rec(word w) noexcept { return (w & kRecTag) != 0; }
  static const rec* as_rec(word w) noexcept { return reinterpret_cast<const rec*>(w & ~kRecTag); }
  static rec* as_rec_mut(word w) noexcept { return reinterpret_cast<rec*>(w & ~kRecTag); }
  static constexpr std::uint64_t prefix_mask(unsigned depth) noexcept {
    return depth == 0 ? 0 : ~(~std::uint64_t{0} >> (8 * depth));
  }
  // A record word for top at depth (> 0), or 0 on allocation failure.
  static word make_rec(word top, unsigned depth, std::uint64_t some_key) noexcept {
    void* mem = detail::judy_alloc::allocate(sizeof(rec));
    if (mem == nullptr) return 0;
    rec* r = new (mem) rec();
    r->prefix = some_key & prefix_mask(depth);
    r->top = top;
    r->depth = depth;
    return reinterpret_cast<word>(r) | kRecTag;
  }
  static void free_rec(rec* r) noexcept {
    r->~rec();
    detail::judy_alloc::deallocate(r, sizeof(rec));
  }
  static void free_rec_remote(rec* r) noexcept {
    r->~rec();
    detail::judy_alloc::deallocate_retired_alone(r, sizeof(rec));
  }

  // Planning placeholders (dry runs, never stored): a rebuilt node, and a
  // rebuilt leaf of c keys.
  static constexpr word kSomeNode = 2;
  static constexpr word fake_leaf(std::uint32_t c) noexcept { return (word{c} << 4) | 8 | detail::judy_leaf_tag; }
  // Keys of a leaf word: a placeholder's, or a leaf's (the lock holder's
  // exact count, or an estimate for dry planning).
  static std::uint32_t leaf_count(word w) noexcept {
    return (w & 8) != 0 ? static_cast<std::uint32_t>(w >> 4) : as_leaf(w)->count();
  }

  // ---- readers -----------------------------------------------------------
  static std::optional<T> leaf_find(const leaf* l, std::uint64_t key) {
    for (;;) {
      const std::uint32_t s = l->seq.read_begin();
      T out;
      bool hit;
      if (l->bitmap()) {
        const unsigned b = static_cast<unsigned>(key & 0xff);
        hit = (key & ~std::uint64_t{0xff}) == l->prefix() && l->test(b);
        if (hit) l->value(b, out);
      } else {
        const unsigned c = l->count();
        const unsigned i = l->lower(key, c);
        hit = i < c && l->key_at(i) == key;
        if (hit) l->value(i, out);
      }
      if (!l->seq.retry(s)) return hit ? std::optional<T>(out) : std::nullopt;
    }
  }

  // What a bound query read from nodes and leaves that change in place,
  // re-checked at its end: lin/pool child words with the word seen (such a
  // word, once replaced, never comes back while the query is in its read
  // side: the replaced object is retired, so its address is not reused,
  // and a replaced object is never published again), pigeon nodes with
  // their seqcount (their slots go 0 -> w -> 0, so the words alone could
  // not tell), and leaves with theirs (judy_leaf.hpp (L1)).
  struct read_set {
    static constexpr unsigned cap = 24;  // a consistent walk logs at most 15 words, 13 pigeons, 2 leaves
    struct word_read {
      const std::atomic<word>* at;
      word seen;
    };
    struct pigeon_read {
      const detail::seqcount* seq;
      std::uint64_t seen;
    };
    struct leaf_read {
      const detail::judy_seq* seq;
      std::uint32_t seen;
    };
    word_read words[cap];
    pigeon_read pigeons[cap];
    leaf_read leaves[cap];
    unsigned nwords = 0, npigeons = 0, nleaves = 0;
    bool overflow = false;  // more reads than logged: the walk cannot be trusted

    void note_word(const std::atomic<word>* at, word w) noexcept {
      if (nwords == cap) {
        overflow = true;
        return;
      }
      words[nwords++] = {at, w};
    }
    // Before reading any child word of n: a pigeon's seqcount is sampled
    // (spinning while a writer is inside a slot store).
    void enter(const node* n) noexcept {
      if (n->kind_ != kind::pigeon) return;
      if (npigeons == cap) {
        overflow = true;
        return;
      }
      const detail::seqcount& sc = n->pigeon_seq();
      pigeons[npigeons++] = {&sc, sc.read_begin()};
    }
    // Before reading any entry of leaf l: its sequence count is sampled.
    void enter_leaf(const leaf* l) noexcept {
      if (nleaves == cap) {
        overflow = true;
        return;
      }
      leaves[nleaves++] = {&l->seq, l->seq.read_begin()};
    }
    // The child word for byte b of n (0 if none), logged.
    word child(const node* n, unsigned b) noexcept {
      const int i = n->index_of(b);
      if (i < 0) return 0;  // lin/pool key bytes are immutable (judy_node.hpp (1))
      const std::atomic<word>* at = n->children() + i;
      const word w = at->load(std::memory_order_acquire);  // as judy_node::child()
      if (n->kind_ != kind::pigeon) note_word(at, w);
      return w;
    }
    // True if nothing logged changed since it was read: then every word the
    // walk read held its value at one instant, the end of the walk.
    bool still_current() const noexcept {
      if (overflow) return false;
      for (unsigned i = 0; i < nwords; ++i) {
        // acquire: as child(); like the walk's own acquire loads it keeps
        // this check after every read it checks.
        if (words[i].at->load(std::memory_order_acquire) != words[i].seen) return false;
      }
      for (unsigned i = 0; i < npigeons; ++i) {
        if (pigeons[i].seq->retry(pigeons[i].seen)) return false;  // seqcount.hpp: after the acquire reads
      }
      for (unsigned i = 0; i < nleaves; ++i) {
        if (leaves[i].seq->retry(leaves[i].seen)) return false;  // judy_leaf.hpp (L1): after the acquire reads
      }
      return true;
    }
  };

  static entry leaf_entry(const leaf* l, unsigned pos) {
    T v;
    l->value(pos, v);
    return entry(l->bitmap() ? (l->prefix() | pos) : l->key_at(pos), v);
  }
  // Least or greatest entry of leaf l (nullopt only in a torn read).
  static std::optional<entry> leaf_extreme(const leaf* l, bool want_min) {
    if (l->bitmap()) {
      const int b = want_min ? l->next_set(0) : l->prev_set(255);
      if (b < 0 || b > 255) return std::nullopt;
      return leaf_entry(l, static_cast<unsigned>(b));
    }
    const unsigned c = l->count();
    if (c == 0) return std::nullopt;
    return leaf_entry(l, want_min ? 0 : c - 1);
  }
  // Up: least entry >= key in leaf l; !Up: greatest entry <= key.
  template <bool Up>
  static std::optional<entry> leaf_bound(const leaf* l, std::uint64_t key) {
    if (l->bitmap()) {
      const std::uint64_t p = l->prefix(), kp = key & ~std::uint64_t{0xff};
      if (kp != p) {
        if (Up == (kp < p)) return leaf_extreme(l, Up);
        return std::nullopt;
      }
      const int b = Up ? l->next_set(static_cast<int>(key & 0xff)) : l->prev_set(static_cast<int>(key & 0xff));
      if (b < 0 || b > 255) return std::nullopt;
      return leaf_entry(l, static_cast<unsigned>(b));
    }
    const unsigned c = l->count();
    unsigned i = l->lower(key, c);
    if constexpr (Up) {
      if (i == c) return std::nullopt;
    } else {
      if (i == c || l->key_at(i) != key) {
        if (i == 0) return std::nullopt;
        --i;
      }
    }
    return leaf_entry(l, i);
  }

  // Least (want_min) or greatest key in subtree w, logging reads in rs;
  // nullopt if the subtree looks empty (only in a walk that will not
  // validate: no published node or leaf is empty).
  static std::optional<entry> extreme(word w, bool want_min, read_set& rs) {
    if (w == 0) return std::nullopt;
    if (detail::judy_is_leaf(w)) {
      rs.enter_leaf(as_leaf(w));
      return leaf_extreme(as_leaf(w), want_min);
    }
    const node* n = as_node(w);
    rs.enter(n);
    const bool pigeon = n->kind_ == kind::pigeon;
    std::optional<entry> out;
    auto f = [&](unsigned, const std::atomic<word>* at, word c) {
      if (!pigeon) rs.note_word(at, c);
      return (out = extreme(c, want_min, rs)).has_value() || rs.overflow;
    };
    if (want_min) {
      n->template visit_at<true>(0, 255, f);
    } else {
      n->template visit_at<false>(0, 255, f);
    }
    return out;
  }

  // Up: least key >= key in subtree w at depth d (whose prefix equals key's
  // first d bytes); !Up: greatest key <= key. Every changeable word read is
  // logged in rs; the caller trusts the result only if rs.still_current().
  template <bool Up>
  static std::optional<entry> bound(word w, unsigned d, std::uint64_t key, read_set& rs) {
    if (w == 0) return std::nullopt;
    if (detail::judy_is_leaf(w)) {
      rs.enter_leaf(as_leaf(w));
      return leaf_bound<Up>(as_leaf(w), key);
    }
    const node* n = as_node(w);
    rs.enter(n);
    const unsigned byte = detail::judy_byte(key, d);
    if (auto r = bound<Up>(rs.child(n, byte), d + 1, key, rs)) return r;
    const bool pigeon = n->kind_ == kind::pigeon;
    std::optional<entry> out;
    auto f = [&](unsigned, const std::atomic<word>* at, word c) {
      if (!pigeon) rs.note_word(at, c);
      return (out = extreme(c, Up, rs)).has_value() || rs.overflow;
    };
    if constexpr (Up) {
      if (byte < 255) n->template visit_at<true>(byte + 1, 255, f);
    } else {
      if (byte > 0) n->template visit_at<false>(0, byte - 1, f);
    }
    return out;
  }

  // A bound query inside the caller's read side: walks, then re-checks what
  // it read; walks again if a concurrent update changed any of it.
  template <bool Up>
  std::optional<entry> bound_query(std::uint64_t key) const {
    for (;;) {
      const word root = root_.load(std::memory_order_acquire);  // as find_rcu
      if (root == 0) return std::nullopt;                       // empty at this load
      read_set rs;
      rs.note_word(&root_, root);
      std::optional<entry> r;
      if (!is_rec(root)) {
        r = bound<Up>(root, 0, key, rs);
      } else {
        // Immutable record: the whole tree lies in [prefix, prefix | low ones].
        const rec* rc = as_rec(root);
        const std::uint64_t kp = key & prefix_mask(rc->depth);
        if (kp == rc->prefix) {
          r = bound<Up>(rc->top, rc->depth, key, rs);
        } else if ((kp < rc->prefix) == Up) {
          r = extreme(rc->top, Up, rs);  // every key is on the query's side
        }
      }
      if (rs.still_current()) return r;
    }
  }

  // Calls f on every entry of leaf l in [lo, hi], ascending: copies up to
  // kChunk entries at a time under the leaf's sequence count, and calls f on
  // a copy that validated (judy_leaf.hpp (L1)); the next chunk starts after
  // the last key passed to f, so a change between chunks neither repeats
  // nor skips a key present throughout. Returns true if f asked to stop.
  template <class F>
  static bool walk_leaf(const leaf* l, std::uint64_t lo, std::uint64_t hi, F& f) {
    constexpr unsigned kChunk = 32;
    std::uint64_t from = lo;
    for (;;) {
      std::uint64_t ks[kChunk];
      T vs[kChunk];
      unsigned m = 0;
      bool more = false;
      const std::uint32_t s = l->seq.read_begin();
      if (l->bitmap()) {
        const std::uint64_t p = l->prefix();
        int b = (from & ~std::uint64_t{0xff}) < p ? 0 : (from & ~std::uint64_t{0xff}) == p ? static_cast<int>(from & 0xff) : 256;
        for (b = l->next_set(b); b < 256; b = l->next_set(b + 1)) {
          const std::uint64_t k = p | static_cast<unsigned>(b);
          if (k > hi) break;
          if (m == kChunk) {
            more = true;
            break;
          }
          ks[m] = k;
          l->value(static_cast<unsigned>(b), vs[m]);
          ++m;
        }
      } else {
        const unsigned c = l->count();
        for (unsigned i = l->lower(from, c); i < c; ++i) {
          const std::uint64_t k = l->key_at(i);
          if (k > hi) break;
          if (m == kChunk) {
            more = true;
            break;
          }
          ks[m] = k;
          l->value(i, vs[m]);
          ++m;
        }
      }
      if (l->seq.retry(s)) continue;
      for (unsigned j = 0; j < m; ++j) {
        if (!detail::visit_continues(f, ks[j], vs[j])) return true;
      }
      if (!more) return false;
      from = ks[m - 1] + 1;  // more: a key above ks[m-1] exists, so no wrap
    }
  }

  // Returns true if f asked to stop.
  template <class F>
  static bool walk(word w, unsigned d, std::uint64_t lo, std::uint64_t hi, bool lo_tight, bool hi_tight,
                   F& f) {
    if (w == 0) return false;
    if (detail::judy_is_leaf(w)) return walk_leaf(as_leaf(w), lo, hi, f);
    const unsigned from = lo_tight ? detail::judy_byte(lo, d) : 0;
    const unsigned to = hi_tight ? detail::judy_byte(hi, d) : 255;
    return as_node(w)->template visit<true>(from, to, [&](unsigned b, word c) {
      return walk(c, d + 1, lo, hi, lo_tight && b == from, hi_tight && b == to, f);
    });
  }

  // ---- writers -----------------------------------------------------------
  static constexpr int kMaxDepth = 8;

  struct path {
    node* nodes[kMaxDepth];  // indexed by depth, from d0 to bottom
    unsigned bytes[kMaxDepth];
    int d0 = 0;         // depth of the top node (the root record's depth)
    int bottom = -1;    // depth of the deepest node on the path; d0 - 1 = the root word
    word root = 0;      // root_ as read
    bool diverged = false;  // key's first d0 bytes differ from the record's prefix
    int root_level() const noexcept { return d0 - 1; }
  };

  // Descends (under RCU) to the deepest node on key's path; returns the word
  // in its slot for key (0 or a leaf), or the root word if the key lies
  // outside the root record's prefix (p.diverged).
  word descend(std::uint64_t key, path& p) const {
    word w = p.root = root_.load(std::memory_order_acquire);  // as find_rcu
    p.d0 = 0;
    p.diverged = false;
    if (is_rec(w)) {
      const rec* r = as_rec(w);
      p.d0 = static_cast<int>(r->depth);
      if ((key & prefix_mask(r->depth)) != r->prefix) {
        p.diverged = true;
        p.bottom = p.d0 - 1;
        return w;
      }
      w = r->top;
    }
    p.bottom = p.d0 - 1;
    for (unsigned d = static_cast<unsigned>(p.d0); w != 0 && !detail::judy_is_leaf(w); ++d) {
      node* n = as_node(w);
      p.nodes[d] = n;
      p.bytes[d] = detail::judy_byte(key, d);
      p.bottom = static_cast<int>(d);
      w = n->child(p.bytes[d]);
    }
    return w;
  }

  // What an update does to the leaf in its slot: nothing, an in-place
  // change, or a rebuild (the leaf is full, falls below its class, changes
  // encoding or empties). found/pos: whether key is there, and where (index
  // or byte). Exact for the lock holder; an estimate otherwise.
  enum class leaf_op { noop, in_place, rebuild };
  struct leaf_plan {
    leaf_op op = leaf_op::noop;
    bool found = false;
    unsigned pos = 0;
  };
  static leaf_plan plan_leaf(const leaf* l, std::uint64_t key, const T* v, bool assign) {
    leaf_plan pl;
    const unsigned c = l->count();
    if (l->bitmap()) {
      pl.pos = static_cast<unsigned>(key & 0xff);
      pl.found = l->test(pl.pos);  // the path matched the leaf's prefix
      if (v == nullptr) {
        pl.op = !pl.found ? leaf_op::noop : c - 1 <= merge_max ? leaf_op::rebuild : leaf_op::in_place;
      } else {
        pl.op = pl.found && !assign ? leaf_op::noop : leaf_op::in_place;
      }
      return pl;
    }
    pl.pos = l->lower(key, c);
    pl.found = pl.pos < c && l->key_at(pl.pos) == key;
    if (v == nullptr) {
      if (!pl.found) {
        pl.op = leaf_op::noop;
      } else if (c == 1 || ((c - 1) * 2 < l->cap && cap_for(c + 1) < l->cap)) {
        pl.op = leaf_op::rebuild;  // empties, or shrinks to a smaller class
      } else {
        pl.op = leaf_op::in_place;
      }
    } else if (pl.found) {
      pl.op = assign ? leaf_op::in_place : leaf_op::noop;
    } else {
      pl.op = c < l->cap ? leaf_op::in_place : leaf_op::rebuild;
    }
    return pl;
  }
  // Carries out a noop or in-place plan on the locked, live leaf l; returns
  // update()'s result (inserted, or erased) and fills *erased.
  bool finish_in_place(leaf* l, const leaf_plan& pl, std::uint64_t key, const T* v, std::optional<T>* erased) {
    if (v == nullptr) {
      if (!pl.found) return false;
      T old;
      l->value(pl.pos, old);
      *erased = old;
      if (l->bitmap()) {
        l->bitmap_clear(pl.pos);
      } else {
        l->sorted_erase(pl.pos);
      }
      count_keys(-1, 0);
      return true;
    }
    if (pl.op == leaf_op::noop) return false;
    if (pl.found) {
      l->assign(pl.pos, *v);
      return false;
    }
    if (l->bitmap()) {
      l->bitmap_set(pl.pos, *v);
    } else {
      l->sorted_insert(pl.pos, key, *v);
    }
    count_keys(1, 0);
    return true;
  }
  // Statistics, striped per thread so writers in disjoint subtrees do not
  // share a cache line; relaxed: summed by size()/node_bytes(), which are
  // exact only when no writer runs.
  void count_keys(std::ptrdiff_t keys, std::ptrdiff_t bytes) noexcept {
    if (keys != 0) counts_.add(keys, count_keys_field);
    if (bytes != 0) counts_.add(bytes, count_bytes_field);
  }

  // ---- building unpublished subtrees (plain stores: published later) -----
  // A sorted leaf of capacity cap from sorted parallel arrays, or nullptr.
  static leaf* make_sorted(const std::uint64_t* keys, const char* values, unsigned n, unsigned cap) {
    leaf* l = detail::judy_new_sorted_leaf<T>(cap);
    if (l == nullptr) return nullptr;
    std::memcpy(l->key_words(), keys, 8 * std::size_t{n});
    std::memcpy(l->value_slot(0), values, sizeof(T) * std::size_t{n});
    l->n.store(static_cast<std::uint16_t>(n), std::memory_order_relaxed);  // published later (release)
    return l;
  }
  static leaf* make_bitmap(const std::uint64_t* keys, const char* values, unsigned n) {
    leaf* l = detail::judy_new_bitmap_leaf<T>(keys[0]);
    if (l == nullptr) return nullptr;
    for (unsigned i = 0; i < n; ++i) {
      const unsigned b = static_cast<unsigned>(keys[i] & 0xff);
      l->bit_words()[b >> 6] |= std::uint64_t{1} << (b & 63);
      std::memcpy(l->value_slot(b), values + sizeof(T) * i, sizeof(T));
    }
    l->n.store(static_cast<std::uint16_t>(n), std::memory_order_relaxed);  // published later (release)
    return l;
  }
  // Frees an unpublished subtree built below (nodes and leaves).
  static void free_unpublished(word w) {
    if (w == 0) return;
    if (detail::judy_is_leaf(w)) {
      detail::judy_free_leaf<T>(as_leaf_mut(w));
      return;
    }
    node* n = as_node(w);
    n->template visit<true>(0, 255, [](unsigned, word c) {
      free_unpublished(c);
      return false;
    });
    detail::judy_free_node(n);
  }
  static std::size_t subtree_bytes(word w) {
    if (w == 0) return 0;
    if (detail::judy_is_leaf(w)) return word_bytes(w);
    std::size_t s = word_bytes(w);
    as_node(w)->template visit<true>(0, 255, [&](unsigned, word c) {
      s += subtree_bytes(c);
      return false;
    });
    return s;
  }
  // The subtree for n sorted entries sharing bytes [0, s): one sorted leaf
  // (capacity cap_for(n + slack)) if they fit, a bitmap leaf at depth 7,
  // else a node at depth s over subtrees. 0 on allocation failure (nothing
  // leaked).
  static word build_subtree(const std::uint64_t* keys, const char* values, unsigned n, unsigned s,
                            unsigned slack) {
    if (n <= BucketCap) {
      // At the last level a growing leaf doubles: dense keys reach the
      // bitmap leaf after a few copies instead of one per two keys.
      const unsigned want = s >= 7 && slack == 1 && 2 * n - 2 > n + slack ? 2 * n - 2 : n + slack;
      leaf* l = make_sorted(keys, values, n, cap_for(want));
      return l == nullptr ? 0 : leaf_word(l);
    }
    if (s >= 7) {
      leaf* l = make_bitmap(keys, values, n);
      return l == nullptr ? 0 : leaf_word(l);
    }
    detail::judy_child_list l;
    for (unsigned i = 0; i < n;) {
      const unsigned byte = detail::judy_byte(keys[i], s);
      unsigned j = i;
      while (j < n && detail::judy_byte(keys[j], s) == byte) ++j;
      const word c = build_subtree(keys + i, values + sizeof(T) * i, j - i, s + 1, slack);
      if (c == 0) {
        for (unsigned x = 0; x < l.n; ++x) free_unpublished(l.words[x]);
        return 0;
      }
      l.push(byte, c);
      i = j;
    }
    node* nd = detail::judy_build(detail::judy_choose_kind(kind::lin4, l), l);
    if (nd == nullptr) {
      for (unsigned x = 0; x < l.n; ++x) free_unpublished(l.words[x]);
      return 0;
    }
    return node_word(nd);
  }

  // The word that replaces leaf l (locked; nullptr = empty slot) in its slot
  // at depth s after the update: a new leaf or subtree, or 0 (emptied).
  // With dry == true (l unlocked, an estimate) out is a placeholder.
  // Returns false on allocation failure.
  static bool plan_bottom(const leaf* l, std::uint64_t key, const T* v, unsigned s, bool dry, word& out) {
    if (dry) {
      unsigned n = l == nullptr ? 0 : l->count();
      n = v == nullptr ? (n == 0 ? 0 : n - 1) : n + 1;
      out = n == 0 ? 0 : (n <= BucketCap || s >= 7) ? fake_leaf(n) : kSomeNode;
      return true;
    }
    std::uint64_t keys[257];
    alignas(T) char values[sizeof(T) * 257];
    unsigned n = l == nullptr ? 0 : l->gather(keys, values);
    unsigned i = 0;
    while (i < n && keys[i] < key) ++i;
    const bool found = i < n && keys[i] == key;
    if (v == nullptr) {
      if (found) {
        std::memmove(keys + i, keys + i + 1, 8 * std::size_t{n - i - 1});
        std::memmove(values + sizeof(T) * i, values + sizeof(T) * (i + 1), sizeof(T) * std::size_t{n - i - 1});
        --n;
      }
    } else if (found) {
      std::memcpy(values + sizeof(T) * i, static_cast<const void*>(v), sizeof(T));
    } else {
      std::memmove(keys + i + 1, keys + i, 8 * std::size_t{n - i});
      std::memmove(values + sizeof(T) * (i + 1), values + sizeof(T) * i, sizeof(T) * std::size_t{n - i});
      keys[i] = key;
      std::memcpy(values + sizeof(T) * i, static_cast<const void*>(v), sizeof(T));
      ++n;
    }
    if (n == 0) {
      out = 0;
      return true;
    }
    out = build_subtree(keys, values, n, s, v == nullptr ? 2 : 1);
    return out != 0;
  }

  // Sibling leaves a merge copied (locked by this update; marked dead and
  // retired at its commit, unlocked at its end either way).
  struct held_leaves {
    static constexpr unsigned cap = 2 * 128 + 8;
    leaf* l[cap];
    unsigned n = 0;
    void unlock_from(unsigned from) noexcept {
      while (n > from) l[--n]->unlock();
    }
  };

  // The effect of "set slot b of n (at depth d) to w" (w == 0: remove).
  // in_place: n absorbs it; otherwise `repl` replaces n in its parent (0 =
  // n vanishes; a leaf = n merged into one leaf because its children are
  // all leaves holding <= merge_max keys; a node = n rebuilt in the class
  // the hysteresis rules pick). With dry == true nothing is allocated or
  // locked and `repl` is a placeholder. Caller holds n's lock unless dry; a
  // merge then locks n's other child leaves into `held`.
  struct effect {
    bool in_place = false;
    word repl = 0;
    bool alloc_failed = false;
  };
  static effect apply(const node* n, unsigned b, word w, bool dry, held_leaves* held) {
    effect e;
    const int idx = n->index_of(b);
    const bool present = idx >= 0 && n->children()[idx].load(std::memory_order_acquire) != 0;  // as child()
    const unsigned cnt = n->count();
    const unsigned after = cnt + (present ? 0u : 1u) - (w == 0 ? 1u : 0u);
    if (!present && w == 0) {
      e.in_place = true;  // nothing to do (callers never ask)
      return e;
    }
    if (after == 0) return e;  // repl = 0: n vanishes
    // Merge check: every child a leaf and at most merge_max keys in all.
    // Merges are considered when an update rebuilds a leaf (grows, shrinks
    // or removes it), not on in-place erases: see the essay.
    if (after <= merge_max && (w == 0 || detail::judy_is_leaf(w))) {
      const unsigned mark = dry ? 0 : held->n;
      std::uint32_t total = w == 0 ? 0 : leaf_count(w);
      bool all_leaves = true;
      n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
        if (cb == b) return false;
        if (!detail::judy_is_leaf(cw)) {
          all_leaves = false;
          return true;
        }
        if (!dry) {
          as_leaf_mut(cw)->lock();  // n is locked: cw stays its child, and live
          held->l[held->n++] = as_leaf_mut(cw);
        }
        total += as_leaf(cw)->count();
        return total > merge_max;
      });
      if (all_leaves && total <= merge_max) {
        if (dry) {
          e.repl = fake_leaf(total);
          return e;
        }
        std::uint64_t keys[BucketCap / 2 + 256];
        alignas(T) char values[sizeof(T) * (BucketCap / 2 + 256)];
        std::uint32_t m = 0;
        auto take = [&](word cw) { m += as_leaf(cw)->gather(keys + m, values + sizeof(T) * m); };
        bool placed = w == 0;
        n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
          if (!placed && cb >= b) {
            take(w);
            placed = true;
          }
          if (cb != b) take(cw);
          return false;
        });
        if (!placed) take(w);
        leaf* ml = make_sorted(keys, values, m, cap_for(m + 2));
        if (ml == nullptr) {
          e.alloc_failed = true;
          return e;
        }
        e.repl = leaf_word(ml);
        return e;
      }
      if (!dry) held->unlock_from(mark);  // no merge: these leaves stay as they are
    }
    const bool pigeon = n->kind_ == kind::pigeon;
    if (present && w != 0) {  // replace a child: the key set is unchanged
      e.in_place = true;
      return e;
    }
    if (pigeon && (w != 0 || after >= detail::judy_kinds[static_cast<unsigned>(kind::pigeon)].min_count)) {
      e.in_place = true;  // pigeon slots change in place
      return e;
    }
    // Rebuild n with the change (copy-on-write).
    if (dry) {
      e.repl = kSomeNode;
      return e;
    }
    detail::judy_child_list l;
    bool added = false;
    n->template visit<true>(0, 255, [&](unsigned cb, word cw) {
      if (w != 0 && !added && cb > b) {
        l.push(b, w);
        added = true;
      }
      if (cb != b) l.push(cb, cw);
      return false;
    });
    if (w != 0 && !added) l.push(b, w);
    node* r = detail::judy_build(detail::judy_choose_kind(n->kind_, l), l);
    if (r == nullptr) {
      e.alloc_failed = true;
      return e;
    }
    e.repl = node_word(r);
    return e;
  }

  // Block bytes of a node or leaf (what the allocator took from malloc).
  static std::size_t word_bytes(word w) noexcept {
    if (is_rec(w)) return detail::judy_block_bytes(sizeof(rec));
    return detail::judy_block_bytes(detail::judy_is_leaf(w) ? as_leaf(w)->bytes() : as_node(w)->bytes());
  }
  // Retires a node or leaf that new readers can no longer reach: into the
  // calling thread's batch, or alone if no batch could be allocated.
  static void retire_word(word w) noexcept {
    if (is_rec(w)) {
      if (detail::judy_reclaimer<Rcu>::retire(as_rec_mut(w), sizeof(rec))) return;
      detail::judy_alloc::solo_pending.add(static_cast<long>(word_bytes(w)));
      rcu::retire_with<&free_rec_remote, Rcu>(as_rec_mut(w));
      return;
    }
    void* mem = detail::judy_is_leaf(w) ? static_cast<void*>(as_leaf_mut(w)) : static_cast<void*>(as_node(w));
    if (detail::judy_reclaimer<Rcu>::retire(mem, word_bytes(w))) return;
    detail::judy_alloc::solo_pending.add(static_cast<long>(word_bytes(w)));  // until the callback frees it
    if (detail::judy_is_leaf(w)) {
      rcu::retire_with<&detail::judy_free_leaf_remote<T>, Rcu>(as_leaf_mut(w));
    } else {
      rcu::retire_with<&detail::judy_free_node_remote, Rcu>(as_node(w));
    }
  }
  // Frees one unpublished node or leaf (not its children).
  static void free_one(word w) noexcept {
    if (w == 0) return;
    if (is_rec(w)) {
      free_rec(as_rec_mut(w));
      return;
    }
    if (detail::judy_is_leaf(w)) {
      detail::judy_free_leaf<T>(as_leaf_mut(w));
    } else {
      detail::judy_free_node(as_node(w));
    }
  }

  // In-place part of an update at node n (locked): set/clear slot b.
  static void store_in_place(node* n, unsigned b, word w) {
    if (n->kind_ == kind::pigeon) {
      const word old = n->children()[b].load(std::memory_order_relaxed);  // under n's lock
      if (old == 0 && w != 0)
        n->count_.store(static_cast<std::uint16_t>(n->count() + 1), std::memory_order_relaxed);
      if (old != 0 && w == 0)
        n->count_.store(static_cast<std::uint16_t>(n->count() - 1), std::memory_order_relaxed);
      // Inside a write section of the node's seqcount (judy_node.hpp (2)):
      // bound queries that read slots of n across this store see the count
      // change and walk again.
      n->pigeon_seq().write_begin();
      // release: publishes w's contents; pairs with the acquire in child().
      // It also orders write_begin() before it (seqcount.hpp).
      n->children()[b].store(w, std::memory_order_release);
      n->pigeon_seq().write_end();
      return;
    }
    const int idx = n->index_of(b);
    if (idx >= 0) n->children()[idx].store(w, std::memory_order_release);  // pairs with child()
  }

  void lock_level(const path& p, int d) const {
    if (d < p.d0) {
      root_lock_.lock();
    } else {
      p.nodes[d]->lock();
    }
  }
  void unlock_range(const path& p, int top, int bottom) const {
    for (int d = bottom; d >= top; --d) {
      if (d < p.d0) {
        root_lock_.unlock();
      } else {
        p.nodes[d]->unlock();
      }
    }
  }

  // Inserts key, whose first p.d0 bytes differ from the root record's
  // prefix: a new top node at the first differing depth j over a new leaf
  // for key and a chain of single-child nodes down to the old top (only
  // the root may skip levels). Caller holds the root lock and checked that
  // root_ is still p.root. Returns the bytes added, or -1 on allocation
  // failure (nothing published).
  std::ptrdiff_t insert_diverged(const path& p, std::uint64_t key, const T* v) {
    const rec* r = as_rec(p.root);
    const unsigned j = static_cast<unsigned>(__builtin_clzll((key ^ r->prefix) & prefix_mask(r->depth))) / 8;
    std::ptrdiff_t bytes = 0;
    node* built[kMaxDepth];
    unsigned nbuilt = 0;
    auto fail = [&]() {
      while (nbuilt > 0) detail::judy_free_node(built[--nbuilt]);  // each one's child is published or freed next
      return std::ptrdiff_t{-1};
    };
    word chain = r->top;
    for (unsigned d = r->depth - 1; d > j; --d) {
      detail::judy_child_list l;
      l.push(detail::judy_byte(r->prefix, d), chain);
      node* n = detail::judy_build(kind::lin4, l);
      if (n == nullptr) return fail();
      built[nbuilt++] = n;
      bytes += static_cast<std::ptrdiff_t>(word_bytes(node_word(n)));
      chain = node_word(n);
    }
    leaf* nl = make_sorted(&key, reinterpret_cast<const char*>(v), 1, cap_for(2));
    if (nl == nullptr) return fail();
    detail::judy_child_list l;
    const unsigned kb = detail::judy_byte(key, j), pb = detail::judy_byte(r->prefix, j);
    if (kb < pb) {
      l.push(kb, leaf_word(nl));
      l.push(pb, chain);
    } else {
      l.push(pb, chain);
      l.push(kb, leaf_word(nl));
    }
    node* top = detail::judy_build(kind::lin4, l);
    word root = top == nullptr ? 0 : j == 0 ? node_word(top) : make_rec(node_word(top), j, key);
    if (root == 0) {
      if (top != nullptr) detail::judy_free_node(top);
      detail::judy_free_leaf<T>(nl);
      return fail();
    }
    bytes += static_cast<std::ptrdiff_t>(word_bytes(leaf_word(nl)) + word_bytes(node_word(top)));
    if (is_rec(root)) bytes += static_cast<std::ptrdiff_t>(word_bytes(root));
    root_.store(root, std::memory_order_release);  // pairs with the acquire loads of root_
    bytes -= static_cast<std::ptrdiff_t>(word_bytes(p.root));
    retire_word(p.root);  // the old record; the old top stays, below the chain
    return bytes;
  }

  // The single writer routine. v != nullptr: insert (assign: or replace),
  // returning true if the key was inserted, false if it was present.
  // v == nullptr: erase, returning true and filling *erased if removed.
  absl::StatusOr<bool> update(std::uint64_t key, const T* v, bool assign, std::optional<T>* erased) {
    // Take the batches parked in the depot (past their grace period) into
    // this thread's block cache (detail/rcu_batch.hpp, drain()).
    detail::judy_reclaimer<Rcu>::drain();
    for (;;) {
      // The read side covers the lock-free part (descend, plan, lock,
      // validate) and in-place changes; see "Short writer read sides".
      std::optional<rcu::read_guard<Rcu>> g;
      g.emplace();
      path p;
      word cur = descend(key, p);
      const unsigned s = static_cast<unsigned>(p.bottom + 1);  // depth of the bottom slot
      const int rl = p.root_level();

      if (p.diverged) {  // the key lies outside the root record's prefix: absent
        if (v == nullptr) return false;
        root_lock_.lock();
        if (root_.load(std::memory_order_relaxed) != p.root) {  // under the root lock
          root_lock_.unlock();
          continue;
        }
        g.reset();  // the record and its top change only under the root lock
        const std::ptrdiff_t added = insert_diverged(p, key, v);
        root_lock_.unlock();
        if (added < 0) return absl::ResourceExhaustedError("judy_array: allocation failed");
        count_keys(1, added);
        return true;
      }

      // 0. The common case: the key's leaf changes in place under its own
      //    lock (judy_leaf.hpp); nothing else is locked or written.
      if (cur != 0) {
        leaf* l = as_leaf_mut(cur);
        l->lock();
        if (l->is_dead()) {  // replaced since we read its slot
          l->unlock();
          continue;
        }
        const leaf_plan pl = plan_leaf(l, key, v, assign);
        if (pl.op != leaf_op::rebuild) {
          const bool r = finish_in_place(l, pl, key, v, erased);
          l->unlock();
          return r;
        }
        l->unlock();
      } else if (v == nullptr) {
        return false;  // erase: the key's slot is empty
      }

      // 1. Plan the top level without locks.
      word w = 0;
      plan_bottom(cur == 0 ? nullptr : as_leaf(cur), key, v, s, /*dry=*/true, w);
      int top = p.bottom;
      for (; top > rl; --top) {
        const effect e = apply(p.nodes[top], p.bytes[top], w, true, nullptr);
        if (e.in_place) break;
        w = e.repl;
      }

      // 2. Lock top..bottom in depth order (invariant 1) and validate: the
      //    top node is live, or the root word is as read, and every locked
      //    parent still points to the next node, so every locked node is
      //    live (invariant 2).
      bool valid = true;
      int locked = top - 1;
      for (int d = top; d <= p.bottom && valid; ++d) {
        lock_level(p, d);
        locked = d;
        if (d == rl) {
          valid = root_.load(std::memory_order_relaxed) == p.root;  // under the root lock
        } else if (d == top) {
          valid = !p.nodes[d]->is_dead();
        } else if (d > p.d0) {
          // Parent locked: its slot is stable.
          valid = p.nodes[d - 1]->child(p.bytes[d - 1]) == node_word(p.nodes[d]);
        }  // d == p.d0 below the locked root word: the root word is as read, so its top is nodes[d0]
      }
      if (!valid) {
        unlock_range(p, top, locked);
        continue;
      }
      // Re-read the bottom slot under its lock.
      cur = p.bottom == rl ? root_.load(std::memory_order_relaxed)  // under the root lock
                           : p.nodes[p.bottom]->child(p.bytes[p.bottom]);
      if (cur != 0 && !detail::judy_is_leaf(cur)) {  // a subtree grew below us: descend again
        unlock_range(p, top, p.bottom);
        continue;
      }
      // The leaf in the slot (locked after its parent: invariant 1) is live:
      // a leaf is replaced or removed only under its parent's lock.
      leaf* bl = cur == 0 ? nullptr : as_leaf_mut(cur);
      if (bl != nullptr) bl->lock();
      auto unlock_all = [&](held_leaves* h) {
        if (h != nullptr) h->unlock_from(0);
        if (bl != nullptr) bl->unlock();
        unlock_range(p, top, p.bottom);
      };
      // Everything read from here on is locked and live, a child of a
      // locked node (replacing it needs that lock), or an object this
      // update replaces and alone retires: none can be freed under us, so
      // the read side ends here and grace periods need not wait for the
      // allocation, the copy and the commit.
      g.reset();

      // 3. Plan for real, allocating (nothing is published yet). The leaf
      //    may have changed since step 0: it may now take the change in place.
      leaf_plan pl;
      if (bl != nullptr) {
        pl = plan_leaf(bl, key, v, assign);
        if (pl.op != leaf_op::rebuild) {
          const bool r = finish_in_place(bl, pl, key, v, erased);
          unlock_all(nullptr);
          return r;
        }
      } else if (v == nullptr) {
        unlock_all(nullptr);
        return false;
      }
      if (!plan_bottom(bl, key, v, s, /*dry=*/false, w)) {
        unlock_all(nullptr);
        return absl::ResourceExhaustedError("judy_array: allocation failed");
      }
      // A subtree built at the root word (the root leaf split): skip its
      // chain of single-child nodes (all unpublished) behind a root record.
      unsigned new_d0 = 0;
      if (p.bottom == rl && w != 0 && !detail::judy_is_leaf(w)) {
        while (new_d0 < 6 && as_node(w)->count() == 1) {
          word only = 0;
          as_node(w)->template visit<true>(0, 255, [&](unsigned, word c) {
            only = c;
            return true;
          });
          if (detail::judy_is_leaf(only)) break;
          detail::judy_free_node(as_node(w));
          w = only;
          ++new_d0;
        }
      }
      // repl[d]: node d's replacement in its parent (levels level+1 ..
      // bottom are replaced).
      word repl[kMaxDepth];
      const word fresh = w;  // the new bottom word: a wholly new leaf or subtree, or 0
      // Its size, measured before publication: once published, other writers
      // may change nodes inside a fresh subtree (and account for that).
      const std::size_t fresh_bytes = subtree_bytes(fresh);
      held_leaves held;
      int level = p.bottom;
      bool failed = false;
      // Never above `top`: those nodes are not locked, and outside the read
      // side they may be freed; needing them means retrying (below).
      for (; level > rl && level >= top; --level) {
        const effect e = apply(p.nodes[level], p.bytes[level], w, false, &held);
        if (e.alloc_failed) {
          failed = true;
          break;
        }
        if (e.in_place) break;
        repl[level] = e.repl;
        w = e.repl;
      }
      // At the root word, a node below a skipped prefix needs a new record.
      word new_rec = 0;
      if (!failed && level == rl && w != 0 && !detail::judy_is_leaf(w)) {
        const unsigned depth = p.bottom == rl ? new_d0 : static_cast<unsigned>(p.d0);
        if (depth > 0) {
          new_rec = make_rec(w, depth, key);
          failed = new_rec == 0;
        }
      }
      if (failed || level < top) {
        // Roll back: free everything built; nothing was published. A
        // rebuilt node is freed alone: its other children are published.
        for (int d = level + 1; d <= p.bottom; ++d) free_one(repl[d]);
        free_unpublished(fresh);
        unlock_all(&held);
        if (failed) return absl::ResourceExhaustedError("judy_array: allocation failed");
        continue;  // needs a level above the ones locked: retry
      }

      // 4. Commit: one release store at `level` publishes everything built.
      std::ptrdiff_t delta = 0;
      if (level == rl) {
        const word root = new_rec != 0 ? new_rec : w;
        root_.store(root, std::memory_order_release);  // pairs with the acquire loads of root_
        if (new_rec != 0) delta += static_cast<std::ptrdiff_t>(word_bytes(new_rec));
      } else {
        store_in_place(p.nodes[level], p.bytes[level], w);
      }
      for (int d = level + 1; d <= p.bottom; ++d) {
        p.nodes[d]->dead_.store(true, std::memory_order_relaxed);  // under its lock (invariant 5)
      }
      // Bytes and reclamation. A node merged into a leaf copied the word
      // set into it (unpublished: freed now) and its other child leaves
      // (published, locked in `held`: retired with it).
      auto merged = [&](int d) { return repl[d] != 0 && detail::judy_is_leaf(repl[d]); };
      if (fresh != 0) {
        if (p.bottom > level && merged(p.bottom)) {
          detail::judy_free_leaf<T>(as_leaf_mut(fresh));
        } else {
          delta += static_cast<std::ptrdiff_t>(fresh_bytes);
        }
      }
      for (int d = level + 1; d <= p.bottom; ++d) {
        if (repl[d] == 0) continue;
        if (d - 1 > level && merged(d - 1)) {
          free_one(repl[d]);  // copied into the merged leaf above
        } else {
          delta += static_cast<std::ptrdiff_t>(word_bytes(repl[d]));
        }
      }
      word retire_list[kMaxDepth + 2];
      int nretire = 0;
      for (int d = level + 1; d <= p.bottom; ++d) retire_list[nretire++] = node_word(p.nodes[d]);
      if (level == rl && is_rec(p.root)) retire_list[nretire++] = p.root;  // replaced with its top
      bool inserted = true;
      if (bl != nullptr) {
        if (v != nullptr) inserted = !pl.found;
        if (v == nullptr) {  // erase implies found (else in place: noop)
          T old;
          bl->value(pl.pos, old);
          *erased = old;
        }
        bl->mark_dead();  // (L3); unlocked below
        retire_list[nretire++] = cur;
      }
      for (unsigned i = 0; i < held.n; ++i) {  // merged siblings (L3)
        held.l[i]->mark_dead();
        held.l[i]->unlock();
      }
      unlock_all(nullptr);
      for (int i = 0; i < nretire; ++i) {
        delta -= static_cast<std::ptrdiff_t>(word_bytes(retire_list[i]));
        retire_word(retire_list[i]);
      }
      for (unsigned i = 0; i < held.n; ++i) {
        delta -= static_cast<std::ptrdiff_t>(word_bytes(leaf_word(held.l[i])));
        retire_word(leaf_word(held.l[i]));
      }
      count_keys(v != nullptr ? (inserted ? 1 : 0) : -1, delta);
      return v != nullptr ? inserted : true;
    }
  }

  // ---- quiescent helpers ---------------------------------------------------
  static void destroy(word w) {
    if (is_rec(w)) {
      free_unpublished(as_rec(w)->top);
      free_rec(as_rec_mut(w));
      return;
    }
    free_unpublished(w);
  }

  static void count_shape(word w, shape& s) {
    if (w == 0) return;
    if (detail::judy_is_leaf(w)) {
      ++s.buckets;
      if (as_leaf(w)->bitmap()) ++s.bitmaps;
      return;
    }
    node* n = as_node(w);
    ++s.nodes[static_cast<unsigned>(n->kind_)];
    n->template visit<true>(0, 255, [&](unsigned, word c) {
      count_shape(c, s);
      return false;
    });
  }

  static void check_leaf(const leaf* l, unsigned d, std::uint64_t prefix, std::uint64_t mask, std::size_t& keys,
                         std::string& err) {
    const unsigned c = l->n.load(std::memory_order_relaxed);
    keys += c;
    if (l->bitmap()) {
      if (d != 7) err = "bitmap leaf at slot depth " + std::to_string(d);
      if (l->prefix() != prefix) err = "bitmap leaf prefix off its path";
      unsigned pop = 0;
      for (unsigned w = 0; w < 4; ++w) pop += static_cast<unsigned>(__builtin_popcountll(l->bits(w)));
      if (pop != c) err = "bitmap leaf count " + std::to_string(c) + " != bits " + std::to_string(pop);
      if (c <= merge_max) err = "bitmap leaf of " + std::to_string(c) + " keys should be sorted";
      return;
    }
    if (c == 0 || c > l->cap) err = "leaf of " + std::to_string(c) + " keys, capacity " + std::to_string(l->cap);
    if (l->cap > BucketCap || (l->cap != cap_for(l->cap))) err = "leaf capacity " + std::to_string(l->cap);
    for (unsigned i = 0; i < c && err.empty(); ++i) {
      if ((l->key_at(i) & mask) != prefix) err = "leaf key " + std::to_string(l->key_at(i)) + " off its path";
      if (i > 0 && l->key_at(i - 1) >= l->key_at(i)) err = "leaf keys not sorted";
    }
  }

  static void check(word w, unsigned d, std::uint64_t prefix, std::size_t& keys, std::size_t& bytes,
                    std::string& err) {
    if (w == 0 || !err.empty()) return;
    const std::uint64_t mask = d == 0 ? 0 : (d >= 8 ? ~std::uint64_t{0} : ~(~std::uint64_t{0} >> (8 * d)));
    if (detail::judy_is_leaf(w)) {
      bytes += word_bytes(w);
      check_leaf(as_leaf(w), d, prefix, mask, keys, err);
      return;
    }
    if (d >= 7) {
      err = "inner node at depth " + std::to_string(d);
      return;
    }
    const node* n = as_node(w);
    bytes += word_bytes(w);
    if (n->is_dead()) err = "dead node reachable";
    const detail::judy_kind_info& in = n->info();
    unsigned live = 0;
    if (n->kind_ == kind::pigeon) {
      for (unsigned b = 0; b < 256; ++b) {
        if (n->children()[b].load(std::memory_order_relaxed) != 0) ++live;
      }
    } else {
      unsigned total = 0;
      for (unsigned s = 0; s < in.nseg; ++s) {
        const unsigned c = n->seg_counts()[s];
        total += c;
        if (c > in.segcap) err = "segment overflow";
        for (unsigned i = 0; i < c && i < in.segcap; ++i) {
          const unsigned at = s * in.segcap + i;
          const unsigned b = n->keys()[at];
          if (i > 0 && n->keys()[at - 1] >= b) err = "keys not sorted in node";
          if (in.nseg == 4 && (b >> 6) != s) err = "pool key in the wrong segment";
          if (n->children()[at].load(std::memory_order_relaxed) != 0) ++live;
        }
      }
      if (total != live) err = "empty child word in a linear/pool node";
    }
    if (!err.empty()) return;
    if (live != n->count())
      err = "count_ " + std::to_string(n->count()) + " != children " + std::to_string(live);
    if (live == 0) err = "empty node";
    if (live < in.min_count || live > in.max_count) {
      err = "node kind " + std::to_string(static_cast<unsigned>(n->kind_)) + " holds " + std::to_string(live) +
            " children (class range " + std::to_string(in.min_count) + ".." + std::to_string(in.max_count) + ")";
    }
    if (!err.empty()) return;
    n->template visit<true>(0, 255, [&](unsigned b, word c) {
      check(c, d + 1, prefix | (std::uint64_t{b} << (56 - 8 * d)), keys, bytes, err);
      return !err.empty();
    });
  }

  alignas(64) std::atomic<word> root_{0};  // release-published by update(), acquired by readers
  mutable detail::spin_lock root_lock_;    // writers' lock for the root word (depth -1)
  // Keys inserted - erased, and node/leaf bytes allocated - freed, by the
  // threads of each stripe (one cache line per stripe for both).
  static constexpr unsigned count_keys_field = 0, count_bytes_field = 1;
  alignas(64) detail::striped_counter<2> counts_;
};

}  // namespace rcukit
