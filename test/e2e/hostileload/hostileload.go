// Package hostileload runs `capwatch controller` under hostile load against a real API server
// and measures whether it keeps its promises (issue 10, item 6): a cluster of N namespaces whose
// Pods hold C containers each adding all 41 capabilities; a report write storm (a policy
// change that touches every report, and every report deleted at once) while a proxy in front
// of the API server answers every write with 429 for a window. capwatch must stay inside the
// chart's memory limit, keep serving /metrics, and converge once writes are allowed again.
//
// Run does the work and returns the Figures; the hostile-load command and the
// TestHostileLoadSmoke end-to-end test print them and fail on a broken promise.
package hostileload

import (
	"bytes"
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

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"capwatch.io/test/e2e/procstat"
)

// Capabilities are the 41 Linux capabilities by their Kubernetes names (lib/capabilities).
var Capabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
	"IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
	"SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
	"LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
	"WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
}

// ChartMemoryLimit is helm/capwatch/values.yaml's resources.limits.memory.
const ChartMemoryLimit = 256 << 20

var (
	reportsGVR  = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilityreports"}
	policiesGVR = schema.GroupVersionResource{Group: "capwatch.io", Version: "v1alpha1", Resource: "capabilitypolicies"}
)

// Config sizes the load and states the promises.
type Config struct {
	Admin *rest.Config // the control plane's admin identity: the harness's own requests
	// Controller is the identity the proxy forwards capwatch's requests with (the chart's
	// ServiceAccount in the suite); nil means Admin.
	Controller *rest.Config
	Capwatch   string // the capwatch binary

	Namespaces             int
	PodsPerNamespace       int
	ContainersPerNamespace int    // spread evenly over the namespace's Pods
	Prefix                 string // of the namespaces, the policy and the monitoring objects

	RefuseWritesFor time.Duration // the 429 window
	RetryAfter      int           // seconds, in the 429 answers
	MemoryLimit     int64         // bytes
	ScrapeInterval  time.Duration
	ScrapeTimeout   time.Duration // Prometheus's default is 10 s
	ReadyWithin     time.Duration // from the controller's start to /readyz
	ConvergeWithin  time.Duration // first reports, and again after the window
	ControllerArgs  []string      // extra flags for capwatch controller

	Log           io.Writer // progress lines
	ControllerLog io.Writer // the controller's output
	WorkDir       string    // kubeconfig and policy files
}

