// Package policies installs config/default (RBAC, ValidatingAdmissionPolicies)
// on a real API server and checks what the operator's ServiceAccount may do:
// MeshSettings outside the watched namespace are refused, on namespaces it
// may change only the Istio labels and its owner annotation, and it may
// patch only the ConfigMap and istiod Deployment the install names.
package policies

import (
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/meshsettings/meshsettings-operator/test/harness"
)

// operatorUser is the ServiceAccount config/default runs the operator as.
const operatorUser = "system:serviceaccount:meshsettings-system:meshsettings-controller-manager"

var (
	testEnv *harness.Env
	// asOperator acts as the operator's ServiceAccount (impersonation).
	asOperator client.Client
)

func TestPolicies(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "RBAC and admission policies suite")
}

var _ = BeforeSuite(func() {
	testEnv = harness.Start()
	for _, ns := range []string{"meshsettings-system", "istio-system"} {
		Expect(testEnv.Client.Create(testEnv.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	}
	By("installing config/default as `make deploy` does")
	manifests, err := testEnv.Kubectl("kustomize", filepath.Join(testEnv.Root, "config", "default"))
	Expect(err).NotTo(HaveOccurred(), manifests)
	// Forced: the harness installed the CRD under another field manager.
	out, err := testEnv.KubectlIn(manifests, "apply", "--server-side", "--force-conflicts", "-f", "-")
	Expect(err).NotTo(HaveOccurred(), out)

	cfg := rest.CopyConfig(testEnv.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: operatorUser,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:meshsettings-system", "system:authenticated"},
	}
	asOperator, err = client.New(cfg, client.Options{Scheme: testEnv.Scheme})
	Expect(err).NotTo(HaveOccurred())
})
