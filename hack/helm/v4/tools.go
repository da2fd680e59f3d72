//go:build tools

// Package helm4 pins the Helm 4 CLI that the Helm tests (test/helm) run.
// hack/helm.sh builds it from this module, once, and caches it.
package helm4

import _ "helm.sh/helm/v4/cmd/helm"
