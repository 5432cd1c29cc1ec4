# SPDX-License-Identifier: MIT
# Warnings and sanitizers for what rcukit compiles itself: its tests, stress
# harnesses, benchmarks and examples, and the compiled part of the library
# (src/), which must be instrumented like the code that calls it or TSan
# would miss its synchronization (docs/DESIGN.md). Attached to targets only,
# never through global flags; RCUKIT_SANITIZER comes from the presets.
include_guard(GLOBAL)

add_library(rcukit_internal_flags INTERFACE)
target_compile_options(rcukit_internal_flags INTERFACE
  -Wall -Wextra -Wpedantic $<$<CXX_COMPILER_ID:GNU>:-Wno-interference-size>)
if(RCUKIT_WERROR)   # on in the release preset (CI's main build): a warning in rcukit's own code fails it
  target_compile_options(rcukit_internal_flags INTERFACE -Werror)
endif()
if(RCUKIT_SANITIZER STREQUAL "address")
  target_compile_options(rcukit_internal_flags INTERFACE
    -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(rcukit_internal_flags INTERFACE -fsanitize=address,undefined)
  target_compile_definitions(rcukit_internal_flags INTERFACE RCUKIT_ASAN=1)
elseif(RCUKIT_SANITIZER STREQUAL "thread")
  target_compile_options(rcukit_internal_flags INTERFACE -fsanitize=thread -fno-omit-frame-pointer)
  target_link_options(rcukit_internal_flags INTERFACE -fsanitize=thread)
  target_compile_definitions(rcukit_internal_flags INTERFACE RCUKIT_TSAN=1)
elseif(RCUKIT_SANITIZER STREQUAL "fuzzer")
  # libFuzzer builds (clang): instrument everything for coverage, ASan and
  # UBSan; only fuzz targets link the libFuzzer driver.
  target_compile_options(rcukit_internal_flags INTERFACE
    -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  target_link_options(rcukit_internal_flags INTERFACE -fsanitize=address,undefined)
  target_compile_definitions(rcukit_internal_flags INTERFACE RCUKIT_ASAN=1)
elseif(NOT RCUKIT_SANITIZER STREQUAL "")
  message(FATAL_ERROR "RCUKIT_SANITIZER must be '', address, thread or fuzzer (got '${RCUKIT_SANITIZER}')")
endif()
