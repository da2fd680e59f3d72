package textdiff

import "testing"

func TestFirstLine(t *testing.T) {
	for _, c := range []struct{ got, want, says string }{
		{"a\nb\nc", "a\nB\nc", "line 2:\n got: \"b\"\nwant: \"B\""},
		{"a\nb", "a\nb\nc", "line 3:\n got: \"\"\nwant: \"c\""}, // want is longer
		{"a\nb\n", "a\nb", "line 3:\n got: \"\"\nwant: \"\""},   // a trailing newline is a line
		{"same\ntext", "same\ntext", "no difference"},
	} {
		if says := FirstLine(c.got, c.want); says != c.says {
			t.Errorf("FirstLine(%q, %q) = %q, want %q", c.got, c.want, says, c.says)
		}
	}
}
