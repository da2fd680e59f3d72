package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

const checkedIn = "../../internal/istioschema/schema.txt"

// The checked-in table is what the generator writes from the pinned
// releases: regenerating must not change it. istio.io/api comes from the
// module cache, or the Go module proxy the first time.
func TestCheckedInTableIsUpToDate(t *testing.T) {
	want, err := os.ReadFile(checkedIn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Generate(context.Background(), Releases)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("%s is stale (run `make generate`); first difference at line %d:\n generated: %q\n checked in: %q", checkedIn, i+1, g, w)
			}
		}
	}
}

// Runs of releases: an entry missing in a release between two that have it
// is written once per run, and ranges name minors only.
func TestFormatWritesRunsOfReleases(t *testing.T) {
	tb := newTable()
	for _, rel := range []int{0, 1, 3} {
		tb.add("M a.B", "", rel)
		tb.add("M a.B", "F x - string", rel)
	}
	tb.add("M a.B", "F y - bool", 3)
	got := string(tb.format([]string{"v1.22.5", "v1.23.4", "v1.24.4", "v1.25.5"}))
	want := "releases 1.22.5 1.23.4 1.24.4 1.25.5\n" +
		"M a.B 1.22 1.23\nM a.B 1.25 1.25\n" +
		"F x - string 1.22 1.23\nF x - string 1.25 1.25\n" +
		"F y - bool 1.25 1.25\n"
	if !strings.HasSuffix(got, want) {
		t.Errorf("format:\n%s\nwant suffix:\n%s", got, want)
	}
}