func (c *Config) defaults() {
	if c.Prefix == "" {
		c.Prefix = "hostile"
	}
	if c.PodsPerNamespace == 0 {
		c.PodsPerNamespace = 1
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 1
	}
	if c.MemoryLimit == 0 {
		c.MemoryLimit = ChartMemoryLimit
	}
	if c.ScrapeInterval == 0 {
		c.ScrapeInterval = 2 * time.Second
	}
	if c.ScrapeTimeout == 0 {
		c.ScrapeTimeout = 10 * time.Second
	}
	if c.ReadyWithin == 0 {
		c.ReadyWithin = 5 * time.Minute
	}
	if c.ConvergeWithin == 0 {
		c.ConvergeWithin = 10 * time.Minute
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	if c.ControllerLog == nil {
		c.ControllerLog = io.Discard
	}
}

// Figures are what a run measured.
type Figures struct {
	Namespaces, Pods, Containers, Workloads int
	PodListBytes                            int64 // the Pods as the API server stores them (JSON)
	ReportBytes                             int   // one report, as the API server returns it
	Populate                                time.Duration
	TimeToReady                             time.Duration
	FirstReports                            time.Duration // from the start to every report right
	PeakRSS, PeakHWM, EndRSS                int64
	RSSBeforeStorm                          int64
	Scrapes                                 scrapeStats
	Window                                  time.Duration
	RefusedWrites, RefusedReviews           int64
	ForwardedWrites                         int64
	ReportsDeleted                          int
	Deleting                                time.Duration // the deletes, inside the refusal
	Converge                                time.Duration // from the window's end to every report right
	Converged                               bool
	CPUSeconds                              float64
	// The restart over the converged cluster.
	Restarted                        bool
	RestartReady, RestartReconciled  time.Duration // from its start
	RestartHWM                       int64
	RestartCPUSeconds, RestartWrites float64
	ControllerDied                   string // why, when it exited on its own
	Metrics                          map[string]float64
	Config                           Config // as run, with the defaults filled in
}

// Broken lists the promises the run broke (empty: all kept).
func (f *Figures) Broken() []string {
	c := f.Config
	var out []string
	if f.ControllerDied != "" {
		out = append(out, "the controller died: "+f.ControllerDied)
	}
	if f.PeakHWM > c.MemoryLimit {
		out = append(out, fmt.Sprintf("peak memory %s is over the limit %s", procstat.MiB(f.PeakHWM), procstat.MiB(c.MemoryLimit)))
	}
	if f.Scrapes.Failed > 0 {
		out = append(out, fmt.Sprintf("%d of %d scrapes of /metrics failed (first: %s)",
			f.Scrapes.Failed, f.Scrapes.OK+f.Scrapes.Failed, f.Scrapes.FirstFailure))
	}
	if f.Scrapes.StormOK == 0 {
		out = append(out, "no scrape succeeded during the 429 window")
	}
	if f.Scrapes.Max > c.ScrapeTimeout {
		out = append(out, fmt.Sprintf("a scrape took %s (timeout %s)", f.Scrapes.Max, c.ScrapeTimeout))
	}
	if !f.Converged {
		out = append(out, fmt.Sprintf("the reports did not converge within %s after the window", c.ConvergeWithin))
	}
	if f.Converged && !f.Restarted {
		out = append(out, "the restarted controller did not reconcile every workload")
	}
	if f.RestartHWM > c.MemoryLimit {
		out = append(out, fmt.Sprintf("peak memory after the restart %s is over the limit %s", procstat.MiB(f.RestartHWM), procstat.MiB(c.MemoryLimit)))
	}
	if f.RestartWrites > 0 {
		out = append(out, fmt.Sprintf("the restart wrote %v reports (want none)", f.RestartWrites))
	}
	if f.Metrics["gave_up"] > 0 {
		out = append(out, fmt.Sprintf("%v reconciles gave up", f.Metrics["gave_up"]))
	}
	return out
}

// Table renders the figures.
func (f *Figures) Table() string {
	c := f.Config
	var b strings.Builder
	row := func(what, value string) { fmt.Fprintf(&b, "| %s | %s |\n", what, value) }
	b.WriteString("| what | figure |\n|---|---|\n")
	row("namespaces × Pods × containers", fmt.Sprintf("%d × %d × %d = %d containers, each adding all 41 capabilities",
		f.Namespaces, c.PodsPerNamespace, c.ContainersPerNamespace/c.PodsPerNamespace, f.Containers))
	row("Pods / workloads (reports)", fmt.Sprintf("%d / %d", f.Pods, f.Workloads))
	row("Pods as stored (JSON)", fmt.Sprintf("%s (%d KiB per Pod)", procstat.MiB(f.PodListBytes), f.PodListBytes/1024/int64(max(f.Pods, 1))))
	row("one report as stored", fmt.Sprintf("%d KiB", f.ReportBytes/1024))
	row("populating the cluster", f.Populate.Round(time.Second).String())
	row("time to ready (start → /readyz)", f.TimeToReady.Round(100*time.Millisecond).String())
	row("start → every report right", f.FirstReports.Round(100*time.Millisecond).String())
	row("peak VmHWM / limit", fmt.Sprintf("%s / %s (%.0f %%)", procstat.MiB(f.PeakHWM), procstat.MiB(c.MemoryLimit), 100*float64(f.PeakHWM)/float64(c.MemoryLimit)))
	row("VmRSS before the storm / at the end", fmt.Sprintf("%s / %s", procstat.MiB(f.RSSBeforeStorm), procstat.MiB(f.EndRSS)))
	row("storm", fmt.Sprintf("policy changed (every report's content) and %d reports deleted at once (%s, capwatch's writes but its reviews refused), then every write refused (429, Retry-After %d s) for %s",
		f.ReportsDeleted, f.Deleting.Round(100*time.Millisecond), c.RetryAfter, f.Window))
	row("writes refused / of them reviews / writes passed", fmt.Sprintf("%d / %d / %d", f.RefusedWrites, f.RefusedReviews, f.ForwardedWrites))
	row("scrapes ok / failed (all run)", fmt.Sprintf("%d / %d", f.Scrapes.OK, f.Scrapes.Failed))
	row("scrapes ok / failed in the window", fmt.Sprintf("%d / %d", f.Scrapes.StormOK, f.Scrapes.StormFailed))
	row("max scrape time in the window / all run", fmt.Sprintf("%s / %s", f.Scrapes.StormMax.Round(time.Millisecond), f.Scrapes.Max.Round(time.Millisecond)))
	conv := "NOT within " + c.ConvergeWithin.String()
	if f.Converged {
		conv = f.Converge.Round(100 * time.Millisecond).String()
	}
	row("window's end → every report right again", conv)
	row("CPU (utime + stime)", fmt.Sprintf("%.1f s", f.CPUSeconds))
	restart := "not run (no convergence)"
	if f.Restarted {
		restart = fmt.Sprintf("ready in %s, every workload reconciled in %s, %v report writes, VmHWM %s (%.0f %%), %.1f s CPU",
			f.RestartReady.Round(100*time.Millisecond), f.RestartReconciled.Round(100*time.Millisecond), f.RestartWrites,
			procstat.MiB(f.RestartHWM), 100*float64(f.RestartHWM)/float64(c.MemoryLimit), f.RestartCPUSeconds)
	} else if f.Converged {
		restart = "FAILED"
	}
	row("restart over the converged cluster", restart)
	var keys []string
	for k := range f.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var m []string
	for _, k := range keys {
		m = append(m, fmt.Sprintf("%s=%v", k, f.Metrics[k]))
	}
	row("capwatch's own counters at the end", strings.Join(m, ", "))
	return b.String()
}

type run struct {
	cfg       Config
	clients   *kubernetes.Clientset
	dyn       dynamic.Interface
	logf      func(format string, args ...any)
	figures   *Figures
	policy    string // its name
	workloads map[string]bool
}

// Run populates the cluster, runs the controller through the storm and measures it. The
// objects stay (the caller's control plane goes away, or Cleanup removes them).
func Run(ctx context.Context, cfg Config) (*Figures, error) {
	cfg.defaults()
	if cfg.Namespaces <= 0 || cfg.ContainersPerNamespace < cfg.PodsPerNamespace {
		return nil, fmt.Errorf("need namespaces > 0 and at least one container per Pod")
	}
	admin := rest.CopyConfig(cfg.Admin)
	admin.QPS, admin.Burst = 500, 1000
	r := &run{cfg: cfg, figures: &Figures{Namespaces: cfg.Namespaces, Config: cfg}, policy: cfg.Prefix + "-load"}
	var err error
	if r.clients, err = kubernetes.NewForConfig(admin); err != nil {
		return nil, err
	}
	if r.dyn, err = dynamic.NewForConfig(admin); err != nil {
		return nil, err
	}
	r.logf = func(format string, args ...any) {
		fmt.Fprintf(cfg.Log, "hostile-load %s: %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	if cfg.WorkDir == "" {
		if cfg.WorkDir, err = os.MkdirTemp("", "capwatch-hostile-load-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(cfg.WorkDir)
		r.cfg.WorkDir = cfg.WorkDir
	}
	return r.figures, r.do(ctx)
}

func (r *run) do(ctx context.Context) error {
	cfg, f := r.cfg, r.figures
	token, err := r.metricsToken(ctx)
	if err != nil {
		return fmt.Errorf("the metrics reader's token: %w", err)
	}
	if err := r.applyPolicy(ctx, false); err != nil {
		return err
	}
	started := time.Now()
	if err := r.populate(ctx); err != nil {
		return err
	}
	f.Populate = time.Since(started)
	r.logf("%d Pods with %d containers in %d namespaces made in %s (%s as stored)", f.Pods, f.Containers,
		f.Namespaces, f.Populate.Round(time.Second), procstat.MiB(f.PodListBytes))
	before, after, err := r.expectedSummaries(ctx)
	if err != nil {
		return err
	}

	tracker := &reportTracker{prefix: cfg.Prefix + "-", summaries: map[string]string{}}
	trackCtx, stopTracking := context.WithCancel(ctx)
	defer stopTracking()
	go tracker.run(trackCtx, r.dyn, r.logf)

	upstream := cfg.Controller
	if upstream == nil {
		upstream = cfg.Admin
	}
	proxy, err := startRefusingProxy(upstream, cfg.RetryAfter)
	if err != nil {
		return err
	}
	defer proxy.Close()

	ctrl, sampler, stopSampling, err := r.startSampledController(ctx, proxy)
	if err != nil {
		return err
	}
	defer ctrl.stop()
	defer stopSampling()
	restarting := false // the first controller is stopped on purpose for the restart
	died := func() bool {
		if restarting {
			return false
		}
		select {
		case <-ctrl.exited:
			f.ControllerDied = fmt.Sprint(ctrl.err)
			return true
		default:
			return false
		}
	}
	// Measures what can be measured, whatever happens next.
	defer func() {
		last, peak := sampler.snapshot()
		f.PeakRSS, f.PeakHWM, f.EndRSS, f.CPUSeconds = peak, max(last.HWM, peak), last.RSS, last.CPUSeconds
		f.RefusedWrites, f.RefusedReviews, f.ForwardedWrites = proxy.refused.Load(), proxy.refusedReviews.Load(), proxy.forwarded.Load()
		died()
	}()

	if err := waitFor(ctx, cfg.ReadyWithin, func() (bool, error) {
		if died() {
			return false, errors.New("the controller exited: " + f.ControllerDied)
		}
		code, _ := get(ctx, ctrl.healthURL+"/readyz")
		return code == http.StatusOK, nil
	}); err != nil {
		return fmt.Errorf("waiting for /readyz: %w", err)
	}
	f.TimeToReady = time.Since(ctrl.started)
	r.logf("ready in %s", f.TimeToReady.Round(100*time.Millisecond))

	scr := &scraper{url: ctrl.metricsURL, token: token, interval: cfg.ScrapeInterval, timeout: cfg.ScrapeTimeout}
	scrapeCtx, stopScraping := context.WithCancel(ctx)
	defer stopScraping()
	go scr.run(scrapeCtx)
	defer func() { f.Scrapes = scr.snapshot() }()

	progress := func(expected string) func() (bool, error) {
		last := time.Now()
		return func() (bool, error) {
			if died() {
				return false, errors.New("the controller exited: " + f.ControllerDied)
			}
			right, total := tracker.count(expected)
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				s, _ := sampler.snapshot()
				r.logf("%d/%d reports right (%d stored), VmRSS %s, VmHWM %s", right, f.Workloads, total, procstat.MiB(s.RSS), procstat.MiB(s.HWM))
			}
			return right == f.Workloads, nil
		}
	}
	if err := waitFor(ctx, cfg.ConvergeWithin, progress(before)); err != nil {
		return fmt.Errorf("the first reports: %w", err)
	}
	f.FirstReports = time.Since(ctrl.started)
	f.ReportBytes = r.reportSize(ctx)
	last, _ := sampler.snapshot()
	f.RSSBeforeStorm = last.RSS
	r.logf("every report right %s after the start (one report: %d KiB); VmRSS %s",
		f.FirstReports.Round(100*time.Millisecond), f.ReportBytes/1024, procstat.MiB(last.RSS))

	// The storm: writes refused, every report's content changed and every report deleted. The
	// window of cfg.RefuseWritesFor, in which every write is refused (the reviews behind
	// /metrics too), starts once the deletes are through: a thousand reports of most of a
	// megabyte take the API server minutes to delete. From the first delete to the window,
	// capwatch's writes but its reviews are refused, so the window is the minute the issue
	// names and not the minutes the deletes take on top (an allowance is kept for 5 minutes
	// past its TTL while the reviews fail, docs/security.md).
	proxy.RefuseAllButReviewsFor(24 * time.Hour)
	stormStart := time.Now()
	r.logf("refusing every write; changing the policy and deleting every report")
	if err := r.applyPolicy(ctx, true); err != nil {
		return err
	}
	if f.ReportsDeleted, err = r.deleteReports(ctx); err != nil {
		return err
	}
	f.Deleting = time.Since(stormStart)
	f.Window = cfg.RefuseWritesFor
	proxy.RefuseFor(cfg.RefuseWritesFor)
	scr.setStorm(true)
	windowStart := time.Now()
	r.logf("%d reports deleted in %s; every write refused for %s more", f.ReportsDeleted,
		f.Deleting.Round(100*time.Millisecond), cfg.RefuseWritesFor)
	for time.Since(windowStart) < cfg.RefuseWritesFor {
		if died() {
			return errors.New("the controller exited during the window: " + f.ControllerDied)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	scr.setStorm(false)
	windowEnd := time.Now()
	s, peak := sampler.snapshot()
	r.logf("writes allowed again; VmRSS %s (peak %s), VmHWM %s, %d writes refused", procstat.MiB(s.RSS), procstat.MiB(peak), procstat.MiB(s.HWM), proxy.refused.Load())

	if err := waitFor(ctx, cfg.ConvergeWithin, progress(after)); err != nil {
		r.logf("no convergence: %v", err)
	} else {
		f.Converged = true
		f.Converge = time.Since(windowEnd)
		r.logf("every report right again %s after the window", f.Converge.Round(100*time.Millisecond))
	}
	// A few more scrapes and samples once quiet.
	time.Sleep(2 * cfg.ScrapeInterval)
	f.Metrics = scrapeCounters(ctx, ctrl.metricsURL, token)
	if !f.Converged {
		return nil
	}

	// A restart over the converged cluster: the new process lists every Pod and every report
	// (a thousand reports of most of a megabyte) inside the same limit, and writes nothing.
	stopScraping()
	stopSampling()
	restarting = true
	ctrl.stop()
	return r.restart(ctx, proxy, token)
}

// restart starts a second controller over what the first one left and measures it until it
// has reconciled every workload.
func (r *run) restart(ctx context.Context, proxy *refusingProxy, token string) error {
	f := r.figures
	ctrl, sampler, stopSampling, err := r.startSampledController(ctx, proxy)
	if err != nil {
		return err
	}
	defer ctrl.stop()
	defer stopSampling()
	defer func() {
		last, peak := sampler.snapshot()
		f.RestartHWM, f.RestartCPUSeconds = max(last.HWM, peak), last.CPUSeconds
		select {
		case <-ctrl.exited:
			f.ControllerDied = "after the restart: " + fmt.Sprint(ctrl.err)
		default:
		}
	}()
	var counters map[string]float64
	if err := waitFor(ctx, r.cfg.ConvergeWithin, func() (bool, error) {
		select {
		case <-ctrl.exited:
			return false, errors.New("the restarted controller exited: " + fmt.Sprint(ctrl.err))
		default:
		}
		if f.RestartReady == 0 {
			if code, _ := get(ctx, ctrl.healthURL+"/readyz"); code != http.StatusOK {
				return false, nil
			}
			f.RestartReady = time.Since(ctrl.started)
		}
		counters = scrapeCounters(ctx, ctrl.metricsURL, token)
		return counters["reconciles.done"] >= float64(f.Workloads), nil
	}); err != nil {
		return fmt.Errorf("the restart: %w", err)
	}
	f.Restarted = true
	f.RestartReconciled = time.Since(ctrl.started)
	for k, v := range counters {
		if strings.HasPrefix(k, "report_writes.") {
			f.RestartWrites += v
		}
	}
	r.logf("restarted: ready in %s, every workload reconciled in %s, %v report writes",
		f.RestartReady.Round(100*time.Millisecond), f.RestartReconciled.Round(100*time.Millisecond), f.RestartWrites)
	return nil
}

// scrapeCounters reads the controller's own counters worth printing.
func scrapeCounters(ctx context.Context, url, token string) map[string]float64 {
	body := metricsBody(ctx, url, token)
	out := map[string]float64{"scrape_bytes": float64(len(body))}
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			out["series"]++
		}
	}
	patterns := map[string]*regexp.Regexp{
		"report_writes":    regexp.MustCompile(`(?m)^capwatch_report_writes_total\{result="(\w+)"\} (\S+)$`),
		"reconciles":       regexp.MustCompile(`(?m)^capwatch_reconciles_total\{outcome="(\w+)"\} (\S+)$`),
		"api_requests_429": regexp.MustCompile(`(?m)^capwatch_api_requests_total\{code="429",verb="(\w+)"\} (\S+)$`),
	}
	for name, re := range patterns {
		for _, m := range re.FindAllStringSubmatch(body, -1) {
			var v float64
			fmt.Sscan(m[2], &v)
			key := name + "." + m[1]
			if name == "reconciles" && m[1] == "gave_up" {
				key = "gave_up"
			}
			out[key] = v
		}
	}
	return out
}

func waitFor(ctx context.Context, within time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(within)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", within)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func get(ctx context.Context, url string) (int, string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err.Error()
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// metricsToken makes a ServiceAccount bound to a ClusterRole granting get on /metrics, as
// Prometheus scrapes, and returns a token of it.
func (r *run) metricsToken(ctx context.Context) (string, error) {
	ns, sa, role := r.cfg.Prefix+"-monitoring", "prometheus", r.cfg.Prefix+"-metrics-reader"
	ignoreExists := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	c := r.clients
	if _, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	if _, err := c.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	if _, err := c.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	if _, err := c.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: ns, Name: sa}},
	}, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return "", err
	}
	expiry := int64(6 * 3600)
	tr, err := c.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}},
		metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// policyObject is the guide's default policy for the load's namespaces; changed, it also
