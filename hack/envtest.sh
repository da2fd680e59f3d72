#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest, in this order:
#   1. KUBEBUILDER_ASSETS, when set: nothing else happens;
#   2. a complete earlier result in the cache (a build, or a download);
#   3. setup-envtest's download (for users who are online), bounded by
#      SETUP_ENVTEST_TIMEOUT seconds per step (default 60; ENVTEST_DOWNLOAD=0 skips it);
#   4. a build from the Go module proxy through a wrapper module under
#      hack/envtest/ (the offline path: where the download is unreachable).
# Results are cached outside the clone. It prints the assets directory (for
# KUBEBUILDER_ASSETS) on stdout and which path it took on stderr.
set -euo pipefail

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

K8S_VERSION=${ENVTEST_K8S_VERSION:-1.36.3}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/hack/envtest
platform="$(go env GOOS)-$(go env GOARCH)"
cache_root=${ENVTEST_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meshsettings-operator/envtest}
dest=$cache_root/$K8S_VERSION-$platform
link=$root/bin/k8s/$K8S_VERSION-$platform

# The stamp ties the cache to the exact wrapper modules: a changed pin rebuilds.
stamp=$(cat "$tools"/kube-apiserver/go.mod "$tools"/kube-apiserver/go.sum \
  "$tools"/etcd/go.mod "$tools"/etcd/go.sum | sha256sum | cut -d' ' -f1)

log() { echo "envtest: $*" >&2; }

# link points bin/k8s/<version>-<platform> at the directory holding the binaries.
link_to() {
  mkdir -p "$(dirname "$link")"
  if [[ "$(readlink "$link" 2>/dev/null)" != "$1" ]]; then
    rm -rf "$link"
    ln -s "$1" "$link"
  fi
  echo "$link"
}

# bounded runs a command for at most SETUP_ENVTEST_TIMEOUT seconds (then
# kills it), so an unreachable network cannot hang CI.
SETUP_ENVTEST_TIMEOUT=${SETUP_ENVTEST_TIMEOUT:-60}
bounded() {
  if command -v timeout >/dev/null; then
    timeout -k 5 "$SETUP_ENVTEST_TIMEOUT" "$@"
  else
    "$@"
  fi
}

# try_download prints the directory setup-envtest provides K8S_VERSION in,
# installed earlier or downloaded now; it fails (quickly) when offline.
SETUP_ENVTEST_VERSION=${SETUP_ENVTEST_VERSION:-v0.25.1}
download_dir=$cache_root/setup-envtest
try_download() {
  local tool=$cache_root/tools/setup-envtest-$SETUP_ENVTEST_VERSION err out b msg
  err=$(mktemp)
  if [[ ! -x "$tool" ]]; then
    mkdir -p "$cache_root/tools"
    local gobin
    gobin=$(mktemp -d "$cache_root/tools/.install-XXXXXX")
    if ! GOBIN="$gobin" GOFLAGS=-mod=mod bounded go install \
      "sigs.k8s.io/controller-runtime/tools/setup-envtest@$SETUP_ENVTEST_VERSION" 2>"$err" ||
      ! mv "$gobin/setup-envtest" "$tool"; then
      log "could not install setup-envtest $SETUP_ENVTEST_VERSION: $(tail -n1 "$err")"
      rm -rf "$err" "$gobin"
      return 1
    fi
    rm -rf "$gobin"
  fi
  if ! out=$(bounded "$tool" use -i "$K8S_VERSION" --bin-dir "$download_dir" -p path 2>"$err" </dev/null) &&
    ! out=$(bounded "$tool" use "$K8S_VERSION" --bin-dir "$download_dir" -p path 2>"$err" </dev/null); then
    msg=$(tail -n1 "$err")
    log "setup-envtest could not download $K8S_VERSION: ${msg:-no answer within ${SETUP_ENVTEST_TIMEOUT}s}"
    rm -f "$err"
    return 1
  fi
  rm -f "$err"
  for b in kube-apiserver etcd kubectl; do
    if [[ ! -x "$out/$b" ]]; then
      log "setup-envtest's $K8S_VERSION in '$out' has no $b"
      return 1
    fi
  done
  echo "$out"
}

if [[ "$(cat "$dest/.stamp" 2>/dev/null)" == "$stamp" ]]; then
  log "using the build cached in $dest"
  link_to "$dest"
  exit 0
fi
if [[ "${ENVTEST_DOWNLOAD:-1}" != 0 ]]; then
  if assets=$(try_download); then
    log "using setup-envtest's download in $assets"
    link_to "$assets"
    exit 0
  fi
  log "no download: building from source instead"
else
  log "ENVTEST_DOWNLOAD=0: building from source"
fi

{
  mkdir -p "$cache_root"
  work=$(mktemp -d "$cache_root/.build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  major=${K8S_VERSION%%.*}; minor=${K8S_VERSION#*.}; minor=${minor%%.*}
  ldflags="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION \
    -X k8s.io/component-base/version.gitMajor=$major \
    -X k8s.io/component-base/version.gitMinor=$minor \
    -X k8s.io/component-base/version.gitTreeState=clean \
    -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION \
    -X k8s.io/client-go/pkg/version.gitMajor=$major \
    -X k8s.io/client-go/pkg/version.gitMinor=$minor"

  build() { # name, module dir, package, ldflags
    local start=$SECONDS
    log "building $1 from the Go module proxy (first run only: kube-apiserver takes 4-10 minutes)"
    if ! (cd "$2" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -ldflags "$4" -o "$work/$1" "$3"); then
      log "FAILED to build $1 from $2 ($3); nothing was cached"
      exit 1
    fi
    log "built $1 in $((SECONDS - start))s"
  }
  build kube-apiserver "$tools/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver "$ldflags"
  build kubectl "$tools/kube-apiserver" k8s.io/kubernetes/cmd/kubectl "$ldflags"
  build etcd "$tools/etcd" go.etcd.io/etcd/server/v3 "-s -w"

  echo "$stamp" > "$work/.stamp"
  # Swap in the complete directory in one rename so no reader sees half a cache.
  rm -rf "$dest.old"
  [[ -d "$dest" ]] && mv "$dest" "$dest.old"
  mv "$work" "$dest"
  rm -rf "$dest.old"
  trap - EXIT
}
log "built from source into $dest"
link_to "$dest"
