package controllers

import (
	"context"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestAtOrAfter(t *testing.T) {
	for _, c := range []struct {
		cached, want string
		ok           bool
	}{
		{"10", "10", true},
		{"11", "10", true},
		{"9", "10", false},
		{"100", "99", true}, // numerically, not as strings
		{"", "10", false},
		{"abc", "abc", true}, // not integers: equality only
		{"abd", "abc", false},
	} {
		if got := atOrAfter(c.cached, c.want); got != c.ok {
			t.Errorf("atOrAfter(%q, %q) = %v, want %v", c.cached, c.want, got, c.ok)
		}
	}
}

// awaitCache is checked against a fake client standing in for the cache: it
// returns at once for a version the cache holds, and otherwise waits until
// the cache reaches the written version.
func TestAwaitCacheWaitsForTheWrittenVersion(t *testing.T) {
	ctx := context.Background()
	key := metav1.ObjectMeta{Namespace: "istio-system", Name: "istio"}
	cache := fake.NewClientBuilder().WithObjects(&corev1.ConfigMap{ObjectMeta: key}).Build()
	r := &MeshSettingsReconciler{Client: cache}
	cur := &corev1.ConfigMap{}
	if err := cache.Get(ctx, client.ObjectKeyFromObject(&corev1.ConfigMap{ObjectMeta: key}), cur); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	r.awaitCache(ctx, []written{{obj: &corev1.ConfigMap{ObjectMeta: key}, resourceVersion: cur.ResourceVersion}})
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a version the cache holds made awaitCache wait %s", d)
	}

	// The API server answered a version three updates ahead of the cache.
	want := cur.ResourceVersion
	for range 3 {
		want = strconv.Itoa(mustAtoi(t, want) + 1)
	}
	const lag = 100 * time.Millisecond
	start = time.Now() // before the updates are scheduled: they land at start+lag or later
	go func() {
		time.Sleep(lag)
		for i := range 3 {
			cur.Data = map[string]string{"n": strconv.Itoa(i)}
			_ = cache.Update(ctx, cur)
		}
	}()
	r.awaitCache(ctx, []written{{obj: &corev1.ConfigMap{ObjectMeta: key}, resourceVersion: want}})
	if d := time.Since(start); d < lag || d >= cacheSyncTimeout {
		t.Fatalf("awaitCache returned after %s; the cache caught up after %s", d, lag)
	}
	got := &corev1.ConfigMap{}
	if err := cache.Get(ctx, client.ObjectKeyFromObject(&corev1.ConfigMap{ObjectMeta: key}), got); err != nil || !atOrAfter(got.ResourceVersion, want) {
		t.Fatalf("awaitCache returned while the cache held version %q < %q (%v)", got.ResourceVersion, want, err)
	}
}

// An object missing from the cache is waited for only when the write created
// it; otherwise it was deleted after the write.
func TestAwaitCacheOnMissingObjects(t *testing.T) {
	r := &MeshSettingsReconciler{Client: fake.NewClientBuilder().Build()}
	gone := written{obj: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "gone"}}, resourceVersion: "7"}
	start := time.Now()
	r.awaitCache(context.Background(), []written{gone})
	if d := time.Since(start); d > time.Second {
		t.Fatalf("waited %s for an object deleted after the write", d)
	}

	// A created object the cache never shows: awaitCache waits until it is
	// told to stop (here a context deadline instead of cacheSyncTimeout).
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	created := gone
	created.created = true
	r.awaitCache(ctx, []written{created})
	if ctx.Err() == nil {
		t.Fatal("returned before its context ended although the created object never reached the cache")
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
