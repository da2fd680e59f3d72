package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// finalize removes what the MeshSettings wrote, mesh keys, env entries and
// labels, then releases the finalizer. Nothing else on those objects changes.
// A MeshSettings that lost a Conflict wrote nothing and only lets go.
//
// What the operator's record does not prove it wrote (a damaged record, a
// mesh document that does not parse) is left as it is and reported as a
// Warning event, since the status goes with the object: deletion never
// blocks on it. Only API errors are retried.
func (r *MeshSettingsReconciler) finalize(ctx context.Context, ms *meshv1alpha1.MeshSettings) error {
	if !controllerutil.ContainsFinalizer(ms, Finalizer) {
		return nil
	}
	winner, err := r.writer(ctx, ms)
	if err != nil {
		return err
	}
	if winner.UID == ms.UID {
		t := render.TargetsFor(&ms.Spec)
		var left []string
		leftCM, err := r.releaseMeshConfig(ctx, ms.Namespace, t.ConfigMap)
		if err != nil {
			return fmt.Errorf("removing mesh keys from ConfigMap %s/%s: %w", ms.Namespace, t.ConfigMap, err)
		}
		left = append(left, leftCM...)
		leftEnv, err := r.releaseIstiodEnv(ctx, ms.Namespace, t.IstiodDeployment, t.IstiodContainer)
		if err != nil {
			return fmt.Errorf("removing env entries from Deployment %s/%s: %w", ms.Namespace, t.IstiodDeployment, err)
		}
		left = append(left, leftEnv...)
		if err := r.releaseLabels(ctx, ms.Namespace+"/"+ms.Name); err != nil {
			return fmt.Errorf("removing namespace labels: %w", err)
		}
		for _, l := range left {
			r.Recorder.Eventf(ms, nil, corev1.EventTypeWarning, "CleanupIncomplete", "Finalize", "%s", l)
		}
		if len(left) == 0 {
			r.Recorder.Eventf(ms, nil, corev1.EventTypeNormal, "Cleaned", "Finalize", "Removed the mesh keys, istiod env entries and namespace labels it wrote")
		}
		logf.FromContext(ctx).Info("released targets", "meshsettings", client.ObjectKeyFromObject(ms), "leftBehind", left)
	}
	orig := ms.DeepCopy()
	controllerutil.RemoveFinalizer(ms, Finalizer)
	if err := r.Patch(ctx, ms, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)); err != nil {
		return client.IgnoreNotFound(fmt.Errorf("removing the finalizer of MeshSettings %s/%s: %w", ms.Namespace, ms.Name, err))
	}
	return nil
}

// releaseMeshConfig removes the managed keys, putting back values they
// replaced, and the record annotations. A ConfigMap left empty that no
// other manager uses (the operator created it) is deleted. With a damaged
// record or a document that does not parse, the document stays as it is;
// the record and the operator's field ownership go, and what was left is
// returned.
func (r *MeshSettingsReconciler) releaseMeshConfig(ctx context.Context, namespace, name string) ([]string, error) {
	cm := &corev1.ConfigMap{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	object := fmt.Sprintf("ConfigMap %s/%s", namespace, name)
	if _, recorded := cm.Annotations[render.ManagedKeysAnnotation]; !recorded && !ownsDataKey(cm, render.MeshKey) {
		// Never written (Merge waiting, or another manager applies the mesh
		// key server-side): nothing to give back, and a forced restore would
		// take the key from its owner.
		return nil, nil
	}
	prev, err := render.ReadRecord(object, cm.Annotations)
	if err != nil {
		return []string{err.Error() + "; the mesh document was left as it is"}, r.dropRecord(ctx, cm, meshRecord...)
	}
	res, err := render.ReleaseMesh(cm.Data[render.MeshKey], prev)
	if err != nil {
		return []string{fmt.Sprintf("%s key %q: %v; the keys the operator wrote (%s) were left in it",
			object, render.MeshKey, err, render.EncodeManaged(prev.Managed))}, r.dropRecord(ctx, cm, meshRecord...)
	}
	if res.Document == "" && onlyManager(cm.ManagedFields) {
		return nil, client.IgnoreNotFound(r.Delete(ctx, cm, client.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion}))
	}
	data := map[string]string{render.MeshKey: res.Document}
	if v, ok := cm.Data[render.MeshNetworksKey]; ok && ownsDataKey(cm, render.MeshNetworksKey) {
		data[render.MeshNetworksKey] = v // an Own ConfigMap keeps it: applying without it would delete it
	}
	ac := corev1ac.ConfigMap(name, namespace).WithUID(cm.UID).WithData(data)
	return nil, r.restore(ctx, ac, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

var (
	meshRecord = render.RecordAnnotations
	envRecord  = []string{ManagedEnvAnnotation, ReplacedEnvAnnotation}
)

// jsonPatchOp is one operation of an RFC 6902 JSON patch.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// dropRecord removes the operator's record annotations and field ownership
// from a target whose content it leaves as it is. A JSON patch, not an
// apply: an apply owning fewer fields would delete what the operator owned.
func (r *MeshSettingsReconciler) dropRecord(ctx context.Context, obj client.Object, annotations ...string) error {
	ops := []jsonPatchOp{{Op: "test", Path: "/metadata/resourceVersion", Value: obj.GetResourceVersion()}}
	for _, k := range annotations {
		if _, ok := obj.GetAnnotations()[k]; ok {
			ops = append(ops, jsonPatchOp{Op: "remove", Path: "/metadata/annotations/" + strings.ReplaceAll(strings.ReplaceAll(k, "~", "~0"), "/", "~1")})
		}
	}
	fields := obj.GetManagedFields()
	kept := make([]metav1.ManagedFieldsEntry, 0, len(fields))
	for _, f := range fields {
		if f.Manager != FieldManager {
			kept = append(kept, f)
		}
	}
	if len(kept) != len(fields) {
		if len(kept) == 0 {
			kept = []metav1.ManagedFieldsEntry{{}} // an empty list would leave managedFields unchanged
		}
		ops = append(ops, jsonPatchOp{Op: "replace", Path: "/metadata/managedFields", Value: kept})
	}
	if len(ops) == 1 {
		return nil
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return err
	}
	return ignoreGone(r.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)))
}