// raises two capabilities to critical, which changes every report's findings and summary.
func (r *run) policyObject(changed bool) map[string]any {
	spec := map[string]any{
		"profile":                      "none",
		"match":                        map[string]any{"namespaces": []any{r.cfg.Prefix + "-*"}},
		"runtimeDefaults":              "containerd",
		"requireDropAll":               true,
		"allowedCapabilities":          []any{"NET_BIND_SERVICE"},
		"forbiddenCapabilities":        []any{"SYS_ADMIN", "SYS_PTRACE", "SYS_MODULE", "DAC_OVERRIDE", "SYS_RAWIO", "ALL", "privileged", "BPF", "PERFMON", "DAC_READ_SEARCH", "NET_ADMIN", "SYS_BOOT", "MAC_ADMIN", "MAC_OVERRIDE"},
		"disallowPrivileged":           true,
		"requireNoPrivilegeEscalation": true,
		"requireRunAsNonRoot":          true,
	}
	if changed {
		spec["severities"] = map[string]any{"CHOWN": "critical", "NET_RAW": "critical"}
	}
	return map[string]any{
		"apiVersion": "capwatch.io/v1alpha1",
		"kind":       "CapabilityPolicy",
		"metadata":   map[string]any{"name": r.policy},
		"spec":       spec,
	}
}

