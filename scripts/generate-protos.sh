#!/usr/bin/env bash
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Regenerates Sources/MeshProto from Protos/, and the examples' service (Examples/Sources/Greeter)
# from Examples/Protos/. The generated code is committed: the normal build and CI never run protoc
# or the plugins.
#
# Needs protoc (Debian: apt-get install protobuf-compiler). The Swift plugins are built from the
# package's own pinned dependencies (swift-protobuf's protoc-gen-swift and grpc-swift-protobuf's
# protoc-gen-grpc-swift-2), in a scratch folder of their own so the main build is untouched.
#
# With a Python that has grpcio-health-checking (MESH_PYTHON, else .venv/bin/python), it also checks
# that the vendored health.proto compiles to the exact descriptor grpcio ships.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if ! command -v protoc >/dev/null; then
  echo "error: protoc not found; install it with: apt-get install protobuf-compiler" >&2
  exit 1
fi

# Build the plugins from the checkouts of the versions this package resolves to, not through the
# root package: that way they build even when Sources/MeshProto is empty or out of date.
scratch="$root/.build-protoc-plugins"
swift package --scratch-path "$scratch" resolve
build_plugin() {
  local package="$1" product="$2"
  echo "Building $product from $package..." >&2
  swift build --package-path "$scratch/checkouts/$package" \
    --scratch-path "$scratch/$package" --product "$product" >&2
  echo "$(swift build --package-path "$scratch/checkouts/$package" \
    --scratch-path "$scratch/$package" --show-bin-path)/$product"
}
protoc_gen_swift=$(build_plugin swift-protobuf protoc-gen-swift)
protoc_gen_grpc_swift=$(build_plugin grpc-swift-protobuf protoc-gen-grpc-swift-2)

out="$root/Sources/MeshProto"
protos=(grpc/health/v1/health.proto)

# Remove the previous output so a proto that was deleted leaves no stale code behind.
find "$out" -name '*.pb.swift' -delete
find "$out" -name '*.grpc.swift' -delete

echo "Generating Swift code into $out..."
protoc \
  --proto_path="$root/Protos" \
  --plugin=protoc-gen-swift="$protoc_gen_swift" \
  --plugin=protoc-gen-grpc-swift-2="$protoc_gen_grpc_swift" \
  --swift_out="$out" \
  --swift_opt=Visibility=Public,UseAccessLevelOnImports=true \
  --grpc-swift-2_out="$out" \
  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=true,UseAccessLevelOnImports=true \
  "${protos[@]}"

examples="$root/Examples/Sources/Greeter"
find "$examples" -name '*.pb.swift' -delete
find "$examples" -name '*.grpc.swift' -delete
echo "Generating Swift code into $examples..."
protoc \
  --proto_path="$root/Examples/Protos" \
  --plugin=protoc-gen-swift="$protoc_gen_swift" \
  --plugin=protoc-gen-grpc-swift-2="$protoc_gen_grpc_swift" \
  --swift_out="$examples" \
  --swift_opt=Visibility=Public,UseAccessLevelOnImports=true,FileNaming=DropPath \
  --grpc-swift-2_out="$examples" \
  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=true,UseAccessLevelOnImports=true,FileNaming=DropPath \
  greeter/v1/greeter.proto

python="${MESH_PYTHON:-$root/.venv/bin/python}"
if [ -x "$python" ] && "$python" -c 'import grpc_health' 2>/dev/null; then
  descriptors=$(mktemp)
  trap 'rm -f "$descriptors"' EXIT
  protoc --proto_path="$root/Protos" --descriptor_set_out="$descriptors" \
    grpc/health/v1/health.proto
  "$python" "$root/scripts/check-health-proto.py" "$descriptors"
else
  echo "note: no Python with grpcio-health-checking; skipped the health.proto descriptor check" >&2
fi
echo "Done."
