package parity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/internal/rendercmd"
)

const (
	invalidDir = "../testdata/invalid"
	samplesDir = "../../config/samples"
	// minInvalid and minValid are the floor for the table.
	minInvalid = 60
	minValid   = 20
)

// verdict is what one judge says of a manifest: its errors as
// "<field>: <message>" (kubectl's form), in the order given.
type verdict struct {
	errs []string
}

func (v verdict) valid() bool { return len(v.errs) == 0 }

// firstPath is the field path of the first error.
func (v verdict) firstPath() string {
	if v.valid() {
		return ""
	}
	p, _, _ := strings.Cut(v.errs[0], ": ")
	return p
}

func (v verdict) sorted() []string { return slices.Sorted(slices.Values(v.errs)) }

var unknownField = regexp.MustCompile(`unknown field "([^"]+)"`)

// serverVerdict asks the real API server, as kubectl apply does: a
// server-side dry run with strict field validation.
func serverVerdict(manifest []byte, namespace string) verdict {
	GinkgoHelper()
	obj := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal(manifest, &obj.Object)).To(Succeed())
	obj.SetNamespace(namespace)
	err := testEnv.Client.Create(testEnv.Ctx, obj, client.DryRunAll, client.FieldValidation("Strict"))
	if err == nil {
		return verdict{}
	}
	if apierrors.IsBadRequest(err) {
		// Strict field validation refuses unknown fields before validation.
		var out []string
		for _, m := range unknownField.FindAllStringSubmatch(err.Error(), -1) {
			out = append(out, m[1]+`: Unsupported value: null: strict decoding error: unknown field "`+m[1]+`"`)
		}
		Expect(out).NotTo(BeEmpty(), "a BadRequest other than unknown fields: %v", err)
		return verdict{errs: out}
	}
	var status apierrors.APIStatus
	Expect(errors.As(err, &status) && apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid, got %v", err)
	var out []string
	for _, c := range status.Status().Details.Causes {
		out = append(out, c.Field+": "+c.Message)
	}
	return verdict{errs: out}
}

// renderVerdict runs `render -f` on the manifest: exit 0 valid, exit 1
// with every error listed as "  - <error>" lines.
func renderVerdict(manifest []byte) (v verdict, code int, stderr string) {
	GinkgoHelper()
	var out, errOut bytes.Buffer
	code = rendercmd.RunWithInput([]string{"-f", "-"}, bytes.NewReader(manifest), &out, &errOut)
	Expect(code).To(BeElementOf(rendercmd.ExitValid, rendercmd.ExitInvalid), "stderr: %s", errOut.String())
	for _, line := range strings.Split(errOut.String(), "\n") {
		if e, ok := strings.CutPrefix(line, "  - "); ok {
			v.errs = append(v.errs, e)
		}
	}
	return v, code, errOut.String()
}

func readAll(dir string) map[string][]byte {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	out := map[string][]byte{}
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(f)
		Expect(err).NotTo(HaveOccurred())
		out[filepath.Base(f)] = raw
	}
	return out
}

func sortedNames(m map[string][]byte) []string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

const head = "apiVersion: mesh.meshsettings.io/v1alpha1\nkind: MeshSettings\nmetadata:\n  name: valid\nspec:\n"

// zipkin is a valid Zipkin endpoint.
const zipkin = "{service: zipkin.istio-system.svc.cluster.local, port: 9411}"

