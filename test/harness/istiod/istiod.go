// Package istiod runs a real istiod (pilot-discovery, built by hack/istiod.sh)
// as a plain process against an API server such as envtest's, and reads what
// it runs: /debug/mesh (the effective MeshConfig), /debug/registryz (the
// Services it sees) and /ready.
//
// Every port is chosen by the kernel (":0") and read back from istiod's log;
// the process gets a clean environment (only what Options.Env says, plus the
// few variables an out-of-cluster istiod needs) and an empty working
// directory, because a file at --meshConfig would win over the ConfigMap.
// Stop ends it by PID. Restart starts it again with another environment, the
// way a rollout of the istiod Deployment replaces the pod: istiod reads its
// environment at start only.
//
// The package uses the standard library, client-go and istio.io/api (already
// in the root module), never istio.io/istio, so any suite of the repository
// can use it.
package istiod

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options says how to run istiod.
type Options struct {
	// Binary is the pilot-discovery executable (see Binary()).
	Binary string
	// Kubeconfig is the path of a kubeconfig for the API server.
	Kubeconfig string
	// Namespace is istiod's own namespace (POD_NAMESPACE), where it reads the
	// mesh ConfigMap. Default istio-system.
	Namespace string
	// Revision is istiod's revision (REVISION): it reads ConfigMap "istio"
	// for "" or "default", "istio-<revision>" otherwise.
	Revision string
	// Env is extra environment, "NAME=value", applied after the defaults
	// (so it can override CLUSTER_ID or PILOT_CERT_PROVIDER), typically the
	// istiod Deployment's resolved env (see ContainerEnv).
	Env []string
	// LogPath receives istiod's output; default a file in its working directory.
	LogPath string
	// ReadyTimeout bounds the wait for /ready. Default 60s.
	ReadyTimeout time.Duration
}

// Istiod is a running pilot-discovery.
type Istiod struct {
	opts Options
	dir  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *logBuffer

	// HTTPAddr serves /ready and /debug/*; GRPCAddr is the plaintext xDS
	// port a sidecar (an ADS client) connects to; ControlZAddr serves /envj/.
	HTTPAddr, GRPCAddr, ControlZAddr string
	// ReadyAfter is how long the last start took until /ready answered 200.
	ReadyAfter time.Duration
}

