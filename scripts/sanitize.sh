#!/usr/bin/env bash
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Runs the whole test suite under ThreadSanitizer and/or AddressSanitizer, each in its own build
# folder (.build-tsan, .build-asan) so that the main .build is left alone. A data race or memory
# error fails the run.
#
# With Swift 6.3 on Linux, Synchronization.Mutex locks with futexes TSan does not intercept, so
# every access a Mutex guards would be reported as a race (a two-thread Mutex<Int> counter is
# enough to show it). The package locks through MeshCore's MeshMutex, which, built with
# -D MESH_TSAN as here, announces each critical section to TSan; grpc-swift's own Mutex-guarded
# state is suppressed by scripts/tsan-suppressions.txt.
#
# Usage: scripts/sanitize.sh [thread|address|both] [swift test arguments, e.g. --filter Suite]
# The interop tests need their Python: $MESH_INTEROP_PYTHON, else .venv (made by scripts/test.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

which=${1:-both}
[ $# -gt 0 ] && shift
case "$which" in
  thread) kinds=(thread) ;;
  address) kinds=(address) ;;
  both) kinds=(thread address) ;;
  *) echo "usage: $0 [thread|address|both] [swift test arguments]" >&2; exit 2 ;;
esac

if [ -z "${MESH_INTEROP_PYTHON:-}" ] && [ -x "$root/.venv/bin/python" ]; then
  export MESH_INTEROP_PYTHON="$root/.venv/bin/python"
fi
export MESH_WARNINGS_AS_ERRORS=1
# Timers wake late at a sanitizer's speed: the deadline tests widen their slack (their timing is
# checked by the plain and strict runs of scripts/test.sh).
export MESH_SANITIZED=1
# Report every race and error (not only the first), then fail at exit; leaks are not checked (the
# Swift runtime's caches look like leaks to LeakSanitizer).
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=0:exitcode=66:second_deadlock_stack=1:suppressions=$root/scripts/tsan-suppressions.txt}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0:halt_on_error=1}"
# A crash must print its report and end the process. Swift's own backtracer, run inside a
# sanitized process, trips AddressSanitizer itself (a stack-buffer-underflow in its memory reader)
# and can then hang: one CI run spent its whole 90 minutes there.
export SWIFT_BACKTRACE=enable=no
# Each swift test run has a time limit (scripts/limited.sh).
limit=${MESH_SANITIZE_TIME_LIMIT:-900}
source "$root/scripts/limited.sh"
# At most four tests at a time. On two cores, the whole suite at once under a sanitizer's 5-15x
# slowdown starves timers for tens of seconds (a Consul blocking query misses its 2 s client
# timeout, a health check its 5 s one), which fails tests for no fault of the code; four at a
# time still overlaps the servers, clients and agents the races live between, and takes about
# 50 s instead of 130 s.
width="${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-4}"
# ThreadSanitizer slows the tests most: at four at a time its CI passes failed about four timing
# expectations a run (a different four each time: a call outliving its 5 s per-try timeout and
# counted twice, a 5 s bound taking 8 s), twice in a row; it runs two at a time.
tsan_width="${MESH_TSAN_WIDTH:-2}"

failed=()
for kind in "${kinds[@]}"; do
  case "$kind" in
    # swift-otel 1.6.0 does not compile under -sanitize=thread with Swift 6.3 (a "sending 'logger'
    # risks causing data races" error in its OTelBatchLogRecordProcessor, under TSan only): this
    # run builds without the OTLP trait, so MeshOTel and its tests are empty here. The
    # AddressSanitizer run and the plain run cover them.
    thread) scratch=.build-tsan; flags=(-Xswiftc -DMESH_TSAN --traits Consul,YAML,Admin,Native) ;;
    address) scratch=.build-asan; flags=() ;;
  esac
  printf '\n==> Building the tests with --sanitize=%s in %s\n' "$kind" "$scratch"
  swift build --build-tests --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}"
  passed=""
  for run in 1 2; do
    printf '\n==> Running the tests under --sanitize=%s\n' "$kind"
    start=$(date +%s)
    output=$(mktemp)
    rc=0
    if [ "$kind" = thread ]; then
      export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="$tsan_width"
    else
      export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="$width"
    fi
    limited swift test --skip-build --sanitize="$kind" --scratch-path "$scratch" "${flags[@]}" "$@" \
      2>&1 | tee "$output" || rc=$?  # pipefail: the tests' status (tee does not fail)
    if [ "$rc" = 0 ]; then
      echo "==> --sanitize=$kind: passed in $(( $(date +%s) - start ))s"
      passed=yes
      rm -f "$output"
      break
    fi
    echo "==> --sanitize=$kind: FAILED after $(( $(date +%s) - start ))s (limit ${limit}s)"
    # A sanitizer's report (a race, a memory error) fails the pass at once. Expectations that
    # failed without one are timing at a sanitizer's 5-15x slowdown (a call outliving its 5 s
    # per-try timeout, a wait checked against a bound), which the plain and strict-timing runs
    # hold the code to: the pass runs once more, and must pass then.
    if [ "$run" = 2 ] || [ "$rc" = 66 ] || [ "$rc" = 137 ] \
      || grep -qE 'WARNING: ThreadSanitizer|ERROR: (Address|Leak)Sanitizer' "$output"; then
      rm -f "$output"
      break
    fi
    failures=$(grep -cE '^✘ Test .* recorded an issue' "$output" || true)
    rm -f "$output"
    echo "==> --sanitize=$kind: ${failures} expectations failed with no sanitizer report (timing at" \
      "a sanitizer's speed): running the pass once more"
  done
  [ -n "$passed" ] || failed+=("$kind")
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "==> Sanitizer runs failed: ${failed[*]}"
  exit 1
fi
