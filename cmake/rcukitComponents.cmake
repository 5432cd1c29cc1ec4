# SPDX-License-Identifier: MIT
# One block per component: its INTERFACE target (rcukit::runtime, the
# compiled part, is defined in src/CMakeLists.txt).
# Included from the top-level CMakeLists.txt, so paths are relative to it.
# Keep the list in dependency order (docs/DESIGN.md floors).
rcukit_component(rbtree DEPS rcukit::extent)
rcukit_component(judy DEPS rcukit::rcu)
rcukit_component(extent_skiplist DEPS rcukit::extent)
rcukit_component(iova DEPS rcukit::extent_skiplist)
# Order-preserving parallel executor (padata): headers plus rcukit::runtime.
rcukit_component(executor DEPS rcukit::rcu rcukit::runtime)
