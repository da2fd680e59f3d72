package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	// selectedLabel marks the namespaces the benchmark's selector rule picks.
	selectedLabel = "bench.meshsettings.io/selected"
	// populationLabel marks every object the population step creates.
	populationLabel = "bench.meshsettings.io/population"
)

func benchNamespace(i int) string { return fmt.Sprintf("bench-ns-%05d", i) }

// population is the cluster the scale, steady-state and memory figures are
// taken on: namespaces (every selectEvery-th one selected), and unrelated
// ConfigMaps and Deployments in the first namespaces.
type population struct {
	selectEvery, configMaps, deployments int
}

func (p population) isSelected(i int) bool { return p.selectEvery > 0 && i%p.selectEvery == 0 }

// selectedNames are the namespaces of [from, to) the selector rule picks.
func (p population) selectedNames(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		if p.isSelected(i) {
			out = append(out, benchNamespace(i))
		}
	}
	return out
}

// unselectedNames are the first n namespaces of [0, to) no rule picks.
func (p population) unselectedNames(to, n int) []string {
	var out []string
	for i := 0; i < to && len(out) < n; i++ {
		if !p.isSelected(i) {
			out = append(out, benchNamespace(i))
		}
	}
	return out
}

// objects are the namespaces [from, to) and, with extras, the ConfigMaps and
// Deployments spread over them.
func (p population) objects(from, to int, extras bool) []client.Object {
	teams := []string{"payments", "search", "checkout", "identity", "data"}
	var out []client.Object
	for i := from; i < to; i++ {
		labels := map[string]string{
			populationLabel: "true",
			"team":          teams[i%len(teams)],
			"environment":   []string{"production", "staging"}[i%2],
		}
		if p.isSelected(i) {
			labels[selectedLabel] = "true"
		}
		out = append(out, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        benchNamespace(i),
			Labels:      labels,
			Annotations: map[string]string{"owner": "team-" + teams[i%len(teams)] + "@example.com"},
		}})
	}
	if !extras || to <= from {
		return out
	}
	// ~2 KiB of data each, like application configuration.
	payload := strings.Repeat("key=value;", 200)
	for i := 0; i < p.configMaps; i++ {
		out = append(out, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("app-config-%d", i), Namespace: benchNamespace(from + i%(to-from)),
				Labels: map[string]string{populationLabel: "true", "app": "app"},
			},
			Data: map[string]string{"application.properties": payload},
		})
	}
	for i := 0; i < p.deployments; i++ {
		labels := map[string]string{"app": fmt.Sprintf("app-%d", i)}
		out = append(out, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("app-%d", i), Namespace: benchNamespace(from + i%(to-from)),
				Labels: map[string]string{populationLabel: "true", "app": labels["app"]},
			},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{
						Name:  "app",
						Image: "registry.example.com/app:1.0.0",
						Ports: []corev1.ContainerPort{{ContainerPort: 8080}},
						Env: []corev1.EnvVar{
							{Name: "LOG_LEVEL", Value: "info"},
							{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
						},
					}}},
				},
			},
		})
	}
	return out
}

// create sends every object with a few concurrent workers (namespaces first,
// since the rest live in them).
func create(ctx context.Context, c client.Client, objs []client.Object, workers int) (time.Duration, error) {
	start := time.Now()
	var namespaces, rest []client.Object
	for _, o := range objs {
		if _, ok := o.(*corev1.Namespace); ok {
			namespaces = append(namespaces, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, batch := range [][]client.Object{namespaces, rest} {
		if err := createAll(ctx, c, batch, workers); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func createAll(ctx context.Context, c client.Client, objs []client.Object, workers int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(objs) || ctx.Err() != nil {
					return
				}
				if err := c.Create(ctx, objs[i], client.FieldOwner("bench-population")); err != nil {
					once.Do(func() {
						firstErr = fmt.Errorf("creating %T %s/%s: %w", objs[i], objs[i].GetNamespace(), objs[i].GetName(), err)
						cancel()
					})
					return
				}
			}
		}()
	}
	wg.Wait()
	return firstErr
}
