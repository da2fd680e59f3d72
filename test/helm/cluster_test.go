package helm

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/controllers"
)

// istioTag is the istiod image tag the chart renders (global.tag): the
// operator reads istiod's release from it. The chart is Istio 1.31-dev.
const istioTag = "1.31.0"

// target names the objects of one istiod revision in one namespace.
type target struct {
	ns, revision string
}

func (t target) configMap() string { return suffixed("istio", t.revision) }
func (t target) deployment() string {
	return suffixed("istiod", t.revision)
}

func suffixed(name, revision string) string {
	if revision == "" {
		return name
	}
	return name + "-" + revision
}

// getConfigMap reads the mesh ConfigMap from the API server (no cache); nil
// when it does not exist.
func (t target) getConfigMap() (*corev1.ConfigMap, error) {
	cm, err := kube.CoreV1().ConfigMaps(t.ns).Get(env.Ctx, t.configMap(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return cm, err
}

// meshDoc is the parsed `mesh` key of the live ConfigMap.
func (t target) meshDoc() map[string]any {
	GinkgoHelper()
	cm, err := t.getConfigMap()
	Expect(err).NotTo(HaveOccurred())
	Expect(cm).NotTo(BeNil(), "ConfigMap %s/%s", t.ns, t.configMap())
	return parseMesh(cm.Data["mesh"])
}

func parseMesh(doc string) map[string]any {
	GinkgoHelper()
	m := map[string]any{}
	Expect(yaml.Unmarshal([]byte(doc), &m)).To(Succeed(), doc)
	return m
}

func (t target) getDeployment() *appsv1.Deployment {
	GinkgoHelper()
	d, err := kube.AppsV1().Deployments(t.ns).Get(env.Ctx, t.deployment(), metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	return d
}

// generation is istiod's metadata.generation, 0 while it does not exist.
func (t target) generation() int64 {
	GinkgoHelper()
	d, err := kube.AppsV1().Deployments(t.ns).Get(env.Ctx, t.deployment(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return 0
	}
	Expect(err).NotTo(HaveOccurred())
	return d.Generation
}

// istiodEnv is the discovery container's env.
func (t target) istiodEnv() []corev1.EnvVar {
	GinkgoHelper()
	return discoveryEnv(t.getDeployment())
}

func discoveryEnv(d *appsv1.Deployment) []corev1.EnvVar {
	GinkgoHelper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "discovery" {
			return c.Env
		}
	}
	Fail("istiod has no discovery container")
	return nil
}

func envValue(env []corev1.EnvVar, name string) (string, bool) {
	for _, e := range env {
		if e.Name == name {
			return e.Value, true
		}
	}
	return "", false
}

// applyYAML applies a manifest with kubectl, as a user does.
func applyYAML(manifest string) {
	GinkgoHelper()
	out, err := env.KubectlIn(manifest, "apply", "-f", "-")
	Expect(err).NotTo(HaveOccurred(), out)
}

func getMeshSettings(ns, name string) *meshv1alpha1.MeshSettings {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{}
	Expect(env.Client.Get(env.Ctx, client.ObjectKey{Namespace: ns, Name: name}, ms)).To(Succeed())
	return ms
}

// condition is the MeshSettings' condition of type typ as of its current
// generation; nil when absent or stale.
func condition(ns, name, typ string) *metav1.Condition {
	GinkgoHelper()
	ms := getMeshSettings(ns, name)
	c := meta.FindStatusCondition(ms.Status.Conditions, typ)
	if c == nil || c.ObservedGeneration != ms.Generation {
		return nil
	}
	return c
}

// conditionOf polls condition for Gomega: "Status/Reason: message".
func conditionOf(ns, name, typ string) func() string {
	return func() string {
		c := condition(ns, name, typ)
		if c == nil {
			return "absent"
		}
		return fmt.Sprintf("%s/%s: %s", c.Status, c.Reason, c.Message)
	}
}

func waitReady(ns, name string) {
	GinkgoHelper()
	Eventually(conditionOf(ns, name, "Ready"), time.Minute, 50*time.Millisecond).Should(HavePrefix("True/"))
}

// deleteMeshSettings deletes it and waits until its finalizer has run.
func deleteMeshSettings(ns, name string) {
	GinkgoHelper()
	ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	Expect(env.Client.Delete(env.Ctx, ms)).To(Succeed())
	Eventually(func() bool {
		return apierrors.IsNotFound(env.Client.Get(env.Ctx, client.ObjectKeyFromObject(ms), ms))
	}, time.Minute, 50*time.Millisecond).Should(BeTrue(), "the MeshSettings' finalizer did not finish")
}

// operatorTraces lists every sign of the operator on an object: a
// managedFields entry of its field manager, an annotation or label of its
// API group.
func operatorTraces(obj metav1.Object) []string {
	var traces []string
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == controllers.FieldManager {
			traces = append(traces, fmt.Sprintf("field manager %s (%s)", mf.Manager, mf.Operation))
		}
	}
	for k := range obj.GetAnnotations() {
		if strings.Contains(k, meshv1alpha1.GroupVersion.Group) {
			traces = append(traces, "annotation "+k)
		}
	}
	for k := range obj.GetLabels() {
		if strings.Contains(k, meshv1alpha1.GroupVersion.Group) {
			traces = append(traces, "label "+k)
		}
	}
	sort.Strings(traces)
	return traces
}

// leafDiff lists the leaves of want that got lacks or holds with another
// value ("defaultConfig.discoveryAddress: want X, got Y"). got may hold more.
func leafDiff(want, got map[string]any) []string {
	var diffs []string
	var walk func(path string, w, g any)
	walk = func(path string, w, g any) {
		if wm, ok := w.(map[string]any); ok && len(wm) > 0 {
			gm, _ := g.(map[string]any)
			for k, v := range wm {
				var gv any
				if gm != nil {
					gv = gm[k]
				}
				walk(strings.TrimPrefix(path+"."+k, "."), v, gv)
			}
			return
		}
		if !reflect.DeepEqual(w, g) {
			diffs = append(diffs, fmt.Sprintf("%s: want %v, got %v", path, w, g))
		}
	}
	walk("", want, got)
	sort.Strings(diffs)
	return diffs
}

// event is one change of a ConfigMap or Deployment in a scenario's namespace.
type event struct {
	kind, name string
	typ        watch.EventType
	generation int64
	at         time.Time
}

// recorder watches the mesh ConfigMap and the istiod Deployment of a target
// and keeps every change, so a step can count writes and the generations
// istiod went through (a fight between two managers shows as 3 -> 4 -> 5).
// Other objects are left out: a running istiod renews its leader-election
// ConfigMaps every few seconds.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func record(t target) *recorder {
	GinkgoHelper()
	ns := t.ns
	r := &recorder{}
	ctx, cancel := context.WithCancel(env.Ctx)
	DeferCleanup(cancel)
	cms, err := kube.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	cw, err := kube.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: cms.ResourceVersion})
	Expect(err).NotTo(HaveOccurred())
	ds, err := kube.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	dw, err := kube.AppsV1().Deployments(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: ds.ResourceVersion})
	Expect(err).NotTo(HaveOccurred())
	for _, w := range []watch.Interface{cw, dw} {
		go func() {
			defer w.Stop()
			for ev := range w.ResultChan() {
				o, ok := ev.Object.(client.Object)
				if !ok {
					continue
				}
				e := event{name: o.GetName(), typ: ev.Type, generation: o.GetGeneration(), at: time.Now()}
				if _, isDeploy := o.(*appsv1.Deployment); isDeploy {
					e.kind = "Deployment"
				} else {
					e.kind = "ConfigMap"
				}
				if e.name != t.configMap() && e.name != t.deployment() {
					continue
				}
				r.mu.Lock()
				r.events = append(r.events, e)
				r.mu.Unlock()
			}
		}()
	}
	return r
}

