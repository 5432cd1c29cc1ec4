# SPDX-License-Identifier: MIT
# The kernel's maple tree as a benchmark peer (bench/peers/maple/), built
# from Debian's linux-source-6.12 package the way the kernel's own user-space
# test suite builds it. Nothing of the kernel is in this repository: the
# files listed in bench/peers/maple/kernel-files.txt are extracted from the
# package's tarball into the build directory at build time.
#
#   RCUKIT_MAPLE         on by default when the tarball is installed
#   RCUKIT_MAPLE_SOURCE  the tarball (/usr/src/linux-source-6.12.tar.xz)
#
# The code it builds is GPL-2.0; it is linked only into the binaries of
# bench/peers/maple/ (README.md there), never into the library.
include_guard(GLOBAL)

set(RCUKIT_MAPLE_SOURCE "/usr/src/linux-source-6.12.tar.xz" CACHE FILEPATH
    "Debian's linux-source-6.12 tarball, from which the maple tree peer is built")
if(EXISTS "${RCUKIT_MAPLE_SOURCE}")
  set(_rcukit_maple_default ON)
else()
  set(_rcukit_maple_default OFF)
endif()
option(RCUKIT_MAPLE "Build the kernel's maple tree as a benchmark peer (needs linux-source-6.12; GPL-2.0 binaries)"
       ${_rcukit_maple_default})
if(RCUKIT_MAPLE AND NOT EXISTS "${RCUKIT_MAPLE_SOURCE}")
  message(FATAL_ERROR "rcukit: RCUKIT_MAPLE needs ${RCUKIT_MAPLE_SOURCE}. Install it: sudo apt-get install "
                      "linux-source-6.12, or configure with -DRCUKIT_MAPLE=OFF")
endif()

# rcukit_maple_extract(<dir> <gen dir> <file list> <out var>)
#   A build-time rule extracting the listed paths of the tarball into <dir>
#   (its top-level folder stripped), and <gen dir>/generated/ with the
#   headers the kernel's tools/testing/shared/shared.mk generates (64-bit,
#   XA_CHUNK_SHIFT 3, a copy of its autoconf.h). Sets <out var> to the stamp
#   file that depends on it.
function(rcukit_maple_extract dir gen list out)
  file(WRITE "${gen}/generated/bit-length.h" "#define CONFIG_64BIT 1\n")
  file(WRITE "${gen}/generated/map-shift.h" "#define XA_CHUNK_SHIFT 3\n")
  file(STRINGS "${list}" files REGEX "^[^#]")
  get_filename_component(top "${RCUKIT_MAPLE_SOURCE}" NAME)
  string(REGEX REPLACE "\\.tar(\\.[a-z0-9]+)?$" "" top "${top}")  # linux-source-6.12
  set(members "")
  foreach(f IN LISTS files)
    list(APPEND members "${top}/${f}")
  endforeach()
  set(stamp "${dir}/.extracted")
  add_custom_command(OUTPUT "${stamp}"
    COMMAND ${CMAKE_COMMAND} -E rm -rf "${dir}"
    COMMAND ${CMAKE_COMMAND} -E make_directory "${dir}"
    COMMAND tar -xJf "${RCUKIT_MAPLE_SOURCE}" -C "${dir}" --strip-components=1 ${members}
    COMMAND ${CMAKE_COMMAND} -E copy "${dir}/tools/testing/shared/autoconf.h" "${gen}/generated/autoconf.h"
    COMMAND ${CMAKE_COMMAND} -E touch "${stamp}"
    DEPENDS "${RCUKIT_MAPLE_SOURCE}" "${list}"
    COMMENT "Extracting the maple tree and its user-space shims from ${RCUKIT_MAPLE_SOURCE}"
    VERBATIM)
  set(${out} "${stamp}" PARENT_SCOPE)
endfunction()
