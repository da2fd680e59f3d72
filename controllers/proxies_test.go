package controllers

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
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

// trimmedOK is the check that a trimmed pod keeps nothing but what the
// report reads: identity, age and the proxy record.
func trimmedOK(o *metav1.PartialObjectMetadata) error {
	m := o.ObjectMeta
	allowed := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, CreationTimestamp: m.CreationTimestamp, GenerateName: m.GenerateName}
	if fmt.Sprint(allowed) != fmt.Sprint(m) {
		return fmt.Errorf("metadata beyond name, namespace, uid, creationTimestamp and the record: %+v", m)
	}
	if m.GenerateName != "" {
		if _, ok := podProxy(o); !ok {
			return fmt.Errorf("generateName %q is no proxy record", m.GenerateName)
		}
	}
	return nil
}

func TestTrimPod(t *testing.T) {
	lastApplied := strings.Repeat("x", 4096)
	cases := []struct {
		name string
		in   *metav1.PartialObjectMetadata
		want *proxyRecord // nil: no proxy
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
			name: "no proxy: nothing but identity and age",
			in: podMeta(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied},
				map[string]string{"app": "batch", labelPodTemplateHash: "1b2c"}, rsOwner),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, err := trimPod(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			o := out.(*metav1.PartialObjectMetadata)
			if err := trimmedOK(o); err != nil {
				t.Fatal(err)
			}
			if o.Name != "web-5d8f-x" || o.Namespace != "shop" || o.UID != "u1" || !o.CreationTimestamp.Equal(ptr.To(metav1.NewTime(time.Unix(1000, 0)))) {
				t.Fatalf("identity or age lost: %+v", o.ObjectMeta)
			}
			got, ok := podProxy(o)
			switch {
			case tc.want == nil && ok:
				t.Errorf("a pod without a counted proxy reads as %+v", got)
			case tc.want != nil && got != *tc.want:
				t.Errorf("record %+v, want %+v", got, *tc.want)
			}
		})
	}
	// Tombstones pass through.
	if out, _ := trimPod("tombstone"); out != "tombstone" {
		t.Errorf("a non-metadata object was changed: %v", out)
	}
}

// The check above, shown failing on what an untrimmed pod keeps.
func TestTrimmedOKFailsOnAnUntrimmedPod(t *testing.T) {
	bad := []*metav1.PartialObjectMetadata{
		podMeta(map[string]string{annoSidecarStatus: sidecarStatus}, nil),
		func() *metav1.PartialObjectMetadata {
			o := podMeta(nil, map[string]string{"app": "web"})
			o.ManagedFields, o.Finalizers, o.ResourceVersion, o.Generation = nil, nil, "", 0
			return o
		}(),
		func() *metav1.PartialObjectMetadata {
			o := podMeta(nil, nil, rsOwner)
			o.ManagedFields, o.Finalizers, o.ResourceVersion, o.Generation = nil, nil, "", 0
			return o
		}(),
	}
	for i, o := range bad {
		if err := trimmedOK(o); err == nil {
			t.Errorf("case %d: an untrimmed pod passed the check", i)
		}
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

// The heap a pod cache of 50,000 trimmed pods holds: the objects, the
// store's key map and its two indexes (namespace, proxy revision), as the
// informer keeps them. Issue 19's budget is 32 MiB of RSS for 50,000 pods
// (make bench measures the operator's RSS); the heap of the store is its
// floor, so it must be well below.
func TestTrimmedPodCacheHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates 50,000 pods")
	}
	const pods = 50000
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	fill := func(n int, transform bool) (cache.Indexer, uint64) {
		store := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{
			cache.NamespaceIndex: cache.MetaNamespaceIndexFunc,
			proxyRevisionIndex: func(obj any) ([]string, error) {
				return indexProxyRevision(obj.(*metav1.PartialObjectMetadata)), nil
			},
		})
		before := heap()
		for i := range n {
			var obj any = realisticPod(i)
			if transform {
				obj, _ = trimPod(obj)
			}
			if err := store.Add(obj); err != nil {
				t.Fatal(err)
			}
		}
		return store, heap() - before
	}
	store, trimmed := fill(pods, true)
	if n := len(store.List()); n != pods {
		t.Fatalf("%d pods in the store", n)
	}
	if got, _ := store.ByIndex(proxyRevisionIndex, "default"); len(got) != pods*9/10 {
		t.Fatalf("%d pods indexed under revision default, want %d", len(got), pods*9/10)
	}
	runtime.KeepAlive(store)
	store = nil
	full, untrimmed := fill(pods/10, false)
	runtime.KeepAlive(full)
	t.Logf("heap of the pod store: %d pods trimmed %.1f MiB (%d B/pod); untrimmed metadata %d B/pod",
		pods, float64(trimmed)/(1<<20), trimmed/pods, untrimmed/(pods/10))
	if trimmed > 32<<20 {
		t.Errorf("50,000 trimmed pods hold %.1f MiB of heap, over issue 19's 32 MiB", float64(trimmed)/(1<<20))
	}
	if untrimmed/(pods/10) < 3*(trimmed/pods) {
		t.Errorf("trimming saves less than 3x: %d vs %d B/pod", untrimmed/(pods/10), trimmed/pods)
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
