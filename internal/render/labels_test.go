package render

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

func TestRuleLabels(t *testing.T) {
	wp := func(name, ns string) *v1alpha1.Waypoint { return &v1alpha1.Waypoint{Name: name, Namespace: ns} }
	cases := []struct {
		name     string
		rule     v1alpha1.NamespaceRule
		revision string
		want     map[string]string
	}{
		{"sidecar default label, default revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneSidecar}, "",
			map[string]string{LabelRevision: "default"}},
		{"sidecar default label, canary revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneSidecar}, "canary",
			map[string]string{LabelRevision: "canary"}},
		{"sidecar Revision, default revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneSidecar, SidecarLabel: v1alpha1.SidecarLabelRevision}, "",
			map[string]string{LabelRevision: "default"}},
		{"sidecar Revision, canary revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneSidecar, SidecarLabel: v1alpha1.SidecarLabelRevision}, "canary",
			map[string]string{LabelRevision: "canary"}},
		{"sidecar InjectionLabel", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneSidecar, SidecarLabel: v1alpha1.SidecarLabelInjection}, "",
			map[string]string{LabelInjection: "enabled"}},
		{"ambient", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneAmbient}, "",
			map[string]string{LabelDataplaneMode: "ambient"}},
		{"ambient ignores the revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneAmbient}, "canary",
			map[string]string{LabelDataplaneMode: "ambient"}},
		{"ambient, waypoint in the namespace itself", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneAmbient, Waypoint: wp("waypoint", "")}, "",
			map[string]string{LabelDataplaneMode: "ambient", LabelUseWaypoint: "waypoint"}},
		{"ambient, waypoint in another namespace", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneAmbient, Waypoint: wp("shared", "istio-waypoints")}, "",
			map[string]string{LabelDataplaneMode: "ambient", LabelUseWaypoint: "shared", LabelUseWaypointNamespace: "istio-waypoints"}},
		{"disabled", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneDisabled}, "",
			map[string]string{LabelInjection: "disabled"}},
		{"disabled with a revision", v1alpha1.NamespaceRule{Dataplane: v1alpha1.DataplaneDisabled}, "canary",
			map[string]string{LabelInjection: "disabled"}},
		{"unknown dataplane", v1alpha1.NamespaceRule{Dataplane: "Other"}, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := RuleLabels(&c.rule, c.revision)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
			for k := range got {
				if !slices.Contains(ManagedLabelKeys, k) {
					t.Errorf("label %s is not in ManagedLabelKeys", k)
				}
			}
		})
	}
}

