# SPDX-License-Identifier: MIT
# Finds rcukit's library dependencies. Used both by the build and by the
# installed rcukitConfig.cmake, so a consumer needs nothing extra.
# A missing dependency stops configure naming the Debian package to install.
include_guard(GLOBAL)

# rcukit_find_or_fail(<name> <debian package> [find_package options...])
# rcukit_find_or_fail(<name> <debian package> PKGCONFIG <module>)
# rcukit_find_or_fail(<name> <debian package> LIBRARY <library> HEADER <header>)
#   find_package(<name> QUIET <options>) (skipped once <name>_FOUND);
#   pkg_check_modules(<name> ... <module>), giving PkgConfig::<name>; or, for
#   a library that ships no CMake package, <name>_LIBRARY and
#   <name>_INCLUDE_DIR. Whatever is missing stops configure, naming the
#   Debian package to install. A macro, so the results land in the caller's
#   scope.
macro(rcukit_find_or_fail name debpkg)
  cmake_parse_arguments(_rcukit_ff "" "PKGCONFIG;LIBRARY;HEADER" "" ${ARGN})
  set(_rcukit_ff_what "${name}")
  if(_rcukit_ff_PKGCONFIG)
    set(_rcukit_ff_what "pkg-config module '${_rcukit_ff_PKGCONFIG}'")
    if(NOT TARGET PkgConfig::${name})
      pkg_check_modules(${name} QUIET IMPORTED_TARGET GLOBAL ${_rcukit_ff_PKGCONFIG})
    endif()
  elseif(_rcukit_ff_LIBRARY)
    find_library(${name}_LIBRARY ${_rcukit_ff_LIBRARY})
    find_path(${name}_INCLUDE_DIR ${_rcukit_ff_HEADER})
    if(${name}_LIBRARY AND ${name}_INCLUDE_DIR)
      set(${name}_FOUND TRUE)
    endif()
  elseif(NOT ${name}_FOUND)
    find_package(${name} QUIET ${_rcukit_ff_UNPARSED_ARGUMENTS})
  endif()
  if(NOT ${name}_FOUND AND NOT TARGET PkgConfig::${name})
    message(FATAL_ERROR "rcukit: ${_rcukit_ff_what} not found. Install it: sudo apt-get install ${debpkg}")
  endif()
endmacro()

find_package(Threads REQUIRED)
rcukit_find_or_fail(PkgConfig pkg-config)

rcukit_find_or_fail(RCUKIT_URCU_MEMB liburcu-dev PKGCONFIG liburcu-memb)
rcukit_find_or_fail(RCUKIT_URCU_MB liburcu-dev PKGCONFIG liburcu-mb)
rcukit_find_or_fail(RCUKIT_URCU_BP liburcu-dev PKGCONFIG liburcu-bp)
rcukit_find_or_fail(RCUKIT_URCU_QSBR liburcu-dev PKGCONFIG liburcu-qsbr)

if(NOT TARGET absl::status)   # not when a parent project builds Abseil itself
  rcukit_find_or_fail(absl libabsl-dev CONFIG)
endif()
