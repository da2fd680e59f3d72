package render

import (
	"fmt"
	"slices"

	"istio.io/api/label"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// Istio's namespace labels, from istio.io/api/label.
var (
	LabelRevision             = label.IoIstioRev.Name
	LabelDataplaneMode        = label.IoIstioDataplaneMode.Name
	LabelUseWaypoint          = label.IoIstioUseWaypoint.Name
	LabelUseWaypointNamespace = label.IoIstioUseWaypointNamespace.Name
)

// LabelInjection turns sidecar injection by the default revision on or off
// for a namespace. istio.io/api/label has no constant for it (it predates
// revisions), so this is the one place the name is spelled out.
const LabelInjection = "istio-injection"

// Label values Istio defines without a constant in istio.io/api.
const (
	InjectionEnabled     = "enabled"  // LabelInjection: inject sidecars
	InjectionDisabled    = "disabled" // LabelInjection: never inject
	DataplaneModeAmbient = "ambient"  // LabelDataplaneMode: ambient mode
)

// ManagedLabelKeys are every label key the operator may own on a namespace.
var ManagedLabelKeys = []string{LabelInjection, LabelRevision, LabelDataplaneMode, LabelUseWaypoint, LabelUseWaypointNamespace}

// RuleLabels returns the labels a rule sets, with the API's defaults applied.
func RuleLabels(rule *v1alpha1.NamespaceRule, revision string) map[string]string {
	switch rule.Dataplane {
	case v1alpha1.DataplaneSidecar:
		if rule.SidecarLabel == v1alpha1.SidecarLabelInjection {
			return map[string]string{LabelInjection: InjectionEnabled}
		}
		rev := revision
		if rev == "" {
			rev = DefaultRevisionLabel
		}
		return map[string]string{LabelRevision: rev}
	case v1alpha1.DataplaneAmbient:
		out := map[string]string{LabelDataplaneMode: DataplaneModeAmbient}
		if w := rule.Waypoint; w != nil {
			out[LabelUseWaypoint] = w.Name
			if w.Namespace != "" {
				out[LabelUseWaypointNamespace] = w.Namespace
			}
		}
		return out
	case v1alpha1.DataplaneDisabled:
		return map[string]string{LabelInjection: InjectionDisabled}
	}
	return nil
}

// Selector compiles the namespace selection of a rule.
func Selector(rule *v1alpha1.NamespaceRule) (func(name string, l map[string]string) bool, error) {
	if rule.Names != nil {
		names := slices.Clone(rule.Names)
		return func(name string, _ map[string]string) bool { return slices.Contains(names, name) }, nil
	}
	if rule.Selector == nil {
		return func(string, map[string]string) bool { return false }, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(rule.Selector.AsMetav1())
	if err != nil {
		return nil, err
	}
	return func(_ string, l map[string]string) bool { return sel.Matches(labels.Set(l)) }, nil
}

// NamespaceLabels decides the labels the operator owns on one namespace.
//
// want is the full set the rule asks for; foreign are the namespace's labels
// the operator does not own. The result leaves out any label another manager
// holds with a different value, and the whole rule when a foreign label would
// form a combination Istio resolves against it (istio-injection wins over
// istio.io/rev; sidecar labels win over ambient). Those are returned as
// conflicts, never fought over.
func NamespaceLabels(namespace string, want, foreign map[string]string) (map[string]string, []v1alpha1.LabelConflict) {
	var conflicts []v1alpha1.LabelConflict
	for _, k := range sortedKeys(foreign) {
		if _, ours := want[k]; ours || !slices.Contains(ManagedLabelKeys, k) {
			continue
		}
		if reason := forbiddenWith(want, k, foreign[k]); reason != "" {
			conflicts = append(conflicts, v1alpha1.LabelConflict{
				Namespace: namespace, Label: k, Have: foreign[k], Message: reason,
			})
		}
	}
	if len(conflicts) > 0 {
		return map[string]string{}, conflicts
	}
	out := map[string]string{}
	for _, k := range sortedKeys(want) {
		if have, ok := foreign[k]; ok && have != want[k] {
			conflicts = append(conflicts, v1alpha1.LabelConflict{
				Namespace: namespace, Label: k, Want: want[k], Have: have,
				Message: fmt.Sprintf("%s=%s is set by another manager; not overwritten", k, have),
			})
			continue
		}
		out[k] = want[k]
	}
	return out, conflicts
}

// forbiddenWith explains why a foreign label k=v cannot stand beside want, or returns "".
func forbiddenWith(want map[string]string, k, v string) string {
	_, wantRev := want[LabelRevision]
	_, wantAmbient := want[LabelDataplaneMode]
	wantInjection := want[LabelInjection] == InjectionEnabled
	switch {
	case k == LabelInjection && v == InjectionEnabled && wantRev:
		return fmt.Sprintf("istio-injection=enabled wins over istio.io/rev=%s; remove it to use the revision", want[LabelRevision])
	case k == LabelInjection && v == InjectionEnabled && wantAmbient:
		return "istio-injection=enabled injects sidecars, which take precedence over the ambient data plane"
	case k == LabelRevision && wantInjection:
		return fmt.Sprintf("istio.io/rev=%s must not be combined with istio-injection=enabled", v)
	case k == LabelRevision && wantAmbient:
		return fmt.Sprintf("istio.io/rev=%s injects sidecars, which take precedence over the ambient data plane", v)
	}
	return ""
}
