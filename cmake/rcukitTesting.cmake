# SPDX-License-Identifier: MIT
# Project-internal helpers for tests, stress harnesses, benchmarks, examples.
# Warnings and sanitizers (rcukitFlags.cmake) are attached to these targets
# and to the compiled part of the library, never through global flags.
include_guard(GLOBAL)

include(rcukitFlags)  # rcukit_internal_flags: warnings and the preset's sanitizer

# rcukit_add_executable(<name> SOURCES ... [LIBS ...])
function(rcukit_add_executable name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE rcukit_internal_flags ${ARG_LIBS})
endfunction()

# rcukit_add_test(<name> SOURCES ... [LIBS ...] LABELS unit|concurrent|stress...
#                 [ARGS ...] [TIMEOUT s] [WILL_FAIL])
# Builds a GoogleTest binary and registers it as one ctest test, labelled.
# tests/CMakeLists.txt finds GoogleTest first.
# Concurrent tests read RCUKIT_TEST_SECONDS (set per preset) for bounded runs.
function(rcukit_add_test name)
  cmake_parse_arguments(ARG "WILL_FAIL" "TIMEOUT" "SOURCES;LIBS;LABELS;ARGS" ${ARGN})
  rcukit_add_executable(${name} SOURCES ${ARG_SOURCES}
    LIBS ${ARG_LIBS} GTest::gtest GTest::gtest_main)
  add_test(NAME ${name} COMMAND ${name} ${ARG_ARGS})
  if(ARG_WILL_FAIL)
    set(ARG_WILL_FAIL WILL_FAIL)
  else()
    set(ARG_WILL_FAIL "")
  endif()
  rcukit_test_properties(${name} LABELS ${ARG_LABELS} TIMEOUT ${ARG_TIMEOUT} ${ARG_WILL_FAIL})
endfunction()

# rcukit_test_properties(<test> LABELS ... [TIMEOUT s] [WILL_FAIL]): labels,
# timeout and the sanitizer runtime options for any registered ctest test.
function(rcukit_test_properties name)
  cmake_parse_arguments(ARG "WILL_FAIL" "TIMEOUT" "LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
  if(ARG_WILL_FAIL)
    set_tests_properties(${name} PROPERTIES WILL_FAIL TRUE)
  endif()
  if(RCUKIT_SANITIZER STREQUAL "thread")
    set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT
      "TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=${PROJECT_SOURCE_DIR}/tests/tsan.supp")
  elseif(RCUKIT_SANITIZER STREQUAL "address" OR RCUKIT_SANITIZER STREQUAL "fuzzer")
    set_property(TEST ${name} APPEND PROPERTY ENVIRONMENT
      "ASAN_OPTIONS=detect_leaks=1:abort_on_error=1" "UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1")
  endif()
endfunction()
