# SPDX-License-Identifier: MIT
# ctest maple_kernel_suite: builds the kernel's tools/testing/radix-tree
# `maple` target from the extracted sources with its own Makefile (64-bit
# nodes, as the benchmarks use) and runs it; fails unless every check passed
# and no node leaked. Usage: cmake -DKERNEL=<extracted tree> -P kernel_suite.cmake
set(dir "${KERNEL}/tools/testing/radix-tree")
if(NOT EXISTS "${dir}/Makefile")
  message(FATAL_ERROR "${dir}/Makefile missing: build the maple targets first")
endif()
# CFLAGS through the environment: the Makefile appends its own to it.
execute_process(COMMAND ${CMAKE_COMMAND} -E env "CFLAGS=-DCONFIG_64BIT -fno-strict-aliasing" make -C "${dir}" maple
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building the kernel's maple test suite failed")
endif()
execute_process(COMMAND "${dir}/maple" OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT out MATCHES "maple_tree: ([0-9]+) of ([0-9]+) tests passed")
  message(FATAL_ERROR "no verdict from the suite (exit ${rc}):\n${err}")
endif()
set(passed "${CMAKE_MATCH_1}")
set(run "${CMAKE_MATCH_2}")
message(STATUS "maple_tree: ${passed} of ${run} checks passed")
if(NOT rc EQUAL 0 OR NOT passed STREQUAL run OR out MATCHES "nr_allocated = ")
  message(FATAL_ERROR "the kernel's maple test suite failed: ${passed} of ${run} checks passed, exit ${rc}")
endif()
