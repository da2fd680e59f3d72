// Package e2e drives the built operator binary against a real kube-apiserver
// only through kubectl, as a user would.
package e2e

import (
	"os"
	"path/filepath"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/meshsettings/meshsettings-operator/test/harness"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

var (
	root    string
	cp      *utils.ControlPlane
	binary  string
	workDir string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "e2e suite")
}

var _ = BeforeSuite(func() {
	env := harness.Start()
	root, cp = env.Root, env.ControlPlane

	By("building the operator binary from main.go")
	workDir = GinkgoT().TempDir()
	binary = filepath.Join(workDir, "meshsettings-operator")
	Expect(utils.BuildOperator(root, binary)).To(Succeed())

	By("installing Istio's real istio-discovery chart (revision canary) with Helm, client-side: Helm owns the mesh ConfigMap")
	Expect(cp.InstallIstio(root, "--server-side=false")).To(Succeed())
})

// startOperator runs one replica; its log file is kept for failure reports.
func startOperator(name string, args ...string) *utils.Operator {
	GinkgoHelper()
	base := []string{"--control-plane-namespace=istio-system", "--health-probe-bind-address=127.0.0.1:0"}
	op, err := cp.StartOperator(binary, filepath.Join(workDir, name+".log"), append(base, args...)...)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() {
		op.Stop()
		if CurrentSpecReport().Failed() {
			b, _ := os.ReadFile(op.Log)
			AddReportEntry(name+" log", string(b))
		}
	})
	return op
}
