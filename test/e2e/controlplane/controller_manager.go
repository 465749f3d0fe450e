package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// startControllerManager runs kube-controller-manager against the API server with an admin
// identity and waits for its /healthz.
func (cp *ControlPlane) startControllerManager(ctx context.Context, timeout time.Duration) error {
	// The controllers act with kube-controller-manager's own credentials
	// (--use-service-account-credentials=false), so it gets a system:masters identity rather
	// than the bootstrap RBAC role, which expects per-controller service accounts.
	user, err := cp.env.AddUser(envtest.User{
		Name:   "system:kube-controller-manager",
		Groups: []string{"system:masters"},
	}, nil)
	if err != nil {
		return fmt.Errorf("provisioning the kube-controller-manager user: %w", err)
	}
	kcmConfig, err := Kubeconfig(user.Config())
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(cp.workDir, "kube-controller-manager.kubeconfig")
	if err := writeFileAtomic(kubeconfig, kcmConfig, 0o600); err != nil {
		return err
	}
	cp.adminKC = filepath.Join(cp.workDir, "admin.kubeconfig")
	if err := cp.WriteKubeconfig(cp.adminKC); err != nil {
		return err
	}

	port, err := freePort()
	if err != nil {
		return err
	}
	certDir := filepath.Join(cp.workDir, "kube-controller-manager-certs")
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--controllers=" + strings.Join(Controllers, ","),
		"--use-service-account-credentials=false",
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + certDir,
		// Quick reactions keep the tests short: the defaults are tuned for big clusters.
		"--concurrent-deployment-syncs=5",
		"--concurrent-replicaset-syncs=5",
		"--concurrent-gc-syncs=20",
		"--namespace-sync-period=10s",
	}
	logFile, err := cp.openLog("kube-controller-manager.log")
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(cp.AssetsDir, "kube-controller-manager"), args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cp.kcm, err = startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting kube-controller-manager: %w", err)
	}
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	if err := cp.kcm.waitHealthy(ctx, url, timeout); err != nil {
		return fmt.Errorf("kube-controller-manager did not become healthy at %s: %w", url, err)
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a child process with its exit observed in the background.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // valid once exited is closed
}

func startProcess(cmd *exec.Cmd) (*process, error) {
	// Its own process group, so that a terminal's Ctrl-C reaches only us and we stop it in
	// order; and a parent death signal so it never outlives a crashed test binary.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *process) waitHealthy(ctx context.Context, url string, timeout time.Duration) error {
	// The serving certificate is self-signed by kube-controller-manager; only liveness matters.
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
	deadline := time.Now().Add(timeout)
	lastErr := fmt.Errorf("no answer yet")
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		resp, err := client.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		lastErr = fmt.Errorf("status %s", resp.Status)
	}
	return fmt.Errorf("timed out after %s: %w", timeout, lastErr)
}

// stop sends SIGTERM, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s; killed", filepath.Base(p.cmd.Path), grace)
	}
}
