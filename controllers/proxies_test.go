package controllers

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
// report reads.
func trimmedOK(o *metav1.PartialObjectMetadata) error {
	m := o.ObjectMeta
	allowed := metav1.ObjectMeta{Name: m.Name, Namespace: m.Namespace, UID: m.UID, CreationTimestamp: m.CreationTimestamp,
		Annotations: m.Annotations, Labels: m.Labels, OwnerReferences: m.OwnerReferences}
	if fmt.Sprint(allowed) != fmt.Sprint(m) {
		return fmt.Errorf("metadata beyond name, namespace, uid, creationTimestamp, labels, annotations, owners: %+v", m)
	}
	for k := range m.Annotations {
		if k != proxyAnnotation && k != annoAmbient {
			return fmt.Errorf("annotation %s kept", k)
		}
	}
	for k := range m.Labels {
		if k != labelPodTemplateHash && k != "istio.io/rev" && k != labelInject {
			return fmt.Errorf("label %s kept", k)
		}
	}
	for _, r := range m.OwnerReferences {
		if r.APIVersion != "" || r.UID != "" || r.Controller != nil {
			return fmt.Errorf("owner reference keeps more than kind and name: %+v", r)
		}
	}
	return nil
}

func TestTrimPod(t *testing.T) {
	lastApplied := strings.Repeat("x", 4096)
	cases := []struct {
		name   string
		in     *metav1.PartialObjectMetadata
		proxy  string
		labels map[string]string
		owner  string
	}{
		{
			name: "injected sidecar: the revision from the status JSON, hash label, owner kind and name",
			in: podMeta(map[string]string{annoSidecarStatus: sidecarStatus, "kubectl.kubernetes.io/last-applied-configuration": lastApplied},
				map[string]string{"app": "web", labelPodTemplateHash: "5d8f", "security.istio.io/tlsMode": "istio"}, rsOwner),
			proxy: "sidecar/canary", labels: map[string]string{labelPodTemplateHash: "5d8f"}, owner: "ReplicaSet/web-5d8f",
		},
		{
			name:  "status without a revision (before revisions): the default revision",
			in:    podMeta(map[string]string{annoSidecarStatus: `{"containers":["istio-proxy"]}`}, nil),
			proxy: "sidecar/default",
		},
		{
			name:  "waypoint: istiod's gateway controller label and the istio.io/rev annotation",
			in:    podMeta(map[string]string{"istio.io/rev": "canary"}, map[string]string{labelManaged: "istio.io-mesh-controller", "istio.io/dataplane-mode": "none"}),
			proxy: "managed/canary",
		},
		{
			name: "pod-level injection labels are kept for the namespace comparison",
			in: podMeta(map[string]string{annoSidecarStatus: sidecarStatus},
				map[string]string{"istio.io/rev": "canary", labelInject: "true", "team": "a"}),
			proxy: "sidecar/canary", labels: map[string]string{"istio.io/rev": "canary", labelInject: "true"},
		},
		{
			name: "no proxy: nothing but identity and age",
			in: podMeta(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": lastApplied, annoAmbient: "enabled"},
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
			if got := o.Annotations[proxyAnnotation]; got != tc.proxy {
				t.Errorf("proxy %q, want %q", got, tc.proxy)
			}
			if !maps.Equal(o.Labels, tc.labels) {
				t.Errorf("labels %v, want %v", o.Labels, tc.labels)
			}
			owner := ""
			if len(o.OwnerReferences) == 1 {
				owner = o.OwnerReferences[0].Kind + "/" + o.OwnerReferences[0].Name
			}
			if owner != tc.owner {
				t.Errorf("owner %q, want %q", owner, tc.owner)
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

func TestPodProxyIgnoresAmbient(t *testing.T) {
	o := podMeta(map[string]string{proxyAnnotation: "sidecar/canary", annoAmbient: "enabled"}, nil)
	if _, _, ok := podProxy(o); ok {
		t.Error("a pod enrolled in ambient counted as a proxy")
	}
	if got := indexProxyRevision(o); got != nil {
		t.Errorf("an ambient pod indexed under %v", got)
	}
	o.Annotations = map[string]string{proxyAnnotation: "managed/canary"}
	if rev, injected, ok := podProxy(o); !ok || injected || rev != "canary" {
		t.Errorf("waypoint read as %q injected=%v ok=%v", rev, injected, ok)
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
		{nil, nil, "Pod/p"},
	}
	for _, tc := range cases {
		o := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: tc.labels, OwnerReferences: tc.owners}}
		if got := workloadOf(o); got != tc.want {
			t.Errorf("workloadOf(%v, %v) = %q, want %q", tc.labels, tc.owners, got, tc.want)
		}
	}
}

func TestSelectedRevision(t *testing.T) {
	cases := []struct {
		ns, pod map[string]string
		want    string
	}{
		{map[string]string{"istio-injection": "enabled"}, nil, "default"},
		{map[string]string{"istio-injection": "enabled", "istio.io/rev": "canary"}, nil, "default"},
		{map[string]string{"istio-injection": "disabled", "istio.io/rev": "canary"}, nil, ""},
		{map[string]string{"istio-injection": "enabled"}, map[string]string{labelInject: "false"}, ""},
		{map[string]string{"istio.io/rev": "canary"}, nil, "canary"},
		{map[string]string{"istio.io/rev": "canary"}, map[string]string{"istio.io/rev": "stable"}, "canary"},
		{nil, map[string]string{"istio.io/rev": "stable"}, "stable"},
		{nil, map[string]string{labelInject: "true"}, "default"},
		{map[string]string{"istio.io/dataplane-mode": "ambient"}, nil, ""},
		{nil, nil, ""},
	}
	for _, tc := range cases {
		if got := selectedRevision(tc.ns, tc.pod); got != tc.want {
			t.Errorf("selectedRevision(ns %v, pod %v) = %q, want %q", tc.ns, tc.pod, got, tc.want)
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
