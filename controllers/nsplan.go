package controllers

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Incremental namespace planning (issue 18). What a MeshSettings wants of a
// namespace depends only on that namespace, the rules and the set of live
// MeshSettings (evalNamespace). So each MeshSettings keeps an index of what
// every selected namespace contributes to its plan and status, and a pass
// re-evaluates only:
//   - the namespaces whose events arrived since the last pass (dirty),
//   - the members of a rule whose labels changed (revision, dataplane),
//   - every namespace (a full walk) on the first pass, when a rule's
//     selection changed (order, selector, names), when the set of
//     MeshSettings changed (ownership among them can move), or when a pass
//     could not finish its planning.
//
// A namespace whose write failed stays dirty, so the retry plans it again.

// nsEval is what one namespace contributes to a MeshSettings' plan.
type nsEval struct {
	// rule is the index of the first rule selecting the namespace, -1: none.
	rule      int
	labeled   bool
	conflicts []meshv1alpha1.LabelConflict
	// apply is nil when the namespace holds what it should.
	apply *corev1ac.NamespaceApplyConfiguration
}

// evalNamespace decides the labels of one namespace: the first matching
// rule's labels, minus conflicts with other managers; labels the operator
// owns on a namespace no rule selects any more are released. A namespace
// another live MeshSettings labels is left to it and reported. me is
// "<namespace>/<name>" of the MeshSettings; existing holds every live one.
func evalNamespace(ns *metav1.PartialObjectMetadata, me string, rules []render.Rule, existing map[string]bool, memo *ownedMemo) (nsEval, error) {
	e := nsEval{rule: -1}
	if !ns.DeletionTimestamp.IsZero() {
		return e, nil
	}
	want := map[string]string{}
	for r := range rules {
		if rules[r].Match(ns.Name, ns.Labels) {
			want = rules[r].Labels
			e.rule = r
			break
		}
	}
	matched := e.rule >= 0
	owner := ns.Annotations[OwnerAnnotation]
	if owner != "" && owner != me && existing[owner] {
		if matched {
			e.conflicts = []meshv1alpha1.LabelConflict{{
				Namespace: ns.Name, Label: OwnerAnnotation, Have: owner,
				Message: fmt.Sprintf("labeled by MeshSettings %s; a namespace follows one MeshSettings", owner),
			}}
		}
		return e, nil
	}
	owned, err := memo.labels(ns)
	if err != nil {
		return nsEval{}, err
	}
	if !matched && owner == "" && len(owned) == 0 {
		return e, nil // most namespaces of a large cluster: nothing wanted, nothing to release
	}
	foreign := map[string]string{}
	for k, v := range ns.Labels {
		if _, ours := owned[k]; !ours {
			foreign[k] = v
		}
	}
	labelsToOwn, conflicts := render.NamespaceLabels(ns.Name, want, foreign)
	if matched {
		e.labeled = len(conflicts) == 0
		e.conflicts = conflicts
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
		e.apply = ac
	}
	return e, nil
}

// nsEntry is what the index keeps of a selected namespace.
type nsEntry struct {
	rule    int
	labeled bool
}

// nsIndex is the namespace part of one MeshSettings' plan, kept between
// passes. The dirty set is filled by the namespace event handler while a
// pass may run; everything else belongs to the passes of its MeshSettings,
// which the work queue runs one at a time.
type nsIndex struct {
	mu    sync.Mutex
	dirty map[string]struct{}
	// stale forces a full walk on the next pass.
	stale bool

	built bool
	// what the index was built for: a change of either means a full walk.
	selection []string
	existing  string
	// ruleLabels are the labels each rule sets: a change re-evaluates the
	// rule's members only.
	ruleLabels []map[string]string
	// entries holds the selected namespaces, by name.
	entries           map[string]nsEntry
	selected, labeled int32
	// conflicts by namespace, and all of them sorted (nil: to be rebuilt).
	conflicts map[string][]meshv1alpha1.LabelConflict
	sorted    []meshv1alpha1.LabelConflict
}