func (r *run) applyPolicy(ctx context.Context, changed bool) error {
	obj := &unstructured.Unstructured{Object: r.policyObject(changed)}
	res := r.dyn.Resource(policiesGVR)
	current, err := res.Get(ctx, r.policy, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = res.Create(ctx, obj, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	obj.SetResourceVersion(current.GetResourceVersion())
	_, err = res.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}

func (r *run) namespace(i int) string { return fmt.Sprintf("%s-%04d", r.cfg.Prefix, i) }

func (r *run) pod(ns string, p, containers int) *corev1.Pod {
	caps := make([]corev1.Capability, len(Capabilities))
	for i, c := range Capabilities {
		caps[i] = corev1.Capability(c)
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%02d", p), Namespace: ns}}
	for c := 0; c < containers; c++ {
		pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{
			Name:            fmt.Sprintf("c%03d", c),
			Image:           "registry.example/hostile-load:1",
			SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: caps}},
		})
	}
	return pod
}

// populate makes the namespaces and their Pods (existing ones are kept, so a run can resume).
func (r *run) populate(ctx context.Context) error {
	cfg, f := r.cfg, r.figures
	perPod := cfg.ContainersPerNamespace / cfg.PodsPerNamespace
	f.Pods = cfg.Namespaces * cfg.PodsPerNamespace
	f.Containers = f.Pods * perPod
	f.Workloads = f.Pods // bare Pods: one report each
	r.workloads = map[string]bool{}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				ns := r.namespace(i)
				_, err := r.clients.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
				for p := 0; err == nil || apierrors.IsAlreadyExists(err); p++ {
					if p == cfg.PodsPerNamespace {
						err = nil
						break
					}
					pod := r.pod(ns, p, perPod)
					_, err = r.clients.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
					if err == nil || apierrors.IsAlreadyExists(err) {
						data, _ := json.Marshal(pod)
						mu.Lock()
						f.PodListBytes += int64(len(data))
						r.workloads[ns+"/pod-"+pod.Name] = true
						mu.Unlock()
					}
				}
				if err != nil && !apierrors.IsAlreadyExists(err) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("populating %s: %w", ns, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < cfg.Namespaces && ctx.Err() == nil; i++ {
		next <- i
		if i > 0 && i%200 == 0 {
			r.logf("%d/%d namespaces populated", i, cfg.Namespaces)
		}
	}
	close(next)
	wg.Wait()
	return firstErr
}

// expectedSummaries asks `capwatch audit` what the report of one of the Pods says under the
// policy before and after the change (every Pod has the same shape): the offline engine is
// the same one the controller runs.
func (r *run) expectedSummaries(ctx context.Context) (before, after string, err error) {
	pod, err := r.clients.CoreV1().Pods(r.namespace(0)).Get(ctx, "load-00", metav1.GetOptions{})
	if err != nil {
		return "", "", err
	}
	pod.APIVersion, pod.Kind = "v1", "Pod"
	podJSON, err := json.Marshal(pod)
	if err != nil {
		return "", "", err
	}
	audit := func(changed bool) (string, error) {
		policyYAML, err := yaml.Marshal(r.policyObject(changed))
		if err != nil {
			return "", err
		}
		path := filepath.Join(r.cfg.WorkDir, fmt.Sprintf("policy-%v.yaml", changed))
		if err := os.WriteFile(path, policyYAML, 0o644); err != nil {
			return "", err
		}
		cmd := exec.CommandContext(ctx, r.cfg.Capwatch, "audit", "-f", "-", "--policy", path, "-o", "json")
		cmd.Stdin = bytes.NewReader(podJSON)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) {
			return "", fmt.Errorf("capwatch audit: %v: %s", err, stderr.String())
		}
		var list struct {
			Items []struct {
				Summary map[string]any `json:"summary"`
			} `json:"items"`
		}
		if err := json.Unmarshal(out, &list); err != nil || len(list.Items) != 1 {
			return "", fmt.Errorf("capwatch audit printed no one report (%v): %.300s", err, out)
		}
		s, err := json.Marshal(list.Items[0].Summary)
		return string(s), err
	}
	if before, err = audit(false); err != nil {
		return "", "", err
	}
	if after, err = audit(true); err != nil {
		return "", "", err
	}
	if before == after {
		return "", "", fmt.Errorf("the policy change does not change the summary %s", before)
	}
	r.logf("expected summary before the change %s, after %s", before, after)
	return before, after, nil
}

