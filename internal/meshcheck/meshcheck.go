// Package meshcheck judges a mesh document (the "mesh" key of Istio's mesh
// ConfigMap) the way istiod does, without depending on istio.io/istio.
//
// istiod composes the document over its built-in defaults (mesh.ApplyMeshConfig:
// top-level keys replace the default, defaultConfig merges per key,
// extensionProviders by name), then runs its mesh validation
// (agent.ValidateMeshConfig). On any error it drops the whole document and
// keeps its last known state. Compose does the same with a port of that code,
// taken from the istio.io/istio version test/oracle pins; the differential
// fuzz there (FuzzMeshCheck) holds the two verdicts equal.
package meshcheck

import (
	"strings"

	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
)

// Problem is one reason istiod rejects a document.
type Problem struct {
	// Keys address the offending value in the document as written: field
	// names (as the document spells them), map keys, and "[i]" for list
	// items. Empty for the document as a whole.
	Keys []string
	Msg  string
}

// Path is Keys joined for display: defaultConfig.discoveryAddress,
// serviceSettings[0].hosts[1].
func (p Problem) Path() string {
	var b strings.Builder
	for _, k := range p.Keys {
		if b.Len() > 0 && !strings.HasPrefix(k, "[") {
			b.WriteByte('.')
		}
		b.WriteString(k)
	}
	return b.String()
}

// String is the problem as one line: "path: message".
func (p Problem) String() string {
	if len(p.Keys) == 0 {
		return p.Msg
	}
	return p.Path() + ": " + p.Msg
}

// Error lists every problem istiod finds in a document. A document istiod
// cannot parse lists the parse problems only: istiod stops there.
type Error struct {
	Problems []Problem
}

// Error joins every problem on one line.
func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return strings.Join(msgs, "; ")
}

// Compose returns the MeshConfig istiod runs for doc: Istio's defaults with
// doc applied on top, validated. It returns an *Error when istiod would
// reject doc (and keep its last known state).
func Compose(doc string) (*meshv1alpha1.MeshConfig, error) {
	mc, problems := apply(doc, Defaults())
	if len(problems) == 0 {
		problems = validate(mc)
	}
	if len(problems) > 0 {
		return nil, &Error{Problems: problems}
	}
	return mc, nil
}

// Validate runs istiod's mesh validation on a composed MeshConfig and
// returns an *Error listing every problem, or nil. Warnings istiod only
// logs are not reported.
func Validate(mc *meshv1alpha1.MeshConfig) error {
	if problems := validate(mc); len(problems) > 0 {
		return &Error{Problems: problems}
	}
	return nil
}

// problems collects Problems under a key prefix.
type problems struct {
	at   []string
	list *[]Problem
}

func newProblems() problems { return problems{list: &[]Problem{}} }

// in returns a collector for keys below the current prefix.
func (ps problems) in(keys ...string) problems {
	at := make([]string, 0, len(ps.at)+len(keys))
	return problems{at: append(append(at, ps.at...), keys...), list: ps.list}
}

func (ps problems) add(msg string, keys ...string) {
	*ps.list = append(*ps.list, Problem{Keys: ps.in(keys...).at, Msg: msg})
}

func (ps problems) addErr(err error, keys ...string) {
	if err != nil {
		ps.add(err.Error(), keys...)
	}
}
