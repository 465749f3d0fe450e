package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"capwatch.io/test/e2e/hostileload"
)

// TestHostileLoadSmoke is the hostile-load run (test/e2e/hostileload, issue 10 item 6) at a
// small size: 20 namespaces of one Pod with 100 containers, each adding all 41 capabilities;
// the policy changed and every report deleted while every write is answered with 429 for
// 10 s. capwatch runs as the chart's ServiceAccount behind the proxy. The controller stays inside the chart's 256 MiB, every scrape of /metrics succeeds,
// and every report is right again soon after the window. The full size is
// `go run ./cmd/hostile-load` (README.md).
func TestHostileLoadSmoke(t *testing.T) {
	waitForTerminatingNamespaces(t)
	// capwatch acts as the chart's ServiceAccount, as every controller of the suite does.
	identity, err := clientcmd.BuildConfigFromFlags("", controllerKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	cfg := hostileload.Config{
		Admin:                  cluster.Config,
		Controller:             identity,
		Capwatch:               capwatchBin,
		Namespaces:             20,
		PodsPerNamespace:       1,
		ContainersPerNamespace: 100,
		Prefix:                 "hostile-smoke",
		RefuseWritesFor:        10 * time.Second,
		ConvergeWithin:         60 * time.Second,
		ReadyWithin:            time.Minute,
		Log:                    testLogWriter{t},
		ControllerLog:          log,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if err := hostileload.Cleanup(context.Background(), cluster.Config, cfg); err != nil {
			t.Errorf("cleaning up: %v", err)
		}
	})
	figures, err := hostileload.Run(ctx, cfg)
	t.Logf("hostile-load smoke figures:\n%s", figures.Table())
	if err != nil {
		t.Errorf("the run: %v", err)
	}
	for _, b := range figures.Broken() {
		t.Errorf("promise broken: %s", b)
	}
	if figures.RefusedWrites == 0 {
		t.Errorf("the proxy refused no write: the storm did not reach the controller")
	}
	if t.Failed() {
		t.Logf("capwatch controller output:\n%s", head(log.String(), 20000))
	}
}

// testLogWriter sends progress lines to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
