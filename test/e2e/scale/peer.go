package scale

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"capwatch.io/test/e2e/procstat"
)

// The peer is a client-go Pod informer in a process of its own, so that its memory and CPU are
// measured as capwatch's are. The harness starts its own executable with PeerEnv set; the
// program (cmd/scale, or the e2e test binary) calls MaybeRunPeer first thing in main.
const (
	PeerEnv           = "CAPWATCH_SCALE_PEER"            // "full" or "strip"
	PeerKubeconfigEnv = "CAPWATCH_SCALE_PEER_KUBECONFIG" // the API server to list
)

// MaybeRunPeer runs the peer and exits when PeerEnv is set, and returns otherwise.
func MaybeRunPeer() {
	mode := os.Getenv(PeerEnv)
	if mode == "" {
		return
	}
	if err := runPeer(mode, os.Getenv(PeerKubeconfigEnv)); err != nil {
		fmt.Fprintf(os.Stderr, "scale peer: %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// runPeer syncs a Pod informer as Go controllers do (SharedInformerFactory, no resync), prints
// "synced N" once it has, then "collected" after a full garbage collection, and waits for its
// standard input to close.
func runPeer(mode, kubeconfig string) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 1000, 1000
	clients, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var opts []informers.SharedInformerOption
	if mode == "strip" {
		opts = append(opts, informers.WithTransform(func(obj any) (any, error) {
			if m, err := meta.Accessor(obj); err == nil {
				m.SetManagedFields(nil)
			}
			return obj, nil
		}))
	}
	factory := informers.NewSharedInformerFactoryWithOptions(clients, 0, opts...)
	pods := factory.Core().V1().Pods().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, pods.HasSynced) {
		return fmt.Errorf("the Pod informer did not sync")
	}
	fmt.Printf("synced %d\n", len(pods.GetStore().ListKeys()))
	runtime.GC()
	debug.FreeOSMemory()
	fmt.Println("collected")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	runtime.KeepAlive(pods)
	return nil
}

// PeerFigures are one peer run's.
type PeerFigures struct {
	Mode       string
	Pods       int
	SyncWall   time.Duration
	SyncCPU    float64 // seconds
	SyncRSS    int64
	HWM        int64
	RSSAfterGC int64
}

// measurePeer runs the peer in mode against kubeconfig and samples it at each line it prints.
func measurePeer(ctx context.Context, mode, kubeconfig string) (PeerFigures, error) {
	f := PeerFigures{Mode: mode}
	self, err := os.Executable()
	if err != nil {
		return f, err
	}
	cmd := exec.CommandContext(ctx, self)
	cmd.Env = append(os.Environ(), PeerEnv+"="+mode, PeerKubeconfigEnv+"="+kubeconfig)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return f, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return f, err
	}
	started := time.Now()
	if err := cmd.Start(); err != nil {
		return f, err
	}
	pid := cmd.Process.Pid
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		s, serr := procstat.Read(pid)
		switch {
		case strings.HasPrefix(line, "synced "):
			f.SyncWall = time.Since(started)
			fmt.Sscan(strings.TrimPrefix(line, "synced "), &f.Pods)
			f.SyncCPU, f.SyncRSS = s.CPUSeconds, s.RSS
		case line == "collected":
			f.RSSAfterGC, f.HWM = s.RSS, s.HWM
		}
		if serr != nil {
			err = serr
		}
		if line == "collected" {
			break
		}
	}
	_ = stdin.Close()
	if werr := cmd.Wait(); werr != nil && err == nil {
		err = fmt.Errorf("the %s peer: %w", mode, werr)
	}
	if err == nil && f.SyncWall == 0 {
		err = fmt.Errorf("the %s peer exited before it synced", mode)
	}
	return f, err
}
