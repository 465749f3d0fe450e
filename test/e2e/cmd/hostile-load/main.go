// Command hostile-load starts a real control plane (etcd and kube-apiserver; bare Pods need no
// kube-controller-manager), fills it with namespaces whose Pods add all 41 capabilities in
// every container, and runs `capwatch controller` through a report write storm while every
// write is answered with 429 (package hostileload). It prints a table of figures and exits 1
// when a promise is broken: memory over the chart's limit, a failed scrape of /metrics, no
// convergence after the window, the controller dying.
//
//	go run ./cmd/hostile-load -capwatch ../../build/controller/capwatch      (CAPWATCH_E2E_ASSETS set)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"capwatch.io/test/e2e/controlplane"
	"capwatch.io/test/e2e/hostileload"
)

func main() {
	code, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostile-load: %v\n", err)
	}
	os.Exit(code)
}

func run() (int, error) {
	var (
		capwatch   = flag.String("capwatch", "", "the capwatch binary (required)")
		assets     = flag.String("assets", "", "directory with the control-plane binaries (default: $"+controlplane.AssetsEnv+")")
		crds       = flag.String("crds", "../../crds", "the CRD manifests to install")
		namespaces = flag.Int("namespaces", 1000, "namespaces")
		pods       = flag.Int("pods-per-namespace", 1, "bare Pods per namespace")
		containers = flag.Int("containers-per-namespace", 100, "containers per namespace, spread over its Pods")
		window     = flag.Duration("refuse-writes-for", 60*time.Second, "how long every write is answered with 429")
		retryAfter = flag.Int("retry-after", 1, "the Retry-After of the 429 answers, in seconds")
		limit      = flag.Int64("memory-limit-mib", hostileload.ChartMemoryLimit>>20, "the memory promise (the chart's limit)")
		converge   = flag.Duration("converge-within", 10*time.Minute, "bound on the first reports and on the convergence after the window")
		logDir     = flag.String("log-dir", "", "keep the components' and the controller's logs here")
		extra      = flag.String("controller-args", "", "extra flags for capwatch controller, blank-separated")
	)
	flag.Parse()
	if *capwatch == "" {
		flag.Usage()
		return 2, fmt.Errorf("-capwatch is required")
	}
	bin, err := filepath.Abs(*capwatch)
	if err != nil {
		return 2, err
	}
	crdDir, err := filepath.Abs(*crds)
	if err != nil {
		return 2, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintln(os.Stderr, "hostile-load: starting etcd and kube-apiserver ...")
	cp, err := controlplane.Start(ctx, controlplane.Options{
		AssetsDir: *assets, StartTimeout: 3 * time.Minute, CRDDirs: []string{crdDir},
		LogDir: *logDir, SkipControllerManager: true,
	})
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "hostile-load: stopping the control plane: %v\n", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "hostile-load: kube-apiserver %s at %s\n", cp.Version.GitVersion, cp.Config.Host)

	cfg := hostileload.Config{
		Admin: cp.Config, Capwatch: bin,
		Namespaces: *namespaces, PodsPerNamespace: *pods, ContainersPerNamespace: *containers,
		RefuseWritesFor: *window, RetryAfter: *retryAfter, MemoryLimit: *limit << 20,
		ConvergeWithin: *converge, ControllerArgs: strings.Fields(*extra), Log: os.Stderr,
	}
	if *logDir != "" {
		f, err := os.Create(filepath.Join(*logDir, "capwatch.log"))
		if err != nil {
			return 1, err
		}
		defer f.Close()
		cfg.ControllerLog = f
	}
	figures, err := hostileload.Run(ctx, cfg)
	fmt.Print(figures.Table())
	if err != nil {
		return 1, err
	}
	if broken := figures.Broken(); len(broken) > 0 {
		for _, b := range broken {
			fmt.Printf("BROKEN: %s\n", b)
		}
		return 1, nil
	}
	fmt.Println("hostile-load: every promise kept")
	return 0, nil
}
