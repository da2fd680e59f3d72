package controllers

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/render"
)

// Table tests of the pure status step: what the pass found and did, and the
// status it had, give every condition and the events; no API server.

var testTargets = render.Targets{ConfigMap: "istio", IstiodDeployment: "istiod", IstiodContainer: "discovery"}

func appliedPlan(mut ...func(*plan)) *plan {
	p := &plan{targets: testTargets, meshHash: "h1", istiodTag: "1.28.1", selected: 2, labeled: 2,
		env: render.EnvResult{Env: []corev1.EnvVar{{Name: "PILOT_TRACE_SAMPLING", Value: "5"}}}}
	for _, m := range mut {
		m(p)
	}
	return p
}

func passWith(mut func(*pass)) *pass {
	in := &pass{generation: 2, namespace: "istio-system", targets: testTargets}
	mut(in)
	return in
}

// readyStatus is the status of a converged generation 1.
func readyStatus() *meshv1alpha1.MeshSettingsStatus {
	in := passWith(func(in *pass) { in.generation = 1; in.plan = appliedPlan() })
	st := deriveStatus(&meshv1alpha1.MeshSettingsStatus{}, in, metav1.NewTime(time.Unix(1000, 0)))
	return &st
}

// cond is "Status/Reason", or "-" when the condition is absent.
func cond(st *meshv1alpha1.MeshSettingsStatus, t string) string {
	c := meta.FindStatusCondition(st.Conditions, t)
	if c == nil {
		return "-"
	}
	return string(c.Status) + "/" + c.Reason
}

