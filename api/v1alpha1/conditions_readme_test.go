package v1alpha1

import (
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

var updateREADME = flag.Bool("update", false, "rewrite the conditions table in README.md from conditions.go")

const (
	readmePath  = "../../README.md"
	tableBegin  = "<!-- conditions table: generated from api/v1alpha1/conditions.go by `go test ./api/v1alpha1 -update` -->"
	tableEnd    = "<!-- end of conditions table -->"
	condsSource = "conditions.go"
)

// TestREADMEConditionsTable keeps README's table of condition types and
// reasons equal to the exported constants of conditions.go and their doc
// comments: a new reason, or a changed comment, fails here until
// `go test ./api/v1alpha1 -update` rewrites the table.
func TestREADMEConditionsTable(t *testing.T) {
	consts := conditionConstants(t, condsSource)
	want := conditionsTable(consts)
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	got, before, after, err := section(string(readme))
	if err != nil {
		t.Fatal(err)
	}
	if *updateREADME {
		if err := os.WriteFile(readmePath, []byte(before+want+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("README's conditions table differs from %s; run `go test ./api/v1alpha1 -update`.\nwant:\n%s\ngot:\n%s", condsSource, want, got)
	}
}

// TestConditionConstantsAreDocumented: every condition type and reason says
// when it is set.
func TestConditionConstantsAreDocumented(t *testing.T) {
	consts := conditionConstants(t, condsSource)
	if len(consts) < 10 {
		t.Fatalf("found %d constants in %s: the parser missed them", len(consts), condsSource)
	}
	for _, c := range consts {
		if c.doc == "" {
			t.Errorf("%s has no doc comment saying when it is set", c.name)
		}
	}
}

// The checks themselves, shown failing on bad input.
func TestConditionsTableChecksFail(t *testing.T) {
	dir := t.TempDir()
	src := dir + "/conditions.go"
	if err := os.WriteFile(src, []byte("package v1alpha1\n\nconst (\n\tReasonUndocumented = \"Undocumented\"\n)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	consts := conditionConstants(t, src)
	if len(consts) != 1 || consts[0].doc != "" {
		t.Fatalf("an undocumented constant was read as %+v", consts)
	}
	if _, _, _, err := section("no markers here"); err == nil {
		t.Fatal("a README without the table's markers was accepted")
	}
	table := conditionsTable([]constant{{name: "ReasonX", value: "X", doc: "ReasonX: set when x."}})
	if !strings.Contains(table, "| `X` | Set when x. |") {
		t.Fatalf("the table does not show a reason with its comment:\n%s", table)
	}
}

type constant struct{ name, value, doc string }

// conditionConstants reads the Condition* and Reason* string constants of a
// Go file, in source order, with their doc comments.
func conditionConstants(t *testing.T, path string) []constant {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var out []constant
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "Condition") && !strings.HasPrefix(n.Name, "Reason") {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s is not a string literal", n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, constant{name: n.Name, value: v, doc: strings.TrimSpace(vs.Doc.Text())})
			}
		}
	}
	return out
}

// conditionsTable is the Markdown table of condition types, then of reasons.
func conditionsTable(consts []constant) string {
	var b strings.Builder
	for _, kind := range []string{"Condition", "Reason"} {
		header := "condition type"
		if kind == "Reason" {
			header = "reason"
		}
		b.WriteString("\n| " + header + " | when |\n|---|---|\n")
		for _, c := range consts {
			if strings.HasPrefix(c.name, kind) {
				b.WriteString("| `" + c.value + "` | " + when(c) + " |\n")
			}
		}
	}
	b.WriteString("\n")
	return b.String()
}

// when is the doc comment without the constant's name ("ReasonX: ...",
// "ConditionX is ..."), on one line, capitalised.
func when(c constant) string {
	s := strings.Join(strings.Fields(c.doc), " ")
	s = strings.TrimPrefix(s, c.name)
	s = strings.TrimPrefix(s, ":")
	s = strings.TrimPrefix(strings.TrimSpace(s), "is ")
	s = strings.ReplaceAll(s, "|", "\\|")
	r := []rune(s)
	if len(r) > 0 {
		r[0] = unicode.ToUpper(r[0])
	}
	return string(r)
}

// section splits the README at the table's markers.
func section(readme string) (table, before, after string, err error) {
	i := strings.Index(readme, tableBegin)
	j := strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		return "", "", "", &markerError{}
	}
	i += len(tableBegin)
	return readme[i:j], readme[:i], readme[j:], nil
}

type markerError struct{}

func (*markerError) Error() string {
	return "README.md has no conditions table between " + tableBegin + " and " + tableEnd
}
