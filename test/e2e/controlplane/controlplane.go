// Package controlplane starts a real Kubernetes control plane for capwatch's end-to-end tests
// and for the development cluster: etcd and kube-apiserver through controller-runtime's envtest,
// and kube-controller-manager beside them so that Deployments get ReplicaSets and Pods, CronJobs
// get Jobs and the garbage collector honours ownerReferences. There is no scheduler and no
// kubelet: Pods stay Pending, which is all an auditor needs.
//
// The binaries come from the assets directory that build-control-plane.sh prints; the
// CAPWATCH_E2E_ASSETS environment variable names it.
package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the environment variable holding the directory with kube-apiserver,
// kube-controller-manager, kubectl, etcd and helm.
const AssetsEnv = "CAPWATCH_E2E_ASSETS"

// Controllers are the kube-controller-manager controllers the control plane runs: the ones
// that turn workloads into Pods and clean up after owners, nothing that needs nodes, and the
// one that type-checks ValidatingAdmissionPolicies (their status.typeChecking).
var Controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"job-controller",
	"cronjob-controller",
	"garbage-collector-controller",
	"namespace-controller",
	"serviceaccount-controller",
	"validatingadmissionpolicy-status-controller",
}

// Options configures Start.
type Options struct {
	// AssetsDir holds the binaries; empty means $CAPWATCH_E2E_ASSETS.
	AssetsDir string
	// StartTimeout bounds the start of each component; a cold kube-apiserver on two cores
	// needs tens of seconds. Zero means two minutes.
	StartTimeout time.Duration
	// CRDDirs are installed (every *.yaml / *.json CRD in them) once the API server is up.
	CRDDirs []string
	// LogDir receives etcd.log, kube-apiserver.log and kube-controller-manager.log; empty means
	// a directory inside the control plane's temporary work directory.
	LogDir string
	// AuditPolicy, when set, is an audit.k8s.io/v1 Policy (YAML): kube-apiserver writes the
	// events it selects as JSON lines to AuditLogPath.
	AuditPolicy []byte
	// SkipControllerManager starts etcd and kube-apiserver only (bare Pods need no
	// kube-controller-manager); AdminKubeconfig and Exited are then not available.
	SkipControllerManager bool
}

// ControlPlane is a running etcd + kube-apiserver + kube-controller-manager.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration using client certificates.
	Config *rest.Config
	// Version is what the API server's /version reports.
	Version *version.Info
	// AssetsDir is where the binaries came from.
	AssetsDir string
	// LogDir holds the components' logs.
	LogDir string
	// AuditLogPath is kube-apiserver's audit log (one JSON event a line), set when
	// Options.AuditPolicy was.
	AuditLogPath string

	env *envtest.Environment
	kcm *process
	// apiserver is kube-apiserver once StartAPIServer restarted it (nil while envtest's runs);
	// apiserverArgs its arguments while StopAPIServer has it stopped.
	apiserver     *process
	apiserverArgs []string
	// apiserverStarts are the times StartAPIServer started it again.
	apiserverStarts []time.Time
	workDir         string
	logFiles        []*os.File
	adminKC         string
}

// AssetsDirFromEnv returns $CAPWATCH_E2E_ASSETS after checking that it holds the binaries.
func AssetsDirFromEnv() (string, error) {
	dir := os.Getenv(AssetsEnv)
	if dir == "" {
		return "", fmt.Errorf("%s is not set: run test/e2e/build-control-plane.sh and export "+
			"%s to the directory it prints (test/e2e/run.sh does both)", AssetsEnv, AssetsEnv)
	}
	return dir, checkAssets(dir)
}

func checkAssets(dir string) error {
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kubectl"} {
		p := filepath.Join(dir, b)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("control-plane binary %s missing (run test/e2e/build-control-plane.sh): %w", b, err)
		}
		if st.Mode()&0o111 == 0 {
			return fmt.Errorf("control-plane binary %s is not executable", p)
		}
	}
	return nil
}

