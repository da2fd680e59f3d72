// Package controllers holds the MeshSettings reconciler.
package controllers

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Finalizer lets the operator remove what it wrote before a MeshSettings goes.
const Finalizer = "mesh.meshsettings.io/cleanup"

// MeshSettingsReconciler reconciles MeshSettings into Istio's mesh-wide
// configuration: the mesh ConfigMap, istiod's environment and namespace labels.
type MeshSettingsReconciler struct {
	client.Client
	Scheme   *runtime.Scheme
	Recorder events.EventRecorder
	// APIReader reads around the cache (used on deletion, where the cache's
	// trimmed managedFields cannot tell whether others use a ConfigMap).
	APIReader client.Reader

	owned ownedMemo
}

// Everything but Namespaces lives in the control-plane namespace: a Role
// there, not cluster-wide access to every ConfigMap and Deployment. Run with
// --control-plane-namespace=istio-system to match (the deploy manifests do).
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=configmaps,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=apps,namespace=istio-system,resources=deployments,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=events.k8s.io,namespace=istio-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;patch

// Reconcile reads as: fetch -> finalizer -> observe -> plan (pure) -> apply -> status.
func (r *MeshSettingsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	ms := &meshv1alpha1.MeshSettings{}
	if err := r.Get(ctx, req.NamespacedName, ms); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ms.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, ms)
	}
	finalizerAdded := false
	if !controllerutil.ContainsFinalizer(ms, Finalizer) {
		finalizerAdded = true
		orig := ms.DeepCopy()
		controllerutil.AddFinalizer(ms, Finalizer)
		if err := r.Patch(ctx, ms, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
			return ctrl.Result{}, err
		}
	}

	before := ms.Status.DeepCopy()
	var writes []written
	defer func() {
		patched, err := r.patchStatus(ctx, ms, before)
		if err != nil && retErr == nil {
			retErr = err
		}
		if patched || finalizerAdded {
			writes = append(writes, written{obj: &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: ms.Name}},
				resourceVersion: ms.ResourceVersion})
		}
		r.awaitCache(ctx, writes)
	}()

	if winner, err := r.writer(ctx, ms); err != nil {
		return ctrl.Result{}, err
	} else if winner.UID != ms.UID {
		r.stall(ms, meshv1alpha1.ReasonConflict, fmt.Sprintf(
			"MeshSettings %s, created earlier, already targets ConfigMap %s or Deployment %s; this one writes nothing until it is removed",
			winner.Name, render.TargetsFor(&ms.Spec).ConfigMap, render.TargetsFor(&ms.Spec).IstiodDeployment))
		return ctrl.Result{}, nil
	}

	obs, err := r.observe(ctx, ms)
	if err != nil {
		return ctrl.Result{}, r.retrying(ms, err)
	}
	p, err := computePlan(ms, obs)
	if fe, ok := isSpecError(err); ok {
		r.stall(ms, meshv1alpha1.ReasonInvalidSpec, fe.Error()+"; nothing was written")
		r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, meshv1alpha1.ReasonInvalidSpec, "Plan", "%s", fe.Error())
		return ctrl.Result{}, nil
	} else if err != nil {
		return ctrl.Result{}, r.retrying(ms, err)
	}
	writes, err = r.apply(ctx, ms, p)
	if err != nil {
		return ctrl.Result{}, r.retrying(ms, err)
	}
	r.report(ms, p)
	return ctrl.Result{}, nil
}