func (r *run) reportSize(ctx context.Context) int {
	res := r.dyn.Resource(reportsGVR).Namespace(r.namespace(0))
	u, err := res.Get(ctx, "pod-load-00", metav1.GetOptions{})
	if err != nil {
		return 0
	}
	data, _ := u.MarshalJSON()
	return len(data)
}

// deleteReports deletes every report of the load's namespaces at once, one DeleteCollection
// per namespace, straight to the API server (the proxy's window concerns capwatch only).
func (r *run) deleteReports(ctx context.Context) (int, error) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan string)
	)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ns := range next {
				err := r.dyn.Resource(reportsGVR).Namespace(ns).DeleteCollection(ctx, metav1.DeleteOptions{},
					metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=capwatch"})
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("deleting the reports of %s: %w", ns, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < r.cfg.Namespaces; i++ {
		next <- r.namespace(i)
	}
	close(next)
	wg.Wait()
	return r.figures.Workloads, firstErr
}

// Cleanup removes what Run made in a shared cluster: the namespaces (the reports and Pods go
// with them), the policy and the monitoring objects.
func Cleanup(ctx context.Context, admin *rest.Config, cfg Config) error {
	cfg.defaults()
	c, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(admin)
	if err != nil {
		return err
	}
	var errs []error
	ignore := func(err error) {
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	ignore(dyn.Resource(policiesGVR).Delete(ctx, cfg.Prefix+"-load", metav1.DeleteOptions{}))
	for i := 0; i < cfg.Namespaces; i++ {
		ignore(c.CoreV1().Namespaces().Delete(ctx, fmt.Sprintf("%s-%04d", cfg.Prefix, i), metav1.DeleteOptions{}))
	}
	ignore(c.CoreV1().Namespaces().Delete(ctx, cfg.Prefix+"-monitoring", metav1.DeleteOptions{}))
	ignore(c.RbacV1().ClusterRoleBindings().Delete(ctx, cfg.Prefix+"-metrics-reader", metav1.DeleteOptions{}))
	ignore(c.RbacV1().ClusterRoles().Delete(ctx, cfg.Prefix+"-metrics-reader", metav1.DeleteOptions{}))
	return errors.Join(errs...)
}

// controller is the `capwatch controller` process under test.
type controller struct {
	cmd        *exec.Cmd
	started    time.Time
	metricsURL string
	healthURL  string
	exited     chan struct{}
	err        error
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startSampledController starts a controller and samples its memory and CPU until the
// returned stop is called.
func (r *run) startSampledController(ctx context.Context, proxy *refusingProxy) (*controller, *memorySampler, context.CancelFunc, error) {
	ctrl, err := r.startController(proxy)
	if err != nil {
		return nil, nil, nil, err
	}
	sampler := &memorySampler{}
	sampleCtx, stop := context.WithCancel(ctx)
	go sampler.run(sampleCtx, ctrl.cmd.Process.Pid)
	return ctrl, sampler, stop, nil
}

func (r *run) startController(proxy *refusingProxy) (*controller, error) {
	kc := filepath.Join(r.cfg.WorkDir, "capwatch.kubeconfig")
	if err := os.WriteFile(kc, []byte(proxy.kubeconfig()), 0o600); err != nil {
		return nil, err
	}
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	health, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"controller", "--kubeconfig", kc, "--allow-insecure-api-server",
		"--metrics-bind-address", metrics, "--health-probe-bind-address", health}, r.cfg.ControllerArgs...)
	c := &controller{
		cmd:        exec.Command(r.cfg.Capwatch, args...),
		metricsURL: "https://" + metrics + "/metrics",
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
	r.logf("capwatch controller %v started (pid %d)", args[1:], c.cmd.Process.Pid)
	return c, nil
}

func (c *controller) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(20 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
}

// reportTracker follows the load's reports with a list and a watch, keeping each one's
// summary only, so the harness can tell when every report says what it should.
type reportTracker struct {
	prefix    string
	mu        sync.Mutex
	summaries map[string]string // namespace/name → summary JSON
}

func (t *reportTracker) count(expected string) (right, total int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.summaries {
		total++
		if s == expected {
			right++
		}
	}
	return right, total
}

func (t *reportTracker) record(u *unstructured.Unstructured, deleted bool) {
	if !strings.HasPrefix(u.GetNamespace(), t.prefix) {
		return
	}
	key := u.GetNamespace() + "/" + u.GetName()
	t.mu.Lock()
	defer t.mu.Unlock()
	if deleted {
		delete(t.summaries, key)
		return
	}
	summary, _, _ := unstructured.NestedMap(u.Object, "summary")
	s, _ := json.Marshal(summary)
	t.summaries[key] = string(s)
}

func (t *reportTracker) run(ctx context.Context, dyn dynamic.Interface, logf func(string, ...any)) {
	res := dyn.Resource(reportsGVR)
	for ctx.Err() == nil {
		// Small pages: a report of a hundred containers is most of a megabyte.
		rv, cont := "", ""
		fresh := map[string]string{}
		t.mu.Lock()
		t.summaries = fresh
		t.mu.Unlock()
		var err error
		for {
			var list *unstructured.UnstructuredList
			list, err = res.List(ctx, metav1.ListOptions{Limit: 50, Continue: cont})
			if err != nil {
				break
			}
			for i := range list.Items {
				t.record(&list.Items[i], false)
			}
			rv, cont = list.GetResourceVersion(), list.GetContinue()
			if cont == "" {
				break
			}
		}
		if err != nil {
			if ctx.Err() == nil {
				logf("listing reports: %v", err)
				time.Sleep(time.Second)
			}
			continue
		}
		for ctx.Err() == nil {
			w, err := res.Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				break
			}
			gone := false
			for ev := range w.ResultChan() {
				if ev.Type == watch.Error {
					gone = true
					break
				}
				u, ok := ev.Object.(*unstructured.Unstructured)
				if !ok {
					continue
				}
				rv = u.GetResourceVersion()
				if ev.Type != watch.Bookmark {
					t.record(u, ev.Type == watch.Deleted)
				}
			}
			w.Stop()
			if gone {
				break // relist
			}
		}
	}
}

func metricsBody(ctx context.Context, url, token string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ""
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := insecureClient(10 * time.Second).Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}