func TestNamespaceLabels(t *testing.T) {
	rev := map[string]string{LabelRevision: "default"}
	canary := map[string]string{LabelRevision: "canary"}
	inject := map[string]string{LabelInjection: "enabled"}
	disabled := map[string]string{LabelInjection: "disabled"}
	ambient := map[string]string{LabelDataplaneMode: "ambient"}
	ambientWP := map[string]string{LabelDataplaneMode: "ambient", LabelUseWaypoint: "wp", LabelUseWaypointNamespace: "gw"}

	type conflict struct{ label, want, have string }
	cases := []struct {
		name      string
		want      map[string]string
		foreign   map[string]string
		own       map[string]string
		conflicts []conflict
		msg       []string // substrings of each conflict's message
	}{
		{name: "no foreign labels", want: rev, own: rev},
		{name: "unrelated foreign labels are ignored", want: ambientWP,
			foreign: map[string]string{"team": "payments", "kubernetes.io/metadata.name": "shop"}, own: ambientWP},
		{name: "istio-injection=enabled wins over the wanted istio.io/rev", want: canary,
			foreign: inject, own: map[string]string{},
			conflicts: []conflict{{LabelInjection, "", "enabled"}}, msg: []string{"istio-injection=enabled wins over istio.io/rev=canary"}},
		{name: "foreign istio.io/rev beside wanted istio-injection=enabled", want: inject,
			foreign: canary, own: map[string]string{},
			conflicts: []conflict{{LabelRevision, "", "canary"}}, msg: []string{"istio.io/rev=canary must not be combined with istio-injection=enabled"}},
		{name: "foreign istio-injection=enabled beside wanted ambient", want: ambientWP,
			foreign: inject, own: map[string]string{},
			conflicts: []conflict{{LabelInjection, "", "enabled"}}, msg: []string{"ambient"}},
		{name: "foreign istio.io/rev beside wanted ambient", want: ambient,
			foreign: rev, own: map[string]string{},
			conflicts: []conflict{{LabelRevision, "", "default"}}, msg: []string{"istio.io/rev=default", "ambient"}},
		{name: "both sidecar labels foreign beside wanted ambient", want: ambient,
			foreign: map[string]string{LabelRevision: "canary", LabelInjection: "enabled"}, own: map[string]string{},
			conflicts: []conflict{{LabelInjection, "", "enabled"}, {LabelRevision, "", "canary"}}},
		{name: "istio-injection=disabled beside wanted istio.io/rev is allowed", want: canary,
			foreign: disabled, own: canary},
		{name: "istio-injection=disabled beside wanted ambient is allowed", want: ambient,
			foreign: disabled, own: ambient},
		{name: "foreign istio.io/rev beside wanted istio-injection=disabled is allowed", want: disabled,
			foreign: canary, own: disabled},
		{name: "foreign ambient beside wanted sidecar: the sidecar wins, as wanted", want: rev,
			foreign: ambient, own: rev},
		{name: "same value held by another manager is not a conflict", want: canary,
			foreign: canary, own: canary},
		{name: "same values of several labels", want: ambientWP,
			foreign: ambientWP, own: ambientWP},
		{name: "different value of the wanted label is a conflict", want: canary,
			foreign: rev, own: map[string]string{},
			conflicts: []conflict{{LabelRevision, "canary", "default"}}, msg: []string{"istio.io/rev=default is set by another manager"}},
		{name: "different injection value is a conflict", want: inject,
			foreign: disabled, own: map[string]string{},
			conflicts: []conflict{{LabelInjection, "enabled", "disabled"}}},
		{name: "a conflicting waypoint leaves the other labels owned", want: ambientWP,
			foreign:   map[string]string{LabelUseWaypoint: "other"},
			own:       map[string]string{LabelDataplaneMode: "ambient", LabelUseWaypointNamespace: "gw"},
			conflicts: []conflict{{LabelUseWaypoint, "wp", "other"}}},
		{name: "a foreign waypoint label the rule does not want is left alone", want: ambient,
			foreign: map[string]string{LabelUseWaypoint: "other"}, own: ambient},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			own, conflicts := NamespaceLabels("shop", c.want, c.foreign)
			if !reflect.DeepEqual(own, c.own) {
				t.Errorf("owned labels %v, want %v", own, c.own)
			}
			if len(conflicts) != len(c.conflicts) {
				t.Fatalf("conflicts %+v, want %+v", conflicts, c.conflicts)
			}
			for i, got := range conflicts {
				w := c.conflicts[i]
				if got.Namespace != "shop" || got.Label != w.label || got.Want != w.want || got.Have != w.have {
					t.Errorf("conflict %d = %+v, want %+v in namespace shop", i, got, w)
				}
				if got.Message == "" {
					t.Errorf("conflict %d has no message", i)
				}
				if i < len(c.msg) && !strings.Contains(got.Message, c.msg[i]) {
					t.Errorf("conflict %d message %q does not contain %q", i, got.Message, c.msg[i])
				}
			}
		})
	}
}

func TestNamespaceLabelsDoesNotModifyInputs(t *testing.T) {
	want := map[string]string{LabelRevision: "canary"}
	foreign := map[string]string{LabelRevision: "default", "team": "a"}
	NamespaceLabels("shop", want, foreign)
	if len(want) != 1 || want[LabelRevision] != "canary" || len(foreign) != 2 || foreign[LabelRevision] != "default" {
		t.Errorf("inputs changed: want=%v foreign=%v", want, foreign)
	}
}

