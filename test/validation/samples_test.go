package validation

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

const (
	samplesNamespace = "istio-system"
	fullSample       = "mesh_v1alpha1_meshsettings_full.yaml"
	// maxCRDBytes keeps the CRD applicable with client-side `kubectl apply`,
	// whose last-applied-configuration annotation is limited to 256 KiB.
	maxCRDBytes = 256 * 1024
)

// sampleFiles lists config/samples/*.yaml without kustomization.yaml.
func sampleFiles() []string {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(samplesDir, "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var samples []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			samples = append(samples, filepath.Base(f))
		}
	}
	sort.Strings(samples)
	return samples
}

func readSample(name string) []byte {
	GinkgoHelper()
	data, err := os.ReadFile(filepath.Join(samplesDir, name))
	Expect(err).NotTo(HaveOccurred())
	return data
}

// ensureNamespace creates a namespace unless it exists.
func ensureNamespace(name string) {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
}

var _ = Describe("Samples (config/samples)", func() {
	It("lists exactly the sample files in kustomization.yaml", func() {
		var kustomization struct {
			APIVersion string   `json:"apiVersion"`
			Kind       string   `json:"kind"`
			Resources  []string `json:"resources"`
		}
		Expect(yaml.UnmarshalStrict(readSample("kustomization.yaml"), &kustomization)).To(Succeed())
		resources := append([]string(nil), kustomization.Resources...)
		sort.Strings(resources)
		Expect(resources).To(Equal(sampleFiles()))
		Expect(resources).To(ContainElements(
			"mesh_v1alpha1_meshsettings_minimal.yaml",
			fullSample,
			"mesh_v1alpha1_meshsettings_ambient.yaml",
			"mesh_v1alpha1_meshsettings_gitops.yaml",
		))
	})

	It("gives every sample a distinct name in istio-system", func() {
		names := map[string]string{}
		for _, f := range sampleFiles() {
			obj, err := decodeMeshSettings(readSample(f))
			Expect(err).NotTo(HaveOccurred(), f)
			Expect(obj.GetNamespace()).To(Equal(samplesNamespace), f)
			Expect(names).NotTo(HaveKey(obj.GetName()), "%s reuses the name of %s", f, names[obj.GetName()])
			names[obj.GetName()] = f
		}
	})

	for _, f := range sampleFiles() {
		It("accepts "+f, func() {
			data := readSample(f)

			By("decoding strictly into the Go types")
			var typed meshv1alpha1.MeshSettings
			Expect(yaml.UnmarshalStrict(data, &typed)).To(Succeed())

			By("creating it for real, refusing unknown fields")
			obj, err := decodeMeshSettings(data)
			Expect(err).NotTo(HaveOccurred())
			ensureNamespace(obj.GetNamespace())
			Expect(k8sClient.Create(ctx, obj, client.FieldValidation(metav1.FieldValidationStrict))).To(Succeed())
			DeferCleanup(func() {
				Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, obj))).To(Succeed())
			})

			By("storing exactly the spec of the file (no defaults, nothing pruned)")
			stored := &unstructured.Unstructured{}
			stored.SetGroupVersionKind(obj.GroupVersionKind())
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), stored)).To(Succeed())
			storedSpec, err := json.Marshal(stored.Object["spec"])
			Expect(err).NotTo(HaveOccurred())
			// obj now holds the server's answer: compare with the file itself.
			want, err := decodeMeshSettings(data)
			Expect(err).NotTo(HaveOccurred())
			fileSpec, err := json.Marshal(want.Object["spec"])
			Expect(err).NotTo(HaveOccurred())
			Expect(storedSpec).To(MatchJSON(fileSpec))

			By("reading it back into the Go types unchanged")
			var got meshv1alpha1.MeshSettings
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), &got)).To(Succeed())
			Expect(got.Spec).To(Equal(typed.Spec))

			By("deleting it")
			Expect(k8sClient.Delete(ctx, obj)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), &got))
			}).Should(BeTrue())
		})
	}

	It("sets every spec field in the full sample", func() {
		spec := specSchema()
		leaves := map[string]bool{}
		schemaLeaves(spec, "spec", leaves)

		obj, err := decodeMeshSettings(readSample(fullSample))
		Expect(err).NotTo(HaveOccurred())
		covered := map[string]bool{}
		valueLeaves(spec, obj.Object["spec"], "spec", covered)

		var missing []string
		for p := range leaves {
			if !covered[p] {
				missing = append(missing, p)
			}
		}
		sort.Strings(missing)
		Expect(missing).To(BeEmpty(), "%s leaves these fields unset", fullSample)
		// Guard against a schema walk that finds nothing.
		Expect(len(leaves)).To(BeNumerically(">=", 80))
	})

	It("keeps the generated CRD below 256 KiB for client-side kubectl apply", func() {
		info, err := os.Stat(crdFile)
		Expect(err).NotTo(HaveOccurred())
		GinkgoWriter.Printf("CRD size: %d bytes\n", info.Size())
		Expect(info.Size()).To(BeNumerically("<", maxCRDBytes))
	})
})

// specSchema returns the OpenAPI schema of .spec from the generated CRD.
func specSchema() apiextensionsv1.JSONSchemaProps {
	GinkgoHelper()
	data, err := os.ReadFile(crdFile)
	Expect(err).NotTo(HaveOccurred())
	var crd apiextensionsv1.CustomResourceDefinition
	Expect(yaml.Unmarshal(data, &crd)).To(Succeed())
	Expect(crd.Spec.Versions).To(HaveLen(1))
	schema := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
	Expect(schema).NotTo(BeNil())
	spec, ok := schema.Properties["spec"]
	Expect(ok).To(BeTrue())
	return spec
}

// schemaLeaves collects the paths of the leaf fields of a schema: scalars,
// free-form maps and objects without declared properties. List items add "[]".
func schemaLeaves(s apiextensionsv1.JSONSchemaProps, path string, out map[string]bool) {
	switch {
	case len(s.Properties) > 0:
		for name, child := range s.Properties {
			schemaLeaves(child, path+"."+name, out)
		}
	case s.Items != nil && s.Items.Schema != nil:
		schemaLeaves(*s.Items.Schema, path+"[]", out)
	default:
		out[path] = true
	}
}

// valueLeaves collects the schema leaf paths a value sets, walking it along
// the schema. An empty list or map sets nothing.
func valueLeaves(s apiextensionsv1.JSONSchemaProps, v any, path string, out map[string]bool) {
	switch {
	case len(s.Properties) > 0:
		m, _ := v.(map[string]any)
		for name, child := range m {
			if cs, ok := s.Properties[name]; ok {
				valueLeaves(cs, child, path+"."+name, out)
			}
		}
	case s.Items != nil && s.Items.Schema != nil:
		l, _ := v.([]any)
		for _, item := range l {
			valueLeaves(*s.Items.Schema, item, path+"[]", out)
		}
	default:
		switch t := v.(type) {
		case nil:
		case map[string]any:
			if len(t) > 0 {
				out[path] = true
			}
		case []any:
			if len(t) > 0 {
				out[path] = true
			}
		case string:
			// An empty string leaves the field at its zero value.
			if strings.TrimSpace(t) != "" {
				out[path] = true
			}
		default:
			out[path] = true
		}
	}
}
