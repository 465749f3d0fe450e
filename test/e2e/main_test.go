// Package e2e runs capwatch against a real control plane: etcd, kube-apiserver and
// kube-controller-manager built from their Go modules (see build-control-plane.sh) and started
// by the controlplane package. Objects are created and checked with client-go; capwatch runs as
// a subprocess, the binary named by CAPWATCH_BIN.
package e2e

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"capwatch.io/test/e2e/controlplane"
)

// Shared by every test; set up once in TestMain.
var (
	cluster     *controlplane.ControlPlane
	clientset   *kubernetes.Clientset
	capwatchBin string
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	bin := os.Getenv("CAPWATCH_BIN")
	if bin == "" {
		fmt.Fprintln(os.Stderr, "e2e: CAPWATCH_BIN is not set: point it at the capwatch binary "+
			"(test/e2e/run.sh build/controller/capwatch does this)")
		return 1
	}
	abs, err := filepath.Abs(bin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: CAPWATCH_BIN=%s: %v\n", bin, err)
		return 1
	}
	if st, err := os.Stat(abs); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		fmt.Fprintf(os.Stderr, "e2e: CAPWATCH_BIN=%s is not an executable file (%v)\n", bin, err)
		return 1
	}
	capwatchBin = abs

	crds, err := crdDirs()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}

	ctx := context.Background()
	started := time.Now()
	cluster, err = controlplane.Start(ctx, controlplane.Options{
		StartTimeout: 3 * time.Minute,
		CRDDirs:      crds,
		LogDir:       os.Getenv("CAPWATCH_E2E_LOG_DIR"),
		AuditPolicy:  auditPolicy(),
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: starting the control plane: %v\n", err)
		return 1
	}
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			if err := cluster.Stop(); err != nil {
				fmt.Fprintf(os.Stderr, "e2e: stopping the control plane: %v\n", err)
			}
		})
	}
	defer stop()
	// envtest starts etcd and kube-apiserver in their own process groups, so Ctrl-C does not
	// reach them: stop them here rather than leave them running.
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-signals
		fmt.Fprintf(os.Stderr, "e2e: %v: stopping the control plane\n", sig)
		stop()
		os.Exit(1)
	}()
	v := cluster.Version
	fmt.Printf("e2e: control plane up in %s: kube-apiserver %s (%s, %s) at %s; kube-controller-manager running %v\n",
		time.Since(started).Round(time.Second), v.GitVersion, v.GoVersion, v.Platform,
		cluster.Config.Host, controlplane.Controllers)
	fmt.Printf("e2e: capwatch binary %s; installed CRDs from %v\n", capwatchBin, crds)

	cfg := rest.CopyConfig(cluster.Config)
	cfg.WarningHandlerWithContext = requestWarnings{}
	if clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	identityDir, err := os.MkdirTemp("", "capwatch-e2e-identity-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	defer os.RemoveAll(identityDir)
	if err := installControllerIdentity(ctx, identityDir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: the controller's identity: %v\n", err)
		return 1
	}
	fmt.Printf("e2e: capwatch controllers run as %s with the chart's RBAC\n", controllerUser)

	code := m.Run()
	// The audit log shows what the controller used only when every test ran.
	if run, skip := flag.Lookup("test.run").Value.String(), flag.Lookup("test.skip").Value.String(); run != "" || skip != "" {
		fmt.Printf("e2e: RBAC audit skipped: it compares the whole suite's requests with the chart, "+
			"and this run had -run %q -skip %q\n", run, skip)
	} else if !checkChartRBAC(os.Stdout) && code == 0 {
		code = 1
	}
	return code
}

// crdDirs returns the repository's crds/ folder when it holds any YAML manifest.
func crdDirs() ([]string, error) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "crds"))
	if err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(matches) == 0 {
		return nil, nil
	}
	return []string{dir}, nil
}