// nsWork is what one pass re-evaluates: every namespace (full) or the named ones.
type nsWork struct {
	index *nsIndex
	full  bool
	names []string
	// what the index is built for once the work is committed.
	selection  []string
	existing   string
	ruleLabels []map[string]string
	committed  bool
}

// ruleSelection is, per rule, what decides which namespaces it selects.
func ruleSelection(spec *meshv1alpha1.MeshSettingsSpec) []string {
	out := make([]string, len(spec.Namespaces))
	for i := range spec.Namespaces {
		r := &spec.Namespaces[i]
		b, _ := json.Marshal(struct {
			Names    []string                    `json:"n"`
			Selector *meshv1alpha1.LabelSelector `json:"s"`
		}{r.Names, r.Selector})
		out[i] = string(b)
	}
	return out
}

// existingKey is the set of live MeshSettings as one comparable string.
func existingKey(existing map[string]bool) string {
	keys := make([]string, 0, len(existing))
	for k, ok := range existing {
		if ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return strings.Join(keys, "\n")
}

// markDirty records namespaces whose events arrived.
func (x *nsIndex) markDirty(names ...string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.dirty == nil {
		x.dirty = map[string]struct{}{}
	}
	for _, n := range names {
		x.dirty[n] = struct{}{}
	}
}

// begin decides what a pass re-evaluates for spec and the live MeshSettings,
// and takes the dirty set.
func (x *nsIndex) begin(spec *meshv1alpha1.MeshSettingsSpec, existing map[string]bool) *nsWork {
	x.mu.Lock()
	dirty, stale := x.dirty, x.stale
	x.dirty, x.stale = nil, false
	x.mu.Unlock()

	w := &nsWork{index: x, selection: ruleSelection(spec), existing: existingKey(existing)}
	w.ruleLabels = make([]map[string]string, len(spec.Namespaces))
	for i := range spec.Namespaces {
		w.ruleLabels[i] = render.RuleLabels(&spec.Namespaces[i], spec.Revision)
	}
	if !x.built || stale || !slices.Equal(w.selection, x.selection) || w.existing != x.existing {
		w.full = true
		return w
	}
	changed := map[int]bool{}
	for i, l := range w.ruleLabels {
		if !maps.Equal(l, x.ruleLabels[i]) {
			changed[i] = true
		}
	}
	if len(changed) > 0 {
		if dirty == nil {
			dirty = map[string]struct{}{}
		}
		for n, e := range x.entries {
			if changed[e.rule] {
				dirty[n] = struct{}{}
			}
		}
	}
	w.names = slices.Sorted(maps.Keys(dirty))
	return w
}

// namedEval is the evaluation of one namespace of a work.
type namedEval struct {
	name string
	nsEval
}

// commit records the evaluations of a work: of every namespace for a full
// walk, else of the work's names found (a name not among them is gone).
func (w *nsWork) commit(evals []namedEval) {
	x := w.index
	if w.full {
		x.entries = map[string]nsEntry{}
		x.conflicts = map[string][]meshv1alpha1.LabelConflict{}
		x.selected, x.labeled, x.sorted = 0, 0, nil
	} else {
		for _, n := range w.names {
			x.remove(n)
		}
	}
	for i := range evals {
		x.put(evals[i].name, &evals[i].nsEval)
	}
	x.built = true
	x.selection, x.existing, x.ruleLabels = w.selection, w.existing, w.ruleLabels
	w.committed = true
}

func (x *nsIndex) remove(name string) {
	e, ok := x.entries[name]
	if !ok {
		return
	}
	delete(x.entries, name)
	x.selected--
	if e.labeled {
		x.labeled--
	}
	if _, ok := x.conflicts[name]; ok {
		delete(x.conflicts, name)
		x.sorted = nil
	}
}

func (x *nsIndex) put(name string, e *nsEval) {
	if e.rule < 0 {
		return // only selected namespaces count, and only they carry conflicts
	}
	x.entries[name] = nsEntry{rule: e.rule, labeled: e.labeled}
	x.selected++
	if e.labeled {
		x.labeled++
	}
	if len(e.conflicts) > 0 {
		x.conflicts[name] = e.conflicts
		x.sorted = nil
	}
}

// sortedConflicts are the conflicts of every selected namespace, by
// namespace, so the status does not change with the order of a walk.
func (x *nsIndex) sortedConflicts() []meshv1alpha1.LabelConflict {
	if x.sorted == nil && len(x.conflicts) > 0 {
		names := slices.Sorted(maps.Keys(x.conflicts))
		for _, n := range names {
			x.sorted = append(x.sorted, x.conflicts[n]...)
		}
	}
	return x.sorted
}

// finish ends the work of a pass. Unfinished planning gives the dirty names
// back (and a full walk stays due); a finished one keeps the namespaces
// whose write did not succeed dirty, so the retry plans them again.
func (w *nsWork) finish(applies []*corev1ac.NamespaceApplyConfiguration, written []written) {
	x := w.index
	if !w.committed {
		if w.full {
			x.mu.Lock()
			x.stale = true
			x.mu.Unlock()
		}
		x.markDirty(w.names...)
		return
	}
	if len(applies) == len(written) {
		return
	}
	ok := make(map[string]bool, len(written))
	for _, wr := range written {
		ok[wr.obj.GetName()] = true
	}
	for _, ac := range applies {
		if !ok[*ac.Name] {
			x.markDirty(*ac.Name)
		}
	}
}

// planNamespaceWork evaluates the namespaces of the work (obs.namespaces:
// all of them for a full walk, else those of its names found in the cache),
// commits them to the index and fills the namespace part of the plan.
func planNamespaceWork(p *plan, ms *meshv1alpha1.MeshSettings, rules []render.Rule, obs *observed) error {
	w := obs.nsWork
	me := ms.Namespace + "/" + ms.Name
	evals := make([]namedEval, 0, len(obs.namespaces))
	for i := range obs.namespaces {
		ns := &obs.namespaces[i]
		e, err := evalNamespace(ns, me, rules, obs.existing, obs.owned)
		if err != nil {
			return err
		}
		if e.apply != nil {
			p.namespaceApplies = append(p.namespaceApplies, e.apply)
		}
		if e.rule >= 0 {
			evals = append(evals, namedEval{ns.Name, e})
		}
	}
	w.commit(evals)
	namespacesEvaluated.WithLabelValues(me).Add(float64(len(obs.namespaces)))
	if w.full {
		namespaceWalks.WithLabelValues(me).Inc()
	}
	x := w.index
	p.selected, p.labeled, p.conflicts = x.selected, x.labeled, x.sortedConflicts()
	return nil
}

// nsIndexes holds the index of every MeshSettings that planned.
type nsIndexes struct {
	mu sync.Mutex
	m  map[types.NamespacedName]*nsIndex
}

// get returns the index of a MeshSettings, created empty (a full walk) on first use.
func (s *nsIndexes) get(key types.NamespacedName) *nsIndex {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[types.NamespacedName]*nsIndex{}
	}
	x, ok := s.m[key]
	if !ok {
		x = &nsIndex{}
		s.m[key] = x
	}
	return x
}

// drop forgets the index of a MeshSettings that is gone or plans no namespaces.
func (s *nsIndexes) drop(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		delete(s.m, key)
		me := key.Namespace + "/" + key.Name
		namespacesEvaluated.DeleteLabelValues(me)
		namespaceWalks.DeleteLabelValues(me)
	}
}

// markDirty records a namespace event in every index.
func (s *nsIndexes) markDirty(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.m {
		x.markDirty(name)
	}
}
