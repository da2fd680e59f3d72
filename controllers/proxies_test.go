package controllers

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Unit tests of the proxy report's pure parts: the cache transform, the
// count, the status and its events.

const sidecarStatus = `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","istio-envoy",` +
	`"istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"canary"}`

func podMeta(annotations, labels map[string]string, owners ...metav1.OwnerReference) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "web-5d8f-x", Namespace: "shop", UID: "u1", ResourceVersion: "42", Generation: 3,
		CreationTimestamp: metav1.NewTime(time.Unix(1000, 0)),
		Annotations:       annotations, Labels: labels, OwnerReferences: owners,
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		Finalizers:    []string{"x"},
	}}
}

var rsOwner = metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-5d8f", UID: "rs1", Controller: ptr.To(true)}

func TestEntryOf(t *testing.T) {
	lastApplied := strings.Repeat("x", 4096)
	cases := []struct {
		name string
		in   *metav1.PartialObjectMetadata
		want *proxyRecord // nil: no counted proxy
	}{
		{
			name: "injected sidecar: the revision from the status JSON, the Deployment from owner and hash label",
			in: podMeta(map[string]string{annoSidecarStatus: sidecarStatus, "kubectl.kubernetes.io/last-applied-configuration": lastApplied},
				map[string]string{"app": "web", labelPodTemplateHash: "5d8f", "security.istio.io/tlsMode": "istio"}, rsOwner),
			want: &proxyRecord{revision: "canary", injected: true, workload: "Deployment/web"},
		},
		{
			name: "status without a revision (before revisions): the default revision",
			in:   podMeta(map[string]string{annoSidecarStatus: `{"containers":["istio-proxy"]}`}, nil),
			want: &proxyRecord{revision: "default", injected: true, workload: "Pod/web-5d8f-x"},
		},
		{
			name: "waypoint: istiod's gateway controller label and the istio.io/rev annotation",
			in: podMeta(map[string]string{"istio.io/rev": "canary"}, map[string]string{labelManaged: "istio.io-mesh-controller", "istio.io/dataplane-mode": "none"},
				metav1.OwnerReference{Kind: "ReplicaSet", Name: "waypoint-6c9d"}),
			want: &proxyRecord{revision: "canary", workload: "ReplicaSet/waypoint-6c9d"},
		},
		{
			name: "pod-level injection labels are kept for the namespace comparison",
			in: podMeta(map[string]string{annoSidecarStatus: sidecarStatus},
				map[string]string{"istio.io/rev": "canary", labelInject: "true", "team": "a"}),
			want: &proxyRecord{revision: "canary", injected: true, podRevision: "canary", podInject: "true", workload: "Pod/web-5d8f-x"},
		},
		{
			name: "enrolled in ambient: no proxy that reads defaultConfig",
			in:   podMeta(map[string]string{annoSidecarStatus: sidecarStatus, annoAmbient: ambientEnabled}, nil),
		},
		{
			name: "no proxy",
			in: podMeta(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied},
				map[string]string{"app": "batch", labelPodTemplateHash: "1b2c"}, rsOwner),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, ok := entryOf(tc.in)
			switch {
			case tc.want == nil && ok:
				t.Errorf("a pod without a counted proxy has an entry %+v", e)
			case tc.want != nil && !ok:
				t.Errorf("no entry, want %+v", *tc.want)
			case tc.want != nil && (e.rec != *tc.want || e.namespace != "shop" || e.created != 1000):
				t.Errorf("entry %+v, want %+v in shop created 1000", e, *tc.want)
			}
		})
	}
}

