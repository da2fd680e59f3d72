// Package harness is the one way a Ginkgo suite of this repository gets a
// real API server: Start runs kube-apiserver and etcd (the envtest binaries
// from KUBEBUILDER_ASSETS or bin/k8s), installs the MeshSettings CRD, gives a
// client, and stops it all when the suite ends; RunManager runs the
// operator's manager in-process, wired as main.go wires it.
//
// Every helper calls GinkgoHelper, so a failure points at the caller's line,
// and registers its own cleanup with DeferCleanup: suites need no AfterSuite.
//
//	var env *harness.Env
//	var _ = BeforeSuite(func() {
//		env = harness.Start()
//		env.RunManager(controllers.Setup, ctrl.Options{Cache: controllers.CacheOptions("")})
//	})
package harness

import (
	"context"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

// Env is a running control plane with the MeshSettings CRD installed.
// The embedded ControlPlane gives Config, Kubeconfig and Kubectl.
type Env struct {
	*utils.ControlPlane
	// Root is the repository root (the directory holding go.mod and PROJECT).
	Root string
	// Scheme knows client-go's built-in types and meshv1alpha1; the client
	// and the manager use it.
	Scheme *runtime.Scheme
	// Client talks to the API server directly (no cache).
	Client client.Client
	// Ctx is cancelled when the suite ends.
	Ctx context.Context
}

// Option changes how Start builds the control plane.
type Option func(*settings)

type settings struct {
	root string
	env  *envtest.Environment
}

// WithCRDDirs installs the CRDs in these directories (relative to the
// repository root) in addition to config/crd/bases.
func WithCRDDirs(dirs ...string) Option {
	return func(s *settings) {
		for _, d := range dirs {
			if !filepath.IsAbs(d) {
				d = filepath.Join(s.root, d)
			}
			s.env.CRDDirectoryPaths = append(s.env.CRDDirectoryPaths, d)
		}
	}
}

// WithEnvironment edits the envtest.Environment before it starts: CRD
// objects, API server flags, webhook options.
func WithEnvironment(edit func(*envtest.Environment)) Option {
	return func(s *settings) { edit(s.env) }
}

// Start starts kube-apiserver and etcd with the CRD installed, sends the
// controller-runtime log to the GinkgoWriter, and registers the shutdown with
// DeferCleanup. Call it from BeforeSuite (or from a BeforeAll for a control
// plane of a container's own).
func Start(opts ...Option) *Env {
	GinkgoHelper()
	logf.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))

	root, err := utils.ProjectRoot()
	Expect(err).NotTo(HaveOccurred(), "finding the repository root")

	scheme := runtime.NewScheme()
	Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
	Expect(meshv1alpha1.AddToScheme(scheme)).To(Succeed())

	By("starting kube-apiserver and etcd with the MeshSettings CRD")
	cp, err := utils.StartControlPlane(root, func(e *envtest.Environment) {
		e.Scheme = scheme
		e.CRDInstallOptions.Scheme = scheme
		for _, o := range opts {
			o(&settings{root: root, env: e})
		}
	})
	Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	env := &Env{ControlPlane: cp, Root: root, Scheme: scheme, Ctx: ctx}
	DeferCleanup(func() {
		GinkgoHelper()
		By("stopping kube-apiserver and etcd")
		cancel()
		Expect(cp.Stop()).To(Succeed())
	})

	env.Client, err = client.New(cp.Config, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	return env
}

// RunManager runs a controller-runtime manager against the control plane
// until the suite ends (or the enclosing container's cleanup runs). setup
// registers the controllers (controllers.Setup, as main.go does). opts is
// used as given, except that an unset Scheme becomes env.Scheme and the
// metrics and health endpoints are off unless set.
func (e *Env) RunManager(setup func(ctrl.Manager) error, opts ctrl.Options) ctrl.Manager {
	GinkgoHelper()
	By("starting the operator's manager, as main.go wires it")
	if opts.Scheme == nil {
		opts.Scheme = e.Scheme
	}
	if opts.Metrics.BindAddress == "" {
		opts.Metrics = metricsserver.Options{BindAddress: "0"}
	}
	if opts.HealthProbeBindAddress == "" {
		opts.HealthProbeBindAddress = "0"
	}
	mgr, err := ctrl.NewManager(e.Config, opts)
	Expect(err).NotTo(HaveOccurred())
	Expect(setup(mgr)).To(Succeed())

	ctx, cancel := context.WithCancel(e.Ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	// Registered after Start's cleanup, so it runs first: the manager stops
	// before the API server it talks to.
	DeferCleanup(func() {
		GinkgoHelper()
		cancel()
		select {
		case err := <-done:
			Expect(err).NotTo(HaveOccurred(), "the manager ended with an error")
		case <-time.After(time.Minute):
			Fail("the manager did not stop within a minute of its context ending")
		}
	})
	return mgr
}

// Dynamic is a dynamic client for the control plane.
func (e *Env) Dynamic() dynamic.Interface {
	GinkgoHelper()
	d, err := dynamic.NewForConfig(e.Config)
	Expect(err).NotTo(HaveOccurred())
	return d
}

// Namespace creates a namespace named prefix-<random> with the given labels
// and returns its name. Namespaces are not deleted: envtest runs no namespace
// controller, so they would only stay Terminating.
func (e *Env) Namespace(prefix string, labels map[string]string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-", Labels: labels}}
	Expect(e.Client.Create(e.Ctx, ns)).To(Succeed())
	return ns.Name
}
