package controllers

import (
	"sync"
	"unique"

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
// What it keeps shares its strings with the other namespaces (compactNamespace).
func trimNamespace(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		a := o.GetAnnotations()
		owner, isOwned := a[OwnerAnnotation]
		switch {
		case !isOwned && len(a) > 0:
			o.SetAnnotations(nil)
		case isOwned:
			o.SetAnnotations(map[string]string{OwnerAnnotation: unique.Make(owner).Value()})
		}
	}
	obj, err := keepOwnManagedFields(obj)
	if o, ok := obj.(*metav1.PartialObjectMetadata); ok {
		compactNamespace(o)
	}
	return obj, err
}

// compactNamespace makes a cached namespace share what tens of thousands of
// namespaces repeat: label keys and values (the kubernetes.io/metadata.name
// value is the name itself), the type, and the operator's managedFields
// entry, whose time nothing reads. Decoded, each namespace has its own copy
// of every string; cached objects are never written to, so sharing is safe.
func compactNamespace(o *metav1.PartialObjectMetadata) {
	o.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}
	if len(o.Labels) > 0 {
		l := make(map[string]string, len(o.Labels))
		for k, v := range o.Labels {
			if v == o.Name {
				v = o.Name
			} else {
				v = unique.Make(v).Value()
			}
			l[unique.Make(k).Value()] = v
		}
		o.Labels = l
	}
	for i := range o.ManagedFields {
		f := &o.ManagedFields[i]
		f.Manager = unique.Make(f.Manager).Value()
		f.Operation = metav1.ManagedFieldsOperationType(unique.Make(string(f.Operation)).Value())
		f.APIVersion = unique.Make(f.APIVersion).Value()
		f.FieldsType = unique.Make(f.FieldsType).Value()
		f.Time = nil
		f.FieldsV1 = sharedFields.get(f.FieldsV1)
	}
}

// sharedFields hands out one FieldsV1 per distinct field set: the operator
// writes the same few label sets to thousands of namespaces.
var sharedFields = fieldsPool{m: map[string]*metav1.FieldsV1{}}

type fieldsPool struct {
	mu sync.Mutex
	m  map[string]*metav1.FieldsV1
}

// maxSharedFields bounds the pool; other field sets are kept as they are.
const maxSharedFields = 256

func (p *fieldsPool) get(f *metav1.FieldsV1) *metav1.FieldsV1 {
	if f == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.m[f.GetRawString()]; ok {
		return s
	}
	if len(p.m) < maxSharedFields {
		p.m[f.GetRawString()] = f
	}
	return f
}

func keepOwnManagedFields(obj any) (any, error) {
	o, ok := obj.(metav1.Object)
	if !ok {
		return obj, nil // tombstones pass through
	}
	fields := o.GetManagedFields()
	// nil, not fields[:0:0]: an empty slice into the decoded array would
	// keep every entry of every manager alive for the GC.
	var kept []metav1.ManagedFieldsEntry
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
