// Command bench measures the operator binary against a local kube-apiserver
// and etcd (the envtest binaries): convergence latency against the floor of
// one raw server-side apply, namespace scale with the operator's own write
// requests counted, zero writes at steady state after a restart, and the
// operator's peak memory with thousands of unrelated objects. It prints a
// table of metric, value, target and result. `make bench` runs it; method
// and figures are in BENCHMARKS.md.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

const (
	istioNS    = "istio-system"
	meshCM     = "istio-canary"
	istiod     = "istiod-canary"
	container  = "discovery"
	probeNS    = "bookinfo" // the namespace whose rule's data plane alternates
	floorNS    = "bench-floor"
	floorCM    = "floor"
	controller = "meshsettings"
)

type config struct {
	changes, warmup int
	pop             population
	workers         int
	steadyMin       time.Duration
	renderPkgs      string
	source          string
	operatorEnv     string
	strict          bool
	keepLogs        bool
	strip           bool
	pprof           bool
	crdCost         bool
}

// row is one line of the result table.
type row struct{ metric, value, target, result string }

type bench struct {
	cfg     config
	root    string
	cp      *utils.ControlPlane
	binary  string
	workDir string
	c       client.Client
	w       *watcher
	ops     []*operator
	rows    []row
	notes   []string
	missed  int
	peakRSS int64
	// stopCache ends the harness's watches before the control plane stops.
	stopCache context.CancelFunc
}

func main() { os.Exit(benchMain()) }

// benchMain is main with an exit code, so its deferred stop runs.
func benchMain() int {
	var cfg config
	flag.IntVar(&cfg.changes, "changes", 100, "measured MeshSettings changes per latency run")
	flag.IntVar(&cfg.warmup, "warmup", 5, "unmeasured changes before each latency run")
	flag.IntVar(&cfg.pop.namespaces, "namespaces", 5000, "namespaces of the scale population")
	flag.IntVar(&cfg.pop.selected, "selected", 1000, "of which the selector rule picks")
	flag.IntVar(&cfg.pop.configMaps, "configmaps", 5000, "unrelated ConfigMaps in the population's namespaces")
	flag.IntVar(&cfg.pop.deployments, "deployments", 500, "unrelated Deployments in the population's namespaces")
	flag.IntVar(&cfg.workers, "workers", 8, "concurrent clients creating the population")
	flag.DurationVar(&cfg.steadyMin, "steady-min", 15*time.Second, "minimum time a restarted operator runs before its writes are read")
	flag.StringVar(&cfg.renderPkgs, "render-bench", "", "space-separated packages whose Go benchmarks are run first and reported (empty: none)")
	flag.StringVar(&cfg.source, "source", "", "build the operator from this checkout instead of the project root (to measure a candidate change)")
	// As the deploy manifests run it: GOGC=50, GOMEMLIMIT from the 128Mi memory limit.
	flag.StringVar(&cfg.operatorEnv, "operator-env", "GOGC=50,GOMEMLIMIT=128MiB",
		"comma-separated KEY=VALUE environment of the operator process (default: as the deploy manifests run it)")
	flag.BoolVar(&cfg.crdCost, "crd-cost", false,
		"only measure what a MeshSettings write costs against a ConfigMap write (shipped CRD, without CEL rules, without schema) and exit")
	flag.BoolVar(&cfg.strict, "strict", false, "exit 1 when a target is missed (measurement errors always exit 1)")
	flag.BoolVar(&cfg.keepLogs, "keep-logs", false, "keep the operator logs and binary (printed path) after the run")
	flag.BoolVar(&cfg.pprof, "pprof", false, "run each operator with --pprof-bind-address on a free localhost port (printed)")
	flag.BoolVar(&cfg.strip, "strip", true, "build with -ldflags '-s -w' as the Dockerfile does; false keeps the symbols for perf")
	flag.Parse()

	// The harness's own client-go and controller-runtime logs are not wanted.
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.crdCost {
		root, err := utils.ProjectRoot()
		if err == nil {
			err = crdCost(ctx, root, 280)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "crd-cost: %v\n", err)
			return 1
		}
		return 0
	}
	b := &bench{cfg: cfg}
	start := time.Now()
	err := b.run(ctx)
	b.cleanup()
	b.print()
	fmt.Printf("\nbench finished in %s\n", time.Since(start).Round(time.Second))
	if err != nil {
		fmt.Fprintf(os.Stderr, "\nbench failed: %v\n", err)
		return 1
	}
	if b.missed > 0 {
		fmt.Printf("\n%d target(s) missed (see BENCHMARKS.md)\n", b.missed)
		if cfg.strict {
			return 1
		}
	}
	return 0
}

func logf(format string, args ...any) {
	fmt.Printf("%s  "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func (b *bench) add(metric, value, target string, pass *bool) {
	result := "info"
	if pass != nil {
		result = "PASS"
		if !*pass {
			result = "FAIL"
			b.missed++
		}
	}
	b.rows = append(b.rows, row{metric, value, target, result})
}

func ptrBool(v bool) *bool { return &v }

func (b *bench) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, line)
	logf("%s", line)
}

