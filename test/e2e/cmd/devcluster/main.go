// Command devcluster starts the capwatch development control plane (etcd, kube-apiserver and
// kube-controller-manager, no scheduler or kubelet), writes an admin kubeconfig, and stays up
// until SIGINT or SIGTERM.
//
// The kubeconfig file appears only once the API server is ready and kube-controller-manager
// is healthy, and it is written atomically, so scripts can wait for the file to exist.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"capwatch.io/test/e2e/controlplane"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "devcluster: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		kubeconfigOut = flag.String("kubeconfig-out", "", "where to write the admin kubeconfig "+
			"(default: <cache>/devcluster/kubeconfig)")
		assets = flag.String("assets", "", "directory with the control-plane binaries "+
			"(default: $"+controlplane.AssetsEnv+")")
		crds         = flag.String("crds", "", "directory of CRD manifests to install once the API server is up")
		logDir       = flag.String("log-dir", "", "directory for the components' logs (default: <cache>/devcluster/logs)")
		startTimeout = flag.Duration("start-timeout", 3*time.Minute, "how long each component may take to start")
	)
	flag.Parse()

	cache := os.Getenv("CAPWATCH_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		cache = filepath.Join(home, ".cache", "capwatch")
	}
	if *kubeconfigOut == "" {
		*kubeconfigOut = filepath.Join(cache, "devcluster", "kubeconfig")
	}
	if *logDir == "" {
		*logDir = filepath.Join(cache, "devcluster", "logs")
	}
	out, err := filepath.Abs(*kubeconfigOut)
	if err != nil {
		return err
	}
	// A kubeconfig left by an earlier run would tell a waiting script we are ready.
	if err := os.Remove(out); err != nil && !os.IsNotExist(err) {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := controlplane.Options{AssetsDir: *assets, StartTimeout: *startTimeout, LogDir: *logDir}
	if *crds != "" {
		opts.CRDDirs = []string{*crds}
	}
	fmt.Fprintln(os.Stderr, "devcluster: starting etcd, kube-apiserver and kube-controller-manager ...")
	started := time.Now()
	cp, err := controlplane.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "devcluster: stopping ...")
		_ = os.Remove(out)
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "devcluster: stopping: %v\n", err)
		}
		fmt.Fprintln(os.Stderr, "devcluster: stopped")
	}()

	if err := cp.WriteKubeconfig(out); err != nil {
		return err
	}
	fmt.Printf("devcluster: kube-apiserver %s at %s is ready (started in %s)\n",
		cp.Version.GitVersion, cp.Config.Host, time.Since(started).Round(time.Second))
	fmt.Printf("devcluster: controllers: kube-controller-manager %v\n", controlplane.Controllers)
	fmt.Printf("devcluster: component logs in %s\n", cp.LogDir)
	fmt.Printf("devcluster: kubeconfig written to %s\n", out)
	fmt.Printf("devcluster: use it with:\n")
	fmt.Printf("  export KUBECONFIG=%s\n", out)
	fmt.Printf("  export PATH=%s:$PATH   # kubectl and helm built for this cluster\n", cp.AssetsDir)
	fmt.Printf("  kubectl get ns\n")
	fmt.Printf("devcluster: no scheduler or kubelet: Pods stay Pending. Ctrl-C (SIGINT/SIGTERM) stops it.\n")

	select {
	case <-ctx.Done():
		return nil
	case <-cp.Exited():
		return fmt.Errorf("kube-controller-manager exited; see %s/kube-controller-manager.log", cp.LogDir)
	}
}
