// Package scale measures capwatch against a client-go Pod informer on one real API server
// holding N production-shaped Pods owned by ReplicaSets (issue 11, item 1): time to ready, CPU,
// resident memory, time until every workload has its report, writes on a restart, and the
// /metrics exposition. The cluster grows through the sizes asked for, so the growth is
// visible in one table; the targets of DESIGN §7 are printed beside the largest size.
//
// Run does the work; cmd/scale prints the table (the documented full-size run) and
// TestScaleSmoke runs the smallest size from the README's test command.
package scale

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"capwatch.io/test/e2e/controlplane"
	"capwatch.io/test/e2e/procstat"
)

var (
	reportsGVR  = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilityreports"}
	policiesGVR = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilitypolicies"}
)

// Config says what to measure.
type Config struct {
	Admin    *rest.Config // system:masters on a control plane without kube-controller-manager
	Capwatch string       // the capwatch binary
	Sizes    []int        // Pods, ascending; each a multiple of PodsPerNamespace
	Prefix   string       // of the namespaces
	// Peers are the client-go informer modes to run at each size: "full" (what Go controllers
	// cache) and "strip" (managedFields dropped in a transform).
	Peers          []string
	ControllerArgs []string      // extra flags for capwatch controller
	ReportsWithin  time.Duration // bound on every report existing, per size
	Log            io.Writer
	ControllerLog  io.Writer
	WorkDir        string
	// PopulateOnly makes the largest size's cluster and measures nothing (for profiling
	// against a cluster that stays up).
	PopulateOnly bool
}

// Figures are one size's.
type Figures struct {
	Pods, Workloads, Namespaces int
	PodBytes                    int64 // mean size of a Pod in the API server's JSON list
	Populate                    time.Duration
	Peers                       []PeerFigures

	Ready           time.Duration // from the controller's start to /readyz answering 200
	ReadyCPU        float64
	ReadyRSS        int64
	AllReports      time.Duration // until every workload's report exists
	AllReportsCPU   float64
	PeakHWM         int64
	SteadyRSS       int64
	ReportsCreated  float64
	Series          int
	ScrapeMedian    time.Duration
	ScrapeBytes     int
	Restart         time.Duration // to /readyz
	RestartCPU      float64
	RestartHWM      int64
	RestartWrites   float64 // report writes of any result after the restart
	RestartComplete time.Duration
}

