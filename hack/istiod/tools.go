//go:build tools

// Package istiod pins the istiod (pilot-discovery) that the real-istiod tests
// run. hack/istiod.sh builds it from this module, once, and caches it.
package istiod

import _ "istio.io/istio/pilot/cmd/pilot-discovery"