func TestDeriveStatus(t *testing.T) {
	docErr := &render.MeshDocumentError{Problems: []render.DocumentProblem{{Msg: "the current mesh document is not a valid YAML mapping: boom", Foreign: true}}}
	cases := []struct {
		name string
		old  *meshv1alpha1.MeshSettingsStatus
		in   *pass
		// Ready, Reconciling, Stalled, MeshConfigApplied, IstiodEnvApplied, NamespacesLabeled
		want    [6]string
		msgHas  string // in Ready's message
		retries bool
	}{
		{name: "converged", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) { in.plan = appliedPlan() }),
			want: [6]string{"True/Reconciled", "-", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "ConfigMap istio, Deployment istiod and 2 namespaces"},
		{name: "istiod missing", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) { in.plan = appliedPlan(func(p *plan) { p.istiodMissing = true }) }),
			want: [6]string{"False/IstiodNotFound", "-", "-", "True/UpToDate", "False/IstiodNotFound", "True/UpToDate"}, msgHas: "waiting for istiod Deployment istiod"},
		{name: "invalid spec keeps the targets' conditions", old: readyStatus(), in: passWith(func(in *pass) {
			in.specErr = &render.FieldError{Field: "spec.meshConfig", Msg: "the mesh document would be 2000000 bytes"}
		}), want: [6]string{"False/InvalidSpec", "-", "True/InvalidSpec", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "spec.meshConfig: the mesh document would be"},
		{name: "rejected mesh document", old: readyStatus(), in: passWith(func(in *pass) { in.docErr = docErr }),
			want:   [6]string{"False/MeshDocumentRejected", "-", "True/MeshDocumentRejected", "False/MeshDocumentRejected", "True/UpToDate", "True/UpToDate"},
			msgHas: `ConfigMap istio-system/istio key "mesh": istiod rejects the mesh document`},
		{name: "conflict", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) { in.conflictWith = "first" }),
			want: [6]string{"False/Conflict", "-", "True/Conflict", "-", "-", "-"}, msgHas: "MeshSettings first, created earlier"},
		{name: "Merge and no ConfigMap: waits", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) { p.configMapMissing = true })
		}), want: [6]string{"False/ConfigMapNotFound", "-", "-", "False/ConfigMapNotFound", "True/UpToDate", "True/UpToDate"},
			msgHas: "ConfigMap istio not found in istio-system; with configMapOwnership Merge the operator never creates it"},
		{name: "Merge and the mesh key applied by another manager: stalls with the remedy", old: readyStatus(), in: passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) { p.meshApplyOwner = "helm" })
		}), want: [6]string{"False/MeshConfigOwnedByApply", "-", "True/MeshConfigOwnedByApply", "False/MeshConfigOwnedByApply", "True/UpToDate", "True/UpToDate"},
			msgHas: `owned by manager "helm" with server-side apply`},
		{name: "an env entry held by Helm", old: readyStatus(), in: passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) {
				p.envHeld = []heldEnv{{Name: "PILOT_TRACE_SAMPLING", Manager: "helm (Apply)", Live: "1", Want: "5"}}
			})
		}), want: [6]string{"False/EnvHeldByOtherManager", "-", "-", "True/UpToDate", "False/EnvHeldByOtherManager", "True/UpToDate"},
			msgHas: `PILOT_TRACE_SAMPLING is applied by helm (Apply) with value "1", not "5": set the chart value traceSampling: ""`},
		{name: "transient read error", old: readyStatus(), in: passWith(func(in *pass) { in.err = errors.New("listing namespaces: timeout") }),
			want: [6]string{"False/Progressing", "True/Progressing", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "Retrying after error: listing namespaces: timeout", retries: true},
		{name: "ConfigMap write refused", old: readyStatus(), in: passWith(func(in *pass) {
			in.plan, in.cmSent, in.cmErr = appliedPlan(), true, errors.New("applying ConfigMap istio-system/istio: forbidden")
		}), want: [6]string{"False/Progressing", "True/Progressing", "-", "False/ApplyFailed", "True/UpToDate", "True/UpToDate"}, msgHas: "applying ConfigMap istio-system/istio: forbidden", retries: true},
		{name: "istiod changed while applying", old: readyStatus(), in: passWith(func(in *pass) {
			in.plan, in.depSent = appliedPlan(), true
			in.depErr = apierrors.NewConflict(schema.GroupResource{Resource: "deployments"}, "istiod", errors.New("uid"))
		}), want: [6]string{"False/Progressing", "True/Progressing", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, retries: true},
		{name: "label conflict", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) {
				p.conflicts = []meshv1alpha1.LabelConflict{{Namespace: "app", Label: render.LabelInjection, Message: "held by helm"}}
				p.selectorWarning = "discoverySelectors do not select istiod's namespace istio-system"
			})
		}), want: [6]string{"False/LabelConflict", "-", "True/LabelConflict", "True/UpToDate", "True/UpToDate", "False/LabelConflict"},
			msgHas: "warning: discoverySelectors do not select"},
		{name: "new generation with a long write", old: readyStatus(), in: passWith(func(in *pass) {
			in.plan, in.starting = appliedPlan(), true
		}), want: [6]string{"False/Progressing", "True/Progressing", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "Applying generation 2"},
		{name: "deletion retrying", old: readyStatus(), in: passWith(func(in *pass) {
			in.deleting, in.cleanupErr = true, errors.New("removing mesh keys from ConfigMap istio-system/istio: timeout")
		}), want: [6]string{"False/Progressing", "True/Progressing", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "Deleting", retries: true},
		{name: "damaged record is reported, not fatal", old: &meshv1alpha1.MeshSettingsStatus{}, in: passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) { p.recordProblem = "the operator's record on ConfigMap istio-system/istio is damaged" })
		}), want: [6]string{"True/Reconciled", "-", "-", "True/UpToDate", "True/UpToDate", "True/UpToDate"}, msgHas: "warning: the operator's record on ConfigMap istio-system/istio is damaged"},
	}
	types := []string{meshv1alpha1.ConditionReady, meshv1alpha1.ConditionReconciling, meshv1alpha1.ConditionStalled,
		meshv1alpha1.ConditionMeshConfigApplied, meshv1alpha1.ConditionIstiodEnvApplied, meshv1alpha1.ConditionNamespacesLabeled}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := deriveStatus(c.old, c.in, metav1.Now())
			for i, ty := range types {
				if got := cond(&st, ty); got != c.want[i] {
					t.Errorf("%s = %s, want %s", ty, got, c.want[i])
				}
			}
			if st.ObservedGeneration != c.in.generation {
				t.Errorf("observedGeneration %d, want %d", st.ObservedGeneration, c.in.generation)
			}
			for _, cd := range st.Conditions {
				if cd.ObservedGeneration != c.in.generation && meta.FindStatusCondition(c.old.Conditions, cd.Type) == nil {
					t.Errorf("new condition %s has observedGeneration %d", cd.Type, cd.ObservedGeneration)
				}
			}
			if ready := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady); !strings.Contains(ready.Message, c.msgHas) {
				t.Errorf("Ready message %q lacks %q", ready.Message, c.msgHas)
			}
			if got := c.in.retryErr() != nil; got != c.retries {
				t.Errorf("retries %v, want %v", got, c.retries)
			}
		})
	}
}

// A condition that keeps its status keeps its lastTransitionTime.
func TestDeriveStatusKeepsTransitionTimes(t *testing.T) {
	old := readyStatus()
	st := deriveStatus(old, passWith(func(in *pass) { in.plan = appliedPlan() }), metav1.NewTime(time.Unix(5000, 0)))
	if c := meta.FindStatusCondition(st.Conditions, meshv1alpha1.ConditionReady); !c.LastTransitionTime.Equal(&metav1.Time{Time: time.Unix(1000, 0)}) {
		t.Errorf("Ready's lastTransitionTime moved to %v", c.LastTransitionTime)
	}
}

func reasons(evs []statusEvent) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.eventType + "/" + e.reason
	}
	return out
}

