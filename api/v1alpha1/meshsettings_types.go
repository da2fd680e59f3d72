package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MeshSettingsSpec is the desired mesh-wide Istio configuration.
type MeshSettingsSpec struct {
	// revision is the Istio control-plane revision these settings target.
	// Empty means the default revision: ConfigMap "istio" and Deployment "istiod".
	// Otherwise ConfigMap "istio-<revision>" and Deployment "istiod-<revision>".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="revision is immutable"
	Revision string `json:"revision,omitempty"`
}

// MeshSettingsStatus is the observed state of a MeshSettings.
type MeshSettingsStatus struct {
	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions follow kstatus: Ready summarises; Reconciling and Stalled
	// are present only while True.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +patchStrategy=merge
	// +patchMergeKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty" patchStrategy:"merge" patchMergeKey:"type"`
}

// MeshSettings turns one typed resource into Istio's mesh-wide configuration:
// the mesh ConfigMap, istiod's environment and namespace labels.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=mset,categories=istio-io
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.spec.revision`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MeshSettings struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec MeshSettingsSpec `json:"spec,omitempty"`
	// +optional
	Status MeshSettingsStatus `json:"status,omitempty"`
}

// MeshSettingsList is a list of MeshSettings.
// +kubebuilder:object:root=true
type MeshSettingsList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MeshSettings `json:"items"`
}

func init() {
	SchemeBuilder.Register(&MeshSettings{}, &MeshSettingsList{})
}
