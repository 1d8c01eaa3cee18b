#!/usr/bin/env bash
# Copyright 2026, swift-grpc-mesh contributors. Licensed under the Apache License, Version 2.0.
#
# Makes deploy/certs, the folder deploy/docker-compose.yml mounts at /certs, with `mesh certs`:
# the mesh CA (ca.crt, ca-key.pem) and, in services/, the certificates and keys of
#   greeter         both instances; it also names greeter-1 and greeter-2, the addresses they
#                   register in Consul, for tools that verify the host they dial (Consul's own
#                   check verifies `greeter`, its TLSServerName)
#   greeter-client  the one-shot client
#   consul-agent    what Consul presents to the greeters when it runs their gRPC checks
# The greeters' healthchecks (`mesh health`) present greeter's own certificate: no other identity.
#
# Usage: deploy/make-certs.sh [--force] [MESH]
#   MESH     the mesh executable; default: `mesh` on PATH, else this repository's, through
#            `swift run --package-path <root> mesh`
#   --force  a new CA and every certificate again; restart the stack afterwards, so that no
#            service holds the old CA while the others present certificates of the new one
#
# Without --force an existing CA is kept and only missing certificates are issued, so running it
# twice changes nothing (if the CA itself was missing, every certificate is issued again under
# the new one: those of another CA would not be trusted). MESH_TRUST_DOMAIN sets a new CA's
# trust domain (mesh.local). The keys are written 0600 and the folder 0700 by `mesh`: the
# containers run as MESH_UID:MESH_GID (1000:1000) to read them, so set those to your own ids.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
dir="$here/certs"

usage() {
  echo "usage: $0 [--force] [MESH]" >&2
  exit 1
}

force=false
mesh=""
for argument in "$@"; do
  case "$argument" in
    --force) force=true ;;
    -h | --help) usage ;;
    -*) echo "error: unknown option: $argument" >&2; usage ;;
    *)
      [ -z "$mesh" ] || usage
      mesh=$argument
      ;;
  esac
done

# Runs mesh with the given arguments. `swift run` builds mesh first if it must.
run_mesh() {
  if [ -n "$mesh" ]; then
    "$mesh" "$@"
  elif command -v mesh >/dev/null; then
    mesh "$@"
  else
    swift run --package-path "$root" mesh "$@"
  fi
}

# A certificate without its key (or the reverse) is a leftover that `mesh` will not overwrite
# without --force; say so instead of half-guessing which file is right.
check_pair() {
  local certificate=$1 key=$2
  [ "$force" = false ] || return 0
  if [ -e "$certificate" ] && [ -e "$key" ]; then return 0; fi
  if [ -e "$certificate" ] || [ -e "$key" ]; then
    echo "error: only one of $certificate and $key exists; remove it or run $0 --force" >&2
    exit 1
  fi
}

check_pair "$dir/ca.crt" "$dir/ca-key.pem"
new_ca=false
if [ "$force" = true ] || [ ! -e "$dir/ca.crt" ]; then
  if [ "$force" = true ]; then
    run_mesh certs init --dir "$dir" --trust-domain "${MESH_TRUST_DOMAIN:-mesh.local}" --force
  else
    run_mesh certs init --dir "$dir" --trust-domain "${MESH_TRUST_DOMAIN:-mesh.local}"
  fi
  new_ca=true
else
  echo "Keeping the mesh CA in $dir (--force makes a new one)."
fi

# issue SERVICE [FLAGS...]: issues SERVICE's certificate unless it exists. Under a new CA every
# certificate is issued again: one from an earlier CA would not be trusted.
issue() {
  local service=$1
  shift
  local certificate="$dir/services/$service.crt" key="$dir/services/$service-key.pem"
  check_pair "$certificate" "$key"
  if [ "$new_ca" = true ] && { [ -e "$certificate" ] || [ -e "$key" ]; }; then
    run_mesh certs issue "$service" --dir "$dir" "$@" --force
  elif [ ! -e "$certificate" ]; then
    run_mesh certs issue "$service" --dir "$dir" "$@"
  else
    echo "Keeping $certificate."
  fi
}

issue greeter --dns greeter-1 --dns greeter-2 --dns greeter
issue greeter-client
issue consul-agent

uid=$(id -u)
gid=$(id -g)
if [ "$uid:$gid" != "${MESH_UID:-1000}:${MESH_GID:-1000}" ]; then
  echo "Note: the keys are $uid:$gid's (mode 0600) and the containers run as" \
    "${MESH_UID:-1000}:${MESH_GID:-1000}. Before docker compose up:" \
    "export MESH_UID=$uid MESH_GID=$gid"
fi
