// rcukit/rbtree.hpp -- intrusive red-black tree (rcukit::rb) and the locked
// rbtree extent maps used as baselines against the RCU extent skiplist.
//
//   rcukit::rb::node, rb::root, link_node, insert_color, erase, first, last,
//   next, prev, replace, augment_callbacks   -- detail/rbtree_core.hpp
//
// The tree itself is not thread-safe: callers serialise writers and readers
// (the maps below do it with one lock, as the 2013 kernel did).
#pragma once

#include "rcukit/detail/rbtree_core.hpp"
#include "rcukit/extent.hpp"
