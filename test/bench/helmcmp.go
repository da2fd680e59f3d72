package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/cli"
	helmkube "helm.sh/helm/v4/pkg/kube"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

// The side-by-side comparison of issue 18: one mesh setting (the outbound
// mode) changed with `helm upgrade --reuse-values --set ...` through the Helm
// v4 SDK, against a MeshSettings patch. Each path has its own istiod release
// of Istio's real chart: the Helm path in its own namespace with
// configMap=true and no MeshSettings, the operator path in istio-system
// (where the operator runs) with configMap=false and a MeshSettings that
// owns the ConfigMap.
const (
	helmNS       = "helm-cmp"
	helmRevision = "helmcmp"
	helmCM       = "istio-" + helmRevision
	ownRevision  = "own"
	ownRelease   = "istiod-" + ownRevision
	ownCM        = "istio-" + ownRevision
	ownMS        = "own"
	istioTag     = "1.28.1"
)

// helmSDK is the Helm v4 SDK set up as the helm CLI sets itself up (its
// EnvSettings: kubeconfig, QPS and burst defaults), with every request
// counted.
type helmSDK struct {
	cfg   *action.Configuration
	log   *requestLog
	chart string
	ns    string
}

func newHelmSDK(kubeconfig, ns, chart string) (*helmSDK, error) {
	settings := cli.New()
	settings.KubeConfig = kubeconfig
	settings.SetNamespace(ns)
	getter := settings.RESTClientGetter()
	flags, ok := getter.(*genericclioptions.ConfigFlags)
	if !ok {
		return nil, fmt.Errorf("helm's RESTClientGetter is a %T, not *genericclioptions.ConfigFlags", getter)
	}
	log := newRequestLog()
	wrapCLI := flags.WrapConfigFn
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		if wrapCLI != nil {
			c = wrapCLI(c)
		}
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return log.wrap(rt) })
		return c
	}
	cfg := action.NewConfiguration()
	if err := cfg.Init(flags, ns, "secret"); err != nil {
		return nil, err
	}
	return &helmSDK{cfg: cfg, log: log, chart: chart, ns: ns}, nil
}

// install is `helm install RELEASE CHART -n NS --set ...` with Helm 4's
// defaults (server-side apply), without waiting (no kubelet runs).
func (h *helmSDK) install(ctx context.Context, release string, values map[string]any) error {
	chrt, err := loader.Load(h.chart)
	if err != nil {
		return err
	}
	inst := action.NewInstall(h.cfg)
	inst.ReleaseName, inst.Namespace = release, h.ns
	inst.WaitStrategy = helmkube.HookOnlyStrategy
	_, err = inst.RunWithContext(ctx, chrt, values)
	return err
}

// upgrade is `helm upgrade RELEASE CHART -n NS --reuse-values --set ...`:
// the chart is loaded from disk as the CLI does, and the CLI's default
// --history-max 10 applies.
func (h *helmSDK) upgrade(ctx context.Context, release string, set map[string]any) error {
	chrt, err := loader.Load(h.chart)
	if err != nil {
		return err
	}
	up := action.NewUpgrade(h.cfg)
	up.Namespace = h.ns
	up.ReuseValues = true
	up.MaxHistory = 10
	up.WaitStrategy = helmkube.HookOnlyStrategy
	_, err = up.RunWithContext(ctx, release, chrt, set)
	return err
}

func (h *helmSDK) uninstall(release string) error {
	un := action.NewUninstall(h.cfg)
	un.WaitStrategy = helmkube.HookOnlyStrategy
	_, err := un.Run(release)
	return err
}

func outboundSet(mode string) map[string]any {
	return map[string]any{"meshConfig": map[string]any{"outboundTrafficPolicy": map[string]any{"mode": mode}}}
}

func modeAt(i int) string {
	if i%2 == 1 {
		return string(meshv1alpha1.OutboundRegistryOnly)
	}
	return string(meshv1alpha1.OutboundAllowAny)
}

// cmpRun is what one change cost on one path.
type cmpRun struct {
	took     time.Duration  // from the start of the change to the ConfigMap seen with the new value
	returned time.Duration  // helm: Upgrade.Run returned; operator: the patch's round trip
	requests map[string]int // requests by verb and resource (helm) or by method (operator)
	changed  map[string]int // objects changed, by verb and object
}

