// stress/common/paired.hpp -- moved to src/harness/paired.hpp (the
// harnesses' one home, issue 18). Kept only until bench/judy/judy_bench.cpp,
// which the Judy issues own, includes "harness/paired.hpp"; then delete it.
#pragma once

#include "harness/paired.hpp"  // IWYU pragma: export
