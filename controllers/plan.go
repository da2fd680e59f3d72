package controllers

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
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
	// namespaces are those the pass evaluates: every namespace for a full
	// walk, else the ones nsWork names that the cache holds.
	namespaces []metav1.PartialObjectMetadata
	// nsWork says what the pass re-evaluates and keeps the result for the
	// next one; nil: a full walk with a fresh index.
	nsWork *nsWork
	// istiodNamespaceLabels are the labels of the MeshSettings' namespace.
	istiodNamespaceLabels map[string]string
	// existing holds "<namespace>/<name>" of every MeshSettings, to tell a
	// live namespace owner from one deleted without its finalizer.
	existing map[string]bool
	// owned remembers what ownedLabels read from unchanged namespaces; nil
	// reads every namespace afresh.
	owned *ownedMemo
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
	// configMapCreated: the apply creates the ConfigMap (none was observed).
	configMapCreated bool
	// ownership is the declared owner of the ConfigMap.
	ownership meshv1alpha1.ConfigMapOwnership
	// configMapMissing: with Merge, the ConfigMap does not exist; the
	// operator waits for its owner to create it (ConfigMapNotFound).
	configMapMissing bool
	// meshApplyOwner: with Merge, this manager owns the mesh key by
	// server-side apply; the operator writes nothing to the ConfigMap
	// (MeshConfigOwnedByApply).
	meshApplyOwner string
	// rewritten lists the managed mesh paths another manager wrote since the
	// operator's last write: this write merges the spec in once more.
	rewritten []render.Path
	// baseline is, with Own, the document deletion leaves (status.meshConfig.baseline).
	baseline string

	istiodTag string
	env       render.EnvResult
	// envHeld lists the entries the spec sets that another manager holds.
	envHeld         []heldEnv
	istiodMissing   bool
	containerAbsent bool
	deploymentApply *appsv1ac.DeploymentApplyConfiguration

	namespaceApplies []*corev1ac.NamespaceApplyConfiguration
	selected         int32
	labeled          int32
	conflicts        []meshv1alpha1.LabelConflict

	// release is the Istio release the spec was checked against; unread
	// are other managers' mesh keys that release does not read.
	release render.TargetRelease
	unread  []string

	// selectorWarning is set when discoverySelectors miss istiod's own namespace.
	selectorWarning string
	// recordProblem is set when the operator's record on the ConfigMap is
	// damaged or was removed (see render.RecordError).
	recordProblem string
}

// computePlan is the pure heart of the reconciler: from the spec and the
// observed objects it decides every write. The desired state itself comes
// from render.Desire, which `render` prints too. A *render.FieldError means
// the spec cannot be written as is (InvalidSpec), a *render.MeshDocumentError
// that istiod would reject the document the ConfigMap holds
// (MeshDocumentRejected).
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

	cur := render.Current{IstiodVersion: p.istiodTag, NoConfigMap: obs.configMap == nil}
	p.ownership = render.Ownership(spec)
	if mc := ms.Status.MeshConfig; mc != nil && mc.ConfigMapName == p.targets.ConfigMap {
		cur.Baseline = mc.Baseline
	}
	if cm := obs.configMap; cm != nil {
		cur.MeshDocument = cm.Data[render.MeshKey]
		cur.MeshNetworks = cm.Data[render.MeshNetworksKey]
		var err error
		cur.Record, err = render.ReadRecord(fmt.Sprintf("ConfigMap %s/%s", cm.Namespace, cm.Name), cm.Annotations)
		if err != nil {
			// Damaged: keep every key rather than guess, and say so.
			p.recordProblem = err.Error()
			cur.RecordLost = true
		} else if _, recorded := cm.Annotations[render.ManagedKeysAnnotation]; !recorded && wroteMesh(cm.ManagedFields) {
			// The operator applied the document, yet no record: removed by a replace.
			p.recordProblem = fmt.Sprintf("the operator's record on ConfigMap %s/%s was removed; keys it does not prove are kept as they are", cm.Namespace, cm.Name)
			cur.RecordLost = true
		}
	}
	d, err := render.Desire(ms, cur)
	if err != nil {
		return nil, err
	}
	p.release, p.unread = d.Release, d.Unread
	p.meshDocument = d.Mesh.Document
	p.meshHash = d.MeshHash
	p.rewritten = d.Mesh.Rewritten
	p.baseline = d.Baseline
	p.configMapApply, p.configMapCreated = planConfigMap(p, ms.Namespace, obs.configMap, d)

	// istiod environment.
	p.env = d.Env
	if container != nil {
		p.deploymentApply, p.envHeld = planEnv(obs.deployment, container, p.env.Env)
	}
	p.env.Warnings = append(slices.Clone(p.env.Warnings), render.HeaderEnvWarnings(spec, istiodEnvNames(obs.deployment, container, p.env.Env))...)

	// Namespace labels.
	if obs.nsWork == nil {
		obs.nsWork = (&nsIndex{}).begin(spec, obs.existing)
	}
	if err := planNamespaceWork(p, ms, d.Rules, obs); err != nil {
		return nil, err
	}
	p.selectorWarning = selectorWarning(spec.DiscoverySelectors, ms.Namespace, obs.istiodNamespaceLabels)
	return p, nil
}

