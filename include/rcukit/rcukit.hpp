// SPDX-License-Identifier: MIT
// rcukit/rcukit.hpp -- umbrella header: every public rcukit component.
#pragma once

#include "rcukit/extent.hpp"
#include "rcukit/extent_skiplist.hpp"
#include "rcukit/iova.hpp"
#include "rcukit/judy_array.hpp"
#include "rcukit/ordered_executor.hpp"
#include "rcukit/rbtree.hpp"
#include "rcukit/rcu.hpp"
#include "rcukit/version.hpp"
