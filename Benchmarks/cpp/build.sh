#!/usr/bin/env bash
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Builds the gRPC C++ benchmark peers (echo_server, echo_client) against the
# system's gRPC (Debian: libgrpc++-dev).
# Usage: Benchmarks/cpp/build.sh [OUTDIR]   (default: Benchmarks/.build-cpp)
# A binary is rebuilt only when its source (or this script) is newer than it.
# Prints the paths of the two binaries.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
outdir="${1:-$here/../.build-cpp}"

if ! command -v pkg-config >/dev/null 2>&1; then
  echo "build.sh: pkg-config not found (apt-get install pkg-config libgrpc++-dev)" >&2
  exit 1
fi
if ! pkg-config --exists grpc++ grpc protobuf; then
  echo "build.sh: pkg-config cannot find grpc++ (apt-get install libgrpc++-dev)" >&2
  exit 1
fi
read -r -a flags <<<"$(pkg-config --cflags --libs grpc++ grpc protobuf)"
cxx="${CXX:-g++}"

mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

for name in echo_server echo_client; do
  src="$here/$name.cc"
  bin="$outdir/$name"
  if [[ ! -x "$bin" || "$src" -nt "$bin" || "${BASH_SOURCE[0]}" -nt "$bin" ]]; then
    echo "build.sh: compiling $name" >&2
    if ! "$cxx" -O2 -std=c++17 -pthread -Wall -Wextra -o "$bin.tmp" "$src" "${flags[@]}"; then
      rm -f "$bin.tmp"
      echo "build.sh: compiling $name failed" >&2
      exit 1
    fi
    mv -f "$bin.tmp" "$bin"
  fi
done

echo "$outdir/echo_server"
echo "$outdir/echo_client"