// planConfigMap returns the apply of the mesh ConfigMap, or nil when it
// holds the desired state or must not be written: with Merge the operator
// never creates the ConfigMap, and never takes the mesh key from a manager
// that applies it server-side (either is reported instead). With Own it
// creates the ConfigMap, from the chart's baseline, and owns its data.
func planConfigMap(p *plan, namespace string, cm *corev1.ConfigMap, d *render.Desired) (*corev1ac.ConfigMapApplyConfiguration, bool) {
	data := map[string]string{render.MeshKey: d.Mesh.Document}
	if d.MeshNetworks != "" {
		data[render.MeshNetworksKey] = d.MeshNetworks
	}
	if cm == nil {
		if p.ownership != meshv1alpha1.ConfigMapOwn {
			p.configMapMissing = true
			return nil, false
		}
		return corev1ac.ConfigMap(p.targets.ConfigMap, namespace).WithAnnotations(d.MeshAnnotations).WithData(data), true
	}
	if p.ownership != meshv1alpha1.ConfigMapOwn {
		if p.meshApplyOwner = meshApplyOwner(cm); p.meshApplyOwner != "" {
			return nil, false
		}
		if v, ok := cm.Data[render.MeshNetworksKey]; ok && ownsDataKey(cm, render.MeshNetworksKey) {
			// Switched from Own: an apply without the key the operator owns
			// would delete it. Kept as it is until the MeshSettings goes.
			data[render.MeshNetworksKey] = v
		}
	}
	if cm.Data[render.MeshKey] == d.Mesh.Document && (d.MeshNetworks == "" || cm.Data[render.MeshNetworksKey] == d.MeshNetworks) &&
		annotationsMatch(cm.Annotations, d.MeshAnnotations, render.RecordAnnotations...) {
		return nil, false
	}
	// The UID pins the apply to the ConfigMap that was read: one deleted
	// meanwhile is not re-created with Merge, and with Own the next pass
	// creates it afresh from the baseline.
	return corev1ac.ConfigMap(p.targets.ConfigMap, namespace).WithUID(cm.UID).WithAnnotations(d.MeshAnnotations).WithData(data), false
}

// wroteMesh tells whether the operator's field manager applied the mesh key.
func wroteMesh(fields []metav1.ManagedFieldsEntry) bool {
	for _, f := range fields {
		if f.Manager == FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" &&
			f.FieldsV1 != nil && strings.Contains(f.FieldsV1.GetRawString(), `"f:`+render.MeshKey+`"`) {
			return true
		}
	}
	return false
}

func findContainer(cs []corev1.Container, name string) *corev1.Container {
	for i := range cs {
		if cs[i].Name == name {
			return &cs[i]
		}
	}
	return nil
}

