package controllers

import (
	"context"
	"encoding/json"
	"maps"
	"slices"

	"istio.io/api/annotation"
	"istio.io/api/label"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Pods are watched as metadata only, and the cache keeps of each pod only
// what the proxy report reads (trimPod): a cluster's pods must not cost the
// operator their full objects. The names Istio gives its markers:
var (
	annoSidecarStatus = annotation.SidecarStatus.Name      // injected sidecars and gateways: JSON holding "revision"
	annoAmbient       = annotation.AmbientRedirection.Name // "enabled" once istio-cni enrolled the pod in ambient
	annoRevision      = annotation.IoIstioRev.Name         // waypoints and istiod-deployed gateways: their revision
	labelManaged      = label.GatewayManaged.Name          // set by istiod's gateway controller on waypoint/gateway pods
	labelInject       = label.SidecarInject.Name           // pod-level injection opt-in/out
)

const (
	// proxyAnnotation replaces, in the operator's pod cache only, Istio's
	// markers with the proxy the pod runs: "sidecar/<revision>" (injected:
	// sidecars and injected gateways) or "managed/<revision>" (waypoints and
	// gateways deployed by istiod). It is never written to a pod.
	proxyAnnotation = "proxies.mesh.meshsettings.io/proxy"
	proxySidecar    = "sidecar/"
	proxyManaged    = "managed/"
	// labelPodTemplateHash is the ReplicaSet's label on its pods; a
	// Deployment's ReplicaSet is named <deployment>-<hash>.
	labelPodTemplateHash = "pod-template-hash"
	// proxyRevisionIndex indexes the pod cache by the revision of the
	// proxy a pod runs (pods with no proxy, or enrolled in ambient, have
	// none): a pass reads only the pods of its own revision.
	proxyRevisionIndex = "proxies.revision"
	// defaultRevision is how Istio names the revision of spec.revision "".
	defaultRevision = "default"
	// ambientEnabled is annoAmbient's value on a pod istio-cni enrolled.
	ambientEnabled = "enabled"
)

// podListGVK lets the reconciler read the metadata-only pod cache.
var podListGVK = corev1.SchemeGroupVersion.WithKind("PodList")

// trimPod keeps, of a pod, its name, namespace, uid, creationTimestamp and,
// for a pod that runs an Envoy proxy reading defaultConfig at start, the
// proxy's revision (proxyAnnotation, instead of the kilobyte JSON of
// sidecar.istio.io/status), the ambient marker, the pod-level injection
// labels, the pod-template-hash label and the controller owner's kind and
// name. A pod with no proxy keeps no labels, annotations or owners.
func trimPod(obj any) (any, error) {
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil // tombstones pass through
	}
	src := o.ObjectMeta
	kept := metav1.ObjectMeta{Name: src.Name, Namespace: src.Namespace, UID: src.UID, CreationTimestamp: src.CreationTimestamp}
	if proxy := proxyOf(src.Annotations, src.Labels); proxy != "" {
		kept.Annotations = map[string]string{proxyAnnotation: proxy}
		if src.Annotations[annoAmbient] == ambientEnabled {
			kept.Annotations[annoAmbient] = ambientEnabled
		}
		for _, k := range []string{labelPodTemplateHash, render.LabelRevision, labelInject} {
			if v, ok := src.Labels[k]; ok {
				if kept.Labels == nil {
					kept.Labels = make(map[string]string, 1)
				}
				kept.Labels[k] = v
			}
		}
		if ref := controllerOf(src.OwnerReferences); ref != nil {
			kept.OwnerReferences = []metav1.OwnerReference{{Kind: ref.Kind, Name: ref.Name}}
		}
	}
	o.ObjectMeta = kept
	return o, nil
}

// proxyOf is proxyAnnotation's value for a pod with these annotations and
// labels, or "" when the pod runs no proxy that reads defaultConfig.
func proxyOf(annotations, labels map[string]string) string {
	if st, ok := annotations[annoSidecarStatus]; ok {
		var s struct {
			Revision string `json:"revision"`
		}
		// A status istiod wrote is JSON; one that does not parse still
		// means an injected proxy, of the default revision (as before
		// revisions existed, when the field was absent).
		_ = json.Unmarshal([]byte(st), &s)
		if s.Revision == "" {
			s.Revision = defaultRevision
		}
		return proxySidecar + s.Revision
	}
	if labels[labelManaged] != "" {
		rev := annotations[annoRevision]
		if rev == "" {
			rev = defaultRevision
		}
		return proxyManaged + rev
	}
	return ""
}

