// SPDX-License-Identifier: MIT
// Tests of the intrusive red-black tree core (rcukit::rb), plain and
// augmented, against std::set. After every operation the whole tree is
// checked: colours (root black, no red-red), equal black height on every
// path, parent links, in-order sequence equal to the set, first/last/next/
// prev agreeing with it, and every augmented summary recomputed from scratch.
//
// What can fail: a wrong rotation case (order or balance broken), a missing
// parent update, an augmented callback not called where the shape changes
// (a stale summary), or navigation skipping a node.
#include "rcukit/rbtree.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

namespace rb = rcukit::rb;

struct item {
  rb::node link;
  int key = 0;
  uint32_t val = 0;      // per-node payload the summaries are over
  uint32_t max_val = 0;  // augmented: max of val in the subtree
  uint32_t count = 0;    // augmented: nodes in the subtree
};

item* of(rb::node* n) { return reinterpret_cast<item*>(reinterpret_cast<char*>(n) - offsetof(item, link)); }
const item* of(const rb::node* n) {
  return reinterpret_cast<const item*>(reinterpret_cast<const char*>(n) - offsetof(item, link));
}

struct summary_compute {
  static bool recompute(rb::node* n) noexcept {
    item* it = of(n);
    uint32_t m = it->val, c = 1;
    if (n->left != nullptr) {
      m = std::max(m, of(n->left)->max_val);
      c += of(n->left)->count;
    }
    if (n->right != nullptr) {
      m = std::max(m, of(n->right)->max_val);
      c += of(n->right)->count;
    }
    const bool changed = m != it->max_val || c != it->count;
    it->max_val = m;
    it->count = c;
    return changed;
  }
  static void copy_summary(const rb::node* from, rb::node* to) noexcept {
    of(to)->max_val = of(from)->max_val;
    of(to)->count = of(from)->count;
  }
};
using callbacks = rb::augment_callbacks<summary_compute>;

// Returns the black height, or -1 after writing the first broken invariant
// to *err. Plain code (no gtest macros per node) so 10^6 full checks stay fast.
int check_subtree(const rb::node* n, const rb::node* expect_parent, bool augmented, std::vector<int>& out,
                  uint32_t& max_val, uint32_t& count, std::string* err) {
  if (n == nullptr) {
    max_val = 0;
    count = 0;
    return 1;
  }
  const int key = of(n)->key;
  if (rb::parent(n) != expect_parent) {
    *err = "parent link broken at key " + std::to_string(key);
    return -1;
  }
  if (rb::is_red(n) && (rb::is_red(n->left) || rb::is_red(n->right))) {
    *err = "red-red edge at key " + std::to_string(key);
    return -1;
  }
  uint32_t lm, lc, rm, rc;
  const int lh = check_subtree(n->left, n, augmented, out, lm, lc, err);
  if (lh < 0) return -1;
  out.push_back(key);
  const int rh = check_subtree(n->right, n, augmented, out, rm, rc, err);
  if (rh < 0) return -1;
  if (lh != rh) {
    *err = "black height differs below key " + std::to_string(key);
    return -1;
  }
  max_val = std::max({of(n)->val, lm, rm});
  count = 1 + lc + rc;
  if (augmented && (of(n)->max_val != max_val || of(n)->count != count)) {
    *err = "stale augmented summary at key " + std::to_string(key);
    return -1;
  }
  return lh + (rb::is_black(n) ? 1 : 0);
}

void check_tree(const rb::root& r, const std::set<int>& model, bool augmented) {
  ASSERT_TRUE(rb::is_black(r.top)) << "root is red";
  if (r.top != nullptr) {
    ASSERT_EQ(rb::parent(r.top), nullptr);
  }
  static thread_local std::vector<int> keys;
  keys.clear();
  uint32_t m, c;
  std::string err;
  ASSERT_GE(check_subtree(r.top, nullptr, augmented, keys, m, c, &err), 0) << err;
  ASSERT_TRUE(std::equal(keys.begin(), keys.end(), model.begin(), model.end()))
      << "in-order sequence differs";
  // Navigation agrees with the set in both directions.
  bool fwd_ok = true, back_ok = true;
  auto it = model.begin();
  for (rb::node* n = rb::first(&r); n != nullptr; n = rb::next(n), ++it) {
    if (it == model.end() || of(n)->key != *it) {
      fwd_ok = false;
      break;
    }
  }
  ASSERT_TRUE(fwd_ok && it == model.end()) << "first/next walk differs";
  auto rit = model.rbegin();
  for (rb::node* n = rb::last(&r); n != nullptr; n = rb::prev(n), ++rit) {
    if (rit == model.rend() || of(n)->key != *rit) {
      back_ok = false;
      break;
    }
  }
  ASSERT_TRUE(back_ok && rit == model.rend()) << "last/prev walk differs";
}

class tree_under_test {
 public:
  explicit tree_under_test(bool augmented) : augmented_(augmented) {}
  ~tree_under_test() {
    // Free post-order without rebalancing.
    std::vector<rb::node*> nodes;
    for (rb::node* n = rb::first_postorder(&root_); n != nullptr; n = rb::next_postorder(n))
      nodes.push_back(n);
    EXPECT_EQ(nodes.size(), live_);
    for (rb::node* n : nodes) delete of(n);
  }

  rb::node* find(int key) const {
    rb::node* n = root_.top;
    while (n != nullptr) {
      if (key < of(n)->key) {
        n = n->left;
      } else if (key > of(n)->key) {
        n = n->right;
      } else {
        return n;
      }
    }
    return nullptr;
  }

