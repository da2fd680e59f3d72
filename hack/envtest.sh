#!/usr/bin/env bash
# Provides kube-apiserver, etcd and kubectl for envtest without setup-envtest's
# download (unreachable here): each is built from the Go module proxy through a
# wrapper module under hack/envtest/, once, and cached outside the clone.
#
# Prints the assets directory (for KUBEBUILDER_ASSETS) on stdout; progress goes
# to stderr. KUBEBUILDER_ASSETS, when set, wins and nothing is built.
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

if [[ "$(cat "$dest/.stamp" 2>/dev/null)" != "$stamp" ]]; then
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
fi

mkdir -p "$(dirname "$link")"
if [[ "$(readlink "$link" 2>/dev/null)" != "$dest" ]]; then
  rm -rf "$link"
  ln -s "$dest" "$link"
fi
echo "$link"
