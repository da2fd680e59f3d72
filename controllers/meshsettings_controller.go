// Package controllers holds the MeshSettings reconciler.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
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
	Recorder events.EventRecorder
	// APIReader reads around the cache (used on deletion, where the cache's
	// trimmed managedFields cannot tell whether others use a ConfigMap).
	APIReader client.Reader

	owned    ownedMemo
	rollouts rolloutMemo
	// nsplans keeps each MeshSettings' namespace plan between passes (nsplan.go).
	nsplans nsIndexes
	// proxyGen moves on every event of a proxy pod or injection label;
	// proxies memoizes the proxy count of each MeshSettings against it.
	proxyGen atomic.Uint64
	proxies  proxyMemo
	// pods is the store of proxy pods (proxies_store.go); podQueue is the
	// controller's queue once it started, for the passes pod events start.
	pods     *podStore
	podQueue atomic.Pointer[workqueue.TypedRateLimitingInterface[reconcile.Request]]
}

// Everything but Namespaces lives in the control-plane namespace: a Role
// there, not cluster-wide access to every ConfigMap and Deployment. Run with
// --control-plane-namespace=istio-system to match (the deploy manifests do).
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,namespace=istio-system,resources=meshsettings/finalizers,verbs=update
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=configmaps,verbs=get;list;watch;create
// +kubebuilder:rbac:groups="",namespace=istio-system,resources=configmaps,verbs=patch;delete,resourceNames=istio
// +kubebuilder:rbac:groups=apps,namespace=istio-system,resources=deployments,verbs=get;list;watch
// +kubebuilder:rbac:groups=apps,namespace=istio-system,resources=deployments,verbs=patch,resourceNames=istiod
// +kubebuilder:rbac:groups=events.k8s.io,namespace=istio-system,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch;patch
// Pods are only read, as metadata, to report proxies to restart.
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// longPass is the number of namespace writes from which a pass for a new
// generation first marks the status Reconciling, before the writes.
const longPass = 50

