package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	meshv1alpha1 "github.com/meshsettings/meshsettings-operator/api/v1alpha1"
)

const scaleMS = "bench-scale"

// phaseGrowth grows the population through the steps with one MeshSettings
// selecting every selectEvery-th namespace, the operator running all along
// (setup is paid once). At each step it measures convergence latency; at
// the full steps also the CPU per namespace event that changes no
// selection, labeling from scratch with the writes it took, a restart with
// no writes, and peak memory.
func (b *bench) phaseGrowth(ctx context.Context) error {
	logf("== growing the population through %v namespaces (1 in %d selected)", b.cfg.steps, b.cfg.pop.selectEvery)
	op, err := b.startOperator(ctx, "scale")
	if err != nil {
		return err
	}
	if err := b.c.Create(ctx, meshSettings(scaleMS, stateAt(b.seq))); err != nil {
		return err
	}
	if err := b.waitReady(ctx, scaleMS, 60*time.Second); err != nil {
		return fmt.Errorf("%w\noperator log:\n%s", err, tail(op.Logs(), 20))
	}
	created := 0
	var peakAtLast int64
	for si, step := range b.cfg.steps {
		if err := b.grow(ctx, op, created, step, si == 0); err != nil {
			return fmt.Errorf("growing to %d namespaces: %w", step, err)
		}
		created = step
		if _, err := op.waitIdle(ctx, time.Second, 5*time.Minute); err != nil {
			return err
		}
		full := slices.Contains(b.cfg.fullSteps, step)
		changes := b.cfg.curveChanges
		if full {
			changes = b.cfg.changes
		}
		logf("== convergence latency with %d population namespaces (%d changes)", step, changes)
		l, err := b.latencyRun(ctx, op, scaleMS, changes)
		if err != nil {
			return fmt.Errorf("latency at %d namespaces: %w", step, err)
		}
		pt, err := b.reportLatency(ctx, l, full)
		if err != nil {
			return err
		}
		pt.rss = op.memory().hwm
		b.curve = append(b.curve, pt)
		b.note("operator %s at %d namespaces: %s, CPU %s", op.name, pt.namespaces, op.memory(), op.cpu().Round(time.Millisecond))
		if !full {
			continue
		}
		if err := b.burst(ctx, op, step); err != nil {
			return fmt.Errorf("namespace events at %d namespaces: %w", step, err)
		}
		if err := b.relabel(ctx, op, step); err != nil {
			return fmt.Errorf("labeling at %d namespaces: %w", step, err)
		}
		prevPeak := op.memory().hwm
		if op, err = b.restart(ctx, op, step); err != nil {
			return fmt.Errorf("restart at %d namespaces: %w", step, err)
		}
		peak := max(prevPeak, op.memory().hwm)
		b.note("peak RSS at %d namespaces: %s (the operator that grew to it and ran the measurements: %s; the restarted one: %s)",
			step, mib(peak), mib(prevPeak), mib(op.memory().hwm))
		if step == b.cfg.fullSteps[len(b.cfg.fullSteps)-1] {
			peakAtLast = peak
			if b.cfg.pods > 0 {
				if op, err = b.phasePods(ctx, op, step, op.memory().hwm); err != nil {
					return fmt.Errorf("pods at %d namespaces: %w", step, err)
				}
			}
		} else {
			b.add(fmt.Sprintf("peak RSS (%d namespaces)", pt.namespaces), mib(peak), "-", nil)
		}
	}
	if n := len(b.cfg.fullSteps); n > 0 {
		last := b.cfg.fullSteps[n-1]
		b.add(fmt.Sprintf("peak RSS (%d namespaces, %d ConfigMaps, %d Deployments; %s)", last, b.cfg.pop.configMaps, b.cfg.pop.deployments, b.cfg.operatorEnv),
			mib(peakAtLast), "<= 96 MiB", ptrBool(peakAtLast <= 96<<20))
	}
	if n := len(b.cfg.fullSteps); n >= 2 {
		first, last := b.cfg.fullSteps[0], b.cfg.fullSteps[n-1]
		a, z := b.cpuPerEvent[first], b.cpuPerEvent[last]
		if a > 0 {
			r := float64(z) / float64(a)
			b.add(fmt.Sprintf("operator CPU per namespace event that changes no selection, %d vs %d namespaces", last, first),
				fmt.Sprintf("%.1f / %.1f us = %.2fx", us(z), us(a), r), "<= 1.5x", ptrBool(r <= 1.5))
		} else {
			b.add(fmt.Sprintf("operator CPU per namespace event that changes no selection, %d vs %d namespaces", last, first),
				fmt.Sprintf("%.1f / 0 us", us(z)), "<= 1.5x", ptrBool(false))
		}
	}
	return nil
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

// grow creates the namespaces [from, to) (and, first, the unrelated
// ConfigMaps and Deployments) while the operator runs, and waits until the
// harness's watch has seen every new selected namespace labeled.
func (b *bench) grow(ctx context.Context, op *operator, from, to int, first bool) error {
	if to <= from {
		return nil
	}
	p := b.cfg.pop
	objs := p.objects(from, to, first)
	selected := p.selectedNames(from, to)
	logf("== creating namespaces %d..%d (%d selected)%s", from, to-1, len(selected),
		map[bool]string{true: fmt.Sprintf(", %d ConfigMaps, %d Deployments", p.configMaps, p.deployments)}[first])
	set := b.w.armSet(selected, func(o client.Object) bool { return hasDataplane(o, meshv1alpha1.DataplaneSidecar) })
	defer b.w.disarmSet(set)
	cpu0 := op.cpu()
	t0 := time.Now()
	took, err := create(ctx, b.c, objs, b.cfg.workers)
	if err != nil {
		return err
	}
	lastCreate := time.Now()
	select {
	case <-set.done:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("after 5m, %d of %d new selected namespaces labeled", len(set.satisfied), len(selected))
	case <-ctx.Done():
		return ctx.Err()
	}
	after := set.at.Sub(lastCreate)
	if after < 0 {
		after = 0
	}
	b.setupTook(fmt.Sprintf("%d objects created (namespaces %d..%d, %d workers, %.0f/s)", len(objs), from, to-1, b.cfg.workers,
		float64(len(objs))/took.Seconds()), took)
	b.note("growing to %d namespaces: the operator labeled all %d new selected namespaces %s after the last create (%s after the first); its CPU meanwhile %s",
		to, len(selected), after.Round(time.Millisecond), set.at.Sub(t0).Round(time.Millisecond), (op.cpu() - cpu0).Round(time.Millisecond))
	return nil
}

// burst measures the operator's CPU per namespace event that changes no
// selection: label changes on namespaces no rule selects, sent by 8
// clients, until the operator is idle again. CPU is utime+stime of the
// operator process (/proc/<pid>/stat), read around the burst; while the
// burst runs nothing polls the operator.
func (b *bench) burst(ctx context.Context, op *operator, step int) error {
	names := b.cfg.pop.unselectedNames(step, b.cfg.burstNamespaces)
	events := len(names) * b.cfg.burstRounds
	if events == 0 {
		return nil
	}
	logf("== %d label changes on %d unselected namespaces", events, len(names))
	if _, err := op.waitIdle(ctx, time.Second, 2*time.Minute); err != nil {
		return err
	}
	m0, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	// What the idle operator spends in the same time, for comparison.
	idle0 := op.cpu()
	time.Sleep(2 * time.Second)
	idle := op.cpu() - idle0

	seen0 := b.w.namespaceMetaUpdates.Load()
	cpu0 := op.cpu()
	t0 := time.Now()
	for round := 1; round <= b.cfg.burstRounds; round++ {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{touchLabel: fmt.Sprint(round)}}})
		if err := forEach(ctx, names, 8, func(n string) error {
			return b.c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}, client.RawPatch(types.MergePatchType, patch))
		}); err != nil {
			return err
		}
	}
	sent := time.Since(t0)
	deadline := time.Now().Add(2 * time.Minute)
	for b.w.namespaceMetaUpdates.Load()-seen0 < int64(events) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the watch saw %d of %d namespace updates in 2m", b.w.namespaceMetaUpdates.Load()-seen0, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := op.waitIdle(ctx, 500*time.Millisecond, 2*time.Minute); err != nil {
		return err
	}
	used := op.cpu() - cpu0
	m1, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	reqs := m1.requests().minus(m0.requests())
	per := used / time.Duration(events)
	b.cpuPerEvent[step] = per
	ev := m1.sum("meshsettings_namespaces_evaluated_total", nil) - m0.sum("meshsettings_namespaces_evaluated_total", nil)
	walks := m1.sum("meshsettings_namespace_walks_total", nil) - m0.sum("meshsettings_namespace_walks_total", nil)
	rec := m1.controller(controller).reconciles - m0.controller(controller).reconciles
	plan := "no meshsettings_namespaces_evaluated_total metric"
	if m1.has("meshsettings_namespaces_evaluated_total") {
		plan = fmt.Sprintf("namespaces evaluated %.0f (%.2f per event), full walks %.0f", ev, ev/float64(events), walks)
	}
	b.note("%d namespaces: %d label changes on %d unselected namespaces sent in %s; operator CPU %s = %.1f us per event "+
		"(idle for 2 s before: %s); %.0f reconciles; %s; requests %s",
		step, events, len(names), sent.Round(time.Millisecond), used.Round(time.Millisecond), us(per), idle.Round(time.Millisecond),
		rec, plan, reqs)
	b.add(fmt.Sprintf("operator CPU per namespace event that changes no selection (%d namespaces)", step),
		fmt.Sprintf("%.1f us (%s for %d events)", us(per), used.Round(time.Millisecond), events), "-", nil)
	b.add(fmt.Sprintf("write requests during %d namespace events that change no selection (%d namespaces)", events, step),
		fmt.Sprint(reqs.writes()), "0", ptrBool(reqs.writes() == 0))
	return nil
}

