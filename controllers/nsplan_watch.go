package controllers

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// metricLabel is the label of the planning metrics: "<namespace>/<name>" of a MeshSettings.
const metricLabel = "meshsettings"

// Metrics of the namespace planning, so a benchmark can tell an incremental
// pass from a full walk without timing it.
var (
	namespacesEvaluated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshsettings_namespaces_evaluated_total",
		Help: "Namespaces a MeshSettings evaluated against its rules, over all passes.",
	}, []string{metricLabel})
	namespaceWalks = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshsettings_namespace_walks_total",
		Help: "Passes of a MeshSettings that evaluated every namespace (first pass, selection or MeshSettings set changed).",
	}, []string{metricLabel})
)

func init() {
	metrics.Registry.MustRegister(namespacesEvaluated, namespaceWalks)
}

// namespaceEvents marks the namespace of each event dirty in every
// MeshSettings' index, then enqueues every MeshSettings. The queue folds a
// burst of events into one pass per MeshSettings, which plans just the
// namespaces of the burst. A change of a namespace's injection labels (which
// revision its new pods get) also moves proxyGen first, so those passes
// count the proxies again.
func (r *MeshSettingsReconciler) namespaceEvents() handler.EventHandler {
	type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
	changed := func(ctx context.Context, o client.Object, q queue) {
		r.nsplans.markDirty(o.GetName())
		for _, req := range r.list(ctx) {
			q.Add(req)
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q queue) { changed(ctx, e.Object, q) },
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q queue) {
			if injectionLabelsChanged(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) {
				r.proxyGen.Add(1)
			}
			changed(ctx, e.ObjectNew, q)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q queue) { changed(ctx, e.Object, q) },
	}
}

// namespaceChanged passes the namespace events that can change a plan:
// creation, deletion, labels, the owner annotation, and the operator's own
// managedFields entry (the labels it owns; the cache keeps only that entry).
func namespaceChanged() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc: func(event.CreateEvent) bool { return true },
		DeleteFunc: func(event.DeleteEvent) bool { return true },
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, n := e.ObjectOld, e.ObjectNew
			return !n.GetDeletionTimestamp().IsZero() ||
				!maps.Equal(o.GetLabels(), n.GetLabels()) ||
				o.GetAnnotations()[OwnerAnnotation] != n.GetAnnotations()[OwnerAnnotation] ||
				!ownEntryEqual(o.GetManagedFields(), n.GetManagedFields())
		},
		GenericFunc: func(event.GenericEvent) bool { return false },
	}
}

// ownEntryEqual compares the operator's Apply entries of two managedFields.
func ownEntryEqual(a, b []metav1.ManagedFieldsEntry) bool {
	own := func(fs []metav1.ManagedFieldsEntry) []string {
		var out []string
		for _, f := range fs {
			if f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" {
				out = append(out, f.FieldsV1.GetRawString())
			}
		}
		return out
	}
	return slices.Equal(own(a), own(b))
}

// observeNamespaces reads what the pass re-evaluates: every namespace for a
// full walk, else only the namespaces the work names (Get, not List), and
// istiod's namespace for selectorWarning. A read that fails gives the work
// back.
func (r *MeshSettingsReconciler) observeNamespaces(ctx context.Context, ms *meshv1alpha1.MeshSettings, obs *observed) (err error) {
	w := r.nsplans.get(client.ObjectKeyFromObject(ms)).begin(&ms.Spec, obs.existing)
	defer func() {
		if err != nil {
			w.finish(nil, nil)
		}
	}()
	istiodNS := &metav1.PartialObjectMetadata{}
	istiodNS.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
	if err := r.Get(ctx, client.ObjectKey{Name: ms.Namespace}, istiodNS); err == nil {
		obs.istiodNamespaceLabels = istiodNS.Labels
	} else if !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading namespace %s: %w", ms.Namespace, err)
	}
	if w.full {
		nsList := &metav1.PartialObjectMetadataList{}
		nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
		if err := r.List(ctx, nsList, client.UnsafeDisableDeepCopy); err != nil {
			return fmt.Errorf("listing namespaces: %w", err)
		}
		obs.namespaces = nsList.Items
	} else {
		obs.namespaces = make([]metav1.PartialObjectMetadata, 0, len(w.names))
		for _, name := range w.names {
			ns := metav1.PartialObjectMetadata{}
			ns.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
			// Shallow: the plan only reads, as the full walk's list does.
			switch err := r.Get(ctx, client.ObjectKey{Name: name}, &ns, client.UnsafeDisableDeepCopy); {
			case err == nil:
				obs.namespaces = append(obs.namespaces, ns)
			case !apierrors.IsNotFound(err):
				return fmt.Errorf("reading namespace %s: %w", name, err)
			}
		}
	}
	obs.nsWork = w
	return nil
}