// Reconcile reads as: fetch -> observe -> desired state (pure) -> apply ->
// status (pure) -> one status write, with events from the status change.
// The status write is deferred first, before the deletion branch, so every
// pass ends with it.
func (r *MeshSettingsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (_ ctrl.Result, retErr error) {
	ms := &meshv1alpha1.MeshSettings{}
	if err := r.Get(ctx, req.NamespacedName, ms); err != nil {
		if apierrors.IsNotFound(err) {
			r.nsplans.drop(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	in := &pass{generation: ms.Generation, namespace: ms.Namespace, targets: render.TargetsFor(&ms.Spec)}
	var writes []written
	statusBase := ms.DeepCopy()
	defer func() {
		if in.deleting && in.cleanupErr == nil {
			return // released: the object and its status are gone
		}
		wrote, err := r.writeStatus(ctx, statusBase, ms, in)
		if wrote {
			writes = append(writes, writtenMeshSettings(ms))
		}
		if err != nil && retErr == nil {
			retErr = err // the status must be written: retry the pass
		}
		if !in.deleting {
			r.awaitCache(ctx, writes)
		}
	}()

	if !ms.DeletionTimestamp.IsZero() {
		r.proxies.forget(ms.UID)
		in.deleting = true
		r.nsplans.drop(req.NamespacedName)
		in.cleanupErr = r.finalize(ctx, ms)
		return ctrl.Result{}, in.cleanupErr
	}
	if !controllerutil.ContainsFinalizer(ms, Finalizer) {
		orig := ms.DeepCopy()
		controllerutil.AddFinalizer(ms, Finalizer)
		if err := r.Patch(ctx, ms, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
			in.err = fmt.Errorf("adding finalizer to MeshSettings %s/%s: %w", ms.Namespace, ms.Name, err)
			return ctrl.Result{}, in.err
		}
		statusBase.ResourceVersion = ms.ResourceVersion
		statusBase.Finalizers = ms.Finalizers
		writes = append(writes, writtenMeshSettings(ms))
	}

	if winner, err := r.writer(ctx, ms); err != nil {
		in.err = err
		return ctrl.Result{}, err
	} else if winner.UID != ms.UID {
		in.conflictWith = winner.Name
		r.nsplans.drop(req.NamespacedName) // plans nothing; a full walk once it writes
		return ctrl.Result{}, nil
	}
	obs, err := r.observe(ctx, ms)
	if err != nil {
		in.err = err
		return ctrl.Result{}, err
	}
	// Namespaces left unplanned or unwritten stay dirty for the next pass.
	defer func() {
		var applies []*corev1ac.NamespaceApplyConfiguration
		if in.plan != nil {
			applies = in.plan.namespaceApplies
		}
		obs.nsWork.finish(applies, in.ns.written)
	}()
	p, err := computePlan(ms, obs)
	var fe *render.FieldError
	var de *render.MeshDocumentError
	switch {
	case errors.As(err, &fe):
		in.specErr = fe
		return ctrl.Result{}, nil
	case errors.As(err, &de):
		in.docErr = de
		return ctrl.Result{}, nil
	case err != nil:
		in.err = fmt.Errorf("planning MeshSettings %s/%s: %w", ms.Namespace, ms.Name, err)
		return ctrl.Result{}, in.err
	}
	in.plan = p
	obs.namespaces = nil // planned: a full walk's list is not kept through the writes
	if ms.Generation != ms.Status.ObservedGeneration && len(p.namespaceApplies) >= longPass {
		// Say Reconciling for the new generation before the long work, so an
		// operator dying meanwhile does not leave the old Ready=True standing.
		in.starting = true
		if wrote, _ := r.writeStatus(ctx, statusBase, ms, in); wrote {
			statusBase = ms.DeepCopy()
		}
		in.starting = false
	}
	writes = append(writes, r.apply(ctx, ms, in)...)
	r.observeProxies(ctx, ms, obs, in)
	if in.proxies != nil {
		in.rollout = r.rolloutPass(ctx, ms, in.proxies.since, in.proxies.pendingDeployments())
	}
	if err := in.retryErr(); err != nil {
		return ctrl.Result{}, err
	}
	// The operator watches no Deployment outside istiod's namespace: while
	// one it restarted rolls, the pass looks again after a while.
	return ctrl.Result{RequeueAfter: in.rollout.requeue()}, nil
}

func writtenMeshSettings(ms *meshv1alpha1.MeshSettings) written {
	return written{obj: &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: ms.Name}},
		resourceVersion: ms.ResourceVersion}
}

// writeStatus derives the status of the pass, sends its events and writes
// it when it changed. It reports whether it wrote.
func (r *MeshSettingsReconciler) writeStatus(ctx context.Context, base, ms *meshv1alpha1.MeshSettings, in *pass) (bool, error) {
	ms.Status = deriveStatus(&base.Status, in, metav1.Now())
	for _, e := range transitions(&base.Status, &ms.Status, in) {
		r.Recorder.Eventf(ms, nil, e.eventType, e.reason, e.action, "%s", e.note)
	}
	if equality.Semantic.DeepEqual(&base.Status, &ms.Status) {
		return false, nil
	}
	log := logf.FromContext(ctx)
	err := r.Status().Patch(ctx, ms, client.MergeFrom(base), client.FieldOwner(FieldManager))
	if apierrors.IsNotFound(err) {
		return false, nil // deleted meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("writing the status of MeshSettings %s/%s: %w", ms.Namespace, ms.Name, err)
	}
	ready := meta.FindStatusCondition(ms.Status.Conditions, meshv1alpha1.ConditionReady)
	kv := []any{"meshsettings", client.ObjectKeyFromObject(ms), "observedGeneration", ms.Status.ObservedGeneration}
	if ready != nil {
		kv = append(kv, "ready", ready.Status, "reason", ready.Reason)
	}
	log.Info("wrote status", kv...)
	return true, nil
}

// writer returns the MeshSettings allowed to write the targets of ms: the
// oldest one targeting the same ConfigMap or istiod (ties broken by name).
func (r *MeshSettingsReconciler) writer(ctx context.Context, ms *meshv1alpha1.MeshSettings) (*meshv1alpha1.MeshSettings, error) {
	var list meshv1alpha1.MeshSettingsList
	// Shallow: read only; every pass, namespace events included, runs this.
	if err := r.List(ctx, &list, client.InNamespace(ms.Namespace), client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing MeshSettings in %s: %w", ms.Namespace, err)
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
		return nil, fmt.Errorf("reading ConfigMap %s/%s: %w", ms.Namespace, t.ConfigMap, err)
	}
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: ms.Namespace, Name: t.IstiodDeployment}, d); err == nil {
		obs.deployment = d
	} else if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading Deployment %s/%s: %w", ms.Namespace, t.IstiodDeployment, err)
	}
	var all meshv1alpha1.MeshSettingsList
	if err := r.List(ctx, &all, client.UnsafeDisableDeepCopy); err != nil { // names only
		return nil, fmt.Errorf("listing MeshSettings: %w", err)
	}
	obs.existing = make(map[string]bool, len(all.Items))
	for i := range all.Items {
		obs.existing[all.Items[i].Namespace+"/"+all.Items[i].Name] = true
	}
	obs.owned = &r.owned
	if err := r.observeNamespaces(ctx, ms, obs); err != nil {
		return nil, err
	}
	return obs, nil
}

