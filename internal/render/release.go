package render

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/istioschema"
)

// Where the target release comes from (status.istiod.releaseSource).
const (
	ReleaseFromSpec     = "IstiodVersion" // spec.target.istiodVersion
	ReleaseFromImageTag = "ImageTag"
	ReleaseAssumed      = "Assumed"
)

// TargetRelease is the Istio release whose MeshConfig the spec is checked
// against: every key and enum value the operator writes must be one that
// release reads.
type TargetRelease struct {
	// Release is the release of the table checked against.
	Release istioschema.Release
	// Stated is the version as stated (the image tag or
	// spec.target.istiodVersion); "" when istiod's image has no tag.
	Stated string
	// Source is ReleaseFromSpec, ReleaseFromImageTag or ReleaseAssumed.
	Source string
	// Note says why a release was assumed ("" otherwise).
	Note string
}

// ResolveRelease picks the release to check spec against: the one
// spec.target.istiodVersion states, else the one istiod's image tag names.
// A tag that names no release (a digest, a custom build, "latest", the Istio
// chart's default) gives the newest release of the table, and so does a
// release newer than the table; an older one gives the oldest.
func ResolveRelease(spec *v1alpha1.MeshSettingsSpec, istiodTag string) TargetRelease {
	s := istioschema.Load()
	t := TargetRelease{Stated: istiodTag, Source: ReleaseFromImageTag}
	if spec.Target != nil && spec.Target.IstiodVersion != "" {
		t.Stated, t.Source = spec.Target.IstiodVersion, ReleaseFromSpec
	}
	r, ok := istioschema.ParseRelease(t.Stated)
	switch {
	case !ok:
		t.Release, t.Source = s.Newest(), ReleaseAssumed
		tag := "has no tag"
		if istiodTag != "" {
			tag = fmt.Sprintf("tag %q names no Istio release", istiodTag)
		}
		t.Note = fmt.Sprintf("istiod's image %s; settings are checked against Istio %s, the newest release known (set spec.target.istiodVersion to state the release)", tag, t.Release)
	case s.Newest().Less(r):
		t.Release = s.Newest()
		t.Note = fmt.Sprintf("istiod %s is newer than the newest release known (%s); settings are checked against %s", t.Stated, t.Release, t.Release)
	case r.Less(s.Oldest()):
		t.Release = s.Oldest()
		t.Note = fmt.Sprintf("istiod %s is older than the oldest release known (%s); settings are checked against %s", t.Stated, t.Release, t.Release)
	default:
		t.Release = r
	}
	return t
}

// envVersion is the version istiod's environment is planned for: the one
// stated, or for a tag naming no release the release assumed, so typed
// settings that release no longer reads go to ignoredSettings as well.
func (t TargetRelease) envVersion() string {
	if t.Source == ReleaseAssumed {
		return t.Release.String()
	}
	return t.Stated
}

// runs says what the istiod deployment runs, for messages: "istiod-canary
// runs 1.28.1".
func (t TargetRelease) runs(deployment string) string {
	switch {
	case t.Source == ReleaseAssumed && t.Stated == "":
		return fmt.Sprintf("%s's release is unknown, assumed %s", deployment, t.Release)
	case t.Source == ReleaseAssumed:
		return fmt.Sprintf("%s runs %s, assumed to be %s", deployment, t.Stated, t.Release)
	case t.Source == ReleaseFromSpec:
		return fmt.Sprintf("%s runs %s (spec.target.istiodVersion)", deployment, t.Stated)
	}
	return fmt.Sprintf("%s runs %s", deployment, t.Stated)
}

