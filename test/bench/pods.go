package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// podObjects are n Pods spread over the selected namespaces, with the
// metadata an injected pod of a Deployment carries (owner ReplicaSet,
// Istio's labels and the sidecar status annotation), so the operator's pod
// watch holds what it would hold on a real cluster. No kubelet runs, so
// they stay Pending.
func (p population) podObjects(namespaces int, n int) []client.Object {
	nss := p.selectedNames(0, namespaces)
	if len(nss) == 0 || n == 0 {
		return nil
	}
	status := `{"initContainers":["istio-init"],"containers":["istio-proxy"],"volumes":["workload-socket","credential-socket",` +
		`"workload-certs","istio-envoy","istio-data","istio-podinfo","istio-token","istiod-ca-cert"],"imagePullSecrets":null,"revision":"canary"}`
	out := make([]client.Object, 0, n)
	for i := 0; i < n; i++ {
		app := fmt.Sprintf("app-%d", i%10)
		hash := fmt.Sprintf("%08x", i/len(nss)%7+0x5d4c3b2a)
		out = append(out, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name:      fmt.Sprintf("%s-%s-%05d", app, hash, i),
				Namespace: nss[i%len(nss)],
				Labels: map[string]string{
					populationLabel: "true", "app": app, "pod-template-hash": hash,
					"security.istio.io/tlsMode": "istio", "service.istio.io/canonical-name": app,
					"service.istio.io/canonical-revision": "latest",
				},
				Annotations: map[string]string{
					"sidecar.istio.io/status":                          status,
					"kubectl.kubernetes.io/default-container":          "app",
					"kubectl.kubernetes.io/default-logs-container":     "app",
					"prometheus.io/path":                               "/stats/prometheus",
					"prometheus.io/port":                               "15020",
					"prometheus.io/scrape":                             "true",
					"istio.io/rev":                                     "canary",
					"sidecar.istio.io/interceptionMode":                "REDIRECT",
					"traffic.sidecar.istio.io/includeInboundPorts":     "*",
					"traffic.sidecar.istio.io/excludeInboundPorts":     "15020",
					"traffic.sidecar.istio.io/includeOutboundIPRanges": "*",
				},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "apps/v1", Kind: "ReplicaSet", Name: app + "-" + hash,
					UID: types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i%100000)), Controller: ptr.To(true),
				}},
			},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{
					{Name: "app", Image: "registry.example.com/app:1.0.0"},
					{Name: "istio-proxy", Image: "docker.io/istio/proxyv2:1.28.1", Args: []string{"proxy", "sidecar"}},
				},
			},
		})
	}
	return out
}

// phasePods measures what the pods cost the operator's memory: at the
// grown population, n Pods are created, and a restarted operator's peak
// RSS is compared with that of the operator restarted just before on the
// same namespaces without them.
func (b *bench) phasePods(ctx context.Context, op *operator, namespaces int, withoutPods int64) (*operator, error) {
	objs := b.cfg.pop.podObjects(namespaces, b.cfg.pods)
	if len(objs) == 0 {
		return op, nil
	}
	logf("== %d pods in %d selected namespaces", len(objs), len(b.cfg.pop.selectedNames(0, namespaces)))
	// The pods are created as injected already: with no istiod running,
	// the chart's injection webhook would refuse them.
	var hooks admissionv1.MutatingWebhookConfigurationList
	if err := b.c.List(ctx, &hooks); err != nil {
		return op, err
	}
	for i := range hooks.Items {
		if strings.HasPrefix(hooks.Items[i].Name, "istio-sidecar-injector") {
			if err := b.c.Delete(ctx, &hooks.Items[i]); err != nil {
				return op, err
			}
		}
	}
	took, err := create(ctx, b.c, objs, b.cfg.workers)
	if err != nil {
		return op, err
	}
	b.setupTook(fmt.Sprintf("%d pods created (%.0f/s)", len(objs), float64(len(objs))/took.Seconds()), took)
	if _, err := op.waitIdle(ctx, 2*time.Second, 5*time.Minute); err != nil {
		return op, err
	}
	b.note("operator %s after the pods were created: %s", op.name, op.memory())
	op.Stop()
	start := time.Now()
	next, err := b.startOperator(ctx, fmt.Sprintf("pods-%d", namespaces))
	if err != nil {
		return nil, err
	}
	if rest := b.cfg.steadyMin - time.Since(start); rest > 0 {
		time.Sleep(rest)
	}
	st, err := next.waitIdle(ctx, 3*time.Second, 3*time.Minute)
	if err != nil {
		return next, err
	}
	m, err := next.scrape(ctx)
	if err != nil {
		return next, err
	}
	mem := next.memory()
	more := mem.hwm - withoutPods
	b.note("%d namespaces + %d pods, restarted: %.0f reconciles, requests %s; %s (without the pods: %s)",
		namespaces, len(objs), st.reconciles, m.requests(), mem, mib(withoutPods))
	b.add(fmt.Sprintf("peak RSS with %d pods, restarted (%d namespaces)", len(objs), namespaces),
		fmt.Sprintf("%s = %s more than without them", mib(mem.hwm), mib(more)), "<= 32 MiB more", ptrBool(more <= 32<<20))
	b.add(fmt.Sprintf("write requests after a restart with %d pods (%.0f reconciles)", len(objs), st.reconciles),
		fmt.Sprint(m.requests().writes()), "0", ptrBool(m.requests().writes() == 0 && st.reconciles > 0))
	return next, nil
}
