package helm

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/meshsettings/meshsettings-operator/test/utils"
)

// helmCLI is one real Helm binary and the flags its topology passes to every
// write (install, upgrade, rollback).
type helmCLI struct {
	Name       string
	Bin        string
	Home       string // HELM_{CONFIG,CACHE,DATA}_HOME, so no user setting leaks in
	Kubeconfig string
	Write      []string
}

// run runs helm with args against namespace ns and returns its combined
// output and error (an *exec.ExitError for a non-zero exit).
func (h helmCLI) run(ns string, args ...string) (string, error) {
	args = append(args, "--kubeconfig", h.Kubeconfig)
	if ns != "" {
		args = append(args, "--namespace", ns)
	}
	cmd := exec.Command(h.Bin, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(h.Home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.Home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.Home, "data"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// write runs a writing command (install, upgrade, rollback) with the
// topology's flags.
func (h helmCLI) write(ns string, args ...string) (string, error) {
	return h.run(ns, append(args, h.Write...)...)
}

func (h helmCLI) version() string {
	GinkgoHelper()
	out, err := h.run("", "version", "--template", "{{.Version}}")
	Expect(err).NotTo(HaveOccurred(), out)
	return strings.TrimSpace(out)
}

// exitCode is 0 for a nil error, the process's exit code otherwise.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// helmBinary is HELM<major>_BINARY (`make test` sets it), or else what
// hack/helm.sh provides (built once, cached outside the clone).
func helmBinary(root, major string) string {
	GinkgoHelper()
	bin, err := utils.HelmBinary(root, major)
	Expect(err).NotTo(HaveOccurred())
	return bin
}

// istioChart is one of Istio's charts in the istio.io/istio module that
// test/oracle pins.
func istioChart(root, rel string) string {
	GinkgoHelper()
	dir, err := utils.IstioChart(root, rel)
	Expect(err).NotTo(HaveOccurred())
	return dir
}

// valuesFile writes Helm values (YAML) to a file and returns its path.
func valuesFile(yaml string) string {
	GinkgoHelper()
	f := filepath.Join(GinkgoT().TempDir(), "values.yaml")
	Expect(os.WriteFile(f, []byte(yaml), 0o600)).To(Succeed())
	return f
}