// checkRelease refuses a key or enum value the spec would write that the
// target release does not read: istiod would drop the key silently (or
// reject the whole document for an enum value), so writing it would be a
// silent lie. Keys no release reads are left to validateFragment, which
// names them against the compiled MeshConfig.
func checkRelease(spec *v1alpha1.MeshSettingsSpec, frag *fragment, t TargetRelease) error {
	s := istioschema.Load()
	deployment := TargetsFor(spec).IstiodDeployment
	for _, p := range frag.paths {
		one := map[string]any{}
		set(one, p.segments(), frag.values[p])
		prefix := dotted(p)
		for _, prob := range s.Check(istioschema.MeshConfig, one, t.Release) {
			if len(prob.Spans) == 0 {
				continue
			}
			var rest []string
			if r, ok := strings.CutPrefix(prob.Path, prefix+"."); ok {
				rest = strings.Split(r, ".")
			}
			field := specField(spec, p, rest)
			if !strings.HasPrefix(field, "spec.meshConfig.") && len(rest) > 0 {
				field += "." + strings.Join(rest, ".")
			}
			readBy := "is read by istiod " + s.Describe(prob.Spans)
			if prob.Value != "" {
				return &FieldError{Field: field, Msg: fmt.Sprintf("%s %s; %s", prob.Value, readBy, t.runs(deployment))}
			}
			return &FieldError{Field: field, Phrase: true, Msg: fmt.Sprintf("%s; %s", readBy, t.runs(deployment))}
		}
	}
	return nil
}

// dotted is p as istioschema spells document paths: a provider item is its
// index in a one-item list.
func dotted(p Path) string {
	segs := p.segments()
	var b strings.Builder
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, providerPrefix):
			b.WriteString("[0]")
		case i > 0:
			b.WriteString("." + s)
		default:
			b.WriteString(s)
		}
	}
	return b.String()
}

// UnreadKeys lists the keys of document, outside the paths the operator
// manages, that release t does not read: other managers' (Helm's) settings
// istiod drops. They are reported, not removed: they are not the operator's
// to fight over.
func UnreadKeys(document string, managed []Path, t TargetRelease) []string {
	s := istioschema.Load()
	var out []string
	for _, prob := range foreignProblems(document, managed, t) {
		if prob.Value == "" {
			out = append(out, fmt.Sprintf("mesh key %s (not the operator's) is read by istiod %s: istiod %s ignores it", prob.Path, s.Describe(prob.Spans), t.Release))
		}
	}
	return out
}

// rejectedValues is a *MeshDocumentError for enum values outside the paths
// the operator manages that release t does not know: istiod rejects the
// whole document over one, so the operator must not write into it.
func rejectedValues(document string, managed []Path, t TargetRelease, deployment string) error {
	s := istioschema.Load()
	var problems []DocumentProblem
	for _, prob := range foreignProblems(document, managed, t) {
		if prob.Value != "" && len(prob.Spans) > 0 {
			problems = append(problems, DocumentProblem{Key: prob.Path, Foreign: true, Msg: fmt.Sprintf(
				"%s is read by istiod %s; %s", prob.Value, s.Describe(prob.Spans), t.runs(deployment))})
		}
	}
	if len(problems) == 0 {
		return nil
	}
	return &MeshDocumentError{Problems: problems}
}

// foreignProblems are the keys and enum values of document release t does
// not read, outside the paths the operator manages.
func foreignProblems(document string, managed []Path, t TargetRelease) []istioschema.Problem {
	doc := map[string]any{}
	if err := yaml.Unmarshal([]byte(document), &doc); err != nil || doc == nil {
		return nil // an unparseable document is judged elsewhere
	}
	var names []string
	if list, ok := doc["extensionProviders"].([]any); ok {
		for _, item := range list {
			m, _ := item.(map[string]any)
			n, _ := m["name"].(string)
			names = append(names, n)
		}
	}
	owned := func(problem string) bool {
		for _, p := range managed {
			prefix := dotted(p)
			if seg := p.segments(); len(seg) > 1 && strings.HasPrefix(seg[1], providerPrefix) {
				i := slices.Index(names, strings.TrimPrefix(seg[1], providerPrefix))
				if i < 0 {
					continue
				}
				prefix = fmt.Sprintf("%s[%d]", seg[0], i)
			}
			if problem == prefix || strings.HasPrefix(problem, prefix+".") || strings.HasPrefix(problem, prefix+"[") {
				return true
			}
		}
		return false
	}
	var out []istioschema.Problem
	for _, prob := range istioschema.Load().Check(istioschema.MeshConfig, doc, t.Release) {
		if !owned(prob.Path) {
			out = append(out, prob)
		}
	}
	return out
}