func controllerOf(refs []metav1.OwnerReference) *metav1.OwnerReference {
	for i := range refs {
		if refs[i].Controller != nil && *refs[i].Controller {
			return &refs[i]
		}
	}
	if len(refs) > 0 {
		return &refs[0]
	}
	return nil
}

// podProxy reads a trimmed pod: the revision of its proxy and whether it
// was injected (a sidecar) rather than deployed by istiod. ok is false for
// a pod with no proxy, or one enrolled in ambient: ztunnel serves it, and
// it carries no defaultConfig.
func podProxy(o metav1.Object) (revision string, injected, ok bool) {
	a := o.GetAnnotations()
	v := a[proxyAnnotation]
	switch {
	case v == "" || a[annoAmbient] == ambientEnabled:
		return "", false, false
	case len(v) > len(proxySidecar) && v[:len(proxySidecar)] == proxySidecar:
		return v[len(proxySidecar):], true, true
	case len(v) > len(proxyManaged) && v[:len(proxyManaged)] == proxyManaged:
		return v[len(proxyManaged):], false, true
	}
	return "", false, false
}

// indexProxyRevision is the proxyRevisionIndex of a trimmed pod.
func indexProxyRevision(o client.Object) []string {
	if rev, _, ok := podProxy(o); ok {
		return []string{rev}
	}
	return nil
}

// targetRevision is the revision whose proxies a MeshSettings reports.
func targetRevision(ms *meshv1alpha1.MeshSettings) string {
	if ms.Spec.Revision == "" {
		return defaultRevision
	}
	return ms.Spec.Revision
}

// podEvents turns pod events into passes, cheaply: a pod with no proxy
// costs one map lookup; a created pod starts no pass (a new pod is not
// pending, except in a race with a label change, which the next pass
// sees); a deleted proxy, or a proxy pod whose kept metadata changed (a
// status update changes none of it), starts the pass of the MeshSettings of
// its revision. Every proxy pod event moves proxyGen, so the next pass
// counts again.
func (r *MeshSettingsReconciler) podEvents() handler.TypedEventHandler[client.Object, reconcile.Request] {
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, _ workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if _, _, ok := podProxy(e.Object); ok {
				r.proxyGen.Add(1)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, n := e.ObjectOld, e.ObjectNew
			if maps.Equal(o.GetAnnotations(), n.GetAnnotations()) && maps.Equal(o.GetLabels(), n.GetLabels()) &&
				slices.EqualFunc(o.GetOwnerReferences(), n.GetOwnerReferences(), func(a, b metav1.OwnerReference) bool { return a.Kind == b.Kind && a.Name == b.Name }) {
				return
			}
			r.proxyGen.Add(1)
			for _, obj := range []client.Object{o, n} {
				if rev, _, ok := podProxy(obj); ok {
					r.enqueueRevision(ctx, rev, q)
				}
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if rev, _, ok := podProxy(e.Object); ok {
				r.proxyGen.Add(1)
				r.enqueueRevision(ctx, rev, q)
			}
		},
	}
}

// injectionLabelEvents starts every pass when a namespace's injection
// labels change (which revision its new pods get). A label change that
// selects nothing new costs a comparison of two labels.
func (r *MeshSettingsReconciler) injectionLabelEvents() handler.TypedEventHandler[client.Object, reconcile.Request] {
	return handler.Funcs{
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, n := e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()
			if o[render.LabelInjection] == n[render.LabelInjection] && o[render.LabelRevision] == n[render.LabelRevision] {
				return
			}
			r.proxyGen.Add(1)
			for _, req := range r.list(ctx) {
				q.Add(req)
			}
		},
	}
}

func (r *MeshSettingsReconciler) enqueueRevision(ctx context.Context, rev string, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var list meshv1alpha1.MeshSettingsList
	if err := r.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing MeshSettings")
		return
	}
	for i := range list.Items {
		if targetRevision(&list.Items[i]) == rev {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
}
