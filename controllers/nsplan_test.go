package controllers

import (
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// The oracle: the full walk the controller ran on every pass before issue 18,
// kept verbatim. The incremental plan must always equal it.
// planNamespaces decides the labels of every namespace: the first matching
// rule's labels, minus conflicts with other managers; labels the operator
// owns on namespaces no rule selects any more are released. A namespace
// another live MeshSettings labels is left to it and reported.
func planNamespaces(p *plan, ms *meshv1alpha1.MeshSettings, rules []render.Rule, obs *observed) error {
	me := ms.Namespace + "/" + ms.Name
	for i := range obs.namespaces {
		ns := &obs.namespaces[i]
		if !ns.DeletionTimestamp.IsZero() {
			continue
		}
		want := map[string]string{}
		matched := false
		for r := range rules {
			if rules[r].Match(ns.Name, ns.Labels) {
				want = rules[r].Labels
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
		owned, err := obs.owned.labels(ns)
		if err != nil {
			return err
		}
		if !matched && owner == "" && len(owned) == 0 {
			continue // most namespaces of a large cluster: nothing wanted, nothing to release
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

// nsWorld is a cluster's namespaces as the cache shows them, with the
// operator's managedFields entry kept the way the API server records its
// applies. Every change marks the namespace dirty in the index, as the
// namespace event handler does.
type nsWorld struct {
	t     *testing.T
	rnd   *rand.Rand
	ns    map[string]*metav1.PartialObjectMetadata
	rv    int
	uid   int
	index *nsIndex
}

const (
	testMe    = "istio-system/m"
	testOther = "istio-system/other"
	testGone  = "istio-system/gone"
)

func (w *nsWorld) touch(ns *metav1.PartialObjectMetadata) {
	w.rv++
	ns.ResourceVersion = strconv.Itoa(w.rv)
	w.index.markDirty(ns.Name)
}

func (w *nsWorld) pick() *metav1.PartialObjectMetadata {
	if len(w.ns) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(w.ns))
	return w.ns[names[w.rnd.IntN(len(names))]]
}

// ownEntry writes the operator's managedFields entry owning these keys.
func ownEntry(labelKeys []string, owner bool) []metav1.ManagedFieldsEntry {
	if len(labelKeys) == 0 && !owner {
		return nil
	}
	md := map[string]any{}
	if len(labelKeys) > 0 {
		l := map[string]any{}
		for _, k := range labelKeys {
			l["f:"+k] = map[string]any{}
		}
		md["f:labels"] = l
	}
	if owner {
		md["f:annotations"] = map[string]any{"f:" + OwnerAnnotation: map[string]any{}}
	}
	raw, _ := json.Marshal(map[string]any{"f:metadata": md})
	return []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, APIVersion: "v1",
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(string(raw))}}
}

func randomLabels(rnd *rand.Rand) map[string]string {
	l := map[string]string{}
	if v := []string{"a", "b", "c", ""}[rnd.IntN(4)]; v != "" {
		l["team"] = v
	}
	if rnd.IntN(3) == 0 {
		l["env"] = "x"
	}
	switch rnd.IntN(10) { // labels of other managers, some forbidden beside the operator's
	case 0:
		l[render.LabelInjection] = render.InjectionEnabled
	case 1:
		l[render.LabelRevision] = "other"
	case 2:
		l[render.LabelDataplaneMode] = render.DataplaneModeAmbient
	}
	return l
}

// event changes one namespace the way a user, another manager or another
// MeshSettings would.
func (w *nsWorld) event() string {
	rnd := w.rnd
	ns := w.pick()
	switch k := rnd.IntN(9); {
	case k < 2 || ns == nil:
		name := fmt.Sprintf("ns-%d", rnd.IntN(30))
		if _, ok := w.ns[name]; ok {
			return "create (exists)"
		}
		w.uid++
		n := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("u" + strconv.Itoa(w.uid)), Labels: randomLabels(rnd)}}
		switch rnd.IntN(6) {
		case 0: // labeled by another MeshSettings (its entry shares the field manager)
			n.Annotations = map[string]string{OwnerAnnotation: testOther}
			n.Labels[render.LabelRevision] = "other"
			n.ManagedFields = ownEntry([]string{render.LabelRevision}, true)
		case 1: // by one that is gone without its finalizer
			n.Annotations = map[string]string{OwnerAnnotation: testGone}
			n.Labels[render.LabelDataplaneMode] = render.DataplaneModeAmbient
			n.ManagedFields = ownEntry([]string{render.LabelDataplaneMode}, true)
		}
		w.ns[name] = n
		w.touch(n)
		return "create " + name
	case k == 2:
		delete(w.ns, ns.Name)
		w.index.markDirty(ns.Name)
		return "delete " + ns.Name
	case k == 3:
		now := metav1.Now()
		ns.DeletionTimestamp = &now
		w.touch(ns)
		return "terminating " + ns.Name
	case k <= 5:
		// relabel: keep the operator's labels, redraw the others
		owned, _ := ownedLabels(ns)
		l := randomLabels(rnd)
		maps.Copy(l, owned)
		ns.Labels = l
		w.touch(ns)
		return "relabel " + ns.Name
	case k == 6:
		// another manager takes a label the operator owns (forced apply)
		owned, _ := ownedLabels(ns)
		if len(owned) == 0 {
			return "take (none owned)"
		}
		key := slices.Sorted(maps.Keys(owned))[0]
		keep := []string{}
		for _, o := range slices.Sorted(maps.Keys(owned)) {
			if o != key {
				keep = append(keep, o)
			}
		}
		ns.Labels[key] = "taken"
		ns.ManagedFields = ownEntry(keep, ns.Annotations[OwnerAnnotation] != "")
		w.touch(ns)
		return "take " + key + " of " + ns.Name
	case k == 7:
		// someone removes an operator label by hand (an Update: the entry keeps it no longer)
		owned, _ := ownedLabels(ns)
		for k := range owned {
			delete(ns.Labels, k)
		}
		ns.ManagedFields = ownEntry(nil, ns.Annotations[OwnerAnnotation] != "")
		w.touch(ns)
		return "strip " + ns.Name
	default:
		// the owner annotation moves
		a := []string{"", testMe, testOther, testGone}[rnd.IntN(4)]
		if a == "" {
			ns.Annotations = nil
		} else {
			ns.Annotations = map[string]string{OwnerAnnotation: a}
		}
		w.touch(ns)
		return "annotate " + ns.Name + " " + a
	}
}

// write applies a namespace apply as the API server would: the operator's
// entry owns exactly the applied labels and annotation; what it owned and
// no longer applies is removed.
func (w *nsWorld) write(ac *corev1ac.NamespaceApplyConfiguration) bool {
	ns, ok := w.ns[*ac.Name]
	if !ok || ns.UID != *ac.UID {
		return false
	}
	owned, _ := ownedLabels(ns)
	for k := range owned {
		if _, again := ac.Labels[k]; !again {
			delete(ns.Labels, k)
		}
	}
	if ns.Labels == nil {
		ns.Labels = map[string]string{}
	}
	maps.Copy(ns.Labels, ac.Labels)
	if o, ok := ac.Annotations[OwnerAnnotation]; ok {
		ns.Annotations = map[string]string{OwnerAnnotation: o}
	} else if hasOwnEntry(ns.ManagedFields) && strings.Contains(ns.ManagedFields[0].FieldsV1.GetRawString(), OwnerAnnotation) {
		ns.Annotations = nil
	}
	ns.ManagedFields = ownEntry(slices.Sorted(maps.Keys(ac.Labels)), len(ac.Annotations) > 0)
	w.touch(ns)
	return true
}

func (w *nsWorld) all() []metav1.PartialObjectMetadata {
	out := make([]metav1.PartialObjectMetadata, 0, len(w.ns))
	for _, n := range w.ns { // map order: a full walk must not depend on it
		out = append(out, *n.DeepCopy())
	}
	return out
}

// randomSpec draws rules from a few selections, dataplanes and revisions, so
// consecutive specs often differ only in labels, or only in selection.
func randomSpec(rnd *rand.Rand) meshv1alpha1.MeshSettingsSpec {
	sel := func(k, v string) *meshv1alpha1.LabelSelector {
		return &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{k: v}}
	}
	selections := [][]meshv1alpha1.NamespaceRule{
		{{Selector: sel("team", "a")}, {Names: []string{"ns-1", "ns-2", "ns-3"}}},
		{{Names: []string{"ns-1", "ns-2", "ns-3"}}, {Selector: sel("team", "a")}},
		{{Selector: &meshv1alpha1.LabelSelector{MatchExpressions: []meshv1alpha1.LabelSelectorRequirement{{Key: "team", Operator: "In", Values: []string{"a", "b"}}}}}},
		{{Selector: &meshv1alpha1.LabelSelector{MatchExpressions: []meshv1alpha1.LabelSelectorRequirement{{Key: "env", Operator: "Exists"}}}}, {Selector: sel("team", "b")}},
		nil,
	}
	rules := slices.Clone(selections[rnd.IntN(len(selections))])
	for i := range rules {
		switch rnd.IntN(5) {
		case 0:
			rules[i].Dataplane = meshv1alpha1.DataplaneSidecar
		case 1:
			rules[i].Dataplane, rules[i].SidecarLabel = meshv1alpha1.DataplaneSidecar, meshv1alpha1.SidecarLabelInjection
		case 2:
			rules[i].Dataplane = meshv1alpha1.DataplaneAmbient
		case 3:
			rules[i].Dataplane, rules[i].Waypoint = meshv1alpha1.DataplaneAmbient, &meshv1alpha1.Waypoint{Name: "wp"}
		default:
			rules[i].Dataplane = meshv1alpha1.DataplaneDisabled
		}
	}
	return meshv1alpha1.MeshSettingsSpec{Revision: []string{"", "canary"}[rnd.IntN(2)], Namespaces: rules}
}

