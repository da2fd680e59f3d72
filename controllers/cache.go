package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// CacheOptions keeps the operator's memory independent of unrelated objects:
// ConfigMaps, Deployments and MeshSettings are cached only in the control-plane
// namespace when one is given, Namespaces are watched as metadata only and
// keep only the annotation the operator reads, and every cached object keeps
// only the operator's own managedFields entry (enough to know what it owns, a
// fraction of the bytes). ConfigMaps and Deployments also keep, of other
// managers' entries, who holds the mesh key and which env entries
// (keepWriteOwners): the operator must not take those.
func CacheOptions(controlPlaneNamespace string) cache.Options {
	opts := cache.Options{
		DefaultTransform: keepOwnManagedFields,
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Namespace{}:  {Transform: trimNamespace},
			&corev1.ConfigMap{}:  {Transform: keepWriteOwners},
			&appsv1.Deployment{}: {Transform: keepWriteOwners},
		},
	}
	if controlPlaneNamespace != "" {
		scoped := map[string]cache.Config{controlPlaneNamespace: {}}
		opts.ByObject[&corev1.ConfigMap{}] = cache.ByObject{Namespaces: scoped, Transform: keepWriteOwners}
		opts.ByObject[&appsv1.Deployment{}] = cache.ByObject{Namespaces: scoped, Transform: keepWriteOwners}
		opts.ByObject[&meshv1alpha1.MeshSettings{}] = cache.ByObject{Namespaces: scoped}
	}
	return opts
}

// trimNamespace drops every annotation but OwnerAnnotation: namespaces
// created with kubectl apply or Argo CD carry a last-applied-configuration
// copy of themselves, which a cache of thousands of namespaces would keep.
func trimNamespace(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		a := o.GetAnnotations()
		owner, isOwned := a[OwnerAnnotation]
		switch {
		case !isOwned && len(a) > 0:
			o.SetAnnotations(nil)
		case isOwned && len(a) > 1:
			o.SetAnnotations(map[string]string{OwnerAnnotation: owner})
		}
	}
	return keepOwnManagedFields(obj)
}

func keepOwnManagedFields(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil // tombstones pass through
	}
	fields := o.GetManagedFields()
	kept := fields[:0:0]
	for _, f := range fields {
		if f.Manager == FieldManager {
			kept = append(kept, f)
		}
	}
	if len(kept) != len(fields) {
		o.SetManagedFields(kept)
	}
	return obj, nil
}