func (b *bench) print() {
	if len(b.notes) > 0 {
		fmt.Println("\nBreakdown:")
		for _, n := range b.notes {
			fmt.Println("  " + n)
		}
	}
	if len(b.rows) == 0 {
		return
	}
	fmt.Println()
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, " metric\t value\t target\t result")
	fmt.Fprintln(tw, " ------\t -----\t ------\t ------")
	for _, r := range b.rows {
		fmt.Fprintf(tw, " %s\t %s\t %s\t %s\n", r.metric, r.value, r.target, r.result)
	}
	_ = tw.Flush()
}

func (b *bench) cleanup() {
	for _, op := range b.ops {
		op.Stop()
	}
	if b.stopCache != nil {
		b.stopCache()
	}
	if b.cp != nil {
		if err := b.cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the control plane: %v\n", err)
		}
	}
	if b.workDir != "" {
		if b.cfg.keepLogs {
			fmt.Printf("\noperator logs kept in %s\n", b.workDir)
		} else {
			_ = os.RemoveAll(b.workDir)
		}
	}
}

func (b *bench) run(ctx context.Context) error {
	var err error
	if b.root, err = utils.ProjectRoot(); err != nil {
		return err
	}
	b.machine()

	if b.cfg.renderPkgs != "" {
		if err := b.renderBench(ctx); err != nil {
			return err
		}
	}

	if b.cfg.operatorEnv != "" {
		for _, kv := range strings.Split(b.cfg.operatorEnv, ",") {
			if _, _, ok := strings.Cut(kv, "="); !ok {
				return fmt.Errorf("-operator-env: %q is not KEY=VALUE", kv)
			}
		}
		b.note("operator environment: %s", b.cfg.operatorEnv)
	}

	logf("starting kube-apiserver and etcd")
	if b.cp, err = utils.StartControlPlane(b.root); err != nil {
		return err
	}
	if dc, err := discovery.NewDiscoveryClientForConfig(b.cp.Config); err == nil {
		if v, err := dc.ServerVersion(); err == nil {
			etcd := "etcd ?"
			if out, err := exec.Command(filepath.Join(utils.AssetsDir(b.root), "etcd"), "--version").Output(); err == nil {
				etcd = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
			}
			b.note("kube-apiserver %s, %s (envtest binaries in %s)", v.GitVersion, etcd, utils.AssetsDir(b.root))
		}
	}
	if b.workDir, err = os.MkdirTemp("", "meshsettings-bench-"); err != nil {
		return err
	}
	b.binary = filepath.Join(b.workDir, "meshsettings-operator")
	src := b.root
	if b.cfg.source != "" {
		src = b.cfg.source
	}
	logf("building the operator binary from %s", src)
	ldflags := "-s -w"
	if !b.cfg.strip {
		ldflags = ""
	}
	if err := buildOperator(src, b.binary, ldflags); err != nil {
		return err
	}
	if fi, err := os.Stat(b.binary); err == nil {
		b.note("operator binary built from %s with CGO_ENABLED=0 -trimpath -ldflags '%s' (the Dockerfile's flags when stripped): %.1f MiB",
			src, ldflags, float64(fi.Size())/(1<<20))
	}
	if err := b.cp.InstallIstio(b.root, "--server-side=false"); err != nil {
		return fmt.Errorf("installing Istio's chart: %w", err)
	}
	if err := b.clients(ctx); err != nil {
		return err
	}
	if err := b.floorObjects(ctx); err != nil {
		return err
	}

	if err := b.phaseLatencySmall(ctx); err != nil {
		return fmt.Errorf("latency (fixture cluster): %w", err)
	}
	op, err := b.phaseScale(ctx)
	if err != nil {
		return fmt.Errorf("namespace scale: %w", err)
	}
	if op, err = b.phaseSteady(ctx, op); err != nil {
		return fmt.Errorf("steady state: %w", err)
	}
	if err := b.phaseLatencyScale(ctx, op); err != nil {
		return fmt.Errorf("latency (%d namespaces): %w", b.cfg.pop.namespaces, err)
	}
	b.note("at the end: %s", loadavg())
	return nil
}

func (b *bench) machine() {
	mem := "?"
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	cpu := "?"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(l[strings.IndexByte(l, ':')+1:])
				break
			}
		}
	}
	b.note("machine: %d CPUs (%s), %s memory, %s %s/%s; %s", runtime.NumCPU(), cpu, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH, loadavg())
}

// loadavg tells whether something else competed for the CPUs.
func loadavg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "load average unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "load average unknown"
	}
	return fmt.Sprintf("load average %s %s %s", f[0], f[1], f[2])
}

