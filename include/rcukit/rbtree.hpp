// SPDX-License-Identifier: MIT
// rcukit/rbtree.hpp -- the intrusive red-black tree (rcukit::rb) and the two
// locked rbtree extent maps, the baselines the RCU extent skiplist is
// measured against.
//
// This file is the contract: every public name with what it does, what it
// costs and how it fails. The implementation is in detail/rbtree_core.hpp
// (the rebalancing, with its numbered invariants and case diagrams) and
// detail/rbtree_extent_map.hpp (the maps' lock and hole searches); the names
// are brought in here with using-declarations, as absl/container/btree_map.h
// does over its internal container.
//
// Thread safety: the tree (rcukit::rb) is not thread-safe, its callers
// serialise (the kernel's rbtree is the same). Both maps are safe from any
// number of threads: every member takes the map's one spin lock, readers
// too; no member needs or forbids a caller's RCU read side, and nodes are
// freed without RCU because no reader reaches them without the lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "rcukit/detail/rbtree_core.hpp"
#include "rcukit/detail/rbtree_extent_map.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

// ---------------------------------------------------------------------------
// rcukit::rb -- the intrusive tree, in the shape of the kernel's rbtree.h and
// rbtree_augmented.h. The node is embedded in the user's struct (found again
// from the node with container_of-style arithmetic or a static_cast from a
// base), and the search is the user's (they know the key): the tree offers
// linking a new leaf where a search ended, rebalancing, erasing, replacing
// and in-order navigation. No call allocates or fails.
// ---------------------------------------------------------------------------
namespace rcukit::rb {

// The node to embed (as a member or a base). Its parent pointer and colour
// share one word. Its fields belong to the tree while it is linked.
using detail::rb::node;
// The tree: `top` is its root node (null when empty), `empty()`.
using detail::rb::root;

// Colour and parent of a linked node; a null child counts as black. O(1).
using detail::rb::black;
using detail::rb::is_black;
using detail::rb::is_red;
using detail::rb::parent;
using detail::rb::red;

// Augmentation: a summary per node of its subtree (for example the largest
// free gap below it) kept exact through three callbacks, which an `Aug`
// argument provides and the tree calls exactly where its shape changes:
//   rotate(old, new)    `new` took `old`'s place as a subtree root after a
//                       rotation: new inherits old's summary, old recomputes;
//   copy(old, new)      `new` (an erase successor) takes `old`'s place;
//   propagate(n, stop)  recompute summaries from n upwards until `stop`
//                       (exclusive; nullptr = the root).
// no_augment is the plain tree (empty callbacks, compiled away).
// augment_callbacks<Compute> builds all three from
//   static bool recompute(node* n) noexcept;             // true if n's summary changed
//   static void copy_summary(const node* from, node* to) noexcept;
// as the kernel's RB_DECLARE_CALLBACKS does.
using detail::rb::augment_callbacks;
using detail::rb::no_augment;

// link_node(n, p, link): hangs n (fresh, unlinked) at *link, a null child
// slot of p where the caller's search ended (p == nullptr and link ==
// &root.top for an empty tree). n is red; call insert_color next. O(1).
using detail::rb::link_node;

// insert_color(n, r, aug = no_augment{}): rebalances r after link_node(n).
// For an augmented tree, first bring the summaries on the path from n to the
// root up to date (aug.propagate(parent(n), nullptr) once n's own is set).
// O(log n), at most two rotations.
using detail::rb::insert_color;

// erase(n, r, aug = no_augment{}): removes n from r; summaries stay exact.
// n's own fields are unspecified afterwards. O(log n), at most three
// rotations.
using detail::rb::erase;

// replace(victim, repl, r): puts fresh node repl exactly where victim is
// (position, colour, children). The caller guarantees repl sorts the same;
// summaries are the caller's to copy first. O(1).
using detail::rb::replace;

// In-order navigation; nullptr past either end. first/last O(log n);
// next/prev amortised O(1), worst O(log n).
using detail::rb::first;
using detail::rb::last;
using detail::rb::next;
using detail::rb::prev;

// Post-order navigation (children before parents), so that a whole tree can
// be freed without rebalancing: first_postorder(r), next_postorder(n).
using detail::rb::first_postorder;
using detail::rb::next_postorder;

}  // namespace rcukit::rb