// Annotations on the istiod Deployment (metadata, so writing them never
// restarts istiod): which env entries the operator manages, and the entries
// it replaced when it took them over (Helm's PILOT_TRACE_SAMPLING, say).
const (
	ManagedEnvAnnotation  = "mesh.meshsettings.io/managed-env"
	ReplacedEnvAnnotation = "mesh.meshsettings.io/replaced-env"
)

// planEnv returns the apply that makes the container's env hold the wanted
// entries, or nil when it already does, and the wanted entries another
// manager holds. Those are never taken: Helm renders some entries on every
// upgrade (PILOT_TRACE_SAMPLING from traceSampling, PILOT_CERT_PROVIDER,
// CLUSTER_ID, every `env` value), and taking one would make a Helm 4 upgrade
// fail on the conflict, or a Helm 3 upgrade roll istiod twice. The chart
// value to set instead is reported.
//
// Entries an earlier version of the operator took over are still recorded
// with the value they had (replaced-env): while the spec sets them they keep
// that record, and once it stops they get that value back, owned until the
// MeshSettings goes, when deletion releases them.
func planEnv(d *appsv1.Deployment, container *corev1.Container, want []corev1.EnvVar) (*appsv1ac.DeploymentApplyConfiguration, []heldEnv) {
	_, replaced, _ := envRecords(d.Annotations) // damaged: as empty, like the mesh record
	free, held := splitHeld(d, container, want)
	desired := slices.Clone(free)
	nextReplaced := map[string]corev1.EnvVar{}
	for name, orig := range replaced {
		switch {
		case slices.ContainsFunc(free, func(e corev1.EnvVar) bool { return e.Name == name }):
			nextReplaced[name] = orig
		case !slices.ContainsFunc(want, func(e corev1.EnvVar) bool { return e.Name == name }):
			desired = append(desired, orig)
			nextReplaced[name] = orig
		}
		// held by another manager again: it is theirs, the record goes
	}
	orderLikeLive(desired, container.Env)
	names := make([]string, len(free))
	for i, w := range free {
		names[i] = w.Name
	}
	annotations := envAnnotations(names, nextReplaced)
	if annotationsMatch(d.Annotations, annotations, ManagedEnvAnnotation, ReplacedEnvAnnotation) && envPresent(container.Env, desired) {
		return nil, held
	}
	return deploymentEnvApply(d, container.Name, desired, annotations), held
}

// istiodEnvNames are the variables istiod's container will carry once the
// plan is applied: the operator's entries, and the live entries of other
// managers (Helm's, kubectl's); not the operator's own live entries, which
// the apply may remove.
func istiodEnvNames(d *appsv1.Deployment, container *corev1.Container, want []corev1.EnvVar) map[string]bool {
	names := map[string]bool{}
	for _, e := range want {
		names[e.Name] = true
	}
	if container == nil {
		return names
	}
	managed, _, _ := envRecords(d.Annotations)
	for _, e := range container.Env {
		if !slices.Contains(managed, e.Name) {
			names[e.Name] = true
		}
	}
	return names
}