// apply sends the writes of the plan, each with server-side apply, and
// records their outcome in the pass (the status is derived from it later).
// The three targets are independent, so their writes go out concurrently,
// and the namespace writes through a few workers.
func (r *MeshSettingsReconciler) apply(ctx context.Context, ms *meshv1alpha1.MeshSettings, in *pass) []written {
	log := logf.FromContext(ctx)
	p := in.plan
	owner := client.FieldOwner(FieldManager)
	in.cmSent = p.configMapApply != nil
	in.depSent = !p.istiodMissing && !p.containerAbsent && p.deploymentApply != nil
	var wg sync.WaitGroup
	if in.cmSent {
		// Forced: with Own the operator owns the ConfigMap; with Merge it has
		// checked that no manager applies the mesh key server-side, and an
		// Update manager (Helm 3) takes it back on its next write without a
		// conflict, after which the operator merges once more.
		wg.Go(func() { in.cmErr = r.Apply(ctx, p.configMapApply, owner, client.ForceOwnership) })
	}
	if in.depSent {
		// Not forced: an entry another manager holds is left to it and
		// reported (planEnv). A conflict means the cache had not seen that
		// manager's write yet: the retry plans without the entry.
		wg.Go(func() { in.depErr = r.Apply(ctx, p.deploymentApply, owner) })
	}
	wg.Go(func() { in.ns = r.applyNamespaces(ctx, p.namespaceApplies) })
	wg.Wait()

	cm := ms.Namespace + "/" + p.targets.ConfigMap
	dep := ms.Namespace + "/" + p.targets.IstiodDeployment
	if in.cmErr != nil {
		in.cmErr = fmt.Errorf("applying ConfigMap %s: %w", cm, in.cmErr)
	}
	if in.depErr != nil {
		in.depErr = fmt.Errorf("applying the env of Deployment %s: %w", dep, in.depErr)
	}
	if in.ns.err != nil {
		in.ns.err = fmt.Errorf("labeling namespace %s: %w", in.ns.failed, in.ns.err)
	}

	writes := in.ns.written
	if in.cmSent && in.cmErr == nil {
		log.Info("applied mesh ConfigMap", "configMap", cm, "created", p.configMapCreated, "hash", p.meshHash)
		writes = append(writes, written{obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: p.targets.ConfigMap}},
			resourceVersion: ptr.Deref(p.configMapApply.ResourceVersion, ""), created: p.configMapCreated})
	}
	if in.depSent && in.depErr == nil {
		log.Info("applied istiod env", "deployment", dep, "container", p.targets.IstiodContainer, "entries", len(p.env.Env))
		writes = append(writes, written{obj: &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ms.Namespace, Name: p.targets.IstiodDeployment}},
			resourceVersion: ptr.Deref(p.deploymentApply.ResourceVersion, "")})
	}
	if in.ns.changed > 0 {
		log.Info("labeled namespaces", "count", in.ns.changed)
	}
	for _, err := range []error{in.cmErr, in.depErr, in.ns.err} {
		if err != nil {
			log.Error(err, "apply failed", "meshsettings", client.ObjectKeyFromObject(ms))
		}
	}
	return writes
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
				err := r.Apply(ctx, acs[i], client.FieldOwner(FieldManager))
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

// Setup wires a reconciler to the manager's client, cache reader and event
// recorder and registers it: main.go and every test suite run this same wiring.
func Setup(mgr ctrl.Manager) error {
	return (&MeshSettingsReconciler{
		Client:    mgr.GetClient(),
		Recorder:  mgr.GetEventRecorder(FieldManager),
		APIReader: mgr.GetAPIReader(),
	}).SetupWithManager(mgr)
}

// SetupWithManager registers the reconciler and its watches: MeshSettings,
// and exactly the objects it writes (ConfigMaps, Deployments, Namespaces as
// metadata only), each mapped back to the MeshSettings of their namespace.
func (r *MeshSettingsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	pods, err := r.watchPods(mgr)
	if err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&meshv1alpha1.MeshSettings{}).
		// Another MeshSettings' arrival or departure decides who writes.
		Watches(&meshv1alpha1.MeshSettings{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace)).
		Watches(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace)).
		Watches(&appsv1.Deployment{}, handler.EnqueueRequestsFromMapFunc(r.inNamespace),
			builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}, createdOrDeleted()))).
		WatchesMetadata(&corev1.Namespace{}, r.namespaceEvents(), builder.WithPredicates(namespaceChanged())).
		// The proxy report: pods (the store's changes, podsChanged).
		WatchesRawSource(pods).
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

func (r *MeshSettingsReconciler) list(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list meshv1alpha1.MeshSettingsList
	// Only names are read: no deep copy per namespace event.
	if err := r.List(ctx, &list, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		logf.FromContext(ctx).Error(err, "listing MeshSettings")
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for i := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])})
	}
	return reqs
}