func (b *bench) phaseHelmCompare(ctx context.Context) error {
	logf("== helm upgrade vs MeshSettings patch: %d runs each (%d warm-up)", b.cfg.cmpRuns, b.cfg.cmpWarmup)
	chart, err := utils.IstioChart(b.root, "istio-control/istio-discovery")
	if err != nil {
		return err
	}
	helmRuns, err := b.helmPath(ctx, chart)
	if err != nil {
		return fmt.Errorf("helm path: %w", err)
	}
	opRuns, err := b.operatorPath(ctx, chart)
	if err != nil {
		return fmt.Errorf("operator path: %w", err)
	}
	dur := func(rs []cmpRun, f func(cmpRun) time.Duration) []time.Duration {
		out := make([]time.Duration, len(rs))
		for i, r := range rs {
			out[i] = f(r)
		}
		return out
	}
	took := func(r cmpRun) time.Duration { return r.took }
	ret := func(r cmpRun) time.Duration { return r.returned }
	h50, h99 := percentile(dur(helmRuns, took), 0.5), percentile(dur(helmRuns, took), 0.99)
	o50, o99 := percentile(dur(opRuns, took), 0.5), percentile(dur(opRuns, took), 0.99)
	b.note("helm path: change -> ConfigMap p50 %s p99 %s; Upgrade.Run returned p50 %s p99 %s",
		ms(h50), ms(h99), ms(percentile(dur(helmRuns, ret), 0.5)), ms(percentile(dur(helmRuns, ret), 0.99)))
	b.note("operator path: change -> ConfigMap p50 %s p99 %s; patch round trip p50 %s",
		ms(o50), ms(o99), ms(percentile(dur(opRuns, ret), 0.5)))
	hReq, hObj := sumRuns(helmRuns)
	oReq, oObj := sumRuns(opRuns)
	n := len(helmRuns)
	b.note("helm path, requests of %d upgrades: %s", n, countsString(hReq))
	b.note("helm path, writes that changed an object in %d upgrades (verb, resource, name): %s", n, countsString(hObj))
	b.note("operator path, requests of %d changes (rest_client_requests_total): %s", len(opRuns), countsString(oReq))
	b.note("operator path, objects changed in %d changes (watch): %s", len(opRuns), countsString(oObj))

	b.add(fmt.Sprintf("helm upgrade --reuse-values --set outbound mode -> ConfigMap shows it (%d runs)", n),
		fmt.Sprintf("p50 %s, p99 %s", ms(h50), ms(h99)), "-", nil)
	b.add(fmt.Sprintf("MeshSettings patch (Own) -> ConfigMap shows it (%d runs)", len(opRuns)),
		fmt.Sprintf("p50 %s, p99 %s", ms(o50), ms(o99)), "-", nil)
	speedup := float64(h50) / float64(o50)
	b.add("helm upgrade p50 / MeshSettings patch p50", fmt.Sprintf("%.1fx (p99: %.1fx)", speedup, float64(h99)/float64(o99)),
		">= 25x", ptrBool(speedup >= 25))
	hw, ow := writesPerRun(helmRuns), writesPerRun(opRuns)
	var hDistinct []int
	for _, r := range helmRuns {
		d, _ := objectsOf(r.changed)
		hDistinct = append(hDistinct, d)
	}
	_, hFolded := objectsOf(hObj)
	b.add("write requests per change: helm upgrade / MeshSettings path (operator)",
		fmt.Sprintf("%s / %s", hw, ow), "-", nil)
	// What the operator changed besides the MeshSettings (the user's patch)
	// and its status: only the ConfigMap, once per change.
	others := 0
	for k, v := range oObj {
		if k != "ConfigMap "+ownCM && !strings.HasPrefix(k, "MeshSettings "+ownMS) {
			others += v
		}
	}
	cmOnce := oObj["ConfigMap "+ownCM] == len(opRuns)
	b.add("objects the MeshSettings path changes per change", perRun(oObj, len(opRuns)),
		"the ConfigMap only (+ MeshSettings, its status)", ptrBool(cmOnce && others == 0))
	b.add("objects helm upgrade changes per change", fmt.Sprintf("%s objects: %s", minMax(hDistinct), perRun(hFolded, n)), "-", nil)
	return nil
}

