#!/usr/bin/env bash
# Provides the real Helm CLIs for the Helm tests (test/helm): Helm 4 and Helm 3,
# each built from the Go module proxy through its wrapper module (hack/helm/v4,
# hack/helm/v3), once, and cached outside the clone, keyed by the wrapper's
# go.mod and go.sum. The release version is stamped in as Helm's own Makefile
# does, so `helm version` reports it.
#
# Usage: hack/helm.sh 4|3. Prints the binary's path on stdout; progress goes to
# stderr. HELM4_BINARY / HELM3_BINARY, when set, win and nothing is built.
set -euo pipefail

major=${1:-}
case "$major" in
  4) override=${HELM4_BINARY:-} ;;
  3) override=${HELM3_BINARY:-} ;;
  *) echo "usage: $0 4|3" >&2; exit 2 ;;
esac
if [[ -n "$override" ]]; then
  echo "$override"
  exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod=$root/hack/helm/v$major
pkg=helm.sh/helm/v$major
# The version the wrapper pins, e.g. v4.3.2: one source of truth, the go.mod.
version=$(awk -v p="$pkg" '$1 == p || ($1 == "require" && $2 == p) { print $NF; exit }' "$mod/go.mod")
if [[ -z "$version" ]]; then
  echo "helm: no $pkg requirement in $mod/go.mod" >&2
  exit 1
fi
cache_root=${HELM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshsettings-operator/helm}
stamp=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -d' ' -f1)
dest=$cache_root/$version-$stamp

log() { echo "helm: $*" >&2; }

if [[ ! -x "$dest/helm" ]]; then
  mkdir -p "$cache_root"
  work=$(mktemp -d "$cache_root/.build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  start=$SECONDS
  log "building Helm $version from the Go module proxy (first run only: a few minutes on 2 cores)"
  if ! (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath \
      -ldflags "-s -w -X $pkg/internal/version.version=$version -X $pkg/internal/version.gitTreeState=clean" \
      -o "$work/helm" "$pkg/cmd/helm"); then
    log "FAILED to build Helm $version from $mod; nothing was cached"
    exit 1
  fi
  log "built Helm $version in $((SECONDS - start))s"
  # One rename swaps in the complete directory, so no reader sees half a cache.
  rm -rf "$dest"
  mv "$work" "$dest"
  trap - EXIT
fi
echo "$dest/helm"