func testRules(t *testing.T, spec *meshv1alpha1.MeshSettingsSpec) []render.Rule {
	t.Helper()
	var rules []render.Rule
	for i := range spec.Namespaces {
		m, err := render.Selector(&spec.Namespaces[i])
		if err != nil {
			t.Fatal(err)
		}
		rules = append(rules, render.Rule{Match: m, Labels: render.RuleLabels(&spec.Namespaces[i], spec.Revision)})
	}
	return rules
}

// applyKey describes an apply for comparison.
func applyKey(ac *corev1ac.NamespaceApplyConfiguration) string {
	return fmt.Sprintf("%s %s %v %v", *ac.Name, *ac.UID, ac.Labels, ac.Annotations)
}

func sortConflicts(c []meshv1alpha1.LabelConflict) []meshv1alpha1.LabelConflict {
	c = slices.Clone(c)
	slices.SortStableFunc(c, func(a, b meshv1alpha1.LabelConflict) int { return strings.Compare(a.Namespace, b.Namespace) })
	return c
}

// TestIncrementalPlanEqualsFullWalk drives random sequences of namespace
// events, spec changes, changes of the set of MeshSettings, failed writes and
// passes that stop before planning, and checks after every pass that the
// incremental plan (counts, conflicts, writes) is what the full walk gives
// for the same cluster.
func TestIncrementalPlanEqualsFullWalk(t *testing.T) {
	incremental, walks := 0, 0
	for seed := range uint64(150) {
		rnd := rand.New(rand.NewPCG(seed, 18))
		w := &nsWorld{t: t, rnd: rnd, ns: map[string]*metav1.PartialObjectMetadata{}, index: &nsIndex{}}
		for range 20 {
			w.event()
		}
		memo := &ownedMemo{}
		ms := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "m"}, Spec: randomSpec(rnd)}
		existing := map[string]bool{testMe: true, testOther: true}
		var log []string
		for step := range 60 {
			switch rnd.IntN(10) {
			case 0:
				ms.Spec = randomSpec(rnd)
				log = append(log, fmt.Sprintf("spec %v", ruleSelection(&ms.Spec)))
			case 1:
				existing[testOther] = !existing[testOther]
				log = append(log, fmt.Sprintf("other exists: %v", existing[testOther]))
			default:
				for range rnd.IntN(4) + 1 {
					log = append(log, w.event())
				}
			}
			work := w.index.begin(&ms.Spec, existing)
			if rnd.IntN(12) == 0 { // the pass stops before planning (InvalidSpec, a read error)
				work.finish(nil, nil)
				log = append(log, "aborted pass")
				continue
			}
			obs := &observed{nsWork: work, existing: existing, owned: memo}
			if work.full {
				walks++
				obs.namespaces = w.all()
			} else {
				incremental++
				for _, n := range work.names {
					if ns, ok := w.ns[n]; ok {
						obs.namespaces = append(obs.namespaces, *ns.DeepCopy())
					}
				}
			}
			rules := testRules(t, &ms.Spec)
			got := &plan{}
			if err := planNamespaceWork(got, ms, rules, obs); err != nil {
				t.Fatal(err)
			}
			want := &plan{}
			if err := planNamespaces(want, ms, rules, &observed{namespaces: w.all(), existing: existing}); err != nil {
				t.Fatal(err)
			}
			gotApplies, wantApplies := []string{}, []string{}
			for _, ac := range got.namespaceApplies {
				gotApplies = append(gotApplies, applyKey(ac))
			}
			for _, ac := range want.namespaceApplies {
				wantApplies = append(wantApplies, applyKey(ac))
			}
			slices.Sort(gotApplies)
			slices.Sort(wantApplies)
			if got.selected != want.selected || got.labeled != want.labeled ||
				!equality.Semantic.DeepEqual(got.conflicts, sortConflicts(want.conflicts)) || !slices.Equal(gotApplies, wantApplies) {
				t.Fatalf("seed %d step %d (full walk %v, evaluated %d) after\n  %s\nincremental: selected %d labeled %d conflicts %v\n  applies %v\n"+
					"full walk:   selected %d labeled %d conflicts %v\n  applies %v",
					seed, step, work.full, len(obs.namespaces), strings.Join(log, "\n  "),
					got.selected, got.labeled, got.conflicts, gotApplies, want.selected, want.labeled, sortConflicts(want.conflicts), wantApplies)
			}
			log = log[:0]
			// Writes: most succeed (their events follow), some fail.
			var done []written
			for _, ac := range got.namespaceApplies {
				if rnd.IntN(5) > 0 && w.write(ac) {
					n := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: *ac.Name}}
					done = append(done, written{obj: n})
				}
			}
			work.finish(got.namespaceApplies, done)
		}
	}
	if incremental < 3*walks {
		t.Fatalf("%d incremental passes, %d full walks: the sequences should mostly exercise the incremental path", incremental, walks)
	}
	t.Logf("%d incremental passes, %d full walks", incremental, walks)
}

