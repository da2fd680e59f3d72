package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Current is what the desired state depends on besides the spec: the mesh
// document the ConfigMap holds now, the operator's record of it, and the
// version of the running istiod ("" when unknown).
type Current struct {
	MeshDocument  string
	Record        MeshState
	IstiodVersion string
	// RecordLost is set when the operator wrote the document before but its
	// record is gone (annotations removed by a replace) or damaged: values
	// equal to what the operator writes are then its own, not values it
	// replaced, and are not recorded as replaced.
	RecordLost bool
	// NoConfigMap: the mesh ConfigMap does not exist. With Own the operator
	// creates it from the chart's baseline; with Merge it waits.
	NoConfigMap bool
	// MeshNetworks is the live ConfigMap's meshNetworks key ("" when absent).
	MeshNetworks string
	// Baseline is, with Own, the baseline recorded before (the MeshSettings'
	// status.meshConfig.baseline): a ConfigMap deleted since is recreated
	// from it, not from the chart's defaults.
	Baseline string
}

// Desired is the state the operator wants its targets to hold for one
// MeshSettings: what the controller writes and `render` prints.
type Desired struct {
	Targets Targets
	// Mesh is the complete mesh document and the keys it owns.
	Mesh MeshResult
	// MeshHash is a SHA-256 of Mesh.Document, hex.
	MeshHash string
	// MeshAnnotations is the record to store on the ConfigMap with the document.
	MeshAnnotations map[string]string
	// Ownership is the declared owner of the ConfigMap (Own or Merge).
	Ownership v1alpha1.ConfigMapOwnership
	// MeshNetworks is the meshNetworks key an Own ConfigMap holds: the
	// chart's when the operator creates it, the live one otherwise ("" when
	// the live ConfigMap has none: nothing is added). Never set with Merge,
	// where the operator writes the mesh key only.
	MeshNetworks string
	// Baseline is, with Own, the document the ConfigMap returns to when the
	// MeshSettings is deleted: the document without what the spec sets.
	Baseline string
	// Env is istiod's environment.
	Env EnvResult
	// Release is the Istio release the spec was checked against.
	Release TargetRelease
	// Unread are other managers' keys of the document the target release
	// does not read (reported, not removed).
	Unread []string
	// Rules are the namespace rules, in spec order: the first match wins.
	Rules []Rule
}

// Rule is one namespace rule, compiled.
type Rule struct {
	Match  func(name string, labels map[string]string) bool
	Labels map[string]string
}

// Size limits of the objects written: the API server refuses a ConfigMap
// whose data exceeds 1 MiB, or whose annotations exceed 256 KiB together.
const (
	MaxConfigMapData        = 1 << 20
	MaxConfigMapAnnotations = 256 << 10
)

// Desire computes the desired state of ms against cur. It is the one
// translation of a MeshSettings shared by the controller and `render`, so
// both give the same verdict: a *FieldError is the spec's problem (the
// controller stalls with InvalidSpec), a *MeshDocumentError is the current
// document's (MeshDocumentRejected); either way nothing should be written.
func Desire(ms *v1alpha1.MeshSettings, cur Current) (*Desired, error) {
	spec := &ms.Spec
	d := &Desired{Targets: TargetsFor(spec), Ownership: Ownership(spec), Release: ResolveRelease(spec, cur.IstiodVersion)}
	// Every key and enum value the spec writes must be one the target
	// release reads, before anything else is judged.
	frag, err := meshFragment(spec)
	if err != nil {
		return nil, err
	}
	if err := checkRelease(spec, frag, d.Release); err != nil {
		return nil, err
	}
	current := cur.MeshDocument
	if d.Ownership == v1alpha1.ConfigMapOwn {
		d.MeshNetworks = cur.MeshNetworks
		if cur.NoConfigMap {
			// Created by the operator: what Istio's chart renders for the
			// revision is the baseline the spec is merged into, and what
			// deletion leaves.
			ns := ms.Namespace
			if ns == "" {
				ns = DefaultNamespace
			}
			b := ChartBaseline(ns, spec.Revision)
			current, d.MeshNetworks = b.Mesh, b.MeshNetworks
			if cur.Baseline != "" {
				current = cur.Baseline
			}
		}
	}
	mesh, err := MergeMesh(spec, current, cur.Record)
	if err != nil {
		return nil, err
	}
	if d.Ownership == v1alpha1.ConfigMapOwn {
		if base, err := ReleaseMesh(mesh.Document, MeshState{Managed: mesh.Managed, Replaced: mesh.Replaced}); err == nil {
			d.Baseline = base.Document
		}
	}
	if cur.RecordLost {
		forgetOwnValues(&mesh, spec)
	}
	d.Mesh = mesh
	if err := rejectedValues(mesh.Document, mesh.Managed, d.Release, d.Targets.IstiodDeployment); err != nil {
		return nil, err
	}
	d.Unread = UnreadKeys(mesh.Document, mesh.Managed, d.Release)
	sum := sha256.Sum256([]byte(mesh.Document))
	d.MeshHash = hex.EncodeToString(sum[:])
	d.MeshAnnotations = MeshAnnotations(mesh)
	if err := checkSize(spec, d); err != nil {
		return nil, err
	}
	d.Env = Env(spec, d.Release.envVersion())
	for i := range spec.Namespaces {
		r := &spec.Namespaces[i]
		m, err := Selector(r)
		if err != nil {
			return nil, &FieldError{Field: fmt.Sprintf("spec.namespaces[%d].selector", i), Msg: err.Error()}
		}
		d.Rules = append(d.Rules, Rule{Match: m, Labels: RuleLabels(r, spec.Revision)})
	}
	return d, nil
}

