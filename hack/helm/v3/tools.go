//go:build tools

// Package helm3 pins the Helm 3 CLI that the Helm tests (test/helm) run.
// hack/helm.sh builds it from this module, once, and caches it.
package helm3

import _ "helm.sh/helm/v3/cmd/helm"
