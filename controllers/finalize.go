package controllers

import (
	"context"
	"encoding/json"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// finalize removes what the MeshSettings wrote, mesh keys, env entries and
// labels, then releases the finalizer. Nothing else on those objects changes.
// A MeshSettings that lost a Conflict wrote nothing and only lets go.
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
		if err := r.releaseMeshConfig(ctx, ms.Namespace, t.ConfigMap); err != nil {
			return fmt.Errorf("removing mesh keys from ConfigMap %s: %w", t.ConfigMap, err)
		}
		if err := r.releaseIstiodEnv(ctx, ms.Namespace, t.IstiodDeployment, t.IstiodContainer); err != nil {
			return fmt.Errorf("removing env entries from Deployment %s: %w", t.IstiodDeployment, err)
		}
		if err := r.releaseLabels(ctx, ms.Namespace+"/"+ms.Name); err != nil {
			return fmt.Errorf("removing namespace labels: %w", err)
		}
		r.Recorder.Eventf(ms, nil, corev1.EventTypeNormal, "Cleaned", "Finalize", "Removed the mesh keys, istiod env entries and namespace labels it wrote")
	}
	orig := ms.DeepCopy()
	controllerutil.RemoveFinalizer(ms, Finalizer)
	return client.IgnoreNotFound(r.Patch(ctx, ms, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(FieldManager)))
}

// releaseMeshConfig removes the managed keys, putting back values they
// replaced, and the record annotations. A ConfigMap left empty that no
// other manager uses (the operator created it) is deleted.
func (r *MeshSettingsReconciler) releaseMeshConfig(ctx context.Context, namespace, name string) error {
	cm := &corev1.ConfigMap{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); err != nil {
		return client.IgnoreNotFound(err)
	}
	managed, err := render.DecodeManaged(cm.Annotations[render.ManagedKeysAnnotation])
	if err != nil {
		return err
	}
	replaced, err := render.DecodeReplaced(cm.Annotations[render.ReplacedValuesAnnotation])
	if err != nil {
		return err
	}
	res, err := render.ReleaseMesh(cm.Data[render.MeshKey], render.MeshState{Managed: managed, Replaced: replaced})
	if err != nil {
		return err
	}
	if res.Document == "" && onlyManager(cm.ManagedFields) {
		return client.IgnoreNotFound(r.Delete(ctx, cm, client.Preconditions{UID: &cm.UID, ResourceVersion: &cm.ResourceVersion}))
	}
	ac := corev1ac.ConfigMap(name, namespace).WithUID(cm.UID).WithData(map[string]string{render.MeshKey: res.Document})
	return r.restore(ctx, ac, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
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
func (r *MeshSettingsReconciler) releaseIstiodEnv(ctx context.Context, namespace, name, container string) error {
	d := &appsv1.Deployment{}
	if err := r.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, d); err != nil {
		return client.IgnoreNotFound(err)
	}
	managed, replaced := envRecords(d.Annotations)
	if len(managed) == 0 && len(replaced) == 0 {
		return nil
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
	return r.restore(ctx, ac, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

// restore force-applies what the operator puts back on a target it releases,
// then disowns the target.
func (r *MeshSettingsReconciler) restore(ctx context.Context, ac runtime.ApplyConfiguration, target client.Object) error {
	if err := r.Client.Apply(ctx, ac, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
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
	fields := obj.GetManagedFields()
	kept := make([]metav1.ManagedFieldsEntry, 0, len(fields))
	for _, f := range fields {
		if f.Manager != FieldManager {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(fields) {
		return nil
	}
	if len(kept) == 0 {
		// An empty list leaves managedFields unchanged; one empty entry clears them.
		kept = []metav1.ManagedFieldsEntry{{}}
	}
	patch, err := json.Marshal([]map[string]any{
		{"op": "test", "path": "/metadata/resourceVersion", "value": obj.GetResourceVersion()},
		{"op": "replace", "path": "/metadata/managedFields", "value": kept},
	})
	if err != nil {
		return err
	}
	return ignoreGone(r.Patch(ctx, obj, client.RawPatch(types.JSONPatchType, patch)))
}

// releaseLabels drops the labels of the namespaces this MeshSettings owns.
func (r *MeshSettingsReconciler) releaseLabels(ctx context.Context, me string) error {
	nsList := &metav1.PartialObjectMetadataList{}
	nsList.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("NamespaceList"))
	if err := r.List(ctx, nsList); err != nil {
		return err
	}
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		if ns.Annotations[OwnerAnnotation] != me {
			continue
		}
		if err := ignoreGone(r.Client.Apply(ctx, corev1ac.Namespace(ns.Name).WithUID(ns.UID), client.FieldOwner(FieldManager))); err != nil {
			return err
		}
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