// ---------------------------------------------------------------------------
// The extent maps: extents [start, start + size) -> T in an rbtree behind one
// global spin lock. Both satisfy rcukit::extent_index and return exactly the
// results API.md specifies (the same as extent_skiplist and
// tests/support/extent_model.hpp). Alloc is the node allocation policy
// (tests inject failures through it); Rcu only names the read_guard type
// lookup_rcu() accepts. Progress: blocking (spin, then yield) on every call.
// ---------------------------------------------------------------------------
namespace rcukit {

// The members both maps share, with their contracts.
template <class T, bool Augmented, class Rcu, class Alloc>
class basic_rbtree_extent_map : private detail::rb_extent_map_impl<T, Rcu, Augmented, Alloc> {
  using impl = detail::rb_extent_map_impl<T, Rcu, Augmented, Alloc>;

 public:
  using value_type = T;  // trivially copyable (results are copies)
  using rcu_flavor = Rcu;
  using entry = extent_entry<T>;

  // insert(e, v): inserts [e.start, e.end()) -> v. InvalidArgument for an
  // invalid extent, AlreadyExists if it overlaps one, ResourceExhausted if
  // the node cannot be allocated. O(log n). Nothing changes on failure.
  using impl::insert;

  // lookup(key, size = 1): a copy of the lowest extent overlapping
  // [key, key + size); nullopt for none and for an empty query (size 0). A
  // range reaching past the top of the key space is clamped there. O(log n).
  using impl::lookup;

  // lookup_rcu(guard, key, size = 1): lookup() for callers inside a read
  // side; the baseline has no lockless path, so it takes the lock as well.
  using impl::lookup_rcu;

  // erase(key, size = 1): removes and returns the lowest extent overlapping
  // [key, key + size) (clamped as lookup's); nullopt if none. O(log n).
  using impl::erase;

  // assign(start, v): gives the extent that starts exactly at `start` the
  // value v, in place (under the lock: a reader sees the old value or the
  // new one, never no extent). NotFound if no extent starts there. O(log n).
  using impl::assign;

  // insert_hole(r, v): finds the free aligned range API.md specifies (hint
  // window first, then the whole window), inserts it with value v and
  // returns its start. InvalidArgument for a malformed request,
  // ResourceExhausted when nothing fits or the node cannot be allocated;
  // nothing changes on failure. rbtree_extent_map walks the gaps one node at
  // a time from the hint, as the 2013 kernel did (O(extents walked));
  // rbtree_extent_map_augmented skips subtrees whose largest gap is too
  // small (O(log n) unless alignment rejects many gaps).
  using impl::insert_hole;

  // for_each(lo, hi, f): calls f(const entry&) for every extent overlapping
  // [lo, hi), ascending; none when lo >= hi. f returns void, or bool where
  // false stops the walk. f runs with the lock held and must not call into
  // this map. O(log n + extents visited).
  using impl::for_each;

  // range(guard, lo, hi): the same walk as a single-pass C++20 view (input
  // range) of entries, for range-for and std::ranges algorithms:
  //   for (const auto& e : m.range(g, lo, hi)) ...
  // Each step takes the lock and finds the next extent by key (the baseline
  // has no lock-free walk), so the walk is sorted, never repeats an extent,
  // and yields every extent present for the whole walk; the map may be
  // called from inside the loop. O(log n) per step.
  using impl::range;

  // lower_bound(key): the first extent with start >= key. O(log n).
  using impl::lower_bound;

  // prev_extent(key): the last extent with start < key. O(log n).
  using impl::prev_extent;

  // size(), empty(): the number of extents (exact: the lock is held). O(1).
  using impl::empty;
  using impl::size;

  // clear(): removes every extent. O(n), nodes freed after the lock is dropped.
  using impl::clear;

  // check_invariants(): tests and debugging; verifies the tree's shape and
  // colours, order and no overlap, the count, and (augmented) every gap and
  // subtree summary, under the lock. O(n). InternalError names the first
  // broken one.
  using impl::check_invariants;
};

// The 2013 kernel baseline: linear top-down hole search from the hint, one
// lock around everything, readers included. Deliberately not improved.
template <class T, class Rcu = rcu::default_flavor, class Alloc = detail::rb_default_alloc>
class rbtree_extent_map : public basic_rbtree_extent_map<T, false, Rcu, Alloc> {};

// The improved variant: each node also keeps the largest free gap in its
// subtree, so insert_hole is O(log n). Still one lock.
template <class T, class Rcu = rcu::default_flavor, class Alloc = detail::rb_default_alloc>
class rbtree_extent_map_augmented : public basic_rbtree_extent_map<T, true, Rcu, Alloc> {};

static_assert(extent_index<rbtree_extent_map<uint64_t>>);
static_assert(extent_index<rbtree_extent_map_augmented<uint64_t>>);

}  // namespace rcukit
