// SPDX-License-Identifier: MIT
// libFuzzer target: the extent skiplist and both rbtree maps against the
// model; the first byte picks the index.
#include <cstddef>
#include <cstdint>
#include <new>

#include "extent_index_fuzz.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/rbtree.hpp"

namespace {
// Skiplist with small leaves (splits and merges happen on short inputs) and a
// failing allocator.
struct fuzz_skiplist_traits : rcukit::skiplist_traits {
  static constexpr unsigned leaf_capacity = 4;
  static constexpr unsigned max_levels = 8;
  static void* allocate(std::size_t n) noexcept {
    return rcukit::fuzz::should_fail() ? nullptr : ::operator new(n, std::nothrow);
  }
};
struct fuzz_rb_alloc {
  static void* allocate(std::size_t n) noexcept {
    return rcukit::fuzz::should_fail() ? nullptr : ::operator new(n, std::nothrow);
  }
  static void deallocate(void* p, std::size_t) noexcept { ::operator delete(p); }
};
using skiplist = rcukit::extent_skiplist<uint64_t, rcukit::rcu::memb, fuzz_skiplist_traits>;
using rbtree = rcukit::rbtree_extent_map<uint64_t, rcukit::rcu::memb, fuzz_rb_alloc>;
using rbtree_aug = rcukit::rbtree_extent_map_augmented<uint64_t, rcukit::rcu::memb, fuzz_rb_alloc>;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  switch (data[0] % 3) {
    case 0:
      rcukit::fuzz::run_extent_index<skiplist>(data + 1, size - 1);
      break;
    case 1:
      rcukit::fuzz::run_extent_index<rbtree>(data + 1, size - 1);
      break;
    case 2:
      rcukit::fuzz::run_extent_index<rbtree_aug>(data + 1, size - 1);
      break;
  }
  rcukit::fuzz::periodic_barrier([] {});  // retired leaves are freed by the RCU callbacks
  return 0;
}
