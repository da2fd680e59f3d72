// Package textdiff describes how two texts differ, for test failure messages
// (golden files, documentation that must match a source file).
package textdiff

import (
	"fmt"
	"strings"
)

// FirstLine describes the first line where got and want differ.
func FirstLine(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, gl, wl)
		}
	}
	return "no difference"
}
