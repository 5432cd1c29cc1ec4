// SPDX-License-Identifier: MIT
// rcukit/detail/rbtree_core.hpp -- the intrusive red-black tree core: the
// implementation of rcukit::rb, whose contract <rcukit/rbtree.hpp> states
// (it brings these names into rcukit::rb with using-declarations).
//
// The idea. A red-black tree whose node is embedded in the user's struct (the
// user finds the struct again with container_of-style arithmetic), whose
// parent pointer and colour share one machine word (nodes are word-aligned,
// so bit 0 of the parent address is free to hold the colour), and whose
// search and link steps are written by the user (they know the key): the
// tree only offers `link_node` (hang a new red leaf where the search ended)
// and `insert_color` (rebalance), plus `erase`, in-order navigation and
// `replace`. This is the shape of the Linux kernel's include/linux/rbtree.h,
// lib/rbtree.c and include/linux/rbtree_augmented.h (Andrea Arcangeli 1999,
// rewritten by Michel Lespinasse 2012); the code here is written from the
// textbook algorithm (Guibas & Sedgewick 1978; CLRS chapter 13) in that
// interface.
//
// Augmentation. The callbacks' contract (rotate, copy, propagate) is stated
// in rbtree.hpp; the core calls them exactly where the tree changes shape.
// The plain tree is the augmented core called with `no_augment`, whose empty
// callbacks the compiler removes: one implementation for both.
//
// Invariants (checked by tests/rbtree/rb_core_test.cpp after every operation):
//  (1) Every node is red or black; the root is black; null leaves are black.
//  (2) A red node has no red child.
//  (3) Every path from a node down to a null leaf has the same number of
//      black nodes (the black height), so depth <= 2 log2(n + 1).
//  (4) parent(child) == node for every child of every node; parent(root) is
//      null.
//  (5) In-order traversal is the user's order (the core never reorders: it
//      only rotates, which preserves in-order sequence).
//  (6) With callbacks, every node's summary equals its recomputation from its
//      children once each public operation returns.
//
// Not supported: concurrent use (callers lock; see rbtree_extent_map), RCU
// lockless lookups during rebalancing (the kernel's latched trees), and
// duplicate detection (the caller's search decides where a node goes).
#pragma once

#include <cstdint>

