package helm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
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
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// helmBinary is HELM<major>_BINARY (`make test` sets it), or else what
// hack/helm.sh provides (built once, cached outside the clone).
func helmBinary(root, major string) string {
	GinkgoHelper()
	if bin := os.Getenv("HELM" + major + "_BINARY"); bin != "" {
		return bin
	}
	cmd := exec.Command(filepath.Join(root, "hack", "helm.sh"), major)
	cmd.Stderr = GinkgoWriter
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "hack/helm.sh %s", major)
	return strings.TrimSpace(string(out))
}

// istioChart returns the directory of one of Istio's charts (relative to
// manifests/charts) in the istio.io/istio module that test/oracle pins, as
// the Go module cache holds it: `go mod download` fetches it if needed.
func istioChart(root, rel string) string {
	GinkgoHelper()
	pin := istioPin(filepath.Join(root, "test", "oracle", "go.mod"))
	cmd := exec.Command("go", "mod", "download", "-json", "istio.io/istio@"+pin)
	cmd.Dir = filepath.Join(root, "test", "oracle")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	Expect(err).NotTo(HaveOccurred(), "go mod download istio.io/istio@%s: %s", pin, stderr.String())
	var mod struct{ Dir, Error string }
	Expect(json.Unmarshal(out, &mod)).To(Succeed())
	Expect(mod.Error).To(BeEmpty())
	dir := filepath.Join(mod.Dir, "manifests", "charts", rel)
	Expect(filepath.Join(dir, "Chart.yaml")).To(BeAnExistingFile())
	return dir
}

// istioPin reads the istio.io/istio version a go.mod requires.
func istioPin(gomod string) string {
	GinkgoHelper()
	data, err := os.ReadFile(gomod)
	Expect(err).NotTo(HaveOccurred())
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == "istio.io/istio" {
			return f[1]
		}
	}
	Fail(fmt.Sprintf("%s requires no istio.io/istio", gomod))
	return ""
}

// valuesFile writes Helm values (YAML) to a file and returns its path.
func valuesFile(yaml string) string {
	GinkgoHelper()
	f := filepath.Join(GinkgoT().TempDir(), "values.yaml")
	Expect(os.WriteFile(f, []byte(yaml), 0o600)).To(Succeed())
	return f
}