// Run grows the cluster through cfg.Sizes and measures each size.
func Run(ctx context.Context, cfg Config) ([]*Figures, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "scale"
	}
	if cfg.ReportsWithin == 0 {
		cfg.ReportsWithin = 15 * time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.ControllerLog == nil {
		cfg.ControllerLog = io.Discard
	}
	for i, n := range cfg.Sizes {
		if n <= 0 || n%PodsPerNamespace != 0 || (i > 0 && n <= cfg.Sizes[i-1]) {
			return nil, fmt.Errorf("sizes must ascend and be multiples of %d Pods, got %v", PodsPerNamespace, cfg.Sizes)
		}
	}
	if cfg.WorkDir == "" {
		dir, err := os.MkdirTemp("", "capwatch-scale-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		cfg.WorkDir = dir
	}
	admin := rest.CopyConfig(cfg.Admin)
	admin.QPS, admin.Burst = 5000, 5000
	r := &run{cfg: cfg}
	var err error
	if r.clients, err = kubernetes.NewForConfig(admin); err != nil {
		return nil, err
	}
	if r.dyn, err = dynamic.NewForConfig(admin); err != nil {
		return nil, err
	}
	r.kubeconfig = filepath.Join(cfg.WorkDir, "admin.kubeconfig")
	kc, err := controlplane.Kubeconfig(cfg.Admin)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(r.kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	if err := r.applyPolicy(ctx); err != nil {
		return nil, fmt.Errorf("the policy: %w", err)
	}
	if cfg.PopulateOnly {
		return nil, r.populate(ctx, cfg.Sizes[len(cfg.Sizes)-1]/PodsPerNamespace)
	}
	var out []*Figures
	for _, n := range cfg.Sizes {
		f := &Figures{Pods: n, Namespaces: n / PodsPerNamespace, Workloads: n / PodsPerReplicaSet}
		out = append(out, f)
		if err := r.measure(ctx, f); err != nil {
			return out, fmt.Errorf("at %d Pods: %w", n, err)
		}
	}
	return out, nil
}

type run struct {
	cfg        Config
	clients    *kubernetes.Clientset
	dyn        dynamic.Interface
	kubeconfig string
	namespaces int // made so far
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(r.cfg.Log, "scale %s: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
}

func (r *run) measure(ctx context.Context, f *Figures) error {
	started := time.Now()
	if err := r.populate(ctx, f.Namespaces); err != nil {
		return err
	}
	f.Populate = time.Since(started)
	var err error
	if f.PodBytes, err = r.podBytes(ctx); err != nil {
		return err
	}
	r.logf("%d Pods in %d ReplicaSets in %d namespaces (made in %s), %d bytes a Pod as listed",
		f.Pods, f.Workloads, f.Namespaces, f.Populate.Round(time.Second), f.PodBytes)
	for _, mode := range r.cfg.Peers {
		p, err := measurePeer(ctx, mode, r.kubeconfig)
		if err != nil {
			return err
		}
		if p.Pods != f.Pods {
			return fmt.Errorf("the %s peer synced %d Pods, the cluster holds %d", mode, p.Pods, f.Pods)
		}
		r.logf("client-go informer (%s): synced in %s, %.1f s CPU, VmHWM %s, %s after GC", mode,
			p.SyncWall.Round(100*time.Millisecond), p.SyncCPU, procstat.MiB(p.HWM), procstat.MiB(p.RSSAfterGC))
		f.Peers = append(f.Peers, p)
	}
	if err := r.deleteReports(ctx); err != nil {
		return fmt.Errorf("clearing the reports of the last size: %w", err)
	}
	if err := r.firstStart(ctx, f); err != nil {
		return err
	}
	return r.restart(ctx, f)
}

// populate makes namespaces [r.namespaces, want), each with its ReplicaSets and their Pods.
func (r *run) populate(ctx context.Context, want int) error {
	type job struct{ ns, rs int }
	jobs := make(chan job)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := r.makeReplicaSet(ctx, namespaceName(r.cfg.Prefix, j.ns), j.rs); err != nil {
					fail(err)
				}
			}
		}()
	}
	for ns := r.namespaces; ns < want && ctx.Err() == nil; ns++ {
		name := namespaceName(r.cfg.Prefix, ns)
		_, err := r.clients.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			fail(err)
			break
		}
		for rs := 0; rs < ReplicaSetsPerNamespace; rs++ {
			jobs <- job{ns, rs}
		}
		if (ns+1)%10 == 0 {
			r.logf("%d/%d namespaces populated", ns+1, want)
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr == nil {
		r.namespaces = want
	}
	return firstErr
}

func (r *run) makeReplicaSet(ctx context.Context, ns string, rs int) error {
	opts := metav1.CreateOptions{FieldManager: "kube-controller-manager"}
	created, err := r.clients.AppsV1().ReplicaSets(ns).Create(ctx, replicaSet(ns, rs), opts)
	if apierrors.IsAlreadyExists(err) {
		created, err = r.clients.AppsV1().ReplicaSets(ns).Get(ctx, replicaSetName(rs), metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("ReplicaSet %s/%s: %w", ns, replicaSetName(rs), err)
	}
	for p := 0; p < PodsPerReplicaSet; p++ {
		_, err := r.clients.CoreV1().Pods(ns).Create(ctx, pod(ns, rs, p, types.UID(created.UID)), opts)
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("a Pod of %s/%s: %w", ns, created.Name, err)
		}
	}
	return nil
}

// podBytes is the mean size of a Pod in the first namespace's list, as the API server sends it.
func (r *run) podBytes(ctx context.Context) (int64, error) {
	raw, err := r.clients.CoreV1().RESTClient().Get().Namespace(namespaceName(r.cfg.Prefix, 0)).
		Resource("pods").SetHeader("Accept", "application/json").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &list); err != nil || len(list.Items) == 0 {
		return 0, fmt.Errorf("the Pod list of %s: %v (%d items)", namespaceName(r.cfg.Prefix, 0), err, len(list.Items))
	}
	var total int64
	for _, item := range list.Items {
		total += int64(len(item))
	}
	return total / int64(len(list.Items)), nil
}

