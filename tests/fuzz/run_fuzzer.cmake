# SPDX-License-Identifier: MIT
# Runs one libFuzzer binary for RUNS executions on a scratch copy of CORPUS
# plus the committed reproducers in REGRESSIONS (docs/RELIABILITY.md).
#   FUZZER       the libFuzzer binary          TARGET  its short name (judy, ...)
#   CORPUS       committed corpus (read only)  WORK    scratch directory
#   REGRESSIONS  tests/fuzz/regressions/<target> in the source tree
#   RUNS         -runs= (the bound)
# The seed changes with every run (seconds since the epoch), so CI explores
# new inputs each time; RCUKIT_FUZZ_SEED=<n> in the environment repeats a
# run. The seed is printed first. On failure the reproducer libFuzzer wrote is
# copied into REGRESSIONS, where the replay test fuzz_replay_<target> (every
# build) runs it, and the commands to reproduce are printed.
foreach(v FUZZER TARGET CORPUS WORK REGRESSIONS RUNS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${v}= is required")
  endif()
endforeach()

if(NOT "$ENV{RCUKIT_FUZZ_SEED}" STREQUAL "")
  set(seed "$ENV{RCUKIT_FUZZ_SEED}")
  if(NOT seed MATCHES "^[1-9][0-9]*$" OR seed GREATER 4294967295)
    message(FATAL_ERROR "RCUKIT_FUZZ_SEED must be an integer in [1, 4294967295] (got '${seed}')")
  endif()
  set(origin "from RCUKIT_FUZZ_SEED")
else()
  string(TIMESTAMP seed "%s" UTC)  # never 0, which libFuzzer reads as "pick one"
  set(origin "time-based")
endif()
message(STATUS "fuzz_${TARGET}: seed ${seed} (${origin}); repeat this run with RCUKIT_FUZZ_SEED=${seed}")

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
file(GLOB seeds ${CORPUS}/* ${REGRESSIONS}/*)
list(FILTER seeds EXCLUDE REGEX "/\\.[^/]*$")  # .gitkeep
if(seeds)
  file(COPY ${seeds} DESTINATION ${WORK}/corpus)
endif()

set(cmd ${FUZZER} -runs=${RUNS} -seed=${seed} -max_len=256 -print_final_stats=1
        -artifact_prefix=${WORK}/artifacts/ ${WORK}/corpus)
execute_process(COMMAND ${cmd} RESULT_VARIABLE rc)
if(rc EQUAL 0)
  return()
endif()

file(GLOB found ${WORK}/artifacts/crash-* ${WORK}/artifacts/leak-* ${WORK}/artifacts/timeout-*
     ${WORK}/artifacts/oom-*)
set(saved "")
if(found)
  file(MAKE_DIRECTORY ${REGRESSIONS})
  foreach(a IN LISTS found)
    get_filename_component(name ${a} NAME)
    file(COPY ${a} DESTINATION ${REGRESSIONS})
    string(APPEND saved "\n    ${REGRESSIONS}/${name}")
  endforeach()
  list(GET found 0 first)
  get_filename_component(first_name ${first} NAME)
  set(repro "\n  replay the input:  ${FUZZER} ${REGRESSIONS}/${first_name}")
else()
  set(saved "\n    (libFuzzer wrote no reproducer; see its output above)")
  set(repro "")
endif()
string(REPLACE ";" " " cmd_line "${cmd}")
message(FATAL_ERROR
  "fuzz_${TARGET} failed (exit ${rc}) with seed ${seed}.\n"
  "  reproducer(s) copied into the source tree; commit them, and the replay test "
  "fuzz_replay_${TARGET} runs them in every build:${saved}"
  "${repro}"
  "\n  repeat the run:    RCUKIT_FUZZ_SEED=${seed} ctest --preset fuzz -R '^fuzz_${TARGET}$'"
  "\n  (which runs: ${cmd_line})")
