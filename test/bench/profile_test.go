//go:build bench

package main

import (
	"context"
	"flag"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
	"github.com/meshsettings/meshsettings-operator/controllers"
	"github.com/meshsettings/meshsettings-operator/test/utils"
)

var (
	profileDir     = flag.String("profile-dir", os.TempDir(), "where TestProfileReconciler writes heap.pprof and cpu.pprof")
	profileChanges = flag.Int("profile-changes", 50, "MeshSettings changes profiled by TestProfileReconciler")
)

// TestProfileReconciler runs the reconciler in this process, wired as
// main.go wires it (cache scoped to istio-system), on the benchmark's
// population, and writes the profiles the operator binary does not expose:
// the heap once the scale run has converged, and the CPU of a series of
// spec changes. Not part of `make bench`:
//
//	KUBEBUILDER_ASSETS=... go test -tags bench -run TestProfileReconciler ./test/bench -args -profile-dir=/tmp
//	go tool pprof -sample_index=inuse_space -top /tmp/heap.pprof
func TestProfileReconciler(t *testing.T) {
	ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	root, err := utils.ProjectRoot()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := utils.StartControlPlane(root)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cp.Stop() }()
	if err := cp.InstallIstio(root, "--server-side=false"); err != nil {
		t.Fatal(err)
	}

	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := meshv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg := *cp.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(&cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const namespaces = 5000
	pop := population{selectEvery: 5, configMaps: 5000, deployments: 500}
	if _, err := create(ctx, c, pop.objects(0, namespaces, true), 8); err != nil {
		t.Fatal(err)
	}

	mgr, err := ctrl.NewManager(cp.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  controllers.CacheOptions(istioNS),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := controllers.Setup(mgr); err != nil {
		t.Fatal(err)
	}
	go func() { _ = mgr.Start(ctx) }()

	ms := meshSettings("bench-profile", stateAt(0))
	if err := c.Create(ctx, ms); err != nil {
		t.Fatal(err)
	}
	waitGeneration := func(gen int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for time.Now().Before(deadline) {
			got := &meshv1alpha1.MeshSettings{}
			if err := c.Get(ctx, types.NamespacedName{Namespace: istioNS, Name: ms.Name}, got); err == nil &&
				got.Status.ObservedGeneration >= gen && meta.IsStatusConditionTrue(got.Status.Conditions, meshv1alpha1.ConditionReady) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("generation %d not Ready", gen)
	}
	waitGeneration(1)
	time.Sleep(2 * time.Second) // follow-up reconciles

	runtime.GC()
	heap, err := os.Create(filepath.Join(*profileDir, "heap.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.Lookup("heap").WriteTo(heap, 0); err != nil {
		t.Fatal(err)
	}
	heap.Close()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	t.Logf("converged on %d namespaces: heap in use %.1f MiB (this process also holds the test's client and population)", namespaces, float64(m.HeapInuse)/(1<<20))

	cpu, err := os.Create(filepath.Join(*profileDir, "cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 1; i <= *profileChanges; i++ {
		patch, err := changePatch(stateAt(i))
		if err != nil {
			t.Fatal(err)
		}
		obj := &meshv1alpha1.MeshSettings{ObjectMeta: metav1.ObjectMeta{Name: ms.Name, Namespace: istioNS}}
		if err := c.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil {
			t.Fatal(err)
		}
		waitGeneration(int64(i + 1))
	}
	pprof.StopCPUProfile()
	cpu.Close()
	t.Logf("%d changes in %s; profiles in %s", *profileChanges, time.Since(start).Round(time.Millisecond), *profileDir)
}
