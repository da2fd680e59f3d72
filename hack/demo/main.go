// Command demo tells the operator's story on a local control plane built from
// the envtest binaries: no cluster, no Docker. `make demo` runs it;
// DEMO_KEEP=1 keeps everything running for exploration until Ctrl-C. With
// ISTIOD_BINARY set (make demo sets it when istiod is cached, or builds it with
// DEMO_ISTIOD=1) a real istiod runs too, and the demo shows its own view: the
// effective mesh config and what a sidecar receives over xDS.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/meshsettings/meshsettings-operator/test/harness/istiod"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

const (
	sample    = "config/samples/mesh_v1alpha1_meshsettings_full.yaml"
	msName    = "meshsettings-full"
	namespace = "istio-system"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "\ndemo failed: %v\n", err)
		os.Exit(1)
	}
}

var stepNo int

func step(format string, args ...any) {
	stepNo++
	fmt.Printf("\n==> [%d] "+format+"\n", append([]any{stepNo}, args...)...)
}

type failure struct {
	step string
	err  error
}

func (f failure) Error() string { return fmt.Sprintf("step %q: %v", f.step, f.err) }

func run(ctx context.Context) error {
	start := time.Now()
	root, err := utils.ProjectRoot()
	if err != nil {
		return err
	}

	step("starting a local kube-apiserver and etcd (envtest binaries) and installing the MeshSettings CRD")
	cp, err := utils.StartControlPlane(root)
	if err != nil {
		return failure{"start control plane", err}
	}
	defer func() { _ = cp.Stop() }()
	k := &kubectl{cp: cp}

	// The recommended topology (docs/helm.md): Helm 4 with its defaults
	// (server-side apply) installs istiod and renders no mesh ConfigMap; the
	// MeshSettings owns it (configMapOwnership: Own).
	step("installing Istio's real istio-discovery chart with Helm 4 (server-side apply; revision canary, " + utils.IstioValuesFile +
		", configMap=false): Deployment istiod-canary and no mesh ConfigMap, the operator will own it; and the app namespaces")
	if err := cp.InstallIstio(root, "--set", "configMap=false"); err != nil {
		return failure{"install Istio", err}
	}
	k.show("get", "deploy,cm", "-n", namespace)
	if k.err != nil {
		return failure{"install Istio", k.err}
	}

	var real *istiod.Istiod
	if bin := os.Getenv("ISTIOD_BINARY"); bin != "" {
		step("starting the real istiod (pilot-discovery %s) for revision canary, as a local process", bin)
		real, err = istiod.Start(ctx, istiod.Options{Binary: bin, Kubeconfig: cp.Kubeconfig, Namespace: namespace, Revision: "canary"})
		if err != nil {
			return failure{"start istiod", err}
		}
		defer func() { _ = real.Stop() }()
		fmt.Printf("istiod ready in %s (xDS on %s)\n", real.ReadyAfter.Round(time.Millisecond), real.GRPCAddr)
		// A service for the sidecar's routes, in a namespace the sample's discoverySelectors select.
		k.show("label", "ns", "bookinfo", "istio-discovery=enabled")
		k.show("create", "service", "clusterip", "reviews", "-n", "bookinfo", "--tcp=9080:9080")
		if k.err != nil {
			return failure{"start istiod", k.err}
		}
	}

	step("building the operator from main.go and starting it as its own process")
	dir, err := os.MkdirTemp("", "meshsettings-demo-")
	if err != nil {
		return err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	bin := filepath.Join(dir, "meshsettings-operator")
	if err := utils.BuildOperator(root, bin); err != nil {
		return failure{"build operator", err}
	}
	op, err := cp.StartOperator(bin, filepath.Join(dir, "operator.log"),
		"--control-plane-namespace="+namespace, "--health-probe-bind-address=127.0.0.1:0", "--zap-log-level=info")
	if err != nil {
		return failure{"start operator", err}
	}
	defer op.Stop()
	fmt.Printf("operator pid %d, log %s\n", op.Pid(), op.Log)

	step("applying the full sample (%s) with configMapOwnership: Own, and waiting for Ready", sample)
	owned, err := ownSample(filepath.Join(root, sample), filepath.Join(dir, "meshsettings-own.yaml"))
	if err != nil {
		return failure{"apply sample", err}
	}
	k.show("apply", "-f", owned)
	k.show("wait", "--for=condition=Ready", "mset/"+msName, "-n", namespace, "--timeout=60s")
	if k.err != nil {
		return failure{"apply sample and wait", fmt.Errorf("%w\noperator log:\n%s", k.err, tail(op.Logs(), 30))}
	}
	k.show("get", "mset", "-n", namespace, "-o", "wide")

	step("the mesh document in ConfigMap istio-canary, created by the operator: Istio's baseline for revision canary (what the chart would render) plus the spec")
	k.show("get", "cm", "istio-canary", "-n", namespace, "-o", "jsonpath={.data.mesh}")

	step("istiod-canary's environment (Helm's entries in place, the operator's sorted by name)")
	k.show("get", "deploy", "istiod-canary", "-n", namespace, "-o",
		`jsonpath={range .spec.template.spec.containers[?(@.name=="discovery")].env[*]}{.name}={.value}{.valueFrom}{"\n"}{end}`)

	if err := istiodView(ctx, root, real, "REGISTRY_ONLY"); err != nil {
		return failure{"istiod's view", err}
	}

	step("namespace labels")
	k.show("get", "ns", "-L", "istio.io/rev,istio-injection,istio.io/dataplane-mode,istio.io/use-waypoint,istio.io/use-waypoint-namespace")

	step("status: conditions, ignored settings (istiod 1.28 no longer reads some feature flags) and events")
	k.show("describe", "mset", msName, "-n", namespace)
	if k.err != nil {
		return failure{"show results", k.err}
	}

	step("an update: outboundTrafficPolicy REGISTRY_ONLY -> ALLOW_ANY, tracing removed")
	k.show("patch", "mset", msName, "-n", namespace, "--type=json", "-p",
		`[{"op":"replace","path":"/spec/outboundTrafficPolicy/mode","value":"ALLOW_ANY"},{"op":"remove","path":"/spec/tracing"}]`)
	k.show("wait", "--for=jsonpath={.status.observedGeneration}=2", "mset/"+msName, "-n", namespace, "--timeout=60s")
	k.show("wait", "--for=condition=Ready", "mset/"+msName, "-n", namespace, "--timeout=60s")
	k.show("get", "cm", "istio-canary", "-n", namespace, "-o", "jsonpath={.data.mesh}")
	if k.err != nil {
		return failure{"update", k.err}
	}
	if err := istiodView(ctx, root, real, "ALLOW_ANY"); err != nil {
		return failure{"istiod's view after the update", err}
	}

	if os.Getenv("DEMO_KEEP") == "1" {
		step("kept running (DEMO_KEEP=1): explore with kubectl, Ctrl-C stops everything")
		fmt.Printf("export KUBECONFIG=%s\n", cp.Kubeconfig)
		fmt.Printf("alias kubectl=%s   # kubectl v1.36 built with the control plane (any recent kubectl works)\n", cp.KubectlBin)
		fmt.Printf("kubectl get mset -n %s; kubectl describe mset %s -n %s\n", namespace, msName, namespace)
		<-ctx.Done()
		fmt.Println("\nstopping the operator and the control plane")
		return nil
	}

	step("deleting the MeshSettings: the ConfigMap stays with exactly the baseline; the operator's env entries and labels go")
	k.show("delete", "mset", msName, "-n", namespace, "--timeout=60s")
	k.show("get", "cm", "istio-canary", "-n", namespace, "-o", "jsonpath={.data.mesh}")
	k.show("get", "deploy", "istiod-canary", "-n", namespace, "-o",
		`jsonpath={range .spec.template.spec.containers[?(@.name=="discovery")].env[*]}{.name}={.value}{.valueFrom}{"\n"}{end}`)
	k.show("get", "ns", "-L", "istio.io/rev,istio-injection,istio.io/dataplane-mode")
	if k.err != nil {
		return failure{"delete", k.err}
	}
	if op.Exited() {
		return failure{"operator", fmt.Errorf("the operator exited:\n%s", tail(op.Logs(), 30))}
	}
	step("done in %s", time.Since(start).Round(time.Second))
	return nil
}

// ownSample writes the sample with configMapOwnership Own to out (the sample
// itself shows Merge, the compatibility topology beside a chart that renders
// the ConfigMap).
func ownSample(sample, out string) (string, error) {
	b, err := os.ReadFile(sample)
	if err != nil {
		return "", err
	}
	const merge = "configMapOwnership: Merge"
	if !strings.Contains(string(b), merge) {
		return "", fmt.Errorf("%s does not set %q", sample, merge)
	}
	return out, os.WriteFile(out, []byte(strings.Replace(string(b), merge, "configMapOwnership: Own", 1)), 0o600)
}

// kubectl prints each command and its output, and stops at the first error.
type kubectl struct {
	cp  *utils.ControlPlane
	err error
}

// istiodView shows what the real istiod runs once it has the mode: its
// effective outbound mode and retry policy, and what a sidecar in bookinfo
// receives over xDS (test/istiod's probe, its own module: go-control-plane
// stays out of the operator's go.mod). Without istiod it says how to get it.
func istiodView(ctx context.Context, root string, real *istiod.Istiod, mode string) error {
	if real == nil {
		if mode == "REGISTRY_ONLY" {
			step("istiod's own view: skipped (no cached istiod; DEMO_ISTIOD=1 make demo builds it once, in minutes)")
		}
		return nil
	}
	step("istiod's own view: the mesh config it runs (/debug/mesh) and what a sidecar in bookinfo receives over xDS")
	var eff map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if eff, err = real.EffectiveMesh(ctx); err != nil {
			return err
		}
		if otp, _ := eff["outboundTrafficPolicy"].(map[string]any); otp["mode"] == mode {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("istiod does not run outbound mode %s: %v", mode, eff["outboundTrafficPolicy"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("istiod /debug/mesh: outboundTrafficPolicy %s, defaultHttpRetryPolicy %s\n",
		compact(eff["outboundTrafficPolicy"]), compact(eff["defaultHttpRetryPolicy"]))
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/xdsprobe", "-addr", real.GRPCAddr, "-namespace", "bookinfo",
		"-route", "9080", "-vhost", "reviews.bookinfo.svc.cluster.local:9080",
		"-want-catchall", map[string]string{"REGISTRY_ONLY": "BlackHoleCluster", "ALLOW_ANY": "PassthroughCluster"}[mode])
	cmd.Dir = filepath.Join(root, "test", "istiod")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	fmt.Println("$ (cd test/istiod && go run ./cmd/xdsprobe ...)")
	return cmd.Run()
}

// compact is v as JSON without the null fields EffectiveMesh puts back.
func compact(v any) string {
	m, ok := v.(map[string]any)
	if !ok {
		b, _ := json.Marshal(v)
		return string(b)
	}
	out := map[string]any{}
	for k, x := range m {
		if x != nil {
			out[k] = x
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func (k *kubectl) show(args ...string) {
	if k.err != nil {
		return
	}
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	out, err := k.cp.Kubectl(args...)
	fmt.Print(out)
	if out != "" && !strings.HasSuffix(out, "\n") {
		fmt.Println()
	}
	k.err = err
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