// writer returns the MeshSettings allowed to write the targets of ms: the
// oldest one targeting the same ConfigMap or istiod (ties broken by name).
func (r *MeshSettingsReconciler) writer(ctx context.Context, ms *meshv1alpha1.MeshSettings) (*meshv1alpha1.MeshSettings, error) {
	var list meshv1alpha1.MeshSettingsList
	if err := r.List(ctx, &list, client.InNamespace(ms.Namespace)); err != nil {
		return nil, err
	}
	mine := render.TargetsFor(&ms.Spec)
	winner := ms
	for i := range list.Items {
		o := &list.Items[i]
		theirs := render.TargetsFor(&o.Spec)
		if theirs.ConfigMap != mine.ConfigMap && theirs.IstiodDeployment != mine.IstiodDeployment {
			continue
		}
		if o.CreationTimestamp.Before(&winner.CreationTimestamp) ||
			(o.CreationTimestamp.Equal(&winner.CreationTimestamp) && o.Name < winner.Name) {
			winner = o
		}
	}
	return winner, nil
}

// observe reads the targets from the cache.
func (r *MeshSettingsReconciler) observe(ctx context.Context, ms *meshv1alpha1.MeshSettings) (*observed, error) {
	t := render.TargetsFor(&ms.Spec)
	obs := &observed{}
	cm := &corev1.ConfigMap{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ms.Namespace, Name: t.ConfigMap}, cm); err == nil {
		obs.configMap = cm
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ms.Namespace, Name: t.IstiodDeployment}, d); err == nil {
		obs.deployment = d
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	nsList := &metav1.PartialObjectMetadataList{}
	nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, nsList, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	obs.namespaces = nsList.Items
	r.owned.prune(obs.namespaces)
	obs.owned = &r.owned
	var all meshv1alpha1.MeshSettingsList
	if err := r.List(ctx, &all); err != nil {
		return nil, err
	}
	obs.existing = make(map[string]bool, len(all.Items))
	for i := range all.Items {
		obs.existing[all.Items[i].Namespace+"/"+all.Items[i].Name] = true
	}
	return obs, nil
}

