// Package utils runs the operator the way users do, for the demo, the e2e
// tests and the benchmarks: a local kube-apiserver and etcd (the envtest
// binaries), a kubeconfig, kubectl, and the operator binary as its own process.
package utils

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControlPlane is a running kube-apiserver and etcd with the CRD installed.
type ControlPlane struct {
	Env        *envtest.Environment
	Config     *rest.Config
	Kubeconfig string // path of an admin kubeconfig
	KubectlBin string
	dir        string
}

// ProjectRoot finds the directory holding go.mod, from the working directory up.
func ProjectRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "PROJECT")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no project root (go.mod and PROJECT) above the working directory")
		}
		dir = parent
	}
}

// AssetsDir is KUBEBUILDER_ASSETS, or the binaries `make envtest` linked into bin/k8s.
func AssetsDir(root string) string {
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		return d
	}
	matches, _ := filepath.Glob(filepath.Join(root, "bin", "k8s", "*"))
	if len(matches) > 0 {
		return matches[0]
	}
	return ""
}

// StartControlPlane starts kube-apiserver and etcd and installs the CRD
// (config/crd/bases). Each edit may change the environment before it starts
// (more CRDs, API server flags). test/harness is its Ginkgo face.
func StartControlPlane(root string, edits ...func(*envtest.Environment)) (*ControlPlane, error) {
	assets := AssetsDir(root)
	if assets == "" {
		return nil, fmt.Errorf("no envtest binaries: run `make envtest` or set KUBEBUILDER_ASSETS")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		BinaryAssetsDirectory: assets,
	}
	for _, edit := range edits {
		edit(env)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", assets, err)
	}
	cp := &ControlPlane{Env: env, Config: cfg}
	if err := cp.writeKubeconfig(); err != nil {
		_ = cp.Stop()
		return nil, err
	}
	cp.KubectlBin = filepath.Join(assets, "kubectl")
	if _, err := os.Stat(cp.KubectlBin); err != nil {
		if cp.KubectlBin, err = exec.LookPath("kubectl"); err != nil {
			_ = cp.Stop()
			return nil, fmt.Errorf("no kubectl in %s or on PATH", assets)
		}
	}
	return cp, nil
}

func (cp *ControlPlane) writeKubeconfig() error {
	user, err := cp.Env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating an admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	if cp.dir, err = os.MkdirTemp("", "meshsettings-cp-"); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.dir, "kubeconfig")
	return os.WriteFile(cp.Kubeconfig, kc, 0o600)
}

// Stop stops the control plane and removes the kubeconfig.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	if cp.dir != "" {
		_ = os.RemoveAll(cp.dir)
	}
	return err
}

// Kubectl runs kubectl against the control plane and returns its stdout;
// the error carries stderr.
func (cp *ControlPlane) Kubectl(args ...string) (string, error) {
	return cp.KubectlIn("", args...)
}

// KubectlIn is Kubectl with stdin.
func (cp *ControlPlane) KubectlIn(stdin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cp.KubectlBin, append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// BuildOperator builds the operator binary from main.go into out.
func BuildOperator(root, out string) error {
	cmd := exec.Command("go", "build", "-o", out, ".")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w: %s", err, b)
	}
	return nil
}

// Operator is the operator binary running as its own process.
type Operator struct {
	cmd  *exec.Cmd
	Log  string
	done chan struct{} // closed when the process has ended
}

// StartOperator runs the binary against the control plane; its output goes to logPath.
func (cp *ControlPlane) StartOperator(binary, logPath string, args ...string) (*Operator, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cp.Kubeconfig)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group, so a Ctrl-C of the demo reaches it only through Stop.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, err
	}
	op := &Operator{cmd: cmd, Log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logFile.Close(); close(op.done) }()
	return op, nil
}

// Stop sends SIGTERM, waits up to 10s, then kills. Stopping an ended
// process is a no-op.
func (op *Operator) Stop() {
	if op == nil || op.Exited() {
		return
	}
	_ = op.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-op.done:
	case <-time.After(10 * time.Second):
		_ = op.cmd.Process.Kill()
		<-op.done
	}
}

// Kill stops the process at once, like a crash.
func (op *Operator) Kill() {
	_ = op.cmd.Process.Kill()
	<-op.done
}

// Pid is the process id.
func (op *Operator) Pid() int { return op.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (op *Operator) Exited() bool {
	select {
	case <-op.done:
		return true
	default:
		return false
	}
}

// Logs returns what the process printed so far.
func (op *Operator) Logs() string {
	b, _ := os.ReadFile(op.Log)
	return string(b)
}
