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
// The contract (docs/API.md): readers (find, contains, lower_equal,
// upper_equal, for_each) never lock or write shared memory and are
// linearizable (for_each visits, ascending and once, every key present for
// the whole walk); writers lock only the nodes they change, so writers in
// disjoint subtrees run in parallel; replaced nodes are freed after a grace
// period, and memory_bytes() says what the process holds meanwhile.
//
// How it works, one concern per file (all in namespace detail, each a layer
// that derives from the one before):
//   judy_core.hpp     the root word, its lock, the statistics, word tags;
//   judy_reclaim.hpp  freeing, retiring through RCU in batches, destroying;
//   judy_read.hpp     find, bound queries and their read set, walks:
//                     lock-free, inside one read side;
//   judy_rebuild.hpp  building unpublished leaves, subtrees, merges;
//   judy_write.hpp    the writer: plan without locks, lock top-down and
//                     validate, re-plan, publish with one release store;
//   judy_check.hpp    check_invariants and stats.
// The allocator (per-thread block caches, byte accounting) is
// judy_block_cache.hpp; why the design is what it is: docs/DESIGN.md.
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

#include <cstdint>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/fatal.hpp"
#include "rcukit/detail/judy_block_cache.hpp"
#include "rcukit/detail/judy_check.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// BucketCap: the largest sorted leaf (keys per leaf above the last level; a
// bitmap leaf at the last level holds up to 256). Tests use tiny leaves to
// grow deep trees; the default suits memory and lookups.
template <class T, class Rcu = rcu::default_flavor, unsigned BucketCap = 32>
class judy_array : private detail::judy_check<T, Rcu, BucketCap> {
  // T, Rcu and BucketCap are checked by detail::judy_core (static_asserts).
  using base = detail::judy_check<T, Rcu, BucketCap>;

 public:
  judy_array() = default;
  judy_array(const judy_array&) = delete;
  judy_array& operator=(const judy_array&) = delete;
  // Frees every node at once. Precondition: no other thread uses the array.
  // Also hands the calling thread's pending retired nodes (of any array) to
  // RCU, so that the next rcu::barrier() frees them.
  ~judy_array() {
    base::destroy(this->root_.load(std::memory_order_relaxed));  // quiescent
    detail::judy_reclaimer<Rcu>::flush();
    detail::judy_reclaimer<Rcu>::drain();
  }

  // Inserts key -> v. AlreadyExists if key is present; ResourceExhausted if a
  // node allocation failed. Either way nothing changed. Blocking (per-node
  // locks); readers see the key from the linearization point (the store
  // that publishes it: in the leaf, or of a new leaf or subtree) on. Call
  // outside or inside a read side.
  absl::Status insert(std::uint64_t key, const T& v, detail::call_site where = detail::call_site::current()) {
    base::online(where);
    absl::StatusOr<bool> r = this->update(key, &v, /*assign=*/false, nullptr);
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
    base::online(where);
    return this->update(key, &v, /*assign=*/true, nullptr);
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
    base::online(where);
    std::optional<T> out;
    absl::StatusOr<bool> r = this->update(key, nullptr, false, &out);
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
  std::optional<T> find_rcu(const rcu::read_guard<Rcu>&, std::uint64_t key) const { return this->find_in(key); }

  // Greatest key <= key with its value. Linearizable (see "Bound queries"
  // in detail/judy_read.hpp): lock-free, never locks or writes shared memory; retries
  // its walk when a concurrent update changed a node or leaf it read, and
  // waits out a writer inside an in-place change (a few stores). Takes its
  // own read side.
  std::optional<std::pair<std::uint64_t, T>> lower_equal(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return this->template bound_query<false>(key);
  }
  // Least key >= key with its value. As lower_equal.
  std::optional<std::pair<std::uint64_t, T>> upper_equal(std::uint64_t key, detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    return this->template bound_query<true>(key);
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
    base::online(where);
    if (lo > hi) return;
    rcu::read_guard<Rcu> g(where);
    this->walk_range(lo, hi, f);
  }

  // Keys present. Exact when no writer runs; relaxed snapshot otherwise.
  std::size_t size() const noexcept {
    return static_cast<std::size_t>(this->counts_.load(base::count_keys_field));  // statistic: relaxed sum
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
  //     for its grace period, or past it in the process-wide depot
  //     (updates of any thread take from it, callbacks free what would not
  //     fit in detail::judy_depot_max_bytes, and rcu::barrier() frees it);
  //   - the retire batch structures, and objects retired alone when no
  //     batch could be allocated.
  // So after the last update and rcu::barrier() no thread holds a retired
  // node past its grace period: this figure minus node_bytes() is at most
  // detail::judy_idle_thread_max_bytes() per thread that updated.
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
    return static_cast<std::size_t>(this->counts_.load(base::count_bytes_field));  // statistic: relaxed sum
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
    this->shape_of(s);
    return s;
  }

  // Checks every structural invariant (detail/judy_node.hpp (3)-(4),
  // detail/judy_leaf.hpp (L2), leaves sorted, within capacity, on their
  // path and of the encoding their depth allows, size and memory
  // accounting). Quiescent only.
  absl::Status check_invariants(detail::call_site where = detail::call_site::current()) const {
    rcu::read_guard<Rcu> g(where);
    const std::string err = this->check_all();
    return err.empty() ? absl::OkStatus() : absl::InternalError("judy_array: " + err);
  }
};

}  // namespace rcukit
