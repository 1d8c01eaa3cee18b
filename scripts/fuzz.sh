#!/usr/bin/env bash
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Builds the libFuzzer targets of Fuzz/ (with AddressSanitizer) and runs each for a bounded time,
# starting from a scratch copy of its seed corpus in Fuzz/Corpus/<target> (the committed seeds
# are never changed). Fails on a crash, a timeout, a leak or running out of memory, and keeps the
# input that caused it in Fuzz/crashes/<target>/ (git-ignored): replay it with
# `Fuzz/.build-fuzz/debug/<target> <input>`.
#
# Usage: scripts/fuzz.sh [seconds-per-target] [target...]   (default: 30 s each, every target)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

seconds=${1:-30}
[ $# -gt 0 ] && shift
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for directory in Fuzz/Sources/Fuzz*/; do
    name=$(basename "$directory")
    [ "$name" = FuzzSupport ] || targets+=("$name")
  done
fi

# SwiftPM's own --sanitize=fuzzer is what leaves each executable's `main` to libFuzzer (with only
# -Xswiftc -sanitize=fuzzer, SwiftPM links `main` to a `<Target>_main` the target does not have).
# But SwiftPM passes -sanitize=fuzzer and -sanitize=address to swiftc as two flags, and swiftc
# keeps only the last: the trailing -Xswiftc -sanitize=fuzzer,address is what gives Swift code
# both coverage and AddressSanitizer. -enable-testing lets targets @testable-import internals.
build=(
  swift build --package-path Fuzz --scratch-path Fuzz/.build-fuzz -c debug
  --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address
  -Xswiftc -parse-as-library -Xswiftc -enable-testing
)
echo "==> Building the fuzz targets: ${build[*]}"
"${build[@]}"
bin=$("${build[@]}" --show-bin-path)

# libFuzzer's own handlers report a Swift trap and write its input; Swift's backtracer would take
# the signal first.
export SWIFT_BACKTRACE=enable=no
scratch=$(mktemp -d "${TMPDIR:-/tmp}/mesh-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
  corpus="$scratch/$target"
  crashes="$root/Fuzz/crashes/$target"
  mkdir -p "$corpus" "$crashes"
  cp -R "Fuzz/Corpus/$target/." "$corpus/"
  log="$scratch/$target.log"
  echo "==> Fuzzing $target for ${seconds}s ($(ls "$corpus" | wc -l) seeds)"
  status=0
  dictionary=()
  [ -f "Fuzz/$target.dict" ] && dictionary=(-dict="Fuzz/$target.dict")
  # -timeout: one input taking 10 s is a hang; -rss_limit_mb: past 2 GiB is a memory bug.
  "$bin/$target" "$corpus" "${dictionary[@]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -artifact_prefix="$crashes/" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$log" | sed 's/^/    /' || true
  if [ "$status" -ne 0 ]; then
    echo "==> $target FAILED (exit $status); its log:"
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)' "$log" | tail -n 80
    for input in $(grep -o -E "Test unit written to .*" "$log" | sed 's/Test unit written to //'); do
      echo "==> $target: the input is kept at $input (replay: $bin/$target $input)"
    done
    failed+=("$target")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "==> Fuzzing found failures in: ${failed[*]}"
  exit 1
fi
echo "==> Fuzzing: ${#targets[@]} targets ran ${seconds}s each without a failure"