// Events come from status transitions: a second identical pass says nothing.
func TestTransitionsOneEventPerTransition(t *testing.T) {
	ignored := []meshv1alpha1.IgnoredSetting{
		{Field: "spec.istiod.features.a", Name: "A", Reason: "istiod 1.27 does not read A"},
		{Field: "spec.istiod.features.b", Name: "B", Reason: "istiod 1.27 does not read B"},
		{Field: "spec.istiod.features.c", Name: "C", Reason: "istiod 1.27 does not read C"},
		{Field: "spec.istiod.features.d", Name: "D", Reason: "istiod 1.27 does not read D"},
	}
	warn := "discoverySelectors do not select istiod's namespace istio-system: gateways there lose their configuration"
	mk := func(conflicts bool) *pass {
		return passWith(func(in *pass) {
			in.plan = appliedPlan(func(p *plan) {
				p.selectorWarning = warn
				p.env.Ignored = ignored
				if conflicts {
					p.conflicts = []meshv1alpha1.LabelConflict{{Namespace: "app", Label: render.LabelInjection, Message: "held by helm"}}
				}
			})
		})
	}
	for _, conflicts := range []bool{false, true} {
		t.Run(fmt.Sprintf("label conflicts %v", conflicts), func(t *testing.T) {
			old := &meshv1alpha1.MeshSettingsStatus{}
			in := mk(conflicts)
			st := deriveStatus(old, in, metav1.Now())
			evs := transitions(old, &st, in)
			n := map[string]int{}
			for _, e := range evs {
				n[e.reason]++
			}
			if n["DiscoverySelectors"] != 1 || n["SettingIgnored"] != 1 {
				t.Fatalf("first pass: events %v", reasons(evs))
			}
			for _, e := range evs {
				if e.reason == "SettingIgnored" {
					for _, s := range ignored {
						if !strings.Contains(e.note, s.Field) {
							t.Errorf("SettingIgnored event %q does not name %s", e.note, s.Field)
						}
					}
				}
			}
			if conflicts && n[meshv1alpha1.ReasonLabelConflict] != 1 {
				t.Errorf("want one LabelConflict event, got %v", reasons(evs))
			}
			again := mk(conflicts)
			st2 := deriveStatus(&st, again, metav1.Now())
			if evs := transitions(&st, &st2, again); len(evs) != 0 {
				t.Errorf("an identical pass emits %v", reasons(evs))
			}
		})
	}
}

func TestTransitionsOfFaults(t *testing.T) {
	old := readyStatus()
	docErr := &render.MeshDocumentError{Problems: []render.DocumentProblem{{Msg: "not YAML", Foreign: true}}}
	in := passWith(func(in *pass) { in.docErr = docErr })
	st := deriveStatus(old, in, metav1.Now())
	evs := transitions(old, &st, in)
	if got := reasons(evs); len(got) != 1 || got[0] != "Warning/MeshDocumentRejected" {
		t.Errorf("rejected document: events %v, want one Warning/MeshDocumentRejected", got)
	}

	fixed := passWith(func(in *pass) { in.plan, in.cmSent = appliedPlan(), true })
	st2 := deriveStatus(&st, fixed, metav1.Now())
	got := reasons(transitions(&st, &st2, fixed))
	want := []string{"Normal/MeshConfigApplied", "Normal/Reconciled"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("recovery: events %v, want %v", got, want)
	}

	failing := passWith(func(in *pass) {
		in.plan, in.depSent, in.depErr = appliedPlan(), true, errors.New("admission webhook denied")
	})
	st3 := deriveStatus(&st2, failing, metav1.Now())
	if got := reasons(transitions(&st2, &st3, failing)); strings.Join(got, ",") != "Warning/ApplyFailed" {
		t.Errorf("env write refused: events %v", got)
	}
	st4 := deriveStatus(&st3, failing, metav1.Now())
	if got := transitions(&st3, &st4, failing); len(got) != 0 {
		t.Errorf("the same failure again: events %v", reasons(got))
	}
}

func TestOwnedEnvReadsTheOperatorsApplyEntry(t *testing.T) {
	raw := `{"f:metadata":{"f:annotations":{"f:mesh.meshsettings.io/managed-env":{}}},"f:spec":{"f:template":{"f:spec":{"f:containers":{` +
		`"k:{\"name\":\"discovery\"}":{".":{},"f:env":{"k:{\"name\":\"PILOT_ENABLE_STATUS\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"CLUSTER_ID\"}":{".":{},"f:name":{},"f:value":{}}},"f:name":{}},` +
		`"k:{\"name\":\"sidecar\"}":{".":{},"f:env":{"k:{\"name\":\"OTHER\"}":{}},"f:name":{}}}}}}}`
	fields := []metav1.ManagedFieldsEntry{
		{Manager: "helm", Operation: metav1.ManagedFieldsOperationUpdate, FieldsV1: metav1.NewFieldsV1(raw)},
		{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, FieldsV1: metav1.NewFieldsV1(raw)},
	}
	if got := ownedEnv(fields, "discovery"); strings.Join(got, ",") != "CLUSTER_ID,PILOT_ENABLE_STATUS" {
		t.Errorf("ownedEnv(discovery) = %v", got)
	}
	if got := ownedEnv(fields[:1], "discovery"); len(got) != 0 {
		t.Errorf("another manager's entries are not the operator's: %v", got)
	}
	if got := ownedEnv(fields, "pilot"); len(got) != 0 {
		t.Errorf("a container the operator never wrote: %v", got)
	}
}