// applyPolicy installs the guide's policy for the load's namespaces.
func (r *run) applyPolicy(ctx context.Context) error {
	policy := map[string]any{
		"apiVersion": "capwatch.io/v1alpha1",
		"kind":       "CapabilityPolicy",
		"metadata":   map[string]any{"name": r.cfg.Prefix + "-baseline"},
		"spec": map[string]any{
			"profile":                      "baseline",
			"match":                        map[string]any{"namespaces": []any{r.cfg.Prefix + "-*"}},
			"runtimeDefaults":              "containerd",
			"requireDropAll":               true,
			"allowedCapabilities":          []any{"NET_BIND_SERVICE"},
			"forbiddenCapabilities":        []any{"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE", "NET_ADMIN"},
			"disallowPrivileged":           true,
			"requireNoPrivilegeEscalation": true,
			"requireRunAsNonRoot":          true,
		},
	}
	raw, err := json.Marshal(policy)
	if err != nil {
		return err
	}
	_, err = r.dyn.Resource(policiesGVR).Patch(ctx, r.cfg.Prefix+"-baseline", types.ApplyPatchType, raw,
		metav1.PatchOptions{FieldManager: "capwatch-scale", Force: ptr(true)})
	return err
}

// reportCount asks for one report and reads how many remain: a count without a full list.
func (r *run) reportCount(ctx context.Context) (int, error) {
	list, err := r.dyn.Resource(reportsGVR).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	n := len(list.Items)
	if rest := list.GetRemainingItemCount(); rest != nil {
		n += int(*rest)
	}
	return n, nil
}

func (r *run) deleteReports(ctx context.Context) error {
	for ns := 0; ns < r.namespaces; ns++ {
		err := r.dyn.Resource(reportsGVR).Namespace(namespaceName(r.cfg.Prefix, ns)).
			DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		if err != nil {
			return err
		}
	}
	return waitFor(ctx, 2*time.Minute, 500*time.Millisecond, func() (bool, error) {
		n, err := r.reportCount(ctx)
		return n == 0, err
	})
}