// apply sends the writes of the plan, each with server-side apply. It sets
// MeshConfigApplied, IstiodEnvApplied and NamespacesLabeled. The three
// targets are independent, so their writes go out concurrently, and the
// namespace writes through a few workers.
func (r *MeshSettingsReconciler) apply(ctx context.Context, ms *meshv1alpha1.MeshSettings, p *plan) ([]written, error) {
	owner := client.FieldOwner(FieldManager)
	writeDeployment := !p.istiodMissing && !p.containerAbsent && p.deploymentApply != nil
	var cmErr, depErr error
	var ns namespaceWrites
	var wg sync.WaitGroup
	if p.configMapApply != nil {
		// Forced: the operator is the authority for the mesh key it merged.
		wg.Go(func() { cmErr = r.Client.Apply(ctx, p.configMapApply, owner, client.ForceOwnership) })
	}
	if writeDeployment {
		// Forced: entries such as Helm's PILOT_TRACE_SAMPLING change hands to the operator.
		wg.Go(func() { depErr = r.Client.Apply(ctx, p.deploymentApply, owner, client.ForceOwnership) })
	}
	wg.Go(func() { ns = r.applyNamespaces(ctx, p.namespaceApplies) })
	wg.Wait()

	writes := ns.written
	if p.configMapApply != nil && cmErr == nil {
		writes = append(writes, written{obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: p.targets.ConfigMap}},
			resourceVersion: ptr.Deref(p.configMapApply.ResourceVersion, ""), created: p.configMapCreated})
	}
	if writeDeployment && depErr == nil {
		writes = append(writes, written{obj: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: p.targets.IstiodDeployment}},
			resourceVersion: ptr.Deref(p.deploymentApply.ResourceVersion, "")})
	}

	var firstErr error
	if p.configMapApply != nil {
		if cmErr != nil {
			r.setCondition(ms, meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, cmErr.Error())
			r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, meshv1alpha1.ReasonApplyFailed, "ApplyConfigMap", "ConfigMap %s: %v", p.targets.ConfigMap, cmErr)
			firstErr = cmErr
		} else {
			r.Recorder.Eventf(ms, nil, corev1.EventTypeNormal, "MeshConfigApplied", "ApplyConfigMap", "Wrote key %q of ConfigMap %s", render.MeshKey, p.targets.ConfigMap)
		}
	}
	if cmErr == nil {
		r.setCondition(ms, meshv1alpha1.ConditionMeshConfigApplied, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("ConfigMap %s holds the mesh document", p.targets.ConfigMap))
	}

	switch {
	case p.istiodMissing:
		r.setCondition(ms, meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			fmt.Sprintf("Deployment %s not found in %s; its environment is written when it appears", p.targets.IstiodDeployment, ms.Namespace))
	case p.containerAbsent:
		r.setCondition(ms, meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			fmt.Sprintf("Deployment %s has no container %s", p.targets.IstiodDeployment, p.targets.IstiodContainer))
	case depErr != nil:
		if apierrors.IsNotFound(depErr) || apierrors.IsConflict(depErr) {
			if firstErr == nil {
				firstErr = fmt.Errorf("deployment %s changed while applying: %w", p.targets.IstiodDeployment, depErr)
			}
		} else {
			r.setCondition(ms, meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, depErr.Error())
			r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, meshv1alpha1.ReasonApplyFailed, "ApplyIstiodEnv", "Deployment %s: %v", p.targets.IstiodDeployment, depErr)
			if firstErr == nil {
				firstErr = depErr
			}
		}
	default:
		if writeDeployment {
			r.Recorder.Eventf(ms, nil, corev1.EventTypeNormal, "IstiodEnvApplied", "ApplyIstiodEnv",
				"Set %d environment entries of %s/%s (istiod restarts)", len(p.env.Env), p.targets.IstiodDeployment, p.targets.IstiodContainer)
		}
		r.setCondition(ms, meshv1alpha1.ConditionIstiodEnvApplied, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("Deployment %s has the %d environment entries", p.targets.IstiodDeployment, len(p.env.Env)))
	}
	if len(p.env.Ignored) > 0 && !equality.Semantic.DeepEqual(ms.Status.IgnoredSettings, p.env.Ignored) {
		for _, s := range p.env.Ignored {
			r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, "SettingIgnored", "Plan", "%s: %s", s.Field, s.Reason)
		}
	}

	if ns.changed > 0 {
		r.Recorder.Eventf(ms, nil, corev1.EventTypeNormal, "NamespacesLabeled", "LabelNamespaces", "Updated labels of %d namespaces", ns.changed)
	}
	switch {
	case ns.err != nil:
		r.setCondition(ms, meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionFalse, meshv1alpha1.ReasonApplyFailed, ns.err.Error())
		r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, meshv1alpha1.ReasonApplyFailed, "LabelNamespace", "Namespace %s: %v", ns.failed, ns.err)
		if firstErr == nil {
			firstErr = ns.err
		}
	case len(p.conflicts) > 0:
		r.setCondition(ms, meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionFalse, meshv1alpha1.ReasonLabelConflict, conflictMessage(p.conflicts))
	default:
		r.setCondition(ms, meshv1alpha1.ConditionNamespacesLabeled, metav1.ConditionTrue, meshv1alpha1.ReasonUpToDate,
			fmt.Sprintf("%d of %d selected namespaces labeled", p.labeled, p.selected))
	}
	return writes, firstErr
}

// namespaceWorkers bounds the concurrent namespace writes.
const namespaceWorkers = 8

type namespaceWrites struct {
	changed int
	written []written
	err     error
	failed  string
}