// The store against the reflector's calls: only proxies are kept, a status
// update is no change, a deletion and a relist are.
func TestPodStore(t *testing.T) {
	type call struct {
		revs       []string
		added, all bool
	}
	var calls []call
	s := newPodStore(func(revs []string, added, all bool) { calls = append(calls, call{revs, added, all}) })
	pod := func(name string, rev string, resourceVersion string) *metav1.PartialObjectMetadata {
		o := podMeta(nil, nil, rsOwner)
		o.Name, o.ResourceVersion = name, resourceVersion
		if rev != "" {
			o.Annotations = map[string]string{annoSidecarStatus: strings.Replace(sidecarStatus, "canary", rev, 1)}
		}
		return o
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(s.Replace([]any{pod("a", "canary", "1"), pod("b", "", "1")}, "1"))
	if !s.synced.Load() || len(s.pods) != 1 || len(s.revision("canary")) != 1 {
		t.Fatalf("after the list: synced %v, %d entries", s.synced.Load(), len(s.pods))
	}
	must(s.Add(pod("c", "canary", "2"))) // created (1000) not before any change counted: nothing moves
	s.newestChange.Store(2000)
	must(s.Add(pod("d", "canary", "2")))    // created before the newest change: may be pending
	must(s.Update(pod("a", "canary", "3"))) // a status update
	must(s.Update(pod("b", "", "3")))       // still no proxy
	must(s.Update(pod("c", "stable", "4"))) // re-injected: moves revision
	must(s.Delete(cache.DeletedFinalStateUnknown{Key: "shop/a", Obj: pod("a", "canary", "5")}))
	must(s.Delete(pod("b", "", "5")))
	want := []call{{nil, false, true}, {[]string{"canary"}, true, false}, {[]string{"canary", "stable"}, false, false}, {[]string{"canary"}, false, false}, {[]string{"canary"}, false, false}}
	if len(s.revision("canary")) != 1 { // d
		t.Errorf("left of canary: %v", s.pods)
	}
	must(s.Delete(pod("d", "canary", "6")))
	if fmt.Sprint(calls) != fmt.Sprint(want) {
		t.Errorf("changes\n got %v\nwant %v", calls, want)
	}
	if len(s.revision("canary")) != 0 || len(s.revision("stable")) != 1 {
		t.Errorf("left: %v", s.pods)
	}
	if err := s.Add("not metadata"); err == nil {
		t.Error("an object that is no pod metadata was accepted")
	}
}

func TestWorkloadOf(t *testing.T) {
	cases := []struct {
		labels map[string]string
		owners []metav1.OwnerReference
		want   string
	}{
		{map[string]string{labelPodTemplateHash: "5d8f"}, []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f"}}, "Deployment/web"},
		{map[string]string{labelPodTemplateHash: "5d8f"}, []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "my-web-app-5d8f"}}, "Deployment/my-web-app"},
		// A ReplicaSet of its own (no hash label, or one not in its name).
		{nil, []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f"}}, "ReplicaSet/web-5d8f"},
		{map[string]string{labelPodTemplateHash: "zzzz"}, []metav1.OwnerReference{{Kind: "ReplicaSet", Name: "web-5d8f"}}, "ReplicaSet/web-5d8f"},
		{nil, []metav1.OwnerReference{{Kind: "StatefulSet", Name: "db"}}, "StatefulSet/db"},
		// The controller wins over an owner listed first.
		{nil, []metav1.OwnerReference{{Kind: "ConfigMap", Name: "c"}, {Kind: "StatefulSet", Name: "db", Controller: ptr.To(true)}}, "StatefulSet/db"},
		{nil, nil, "Pod/p"},
	}
	for _, tc := range cases {
		if got := workloadOf("p", tc.labels, tc.owners); got != tc.want {
			t.Errorf("workloadOf(%v, %v) = %q, want %q", tc.labels, tc.owners, got, tc.want)
		}
	}
}

func TestSelectedRevision(t *testing.T) {
	cases := []struct {
		ns                map[string]string
		podRev, podInject string
		want              string
	}{
		{map[string]string{"istio-injection": "enabled"}, "", "", "default"},
		{map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, "", "", "default"},
		{map[string]string{"istio-injection": "disabled", "istio.io/rev": "canary"}, "", "", ""},
		{map[string]string{"istio-injection": "enabled"}, "", "false", ""},
		{map[string]string{"istio.io/rev": "canary"}, "", "", "canary"},
		{map[string]string{"istio.io/rev": "canary"}, "stable", "", "canary"},
		{nil, "stable", "", "stable"},
		{nil, "", "true", "default"},
		{map[string]string{"istio.io/dataplane-mode": "ambient"}, "", "", ""},
		{nil, "", "", ""},
	}
	for _, tc := range cases {
		if got := selectedRevision(tc.ns, tc.podRev, tc.podInject); got != tc.want {
			t.Errorf("selectedRevision(ns %v, pod rev %q inject %q) = %q, want %q", tc.ns, tc.podRev, tc.podInject, got, tc.want)
		}
	}
}

func TestCountPending(t *testing.T) {
	since := metav1.NewTime(time.Unix(2000, 0))
	old, young := time.Unix(1999, 0), time.Unix(2000, 0)
	pods := []proxyPod{
		{namespace: "a", workload: "Deployment/web", created: old, injected: true, selected: "canary"},
		{namespace: "a", workload: "Deployment/web", created: old, injected: true, selected: "canary"},
		{namespace: "a", workload: "Deployment/api", created: young, injected: true, selected: "canary"}, // in the second of the change
		{namespace: "b", workload: "StatefulSet/db", created: old, injected: true, selected: "canary"},
		{namespace: "b", workload: "Deployment/waypoint", created: old, selected: ""}, // waypoint: no namespace comparison
		{namespace: "c", workload: "Deployment/moved", created: young, injected: true, selected: "stable"},
		{namespace: "c", workload: "Deployment/moved", created: old, injected: true, selected: ""}, // both reasons: counted once
	}
	rep := countPending("canary", &since, pods)
	if rep.pending != 6 || rep.predating != 5 || rep.mismatched != 2 {
		t.Fatalf("pending %d (predating %d, mismatched %d), want 6 (5, 2)", rep.pending, rep.predating, rep.mismatched)
	}
	got := fmt.Sprint(rep.namespaces)
	want := "[{a 2 [{Deployment/web 2}]} {b 2 [{Deployment/waypoint 1} {StatefulSet/db 1}]} {c 2 [{Deployment/moved 2}]}]"
	if got != want {
		t.Errorf("namespaces\n got %s\nwant %s", got, want)
	}
	pp := &proxyPass{report: rep}
	if got := pp.pendingDeployments(); !slices.Equal(got, []string{"a/web", "b/waypoint", "c/moved"}) {
		t.Errorf("pending Deployments %v", got)
	}
	if (*proxyPass)(nil).pendingDeployments() != nil || (&proxyPass{}).pendingDeployments() != nil {
		t.Error("a pass that counted nothing has pending Deployments")
	}
	// Without a change, only the revision mismatch counts.
	if rep := countPending("canary", nil, pods); rep.pending != 2 || rep.predating != 0 {
		t.Errorf("no change: pending %d predating %d, want 2 and 0", rep.pending, rep.predating)
	}
}

func TestDeriveProxies(t *testing.T) {
	now := metav1.NewTime(time.Unix(5000, 0))
	applied := passWith(func(in *pass) {
		in.plan = appliedPlan()
		in.proxies = &proxyPass{revision: "default", changedAt: &now, changes: []string{"defaultConfig.drainDuration"},
			report: countPending("default", &now, []proxyPod{
				{namespace: "a", workload: "Deployment/web", created: time.Unix(10, 0), injected: true, selected: "default"},
			})}
	})
	st := deriveStatus(readyStatus(), applied, now)
	if cond(&st, meshv1alpha1.ConditionProxiesUpToDate) != "False/RestartPending" || cond(&st, meshv1alpha1.ConditionReady) != "True/Reconciled" {
		t.Fatalf("ProxiesUpToDate %s, Ready %s; want False/RestartPending and Ready untouched", cond(&st, meshv1alpha1.ConditionProxiesUpToDate), cond(&st, meshv1alpha1.ConditionReady))
	}
	if st.Proxies.Pending != 1 || !st.Proxies.RestartRequiredSince.Equal(&now) || st.Proxies.Namespaces[0].Workloads[0] != "Deployment/web" {
		t.Fatalf("status.proxies %+v", st.Proxies)
	}
	evs := transitions(readyStatus(), &st, applied)
	var hint string
	for _, e := range evs {
		if e.reason == meshv1alpha1.ReasonRestartPending {
			hint = e.note
		}
	}
	if !strings.Contains(hint, "kubectl rollout restart deployment -n a web") {
		t.Fatalf("no restart hint among %v", evs)
	}

	// The next pass: same change, the pod is gone. The change time stays,
	// the condition turns True, one event says so.
	later := passWith(func(in *pass) {
		in.plan = appliedPlan()
		in.proxies = &proxyPass{revision: "default", report: countPending("default", &now, nil)}
	})
	st2 := deriveStatus(&st, later, metav1.NewTime(time.Unix(6000, 0)))
	if cond(&st2, meshv1alpha1.ConditionProxiesUpToDate) != "True/UpToDate" || st2.Proxies.Pending != 0 ||
		!st2.Proxies.RestartRequiredSince.Equal(&now) || len(st2.Proxies.Namespaces) != 0 || st2.Proxies.Changes[0] != "defaultConfig.drainDuration" {
		t.Fatalf("after the restart: %s %+v", cond(&st2, meshv1alpha1.ConditionProxiesUpToDate), st2.Proxies)
	}
	if evs := proxyEvents(&st, &st2); len(evs) != 1 || evs[0].reason != meshv1alpha1.ConditionProxiesUpToDate {
		t.Fatalf("events %v, want one ProxiesUpToDate", evs)
	}
	// A repeated pass says nothing; a count that only moves says nothing.
	if evs := proxyEvents(&st2, &st2); len(evs) != 0 {
		t.Errorf("a repeated pass sent %v", evs)
	}
	moved := st.DeepCopy()
	moved.Proxies.Pending = 5
	if evs := proxyEvents(&st, moved); len(evs) != 0 {
		t.Errorf("a moving count sent %v", evs)
	}
	// A pass that failed to count keeps the last count but records a change.
	failed := passWith(func(in *pass) {
		in.plan = appliedPlan()
		in.proxies = &proxyPass{revision: "default", changedAt: ptr.To(metav1.NewTime(time.Unix(7000, 0))), changes: []string{"defaultConfig.concurrency"}}
	})
	st3 := deriveStatus(&st, failed, now)
	if st3.Proxies.Pending != 1 || st3.Proxies.RestartRequiredSince.Unix() != 7000 || st3.Proxies.Changes[0] != "defaultConfig.concurrency" {
		t.Errorf("a pass that could not count: %+v", st3.Proxies)
	}
	// A pass with no proxy step leaves status.proxies and the condition alone.
	st4 := deriveStatus(&st, passWith(func(in *pass) { in.plan = appliedPlan() }), now)
	if st4.Proxies.Pending != 1 || meta.FindStatusCondition(st4.Conditions, meshv1alpha1.ConditionProxiesUpToDate).Status != metav1.ConditionFalse {
		t.Errorf("a pass without proxies changed them: %+v", st4.Proxies)
	}
}

func TestRestartHintBounded(t *testing.T) {
	ps := &meshv1alpha1.ProxiesStatus{Pending: 900}
	for i := range 20 {
		n := meshv1alpha1.PendingNamespace{Namespace: fmt.Sprintf("namespace-with-a-long-name-%02d", i), Pending: 45}
		for j := range 10 {
			n.Workloads = append(n.Workloads, fmt.Sprintf("Deployment/a-deployment-with-a-long-name-%02d", j))
		}
		ps.Namespaces = append(ps.Namespaces, n)
	}
	h := restartHint(ps)
	if len(h) > 1024 || strings.Count(h, "kubectl rollout restart") != restartHintNamespaces {
		t.Errorf("hint of %d bytes naming %d namespaces: %s", len(h), strings.Count(h, "kubectl rollout restart"), h)
	}
	if !strings.HasPrefix(h, "900 proxies") {
		t.Errorf("hint does not start with the count: %s", h)
	}
}

// heapPerPodOK is the check of the store's cost against issue 19's budget:
// 32 MiB of RSS for 50,000 pods. The Go heap grows to twice what is live
// before a collection (GOGC=100), so the live heap of the store must stay
// within half of it.
func heapPerPodOK(perPod uint64) error {
	const pods, budget = 50000, 32 << 20
	if perPod*pods > budget/2 {
		return fmt.Errorf("%d B/pod: 50,000 pods hold %.1f MiB, over half of 32 MiB", perPod, float64(perPod*pods)/(1<<20))
	}
	return nil
}

func heapAlloc() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// The heap the pod store holds for 50,000 pods (nine in ten with a
// sidecar), against what controller-runtime's cache would hold of their
// metadata, which the check refuses. make bench measures the operator's RSS.
func TestPodStoreHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 50,000 pods")
	}
	const pods = 50000
	before := heapAlloc()
	s := newPodStore(func([]string, bool, bool) {})
	for i := range pods {
		if err := s.Add(realisticPod(i)); err != nil {
			t.Fatal(err)
		}
	}
	perPod := (heapAlloc() - before) / pods
	if n := len(s.revision("default")); n != pods*9/10 {
		t.Fatalf("%d proxies of revision default, want %d", n, pods*9/10)
	}
	runtime.KeepAlive(s)

	// What an informer keeps: the metadata with its namespace index.
	const sample = pods / 10
	before = heapAlloc()
	store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for i := range sample {
		if err := store.Add(realisticPod(i)); err != nil {
			t.Fatal(err)
		}
	}
	informerPerPod := (heapAlloc() - before) / sample
	runtime.KeepAlive(store)
	t.Logf("heap for 50,000 pods: pod store %.1f MiB (%d B/pod); an informer of their metadata %.1f MiB (%d B/pod)",
		float64(perPod*pods)/(1<<20), perPod, float64(informerPerPod*pods)/(1<<20), informerPerPod)
	if err := heapPerPodOK(perPod); err != nil {
		t.Error(err)
	}
	if heapPerPodOK(informerPerPod) == nil {
		t.Errorf("the check accepts an informer of untrimmed metadata (%d B/pod)", informerPerPod)
	}
}