func sumRuns(rs []cmpRun) (requests, changed map[string]int) {
	requests, changed = map[string]int{}, map[string]int{}
	for _, r := range rs {
		for k, v := range r.requests {
			requests[k] += v
		}
		for k, v := range r.changed {
			changed[k] += v
		}
	}
	return requests, changed
}

// minMax is "lo-hi", or "n" when they agree.
func minMax(ns []int) string {
	if len(ns) == 0 {
		return "-"
	}
	lo, hi := slices.Min(ns), slices.Max(ns)
	if lo == hi {
		return fmt.Sprint(lo)
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

// writesPerRun is "min-max" write requests of one change.
func writesPerRun(rs []cmpRun) string {
	ns := make([]int, 0, len(rs))
	for _, r := range rs {
		n := 0
		for k, v := range r.requests {
			if isWrite(strings.Fields(k)[0]) {
				n += v
			}
		}
		ns = append(ns, n)
	}
	return minMax(ns)
}

// perRun divides object counts by the number of runs: "ConfigMap x 1.00, ...".
func perRun(m map[string]int, runs int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x %.2f", k, float64(m[k])/float64(runs)))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, "; ")
}

// helmPath installs the chart with configMap=true in its own namespace and
// changes the outbound mode with upgrades, timing each to the watch event
// of the ConfigMap showing the new mode.
func (b *bench) helmPath(ctx context.Context, chart string) ([]cmpRun, error) {
	if err := b.c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNS}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	h, err := newHelmSDK(b.cp.Kubeconfig, helmNS, chart)
	if err != nil {
		return nil, err
	}
	values := map[string]any{
		"revision":  helmRevision,
		"configMap": true,
		"global":    map[string]any{"tag": istioTag, "istioNamespace": helmNS},
	}
	if err := h.install(ctx, "istiod", values); err != nil {
		return nil, fmt.Errorf("helm install: %w", err)
	}
	var runs []cmpRun
	for i := 1; i <= b.cfg.cmpWarmup+b.cfg.cmpRuns; i++ {
		mode := modeAt(i)
		p := b.w.arm(kindConfigMap, helmNS, helmCM, func(o client.Object) bool { return meshMode(o) == mode })
		h.log.reset()
		t0 := time.Now()
		if err := h.upgrade(ctx, "istiod", outboundSet(mode)); err != nil {
			return nil, fmt.Errorf("helm upgrade %d: %w", i, err)
		}
		returned := time.Since(t0)
		at, err := wait(ctx, 30*time.Second, []string{"ConfigMap " + helmCM}, p)
		if err != nil {
			return nil, err
		}
		// Requests still in flight when the ConfigMap was seen belong to
		// this run too: Run has returned by now.
		req, changed := h.log.snapshot()
		if i > b.cfg.cmpWarmup {
			runs = append(runs, cmpRun{took: at.Sub(t0), returned: returned, requests: req, changed: changed})
		}
	}
	return runs, nil
}

// operatorPath installs the chart with configMap=false in istio-system,
// creates a MeshSettings that owns the ConfigMap, and changes the outbound
// mode with a merge patch of the MeshSettings, timing each to the watch
// event of the ConfigMap showing the new mode. Requests come from the
// operator's rest_client_requests_total, objects from the harness's watch.
func (b *bench) operatorPath(ctx context.Context, chart string) ([]cmpRun, error) {
	h, err := newHelmSDK(b.cp.Kubeconfig, istioNS, chart)
	if err != nil {
		return nil, err
	}
	values := map[string]any{
		"revision":      ownRevision,
		"configMap":     false,
		"traceSampling": "",
		"global":        map[string]any{"tag": istioTag, "istioNamespace": istioNS},
	}
	if err := h.install(ctx, ownRelease, values); err != nil {
		return nil, fmt.Errorf("helm install: %w", err)
	}
	op, err := b.startOperator(ctx, "compare")
	if err != nil {
		return nil, err
	}
	defer op.Stop()
	ms := &meshv1alpha1.MeshSettings{
		ObjectMeta: metav1.ObjectMeta{Name: ownMS, Namespace: istioNS},
		Spec: meshv1alpha1.MeshSettingsSpec{
			Revision:              ownRevision,
			ConfigMapOwnership:    meshv1alpha1.ConfigMapOwn,
			Target:                &meshv1alpha1.Target{ConfigMapName: ownCM, IstiodDeploymentName: ownRelease, IstiodContainerName: container},
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundAllowAny},
		},
	}
	if err := b.c.Create(ctx, ms); err != nil {
		return nil, err
	}
	if err := b.waitReady(ctx, ownMS, 60*time.Second); err != nil {
		return nil, fmt.Errorf("%w\noperator log:\n%s", err, tail(op.Logs(), 20))
	}
	var runs []cmpRun
	for i := 1; i <= b.cfg.cmpWarmup+b.cfg.cmpRuns; i++ {
		if _, err := op.waitIdle(ctx, 300*time.Millisecond, 60*time.Second); err != nil {
			return nil, err
		}
		before, err := op.scrape(ctx)
		if err != nil {
			return nil, err
		}
		w0 := b.w.objectWrites()
		ev0, err := b.eventReasons(ctx, ownMS)
		if err != nil {
			return nil, err
		}
		mode := modeAt(i)
		p := b.w.arm(kindConfigMap, istioNS, ownCM, func(o client.Object) bool { return meshMode(o) == mode })
		patch, err := json.Marshal(map[string]any{"spec": map[string]any{"outboundTrafficPolicy": map[string]any{"mode": mode}}})
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := b.c.Patch(ctx, &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: ownMS, Namespace: istioNS}},
			client.RawPatch(types.MergePatchType, patch), client.FieldOwner("bench-user")); err != nil {
			return nil, err
		}
		returned := time.Since(t0)
		at, err := wait(ctx, 30*time.Second, []string{"ConfigMap " + ownCM}, p)
		if err != nil {
			return nil, fmt.Errorf("run %d: %w\noperator log:\n%s", i, err, tail(op.Logs(), 10))
		}
		// Everything the change caused: until the operator is idle again.
		if _, err := op.waitIdle(ctx, 300*time.Millisecond, 60*time.Second); err != nil {
			return nil, err
		}
		after, err := op.scrape(ctx)
		if err != nil {
			return nil, err
		}
		ev1, err := b.eventReasons(ctx, ownMS)
		if err != nil {
			return nil, err
		}
		if i <= b.cfg.cmpWarmup {
			continue
		}
		req := map[string]int{}
		for method, codes := range after.requests().minus(before.requests()) {
			for _, n := range codes {
				req[method] += n
			}
		}
		changed := b.w.objectWrites().minus(w0)
		// The user's own patch of the spec is not the operator's write.
		changed["MeshSettings "+ownMS]--
		if changed["MeshSettings "+ownMS] == 0 {
			delete(changed, "MeshSettings "+ownMS)
		}
		for reason, n := range ev1.minus(ev0) {
			changed["Event "+reason+" (about MeshSettings "+ownMS+")"] = n
		}
		runs = append(runs, cmpRun{took: at.Sub(t0), returned: returned, requests: req, changed: changed})
	}
	// Leave istio-system as it was for the scale runs: one MeshSettings.
	if err := b.deleteMeshSettings(ctx, ownMS); err != nil {
		return nil, err
	}
	if err := h.uninstall(ownRelease); err != nil {
		return nil, fmt.Errorf("helm uninstall %s: %w", ownRelease, err)
	}
	return runs, nil
}

// deleteMeshSettings deletes one and waits until its finalizer is done.
func (b *bench) deleteMeshSettings(ctx context.Context, name string) error {
	if err := b.c.Delete(ctx, &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: istioNS}}); err != nil {
		return err
	}
	deadline := time.Now().Add(3 * time.Minute)
	for {
		err := b.c.Get(ctx, types.NamespacedName{Namespace: istioNS, Name: name}, &meshv1alpha1.MeshSettings{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("MeshSettings %s not deleted in 3m (last error: %w)", name, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