// validSpecs each exercise a part of the API; the samples are added to them.
var validSpecs = map[string]string{
	"empty":                "  {}\n",
	"outbound allow any":   "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
	"outbound dynamic dns": "  outboundTrafficPolicy: {mode: ALLOW_ANY_DYNAMIC_DNS}\n",
	"revision":             "  revision: canary\n",
	"target":               "  target: {configMapName: istio-mesh, istiodDeploymentName: istiod-main, istiodContainerName: discovery}\n",
	"discovery selectors": "  discoverySelectors:\n  - matchLabels: {istio-discovery: enabled}\n" +
		"  - matchExpressions: [{key: env, operator: Exists}]\n",
	"zipkin": "  tracing:\n    samplingPercentage: \"0.5\"\n    providers:\n" +
		"    - name: zipkin\n      zipkin: " + zipkin + "\n    defaultProviders: [zipkin]\n",
	"otel grpc by IP": "  tracing:\n    providers:\n    - name: otel\n      opentelemetry: {service: 10.0.0.7, port: 4317, grpc: {timeout: 500ms}}\n",
	"datadog namespaced": "  tracing:\n    providers:\n    - name: dd\n      " +
		"datadog: {service: datadog/agent.datadog.svc.cluster.local, port: 8126, maxTagLength: 65536}\n",
	"access log file":  "  accessLogging: {file: /dev/stdout, encoding: TEXT}\n",
	"access log envoy": "  accessLogging: {defaultProviders: [envoy]}\n",
	"ext authz http": "  authorization:\n    providers:\n    - name: authz\n      " +
		"envoyExtAuthzHttp: {service: authz.auth.svc.cluster.local, port: 8000, pathPrefix: /check, timeout: 1s}\n",
	"retry policy": "  retryPolicy: {attempts: 2, retryOn: [5xx, \"503\"], perTryTimeout: 250ms}\n",
	"retries off":  "  retryPolicy: {attempts: 0}\n",
	"drain fixed":  "  drain:\n    drainDuration: 1m30s\n    termination: {strategy: Fixed, duration: 30s}\n",
	"proxy":        "  proxy: {imageType: debug, dnsCapture: false, metadata: {ISTIO_META_IDLE_TIMEOUT: 30m}}\n",
	"istiod":       "  istiod:\n    certProvider: k8s.io/example.com-signer\n    workloadCertTTL: 12h\n    env: [{name: PILOT_ENABLE_STATUS, value: \"true\"}]\n",
	"namespaces": "  namespaces:\n  - names: [a, b]\n    dataplane: Sidecar\n    sidecarLabel: InjectionLabel\n" +
		"  - selector: {matchLabels: {team: x}}\n    dataplane: Ambient\n    waypoint: {name: wp}\n",
	"meshConfig":            "  meshConfig:\n    trustDomain: example.com\n    defaultConfig: {concurrency: 2}\n",
	"meshConfig connect ok": "  meshConfig: {connectTimeout: 5s, enablePrometheusMerge: false}\n",
}

// controllerOnly are specs the API server admits but the operator stalls:
// render must say so with the operator's own Stalled message.
var controllerOnly = map[string]string{
	"meshConfig key a typed field owns":    "  meshConfig:\n    outboundTrafficPolicy: {mode: ALLOW_ANY}\n",
	"defaultConfig key a typed field owns": "  meshConfig:\n    defaultConfig: {drainDuration: 5s}\n",
	"selector label key":                   "  discoverySelectors:\n  - matchLabels: {\"bad key\": x}\n",
	"unknown meshConfig key":               "  meshConfig: {trustDomian: example.com}\n",
	"meshConfig value of the wrong type":   "  meshConfig: {enablePrometheusMerge: \"yes\"}\n",
	"meshConfig value istiod refuses":      "  meshConfig: {connectTimeout: 0.5ms}\n",
	"provider named like a built-in":       "  tracing:\n    providers:\n    - name: envoy\n      zipkin: " + zipkin + "\n",
}

