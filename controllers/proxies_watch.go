package controllers

import (
	"context"
	"encoding/json"
	"strings"

	"istio.io/api/annotation"
	"istio.io/api/label"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Pods are watched as metadata only, and the operator keeps of each pod only
// what the proxy report reads (podStore): a cluster's pods must not cost
// the operator their objects. The names Istio gives its markers:
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
	// defaultRevision is how Istio names the revision of spec.revision "".
	defaultRevision = "default"
	// ambientEnabled is annoAmbient's value on a pod istio-cni enrolled.
	ambientEnabled = "enabled"
)

// proxyRecord is what the report knows of a pod's proxy (podStore).
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

// targetRevision is the revision whose proxies a MeshSettings reports.
func targetRevision(ms *meshv1alpha1.MeshSettings) string {
	if ms.Spec.Revision == "" {
		return defaultRevision
	}
	return ms.Spec.Revision
}

// injectionLabelsChanged tells whether a namespace's injection labels, which
// decide the revision its new pods get, differ between old and new.
func injectionLabelsChanged(o, n map[string]string) bool {
	return o[render.LabelInjection] != n[render.LabelInjection] || o[render.LabelRevision] != n[render.LabelRevision]
}

func (r *MeshSettingsReconciler) enqueueRevision(ctx context.Context, rev string, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	var list meshv1alpha1.MeshSettingsList
	// Only names and revisions are read: no deep copy per pod deletion.
	if err := r.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		logf.FromContext(ctx).Error(err, "listing MeshSettings")
		return
	}
	for i := range list.Items {
		if targetRevision(&list.Items[i]) == rev {
			q.Add(reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
		}
	}
}