// forgetOwnValues drops replaced values equal to the value the spec sets:
// with the record lost, such a value is the operator's own earlier write,
// and recording it as replaced would make deletion put it back, leaving the
// operator's value behind with no owner.
func forgetOwnValues(mesh *MeshResult, spec *v1alpha1.MeshSettingsSpec) {
	frag, err := meshFragment(spec)
	if err != nil {
		return
	}
	for p, orig := range mesh.Replaced {
		if sameJSON(orig, frag.values[p]) {
			delete(mesh.Replaced, p)
		}
	}
	if len(mesh.Replaced) == 0 {
		mesh.Replaced = nil
	}
}

func sameJSON(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	if errA != nil || errB != nil {
		return reflect.DeepEqual(a, b)
	}
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

// checkSize refuses a desired state the API server could never store: the
// spec cannot be written as it is (retrying would not help).
func checkSize(spec *v1alpha1.MeshSettingsSpec, d *Desired) error {
	if n := len(MeshKey) + len(d.Mesh.Document); n > MaxConfigMapData {
		return &FieldError{Field: largestField(spec), Msg: fmt.Sprintf(
			"the mesh document would be %d bytes; a ConfigMap holds at most %d (1 MiB)", n, MaxConfigMapData)}
	}
	n := 0
	for k, v := range d.MeshAnnotations {
		n += len(k) + len(v)
	}
	if n > MaxConfigMapAnnotations {
		return &FieldError{Field: largestField(spec), Msg: fmt.Sprintf(
			"the record of the keys it sets would be %d bytes of annotations; a ConfigMap holds at most %d (256 KiB)", n, MaxConfigMapAnnotations)}
	}
	return nil
}

// largestField names the top-level spec field with the largest JSON form:
// the one to shrink.
func largestField(spec *v1alpha1.MeshSettingsSpec) string {
	const whole = "spec"
	raw, err := json.Marshal(spec)
	if err != nil {
		return whole
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return whole
	}
	best, size := whole, 0
	for k, v := range fields {
		if len(v) > size || len(v) == size && "spec."+k < best {
			best, size = "spec."+k, len(v)
		}
	}
	return best
}

// RecordError is a damaged ownership record: an annotation of the operator
// that does not decode. The policy everywhere (planning, deletion, render):
// never remove what the record does not prove the operator wrote, never
// block deletion on it, and report it.
type RecordError struct {
	Object string // "ConfigMap istio-system/istio"
	Err    error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("the operator's record on %s is damaged (%v); keys it does not prove are kept as they are", e.Object, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// ReadRecord decodes the mesh ConfigMap's record annotations. On a damaged
// record it returns an empty state, which removes nothing, and a
// *RecordError naming object.
func ReadRecord(object string, annotations map[string]string) (MeshState, error) {
	managed, errM := DecodeManaged(annotations[ManagedKeysAnnotation])
	replaced, errR := DecodeReplaced(annotations[ReplacedValuesAnnotation])
	written, errW := DecodeWritten(annotations[WrittenValuesAnnotation])
	if err := errors.Join(errM, errR, errW); err != nil {
		return MeshState{}, &RecordError{Object: object, Err: err}
	}
	return MeshState{Managed: managed, Replaced: replaced, Written: written}, nil
}