var _ = Describe("render and the API server", Ordered, func() {
	var ns string
	BeforeAll(func() { ns = testEnv.Namespace("parity", nil) })

	It("give the same verdict, errors and first field path for the invalid corpus", func() {
		corpus := readAll(invalidDir)
		Expect(len(corpus)).To(BeNumerically(">=", minInvalid))
		for _, name := range sortedNames(corpus) {
			server := serverVerdict(corpus[name], ns)
			Expect(server.valid()).To(BeFalse(), "%s: the API server admits it", name)
			got, code, stderr := renderVerdict(corpus[name])
			Expect(code).To(Equal(rendercmd.ExitInvalid), "%s: render exit %d:\n%s", name, code, stderr)
			Expect(stderr).To(ContainSubstring("as the API server reports them"), name)
			Expect(got.firstPath()).To(Equal(server.firstPath()), "%s: first field path\nrender: %q\nserver: %q", name, got.errs, server.errs)
			Expect(got.sorted()).To(Equal(server.sorted()), "%s: the errors", name)
		}
	})

	It("admit the same valid specs", func() {
		specs := map[string][]byte{}
		for name, spec := range validSpecs {
			specs[name] = []byte(head + spec)
		}
		for name, raw := range readAll(samplesDir) {
			specs["sample "+name] = raw
		}
		Expect(len(specs)).To(BeNumerically(">=", minValid))
		for _, name := range sortedNames(specs) {
			server := serverVerdict(specs[name], ns)
			Expect(server.valid()).To(BeTrue(), "%s: the API server refuses it: %q", name, server.errs)
			_, code, stderr := renderVerdict(specs[name])
			Expect(code).To(Equal(rendercmd.ExitValid), "%s: render refuses it:\n%s", name, stderr)
		}
	})

	It("refuse unknown fields, as kubectl apply's strict field validation does", func() {
		raw := []byte(head + "  outboundTrafficPolicy: {mode: ALLOW_ANY}\n  outboundTraficPolicy: {mode: ALLOW_ANY}\n")
		server := serverVerdict(raw, ns)
		got, code, _ := renderVerdict(raw)
		Expect(code).To(Equal(rendercmd.ExitInvalid))
		Expect(got.errs).To(Equal(server.errs))
		Expect(got.firstPath()).To(Equal("spec.outboundTraficPolicy"))
	})

	It("make render exit 1 with the operator's Stalled message for the checks only the controller makes", func() {
		for _, name := range slices.Sorted(func(yield func(string) bool) {
			for k := range controllerOnly {
				if !yield(k) {
					return
				}
			}
		}) {
			raw := []byte(head + controllerOnly[name])
			Expect(serverVerdict(raw, ns).valid()).To(BeTrue(), "%s: the API server refuses it: the check moved to admission, move the case to the corpus", name)
			got, code, stderr := renderVerdict(raw)
			Expect(code).To(Equal(rendercmd.ExitInvalid), "%s: render exit %d", name, code)
			Expect(stderr).To(ContainSubstring("the operator would stall it (Stalled=True, reason InvalidSpec)"), name)
			Expect(got.errs).To(HaveLen(1), name)

			By("the operator's Stalled condition for " + name)
			obj := &meshv1alpha1.MeshSettings{}
			Expect(yaml.UnmarshalStrict(raw, obj)).To(Succeed())
			obj.Name = "stall-" + strings.ToLower(strings.ReplaceAll(name, " ", "-"))
			// One namespace each: two MeshSettings on the same targets conflict.
			obj.Namespace = testEnv.Namespace("stall", nil)
			Expect(testEnv.Client.Create(testEnv.Ctx, obj)).To(Succeed())
			Eventually(func(g Gomega) {
				live := &meshv1alpha1.MeshSettings{}
				g.Expect(testEnv.Client.Get(testEnv.Ctx, client.ObjectKeyFromObject(obj), live)).To(Succeed())
				c := meta.FindStatusCondition(live.Status.Conditions, meshv1alpha1.ConditionStalled)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
				g.Expect(c.Reason).To(Equal(meshv1alpha1.ReasonInvalidSpec))
				g.Expect(c.Message).To(Equal(got.errs[0]), "render and the operator say different things")
			}).WithTimeout(60 * time.Second).WithPolling(200 * time.Millisecond).Should(Succeed())
		}
	})
})
