// Package validation checks the MeshSettings admission rules (OpenAPI schema
// and CEL) against a real API server: the samples in config/samples are
// accepted, every manifest in test/testdata/invalid is refused with the
// message it names, and each CEL rule has a table of accepted and rejected
// cases.
package validation

import (
	"context"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/test/harness"
)

const (
	crdFile    = "../../config/crd/bases/mesh.meshsettings.io_meshsettings.yaml"
	samplesDir = "../../config/samples"
	invalidDir = "../testdata/invalid"
)

var (
	testEnv   *harness.Env
	ctx       context.Context
	k8sClient client.Client
)

func TestValidation(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "MeshSettings Validation Suite")
}

// No manager runs: these specs are about what the API server admits.
var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	ctx, k8sClient = testEnv.Ctx, testEnv.Client
})

// newNamespace creates a namespace with a generated name and returns it.
func newNamespace(prefix string) string {
	GinkgoHelper()
	return testEnv.Namespace(prefix, nil)
}