  bool insert(int key, uint32_t val) {
    rb::node** link = &root_.top;
    rb::node* p = nullptr;
    while (*link != nullptr) {
      p = *link;
      if (key < of(p)->key) {
        link = &p->left;
      } else if (key > of(p)->key) {
        link = &p->right;
      } else {
        return false;
      }
    }
    auto* it = new item;
    it->key = key;
    it->val = val;
    ++live_;
    rb::link_node(&it->link, p, link);
    if (augmented_) {
      it->max_val = val;
      it->count = 1;
      callbacks{}.propagate(p, nullptr);
      rb::insert_color(&it->link, &root_, callbacks{});
    } else {
      rb::insert_color(&it->link, &root_);
    }
    return true;
  }

  bool erase(int key) {
    rb::node* n = find(key);
    if (n == nullptr) return false;
    if (augmented_) {
      rb::erase(n, &root_, callbacks{});
    } else {
      rb::erase(n, &root_);
    }
    delete of(n);
    --live_;
    return true;
  }

  bool replace(int key, uint32_t new_val_if_plain) {
    rb::node* n = find(key);
    if (n == nullptr) return false;
    auto* fresh = new item;
    fresh->key = key;
    fresh->val = of(n)->val;
    if (!augmented_) fresh->val = new_val_if_plain;
    summary_compute::copy_summary(n, &fresh->link);
    rb::replace(n, &fresh->link, &root_);
    delete of(n);
    return true;
  }

  bool update(int key, uint32_t val) {
    rb::node* n = find(key);
    if (n == nullptr) return false;
    of(n)->val = val;
    if (augmented_) callbacks{}.propagate(n, nullptr);
    return true;
  }

  const rb::root& root() const { return root_; }

 private:
  rb::root root_;
  bool augmented_;
  size_t live_ = 0;
};

void run_random(bool augmented, uint32_t seed) {
  std::mt19937_64 rng(seed);
  // Phases of growing key ranges: small trees exercise every rebalancing
  // case at the root, larger ones deep paths. >= 5 * 10^5 operations per
  // tree kind (10^6 for the two tests), the whole tree checked after each.
  struct phase {
    int key_range;
    int ops;
  };
  const phase phases[] = {{8, 150000}, {64, 225000}, {512, 110000}, {2048, 15000}};
  long total = 0;
  for (const phase& ph : phases) {
    tree_under_test t(augmented);
    std::set<int> model;
    for (int i = 0; i < ph.ops; ++i) {
      const int key = static_cast<int>(rng() % ph.key_range);
      const uint32_t val = static_cast<uint32_t>(rng() % 1000000);
      const unsigned op = rng() % 10;
      if (op < 4) {
        ASSERT_EQ(t.insert(key, val), model.insert(key).second);
      } else if (op < 8) {
        ASSERT_EQ(t.erase(key), model.erase(key) == 1);
      } else if (op < 9) {
        ASSERT_EQ(t.replace(key, val), model.count(key) == 1);
      } else {
        ASSERT_EQ(t.update(key, val), model.count(key) == 1);
      }
      check_tree(t.root(), model, augmented);
      ASSERT_FALSE(::testing::Test::HasFatalFailure()) << "after op " << i << " seed " << seed;
      ++total;
    }
    // Drain to empty, checking on the way.
    while (!model.empty()) {
      const int key = *std::next(model.begin(), static_cast<long>(rng() % model.size()));
      ASSERT_TRUE(t.erase(key));
      model.erase(key);
      check_tree(t.root(), model, augmented);
      ASSERT_FALSE(::testing::Test::HasFatalFailure());
      ++total;
    }
    ASSERT_TRUE(t.root().empty());
  }
  EXPECT_GE(total, 500000);  // x2 (plain and augmented): >= 10^6 checked operations
}

TEST(RbCore, PlainRandomAgainstSet) { run_random(false, 1); }
TEST(RbCore, AugmentedRandomAgainstSet) { run_random(true, 2); }

TEST(RbCore, SequentialInsertsStayBalanced) {
  // Ascending and descending insertion are the classic worst cases for an
  // unbalanced tree; the red-black bound is depth <= 2 log2(n + 1).
  for (bool descending : {false, true}) {
    tree_under_test t(true);
    std::set<int> model;
    const int n = 1 << 14;
    for (int i = 0; i < n; ++i) {
      const int k = descending ? n - i : i;
      ASSERT_TRUE(t.insert(k, static_cast<uint32_t>(k)));
      model.insert(k);
    }
    check_tree(t.root(), model, true);
    int max_depth = 0;
    for (rb::node* x = rb::first(&t.root()); x != nullptr; x = rb::next(x)) {
      int d = 0;
      for (const rb::node* y = x; y != nullptr; y = rb::parent(y)) ++d;
      max_depth = std::max(max_depth, d);
    }
    EXPECT_LE(max_depth, 2 * 15);
    EXPECT_EQ(of(t.root().top)->count, static_cast<uint32_t>(n));
    EXPECT_EQ(of(t.root().top)->max_val, static_cast<uint32_t>(n - (descending ? 0 : 1)));
  }
}

TEST(RbCore, EmptyTreeNavigation) {
  rb::root r;
  EXPECT_EQ(rb::first(&r), nullptr);
  EXPECT_EQ(rb::last(&r), nullptr);
  EXPECT_EQ(rb::first_postorder(&r), nullptr);
  rb::node single;
  rb::link_node(&single, nullptr, &r.top);
  rb::insert_color(&single, &r);
  EXPECT_TRUE(rb::is_black(&single));
  EXPECT_EQ(rb::first(&r), &single);
  EXPECT_EQ(rb::last(&r), &single);
  EXPECT_EQ(rb::next(&single), nullptr);
  EXPECT_EQ(rb::prev(&single), nullptr);
  rb::erase(&single, &r);
  EXPECT_TRUE(r.empty());
}

}  // namespace