namespace rcukit::detail::rb {

// Word-aligned so bit 0 of parent_color is free for the colour (0 = red,
// 1 = black).
struct alignas(sizeof(std::uintptr_t) >= 2 ? sizeof(std::uintptr_t) : 2) node {
  std::uintptr_t parent_color = 0;
  node* right = nullptr;
  node* left = nullptr;
};

struct root {
  node* top = nullptr;
  bool empty() const noexcept { return top == nullptr; }
};

inline constexpr std::uintptr_t red = 0;
inline constexpr std::uintptr_t black = 1;

inline node* parent(const node* n) noexcept { return reinterpret_cast<node*>(n->parent_color & ~black); }
inline bool is_black(const node* n) noexcept { return n == nullptr || (n->parent_color & black) != 0; }
inline bool is_red(const node* n) noexcept { return !is_black(n); }

// The empty callbacks: the plain tree.
struct no_augment {
  void propagate(node*, node*) const noexcept {}
  void copy(node*, node*) const noexcept {}
  void rotate(node*, node*) const noexcept {}
};

// Builds the three callbacks from one per-node recomputation, like the
// kernel's RB_DECLARE_CALLBACKS. Compute provides
//   static bool recompute(node* n) noexcept;            // true if n's summary changed
//   static void copy_summary(const node* from, node* to) noexcept;
template <class Compute>
struct augment_callbacks {
  void propagate(node* n, node* stop) const noexcept {
    while (n != stop) {
      // Once a summary did not change, none above it will.
      if (!Compute::recompute(n)) break;
      n = parent(n);
    }
  }
  void copy(node* old_node, node* new_node) const noexcept { Compute::copy_summary(old_node, new_node); }
  void rotate(node* old_node, node* new_node) const noexcept {
    Compute::copy_summary(old_node, new_node);
    Compute::recompute(old_node);
  }
};

namespace core {

inline void set_parent(node* n, node* p) noexcept {
  n->parent_color = (n->parent_color & black) | reinterpret_cast<std::uintptr_t>(p);
}
inline void set_parent_color(node* n, node* p, std::uintptr_t c) noexcept {
  n->parent_color = reinterpret_cast<std::uintptr_t>(p) | c;
}
inline void set_black(node* n) noexcept { n->parent_color |= black; }

// Points whatever pointed at old_child (a parent's link or the root) at new_child.
inline void change_child(node* old_child, node* new_child, node* p, root* r) noexcept {
  if (p == nullptr) {
    r->top = new_child;
  } else if (p->left == old_child) {
    p->left = new_child;
  } else {
    p->right = new_child;
  }
}

// After a rotation: new_top takes old_top's parent and colour, old_top hangs
// below new_top with colour c.
inline void rotate_set_parents(node* old_top, node* new_top, root* r, std::uintptr_t c) noexcept {
  node* p = parent(old_top);
  new_top->parent_color = old_top->parent_color;
  set_parent_color(old_top, new_top, c);
  change_child(old_top, new_top, p, r);
}

// Side-generic helpers: dir 0 = left, 1 = right.
inline node*& child(node* n, int dir) noexcept { return dir == 0 ? n->left : n->right; }

// Rebalance after a red node n was linked as a leaf.
template <class Aug>
void insert_fixup(node* n, root* r, const Aug& aug) noexcept {
  node* p = parent(n);
  for (;;) {
    if (p == nullptr) {  // n is the root: paint it black (invariant 1)
      set_parent_color(n, nullptr, black);
      return;
    }
    if (is_black(p)) return;                  // no red-red edge
    node* g = parent(p);                      // p is red, so it is not the root: g exists
    const int side = (g->left == p) ? 0 : 1;  // p's side under g
    node* uncle = child(g, 1 - side);
    if (is_red(uncle)) {
      //      g(B)              g(R)      colour flip; the red moves up two
      //     /    \    ==>     /    \     levels and may meet a red again.
      //   p(R)  u(R)        p(B)  u(B)
      //   /                 /
      //  n(R)              n(R)
      set_parent_color(uncle, g, black);
      set_parent_color(p, g, black);
      n = g;
      p = parent(n);
      set_parent_color(n, p, red);
      continue;
    }
    if (child(p, 1 - side) == n) {
      // Inner grandchild: rotate p towards the outside first, so n becomes
      // the outer child (n and p swap roles).
      //     g              g
      //    /              /
      //   p      ==>     n
      //    \            /
      //     n          p
      node* inner = child(n, side);
      child(p, 1 - side) = inner;
      child(n, side) = p;
      if (inner != nullptr) set_parent_color(inner, p, black);
      set_parent_color(p, n, red);
      aug.rotate(p, n);
      p = n;
    }
    // Outer grandchild: rotate g away from p; p becomes black subtree root.
    //       g(B)           p(B)
    //      /    \         /    \   (rotation)
    //    p(R)   u(B) => n(R)   g(R)
    //    /  \                 /   \   (rotation)
    //  n(R)  t               t    u(B)
    node* t = child(p, 1 - side);
    child(g, side) = t;
    child(p, 1 - side) = g;
    if (t != nullptr) set_parent_color(t, g, black);
    rotate_set_parents(g, p, r, red);
    aug.rotate(g, p);
    return;
  }
}

// Restore the black height after a black leaf position under p lost one
// black node (the removed node's side is the one whose subtree is short).
template <class Aug>
void erase_fixup(node* p, root* r, const Aug& aug) noexcept {
  node* n = nullptr;  // the short subtree's root (null at first)
  for (;;) {
    const int side = (p->left == n) ? 0 : 1;  // n's side under p
    node* s = child(p, 1 - side);             // sibling: non-null, since its side is taller
    if (is_red(s)) {
      // Case 1: red sibling. Rotate p towards n so n gets a black sibling.
      //     p(B)             s(B)
      //    /    \           /    \   (rotation)
      //   n     s(R)  =>  p(R)   c2
      //        /   \      /  \   (rotation)
      //      c1     c2   n    c1
      node* c1 = child(s, side);
      child(p, 1 - side) = c1;
      child(s, side) = p;
      set_parent_color(c1, p, black);
      rotate_set_parents(p, s, r, red);
      aug.rotate(p, s);
      s = c1;
    }
    node* far = child(s, 1 - side);
    if (is_black(far)) {
      node* near = child(s, side);
      if (is_black(near)) {
        // Case 2: black sibling with black children. Paint s red; if p was
        // red, paint it black and we are done; otherwise p's whole subtree
        // is short by one: recurse upwards.
        set_parent_color(s, p, red);
        if (is_red(p)) {
          set_black(p);
        } else {
          n = p;
          p = parent(n);
          if (p != nullptr) continue;
        }
        return;
      }
      // Case 3: the near nephew is red. Rotate s away from n so the red
      // nephew becomes the far side of the new sibling.
      //      p            p
      //     / \          / \   (rotation)
      //    n   s(B) =>  n  near(B)
      //       /               \   (rotation)
      //    near(R)            s(R)
      node* t = child(near, 1 - side);
      child(s, side) = t;
      child(near, 1 - side) = s;
      child(p, 1 - side) = near;
      if (t != nullptr) set_parent_color(t, s, black);
      aug.rotate(s, near);
      far = s;
      s = near;
    }
    // Case 4: the far nephew is red. Rotate p towards n; s takes p's colour,
    // p and the far nephew become black. Done.
    //      p(?)             s(?)
    //     /    \           /    \   (rotation)
    //    n     s(B)  =>  p(B)   far(B)
    //         /   \      /  \   (rotation)
    //        c    far   n    c
    node* c = child(s, side);
    child(p, 1 - side) = c;
    child(s, side) = p;
    set_parent_color(far, s, black);
    if (c != nullptr) set_parent(c, p);
    rotate_set_parents(p, s, r, black);
    aug.rotate(p, s);
    return;
  }
}

// Unlinks n; returns the node under which the tree lost one black level, or
// nullptr if no rebalancing is needed.
template <class Aug>
node* erase_unlink(node* n, root* r, const Aug& aug) noexcept {
  node* right_child = n->right;
  node* left_child = n->left;
  node* rebalance = nullptr;
  node* propagate_from = nullptr;
  if (left_child == nullptr || right_child == nullptr) {
    // At most one child: splice n out. A lone child of a black node is red
    // (invariant 3), so repainting it black keeps the black height.
    node* only = left_child != nullptr ? left_child : right_child;
    const std::uintptr_t pc = n->parent_color;
    node* p = parent(n);
    change_child(n, only, p, r);
    if (only != nullptr) {
      only->parent_color = pc;  // takes n's parent and n's colour (black)
    } else if ((pc & black) != 0) {
      rebalance = p;  // a black leaf vanished
    }
    propagate_from = p;
  } else {
    // Two children: the in-order successor s (leftmost of the right
    // subtree, no left child) takes n's place, parent and colour.
    node* s = right_child;
    node* s_parent;  // where s's old right child ends up
    node* s_right;
    if (s->left == nullptr) {
      s_parent = s;
      s_right = s->right;
      aug.copy(n, s);
    } else {
      node* l = s->left;
      do {
        s_parent = s;
        s = l;
        l = l->left;
      } while (l != nullptr);
      s_right = s->right;
      s_parent->left = s_right;
      s->right = right_child;
      set_parent(right_child, s);
      aug.copy(n, s);
      aug.propagate(s_parent, s);
    }
    s->left = left_child;
    set_parent(left_child, s);
    const std::uintptr_t pc = n->parent_color;
    const bool s_was_black = is_black(s);
    change_child(n, s, parent(n), r);
    if (s_right != nullptr) {
      set_parent_color(s_right, s_parent, black);  // it was red: repaint
    } else if (s_was_black) {
      rebalance = s_parent;
    }
    s->parent_color = pc;
    propagate_from = s;
  }
  aug.propagate(propagate_from, nullptr);
  return rebalance;
}

}  // namespace core

// --- The public operations (contracts: rbtree.hpp). --------------------------
inline void link_node(node* n, node* p, node** link) noexcept {
  n->parent_color = reinterpret_cast<std::uintptr_t>(p);  // red
  n->left = nullptr;
  n->right = nullptr;
  *link = n;
}

template <class Aug = no_augment>
void insert_color(node* n, root* r, const Aug& aug = Aug{}) noexcept {
  core::insert_fixup(n, r, aug);
}

template <class Aug = no_augment>
void erase(node* n, root* r, const Aug& aug = Aug{}) noexcept {
  node* rebalance = core::erase_unlink(n, r, aug);
  if (rebalance != nullptr) core::erase_fixup(rebalance, r, aug);
}

inline void replace(node* victim, node* repl, root* r) noexcept {
  node* p = parent(victim);
  *repl = *victim;
  if (victim->left != nullptr) core::set_parent(victim->left, repl);
  if (victim->right != nullptr) core::set_parent(victim->right, repl);
  core::change_child(victim, repl, p, r);
}

inline node* first(const root* r) noexcept {
  node* n = r->top;
  if (n == nullptr) return nullptr;
  while (n->left != nullptr) n = n->left;
  return n;
}
inline node* last(const root* r) noexcept {
  node* n = r->top;
  if (n == nullptr) return nullptr;
  while (n->right != nullptr) n = n->right;
  return n;
}
inline node* next(const node* n) noexcept {
  if (n->right != nullptr) {
    node* m = n->right;
    while (m->left != nullptr) m = m->left;
    return m;
  }
  node* p = parent(n);
  while (p != nullptr && n == p->right) {
    n = p;
    p = parent(p);
  }
  return p;
}
inline node* prev(const node* n) noexcept {
  if (n->left != nullptr) {
    node* m = n->left;
    while (m->right != nullptr) m = m->right;
    return m;
  }
  node* p = parent(n);
  while (p != nullptr && n == p->left) {
    n = p;
    p = parent(p);
  }
  return p;
}

inline node* first_postorder(const root* r) noexcept {
  node* n = r->top;
  if (n == nullptr) return nullptr;
  for (;;) {
    if (n->left != nullptr) {
      n = n->left;
    } else if (n->right != nullptr) {
      n = n->right;
    } else {
      return n;
    }
  }
}
inline node* next_postorder(const node* n) noexcept {
  node* p = parent(n);
  if (p != nullptr && n == p->left && p->right != nullptr) {
    node* m = p->right;
    for (;;) {
      if (m->left != nullptr) {
        m = m->left;
      } else if (m->right != nullptr) {
        m = m->right;
      } else {
        return m;
      }
    }
  }
  return p;
}

}  // namespace rcukit::detail::rb