// orderLikeLive sorts env entries into the order they have in the live list,
// entries not there yet last, by name. Server-side apply moves an entry whose
// place in the applied list contradicts the live order; in live order, Helm's
// entries keep their place (and come back there on deletion), so the pod
// template does not differ from Helm's in order alone.
func orderLikeLive(env []corev1.EnvVar, live []corev1.EnvVar) {
	at := make(map[string]int, len(live))
	for i, e := range live {
		at[e.Name] = i
	}
	slices.SortFunc(env, func(a, b corev1.EnvVar) int {
		ia, oka := at[a.Name]
		ib, okb := at[b.Name]
		switch {
		case oka && okb:
			return ia - ib
		case oka != okb:
			if oka {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// envRecords decodes the env annotations. A damaged record reads as empty
// (nothing is removed that it does not prove the operator wrote) with an error.
func envRecords(a map[string]string) ([]string, map[string]corev1.EnvVar, error) {
	var managed []string
	replaced := map[string]corev1.EnvVar{}
	var errM, errR error
	if v := a[ManagedEnvAnnotation]; v != "" {
		if errM = json.Unmarshal([]byte(v), &managed); errM != nil {
			errM = fmt.Errorf("annotation %s: %w", ManagedEnvAnnotation, errM)
		}
	}
	if v := a[ReplacedEnvAnnotation]; v != "" {
		if errR = json.Unmarshal([]byte(v), &replaced); errR != nil {
			errR = fmt.Errorf("annotation %s: %w", ReplacedEnvAnnotation, errR)
		}
	}
	if err := errors.Join(errM, errR); err != nil {
		return nil, map[string]corev1.EnvVar{}, err
	}
	return managed, replaced, nil
}

func envAnnotations(managed []string, replaced map[string]corev1.EnvVar) map[string]string {
	out := map[string]string{}
	if len(managed) > 0 {
		b, _ := json.Marshal(managed)
		out[ManagedEnvAnnotation] = string(b)
	}
	if len(replaced) > 0 {
		b, _ := json.Marshal(replaced)
		out[ReplacedEnvAnnotation] = string(b)
	}
	return out
}

// annotationsMatch compares the given keys of live and want (absent == absent).
func annotationsMatch(live, want map[string]string, keys ...string) bool {
	for _, k := range keys {
		lv, lok := live[k]
		wv, wok := want[k]
		if lok != wok || lv != wv {
			return false
		}
	}
	return true
}

// envPresent is true when every entry of want is live, equal.
func envPresent(live, want []corev1.EnvVar) bool {
	for _, w := range want {
		i := slices.IndexFunc(live, func(e corev1.EnvVar) bool { return e.Name == w.Name })
		if i < 0 || !equality.Semantic.DeepEqual(live[i], w) {
			return false
		}
	}
	return true
}

// deploymentEnvApply owns exactly the given env entries of the container
// and the record annotations, nothing else of the Deployment. The UID pins
// the apply to the Deployment that was read, so a vanished istiod is never
// re-created.
func deploymentEnvApply(d *appsv1.Deployment, container string, env []corev1.EnvVar, annotations map[string]string) *appsv1ac.DeploymentApplyConfiguration {
	ac := appsv1ac.Deployment(d.Name, d.Namespace).WithUID(d.UID)
	if len(annotations) > 0 {
		ac.WithAnnotations(annotations)
	}
	if len(env) == 0 {
		return ac // owning no entry releases every entry the operator owned
	}
	c := corev1ac.Container().WithName(container)
	for i := range env {
		c.WithEnv(envApply(&env[i]))
	}
	return ac.WithSpec(appsv1ac.DeploymentSpec().
		WithTemplate(corev1ac.PodTemplateSpec().
			WithSpec(corev1ac.PodSpec().WithContainers(c))))
}

// envApply converts an EnvVar, valueFrom included (a restored Helm entry may use it).
func envApply(e *corev1.EnvVar) *corev1ac.EnvVarApplyConfiguration {
	ac := corev1ac.EnvVar().WithName(e.Name)
	if e.ValueFrom == nil {
		return ac.WithValue(e.Value)
	}
	src := corev1ac.EnvVarSource()
	if f := e.ValueFrom.FieldRef; f != nil {
		src.WithFieldRef(corev1ac.ObjectFieldSelector().WithAPIVersion(f.APIVersion).WithFieldPath(f.FieldPath))
	}
	if r := e.ValueFrom.ResourceFieldRef; r != nil {
		rs := corev1ac.ResourceFieldSelector().WithContainerName(r.ContainerName).WithResource(r.Resource)
		if !r.Divisor.IsZero() {
			rs.WithDivisor(r.Divisor)
		}
		src.WithResourceFieldRef(rs)
	}
	if c := e.ValueFrom.ConfigMapKeyRef; c != nil {
		src.WithConfigMapKeyRef(corev1ac.ConfigMapKeySelector().WithName(c.Name).WithKey(c.Key))
	}
	if sk := e.ValueFrom.SecretKeyRef; sk != nil {
		src.WithSecretKeyRef(corev1ac.SecretKeySelector().WithName(sk.Name).WithKey(sk.Key))
	}
	return ac.WithValueFrom(src)
}

// ownedLabels returns the labels the operator's field manager owns: the
// label keys of its Apply entry, with their live values. It reads the field
// set directly (what ExtractNamespace would compute, without converting the
// whole object to a typed value): namespaces the operator never wrote have
// no entry and cost nothing.
func ownedLabels(ns *metav1.PartialObjectMetadata) (map[string]string, error) {
	return (*ownedMemo)(nil).labels(ns)
}

// ownedLabelKeys parses the label keys of a field set.
func ownedLabelKeys(raw []byte) ([]string, error) {
	var set struct {
		Metadata struct {
			Labels map[string]json.RawMessage `json:"f:labels"`
		} `json:"f:metadata"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(set.Metadata.Labels))
	for k := range set.Metadata.Labels {
		if name, ok := strings.CutPrefix(k, "f:"); ok {
			keys = append(keys, name)
		}
	}
	return keys, nil
}

// ownedMemo remembers the label keys of each field set the operator's entry
// holds. The operator writes the same few label sets to thousands of
// namespaces, so a walk parses a handful of field sets, and the memo holds
// nothing per namespace. A nil memo parses every time.
type ownedMemo struct {
	mu   sync.Mutex
	keys map[string][]string
}

// maxOwnedMemo bounds the memo; other field sets are parsed each time.
const maxOwnedMemo = 256

func (m *ownedMemo) labels(ns *metav1.PartialObjectMetadata) (map[string]string, error) {
	var owned map[string]string
	for _, mf := range ns.ManagedFields {
		if mf.Manager != FieldManager || mf.Operation != metav1.ManagedFieldsOperationApply || mf.Subresource != "" || mf.FieldsV1 == nil {
			continue
		}
		keys, err := m.labelKeys(mf.FieldsV1)
		if err != nil {
			return nil, fmt.Errorf("reading the operator's labels of namespace %s: %w", ns.Name, err)
		}
		for _, name := range keys {
			if v, live := ns.Labels[name]; live {
				if owned == nil {
					owned = map[string]string{}
				}
				owned[name] = v
			}
		}
	}
	return owned, nil
}

func (m *ownedMemo) labelKeys(f *metav1.FieldsV1) ([]string, error) {
	if m == nil {
		return ownedLabelKeys(f.GetRawBytes())
	}
	raw := f.GetRawString()
	m.mu.Lock()
	defer m.mu.Unlock()
	if keys, ok := m.keys[raw]; ok {
		return keys, nil
	}
	keys, err := ownedLabelKeys(f.GetRawBytes())
	if err != nil {
		return nil, err
	}
	if m.keys == nil {
		m.keys = map[string][]string{}
	}
	if len(m.keys) < maxOwnedMemo {
		m.keys[raw] = keys
	}
	return keys, nil
}

// hasOwnEntry tells whether the operator's field manager applied anything.
func hasOwnEntry(fields []metav1.ManagedFieldsEntry) bool {
	for _, mf := range fields {
		if mf.Manager == FieldManager && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Subresource == "" {
			return true
		}
	}
	return false
}

// labelsConverged reports whether the operator owns exactly the wanted keys
// and the live values are the wanted ones.
func labelsConverged(live, owned, want map[string]string) bool {
	if len(owned) != len(want) {
		return false
	}
	for k, v := range want {
		if _, ok := owned[k]; !ok || live[k] != v {
			return false
		}
	}
	return true
}

// selectorWarning explains why discoverySelectors break istiod's own
// namespace, or returns "". An empty list selects every namespace.
func selectorWarning(selectors []meshv1alpha1.LabelSelector, istiodNamespace string, nsLabels map[string]string) string {
	if len(selectors) == 0 {
		return ""
	}
	for i := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(selectors[i].AsMetav1())
		if err == nil && sel.Matches(labels.Set(nsLabels)) {
			return ""
		}
	}
	return fmt.Sprintf("discoverySelectors do not select istiod's namespace %s: gateways there lose their configuration", istiodNamespace)
}
