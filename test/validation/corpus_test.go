package validation

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

// minInvalidCases keeps the corpus from silently shrinking.
const minInvalidCases = 40

const (
	expectPrefix = "# expect: "
	// causesPrefix, on a header line after the first, gives the number of
	// errors the manifest produces when it is more than one.
	causesPrefix = "# causes: "
	// notCheckedMessage is the extra cause the API server adds when schema
	// errors kept it from evaluating some CEL rules: not a rule of ours.
	notCheckedMessage = "some validation rules were not checked"
)

// invalidCase is one manifest of test/testdata/invalid: it must be refused
// with an error containing expect, and with exactly causes errors, so that
// each file breaks one rule only.
type invalidCase struct {
	file   string
	expect string
	causes int
	obj    *unstructured.Unstructured
}

// loadInvalidCorpus reads every *.yaml of the invalid corpus. It runs while
// the spec tree is built, so a malformed file fails the whole suite.
func loadInvalidCorpus() ([]invalidCase, error) {
	files, err := filepath.Glob(filepath.Join(invalidDir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var cases []invalidCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		first, _, _ := bytes.Cut(data, []byte("\n"))
		line := strings.TrimRight(string(first), "\r")
		if !strings.HasPrefix(line, expectPrefix) || strings.TrimSpace(strings.TrimPrefix(line, expectPrefix)) == "" {
			return nil, fmt.Errorf("%s: first line must be %q followed by the expected error text", f, expectPrefix)
		}
		causes := 1
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(l, "#") {
				break
			}
			if n, ok := strings.CutPrefix(strings.TrimSpace(l), causesPrefix); ok {
				if causes, err = strconv.Atoi(n); err != nil || causes < 1 {
					return nil, fmt.Errorf("%s: bad %q line", f, causesPrefix)
				}
			}
		}
		obj, err := decodeMeshSettings(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		cases = append(cases, invalidCase{
			file:   filepath.Base(f),
			expect: strings.TrimSpace(strings.TrimPrefix(line, expectPrefix)),
			causes: causes,
			obj:    obj,
		})
	}
	return cases, nil
}

// ruleCauses returns the field errors of an Invalid error, without the
// API server's note that some CEL rules were not evaluated.
func ruleCauses(err error) []string {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var causes []string
	for _, c := range status.Status().Details.Causes {
		if strings.Contains(c.Message, notCheckedMessage) {
			continue
		}
		causes = append(causes, c.Field+": "+c.Message)
	}
	return causes
}

// decodeMeshSettings decodes one YAML manifest into an unstructured
// MeshSettings, checking its kind and that it is named.
func decodeMeshSettings(data []byte) (*unstructured.Unstructured, error) {
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &obj.Object); err != nil {
		return nil, err
	}
	gvk := obj.GroupVersionKind()
	if gvk != meshv1alpha1.GroupVersion.WithKind("MeshSettings") {
		return nil, fmt.Errorf("kind is %s, want MeshSettings", gvk)
	}
	if obj.GetName() == "" {
		return nil, errors.New("metadata.name is empty")
	}
	return obj, nil
}

var _ = Describe("Invalid corpus (test/testdata/invalid)", func() {
	cases, loadErr := loadInvalidCorpus()

	It("loads and holds at least the minimum number of cases", func() {
		Expect(loadErr).NotTo(HaveOccurred())
		Expect(len(cases)).To(BeNumerically(">=", minInvalidCases),
			"the invalid corpus shrank to %d cases", len(cases))
	})

	It("names every case distinctly", func() {
		names := map[string]string{}
		for _, c := range cases {
			Expect(names).NotTo(HaveKey(c.obj.GetName()), "%s and %s share metadata.name", c.file, names[c.obj.GetName()])
			names[c.obj.GetName()] = c.file
		}
	})

	for _, c := range cases {
		It("refuses "+c.file, func() {
			ns := newNamespace("invalid")
			obj := c.obj.DeepCopy()
			obj.SetNamespace(ns)

			err := k8sClient.Create(ctx, obj)
			Expect(err).To(HaveOccurred(), "the API server accepted %s", c.file)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error, got %v", err)
			Expect(err.Error()).To(ContainSubstring(c.expect))
			Expect(ruleCauses(err)).To(HaveLen(c.causes),
				"%s should break exactly %d rule(s); fix the manifest or its %q line", c.file, c.causes, causesPrefix)

			By("creating nothing")
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(obj.GroupVersionKind())
			err = k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), got)
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "want NotFound, got %v", err)
		})
	}
})
