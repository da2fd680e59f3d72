package utils

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// IstioChart returns the directory of one of Istio's charts (relative to
// manifests/charts, e.g. "istio-control/istio-discovery") in the
// istio.io/istio module that test/oracle pins, as the Go module cache holds
// it: `go mod download` fetches the module when needed. The chart is Istio's
// own, never a copy.
func IstioChart(root, rel string) (string, error) {
	gomod := filepath.Join(root, "test", "oracle", "go.mod")
	data, err := os.ReadFile(gomod)
	if err != nil {
		return "", err
	}
	pin := ""
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "require "))
		if len(f) >= 2 && f[0] == "istio.io/istio" {
			pin = f[1]
			break
		}
	}
	if pin == "" {
		return "", fmt.Errorf("%s requires no istio.io/istio", gomod)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "istio.io/istio@"+pin)
	cmd.Dir = filepath.Dir(gomod)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go mod download istio.io/istio@%s: %w: %s", pin, err, stderr.String())
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil {
		return "", err
	}
	if mod.Error != "" {
		return "", fmt.Errorf("go mod download istio.io/istio@%s: %s", pin, mod.Error)
	}
	dir := filepath.Join(mod.Dir, "manifests", "charts", rel)
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		return "", fmt.Errorf("no chart %s in istio.io/istio@%s: %w", rel, pin, err)
	}
	return dir, nil
}

// HelmBinary is HELM<major>_BINARY, or else the Helm CLI hack/helm.sh
// provides (built once from the Go module proxy, cached outside the clone).
func HelmBinary(root, major string) (string, error) {
	if bin := os.Getenv("HELM" + major + "_BINARY"); bin != "" {
		return bin, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "helm.sh"), major)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/helm.sh %s: %w", major, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// InstallIstiod installs Istio's real istio-discovery chart as release
// "istiod" (or "istiod-<revision>" when valuesFile sets one; name it in
// release) into namespace with the Helm 4 CLI and the given values file
// (relative to the repository root), without --wait: no kubelet runs.
// extra are more helm flags (e.g. "--server-side=false").
func (cp *ControlPlane) InstallIstiod(root, release, namespace, valuesFile string, extra ...string) error {
	chart, err := IstioChart(root, "istio-control/istio-discovery")
	if err != nil {
		return err
	}
	helm, err := HelmBinary(root, "4")
	if err != nil {
		return err
	}
	home := filepath.Join(cp.dir, "helm")
	args := append([]string{"install", release, chart, "--namespace", namespace, "--kubeconfig", cp.Kubeconfig,
		"-f", filepath.Join(root, valuesFile)}, extra...)
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// Istio beside which the e2e tests, the demo and the bench run: the
// namespaces of the full sample, and Istio's real istio-discovery chart for
// revision canary in istio-system, installed by Helm as release
// istiod-canary.
const (
	IstioNamespacesFile = "test/testdata/istio/namespaces.yaml"
	IstioValuesFile     = "test/testdata/istio/istiod-canary-values.yaml"
)

// InstallIstio creates the namespaces and installs the chart with the Helm 4
// CLI; helmFlags choose how Helm writes (e.g. "--server-side=false", the
// compatibility topology in which the chart's mesh ConfigMap is merged into).
func (cp *ControlPlane) InstallIstio(root string, helmFlags ...string) error {
	if out, err := cp.Kubectl("apply", "-f", filepath.Join(root, IstioNamespacesFile)); err != nil {
		return fmt.Errorf("%w: %s", err, out)
	}
	return cp.InstallIstiod(root, "istiod-canary", "istio-system", IstioValuesFile, helmFlags...)
}
