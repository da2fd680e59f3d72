package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// FieldManager is the server-side apply field manager of every write.
const FieldManager = "meshsettings-operator"

// observed is what the reconciler read from the cluster for one MeshSettings.
type observed struct {
	configMap  *corev1.ConfigMap  // nil when absent
	deployment *appsv1.Deployment // nil when absent
	namespaces []metav1.PartialObjectMetadata
	// existing holds "<namespace>/<name>" of every MeshSettings, to tell a
	// live namespace owner from one deleted without its finalizer.
	existing map[string]bool
}

// OwnerAnnotation names, on a namespace, the MeshSettings whose labels it
// carries. Every MeshSettings shares one field manager, so this is what keeps
// one from taking or releasing another's labels.
const OwnerAnnotation = "mesh.meshsettings.io/owner"

// plan is the desired state and the writes needed to reach it. Each apply
// is nil when the target already holds the desired state, so a converged
// MeshSettings sends no write.
type plan struct {
	targets render.Targets

	meshDocument   string
	meshHash       string
	configMapApply *corev1ac.ConfigMapApplyConfiguration

	istiodTag       string
	env             render.EnvResult
	istiodMissing   bool
	containerAbsent bool
	deploymentApply *appsv1ac.DeploymentApplyConfiguration

	namespaceApplies []*corev1ac.NamespaceApplyConfiguration
	selected         int32
	labeled          int32
	conflicts        []meshv1alpha1.LabelConflict

	// selectorWarning is set when discoverySelectors miss istiod's own namespace.
	selectorWarning string
}

