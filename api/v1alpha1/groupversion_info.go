// Package v1alpha1 contains the MeshSettings API, group mesh.meshsettings.io.
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=mesh.meshsettings.io
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of the MeshSettings API.
	GroupVersion = schema.GroupVersion{Group: "mesh.meshsettings.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name generated clients and
	// apply configurations expect.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the API types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