// The namespace watch passes exactly the changes that can change a plan; an
// annotation of another tool or a resync does not wake every MeshSettings.
func TestNamespaceChangedPredicate(t *testing.T) {
	base := func() *metav1.PartialObjectMetadata {
		return &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "a", ResourceVersion: "1",
			Labels:        map[string]string{"team": "a", render.LabelRevision: "default"},
			Annotations:   map[string]string{OwnerAnnotation: testMe},
			ManagedFields: ownEntry([]string{render.LabelRevision}, true)}}
	}
	for _, tc := range []struct {
		name   string
		change func(*metav1.PartialObjectMetadata)
		pass   bool
	}{
		{"resync", func(*metav1.PartialObjectMetadata) {}, false},
		{"another tool's annotation", func(n *metav1.PartialObjectMetadata) { n.Annotations["x"] = "y" }, false},
		{"a label", func(n *metav1.PartialObjectMetadata) { n.Labels["team"] = "b" }, true},
		{"a label removed", func(n *metav1.PartialObjectMetadata) { delete(n.Labels, "team") }, true},
		{"the owner annotation", func(n *metav1.PartialObjectMetadata) { n.Annotations[OwnerAnnotation] = testOther }, true},
		{"the owner annotation removed", func(n *metav1.PartialObjectMetadata) { n.Annotations = nil }, true},
		{"the operator's entry", func(n *metav1.PartialObjectMetadata) { n.ManagedFields = ownEntry(nil, true) }, true},
		{"terminating", func(n *metav1.PartialObjectMetadata) { now := metav1.Now(); n.DeletionTimestamp = &now }, true},
	} {
		o, n := base(), base()
		tc.change(n)
		if got := namespaceChanged().Update(event.UpdateEvent{ObjectOld: o, ObjectNew: n}); got != tc.pass {
			t.Errorf("%s: passed %v, want %v", tc.name, got, tc.pass)
		}
	}
	if !namespaceChanged().Create(event.CreateEvent{Object: base()}) || !namespaceChanged().Delete(event.DeleteEvent{Object: base()}) {
		t.Error("creations and deletions must pass")
	}
}
