package meshchecktest

import "testing"

func TestIstioVerdictIsRandom(t *testing.T) {
	random := "localityLbSetting:\n  distribute:\n  - from: a\n    to: {'b/*': 50, c: 50}"
	if !IstioVerdictIsRandom(random) {
		t.Errorf("a wildcard beside another key is not reported random: %q", random)
	}
	for _, doc := range append([]string{"localityLbSetting:\n  distribute:\n  - from: a\n    to: {'b/*': 100}"}, Documents...) {
		if IstioVerdictIsRandom(doc) {
			t.Errorf("reported random: %q", doc)
		}
	}
}
