# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Sourced by the test scripts: `limited COMMAND...` runs COMMAND for at most $limit seconds, so
# that a run that hangs fails instead of holding CI to its limit. swift test runs the test process
# in a process group of its own, which `timeout` does not reach: it is killed by name.
limited() {
  local rc=0
  timeout -s KILL "$limit" "$@" || rc=$?
  if [ "$rc" = 137 ]; then
    echo "==> Killed after ${limit}s: $*" >&2
    pkill -KILL -f 'PackageTests\.xctest' || true
  fi
  return "$rc"
}