// realisticPod is the metadata of a pod of an injected Deployment as the
// API server sends it (one in ten has no sidecar).
func realisticPod(i int) *metav1.PartialObjectMetadata {
	ns := fmt.Sprintf("team-%04d", i/10)
	rs := fmt.Sprintf("svc-%d-5d8f9c7b6", i%7)
	o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: fmt.Sprintf("%s-%05x", rs, i), Namespace: ns, UID: types.UID(fmt.Sprintf("0b1c2d3e-4f50-6172-8394-%012d", i)),
		ResourceVersion: fmt.Sprint(100000 + i), CreationTimestamp: metav1.NewTime(time.Unix(int64(1e9+i), 0)),
		Labels: map[string]string{"app": rs[:5], "version": "v1", labelPodTemplateHash: "5d8f9c7b6",
			"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": rs[:5], "service.istio.io/canonical-revision": "v1"},
		Annotations: map[string]string{
			"kubectl.kubernetes.io/default-container": "app",
			"prometheus.io/path":                      "/stats/prometheus",
			"prometheus.io/port":                      "15020",
			"istio.io/rev":                            "default",
			"sidecar.istio.io/status":                 strings.Replace(sidecarStatus, "canary", "default", 1),
			"kubectl.kubernetes.io/restartedAt":       "2026-11-30T10:00:00Z",
		},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rs, UID: "rs-uid-0000-0000",
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: "Update", APIVersion: "v1",
			FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(strings.Repeat(`{"f:metadata":{}}`, 60))}},
	}}
	if i%10 == 9 {
		delete(o.Annotations, "sidecar.istio.io/status")
		delete(o.Annotations, "istio.io/rev")
	}
	return o
}

