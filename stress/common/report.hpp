// stress/common/report.hpp -- moved to src/harness/report.hpp (compiled in
// src/, issue 18). Kept only until iommu_sim.cpp and skiplist_test.cpp,
// which issue 19 is editing, include "harness/report.hpp"; then delete it.
#pragma once

#include "harness/report.hpp"  // IWYU pragma: export
