package controlplane

import (
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
	"strconv"
	"strings"
	"time"
)

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 15 s) and leaves etcd and
// kube-controller-manager running, so that a test can show how clients live through an API
// server outage. StartAPIServer brings it back with the same arguments, port, certificates and
// data; Stop stops whichever kube-apiserver is running.
func (cp *ControlPlane) StopAPIServer() error {
	if cp.apiserver != nil { // restarted by StartAPIServer before
		if err := cp.apiserver.stop(15 * time.Second); err != nil {
			return err
		}
		cp.apiserver = nil
		return nil
	}
	if cp.apiserverArgs != nil {
		return errors.New("kube-apiserver is already stopped")
	}
	// envtest started it as a child of this process and keeps its handle to itself: find it
	// by its path among our children, and remember its command line for StartAPIServer.
	path := cp.env.ControlPlane.APIServer.Path
	pid, args, err := childProcess(path)
	if err != nil {
		return err
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := proc.Signal(os.Interrupt); err != nil {
		return fmt.Errorf("stopping kube-apiserver (pid %d): %w", pid, err)
	}
	// envtest's own goroutine reaps it; wait until the pid is gone.
	deadline := time.Now().Add(15 * time.Second)
	for processAlive(pid) {
		if time.Now().After(deadline) {
			_ = proc.Kill()
			deadline = time.Now().Add(15 * time.Second)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cp.apiserverArgs = args
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer and waits for its /readyz.
func (cp *ControlPlane) StartAPIServer(ctx context.Context, timeout time.Duration) error {
	if cp.apiserverArgs == nil {
		return errors.New("kube-apiserver was not stopped by StopAPIServer")
	}
	log, err := os.OpenFile(filepath.Join(cp.LogDir, "kube-apiserver.log"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	cp.logFiles = append(cp.logFiles, log)
	fmt.Fprintf(log, "\n--- kube-apiserver started again by StartAPIServer at %s ---\n", time.Now().UTC().Format(time.RFC3339))
	cmd := exec.Command(cp.env.ControlPlane.APIServer.Path, cp.apiserverArgs...)
	cmd.Stdout, cmd.Stderr = log, log
	started := time.Now()
	p, err := startProcess(cmd)
	if err != nil {
		return fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	cp.apiserverStarts = append(cp.apiserverStarts, started)
	cp.apiserver = p
	cp.apiserverArgs = nil
	url := strings.TrimSuffix(cp.Config.Host, "/") + "/readyz"
	if err := p.waitHealthy(ctx, url, timeout); err != nil {
		return cp.withLogs(fmt.Errorf("kube-apiserver did not become ready at %s: %w", url, err), "kube-apiserver.log")
	}
	return nil
}

// childProcess finds this process's child running path and returns its pid and arguments.
func childProcess(path string) (int, []string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, nil, err
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) < 2 || fields[0] == "Z" {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid != self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(argv) > 0 && argv[0] == path {
			return pid, argv[1:], nil
		}
	}
	return 0, nil, fmt.Errorf("no child process %s of pid %d", path, self)
}

func processAlive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// CompactEtcd compacts etcd's history up to its current revision, through etcd's JSON gateway
// (what `etcdctl compact` does), and returns that revision. A watch that resumes from an older
// resourceVersion then gets 410 Gone and its client must list again.
func (cp *ControlPlane) CompactEtcd(ctx context.Context) (int64, error) {
	u := cp.env.ControlPlane.Etcd.URL
	if u == nil {
		return 0, errors.New("etcd's URL is unknown")
	}
	base := strings.TrimSuffix(u.String(), "/")
	var status struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// A range read of any key answers with the current revision in its header.
	if err := etcdPost(ctx, base+"/v3/kv/range", `{"key":"AA=="}`, &status); err != nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(status.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("etcd revision %q: %w", status.Header.Revision, err)
	}
	body := fmt.Sprintf(`{"revision":%d,"physical":true}`, rev)
	if err := etcdPost(ctx, base+"/v3/kv/compaction", body, nil); err != nil {
		return 0, err
	}
	return rev, nil
}

func etcdPost(ctx context.Context, url, body string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// APIServerRestarts returns when StartAPIServer started kube-apiserver again, in order.
func (cp *ControlPlane) APIServerRestarts() []time.Time {
	return append([]time.Time(nil), cp.apiserverStarts...)
}