// applyNamespaces sends the namespace applies through a few workers and
// stops at the first error that is not a deleted or re-created namespace.
func (r *MeshSettingsReconciler) applyNamespaces(ctx context.Context, acs []*corev1ac.NamespaceApplyConfiguration) namespaceWrites {
	var res namespaceWrites
	var mu sync.Mutex
	var next atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(namespaceWorkers, len(acs)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(acs) || ctx.Err() != nil {
					return
				}
				// Not forced: a label another manager holds is reported, not taken.
				err := r.Client.Apply(ctx, acs[i], client.FieldOwner(FieldManager))
				mu.Lock()
				switch {
				case err == nil:
					res.changed++
					nsMeta := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: *acs[i].Name}}
					nsMeta.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Namespace"))
					res.written = append(res.written, written{obj: nsMeta, resourceVersion: ptr.Deref(acs[i].ResourceVersion, "")})
				case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
					// deleted or re-created meanwhile: its event brings a new reconcile
				case res.err == nil:
					res.err, res.failed = err, *acs[i].Name
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

func conflictMessage(conflicts []meshv1alpha1.LabelConflict) string {
	parts := make([]string, 0, len(conflicts))
	for _, c := range conflicts {
		parts = append(parts, fmt.Sprintf("namespace %s: %s", c.Namespace, c.Message))
	}
	sort.Strings(parts)
	if len(parts) > 5 {
		parts = append(parts[:5], fmt.Sprintf("and %d more (see status.namespaces.conflicts)", len(conflicts)-5))
	}
	return strings.Join(parts, "; ")
}

// report fills the status fields and the summary conditions after the writes.
func (r *MeshSettingsReconciler) report(ms *meshv1alpha1.MeshSettings, p *plan) {
	st := &ms.Status
	st.MeshConfig = &meshv1alpha1.MeshConfigStatus{ConfigMapName: p.targets.ConfigMap, Hash: p.meshHash}
	st.Istiod = &meshv1alpha1.IstiodStatus{DeploymentName: p.targets.IstiodDeployment, Version: p.istiodTag}
	st.Namespaces = &meshv1alpha1.NamespacesStatus{Selected: p.selected, Labeled: p.labeled, Conflicts: p.conflicts}
	st.IgnoredSettings = p.env.Ignored

	removeCondition(ms, meshv1alpha1.ConditionReconciling)
	var warnings []string
	if p.selectorWarning != "" {
		warnings = append(warnings, "warning: "+p.selectorWarning)
	}
	if len(p.env.Ignored) > 0 {
		warnings = append(warnings, fmt.Sprintf("%d settings ignored by istiod %s (see status.ignoredSettings)", len(p.env.Ignored), p.istiodTag))
	}
	suffix := ""
	if len(warnings) > 0 {
		suffix = "; " + strings.Join(warnings, "; ")
	}
	switch {
	case len(p.conflicts) > 0:
		msg := "Namespace labels held by other managers: " + conflictMessage(p.conflicts)
		r.setCondition(ms, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, meshv1alpha1.ReasonLabelConflict, msg)
		r.setCondition(ms, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonLabelConflict, msg)
	case p.istiodMissing || p.containerAbsent:
		removeCondition(ms, meshv1alpha1.ConditionStalled)
		r.setCondition(ms, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonIstiodNotFound,
			"Mesh ConfigMap written; waiting for istiod Deployment "+p.targets.IstiodDeployment+suffix)
	default:
		removeCondition(ms, meshv1alpha1.ConditionStalled)
		r.setCondition(ms, meshv1alpha1.ConditionReady, metav1.ConditionTrue, meshv1alpha1.ReasonReconciled,
			fmt.Sprintf("Mesh configuration applied to ConfigMap %s, Deployment %s and %d namespaces%s",
				p.targets.ConfigMap, p.targets.IstiodDeployment, p.labeled, suffix))
	}
	if p.selectorWarning != "" && !strings.Contains(conditionMessage(ms.Status.Conditions, meshv1alpha1.ConditionReady), p.selectorWarning) {
		r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, "DiscoverySelectors", "Plan", "%s", p.selectorWarning)
	}
	st.ObservedGeneration = ms.Generation
}

// stall records a problem only the user can fix: Stalled and Ready=False.
func (r *MeshSettingsReconciler) stall(ms *meshv1alpha1.MeshSettings, reason, msg string) {
	removeCondition(ms, meshv1alpha1.ConditionReconciling)
	r.setCondition(ms, meshv1alpha1.ConditionStalled, metav1.ConditionTrue, reason, msg)
	r.setCondition(ms, meshv1alpha1.ConditionReady, metav1.ConditionFalse, reason, msg)
	ms.Status.ObservedGeneration = ms.Generation
}