// Binary returns the pilot-discovery to run: $ISTIOD_BINARY, or the path
// hack/istiod.sh prints (it builds and caches istiod on first use, which
// takes minutes). root is the repository root.
func Binary(root string) (string, error) {
	if b := os.Getenv("ISTIOD_BINARY"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", fmt.Errorf("ISTIOD_BINARY: %w", err)
		}
		return b, nil
	}
	cmd := exec.Command(filepath.Join(root, "hack", "istiod.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("hack/istiod.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start runs istiod and waits until /ready answers 200.
func Start(ctx context.Context, opts Options) (*Istiod, error) {
	if opts.Binary == "" || opts.Kubeconfig == "" {
		return nil, errors.New("istiod: Options.Binary and Options.Kubeconfig are required")
	}
	if opts.Namespace == "" {
		opts.Namespace = "istio-system"
	}
	if opts.Revision == "" {
		opts.Revision = "default"
	}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = 60 * time.Second
	}
	dir, err := os.MkdirTemp("", "istiod-")
	if err != nil {
		return nil, err
	}
	i := &Istiod{opts: opts, dir: dir}
	if err := i.start(ctx); err != nil {
		_ = i.Stop()
		return nil, err
	}
	return i, nil
}

// Restart stops istiod and starts it again with env as Options.Env, as a
// rollout of the Deployment would. A nil env keeps the current one; an empty
// (non-nil) env clears it.
func (i *Istiod) Restart(ctx context.Context, env []string) error {
	if err := i.stop(); err != nil {
		return err
	}
	if env != nil {
		i.opts.Env = env
	}
	return i.start(ctx)
}

var (
	httpLine     = regexp.MustCompile(`starting HTTP service at (\S+)`)
	grpcLine     = regexp.MustCompile(`starting gRPC discovery service at (\S+)`)
	controlzLine = regexp.MustCompile(`ControlZ available at (\S+)`)
)

func (i *Istiod) start(ctx context.Context) error {
	i.mu.Lock()
	defer i.mu.Unlock()
	logPath := i.opts.LogPath
	if logPath == "" {
		logPath = filepath.Join(i.dir, "..", filepath.Base(i.dir)+".log")
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	i.log = &logBuffer{file: f}
	absent := filepath.Join(i.dir, "absent")
	cmd := exec.Command(i.opts.Binary, "discovery",
		"--kubeconfig="+i.opts.Kubeconfig,
		// Files that do not exist: istiod then reads the mesh ConfigMap.
		"--meshConfig="+filepath.Join(absent, "mesh"),
		"--networksConfig="+filepath.Join(absent, "meshNetworks"),
		"--httpAddr=127.0.0.1:0", "--grpcAddr=127.0.0.1:0", "--secureGRPCAddr=127.0.0.1:0",
		"--monitoringAddr=127.0.0.1:0", "--httpsAddr=127.0.0.1:0", "--ctrlz_port=0",
		"--shutdownDuration=1s")
	cmd.Dir = i.dir
	cmd.Env = append([]string{
		"PATH=/usr/bin:/bin",
		"HOME=" + i.dir,
		"POD_NAMESPACE=" + i.opts.Namespace,
		"POD_NAME=istiod-local",
		"REVISION=" + i.opts.Revision,
		"PILOT_CERT_PROVIDER=istiod",
		"CLUSTER_ID=Kubernetes",
	}, i.opts.Env...)
	cmd.Stdout = i.log
	cmd.Stderr = i.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("istiod: %w", err)
	}
	i.cmd = cmd
	done := make(chan struct{})
	i.done = done
	go func() { _ = cmd.Wait(); _ = f.Close(); close(done) }()

	deadline := time.Now().Add(i.opts.ReadyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("istiod exited during start (%v); log:\n%s", cmd.ProcessState, i.log.tail(4000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("istiod not ready within %s; log:\n%s", i.opts.ReadyTimeout, i.log.tail(4000))
		}
		text := i.log.String()
		i.HTTPAddr = submatch(httpLine, text)
		i.GRPCAddr = submatch(grpcLine, text)
		i.ControlZAddr = submatch(controlzLine, text)
		if i.HTTPAddr != "" && i.GRPCAddr != "" {
			if code, _, err := i.get(ctx, "/ready"); err == nil && code == http.StatusOK {
				i.ReadyAfter = time.Since(begin)
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func submatch(re *regexp.Regexp, text string) string {
	m := re.FindAllStringSubmatch(text, -1)
	if m == nil {
		return ""
	}
	// The last start's ports (the log of a restart is appended).
	return strings.TrimRight(m[len(m)-1][1], ",\"")
}

// Stop ends istiod (SIGTERM, then SIGKILL after 10s) and removes its
// working directory. Safe to call twice.
func (i *Istiod) Stop() error {
	err := i.stop()
	if i.dir != "" {
		_ = os.RemoveAll(i.dir)
	}
	return err
}

func (i *Istiod) stop() error {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil {
		return nil
	}
	cmd, done := i.cmd, i.done
	i.cmd = nil
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("istiod (pid %d) ignored SIGTERM for 10s and was killed", cmd.Process.Pid)
	}
	return nil
}

// Pid is the process id of the running istiod, 0 when stopped.
func (i *Istiod) Pid() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cmd == nil {
		return 0
	}
	return i.cmd.Process.Pid
}

// Log is everything istiod wrote since its last start.
func (i *Istiod) Log() string { return i.log.String() }

// LogCount counts the lines of the log since the last start containing s,
// e.g. "invalid mesh config, using last known state".
func (i *Istiod) LogCount(s string) int { return strings.Count(i.log.String(), s) }

// RejectedMessage is what istiod logs when it drops a whole mesh document.
const RejectedMessage = "invalid mesh config, using last known state"

func (i *Istiod) get(ctx context.Context, path string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+i.HTTPAddr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Get returns the body of a GET on istiod's HTTP port (debug handlers:
// /debug/list names them all); a status other than 200 is an error.
func (i *Istiod) Get(ctx context.Context, path string) ([]byte, error) {
	code, body, err := i.get(ctx, path)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", path, code, bytes.TrimSpace(body))
	}
	return body, nil
}

// Ready reports whether /ready answers 200.
func (i *Istiod) Ready(ctx context.Context) bool {
	code, _, err := i.get(ctx, "/ready")
	return err == nil && code == http.StatusOK
}

// MeshJSON is /debug/mesh: the MeshConfig istiod runs, as protojson (zero
// values omitted, durations as strings such as "2s").
func (i *Istiod) MeshJSON(ctx context.Context) ([]byte, error) {
	return i.Get(ctx, "/debug/mesh")
}

// ProcessEnv is istiod's raw process environment as ControlZ reports it
// (/envj/), name to value.
func (i *Istiod) ProcessEnv(ctx context.Context) (map[string]string, error) {
	if i.ControlZAddr == "" {
		return nil, errors.New("istiod: ControlZ address not found in the log")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+i.ControlZAddr+"/envj/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var vars []struct{ Name, Value string }
	if err := decodeJSON(resp.Body, &vars); err != nil {
		return nil, fmt.Errorf("ControlZ /envj/: %w", err)
	}
	env := make(map[string]string, len(vars))
	for _, v := range vars {
		env[v.Name] = v.Value
	}
	return env, nil
}

// logBuffer keeps the log in memory and copies it to a file.
type logBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	file *os.File
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	return l.file.Write(p)
}

func (l *logBuffer) String() string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logBuffer) tail(n int) string {
	s := l.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// Lines returns the log lines containing s, in order.
func (i *Istiod) Lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(i.log.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			out = append(out, sc.Text())
		}
	}
	return out
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