func (r *recorder) since(i int) []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events[i:]...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// quiet waits until nothing was written for the given period.
func (r *recorder) quiet(period time.Duration) {
	GinkgoHelper()
	Eventually(func() time.Duration {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.events) == 0 {
			return period
		}
		return time.Since(r.events[len(r.events)-1].at)
	}, time.Minute, 100*time.Millisecond).Should(BeNumerically(">=", period), "the objects kept changing")
}

// sampler runs check every 20 ms until stopped and keeps what failed.
type sampler struct {
	stop     chan struct{}
	done     chan struct{}
	samples  int
	failures []string
}

func sample(check func() error) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer GinkgoRecover()
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			s.samples++
			if err := check(); err != nil {
				s.failures = append(s.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
			}
			select {
			case <-s.stop:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

func (s *sampler) end() (samples int, failures []string) {
	close(s.stop)
	<-s.done
	return s.samples, s.failures
}

// step is one line of a scenario's ledger.
type step struct {
	name         string
	exit         int
	genBefore    int64
	generations  []int64 // every generation istiod took during the step
	cmWrites     int
	deployWrites int
	samples      int
	misses       int
}

// ledger runs a scenario's steps and keeps what each did to istiod, for the
// table the test prints (generation counts per step).
type ledger struct {
	title string
	t     target
	rec   *recorder
	steps []step
	// check is sampled every 20 ms during every step (nil: no sampling).
	check func() error
}

func newLedger(title string, t target) *ledger {
	GinkgoHelper()
	l := &ledger{title: title, t: t, rec: record(t)}
	DeferCleanup(l.print)
	return l
}

// do runs op as a step: samples l.check while op runs and until the objects
// are quiet for a second, then records Helm's exit code and istiod's
// generations. Returns op's output and error for the caller's assertions.
func (l *ledger) do(name string, op func() (string, error)) (string, error) {
	GinkgoHelper()
	s := step{name: name, genBefore: l.t.generation()}
	i := l.rec.len()
	var smp *sampler
	if l.check != nil {
		smp = sample(l.check)
	}
	out, err := op()
	s.exit = exitCode(err)
	l.rec.quiet(time.Second)
	if smp != nil {
		var failures []string
		s.samples, failures = smp.end()
		s.misses = len(failures)
		if len(failures) > 0 {
			fmt.Fprintf(GinkgoWriter, "%s / %s: %d of %d samples failed, first: %s\n", l.title, name, len(failures), s.samples, failures[0])
		}
	}
	last := s.genBefore
	for _, e := range l.rec.since(i) {
		switch {
		case e.kind == "Deployment" && e.name == l.t.deployment():
			s.deployWrites++
			if e.generation != last {
				s.generations = append(s.generations, e.generation)
				last = e.generation
			}
		case e.kind == "ConfigMap" && e.name == l.t.configMap():
			s.cmWrites++
		}
	}
	l.steps = append(l.steps, s)
	return out, err
}

// rollouts is how many times istiod's generation moved in the named step.
func (l *ledger) rollouts(name string) int {
	GinkgoHelper()
	for _, s := range l.steps {
		if s.name == name {
			return len(s.generations)
		}
	}
	Fail("no step " + name)
	return 0
}

func (l *ledger) print() {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (istiod %s/%s)\n", l.title, l.t.ns, l.t.deployment())
	fmt.Fprintf(&b, "  %-62s %4s %-18s %9s %9s %s\n", "step", "exit", "istiod generation", "cm writes", "deploy wr", "cm samples failed")
	for _, s := range l.steps {
		gens := fmt.Sprint(s.genBefore)
		for _, g := range s.generations {
			gens += fmt.Sprintf("->%d", g)
		}
		sampled := "-"
		if s.samples > 0 {
			sampled = fmt.Sprintf("%d/%d", s.misses, s.samples)
		}
		fmt.Fprintf(&b, "  %-62s %4d %-18s %9d %9d %s\n", s.name, s.exit, gens, s.cmWrites, s.deployWrites, sampled)
	}
	AddReportEntry(l.title, b.String(), ReportEntryVisibilityAlways)
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

// normalizedEnv fills in what the API server defaults in an env list
// (fieldRef.apiVersion), so a rendered list compares with a live one.
func normalizedEnv(in []corev1.EnvVar) []corev1.EnvVar {
	out := make([]corev1.EnvVar, len(in))
	for i, e := range in {
		e = *e.DeepCopy()
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.APIVersion == "" {
			e.ValueFrom.FieldRef.APIVersion = "v1"
		}
		out[i] = e
	}
	return out
}

// act runs a step that is not a Helm command (kubectl apply, a deletion):
// fn makes its own assertions.
func (l *ledger) act(name string, fn func()) {
	GinkgoHelper()
	_, err := l.do(name, func() (string, error) {
		fn()
		return "", nil
	})
	Expect(err).NotTo(HaveOccurred())
}
