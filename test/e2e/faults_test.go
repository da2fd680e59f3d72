package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/test/harness"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

// Regressions of issue 17 ("Keep what already holds") that need the binary
// and a control plane of their own, since they freeze or kill it: etcd
// frozen for 20 s, kube-apiserver killed and restarted, a MeshSettings
// deleted while the operator is down, SIGKILL while labeling 2,000
// namespaces, namespace churn. Leader-election takeover, crash convergence and the metrics
// endpoint are in e2e_test.go and metrics_test.go.

const faultsHelmMesh = `defaultConfig:
  discoveryAddress: istiod.istio-system.svc:15012
defaultProviders:
  metrics:
  - prometheus
enablePrometheusMerge: true
rootNamespace: istio-system
trustDomain: cluster.local`

// pidOf finds the process whose command line holds every given fragment.
func pidOf(fragments ...string) (int, []string) {
	GinkgoHelper()
	entries, err := os.ReadDir("/proc")
	Expect(err).NotTo(HaveOccurred())
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		line := strings.Join(args, " ")
		all := true
		for _, f := range fragments {
			all = all && strings.Contains(line, f)
		}
		if all {
			return pid, args
		}
	}
	Fail(fmt.Sprintf("no process with %q", fragments))
	return 0, nil
}

var _ = Describe("regressions under faults, with the operator binary", Ordered, func() {
	var (
		env *harness.Env
		c   client.Client
		op  *utils.Operator
		ms  = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: "istio-system"}}
		// The operators and the restarted API server outlive the spec that
		// started them; AfterAll stops them, before the control plane goes.
		operators []*utils.Operator
		apiserver *exec.Cmd
	)
	start := func(name string) *utils.Operator {
		GinkgoHelper()
		o, err := env.StartOperator(binary, filepath.Join(workDir, name+".log"),
			"--control-plane-namespace=istio-system", "--health-probe-bind-address=127.0.0.1:0")
		Expect(err).NotTo(HaveOccurred())
		operators = append(operators, o)
		return o
	}
	ReportAfterEach(func(r SpecReport) {
		if r.Failed() {
			for _, o := range operators {
				b, _ := os.ReadFile(o.Log)
				AddReportEntry(filepath.Base(o.Log), string(b))
			}
		}
	})
	AfterAll(func() {
		for _, o := range operators {
			o.Stop()
		}
		if apiserver != nil {
			_ = apiserver.Process.Signal(syscall.SIGTERM)
			_, _ = apiserver.Process.Wait()
		}
	})
	// ready waits for Ready=True of the current generation; the API server
	// may still be coming back, so errors only retry.
	ready := func(within time.Duration) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			got := &meshv1alpha1.MeshSettings{}
			g.Expect(c.Get(env.Ctx, client.ObjectKeyFromObject(ms), got)).To(Succeed())
			g.Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
			r := meta.FindStatusCondition(got.Status.Conditions, meshv1alpha1.ConditionReady)
			g.Expect(r).NotTo(BeNil())
			g.Expect(r.Status).To(Equal(metav1.ConditionTrue), "%s: %s", r.Reason, r.Message)
		}, within, 250*time.Millisecond).Should(Succeed())
	}
	setMode := func(mode meshv1alpha1.OutboundTrafficMode) {
		GinkgoHelper()
		Eventually(func() error {
			got := &meshv1alpha1.MeshSettings{}
			if err := c.Get(env.Ctx, client.ObjectKeyFromObject(ms), got); err != nil {
				return err
			}
			got.Spec.OutboundTrafficPolicy = &meshv1alpha1.OutboundTrafficPolicy{Mode: mode}
			return c.Update(env.Ctx, got)
		}, time.Minute, 500*time.Millisecond).Should(Succeed())
	}
	meshOf := func() string {
		GinkgoHelper()
		cm := &corev1.ConfigMap{}
		Expect(c.Get(env.Ctx, client.ObjectKey{Namespace: "istio-system", Name: "istio"}, cm)).To(Succeed())
		return cm.Data["mesh"]
	}

	BeforeAll(func() {
		env = harness.Start()
		c = env.Client
		Expect(c.Create(env.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system"}})).To(Succeed())
		Expect(c.Create(env.Ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: "istio", Namespace: "istio-system"},
			Data:       map[string]string{"mesh": faultsHelmMesh, "meshNetworks": "networks: {}"},
		}, client.FieldOwner("helm"))).To(Succeed())
		labels := map[string]string{"app": "istiod"}
		Expect(c.Create(env.Ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system"},
			Spec: appsv1.DeploymentSpec{
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "discovery", Image: "docker.io/istio/pilot:1.28.1",
					// Rendered with traceSampling: "": the MeshSettings owns PILOT_TRACE_SAMPLING (docs/helm.md).
					Env: []corev1.EnvVar{{Name: "REVISION", Value: "default"}},
				}}}},
			},
		}, client.FieldOwner("helm"))).To(Succeed())
		op = start("faults-operator")
		ms.Spec = meshv1alpha1.MeshSettingsSpec{
			OutboundTrafficPolicy: &meshv1alpha1.OutboundTrafficPolicy{Mode: meshv1alpha1.OutboundRegistryOnly},
			Tracing:               &meshv1alpha1.Tracing{SamplingPercentage: "10"},
		}
		Expect(c.Create(env.Ctx, ms)).To(Succeed())
		ready(time.Minute)
	})

	It("logs each write with structured keys, and nothing on a pass that changes nothing", func() {
		lines := func() int { return strings.Count(op.Logs(), "\n") }
		before := lines()
		By("a change of the ConfigMap outside the mesh key: a pass runs and writes nothing")
		cm := &corev1.ConfigMap{}
		Expect(c.Get(env.Ctx, client.ObjectKey{Namespace: "istio-system", Name: "istio"}, cm)).To(Succeed())
		cm.Data["meshNetworks"] = "networks: {} # touched"
		Expect(c.Update(env.Ctx, cm, client.FieldOwner("helm"))).To(Succeed())
		Consistently(lines, 3*time.Second, 200*time.Millisecond).Should(Equal(before), "log:\n%s", op.Logs())

		By("a spec change: the write and the status write are logged")
		setMode(meshv1alpha1.OutboundAllowAny)
		ready(time.Minute)
		Eventually(op.Logs, 10*time.Second, 200*time.Millisecond).Should(And(
			MatchRegexp(`"msg":"applied mesh ConfigMap".*"configMap":"istio-system/istio"`),
			MatchRegexp(`"msg":"wrote status".*"observedGeneration":2.*"ready":"True"`)))
		setMode(meshv1alpha1.OutboundRegistryOnly)
		ready(time.Minute)
	})

	It("converges after etcd is frozen for 20 s", func() {
		etcd, _ := pidOf("etcd", "--listen-client-urls="+env.Env.ControlPlane.Etcd.URL.String())
		Expect(syscall.Kill(etcd, syscall.SIGSTOP)).To(Succeed())
		thawed := false
		defer func() {
			if !thawed {
				_ = syscall.Kill(etcd, syscall.SIGCONT)
			}
		}()
		time.Sleep(20 * time.Second)
		Expect(syscall.Kill(etcd, syscall.SIGCONT)).To(Succeed())
		thawed = true
		setMode(meshv1alpha1.OutboundAllowAny)
		ready(2 * time.Minute)
		Expect(meshOf()).To(ContainSubstring("mode: ALLOW_ANY"))
		Expect(op.Exited()).To(BeFalse(), "the operator survives a frozen etcd")
	})

	It("converges after kube-apiserver is killed and restarted", func() {
		pid, args := pidOf("kube-apiserver", "--etcd-servers="+env.Env.ControlPlane.Etcd.URL.String())
		Expect(syscall.Kill(pid, syscall.SIGKILL)).To(Succeed())
		Eventually(func() bool { return syscall.Kill(pid, 0) != nil }, 10*time.Second, 100*time.Millisecond).Should(BeTrue())
		time.Sleep(3 * time.Second)
		By("starting the same kube-apiserver again: same flags, certificates and port")
		apiserver = exec.Command(args[0], args[1:]...)
		log, err := os.Create(filepath.Join(workDir, "kube-apiserver-restarted.log"))
		Expect(err).NotTo(HaveOccurred())
		apiserver.Stdout, apiserver.Stderr = log, log
		Expect(apiserver.Start()).To(Succeed())
		setMode(meshv1alpha1.OutboundRegistryOnly)
		ready(2 * time.Minute)
		Expect(meshOf()).To(ContainSubstring("mode: REGISTRY_ONLY"))
		Expect(op.Exited()).To(BeFalse(), "the operator survives the API server's restart")
	})

	It("restores Helm's document byte for byte when the MeshSettings is deleted while the operator is down", func() {
		op.Stop()
		Expect(c.Delete(env.Ctx, ms)).To(Succeed())
		Consistently(func() error { return c.Get(env.Ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}) },
			time.Second, 200*time.Millisecond).Should(Succeed(), "the finalizer holds it while no operator runs")
		op = start("faults-operator-after-delete")
		Eventually(func() bool {
			return apierrors.IsNotFound(c.Get(env.Ctx, client.ObjectKeyFromObject(ms), &meshv1alpha1.MeshSettings{}))
		}, time.Minute, 250*time.Millisecond).Should(BeTrue())
		Expect(meshOf()).To(Equal(faultsHelmMesh))
		d := &appsv1.Deployment{}
		Expect(c.Get(env.Ctx, client.ObjectKey{Namespace: "istio-system", Name: "istiod"}, d)).To(Succeed())
		Expect(d.Spec.Template.Spec.Containers[0].Env).To(Equal([]corev1.EnvVar{{Name: "REVISION", Value: "default"}}))
	})

	It("says Reconciling when killed while labeling 2,000 namespaces, and ends exact after a restart", func() {
		const n = 2000
		By(fmt.Sprintf("creating %d namespaces, and 50 the rule does not select", n))
		var wg sync.WaitGroup
		names := make(chan string)
		for range 16 {
			wg.Go(func() {
				for name := range names {
					l := map[string]string{"fault-batch": "yes"}
					if strings.HasPrefix(name, "other-") {
						l = map[string]string{"fault-batch": "no"}
					}
					Expect(c.Create(env.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l}})).To(Succeed())
				}
			})
		}
		for i := range n {
			names <- fmt.Sprintf("batch-%04d", i)
		}
		for i := range 50 {
			names <- fmt.Sprintf("other-%02d", i)
		}
		close(names)
		wg.Wait()

		ms = &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: "batch", Namespace: "istio-system"}, Spec: meshv1alpha1.MeshSettingsSpec{
			Namespaces: []meshv1alpha1.NamespaceRule{{
				Selector: &meshv1alpha1.LabelSelector{MatchLabels: map[string]string{"fault-batch": "yes"}}, Dataplane: meshv1alpha1.DataplaneSidecar,
			}},
		}}
		Expect(c.Create(env.Ctx, ms)).To(Succeed())
		labeled := func() int {
			var list corev1.NamespaceList
			Expect(c.List(env.Ctx, &list, client.HasLabels{"istio.io/rev"})).To(Succeed())
			return len(list.Items)
		}
		Eventually(labeled, time.Minute, 20*time.Millisecond).Should(BeNumerically(">=", 50))
		op.Kill()
		got := labeled()
		AddReportEntry("namespaces labeled at SIGKILL", got)
		Expect(got).To(BeNumerically("<", n), "the kill must land mid-way")

		By("the status left behind says the generation is in progress, not Ready")
		st := &meshv1alpha1.MeshSettings{}
		Expect(c.Get(env.Ctx, client.ObjectKeyFromObject(ms), st)).To(Succeed())
		Expect(st.Status.ObservedGeneration).To(Equal(st.Generation))
		rec := meta.FindStatusCondition(st.Status.Conditions, meshv1alpha1.ConditionReconciling)
		Expect(rec).NotTo(BeNil(), "conditions: %v", st.Status.Conditions)
		Expect(rec.Status).To(Equal(metav1.ConditionTrue))
		Expect(meta.FindStatusCondition(st.Status.Conditions, meshv1alpha1.ConditionReady).Status).To(Equal(metav1.ConditionFalse))

		By("restarting: the end state is exact")
		op = start("faults-operator-after-kill")
		ready(3 * time.Minute)
		var list corev1.NamespaceList
		Expect(c.List(env.Ctx, &list)).To(Succeed())
		for _, ns := range list.Items {
			want := ""
			if ns.Labels["fault-batch"] == "yes" {
				want = "default"
			}
			Expect(ns.Labels["istio.io/rev"]).To(Equal(want), "namespace %s", ns.Name)
		}
		Expect(c.Get(env.Ctx, client.ObjectKeyFromObject(ms), st)).To(Succeed())
		Expect(st.Status.Namespaces.Labeled).To(BeEquivalentTo(n))
		Expect(st.Status.Namespaces.Selected).To(BeEquivalentTo(n))
	})

	It("ends exact after namespace churn: labels flipped both ways and namespaces created while it works", func() {
		var wg sync.WaitGroup
		for i := range 200 { // selected ones leave the selection, unselected ones join it
			wg.Go(func() {
				name, to := fmt.Sprintf("batch-%04d", i), "no"
				if i >= 150 {
					name, to = fmt.Sprintf("other-%02d", i-150), "yes"
				}
				Eventually(func() error {
					ns := &corev1.Namespace{}
					if err := c.Get(env.Ctx, client.ObjectKey{Name: name}, ns); err != nil {
						return err
					}
					ns.Labels["fault-batch"] = to
					return c.Update(env.Ctx, ns)
				}, time.Minute, 100*time.Millisecond).Should(Succeed())
			})
		}
		for i := range 100 {
			wg.Go(func() {
				Expect(c.Create(env.Ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
					Name: fmt.Sprintf("late-%03d", i), Labels: map[string]string{"fault-batch": "yes"}}})).To(Succeed())
			})
		}
		wg.Wait()
		Eventually(func(g Gomega) {
			var list corev1.NamespaceList
			g.Expect(c.List(env.Ctx, &list)).To(Succeed())
			wrong := 0
			for _, ns := range list.Items {
				want := ""
				if ns.Labels["fault-batch"] == "yes" {
					want = "default"
				}
				if ns.Labels["istio.io/rev"] != want {
					wrong++
				}
			}
			g.Expect(wrong).To(BeZero())
		}, 3*time.Minute, time.Second).Should(Succeed())
		ready(time.Minute)
		Eventually(func(g Gomega) {
			st := &meshv1alpha1.MeshSettings{}
			g.Expect(c.Get(env.Ctx, client.ObjectKeyFromObject(ms), st)).To(Succeed())
			g.Expect(st.Status.Namespaces.Labeled).To(BeEquivalentTo(2000 - 150 + 50 + 100))
			g.Expect(st.Status.Namespaces.Selected).To(BeEquivalentTo(2000 - 150 + 50 + 100))
		}, time.Minute, time.Second).Should(Succeed())
	})

	It("hands over to the standby replica after the leader is SIGKILLed, with one writer at a time", func() {
		op.Stop()
		le := []string{"--control-plane-namespace=istio-system", "--health-probe-bind-address=127.0.0.1:0",
			"--leader-elect", "--leader-election-namespace=istio-system"}
		startLE := func(name string) *utils.Operator {
			o, err := env.StartOperator(binary, filepath.Join(workDir, name+".log"), le...)
			Expect(err).NotTo(HaveOccurred())
			operators = append(operators, o)
			return o
		}
		a := startLE("faults-replica-a")
		Eventually(a.Logs, time.Minute, 100*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		b := startLE("faults-replica-b")
		Eventually(b.Logs, 30*time.Second, 100*time.Millisecond).Should(ContainSubstring("Attempting to acquire leader lease"))
		setMode(meshv1alpha1.OutboundAllowAny)
		ready(time.Minute)
		Expect(b.Logs()).NotTo(ContainSubstring("Starting Controller"), "the standby must not run the controller")

		By("SIGKILL of the leader: the lease is not released, the standby takes it when it expires")
		killed := time.Now()
		a.Kill()
		Eventually(b.Logs, time.Minute, 50*time.Millisecond).Should(ContainSubstring("Successfully acquired lease"))
		AddReportEntry("leader takeover after SIGKILL", time.Since(killed).Round(100*time.Millisecond).String())
		setMode(meshv1alpha1.OutboundRegistryOnly)
		ready(time.Minute)
		Expect(meshOf()).To(ContainSubstring("mode: REGISTRY_ONLY"))
		op = b
	})
})