// countingClient counts the reads of the proxy count.
type countingClient struct {
	client.Client
	gets int
}

func (c *countingClient) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Client.Get(ctx, key, obj, opts...)
}

// A pass that no pod or injection-label event preceded reads nothing: the
// count is reused (issue 18: a namespace event that changes no selection
// costs the same whatever the number of pods). A pod deletion, or a new
// change time, counts again.
func TestCountProxiesMemo(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"istio.io/rev": "canary"}}}
	cl := &countingClient{Client: fake.NewClientBuilder().WithObjects(ns).Build()}
	r := &MeshSettingsReconciler{Client: cl}
	r.pods = newPodStore(r.podsChanged)
	ctx := context.Background()
	if _, err := r.countProxies(ctx, "u1", "canary", nil); !errors.Is(err, errPodsNotSynced) {
		t.Fatalf("before the list: %v, want errPodsNotSynced", err)
	}
	var objs []any
	for i := range 3 {
		o := podMeta(map[string]string{annoSidecarStatus: sidecarStatus}, nil, rsOwner)
		o.Name = fmt.Sprint("web-", i)
		objs = append(objs, o)
	}
	if err := r.pods.Replace(objs, "1"); err != nil {
		t.Fatal(err)
	}
	since := metav1.NewTime(time.Unix(2000, 0))
	first, err := r.countProxies(ctx, "u1", "canary", &since)
	if err != nil || first.pending != 3 || cl.gets != 1 {
		t.Fatalf("first count: %+v, %v, %d reads", first, err, cl.gets)
	}
	again, _ := r.countProxies(ctx, "u1", "canary", &since)
	if again != first || cl.gets != 1 {
		t.Fatalf("a pass with nothing changed counted again (%d reads)", cl.gets)
	}
	if err := r.pods.Delete(objs[0]); err != nil {
		t.Fatal(err)
	}
	after, _ := r.countProxies(ctx, "u1", "canary", &since)
	if after.pending != 2 || cl.gets != 2 {
		t.Fatalf("after a deletion: pending %d, %d reads", after.pending, cl.gets)
	}
	later := metav1.NewTime(time.Unix(1000, 0))
	if moved, _ := r.countProxies(ctx, "u1", "canary", &later); moved.pending != 0 {
		t.Fatalf("a new change time was not counted again: %+v", moved)
	}
}