// clients builds the harness's client (no client-side rate limit) and its
// watcher: a cache of its own over the targets, the namespaces and the
// MeshSettings, in this process.
func (b *bench) clients(ctx context.Context) error {
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg := *b.cp.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	var err error
	if b.c, err = client.New(&cfg, client.Options{Scheme: scheme}); err != nil {
		return err
	}
	c, err := cache.New(&cfg, cache.Options{
		Scheme: scheme,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.ConfigMap{}:  {Namespaces: map[string]cache.Config{istioNS: {}, floorNS: {}}},
			&appsv1.Deployment{}: {Namespaces: map[string]cache.Config{istioNS: {}, floorNS: {}}},
		},
	})
	if err != nil {
		return err
	}
	if b.w, err = newWatcher(ctx, c); err != nil {
		return err
	}
	cacheCtx, cancel := context.WithCancel(ctx)
	b.stopCache = cancel
	go func() { _ = c.Start(cacheCtx) }()
	if !c.WaitForCacheSync(ctx) {
		return errors.New("the harness's cache did not sync")
	}
	return nil
}

// floorObjects creates the objects of the floor measurements in a namespace
// the operator does not watch: a ConfigMap (by the first apply) and a copy of
// the istiod Deployment Istio's chart rendered, applied by kubectl.
func (b *bench) floorObjects(ctx context.Context) error {
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: floorNS}}); err != nil {
		return err
	}
	raw, err := b.cp.Kubectl("get", "deployment", istiod, "-n", istioNS, "-o", "yaml")
	if err != nil {
		return fmt.Errorf("%w: %s", err, raw)
	}
	obj := map[string]any{}
	if err := yaml.Unmarshal([]byte(raw), &obj); err != nil {
		return err
	}
	// A new object of the same shape: no server-set metadata, no status.
	md, _ := obj["metadata"].(map[string]any)
	obj["metadata"] = map[string]any{"name": md["name"], "namespace": floorNS, "labels": md["labels"]}
	delete(obj, "status")
	out, err := yaml.Marshal(obj)
	if err != nil {
		return err
	}
	if res, err := b.cp.KubectlIn(string(out), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("%w: %s", err, res)
	}
	return nil
}

// buildOperator builds main.go the way the Dockerfile does, so the binary
// measured is the one that ships.
func buildOperator(src, out, ldflags string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", ldflags, "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build in %s: %w: %s", src, err, b)
	}
	return nil
}

