// Command scale measures capwatch beside a client-go Pod informer on a real API server holding
// production-shaped Pods owned by ReplicaSets (package scale, issue 11): it starts etcd and
// kube-apiserver (no kube-controller-manager, so the ReplicaSets stay as made), grows the
// cluster through the sizes given and prints one table with a column per size and the largest
// size against DESIGN §7's targets. It exits 1 when a run fails or a restart writes anything.
//
//	go build -o /tmp/scale ./cmd/scale && /tmp/scale -capwatch ../../build/controller/capwatch   (CAPWATCH_E2E_ASSETS set)
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"capwatch.io/test/e2e/controlplane"
	"capwatch.io/test/e2e/scale"
)

func main() {
	scale.MaybeRunPeer()
	code, err := run()
	if err != nil {
		fmt.Fprintf(os.Stderr, "scale: %v\n", err)
	}
	os.Exit(code)
}

func run() (int, error) {
	var (
		capwatch = flag.String("capwatch", "", "the capwatch binary (required)")
		assets   = flag.String("assets", "", "directory with the control-plane binaries (default: $"+controlplane.AssetsEnv+")")
		crds     = flag.String("crds", "../../crds", "the CRD manifests to install")
		sizes    = flag.String("sizes", "10000,50000,100000", "Pod counts to measure, ascending, multiples of "+strconv.Itoa(scale.PodsPerNamespace))
		peers    = flag.String("peers", "full,strip", "client-go informer modes to measure at each size (full, strip; empty for none)")
		logDir   = flag.String("log-dir", "", "keep the components' and the controller's logs here")
		extra    = flag.String("controller-args", "--kube-api-qps 200 --kube-api-burst 400", "extra flags for capwatch controller, blank-separated")
		hold     = flag.String("hold", "", "make the largest size only, write an admin kubeconfig here and keep the cluster up until interrupted (for profiling)")
	)
	flag.Parse()
	if *capwatch == "" {
		flag.Usage()
		return 2, fmt.Errorf("-capwatch is required")
	}
	var want []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 2, fmt.Errorf("-sizes: %q is not a number", s)
		}
		want = append(want, n)
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

	fmt.Fprintln(os.Stderr, "scale: starting etcd and kube-apiserver ...")
	cp, err := controlplane.Start(ctx, controlplane.Options{
		AssetsDir: *assets, StartTimeout: 3 * time.Minute, CRDDirs: []string{crdDir},
		LogDir: *logDir, SkipControllerManager: true,
	})
	if err != nil {
		return 1, err
	}
	defer func() {
		if err := cp.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "scale: stopping the control plane: %v\n", err)
		}
	}()
	fmt.Fprintf(os.Stderr, "scale: kube-apiserver %s at %s\n", cp.Version.GitVersion, cp.Config.Host)
	cfg := scale.Config{
		Admin: cp.Config, Capwatch: bin, Sizes: want, Peers: strings.FieldsFunc(*peers, func(r rune) bool { return r == ',' }),
		ControllerArgs: strings.Fields(*extra), Log: os.Stderr,
	}
	if *logDir != "" {
		f, err := os.Create(filepath.Join(*logDir, "capwatch.log"))
		if err != nil {
			return 1, err
		}
		defer f.Close()
		cfg.ControllerLog = f
	}
	if *hold != "" {
		cfg.PopulateOnly = true
		if _, err := scale.Run(ctx, cfg); err != nil {
			return 1, err
		}
		if err := cp.WriteKubeconfig(*hold); err != nil {
			return 1, err
		}
		fmt.Fprintf(os.Stderr, "scale: cluster of %d Pods up; kubeconfig %s; interrupt to stop\n", want[len(want)-1], *hold)
		<-ctx.Done()
		return 0, nil
	}
	figures, err := scale.Run(ctx, cfg)
	if len(figures) > 0 {
		fmt.Print(scale.Table(figures))
	}
	if err != nil {
		return 1, err
	}
	for _, f := range figures {
		if f.RestartWrites != 0 {
			fmt.Printf("BROKEN: the restart at %d Pods wrote %.0f reports\n", f.Pods, f.RestartWrites)
			return 1, nil
		}
	}
	return 0, nil
}
