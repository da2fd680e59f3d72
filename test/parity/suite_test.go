// Package parity checks that `render` is admission offline: every manifest
// of test/testdata/invalid and a set of valid specs get the same verdict,
// the same errors and the same first field path from the real API server
// (server-side dry run, strict field validation, as kubectl apply) and from
// `render`; specs only the controller refuses make `render` exit 1 with the
// Stalled message the running operator sets.
package parity

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/meshsettings/meshsettings-operator/controllers"
	"github.com/meshsettings/meshsettings-operator/test/harness"
)

var testEnv *harness.Env

func TestParity(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "render / API server parity suite")
}

var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	// The operator runs so that the controller-only verdicts are compared
	// with the Stalled condition it really writes.
	testEnv.RunManager(controllers.Setup, ctrl.Options{Cache: controllers.CacheOptions("")})
})