func TestSelector(t *testing.T) {
	cases := []struct {
		name    string
		rule    v1alpha1.NamespaceRule
		match   map[string]map[string]string // namespace -> labels
		nomatch map[string]map[string]string
	}{
		{
			name:    "names",
			rule:    v1alpha1.NamespaceRule{Names: []string{"shop", "cart"}},
			match:   map[string]map[string]string{"shop": nil, "cart": {"x": "y"}},
			nomatch: map[string]map[string]string{"shopping": nil, "": nil, "default": {"kubernetes.io/metadata.name": "shop"}},
		},
		{
			name:    "matchLabels",
			rule:    v1alpha1.NamespaceRule{Selector: &v1alpha1.LabelSelector{MatchLabels: map[string]string{"mesh": "on"}}},
			match:   map[string]map[string]string{"a": {"mesh": "on"}, "b": {"mesh": "on", "x": "y"}},
			nomatch: map[string]map[string]string{"mesh": nil, "c": {"mesh": "off"}},
		},
		{
			name: "matchExpressions ANDed with matchLabels",
			rule: v1alpha1.NamespaceRule{Selector: &v1alpha1.LabelSelector{
				MatchLabels: map[string]string{"mesh": "on"},
				MatchExpressions: []v1alpha1.LabelSelectorRequirement{
					{Key: "tier", Operator: metav1.LabelSelectorOpIn, Values: []string{"web", "api"}},
					{Key: "legacy", Operator: metav1.LabelSelectorOpDoesNotExist},
				},
			}},
			match:   map[string]map[string]string{"a": {"mesh": "on", "tier": "api"}},
			nomatch: map[string]map[string]string{"b": {"mesh": "on", "tier": "db"}, "c": {"mesh": "on", "tier": "web", "legacy": ""}, "d": {"tier": "web"}},
		},
		{
			name:    "empty selector selects every namespace",
			rule:    v1alpha1.NamespaceRule{Selector: &v1alpha1.LabelSelector{}},
			match:   map[string]map[string]string{"a": nil, "b": {"x": "y"}},
			nomatch: nil,
		},
		{
			name:    "neither names nor selector selects nothing",
			rule:    v1alpha1.NamespaceRule{},
			nomatch: map[string]map[string]string{"a": nil, "b": {"x": "y"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sel, err := Selector(&c.rule)
			if err != nil {
				t.Fatal(err)
			}
			for ns, l := range c.match {
				if !sel(ns, l) {
					t.Errorf("%s %v should match", ns, l)
				}
			}
			for ns, l := range c.nomatch {
				if sel(ns, l) {
					t.Errorf("%s %v should not match", ns, l)
				}
			}
		})
	}
}

func TestSelectorNamesAreCopied(t *testing.T) {
	rule := v1alpha1.NamespaceRule{Names: []string{"shop"}}
	sel, err := Selector(&rule)
	if err != nil {
		t.Fatal(err)
	}
	rule.Names[0] = "other"
	if !sel("shop", nil) || sel("other", nil) {
		t.Error("the selector must not follow later changes of the rule")
	}
}

func TestSelectorInvalid(t *testing.T) {
	rule := v1alpha1.NamespaceRule{Selector: &v1alpha1.LabelSelector{MatchExpressions: []v1alpha1.LabelSelectorRequirement{
		{Key: "tier", Operator: "Near", Values: []string{"x"}},
	}}}
	if _, err := Selector(&rule); err == nil || !strings.Contains(err.Error(), "Near") {
		t.Errorf("want an error naming the operator, got %v", err)
	}
	rule = v1alpha1.NamespaceRule{Selector: &v1alpha1.LabelSelector{MatchExpressions: []v1alpha1.LabelSelectorRequirement{
		{Key: "tier", Operator: metav1.LabelSelectorOpIn},
	}}}
	if _, err := Selector(&rule); err == nil {
		t.Error("In without values must be refused")
	}
}