// firstStart runs a controller over a cluster without reports until every workload has one.
func (r *run) firstStart(ctx context.Context, f *Figures) error {
	c, err := r.startController()
	if err != nil {
		return err
	}
	defer c.stop()
	if f.Ready, f.ReadyCPU, f.ReadyRSS, err = c.waitReady(ctx, r.cfg.ReportsWithin); err != nil {
		return err
	}
	r.logf("capwatch ready in %s, %.2f s CPU, VmRSS %s", f.Ready.Round(10*time.Millisecond), f.ReadyCPU, procstat.MiB(f.ReadyRSS))
	err = waitFor(ctx, r.cfg.ReportsWithin, 250*time.Millisecond, func() (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		n, err := r.reportCount(ctx)
		return n >= f.Workloads, err
	})
	if err != nil {
		return fmt.Errorf("waiting for %d reports: %w", f.Workloads, err)
	}
	f.AllReports = time.Since(c.started)
	s, _ := procstat.Read(c.pid())
	f.AllReportsCPU = s.CPUSeconds
	// Let the last reconciles and the grant ledger settle before the steady figures.
	time.Sleep(3 * time.Second)
	s, _ = procstat.Read(c.pid())
	f.SteadyRSS, f.PeakHWM = s.RSS, s.HWM
	counters := c.counters(ctx)
	f.ReportsCreated = counters["report_writes.created"]
	var times []time.Duration
	for i := 0; i < 5; i++ {
		began := time.Now()
		body, err := c.metrics(ctx)
		if err != nil {
			return err
		}
		times = append(times, time.Since(began))
		f.ScrapeBytes, f.Series = len(body), countSeries(body)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	f.ScrapeMedian = times[len(times)/2]
	r.logf("every report in %s (%.2f s CPU), VmHWM %s, VmRSS %s, %v reports created; /metrics %d series, %s",
		f.AllReports.Round(100*time.Millisecond), f.AllReportsCPU, procstat.MiB(f.PeakHWM), procstat.MiB(f.SteadyRSS),
		f.ReportsCreated, f.Series, f.ScrapeMedian.Round(time.Millisecond))
	return nil
}

// restart runs a second controller over the reports the first one wrote until it has
// reconciled every workload: it must write nothing.
func (r *run) restart(ctx context.Context, f *Figures) error {
	c, err := r.startController()
	if err != nil {
		return err
	}
	defer c.stop()
	var rss int64
	if f.Restart, f.RestartCPU, rss, err = c.waitReady(ctx, r.cfg.ReportsWithin); err != nil {
		return err
	}
	var counters map[string]float64
	err = waitFor(ctx, r.cfg.ReportsWithin, 250*time.Millisecond, func() (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		counters = c.counters(ctx)
		return counters["reconciles.done"] >= float64(f.Workloads), nil
	})
	if err != nil {
		return fmt.Errorf("the restart reconciling %d workloads: %w", f.Workloads, err)
	}
	f.RestartComplete = time.Since(c.started)
	time.Sleep(2 * time.Second) // writes a slow reconcile might still make
	counters = c.counters(ctx)
	for k, v := range counters {
		if strings.HasPrefix(k, "report_writes.") {
			f.RestartWrites += v
		}
	}
	s, _ := procstat.Read(c.pid())
	f.RestartHWM = s.HWM
	r.logf("restart ready in %s (%.2f s CPU, VmRSS %s), reconciled in %s, %v report writes, VmHWM %s",
		f.Restart.Round(10*time.Millisecond), f.RestartCPU, procstat.MiB(rss), f.RestartComplete.Round(100*time.Millisecond),
		f.RestartWrites, procstat.MiB(f.RestartHWM))
	return nil
}

type controller struct {
	cmd                   *exec.Cmd
	started               time.Time
	metricsURL, healthURL string
	exited                chan struct{}
	err                   error
}

func (r *run) startController() (*controller, error) {
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	health, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"controller", "--kubeconfig", r.kubeconfig, "--metrics-secure=false",
		"--metrics-bind-address", metrics, "--health-probe-bind-address", health}, r.cfg.ControllerArgs...)
	c := &controller{
		cmd:        exec.Command(r.cfg.Capwatch, args...),
		metricsURL: "http://" + metrics + "/metrics",
		healthURL:  "http://" + health,
		exited:     make(chan struct{}),
	}
	c.cmd.Stdout, c.cmd.Stderr = r.cfg.ControllerLog, r.cfg.ControllerLog
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c.started = time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

func (c *controller) pid() int { return c.cmd.Process.Pid }

func (c *controller) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("capwatch controller exited: %v", c.err)
	default:
		return nil
	}
}

// waitReady polls /readyz every 20 ms and samples the process when it first answers 200.
func (c *controller) waitReady(ctx context.Context, within time.Duration) (time.Duration, float64, int64, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	var took time.Duration
	var s procstat.Sample
	err := waitFor(ctx, within, 20*time.Millisecond, func() (bool, error) {
		if err := c.alive(); err != nil {
			return false, err
		}
		resp, err := client.Get(c.healthURL + "/readyz")
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, nil
		}
		took = time.Since(c.started)
		s, err = procstat.Read(c.pid())
		return true, err
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("waiting for /readyz: %w", err)
	}
	return took, s.CPUSeconds, s.RSS, nil
}

func (c *controller) metrics(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.metricsURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return "", fmt.Errorf("scraping %s: %w", c.metricsURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("scraping %s: %s", c.metricsURL, resp.Status)
	}
	return string(body), err
}

var counterLine = regexp.MustCompile(`(?m)^capwatch_(report_writes|reconciles)_total\{(?:result|outcome)="(\w+)"\} (\S+)$`)

// counters reads capwatch_report_writes_total and capwatch_reconciles_total by label.
func (c *controller) counters(ctx context.Context) map[string]float64 {
	out := map[string]float64{}
	body, _ := c.metrics(ctx)
	for _, m := range counterLine.FindAllStringSubmatch(body, -1) {
		var v float64
		fmt.Sscan(m[3], &v)
		out[m[1]+"."+m[2]] = v
	}
	return out
}

func countSeries(body string) int {
	n := 0
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

func (c *controller) stop() {
	if c.alive() != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitFor(ctx context.Context, within, every time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), errors.New("interrupted"))
		case <-time.After(every):
		}
	}
}
