// rcukit/rbtree.hpp -- intrusive red-black tree (rcukit::rb) and the locked
// rbtree extent maps used as baselines against the RCU extent skiplist.
//
//   rcukit::rb::node, rb::root, link_node, insert_color, erase, first, last,
//   next, prev, replace, augment_callbacks          -- detail/rbtree_core.hpp
//   rbtree_extent_map<T>            the honest 2013 baseline: one global
//                                   spinlock around everything (readers too),
//                                   linear top-down insert_hole from the hint
//   rbtree_extent_map_augmented<T>  subtree max-gap augmentation, O(log n)
//                                   insert_hole, still one lock
//                                   -- detail/rbtree_extent_map.hpp
//
// The tree itself (rcukit::rb) is not thread-safe: callers serialise. Both
// maps are safe from any number of threads (every member takes the one
// lock), satisfy rcukit::extent_index, and return exactly the API.md results
// (the same as extent_skiplist and tests/support/extent_model.hpp).
// Progress: blocking (spin then yield) on every call. No member needs or
// forbids a caller's RCU read side; nodes are freed without RCU because no
// reader reaches them without the lock.
#pragma once

#include "rcukit/detail/rbtree_core.hpp"
#include "rcukit/detail/rbtree_extent_map.hpp"
#include "rcukit/extent.hpp"
#include "rcukit/rcu.hpp"

namespace rcukit {

// The 2013 kernel baseline. Alloc is the node allocation policy (tests
// inject failures through it); Rcu only names the read_guard type that
// lookup_rcu() accepts.
template <class T, class Rcu = rcu::default_flavor, class Alloc = detail::rb_default_alloc>
class rbtree_extent_map : public detail::rb_extent_map_impl<T, Rcu, false, Alloc> {};

// The improved variant: augmented rbtree (largest free gap per subtree).
template <class T, class Rcu = rcu::default_flavor, class Alloc = detail::rb_default_alloc>
class rbtree_extent_map_augmented : public detail::rb_extent_map_impl<T, Rcu, true, Alloc> {};

static_assert(extent_index<rbtree_extent_map<uint64_t>>);
static_assert(extent_index<rbtree_extent_map_augmented<uint64_t>>);

}  // namespace rcukit