func onlyManager(fields []metav1.ManagedFieldsEntry) bool {
	for _, f := range fields {
		if f.Manager != FieldManager {
			return false
		}
	}
	return true
}

// releaseIstiodEnv drops the env entries the operator added and puts back
// the ones it replaced, with their original values, and its annotations.
// A damaged record leaves every entry as it is (returned as left behind).
func (r *MeshSettingsReconciler) releaseIstiodEnv(ctx context.Context, namespace, name, container string) ([]string, error) {
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, d); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	managed, replaced, err := envRecords(d.Annotations)
	if err != nil {
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil { // full managedFields
			return nil, client.IgnoreNotFound(err)
		}
		return []string{fmt.Sprintf("the operator's record on Deployment %s/%s is damaged (%v); "+
				"its environment entries were left as they are", namespace, name, err)},
			r.dropRecord(ctx, d, envRecord...)
	}
	if len(managed) == 0 && len(replaced) == 0 {
		owned := ownedEnv(d.ManagedFields, container)
		if len(owned) == 0 {
			return nil, nil
		}
		// The record was removed (a replace) before a pass could write it
		// again: the operator owns these entries but cannot prove it added
		// them rather than took them over, so they stay, without its ownership.
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(d), d); err != nil { // full managedFields
			return nil, client.IgnoreNotFound(err)
		}
		return []string{fmt.Sprintf("the operator's record on Deployment %s/%s was removed; its environment entries %s were left as they are",
			namespace, name, strings.Join(owned, ", "))}, r.dropRecord(ctx, d, envRecord...)
	}
	restore := make([]corev1.EnvVar, 0, len(replaced))
	for _, e := range replaced {
		restore = append(restore, e)
	}
	var live []corev1.EnvVar // no container: by name
	if c := findContainer(d.Spec.Template.Spec.Containers, container); c != nil {
		live = c.Env
	}
	orderLikeLive(restore, live)
	ac := deploymentEnvApply(d, container, restore, nil)
	return nil, r.restore(ctx, ac, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

// restore force-applies what the operator puts back on a target it releases,
// then disowns the target.
func (r *MeshSettingsReconciler) restore(ctx context.Context, ac runtime.ApplyConfiguration, target client.Object) error {
	if err := r.Apply(ctx, ac, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		return ignoreGone(err)
	}
	return r.disown(ctx, target)
}

// disown drops the operator's managedFields entries from a target it has
// released. The values it put back (Helm's mesh document, Helm's env entries)
// were force-applied and would otherwise stay owned by a manager that is
// gone: Helm 4 or Argo CD applying a new value later would hit a conflict.
// The JSON patch tests the resourceVersion, so it never drops an entry the
// operator's next write just created.
func (r *MeshSettingsReconciler) disown(ctx context.Context, obj client.Object) error {
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		return client.IgnoreNotFound(err)
	}
	return r.dropRecord(ctx, obj)
}

// releaseLabels drops the labels of the namespaces this MeshSettings owns,
// through the same few workers as labeling (one by one, 10,000 labeled
// namespaces took minutes to release).
func (r *MeshSettingsReconciler) releaseLabels(ctx context.Context, me string) error {
	nsList := &metav1.PartialObjectMetadataList{}
	nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, nsList, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	var acs []*corev1ac.NamespaceApplyConfiguration
	for i := range nsList.Items {
		if ns := &nsList.Items[i]; ns.Annotations[OwnerAnnotation] == me {
			acs = append(acs, corev1ac.Namespace(ns.Name).WithUID(ns.UID))
		}
	}
	if res := r.applyNamespaces(ctx, acs); res.err != nil {
		return fmt.Errorf("namespace %s: %w", res.failed, res.err)
	}
	return nil
}

// ignoreGone treats a target deleted or replaced meanwhile as done.
func ignoreGone(err error) error {
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// ownedEnv lists the env entries of the container that the operator's field
// manager applied, from its managedFields entry.
func ownedEnv(fields []metav1.ManagedFieldsEntry, container string) []string {
	var names []string
	for _, f := range fields {
		if f.Manager != FieldManager || f.Operation != metav1.ManagedFieldsOperationApply || f.FieldsV1 == nil {
			continue
		}
		var set struct {
			Spec struct {
				Template struct {
					Spec struct {
						Containers map[string]struct {
							Env map[string]json.RawMessage `json:"f:env"`
						} `json:"f:containers"`
					} `json:"f:spec"`
				} `json:"f:template"`
			} `json:"f:spec"`
		}
		if json.Unmarshal(f.FieldsV1.GetRawBytes(), &set) != nil {
			continue
		}
		c, ok := set.Spec.Template.Spec.Containers[fmt.Sprintf(`k:{"name":%q}`, container)]
		if !ok {
			continue
		}
		for k := range c.Env {
			var key struct {
				Name string `json:"name"`
			}
			if rest, isKey := strings.CutPrefix(k, "k:"); isKey && json.Unmarshal([]byte(rest), &key) == nil {
				names = append(names, key.Name)
			}
		}
	}
	slices.Sort(names)
	return names
}