// operator is one run of the operator binary, with its metrics endpoint.
type operator struct {
	*utils.Operator
	name       string
	metricsURL string
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// startOperator runs the binary as users do, scoped to istio-system, with
// plain-HTTP metrics on a local port, and returns once its controller has
// started its workers (its caches are synced).
func (b *bench) startOperator(ctx context.Context, name string) (*operator, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// The operator inherits the harness's environment (test/utils): set
	// -operator-env only while it starts, so kube-apiserver, etcd and
	// kubectl never see it.
	restore, err := setEnv(b.cfg.operatorEnv)
	if err != nil {
		return nil, err
	}
	args := []string{"--control-plane-namespace=" + istioNS,
		"--health-probe-bind-address=127.0.0.1:0",
		"--metrics-bind-address=" + addr, "--metrics-secure=false"}
	if b.cfg.pprof {
		pp, err := freePort()
		if err != nil {
			restore()
			return nil, err
		}
		args = append(args, fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pp))
		logf("operator %s: pprof at http://127.0.0.1:%d/debug/pprof/", name, pp)
	}
	op, err := b.cp.StartOperator(b.binary, filepath.Join(b.workDir, name+".log"), args...)
	restore()
	if err != nil {
		return nil, err
	}
	o := &operator{Operator: op, name: name, metricsURL: "http://" + addr + "/metrics"}
	b.ops = append(b.ops, o)
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(op.Logs(), "Starting workers") {
		if op.Exited() {
			return nil, fmt.Errorf("operator %s exited:\n%s", name, tail(op.Logs(), 20))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("operator %s did not start its workers in 90s:\n%s", name, tail(op.Logs(), 20))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		_, err := o.scrape(ctx)
		if err == nil {
			break
		}
		if op.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("operator %s metrics: %w", name, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	logf("operator %s running (pid %d)", name, op.Pid())
	return o, nil
}

// setEnv sets comma-separated KEY=VALUE pairs and returns what restores the
// previous environment.
func setEnv(pairs string) (func(), error) {
	var undo []func()
	restore := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	if pairs == "" {
		return restore, nil
	}
	for _, kv := range strings.Split(pairs, ",") {
		k, v, _ := strings.Cut(kv, "=")
		old, had := os.LookupEnv(k)
		if err := os.Setenv(k, v); err != nil {
			restore()
			return nil, err
		}
		undo = append(undo, func() {
			if had {
				_ = os.Setenv(k, old)
			} else {
				_ = os.Unsetenv(k)
			}
		})
	}
	return restore, nil
}

func (o *operator) scrape(ctx context.Context) (metrics, error) {
	if o.Exited() {
		return nil, fmt.Errorf("operator %s exited:\n%s", o.name, tail(o.Logs(), 20))
	}
	return scrape(ctx, o.metricsURL)
}

// waitIdle returns once the controller's queue is empty, no worker is busy
// and the reconcile counter has not moved for quiet.
func (o *operator) waitIdle(ctx context.Context, quiet, timeout time.Duration) (controllerState, error) {
	deadline := time.Now().Add(timeout)
	var last controllerState
	lastChange := time.Now()
	first := true
	for {
		m, err := o.scrape(ctx)
		if err != nil {
			return last, err
		}
		s := m.controller(controller)
		if first || s.reconciles != last.reconciles || s.depth != 0 || s.active != 0 {
			lastChange = time.Now()
			first = false
		}
		last = s
		if time.Since(lastChange) >= quiet {
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("operator %s not idle after %s (queue %v, busy workers %v)", o.name, timeout, s.depth, s.active)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (o *operator) memory() memory {
	m, _ := procMemory(o.Pid())
	return m
}

func (o *operator) cpu() time.Duration {
	d, _ := procCPU(o.Pid())
	return d
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// state is one MeshSettings spec of the latency runs: every change touches
// the mesh document (outbound mode), istiod's env (sampling) and a namespace
// (its rule's data plane).
type state struct {
	mode      meshv1alpha1.OutboundTrafficMode
	sampling  string
	dataplane meshv1alpha1.Dataplane
}

func stateAt(i int) state {
	s := state{mode: meshv1alpha1.OutboundAllowAny, sampling: strconv.Itoa(1 + i%99), dataplane: meshv1alpha1.DataplaneSidecar}
	if i%2 == 1 {
		s.mode, s.dataplane = meshv1alpha1.OutboundRegistryOnly, meshv1alpha1.DataplaneAmbient
	}
	return s
}

func (s state) rules() []meshv1alpha1.NamespaceRule {
	first := meshv1alpha1.NamespaceRule{Names: []string{probeNS}, Dataplane: s.dataplane}
	if s.dataplane == meshv1alpha1.DataplaneSidecar {
		first.SidecarLabel = meshv1alpha1.SidecarLabelRevision
	}
	return []meshv1alpha1.NamespaceRule{first, {
		Selector:     &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{selectedLabel: "true"}},
		Dataplane:    meshv1alpha1.DataplaneSidecar,
		SidecarLabel: meshv1alpha1.SidecarLabelRevision,
	}}
}

func meshSettings(name string, s state) *meshv1alpha1.MeshSettings {
	return &meshv1alpha1.MeshSettings{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: istioNS},
		Spec: meshv1alpha1.MeshSettingsSpec{
			Revision:              "canary",
			Target:                &meshv1alpha1.Target{ConfigMapName: meshCM, IstiodDeploymentName: istiod, IstiodContainerName: container},
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: s.mode},
			Tracing:               &meshv1alpha1.Tracing{SamplingPercentage: s.sampling},
			Namespaces:            s.rules(),
		},
	}
}

// changePatch is the merge patch a user's `kubectl apply` of the next spec amounts to.
func changePatch(s state) ([]byte, error) {
	return json.Marshal(map[string]any{"spec": map[string]any{
		"outboundTrafficPolicy": meshv1alpha1.OutboundTrafficPolicy{Mode: s.mode},
		"tracing":               map[string]any{"samplingPercentage": s.sampling},
		"namespaces":            s.rules(),
	}})
}

func meshMode(o client.Object) string {
	doc := map[string]any{}
	if err := yaml.Unmarshal([]byte(o.(*corev1.ConfigMap).Data["mesh"]), &doc); err != nil {
		return ""
	}
	otp, _ := doc["outboundTrafficPolicy"].(map[string]any)
	mode, _ := otp["mode"].(string)
	return mode
}

func envValue(o client.Object, name string) (string, bool) {
	for _, c := range o.(*appsv1.Deployment).Spec.Template.Spec.Containers {
		if c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name == name {
				return e.Value, true
			}
		}
	}
	return "", false
}

func hasDataplane(o client.Object, d meshv1alpha1.Dataplane) bool {
	l := o.GetLabels()
	switch d {
	case meshv1alpha1.DataplaneSidecar:
		_, ambient := l[render.LabelDataplaneMode]
		return l[render.LabelRevision] == "canary" && !ambient
	case meshv1alpha1.DataplaneAmbient:
		_, rev := l[render.LabelRevision]
		return l[render.LabelDataplaneMode] == render.DataplaneModeAmbient && !rev
	}
	return false
}

// armTargets arms one probe per target for state s.
func (b *bench) armTargets(s state) ([]*probe, []string) {
	cm := b.w.arm(kindConfigMap, istioNS, meshCM, func(o client.Object) bool { return meshMode(o) == string(s.mode) })
	dep := b.w.arm(kindDeployment, istioNS, istiod, func(o client.Object) bool {
		v, ok := envValue(o, "PILOT_TRACE_SAMPLING")
		return ok && v == s.sampling
	})
	ns := b.w.arm(kindNamespace, "", probeNS, func(o client.Object) bool { return hasDataplane(o, s.dataplane) })
	return []*probe{cm, dep, ns}, []string{"ConfigMap " + meshCM, "Deployment " + istiod, "Namespace " + probeNS}
}

// waitReady waits until the MeshSettings reports Ready for its generation.
func (b *bench) waitReady(ctx context.Context, name string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ms := &meshv1alpha1.MeshSettings{}
		err := b.w.cache.Get(ctx, types.NamespacedName{Namespace: istioNS, Name: name}, ms)
		if err == nil && ms.Status.ObservedGeneration == ms.Generation &&
			meta.IsStatusConditionTrue(ms.Status.Conditions, meshv1alpha1.ConditionReady) {
			return nil
		}
		if time.Now().After(deadline) {
			msg := "not found"
			if err == nil {
				c := meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionReady)
				msg = fmt.Sprintf("generation %d, observed %d, Ready %+v", ms.Generation, ms.Status.ObservedGeneration, c)
			}
			return fmt.Errorf("MeshSettings %s not Ready after %s: %s", name, timeout, msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type latencies struct {
	change, floorObserved, floorRTT []time.Duration
	// One raw SSA of an env entry of a copy of istiod's Deployment, apply->watch.
	deployFloor []time.Duration
	// Where a change's time goes, each from the start of the patch: its
	// round trip, the MeshSettings seen by the watch, then each target.
	patchRTT, specSeen, cmSeen, depSeen, nsSeen []time.Duration
}

// latencyRun changes the MeshSettings warmup+changes times, one change at a
// time from an idle operator. Before each change it takes the floor: one
// raw server-side apply of a ConfigMap, timed to the same watch.
func (b *bench) latencyRun(ctx context.Context, op *operator, name string, from int) (latencies, error) {
	var res latencies
	for i := from + 1; i <= from+b.cfg.warmup+b.cfg.changes; i++ {
		if _, err := op.waitIdle(ctx, 300*time.Millisecond, 60*time.Second); err != nil {
			return res, err
		}
		measured := i > from+b.cfg.warmup

		// The floor: one SSA of a ConfigMap the operator does not watch.
		v := fmt.Sprintf("%d", time.Now().UnixNano())
		fp := b.w.arm(kindConfigMap, floorNS, floorCM, func(o client.Object) bool { return o.(*corev1.ConfigMap).Data["v"] == v })
		t0 := time.Now()
		if err := b.c.Apply(ctx, corev1ac.ConfigMap(floorCM, floorNS).WithData(map[string]string{"v": v}),
			client.FieldOwner("bench-floor"), client.ForceOwnership); err != nil {
			return res, fmt.Errorf("floor apply: %w", err)
		}
		rtt := time.Since(t0)
		at, err := wait(ctx, 10*time.Second, []string{"floor ConfigMap"}, fp)
		if err != nil {
			return res, err
		}
		if measured {
			res.floorRTT = append(res.floorRTT, rtt)
			res.floorObserved = append(res.floorObserved, at.Sub(t0))
		}

		// The same for the Deployment write: an env entry of istiod's copy.
		dp := b.w.arm(kindDeployment, floorNS, istiod, func(o client.Object) bool {
			got, ok := envValue(o, "PILOT_TRACE_SAMPLING")
			return ok && got == v
		})
		t0 = time.Now()
		if err := b.c.Apply(ctx, appsv1ac.Deployment(istiod, floorNS).WithSpec(appsv1ac.DeploymentSpec().
			WithTemplate(corev1ac.PodTemplateSpec().WithSpec(corev1ac.PodSpec().WithContainers(
				corev1ac.Container().WithName(container).WithEnv(corev1ac.EnvVar().WithName("PILOT_TRACE_SAMPLING").WithValue(v)))))),
			client.FieldOwner("bench-floor"), client.ForceOwnership); err != nil {
			return res, fmt.Errorf("floor Deployment apply: %w", err)
		}
		if at, err = wait(ctx, 10*time.Second, []string{"floor Deployment"}, dp); err != nil {
			return res, err
		}
		if measured {
			res.deployFloor = append(res.deployFloor, at.Sub(t0))
		}

		// The change.
		s := stateAt(i)
		patch, err := changePatch(s)
		if err != nil {
			return res, err
		}
		probes, names := b.armTargets(s)
		seen := b.w.arm(kindMeshSettings, istioNS, name, func(o client.Object) bool {
			t := o.(*meshv1alpha1.MeshSettings).Spec.Tracing
			return t != nil && t.SamplingPercentage == s.sampling
		})
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: istioNS}}
		t0 = time.Now()
		if err := b.c.Patch(ctx, ms, client.RawPatch(types.MergePatchType, patch), client.FieldOwner("bench-user")); err != nil {
			return res, fmt.Errorf("change %d: %w", i, err)
		}
		patchRTT := time.Since(t0)
		_, err = wait(ctx, 30*time.Second, append(names, "MeshSettings "+name), append(probes, seen)...)
		if err != nil {
			return res, fmt.Errorf("change %d (%+v): %w\noperator log:\n%s", i, s, err, tail(op.Logs(), 10))
		}
		if measured {
			last := probes[0].at
			for _, p := range probes[1:] {
				if p.at.After(last) {
					last = p.at
				}
			}
			res.change = append(res.change, last.Sub(t0))
			res.patchRTT = append(res.patchRTT, patchRTT)
			res.specSeen = append(res.specSeen, seen.at.Sub(t0))
			res.cmSeen = append(res.cmSeen, probes[0].at.Sub(t0))
			res.depSeen = append(res.depSeen, probes[1].at.Sub(t0))
			res.nsSeen = append(res.nsSeen, probes[2].at.Sub(t0))
		}
	}
	return res, nil
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	// Nearest rank.
	i := int(float64(len(s))*p+0.999999) - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s) {
		i = len(s) - 1
	}
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// reportLatency adds the latency rows of one run, labeled with the number
// of namespaces it ran with.
func (b *bench) reportLatency(ctx context.Context, l latencies) error {
	var nsCount corev1.NamespaceList
	if err := b.w.cache.List(ctx, &nsCount); err != nil {
		return err
	}
	label := fmt.Sprintf(" (%d namespaces)", len(nsCount.Items))
	p50, p99 := percentile(l.change, 0.50), percentile(l.change, 0.99)
	floor, rtt := percentile(l.floorObserved, 0.50), percentile(l.floorRTT, 0.50)
	depFloor, seen := percentile(l.deployFloor, 0.50), percentile(l.specSeen, 0.50)
	ratio := float64(p50) / float64(floor)
	b.note("%s: %d changes: min %s p50 %s p90 %s p99 %s max %s; floor (ConfigMap SSA apply->watch) p50 %s p99 %s, "+
		"its request round trip p50 %s; istiod-copy Deployment SSA apply->watch p50 %s",
		label, len(l.change), ms(slices.Min(l.change)), ms(p50), ms(percentile(l.change, 0.9)), ms(p99), ms(slices.Max(l.change)),
		ms(floor), ms(percentile(l.floorObserved, 0.99)), ms(rtt), ms(depFloor))
	b.note("%s: p50 from the start of the patch: patch round trip %s, MeshSettings seen by a watch %s, ConfigMap %s, Deployment %s, Namespace %s",
		label, ms(percentile(l.patchRTT, 0.5)), ms(seen), ms(percentile(l.cmSeen, 0.5)),
		ms(percentile(l.depSeen, 0.5)), ms(percentile(l.nsSeen, 0.5)))
	b.add("floor: raw SSA of a ConfigMap, apply->watch p50"+label, fmt.Sprintf("%s (round trip %s)", ms(floor), ms(rtt)), "-", nil)
	b.add("floor: MeshSettings patch->watch + raw SSA of istiod's env p50"+label,
		fmt.Sprintf("%s (%.2fx floor)", ms(seen+depFloor), float64(seen+depFloor)/float64(floor)), "-", nil)
	b.add("convergence p50"+label, fmt.Sprintf("%s (%.2fx floor)", ms(p50), ratio), fmt.Sprintf("<= 3x floor (%s)", ms(3*floor)), ptrBool(ratio <= 3))
	b.add("convergence p99"+label, ms(p99), "<= 100 ms", ptrBool(p99 <= 100*time.Millisecond))
	return nil
}

func (b *bench) phaseLatencySmall(ctx context.Context) error {
	logf("== convergence latency on the fixture cluster")
	op, err := b.startOperator(ctx, "latency")
	if err != nil {
		return err
	}
	if err := b.c.Create(ctx, meshSettings("bench", stateAt(0))); err != nil {
		return err
	}
	if err := b.waitReady(ctx, "bench", 60*time.Second); err != nil {
		return fmt.Errorf("%w\noperator log:\n%s", err, tail(op.Logs(), 20))
	}
	l, err := b.latencyRun(ctx, op, "bench", 0)
	if err != nil {
		return err
	}
	if err := b.reportLatency(ctx, l); err != nil {
		return err
	}
	b.note("operator %s: %s, CPU %s", op.name, op.memory(), op.cpu().Round(time.Millisecond))

	// Remove it (the operator restores the targets) so the scale run starts clean.
	if err := b.c.Delete(ctx, &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "bench", Namespace: istioNS}}); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := b.c.Get(ctx, types.NamespacedName{Namespace: istioNS, Name: "bench"}, &meshv1alpha1.MeshSettings{})
		if apierrors.IsNotFound(err) {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("MeshSettings bench not deleted in 60s: %w", err)
			}
			return errors.New("MeshSettings bench not deleted in 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	op.Stop()
	return nil
}

// eventsFor counts the Events about one MeshSettings.
func (b *bench) eventsFor(ctx context.Context, name string) (int, error) {
	var list eventsv1.EventList
	if err := b.c.List(ctx, &list, client.InNamespace(istioNS)); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range list.Items {
		if e.Regarding.Kind == kindMeshSettings && e.Regarding.Name == name {
			n++
		}
	}
	return n, nil
}

func (b *bench) phaseScale(ctx context.Context) (*operator, error) {
	p := b.cfg.pop
	logf("== namespace scale: creating %d namespaces (%d selected), %d ConfigMaps, %d Deployments",
		p.namespaces, p.selected, p.configMaps, p.deployments)
	took, err := create(ctx, b.c, p.objects(), b.cfg.workers)
	if err != nil {
		return nil, err
	}
	b.note("population created in %s (%d objects, %d workers)", took.Round(time.Millisecond), p.namespaces+p.configMaps+p.deployments, b.cfg.workers)

	op, err := b.startOperator(ctx, "scale")
	if err != nil {
		return nil, err
	}
	if _, err := op.waitIdle(ctx, time.Second, 60*time.Second); err != nil {
		return nil, err
	}

	// What needs a change, from the harness's own view of the namespaces.
	name := "bench-scale"
	s := stateAt(0)
	var nsList corev1.NamespaceList
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := b.w.cache.List(ctx, &nsList); err != nil {
			return nil, err
		}
		if len(nsList.Items) >= p.namespaces || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	needing := 0
	for _, ns := range nsList.Items {
		if (ns.Name == probeNS || ns.Labels[selectedLabel] == "true") && !hasDataplane(&ns, meshv1alpha1.DataplaneSidecar) {
			needing++
		}
	}
	selected := p.selectedNames()

	before, err := op.scrape(ctx)
	if err != nil {
		return nil, err
	}
	eventsBefore, err := b.eventsFor(ctx, name)
	if err != nil {
		return nil, err
	}
	nsUpdates0 := b.w.namespaceMetaUpdates.Load()
	cm0, dep0 := b.w.updatesOf(kindConfigMap, meshCM), b.w.updatesOf(kindDeployment, istiod)
	cpu0 := op.cpu()

	set := b.w.armSet(selected, func(o client.Object) bool { return hasDataplane(o, meshv1alpha1.DataplaneSidecar) })
	defer b.w.disarmSet(set)
	t0 := time.Now()
	if err := b.c.Create(ctx, meshSettings(name, s)); err != nil {
		return nil, err
	}
	select {
	case <-set.done:
	case <-time.After(3 * time.Minute):
		return nil, fmt.Errorf("after 3m, %d of %d selected namespaces labeled\noperator log:\n%s", len(set.satisfied), len(selected), tail(op.Logs(), 20))
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	labeledIn := set.at.Sub(t0)
	if err := b.waitReady(ctx, name, 2*time.Minute); err != nil {
		return nil, err
	}
	readyIn := time.Since(t0)
	if _, err := op.waitIdle(ctx, 2*time.Second, 2*time.Minute); err != nil {
		return nil, err
	}
	after, err := op.scrape(ctx)
	if err != nil {
		return nil, err
	}
	eventsAfter, err := b.eventsFor(ctx, name)
	if err != nil {
		return nil, err
	}
	reqs := after.requests().minus(before.requests())
	nsWrites := int(b.w.namespaceMetaUpdates.Load() - nsUpdates0)
	cmWrites := int(b.w.updatesOf(kindConfigMap, meshCM) - cm0)
	depWrites := int(b.w.updatesOf(kindDeployment, istiod) - dep0)
	statusWrites := int(counter(&b.w.statusUpdates, istioNS+"/"+name).Load())
	finalizerWrites := int(counter(&b.w.finalizerUpdates, istioNS+"/"+name).Load())
	events := eventsAfter - eventsBefore
	reconciles := after.controller(controller).reconciles - before.controller(controller).reconciles

	// Every write of this phase is a server-side apply or merge patch (PATCH),
	// except Events (POST). A namespace, the ConfigMap and the Deployment each
	// need exactly one write.
	expectedPatch := needing + 1 + 1 + statusWrites + finalizerWrites
	patches := reqs.total("PATCH")
	ok := patches == expectedPatch && nsWrites == needing && cmWrites == 1 && depWrites == 1 &&
		reqs.total("POST") == events && reqs.total("PUT") == 0 && reqs.total("DELETE") == 0
	b.note("scale: %d of %d namespaces needed labels (%d selected by the selector + %s); "+
		"all %d selected labeled %s after creation, Ready after %s, %.0f reconciles, operator CPU %s",
		needing, len(nsList.Items), len(selected), probeNS, len(selected), labeledIn.Round(time.Millisecond), readyIn.Round(time.Millisecond),
		reconciles, (op.cpu() - cpu0).Round(time.Millisecond))
	b.note("scale: operator requests: %s", reqs)
	b.note("scale: PATCH %d = %d namespaces + 1 ConfigMap + 1 Deployment + %d status + %d finalizer (expected %d); "+
		"writes seen by the watch: %d namespaces, %d ConfigMap, %d Deployment; POST %d = %d Events",
		patches, needing, statusWrites, finalizerWrites, expectedPatch, nsWrites, cmWrites, depWrites, reqs.total("POST"), events)

	if extra := patches - expectedPatch; extra > 0 {
		b.note("scale: %d PATCH request(s) beyond the writes the watch saw: a write that changed nothing (no new resourceVersion), "+
			"typically planned from a cache that had not yet seen the operator's own previous write", extra)
	}
	b.add(fmt.Sprintf("%d selected of %d namespaces labeled after creation", len(selected), len(nsList.Items)),
		labeledIn.Round(time.Millisecond).String(), "<= 5s", ptrBool(labeledIn <= 5*time.Second))
	b.add("write requests during the scale run", fmt.Sprintf("%d (PATCH %d, POST %d Events, PUT %d, DELETE %d)",
		reqs.writes(), patches, reqs.total("POST"), reqs.total("PUT"), reqs.total("DELETE")),
		fmt.Sprintf("= %d ns + CM + Deploy + %d status + %d finalizer (+ Events)", needing, statusWrites, finalizerWrites), ptrBool(ok))
	return op, nil
}

func (b *bench) phaseSteady(ctx context.Context, prev *operator) (*operator, error) {
	logf("== steady state: restarting the operator on the converged cluster")
	mem := prev.memory()
	b.note("operator %s: %s, CPU %s", prev.name, mem, prev.cpu().Round(time.Millisecond))
	peak := mem.hwm
	prev.Stop()

	start := time.Now()
	op, err := b.startOperator(ctx, "steady")
	if err != nil {
		return nil, err
	}
	synced := time.Since(start)
	if rest := b.cfg.steadyMin - time.Since(start); rest > 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	st, err := op.waitIdle(ctx, 3*time.Second, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	m, err := op.scrape(ctx)
	if err != nil {
		return nil, err
	}
	reqs := m.requests()
	mem = op.memory()
	peak = max(peak, mem.hwm)
	b.note("steady: workers started %s after launch; after %s, %.0f reconciles, requests: %s; %s, CPU %s",
		synced.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), st.reconciles, reqs, mem, op.cpu().Round(time.Millisecond))
	b.add(fmt.Sprintf("write requests after a restart (%.0f reconciles, %s)", st.reconciles, time.Since(start).Round(time.Second)),
		fmt.Sprintf("%d", reqs.writes()), "0", ptrBool(reqs.writes() == 0 && st.reconciles > 0))
	b.peakRSS = peak
	return op, nil
}

func (b *bench) phaseLatencyScale(ctx context.Context, op *operator) error {
	logf("== convergence latency with %d namespaces", b.cfg.pop.namespaces)
	l, err := b.latencyRun(ctx, op, "bench-scale", 0)
	if err != nil {
		return err
	}
	if err := b.reportLatency(ctx, l); err != nil {
		return err
	}
	mem := op.memory()
	b.note("operator %s after the latency run: %s, CPU %s", op.name, mem, op.cpu().Round(time.Millisecond))
	peak := max(b.peakRSS, mem.hwm)
	b.add(fmt.Sprintf("peak RSS (%d ns, %d ConfigMaps, %d Deployments)", b.cfg.pop.namespaces, b.cfg.pop.configMaps, b.cfg.pop.deployments),
		mib(peak), "<= 64 MiB", ptrBool(peak <= 64<<20))
	return nil
}

// renderBench runs the Go benchmarks of the given packages (before the
// control plane starts, so nothing competes for the CPUs) and reports them.
func (b *bench) renderBench(ctx context.Context) error {
	pkgs := strings.Fields(b.cfg.renderPkgs)
	logf("== Go benchmarks of %s", strings.Join(pkgs, " "))
	args := append([]string{"test", "-run=^$", "-bench=.", "-benchmem"}, pkgs...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = b.root
	out, err := cmd.CombinedOutput()
	fmt.Print(string(out))
	if err != nil {
		return fmt.Errorf("go %s: %w", strings.Join(args, " "), err)
	}
	found := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		found = true
		var parts []string
		for i := 2; i+1 < len(f); i += 2 {
			parts = append(parts, f[i]+" "+f[i+1])
		}
		name := f[0]
		if j := strings.LastIndexByte(name, '-'); j > 0 {
			name = name[:j] // the GOMAXPROCS suffix
		}
		target, pass := "-", (*bool)(nil)
		if name == "BenchmarkRenderFolder1000" {
			// The target for `render -f DIR` over 1,000 MeshSettings.
			if ns, err := strconv.ParseFloat(f[2], 64); err == nil && f[3] == "ns/op" {
				ok := ns <= 3e9
				target, pass = "<= 3 s per folder", &ok
			}
		}
		b.add(name, strings.Join(parts, ", "), target, pass)
	}
	if !found {
		return fmt.Errorf("no benchmark ran in %s", strings.Join(pkgs, " "))
	}
	return nil
}
