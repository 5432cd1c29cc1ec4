// SPDX-License-Identifier: MIT
// The shared extent_index suite (tests/support/extent_index_suite.hpp),
// instantiated for both rbtree maps: one suite, every index, same results.
#include "rcukit/rbtree.hpp"
#include "support/extent_index_suite.hpp"

namespace rcukit::testing {
using RbTypes =
    ::testing::Types<rcukit::rbtree_extent_map<uint64_t>, rcukit::rbtree_extent_map_augmented<uint64_t>>;
INSTANTIATE_TYPED_TEST_SUITE_P(Rbtree, ExtentIndexSuite, RbTypes);
}  // namespace rcukit::testing