// touchLabel is what the CPU burst changes on unselected namespaces.
const touchLabel = "bench.meshsettings.io/touch"

// forEach runs f over items with n concurrent workers and returns the first error.
func forEach(ctx context.Context, items []string, n int, f func(string) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) || ctx.Err() != nil {
					return
				}
				if err := f(items[i]); err != nil {
					once.Do(func() { first = fmt.Errorf("%s: %w", items[i], err); cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// relabel deletes the MeshSettings (the operator removes its labels) and
// creates it again over the grown population: the time until the watch
// has seen every selected namespace labeled, from the create request, and
// the operator's write requests against what needed a change.
func (b *bench) relabel(ctx context.Context, op *operator, step int) error {
	logf("== %d namespaces: MeshSettings %s deleted and created again", step, scaleMS)
	t0 := time.Now()
	if err := b.deleteMeshSettings(ctx, scaleMS); err != nil {
		return err
	}
	b.setupTook(fmt.Sprintf("MeshSettings %s deleted at %d namespaces (its labels removed)", scaleMS, step), time.Since(t0))
	if _, err := op.waitIdle(ctx, time.Second, 2*time.Minute); err != nil {
		return err
	}

	// What needs a change, from the harness's own view of the namespaces.
	s := stateAt(b.seq)
	var nsList corev1.NamespaceList
	if err := b.w.cache.List(ctx, &nsList, client.UnsafeDisableDeepCopy); err != nil {
		return err
	}
	needing := 0
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		if (ns.Name == probeNS || ns.Labels[selectedLabel] == "true") && !hasDataplane(ns, s.dataplane) {
			needing++
		}
	}
	selected := b.cfg.pop.selectedNames(0, step)

	before, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	eventsBefore, err := b.eventsFor(ctx, scaleMS)
	if err != nil {
		return err
	}
	nsUpdates0 := b.w.namespaceMetaUpdates.Load()
	cm0, dep0 := b.w.updatesOf(kindConfigMap, meshCM), b.w.updatesOf(kindDeployment, istiod)
	st0 := counter(&b.w.statusUpdates, istioNS+"/"+scaleMS).Load()
	fin0 := counter(&b.w.finalizerUpdates, istioNS+"/"+scaleMS).Load()
	cpu0 := op.cpu()

	set := b.w.armSet(selected, func(o client.Object) bool { return hasDataplane(o, meshv1alpha1.DataplaneSidecar) })
	defer b.w.disarmSet(set)
	t0 = time.Now()
	if err := b.c.Create(ctx, meshSettings(scaleMS, s)); err != nil {
		return err
	}
	select {
	case <-set.done:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("after 5m, %d of %d selected namespaces labeled\noperator log:\n%s", len(set.satisfied), len(selected), tail(op.Logs(), 20))
	case <-ctx.Done():
		return ctx.Err()
	}
	labeledIn := set.at.Sub(t0)
	if err := b.waitReady(ctx, scaleMS, 2*time.Minute); err != nil {
		return err
	}
	readyIn := time.Since(t0)
	if _, err := op.waitIdle(ctx, 2*time.Second, 2*time.Minute); err != nil {
		return err
	}
	after, err := op.scrape(ctx)
	if err != nil {
		return err
	}
	eventsAfter, err := b.eventsFor(ctx, scaleMS)
	if err != nil {
		return err
	}
	reqs := after.requests().minus(before.requests())
	nsWrites := int(b.w.namespaceMetaUpdates.Load() - nsUpdates0)
	cmWrites := int(b.w.updatesOf(kindConfigMap, meshCM) - cm0)
	depWrites := int(b.w.updatesOf(kindDeployment, istiod) - dep0)
	statusWrites := int(counter(&b.w.statusUpdates, istioNS+"/"+scaleMS).Load() - st0)
	finalizerWrites := int(counter(&b.w.finalizerUpdates, istioNS+"/"+scaleMS).Load() - fin0)
	events := eventsAfter - eventsBefore
	reconciles := after.controller(controller).reconciles - before.controller(controller).reconciles

	// Every write is a server-side apply or merge patch (PATCH), except
	// Events (POST). A namespace, the ConfigMap and the Deployment each need
	// exactly one write.
	expectedPatch := needing + 1 + 1 + statusWrites + finalizerWrites
	patches := reqs.total("PATCH")
	ok := patches == expectedPatch && nsWrites == needing && cmWrites == 1 && depWrites == 1 &&
		reqs.total("POST") == events && reqs.total("PUT") == 0 && reqs.total("DELETE") == 0
	b.note("%d namespaces: %d of %d namespaces needed labels (%d selected by the selector + %s); "+
		"all %d selected labeled %s after the create request, Ready after %s, %.0f reconciles, operator CPU %s",
		step, needing, len(nsList.Items), len(selected), probeNS, len(selected), labeledIn.Round(time.Millisecond), readyIn.Round(time.Millisecond),
		reconciles, (op.cpu() - cpu0).Round(time.Millisecond))
	b.note("%d namespaces: operator requests: %s", step, reqs)
	b.note("%d namespaces: PATCH %d = %d namespaces + 1 ConfigMap + 1 Deployment + %d status + %d finalizer (expected %d); "+
		"writes seen by the watch: %d namespaces, %d ConfigMap, %d Deployment; POST %d = %d Events",
		step, patches, needing, statusWrites, finalizerWrites, expectedPatch, nsWrites, cmWrites, depWrites, reqs.total("POST"), events)
	if extra := patches - expectedPatch; extra > 0 {
		b.note("%d namespaces: %d PATCH request(s) beyond the writes the watch saw: a write that changed nothing", step, extra)
	}
	limit := 10 * time.Second
	if step < 50000 {
		limit = 5 * time.Second // issue 8's target for 1,000 of 5,000
	}
	b.add(fmt.Sprintf("%d selected of %d namespaces labeled, from the MeshSettings create request to the last label seen by a watch",
		len(selected), len(nsList.Items)),
		labeledIn.Round(time.Millisecond).String(), "<= "+limit.String(), ptrBool(labeledIn <= limit))
	b.add(fmt.Sprintf("write requests while labeling (%d namespaces)", len(nsList.Items)), fmt.Sprintf("%d (PATCH %d, POST %d Events, PUT %d, DELETE %d)",
		reqs.writes(), patches, reqs.total("POST"), reqs.total("PUT"), reqs.total("DELETE")),
		fmt.Sprintf("= %d ns + CM + Deploy + %d status + %d finalizer (+ Events)", needing, statusWrites, finalizerWrites), ptrBool(ok))
	return nil
}

// restart stops the operator and starts a new one on the converged cluster:
// it must write nothing.
func (b *bench) restart(ctx context.Context, prev *operator, step int) (*operator, error) {
	logf("== %d namespaces: steady state, restarting the operator on the converged cluster", step)
	b.note("operator %s: %s, CPU %s", prev.name, prev.memory(), prev.cpu().Round(time.Millisecond))
	prev.Stop()

	start := time.Now()
	op, err := b.startOperator(ctx, fmt.Sprintf("steady-%d", step))
	if err != nil {
		return nil, err
	}
	synced := time.Since(start)
	if rest := b.cfg.steadyMin - time.Since(start); rest > 0 {
		select {
		case <-time.After(rest):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	st, err := op.waitIdle(ctx, 3*time.Second, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	m, err := op.scrape(ctx)
	if err != nil {
		return nil, err
	}
	reqs := m.requests()
	b.note("%d namespaces, restarted: workers started %s after launch; after %s, %.0f reconciles, requests: %s; %s, CPU %s",
		step, synced.Round(time.Millisecond), time.Since(start).Round(time.Millisecond), st.reconciles, reqs, op.memory(), op.cpu().Round(time.Millisecond))
	b.add(fmt.Sprintf("write requests after a restart (%d namespaces, %.0f reconciles, %s)", step, st.reconciles, time.Since(start).Round(time.Second)),
		fmt.Sprintf("%d", reqs.writes()), "0", ptrBool(reqs.writes() == 0 && st.reconciles > 0))
	return op, nil
}
