// Package controllers holds the MeshSettings reconciler.
package controllers

import (
	"context"

	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// MeshSettingsReconciler reconciles MeshSettings into Istio's mesh-wide configuration.
type MeshSettingsReconciler struct {
	client.Client
	Scheme *runtime.Scheme
}

// +kubebuilder:rbac:groups=mesh.meshsettings.io,resources=meshsettings,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,resources=meshsettings/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=mesh.meshsettings.io,resources=meshsettings/finalizers,verbs=update

// Reconcile fetches the MeshSettings; translating it into Istio configuration
// comes with the render package.
func (r *MeshSettingsReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	var ms meshv1alpha1.MeshSettings
	if err := r.Get(ctx, req.NamespacedName, &ms); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log.V(1).Info("observed", "generation", ms.Generation)
	return ctrl.Result{}, nil
}

// SetupWithManager registers the reconciler and its watches.
func (r *MeshSettingsReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&meshv1alpha1.MeshSettings{}).
		Named("meshsettings").
		Complete(r)
}