// Start brings up etcd, kube-apiserver and kube-controller-manager and returns once the API
// server serves requests and kube-controller-manager reports healthy.
func Start(ctx context.Context, opts Options) (cp *ControlPlane, err error) {
	if opts.AssetsDir == "" {
		if opts.AssetsDir, err = AssetsDirFromEnv(); err != nil {
			return nil, err
		}
	} else if err = checkAssets(opts.AssetsDir); err != nil {
		return nil, err
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}

	cp = &ControlPlane{AssetsDir: opts.AssetsDir}
	if cp.workDir, err = os.MkdirTemp("", "capwatch-controlplane-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = cp.Stop()
		}
	}()
	cp.LogDir = opts.LogDir
	if cp.LogDir == "" {
		cp.LogDir = filepath.Join(cp.workDir, "logs")
	}
	if err = os.MkdirAll(cp.LogDir, 0o755); err != nil {
		return nil, err
	}

	etcdLog, err := cp.openLog("etcd.log")
	if err != nil {
		return nil, err
	}
	apiLog, err := cp.openLog("kube-apiserver.log")
	if err != nil {
		return nil, err
	}

	// envtest already configures what we want from the API server: a secure loopback port,
	// RBAC, client-certificate authentication, the ServiceAccount admission plugin disabled,
	// a service-account signing key (TokenRequest works) and etcd with --unsafe-no-fsync.
	env := &envtest.Environment{
		BinaryAssetsDirectory:    opts.AssetsDir,
		ControlPlaneStartTimeout: opts.StartTimeout,
		ControlPlaneStopTimeout:  30 * time.Second,
		CRDDirectoryPaths:        opts.CRDDirs,
		ErrorIfCRDPathMissing:    false,
	}
	// Explicit paths, so that a KUBEBUILDER_ASSETS in the environment cannot swap the binaries.
	env.ControlPlane.Etcd = &envtest.Etcd{
		Path: filepath.Join(opts.AssetsDir, "etcd"), Out: etcdLog, Err: etcdLog,
	}
	env.ControlPlane.APIServer = &envtest.APIServer{
		Path: filepath.Join(opts.AssetsDir, "kube-apiserver"), Out: apiLog, Err: apiLog,
	}
	env.ControlPlane.KubectlPath = filepath.Join(opts.AssetsDir, "kubectl")
	if len(opts.AuditPolicy) > 0 {
		policy := filepath.Join(cp.workDir, "audit-policy.yaml")
		if err = os.WriteFile(policy, opts.AuditPolicy, 0o644); err != nil {
			return nil, err
		}
		cp.AuditLogPath = filepath.Join(cp.LogDir, "kube-apiserver-audit.log")
		// Blocking and never rotated (no --audit-log-maxsize): once a request has ended, its
		// event is in this one file.
		env.ControlPlane.APIServer.Configure().
			Set("audit-policy-file", policy).
			Set("audit-log-path", cp.AuditLogPath).
			Set("audit-log-format", "json").
			Set("audit-log-mode", "blocking")
	}
	cp.env = env
	if cp.Config, err = env.Start(); err != nil {
		return nil, cp.withLogs(fmt.Errorf("starting etcd and kube-apiserver: %w", err),
			"etcd.log", "kube-apiserver.log")
	}

	dc, err := discovery.NewDiscoveryClientForConfig(cp.Config)
	if err != nil {
		return nil, err
	}
	if cp.Version, err = dc.ServerVersion(); err != nil {
		return nil, fmt.Errorf("reading the API server version: %w", err)
	}

	if opts.SkipControllerManager {
		return cp, nil
	}
	if err = cp.startControllerManager(ctx, opts.StartTimeout); err != nil {
		return nil, cp.withLogs(err, "kube-controller-manager.log")
	}
	return cp, nil
}

func (cp *ControlPlane) openLog(name string) (*os.File, error) {
	f, err := os.Create(filepath.Join(cp.LogDir, name))
	if err != nil {
		return nil, err
	}
	cp.logFiles = append(cp.logFiles, f)
	return f, nil
}

// withLogs appends the last lines of the named component logs to err.
func (cp *ControlPlane) withLogs(err error, names ...string) error {
	var b strings.Builder
	b.WriteString(err.Error())
	for _, n := range names {
		data, rerr := os.ReadFile(filepath.Join(cp.LogDir, n))
		if rerr != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s", n, strings.Join(lines, "\n"))
	}
	return errors.New(b.String())
}

// KubectlPath is the kubectl built from the same Kubernetes release.
func (cp *ControlPlane) KubectlPath() string { return filepath.Join(cp.AssetsDir, "kubectl") }

// HelmPath is the helm binary from the assets directory.
func (cp *ControlPlane) HelmPath() string { return filepath.Join(cp.AssetsDir, "helm") }

// Exited is closed when kube-controller-manager exits on its own (it should run until Stop).
func (cp *ControlPlane) Exited() <-chan struct{} { return cp.kcm.exited }

// AdminKubeconfig returns the path of an admin kubeconfig inside the work directory.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.adminKC }

// Stop stops kube-controller-manager, then kube-apiserver and etcd, and removes the work
// directory (a LogDir given in Options is kept).
func (cp *ControlPlane) Stop() error {
	var errs []error
	if cp.kcm != nil {
		errs = append(errs, cp.kcm.stop(15*time.Second))
		cp.kcm = nil
	}
	if cp.apiserver != nil {
		errs = append(errs, cp.apiserver.stop(30*time.Second))
		cp.apiserver = nil
	}
	if cp.env != nil {
		errs = append(errs, cp.env.Stop())
		cp.env = nil
	}
	for _, f := range cp.logFiles {
		_ = f.Close()
	}
	cp.logFiles = nil
	if cp.workDir != "" {
		errs = append(errs, os.RemoveAll(cp.workDir))
		cp.workDir = ""
	}
	return errors.Join(errs...)
}
