// Package v1alpha1 contains the MeshSettings API, group mesh.meshsettings.io.
// +kubebuilder:object:generate=true
// +kubebuilder:ac:generate=true
// +groupName=mesh.meshsettings.io
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of the MeshSettings API.
	GroupVersion = schema.GroupVersion{Group: "mesh.meshsettings.io", Version: "v1alpha1"}

	// SchemeGroupVersion is GroupVersion under the name generated clients and
	// apply configurations expect.
	SchemeGroupVersion = GroupVersion

	// SchemeBuilder registers the API types with a runtime.Scheme.
	// Only apimachinery: the API package stays cheap to import.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &MeshSettings{}, &MeshSettingsList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
