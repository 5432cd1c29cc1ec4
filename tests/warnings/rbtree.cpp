// SPDX-License-Identifier: MIT
// The intrusive red-black tree of <rcukit/rbtree.hpp>, plain and augmented,
// used as the kernel's rbtree.h is: a node embedded in the user's struct.
#include <rcukit/rbtree.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "check.hpp"

namespace {

struct item {
  rcukit::rb::node rb;
  std::uint64_t key = 0;
  std::uint64_t subtree_max = 0;  // augmented: the largest key below
};

item* of(rcukit::rb::node* n) { return reinterpret_cast<item*>(reinterpret_cast<char*>(n) - offsetof(item, rb)); }
const item* of(const rcukit::rb::node* n) {
  return reinterpret_cast<const item*>(reinterpret_cast<const char*>(n) - offsetof(item, rb));
}

struct max_key {
  static bool recompute(rcukit::rb::node* n) noexcept {
    std::uint64_t m = of(n)->key;
    if (n->left != nullptr) m = std::max(m, of(n->left)->subtree_max);
    if (n->right != nullptr) m = std::max(m, of(n->right)->subtree_max);
    if (of(n)->subtree_max == m) return false;
    of(n)->subtree_max = m;
    return true;
  }
  static void copy_summary(const rcukit::rb::node* from, rcukit::rb::node* to) noexcept {
    of(to)->subtree_max = of(from)->subtree_max;
  }
};

template <class Aug>
void insert(rcukit::rb::root& r, item& it, const Aug& aug) {
  rcukit::rb::node** link = &r.top;
  rcukit::rb::node* parent = nullptr;
  while (*link != nullptr) {
    parent = *link;
    if constexpr (!std::is_same_v<Aug, rcukit::rb::no_augment>) {
      of(parent)->subtree_max = std::max(of(parent)->subtree_max, it.key);
    }
    link = it.key < of(parent)->key ? &parent->left : &parent->right;
  }
  it.subtree_max = it.key;
  rcukit::rb::link_node(&it.rb, parent, link);
  rcukit::rb::insert_color(&it.rb, &r, aug);
}

template <class Aug>
void exercise(const Aug& aug) {
  std::vector<item> items(100);
  rcukit::rb::root r;
  WARN_CHECK(r.empty());
  for (std::size_t i = 0; i < items.size(); ++i) {
    items[i].key = (i * 37) % 101;
    insert(r, items[i], aug);
  }
  std::uint64_t prev = 0, n = 0;
  for (auto* p = rcukit::rb::first(&r); p != nullptr; p = rcukit::rb::next(p), ++n) {
    WARN_CHECK(n == 0 || of(p)->key > prev);
    prev = of(p)->key;
  }
  WARN_CHECK(n == items.size());
  for (auto* p = rcukit::rb::last(&r); p != nullptr; p = rcukit::rb::prev(p)) --n;
  WARN_CHECK(n == 0);
  WARN_CHECK(rcukit::rb::is_black(r.top) && !rcukit::rb::is_red(r.top) && rcukit::rb::parent(r.top) == nullptr);
  if constexpr (!std::is_same_v<Aug, rcukit::rb::no_augment>) WARN_CHECK(of(r.top)->subtree_max == 100);
  item repl;
  repl.key = items[0].key;
  repl.subtree_max = items[0].subtree_max;
  rcukit::rb::replace(&items[0].rb, &repl.rb, &r);
  for (std::size_t i = 1; i < items.size(); i += 2) rcukit::rb::erase(&items[i].rb, &r, aug);
  std::size_t left = 0;
  for (auto* p = rcukit::rb::first_postorder(&r); p != nullptr; p = rcukit::rb::next_postorder(p)) ++left;
  WARN_CHECK(left == 50);
}

}  // namespace

int main() {
  exercise(rcukit::rb::no_augment{});
  exercise(rcukit::rb::augment_callbacks<max_key>{});
  return 0;
}