// retrying records a transient error; the returned error requeues with backoff.
// A Stalled from an earlier generation no longer holds: the controller is
// making progress again.
func (r *MeshSettingsReconciler) retrying(ms *meshv1alpha1.MeshSettings, err error) error {
	removeCondition(ms, meshv1alpha1.ConditionStalled)
	r.setCondition(ms, meshv1alpha1.ConditionReconciling, metav1.ConditionTrue, meshv1alpha1.ReasonProgressing, "Retrying after error: "+err.Error())
	if conditionStatus(ms.Status.Conditions, meshv1alpha1.ConditionReady) != metav1.ConditionFalse {
		r.setCondition(ms, meshv1alpha1.ConditionReady, metav1.ConditionFalse, meshv1alpha1.ReasonProgressing, "Retrying after error: "+err.Error())
	}
	return err
}

// patchStatus writes the status only when it changed.
// patchStatus writes the status when it changed, and reports whether it did.
func (r *MeshSettingsReconciler) patchStatus(ctx context.Context, ms *meshv1alpha1.MeshSettings, before *meshv1alpha1.MeshSettingsStatus) (bool, error) {
	if equality.Semantic.DeepEqual(before, &ms.Status) {
		return false, nil
	}
	orig := ms.DeepCopy()
	orig.Status = *before
	err := r.Status().Patch(ctx, ms, client.MergeFrom(orig), client.FieldOwner(FieldManager))
	return err == nil, client.IgnoreNotFound(err)
}

func (r *MeshSettingsReconciler) setCondition(ms *meshv1alpha1.MeshSettings, t string, s metav1.ConditionStatus, reason, msg string) {
	setCondition(&ms.Status.Conditions, metav1.Condition{
		Type: t, Status: s, Reason: reason, Message: msg, ObservedGeneration: ms.Generation,
	})
}

// Setup wires a reconciler to the manager's client, cache reader and event
// recorder and registers it: main.go and every test suite run this same wiring.
func Setup(mgr ctrl.Manager) error {
	return (&MeshSettingsReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder(FieldManager),
		APIReader: mgr.GetAPIReader(),
	}).SetupWithManager(mgr)
}

// SetupWithManager registers the reconciler and its watches: MeshSettings,
// and exactly the objects it writes (ConfigMaps, Deployments, Namespaces as
// metadata only), each mapped back to the MeshSettings of their namespace.
func (r *MeshSettingsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&meshv1alpha1.MeshSettings{}).
		// Another MeshSettings' arrival or departure decides who writes.
		Watches(&meshv1alpha1.MeshSettings{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, createdOrDeleted()))).
		WatchesMetadata(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(r.all),
			builder.WithPredicates(predicate.Or(predicate.LabelChangedPredicate{}, createdOrDeleted()))).
		Named("meshsettings").
		Complete(r)
}

func createdOrDeleted() predicate.Predicate {
	return predicate.Funcs{
		CreateFunc:  func(_ event.CreateEvent) bool { return true },
		DeleteFunc:  func(_ event.DeleteEvent) bool { return true },
		UpdateFunc:  func(e event.UpdateEvent) bool { return !e.ObjectNew.GetDeletionTimestamp().IsZero() },
		GenericFunc: func(_ event.GenericEvent) bool { return false },
	}
}

func (r *MeshSettingsReconciler) inNamespace(ctx context.Context, o client.Object) []reconcile.Request {
	return r.list(ctx, client.InNamespace(o.GetNamespace()))
}

func (r *MeshSettingsReconciler) all(ctx context.Context, _ client.Object) []reconcile.Request {
	return r.list(ctx)
}

func (r *MeshSettingsReconciler) list(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list meshv1alpha1.MeshSettingsList
	if err := r.List(ctx, &list, opts...); err != nil {
		logf.FromContext(ctx).Error(err, "listing MeshSettings")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
