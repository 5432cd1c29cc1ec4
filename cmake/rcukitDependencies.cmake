# Finds rcukit's library dependencies. Used both by the build and by the
# installed rcukitConfig.cmake, so a consumer needs nothing extra.
# A missing dependency stops configure naming the Debian package to install.
include_guard(GLOBAL)
include(CMakeFindDependencyMacro)

find_package(Threads REQUIRED)

find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "rcukit: pkg-config not found. Install it: sudo apt-get install pkg-config")
endif()

# _rcukit_pkg(<prefix> <module> <debian package>)
macro(_rcukit_pkg prefix module debpkg)
  if(NOT TARGET PkgConfig::${prefix})
    pkg_check_modules(${prefix} QUIET IMPORTED_TARGET GLOBAL ${module})
    if(NOT ${prefix}_FOUND)
      message(FATAL_ERROR "rcukit: pkg-config module '${module}' not found. "
                          "Install it: sudo apt-get install ${debpkg}")
    endif()
  endif()
endmacro()

_rcukit_pkg(RCUKIT_URCU_MEMB liburcu-memb liburcu-dev)
_rcukit_pkg(RCUKIT_URCU_MB liburcu-mb liburcu-dev)
_rcukit_pkg(RCUKIT_URCU_BP liburcu-bp liburcu-dev)
_rcukit_pkg(RCUKIT_URCU_QSBR liburcu-qsbr liburcu-dev)
_rcukit_pkg(RCUKIT_URCU_CDS liburcu-cds liburcu-dev)

if(NOT TARGET absl::status)
  find_package(absl CONFIG QUIET)
  if(NOT absl_FOUND)
    message(FATAL_ERROR "rcukit: Abseil not found. Install it: sudo apt-get install libabsl-dev")
  endif()
endif()
