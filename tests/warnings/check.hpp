// SPDX-License-Identifier: MIT
// The one assertion of tests/warnings: prints what failed and exits.
#pragma once
#include <cstdio>
#include <cstdlib>

#define WARN_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::exit(1);                                                         \
    }                                                                       \
  } while (0)
