package controllers

import (
	"context"
	"encoding/json"
	"strings"

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

// proxyRecord is what the report knows of a pod's proxy. In the cache it is
// one string in metadata.generateName (encode), a field the operator
// otherwise never reads of a pod: labels, annotations and owner references
// would be maps and slices of their own, about 700 bytes a pod more
// (TestTrimmedPodCacheHeap), the difference between 50,000 pods fitting
// issue 19's 32 MiB or not.
type proxyRecord struct {
	// revision of the proxy: from sidecar.istio.io/status for an injected
	// proxy, from the istio.io/rev annotation for a waypoint.
	revision string
	// injected: a sidecar or injected gateway (sidecar.istio.io/status);
	// otherwise deployed by istiod's gateway controller (a waypoint).
	injected bool
	// podRevision and podInject are the pod's own istio.io/rev and
	// sidecar.istio.io/inject labels, which select a revision too.
	podRevision, podInject string
	// workload owning the pod (workloadOf).
	workload string
}

// recordSep cannot occur in a revision, a label value or a workload name.
const recordSep = "|"

func (p proxyRecord) encode() string {
	kind := "m"
	if p.injected {
		kind = "s"
	}
	return strings.Join([]string{kind, p.revision, p.podRevision, p.podInject, p.workload}, recordSep)
}

// podProxy reads the record of a trimmed pod; ok is false for a pod with no
// proxy that reads defaultConfig, or one enrolled in ambient (ztunnel
// serves it; it carries no defaultConfig).
func podProxy(o metav1.Object) (proxyRecord, bool) {
	f := strings.Split(o.GetGenerateName(), recordSep)
	if len(f) != 5 || f[1] == "" {
		return proxyRecord{}, false
	}
	return proxyRecord{injected: f[0] == "s", revision: f[1], podRevision: f[2], podInject: f[3], workload: f[4]}, true
}

// trimPod keeps, of a pod, its name, namespace, uid, creationTimestamp and,
// for a pod that runs an Envoy proxy reading defaultConfig at start and is
// not enrolled in ambient, its proxyRecord (the revision parsed out of the
// kilobyte JSON of sidecar.istio.io/status, the pod-level injection labels
// and the owning workload from the owner reference and pod-template-hash).
// Nothing else: no labels, annotations, owners or managedFields.
func trimPod(obj any) (any, error) {
	o, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil // tombstones pass through
	}
	src := o.ObjectMeta
	kept := metav1.ObjectMeta{Name: src.Name, Namespace: src.Namespace, UID: src.UID, CreationTimestamp: src.CreationTimestamp}
	if rev, injected := proxyOf(src.Annotations, src.Labels); rev != "" && src.Annotations[annoAmbient] != ambientEnabled {
		kept.GenerateName = proxyRecord{revision: rev, injected: injected,
			podRevision: src.Labels[render.LabelRevision], podInject: src.Labels[labelInject],
			workload: workloadOf(src.Name, src.Labels, src.OwnerReferences)}.encode()
	}
	o.ObjectMeta = kept
	return o, nil
}

// proxyOf is the revision of the proxy a pod with these annotations and
// labels runs, "" when it runs none that reads defaultConfig, and whether
// it was injected.
func proxyOf(annotations, labels map[string]string) (string, bool) {
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
		return s.Revision, true
	}
	if labels[labelManaged] != "" {
		rev := annotations[annoRevision]
		if rev == "" {
			rev = defaultRevision
		}
		return rev, false
	}
	return "", false
}

// workloadOf names the workload owning a pod: the Deployment of a
// ReplicaSet named <deployment>-<pod-template-hash>, else the controller
// owner (the first owner without one), else the pod itself.
func workloadOf(name string, labels map[string]string, refs []metav1.OwnerReference) string {
	var ref *metav1.OwnerReference
	for i := range refs {
		if ref == nil || (refs[i].Controller != nil && *refs[i].Controller) {
			ref = &refs[i]
		}
	}
	if ref == nil {
		return "Pod/" + name
	}
	if ref.Kind == "ReplicaSet" {
		if h := labels[labelPodTemplateHash]; h != "" {
			if d, ok := strings.CutSuffix(ref.Name, "-"+h); ok && d != "" {
				return "Deployment/" + d
			}
		}
	}
	return ref.Kind + "/" + ref.Name
}

// indexProxyRevision is the proxyRevisionIndex of a trimmed pod.
func indexProxyRevision(o client.Object) []string {
	if p, ok := podProxy(o); ok {
		return []string{p.revision}
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
			if _, ok := podProxy(e.Object); ok {
				r.proxyGen.Add(1)
			}
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			o, n := e.ObjectOld, e.ObjectNew
			if o.GetGenerateName() == n.GetGenerateName() {
				return // a status update, or labels the report does not read
			}
			r.proxyGen.Add(1)
			for _, obj := range []client.Object{o, n} {
				if p, ok := podProxy(obj); ok {
					r.enqueueRevision(ctx, p.revision, q)
				}
			}
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			if p, ok := podProxy(e.Object); ok {
				r.proxyGen.Add(1)
				r.enqueueRevision(ctx, p.revision, q)
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
