// SPDX-License-Identifier: MIT
// rcukit/version.hpp -- the library's version, for code that must test it.
// CMakeLists.txt reads the three numbers below, so the package version
// (find_package(rcukit 0.2), pkg-config --modversion rcukit) is always this.
// Semantic versioning; before 1.0 a minor version may change the API, and
// the CMake package accepts a request only within the same minor version.
#pragma once

#define RCUKIT_VERSION_MAJOR 0
#define RCUKIT_VERSION_MINOR 2
#define RCUKIT_VERSION_PATCH 0
// One comparable number: major * 10000 + minor * 100 + patch.
#define RCUKIT_VERSION (RCUKIT_VERSION_MAJOR * 10000 + RCUKIT_VERSION_MINOR * 100 + RCUKIT_VERSION_PATCH)
#define RCUKIT_VERSION_STRING "0.2.0"

namespace rcukit {
struct version_info {
  int major;
  int minor;
  int patch;
  const char* string;
};
inline constexpr version_info version{RCUKIT_VERSION_MAJOR, RCUKIT_VERSION_MINOR, RCUKIT_VERSION_PATCH,
                                      RCUKIT_VERSION_STRING};
}  // namespace rcukit