// computePlan is the pure heart of the reconciler: from the spec and the
// observed objects it decides every write. A *render.FieldError means the
// spec cannot be written as is (Stalled).
func computePlan(ms *meshv1alpha1.MeshSettings, obs *observed) (*plan, error) {
	spec := &ms.Spec
	p := &plan{targets: render.TargetsFor(spec)}

	var container *corev1.Container
	if obs.deployment == nil {
		p.istiodMissing = true
	} else if container = findContainer(obs.deployment.Spec.Template.Spec.Containers, p.targets.IstiodContainer); container == nil {
		p.containerAbsent = true
	} else {
		p.istiodTag = render.IstiodVersion(container.Image)
	}
	if err := render.CheckVersion(spec, p.istiodTag); err != nil {
		return nil, err
	}

	// Mesh document.
	var current string
	var previous []render.Path
	if cm := obs.configMap; cm != nil {
		current = cm.Data[render.MeshKey]
		var err error
		if previous, err = render.DecodeManaged(cm.Annotations[render.ManagedKeysAnnotation]); err != nil {
			// A damaged record cannot tell what to remove; keep everything rather than guess.
			previous = nil
		}
	}
	mesh, err := render.Mesh(spec, current, previous)
	if err != nil {
		return nil, err
	}
	p.meshDocument = mesh.Document
	sum := sha256.Sum256([]byte(mesh.Document))
	p.meshHash = hex.EncodeToString(sum[:])
	managed := render.EncodeManaged(mesh.Managed)
	if cm := obs.configMap; cm == nil || cm.Data[render.MeshKey] != mesh.Document || cm.Annotations[render.ManagedKeysAnnotation] != managed {
		p.configMapApply = corev1ac.ConfigMap(p.targets.ConfigMap, ms.Namespace).
			WithAnnotations(map[string]string{render.ManagedKeysAnnotation: managed}).
			WithData(map[string]string{render.MeshKey: mesh.Document})
	}

	// istiod environment.
	p.env = render.Env(spec, p.istiodTag)
	if container != nil {
		owned, err := ownedEnv(obs.deployment, p.targets.IstiodContainer)
		if err != nil {
			return nil, err
		}
		if !envConverged(container.Env, owned, p.env.Env) {
			p.deploymentApply = deploymentEnvApply(obs.deployment, p.targets.IstiodContainer, p.env.Env)
		}
	}

	// Namespace labels.
	if err := planNamespaces(p, ms, obs); err != nil {
		return nil, err
	}
	p.selectorWarning = selectorWarning(spec.DiscoverySelectors, ms.Namespace, obs.namespaces)
	return p, nil
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// ownedEnv returns the env names the operator's field manager owns in the container.
func ownedEnv(d *appsv1.Deployment, container string) ([]string, error) {
	ac, err := appsv1ac.ExtractDeployment(d, FieldManager)
	if err != nil {
		return nil, fmt.Errorf("reading the operator's fields of deployment %s: %w", d.Name, err)
	}
	var names []string
	if ac.Spec == nil || ac.Spec.Template == nil || ac.Spec.Template.Spec == nil {
		return nil, nil
	}
	for _, c := range ac.Spec.Template.Spec.Containers {
		if c.Name == nil || *c.Name != container {
			continue
		}
		for _, e := range c.Env {
			if e.Name != nil {
				names = append(names, *e.Name)
			}
		}
	}
	return names, nil
}

// envConverged is true when every wanted entry is live with its value and
// the operator owns no other entry.
func envConverged(live []corev1.EnvVar, owned []string, want []corev1.EnvVar) bool {
	if len(owned) != len(want) {
		return false
	}
	for _, w := range want {
		if !slices.Contains(owned, w.Name) {
			return false
		}
		i := slices.IndexFunc(live, func(e corev1.EnvVar) bool { return e.Name == w.Name })
		if i < 0 || live[i].Value != w.Value || live[i].ValueFrom != nil {
			return false
		}
	}
	return true
}

// deploymentEnvApply owns exactly the given env entries of the container,
// and nothing else of the Deployment. The UID pins the apply to the
// Deployment that was read, so a vanished istiod is never re-created.
func deploymentEnvApply(d *appsv1.Deployment, container string, env []corev1.EnvVar) *appsv1ac.DeploymentApplyConfiguration {
	c := corev1ac.Container().WithName(container)
	for _, e := range env {
		c.WithEnv(corev1ac.EnvVar().WithName(e.Name).WithValue(e.Value))
	}
	if len(env) == 0 {
		// Owning nothing releases every entry the operator owned.
		return appsv1ac.Deployment(d.Name, d.Namespace).WithUID(d.UID)
	}
	return appsv1ac.Deployment(d.Name, d.Namespace).WithUID(d.UID).
		WithSpec(appsv1ac.DeploymentSpec().
			WithTemplate(corev1ac.PodTemplateSpec().
				WithSpec(corev1ac.PodSpec().WithContainers(c))))
}

// planNamespaces decides the labels of every namespace: the first matching
// rule's labels, minus conflicts with other managers; labels the operator
// owns on namespaces no rule selects any more are released. A namespace
// another live MeshSettings labels is left to it and reported.
func planNamespaces(p *plan, ms *meshv1alpha1.MeshSettings, obs *observed) error {
	rules := ms.Spec.Namespaces
	matchers := make([]func(string, map[string]string) bool, len(rules))
	for i := range rules {
		m, err := render.Selector(&rules[i])
		if err != nil {
			return &render.FieldError{Field: fmt.Sprintf("spec.namespaces[%d].selector", i), Msg: err.Error()}
		}
		matchers[i] = m
	}
	me := ms.Namespace + "/" + ms.Name
	for i := range obs.namespaces {
		ns := &obs.namespaces[i]
		if !ns.DeletionTimestamp.IsZero() {
			continue
		}
		want := map[string]string{}
		matched := false
		for r := range rules {
			if matchers[r](ns.Name, ns.Labels) {
				want = render.RuleLabels(&rules[r], ms.Spec.Revision)
				matched = true
				break
			}
		}
		owner := ns.Annotations[OwnerAnnotation]
		if owner != "" && owner != me && obs.existing[owner] {
			if matched {
				p.selected++
				p.conflicts = append(p.conflicts, meshv1alpha1.LabelConflict{
					Namespace: ns.Name, Label: OwnerAnnotation, Have: owner,
					Message: fmt.Sprintf("labeled by MeshSettings %s; a namespace follows one MeshSettings", owner),
				})
			}
			continue
		}
		owned, err := ownedLabels(ns)
		if err != nil {
			return err
		}
		foreign := map[string]string{}
		for k, v := range ns.Labels {
			if _, ours := owned[k]; !ours {
				foreign[k] = v
			}
		}
		labelsToOwn, conflicts := render.NamespaceLabels(ns.Name, want, foreign)
		if matched {
			p.selected++
			if len(conflicts) == 0 {
				p.labeled++
			}
			p.conflicts = append(p.conflicts, conflicts...)
		}
		wantOwner := ""
		if len(labelsToOwn) > 0 {
			wantOwner = me
		}
		if !labelsConverged(ns.Labels, owned, labelsToOwn) || owner != wantOwner && (owner == me || wantOwner != "") {
			ac := corev1ac.Namespace(ns.Name).WithUID(ns.UID)
			if len(labelsToOwn) > 0 {
				ac.WithLabels(labelsToOwn).WithAnnotations(map[string]string{OwnerAnnotation: me})
			}
			p.namespaceApplies = append(p.namespaceApplies, ac)
		}
	}
	return nil
}

// ownedLabels returns the labels the operator's field manager owns.
func ownedLabels(ns *metav1.PartialObjectMetadata) (map[string]string, error) {
	ac, err := corev1ac.ExtractNamespace(&corev1.Namespace{ObjectMeta: ns.ObjectMeta}, FieldManager)
	if err != nil {
		return nil, fmt.Errorf("reading the operator's labels of namespace %s: %w", ns.Name, err)
	}
	if ac.Labels == nil {
		return map[string]string{}, nil
	}
	return ac.Labels, nil
}

func labelsConverged(live, owned, want map[string]string) bool {
	if !slices.Equal(slices.Sorted(maps.Keys(owned)), slices.Sorted(maps.Keys(want))) {
		return false
	}
	for k, v := range want {
		if live[k] != v {
			return false
		}
	}
	return true
}

// selectorWarning explains why discoverySelectors break istiod's own
// namespace, or returns "". An empty list selects every namespace.
func selectorWarning(selectors []metav1.LabelSelector, istiodNamespace string, namespaces []metav1.PartialObjectMetadata) string {
	if len(selectors) == 0 {
		return ""
	}
	var nsLabels map[string]string
	for i := range namespaces {
		if namespaces[i].Name == istiodNamespace {
			nsLabels = namespaces[i].Labels
		}
	}
	for i := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(&selectors[i])
		if err == nil && sel.Matches(labels.Set(nsLabels)) {
			return ""
		}
	}
	return fmt.Sprintf("discoverySelectors do not select istiod's namespace %s: gateways there lose their configuration", istiodNamespace)
}

// isSpecError tells spec problems (Stalled) from API errors (retried).
func isSpecError(err error) (*render.FieldError, bool) {
	var fe *render.FieldError
	ok := errors.As(err, &fe)
	return fe, ok
}
