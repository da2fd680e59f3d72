package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics is one scrape of the operator's /metrics endpoint.
type metrics []sample

// scrape reads the operator's controller-runtime metrics endpoint (served
// over plain HTTP with --metrics-secure=false).
func scrape(ctx context.Context, url string) (metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	// Uncompressed: gzip would cost the operator CPU on every poll.
	req.Header.Set("Accept-Encoding", "identity")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, b)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics parses the Prometheus text exposition format, enough for
// counters and gauges (histogram lines parse as plain samples too).
func parseMetrics(r io.Reader) (metrics, error) {
	var out metrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i < 0 {
			return nil, fmt.Errorf("metrics: malformed line %q", line)
		} else {
			s.name = line[:i]
			rest = line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			var err error
			if rest, err = parseLabels(rest[1:], s.labels); err != nil {
				return nil, fmt.Errorf("metrics: %w in %q", err, line)
			}
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: value of %q: %w", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// parseLabels reads `k="v",k2="v2"}` and returns what follows the brace.
func parseLabels(s string, into map[string]string) (string, error) {
	for {
		s = strings.TrimLeft(s, " ,")
		if strings.HasPrefix(s, "}") {
			return s[1:], nil
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 || len(s) < eq+2 || s[eq+1] != '"' {
			return "", fmt.Errorf("bad label")
		}
		key := strings.TrimSpace(s[:eq])
		s = s[eq+2:]
		var b strings.Builder
		i := 0
		for ; i < len(s); i++ {
			c := s[i]
			if c == '\\' && i+1 < len(s) {
				i++
				switch s[i] {
				case 'n':
					b.WriteByte('\n')
				default:
					b.WriteByte(s[i])
				}
				continue
			}
			if c == '"' {
				break
			}
			b.WriteByte(c)
		}
		if i >= len(s) {
			return "", fmt.Errorf("unterminated label value")
		}
		into[key] = b.String()
		s = s[i+1:]
	}
}

// sum adds the samples of name whose labels include every given pair.
func (m metrics) sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, s := range m {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range match {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			total += s.value
		}
	}
	return total
}

// requests is the operator's HTTP requests to the API server by method and
// code (client-go's rest_client_requests_total, registered by controller-runtime).
type requests map[string]map[string]int // method -> code -> count

func (m metrics) requests() requests {
	out := requests{}
	for _, s := range m {
		if s.name != "rest_client_requests_total" {
			continue
		}
		method, code := s.labels["method"], s.labels["code"]
		if out[method] == nil {
			out[method] = map[string]int{}
		}
		out[method][code] += int(s.value)
	}
	return out
}

// minus is r - base, per method and code.
func (r requests) minus(base requests) requests {
	out := requests{}
	for method, codes := range r {
		for code, n := range codes {
			if d := n - base[method][code]; d != 0 {
				if out[method] == nil {
					out[method] = map[string]int{}
				}
				out[method][code] = d
			}
		}
	}
	return out
}

func (r requests) total(method string) int {
	n := 0
	for _, c := range r[method] {
		n += c
	}
	return n
}

var writeMethods = []string{"POST", "PUT", "PATCH", "DELETE"}

func (r requests) writes() int {
	n := 0
	for _, m := range writeMethods {
		n += r.total(m)
	}
	return n
}

// String lists every method with its codes, e.g. "GET 12 (200), PATCH 3 (200)".
func (r requests) String() string {
	methods := make([]string, 0, len(r))
	for m := range r {
		methods = append(methods, m)
	}
	sort.Strings(methods)
	parts := make([]string, 0, len(methods))
	for _, m := range methods {
		codes := make([]string, 0, len(r[m]))
		for c, n := range r[m] {
			codes = append(codes, fmt.Sprintf("%s: %d", c, n))
		}
		sort.Strings(codes)
		parts = append(parts, fmt.Sprintf("%s %d (%s)", m, r.total(m), strings.Join(codes, ", ")))
	}
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ", ")
}

// controllerState is what tells whether the operator is idle.
type controllerState struct {
	reconciles float64 // controller_runtime_reconcile_total
	depth      float64 // workqueue_depth
	active     float64 // controller_runtime_active_workers
}

func (m metrics) controller(name string) controllerState {
	return controllerState{
		reconciles: m.sum("controller_runtime_reconcile_total", map[string]string{"controller": name}),
		depth:      m.sum("workqueue_depth", map[string]string{"name": name}),
		active:     m.sum("controller_runtime_active_workers", map[string]string{"controller": name}),
	}
}

// memory is a process's resident memory from /proc/<pid>/status, in bytes.
type memory struct {
	hwm  int64 // VmHWM: peak resident set
	rss  int64 // VmRSS
	anon int64 // RssAnon: heap, stacks (the Go runtime's memory)
	file int64 // RssFile: mapped binary pages
}

func (m memory) String() string {
	return fmt.Sprintf("peak RSS %s (now %s: %s anonymous, %s file-backed)", mib(m.hwm), mib(m.rss), mib(m.anon), mib(m.file))
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func procMemory(pid int) (memory, error) {
	var m memory
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmHWM:":
			m.hwm = kb * 1024
		case "VmRSS:":
			m.rss = kb * 1024
		case "RssAnon:":
			m.anon = kb * 1024
		case "RssFile:":
			m.file = kb * 1024
		}
	}
	if m.hwm == 0 {
		return m, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
	}
	return m, nil
}

// procCPU is the user+system CPU time a process has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	// Fields after the command, which is in parentheses and may hold spaces.
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// has tells whether the scrape holds any sample of name.
func (m metrics) has(name string) bool {
	for _, s := range m {
		if s.name == name {
			return true
		}
	}
	return false
}
