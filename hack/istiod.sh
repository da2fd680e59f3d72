#!/usr/bin/env bash
# Provides istiod (pilot-discovery) for the real-istiod tests and the demo:
# built from the Go module proxy through the wrapper module hack/istiod/ (the
# same istio.io/istio pin as test/oracle), once, and cached outside the clone,
# keyed by the wrapper's go.mod and go.sum. istio.io/istio never enters the
# operator's own go.mod.
#
# Prints the binary's path on stdout; progress goes to stderr.
# ISTIOD_BINARY, when set, wins and nothing is built.
# --cached: print the path only if it is already built (exit 1 otherwise, no
# build): `make demo` uses istiod when it costs nothing.
set -euo pipefail

if [[ -n "${ISTIOD_BINARY:-}" ]]; then
  echo "$ISTIOD_BINARY"
  exit 0
fi
cached_only=false
[[ "${1:-}" == "--cached" ]] && cached_only=true

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mod=$root/hack/istiod
cache_root=${ISTIOD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshsettings-operator/istiod}
stamp=$(cat "$mod/go.mod" "$mod/go.sum" | sha256sum | cut -d' ' -f1)
dest=$cache_root/$stamp

log() { echo "istiod: $*" >&2; }

if [[ ! -x "$dest/pilot-discovery" ]] && $cached_only; then
  exit 1
fi
if [[ ! -x "$dest/pilot-discovery" ]]; then
  mkdir -p "$cache_root"
  work=$(mktemp -d "$cache_root/.build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  start=$SECONDS
  log "building pilot-discovery from the Go module proxy (first run only: about 12 minutes on 2 cores)"
  if ! (cd "$mod" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "-s -w" \
      -o "$work/pilot-discovery" istio.io/istio/pilot/cmd/pilot-discovery); then
    log "FAILED to build pilot-discovery from $mod; nothing was cached"
    exit 1
  fi
  log "built pilot-discovery in $((SECONDS - start))s"
  # One rename swaps in the complete directory, so no reader sees half a cache.
  rm -rf "$dest"
  mv "$work" "$dest"
  trap - EXIT
fi
echo "$dest/pilot-discovery"
