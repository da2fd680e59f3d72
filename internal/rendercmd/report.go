package rendercmd

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// report prints the output of every valid MeshSettings on stdout, in input
// order, and every invalid one on stderr with all its errors; it returns
// the exit code.
func report(verdicts []verdict, format string, stdout, stderr io.Writer) int {
	var valid, invalid, skipped int
	var out strings.Builder
	for i := range verdicts {
		v := &verdicts[i]
		switch {
		case v.skipped:
			skipped++
		case len(v.problems) > 0:
			invalid++
			fmt.Fprintln(stderr, problemReport(v))
		default:
			valid++
			if format == "yaml" && out.Len() > 0 {
				out.WriteString("---\n")
			}
			out.WriteString(v.text)
		}
	}
	if _, err := io.WriteString(stdout, out.String()); err != nil {
		fmt.Fprintf(stderr, "render: %v\n", err)
		return ExitUsage
	}
	if valid+invalid != 1 || skipped > 0 {
		others := "documents of other kinds"
		if skipped == 1 {
			others = "document of another kind"
		}
		fmt.Fprintf(stderr, "render: %d MeshSettings: %d valid, %d invalid; %d %s skipped\n", valid+invalid, valid, invalid, skipped, others)
	}
	if invalid > 0 {
		return ExitInvalid
	}
	return ExitValid
}

// problemReport names the MeshSettings and lists every error, one a line.
func problemReport(v *verdict) string {
	var b strings.Builder
	fmt.Fprintf(&b, "render: %s: %s ", v.where(), v.object())
	if v.stalled != "" {
		fmt.Fprintf(&b, "passes admission, but the operator would stall it (Stalled=True, reason %s):", v.stalled)
	} else {
		n := len(v.problems)
		plural := "s"
		if n == 1 {
			plural = ""
		}
		fmt.Fprintf(&b, "is invalid (%d error%s, as the API server reports them):", n, plural)
	}
	for _, p := range v.problems {
		b.WriteString("\n  - " + p)
	}
	return b.String()
}

// printOne formats one MeshSettings' output: in YAML its three documents
// after a comment naming it (report puts "---" between MeshSettings); in
// JSON one object (report writes them one after the other: a JSON stream,
// as jq reads it).
func printOne(b *strings.Builder, v *verdict, format string) error {
	if format == "json" {
		rules := v.out.Rules
		if rules == nil {
			rules = []NamespaceRule{}
		}
		j, err := json.MarshalIndent(jsonOutput{
			MeshSettings:   jsonSource{Namespace: v.namespace, Name: v.name, Source: v.doc.source, Document: v.doc.index, Item: v.item},
			ConfigMap:      v.out.ConfigMap,
			IstiodEnv:      v.out.Istiod,
			NamespaceRules: rules,
		}, "", "  ")
		if err != nil {
			return err
		}
		b.Write(j)
		b.WriteString("\n")
		return nil
	}
	fmt.Fprintf(b, "# %s (%s)\n", v.object(), v.where())
	return Print(b, v.out)
}

// jsonOutput is what `-o json` prints for one MeshSettings.
type jsonOutput struct {
	MeshSettings   jsonSource      `json:"meshSettings"`
	ConfigMap      any             `json:"configMap"`
	IstiodEnv      IstiodEnv       `json:"istiodEnv"`
	NamespaceRules []NamespaceRule `json:"namespaceRules"`
}

// jsonSource names the MeshSettings and where it was read.
type jsonSource struct {
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	Source    string `json:"source"`
	Document  int    `json:"document"`
	Item      int    `json:"item,omitempty"`
}