// The reflector's first list: the temporary store keeps podLite values
// (Transformer), which Replace takes as they are; a listed page trimmed
// by trimForEntry gives the same entry as the full pod.
func TestPodStoreFirstList(t *testing.T) {
	s := newPodStore(func([]string, bool, bool) {})
	tmp := cache.NewStore(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.WithTransformer(s.Transformer()))
	full := realisticPod(1)
	if err := tmp.Add(full); err != nil {
		t.Fatal(err)
	}
	if err := tmp.Add(realisticPod(9)); err != nil { // no sidecar
		t.Fatal(err)
	}
	for _, v := range tmp.List() {
		if _, ok := v.(*podLite); !ok {
			t.Fatalf("the temporary store keeps %T", v)
		}
	}
	if err := s.Replace(tmp.List(), "1"); err != nil {
		t.Fatal(err)
	}
	want, _ := entryOf(full)
	if got := s.revision("default"); len(got) != 1 || got[0] != want {
		t.Fatalf("after the first list: %+v, want [%+v]", got, want)
	}
	trimmed := realisticPod(1)
	trimForEntry(trimmed)
	if got, _ := entryOf(trimmed); got != want || trimmed.ManagedFields != nil || len(trimmed.Annotations) != 2 {
		t.Errorf("a trimmed page's pod reads as %+v (annotations %v), want %+v", got, trimmed.Annotations, want)
	}
}

func TestWithoutRewritten(t *testing.T) {
	paths := []string{"defaultConfig.drainDuration", "defaultConfig.proxyMetadata.ISTIO_META_DNS_CAPTURE", "defaultConfig.proxyMetadata.X", "trustDomain"}
	got := withoutRewritten(paths, []render.Path{"defaultConfig/drainDuration", "defaultConfig/proxyMetadata/ISTIO_META_DNS_CAPTURE"})
	if !slices.Equal(got, []string{"defaultConfig.proxyMetadata.X", "trustDomain"}) {
		t.Errorf("got %v", got)
	}
	if got := withoutRewritten(paths, []render.Path{"defaultConfig"}); !slices.Equal(got, []string{"trustDomain"}) {
		t.Errorf("a rewritten parent: got %v", got)
	}
	if got := withoutRewritten(paths, nil); !slices.Equal(got, paths) {
		t.Errorf("nothing rewritten: got %v", got)
	}
	if got := withoutRewritten(paths, []render.Path{"defaultConfig/drain"}); len(got) != len(paths) {
		t.Errorf("a path prefix that is no parent dropped something: %v", got)
	}
}
