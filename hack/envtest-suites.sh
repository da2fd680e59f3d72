#!/usr/bin/env bash
# Prints the Test functions that start a Ginkgo suite (they call RunSpecs), as
# one alternation for `go test -skip`: in this repository every Ginkgo suite
# runs against envtest, so `make test-unit` skips exactly these.
set -euo pipefail
cd "$(dirname "$0")/.."
find . -name '*_test.go' -not -path './bin/*' -print0 |
  xargs -0 awk '/^func Test/ { name = $2; sub(/\(.*/, "", name) } /RunSpecs\(/ { print name }' |
  sort -u | paste -sd'|' -
