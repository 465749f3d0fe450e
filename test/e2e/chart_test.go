package e2e

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
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"
)

// chartPath is helm/capwatch (or CAPWATCH_E2E_CHART, as TestHelmChart reads it); the test is
// skipped while it holds no chart.
func chartPath(t *testing.T) string {
	t.Helper()
	chart := os.Getenv("CAPWATCH_E2E_CHART")
	if chart == "" {
		chart = filepath.Join("..", "..", "helm", "capwatch")
	}
	chart, err := filepath.Abs(chart)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(chart, "Chart.yaml")); os.IsNotExist(err) {
		t.Skipf("%s holds no chart yet", chart)
	}
	return chart
}

// tryHelm runs the helm built with the control plane like helm() does, but returns the error
// and helm's stderr instead of failing the test, for commands that are meant to fail.
func tryHelm(t *testing.T, args ...string) (stdout []byte, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, cluster.HelmPath(), args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+cluster.AdminKubeconfig(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.Bytes(), errOut.String(), err
}

// splitManifests decodes a multi-document YAML stream (helm template's output) into objects,
// skipping empty documents.
func splitManifests(t *testing.T, data []byte) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return objs
		} else if err != nil {
			t.Fatalf("decoding rendered manifests: %v", err)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// findObject returns the one rendered object of the kind, failing when there is not exactly one.
func findObject(t *testing.T, objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("rendered %d objects of kind %s, want 1", len(found), kind)
	}
	return found[0]
}

// findNamed is the one rendered object of the kind with the name.
func findNamed(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("rendered no %s %s", kind, name)
	return nil
}

func kindsOf(objs []*unstructured.Unstructured) []string {
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind())
	}
	sort.Strings(kinds)
	return kinds
}

func fromUnstructured[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}

// installMonitoringCRDs installs the minimal ServiceMonitor and PrometheusRule CRDs of
// testdata/ and waits until the API server serves them. Applying is idempotent, so every test
// that needs them may call it.
func installMonitoringCRDs(t *testing.T) {
	t.Helper()
	file, err := filepath.Abs(filepath.Join("testdata", "prometheus-operator-crds.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kubectl(t, "apply", "--server-side", "--field-manager=capwatch-e2e", "-f", file)
	kubectl(t, "wait", "--for=condition=Established", "--timeout=60s",
		"crd/servicemonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com")
	eventually(t, time.Minute, "the monitoring.coreos.com/v1 API to be served", func(ctx context.Context) (bool, string, error) {
		list, err := clientset.Discovery().ServerResourcesForGroupVersion("monitoring.coreos.com/v1")
		if err != nil {
			return false, "", err
		}
		return len(list.APIResources) >= 2, fmt.Sprintf("%d resources", len(list.APIResources)), nil
	})
}

// dryRunApply sends every rendered object to the API server with a server-side apply dry run
// and strict field validation: the schemas of the real API server (and of the CRDs) accept
// the chart's objects as they are.
func dryRunApply(t *testing.T, rendered []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "rendered.yaml")
	if err := os.WriteFile(file, rendered, 0o600); err != nil {
		t.Fatal(err)
	}
	out := kubectl(t, "apply", "--server-side", "--dry-run=server", "--validate=strict",
		"--field-manager=capwatch-e2e", "-f", file)
	t.Logf("kubectl apply --server-side --dry-run=server:\n%s", out)
}

// The ClusterRole the controller uses, and nothing more (DESIGN §5): the RBAC audit of the
// whole suite (identity_test.go) proves it against the API server's audit log.
var wantClusterRules = clusterRules(true, "off")

// clusterRules are the ClusterRole's rules with enforcement.enabled and policyReports as given.
func clusterRules(enforcement bool, policyReports string) []rbacv1.PolicyRule {
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "namespaces"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"apps"}, Resources: []string{"replicasets"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"batch"}, Resources: []string{"jobs"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"capwatch.io"}, Resources: []string{"capabilitypolicies"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{"capwatch.io"}, Resources: []string{"capabilitypolicies/status"}, Verbs: []string{"patch"}},
		{APIGroups: []string{"capwatch.io"}, Resources: []string{"capabilityreports"}, Verbs: []string{"list", "watch", "create", "update", "patch", "delete"}},
	}
	if enforcement {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"admissionregistration.k8s.io"},
			Resources: []string{"validatingadmissionpolicies", "validatingadmissionpolicybindings"},
			Verbs:     []string{"list", "create", "update", "delete"}})
	}
	if policyReports == "auto" || policyReports == "openreports" {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"openreports.io"}, Resources: []string{"reports"}, Verbs: []string{"list", "create", "patch"}})
	}
	if policyReports == "auto" || policyReports == "wgpolicyk8s" {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{"wgpolicyk8s.io"}, Resources: []string{"policyreports"}, Verbs: []string{"list", "create", "patch"}})
	}
	return append(rules,
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"subjectaccessreviews"}, Verbs: []string{"create"}})
}

// The role a scraper is bound to.
var wantMetricsReaderRules = []rbacv1.PolicyRule{
	{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}},
}

var wantLeaseRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
}

// checkDeployment checks the hardening the chart promises on its Deployment.
func checkDeployment(t *testing.T, d *appsv1.Deployment, ns string, replicas int32) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("Deployment replicas = %v, want %d", d.Spec.Replicas, replicas)
	}
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod securityContext %+v: want runAsNonRoot and seccomp RuntimeDefault", psc)
	}
	if len(pod.Containers) != 1 {
		t.Fatalf("Deployment has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatalf("container %s has no securityContext", c.Name)
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Errorf("container %s: allowPrivilegeEscalation %v, want false", c.Name, sc.AllowPrivilegeEscalation)
	case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Errorf("container %s: readOnlyRootFilesystem %v, want true", c.Name, sc.ReadOnlyRootFilesystem)
	case sc.Capabilities == nil || !reflect.DeepEqual(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0:
		t.Errorf("container %s: capabilities %+v, want drop [ALL] and nothing added", c.Name, sc.Capabilities)
	case sc.Privileged != nil && *sc.Privileged:
		t.Errorf("container %s is privileged", c.Name)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() ||
		c.Resources.Limits.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("container %s resources %+v: want cpu and memory requests and limits", c.Name, c.Resources)
	}
	for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
		if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want {
			t.Errorf("container %s: want an HTTP probe on %s, got %+v", c.Name, want, probe)
			continue
		}
		port := probe.HTTPGet.Port.String()
		if port != "8081" && port != "health" {
			t.Errorf("probe %s on port %s, want the health port 8081", want, port)
		}
	}
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"controller", "--metrics-bind-address=:8443", "--metrics-secure=true",
		"--health-probe-bind-address=:8081", "--leader-election-namespace=" + ns} {
		if !slices.Contains(c.Args, want) {
			t.Errorf("container args %q lack %q", args, want)
		}
	}
	if elect := slices.Contains(c.Args, "--leader-elect"); elect != (replicas > 1) {
		t.Errorf("container args %q: --leader-elect %v with %d replicas", args, elect, replicas)
	}
	var podNS bool
	for _, e := range c.Env {
		if e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil &&
			e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			podNS = true
		}
	}
	if !podNS {
		t.Errorf("container env %+v: want POD_NAMESPACE from metadata.namespace", c.Env)
	}
}

// checkMetricsTLS: with metrics.certSecret the Deployment serves the mounted Secret, the
// ServiceMonitor scrapes over HTTPS with Prometheus's token and verifies the certificate against
// the Secret's CA as the Service's DNS name, and the NetworkPolicy admits scrapes only from the
// selected namespace and Pods while the probe port stays open.
func checkMetricsTLS(t *testing.T, objs []*unstructured.Unstructured, d *appsv1.Deployment, ns, fullname string) {
	t.Helper()
	c := d.Spec.Template.Spec.Containers[0]
	if !slices.Contains(c.Args, "--metrics-cert-dir=/etc/capwatch/metrics-tls") {
		t.Errorf("container args %q lack --metrics-cert-dir", c.Args)
	}
	mounted := false
	for _, v := range d.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == "capwatch-metrics-tls" {
			for _, m := range c.VolumeMounts {
				mounted = mounted || (m.Name == v.Name && m.MountPath == "/etc/capwatch/metrics-tls" && m.ReadOnly)
			}
		}
	}
	if !mounted {
		t.Errorf("the Secret capwatch-metrics-tls is not mounted read-only at /etc/capwatch/metrics-tls")
	}
	sm := findObject(t, objs, "ServiceMonitor")
	endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	if len(endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %v", endpoints)
	}
	ep := endpoints[0].(map[string]any)
	want := map[string]any{
		"scheme":          "https",
		"bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
	}
	for k, v := range want {
		if ep[k] != v {
			t.Errorf("ServiceMonitor endpoint %s = %v, want %v", k, ep[k], v)
		}
	}
	tlsConfig, _ := ep["tlsConfig"].(map[string]any)
	wantTLS := map[string]any{
		"serverName": fullname + "-metrics." + ns + ".svc",
		"ca":         map[string]any{"secret": map[string]any{"name": "capwatch-metrics-tls", "key": "ca.pem"}},
	}
	if !reflect.DeepEqual(tlsConfig, wantTLS) {
		t.Errorf("ServiceMonitor tlsConfig %v, want %v", tlsConfig, wantTLS)
	}
	np := findObject(t, objs, "NetworkPolicy")
	ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	wantIngress := []any{
		map[string]any{
			"from": []any{map[string]any{
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "observability"}},
				"podSelector":       map[string]any{"matchLabels": map[string]any{"app.kubernetes.io/name": "prometheus"}},
			}},
			"ports": []any{map[string]any{"port": "metrics", "protocol": "TCP"}},
		},
		map[string]any{"ports": []any{map[string]any{"port": "health", "protocol": "TCP"}}},
	}
	if !reflect.DeepEqual(ingress, wantIngress) {
		t.Errorf("NetworkPolicy ingress %v, want %v", ingress, wantIngress)
	}
}

// TestHelmTemplate renders the chart with its default values, with every option turned on
// (testdata/helm-values-all.yaml) and with the cluster-wide parts turned off, checks what each
// renders, and dry-runs every object against the real API server with strict field validation.
func TestHelmTemplate(t *testing.T) {
	chart := chartPath(t)
	helm(t, "lint", "--strict", chart)
	helm(t, "lint", "--strict", chart, "-f", filepath.Join("testdata", "helm-values-all.yaml"))
	installMonitoringCRDs(t)

	cases := []struct {
		name     string
		args     []string
		kinds    []string
		replicas int32
		saName   string
		rbac     bool
		rules    []rbacv1.PolicyRule
		policy   string
		fullname string
	}{
		{
			name: "defaults",
			kinds: []string{"CapabilityPolicy", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment",
				"Role", "RoleBinding", "Service", "ServiceAccount"},
			replicas: 1, saName: "capwatch", rbac: true, rules: wantClusterRules, policy: "default", fullname: "capwatch",
		},
		{
			name: "audit only with PolicyReports",
			args: []string{"--set", "enforcement.enabled=false", "--set", "policyReports=wgpolicyk8s"},
			kinds: []string{"CapabilityPolicy", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "Deployment",
				"Role", "RoleBinding", "Service", "ServiceAccount"},
			replicas: 1, saName: "capwatch", rbac: true, rules: clusterRules(false, "wgpolicyk8s"), policy: "default", fullname: "capwatch",
		},
		{
			name: "everything",
			args: []string{"-f", filepath.Join("testdata", "helm-values-all.yaml")},
			kinds: []string{"CapabilityPolicy", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ConfigMap",
				"Deployment", "NetworkPolicy", "PrometheusRule", "Role", "RoleBinding", "Service", "ServiceAccount",
				"ServiceMonitor"},
			replicas: 3, saName: "capwatch-auditor", rbac: true, rules: clusterRules(true, "auto"), policy: "production", fullname: "capwatch-audit",
		},
		{
			name: "bring your own service account and policies",
			args: []string{"--set", "serviceAccount.create=false", "--set", "serviceAccount.name=auditor",
				"--set", "rbac.create=false", "--set", "defaultPolicy.enabled=false", "--set", "replicas=2"},
			kinds:    []string{"Deployment", "Service"},
			replicas: 2, saName: "auditor", fullname: "capwatch",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ns := newNamespace(t, "helm-template", nil)
			rendered := helm(t, append([]string{"template", "capwatch", chart, "--namespace", ns}, c.args...)...)
			objs := splitManifests(t, rendered)
			if got := kindsOf(objs); !reflect.DeepEqual(got, c.kinds) {
				t.Errorf("rendered kinds %v, want %v", got, c.kinds)
			}
			for _, o := range objs {
				if o.GetKind() == "CapabilityPolicy" || strings.HasPrefix(o.GetKind(), "ClusterRole") {
					continue
				}
				if o.GetNamespace() != ns {
					t.Errorf("%s %s in namespace %q, want the release namespace %s", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
				}
			}

			d := fromUnstructured[appsv1.Deployment](t, findObject(t, objs, "Deployment"))
			checkDeployment(t, d, ns, c.replicas)
			if sa := d.Spec.Template.Spec.ServiceAccountName; sa != c.saName {
				t.Errorf("Deployment runs as ServiceAccount %q, want %q", sa, c.saName)
			}
			if c.rbac {
				cr := fromUnstructured[rbacv1.ClusterRole](t, findNamed(t, objs, "ClusterRole", c.fullname))
				if !reflect.DeepEqual(cr.Rules, c.rules) {
					t.Errorf("ClusterRole rules:\n%+v\nwant exactly:\n%+v", cr.Rules, c.rules)
				}
				reader := fromUnstructured[rbacv1.ClusterRole](t, findNamed(t, objs, "ClusterRole", c.fullname+"-metrics-reader"))
				if !reflect.DeepEqual(reader.Rules, wantMetricsReaderRules) {
					t.Errorf("ClusterRole %s rules %+v, want %+v", reader.Name, reader.Rules, wantMetricsReaderRules)
				}
				role := fromUnstructured[rbacv1.Role](t, findObject(t, objs, "Role"))
				if !reflect.DeepEqual(role.Rules, wantLeaseRules) || role.Namespace != ns {
					t.Errorf("Role %s/%s rules %+v, want %+v in the release namespace", role.Namespace, role.Name, role.Rules, wantLeaseRules)
				}
				for _, kind := range []string{"ClusterRoleBinding", "RoleBinding"} {
					b := findObject(t, objs, kind)
					subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
					want := []any{map[string]any{"kind": "ServiceAccount", "name": c.saName, "namespace": ns}}
					if !reflect.DeepEqual(subjects, want) {
						t.Errorf("%s subjects %v, want %v", kind, subjects, want)
					}
				}
			}
			if c.policy != "" {
				if p := findObject(t, objs, "CapabilityPolicy"); p.GetName() != c.policy {
					t.Errorf("CapabilityPolicy %q, want %q", p.GetName(), c.policy)
				}
			}
			if c.name == "everything" {
				cm := findObject(t, objs, "ConfigMap")
				if cm.GetLabels()["grafana_dashboard"] != "1" {
					t.Errorf("dashboard ConfigMap labels %v lack grafana_dashboard: \"1\"", cm.GetLabels())
				}
				dash, _, _ := unstructured.NestedString(cm.Object, "data", "capwatch.json")
				if !json.Valid([]byte(dash)) {
					t.Errorf("dashboard ConfigMap holds no valid JSON in capwatch.json")
				}
				// The PrometheusRule carries files/prometheus-rules.yaml, the file promtool tests.
				rulesFile, err := os.ReadFile(filepath.Join(chart, "files", "prometheus-rules.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				var want map[string]any
				if err := yaml.Unmarshal(rulesFile, &want); err != nil {
					t.Fatal(err)
				}
				if spec := findObject(t, objs, "PrometheusRule").Object["spec"]; !reflect.DeepEqual(spec, want) {
					t.Errorf("the PrometheusRule's spec differs from files/prometheus-rules.yaml")
				}
				if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example.com/security/capwatch:0.1.0-rc.1" {
					t.Errorf("image %q", img)
				}
				checkMetricsTLS(t, objs, d, ns, c.fullname)
			}
			dryRunApply(t, rendered)
		})
	}

	// The dry run above would prove nothing if a misspelled field went through: one must not.
	t.Run("the dry run refuses a misspelled field", func(t *testing.T) {
		ns := newNamespace(t, "helm-template", nil)
		rendered := helm(t, "template", "capwatch", chart, "--namespace", ns, "-f", filepath.Join("testdata", "helm-values-all.yaml"))
		for _, kind := range []string{"Deployment", "ServiceMonitor", "PrometheusRule"} {
			obj := findObject(t, splitManifests(t, rendered), kind)
			if err := unstructured.SetNestedField(obj.Object, int64(1), "spec", "misspelled"); err != nil {
				t.Fatal(err)
			}
			data, err := yaml.Marshal(obj.Object)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "object.yaml")
			if err := os.WriteFile(file, data, 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(cluster.KubectlPath(), "--kubeconfig", cluster.AdminKubeconfig(),
				"apply", "--server-side", "--dry-run=server", "--validate=strict", "--field-manager=capwatch-e2e",
				"-f", file).CombinedOutput()
			if err == nil || !strings.Contains(string(out), "misspelled") {
				t.Errorf("a %s with spec.misspelled: kubectl apply --dry-run=server %v, %s; want it refused", kind, err, out)
			}
		}
	})

	t.Run("values.schema.json rejects unknown and invalid values", func(t *testing.T) {
		for _, set := range []string{"replica=2", "image.registry=x", "metrics.serviceMonitor.enable=true",
			"defaultPolicy.spec.requireDropALL=true", "grafanaDashboard.label.x=1", "logFormat=yaml",
			"logLevel=verbose", "replicas=-1", "defaultPolicy.spec.profile=strict"} {
			_, stderr, err := tryHelm(t, "template", "capwatch", chart, "--set", set)
			if err == nil {
				t.Errorf("helm template --set %s succeeded; the schema should refuse it", set)
			} else if !strings.Contains(stderr, "values don't meet the specifications of the schema") {
				t.Errorf("helm template --set %s failed, but not on the schema: %s", set, stderr)
			}
		}
	})

	t.Run("docs/install.md lists every value", func(t *testing.T) {
		data, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		var schema map[string]any
		if err := json.Unmarshal(data, &schema); err != nil {
			t.Fatal(err)
		}
		// Leaves of the schema; resources and the policy's spec are documented as one value each.
		whole := map[string]bool{"resources": true, "defaultPolicy.spec": true}
		var leaves []string
		var walk func(prefix string, node map[string]any)
		walk = func(prefix string, node map[string]any) {
			props, _ := node["properties"].(map[string]any)
			if len(props) == 0 || whole[prefix] {
				leaves = append(leaves, prefix)
				return
			}
			for k, v := range props {
				child, _ := v.(map[string]any)
				walk(strings.TrimPrefix(prefix+"."+k, "."), child)
			}
		}
		walk("", schema)
		sort.Strings(leaves)
		doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "install.md"))
		if err != nil {
			t.Fatal(err)
		}
		section := string(doc)
		if i := strings.Index(section, "\n## Values\n"); i >= 0 {
			section = section[i+len("\n## Values\n"):]
		}
		if i := strings.Index(section, "\n## "); i >= 0 {
			section = section[:i]
		}
		var documented []string
		for _, m := range regexp.MustCompile("(?m)^\\| `([A-Za-z.]+)` \\|").FindAllStringSubmatch(section, -1) {
			documented = append(documented, m[1])
		}
		sort.Strings(documented)
		if len(leaves) < 30 {
			t.Fatalf("found only %d values in values.schema.json: %v", len(leaves), leaves)
		}
		if !reflect.DeepEqual(documented, leaves) {
			t.Errorf("docs/install.md's values table lists %v,\nvalues.schema.json has %v", documented, leaves)
		}
	})

	t.Run("the default policy is docs/examples/policies/default.yaml", func(t *testing.T) {
		rendered := helm(t, "template", "capwatch", chart, "--show-only", "templates/default-policy.yaml")
		got := findObject(t, splitManifests(t, rendered), "CapabilityPolicy")
		data, err := os.ReadFile(filepath.Join("..", "..", "docs", "examples", "policies", "default.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		var want map[string]any
		if err := yaml.Unmarshal(data, &want); err != nil {
			t.Fatal(err)
		}
		if got.GetName() != "default" || !reflect.DeepEqual(got.Object["spec"], want["spec"]) {
			gotYAML, _ := yaml.Marshal(got.Object["spec"])
			wantYAML, _ := yaml.Marshal(want["spec"])
			t.Errorf("the chart's default policy %q differs from docs/examples/policies/default.yaml:\n%s\nwant:\n%s",
				got.GetName(), gotYAML, wantYAML)
		}
	})

	t.Run("the schema's defaultPolicy.spec lists the CRD's spec fields", func(t *testing.T) {
		var schema struct {
			Properties struct {
				DefaultPolicy struct {
					Properties struct {
						Spec struct {
							Properties map[string]any `json:"properties"`
						} `json:"spec"`
					} `json:"properties"`
				} `json:"defaultPolicy"`
			} `json:"properties"`
		}
		data, err := os.ReadFile(filepath.Join(chart, "values.schema.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, &schema); err != nil {
			t.Fatal(err)
		}
		crd := readCRD(t, filepath.Join("..", "..", "crds", "capwatch.io_capabilitypolicies.yaml"))
		versions, _, _ := unstructured.NestedSlice(crd, "spec", "versions")
		if len(versions) == 0 {
			t.Fatal("the CapabilityPolicy CRD has no versions")
		}
		props, _, _ := unstructured.NestedMap(versions[0].(map[string]any), "schema", "openAPIV3Schema", "properties", "spec", "properties")
		var want, got []string
		for k := range props {
			want = append(want, k)
		}
		for k := range schema.Properties.DefaultPolicy.Properties.Spec.Properties {
			got = append(got, k)
		}
		sort.Strings(want)
		sort.Strings(got)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("values.schema.json defaultPolicy.spec properties %v, want the CRD's spec fields %v", got, want)
		}
	})
}

func readCRD(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return m
}

// TestHelmChartCRDsMatchCRDs: crds/ is the source of truth; the chart's crds/ holds the same
// files, byte for byte (cp crds/*.yaml helm/capwatch/crds/ after changing them).
func TestHelmChartCRDsMatchCRDs(t *testing.T) {
	chart := chartPath(t)
	top, err := filepath.Glob(filepath.Join("..", "..", "crds", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inChart, err := filepath.Glob(filepath.Join(chart, "crds", "*"))
	if err != nil {
		t.Fatal(err)
	}
	names := func(paths []string) []string {
		var n []string
		for _, p := range paths {
			n = append(n, filepath.Base(p))
		}
		sort.Strings(n)
		return n
	}
	if !reflect.DeepEqual(names(top), names(inChart)) {
		t.Fatalf("chart crds/ holds %v, crds/ holds %v: copy crds/*.yaml into helm/capwatch/crds/", names(inChart), names(top))
	}
	if len(top) == 0 {
		t.Fatal("crds/ holds no CRDs")
	}
	for _, p := range top {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chart, "crds", filepath.Base(p)))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("helm/capwatch/crds/%s differs from crds/%s: cp crds/*.yaml helm/capwatch/crds/", filepath.Base(p), filepath.Base(p))
		}
	}
}

// serviceAccountKubeconfig writes a kubeconfig that authenticates as the ServiceAccount with a
// token from TokenRequest, and returns its path and a client-go config for the same identity.
func serviceAccountKubeconfig(t *testing.T, ns, sa string) (string, *rest.Config) {
	t.Helper()
	tr, err := clientset.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}},
		metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest for %s/%s: %v", ns, sa, err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	ca, err := writeTokenKubeconfig(path, sa, tr.Status.Token)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &rest.Config{Host: cluster.Config.Host, BearerToken: tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca}}
	return path, cfg
}

// TestHelmInstallRBAC installs the chart, then runs capwatch controller (with leader election)
// as the chart's ServiceAccount, authenticated by a TokenRequest token: the ClusterRole and
// Role are enough for everything the controller does — reports written, policy status
// patched, Events created, its Lease held — and requests outside them are refused.
func TestHelmInstallRBAC(t *testing.T) {
	chart := chartPath(t)
	ctx := context.Background()
	ns := newNamespace(t, "helm-rbac", nil)
	policy := ns + "-default"
	release := "capwatch-rbac"
	helm(t, "install", release, chart, "--namespace", ns, "--set", "defaultPolicy.name="+policy, "--wait=false")
	t.Cleanup(func() {
		if _, stderr, err := tryHelm(t, "uninstall", release, "--namespace", ns); err != nil {
			t.Logf("helm uninstall %s: %v\n%s", release, err, stderr)
		}
	})
	sa := release // the release name holds the chart name, so the full name is the release name
	if _, err := clientset.CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
		t.Fatalf("the chart's ServiceAccount %s/%s: %v", ns, sa, err)
	}

	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	apps := newNamespace(t, "helm-rbac-apps", nil)
	labels := map[string]string{"app": "debugger"}
	if _, err := clientset.AppsV1().Deployments(apps).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "debugger"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "debugger", Image: "debugger:1",
					SecurityContext: &corev1.SecurityContext{Capabilities: &corev1.Capabilities{
						Add: []corev1.Capability{"SYS_PTRACE"},
					}},
				}}},
			},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	kubeconfig, saConfig := serviceAccountKubeconfig(t, ns, sa)
	ctrl := startControllerAs(t, kubeconfig, "--leader-elect",
		"--leader-election-namespace", ns, "--leader-election-id", "capwatch-rbac")

	eventually(t, 2*time.Minute, "the report, the Event, the policy status and the Lease", func(ctx context.Context) (bool, string, error) {
		var missing []string
		if _, err := dyn.Resource(reportsGVR).Namespace(apps).Get(ctx, "deployment-debugger", metav1.GetOptions{}); err != nil {
			missing = append(missing, "report deployment-debugger: "+err.Error())
		}
		events, err := clientset.CoreV1().Events(apps).List(ctx, metav1.ListOptions{FieldSelector: "reason=DangerousCapabilityGranted"})
		if err != nil || len(events.Items) == 0 {
			missing = append(missing, fmt.Sprintf("a DangerousCapabilityGranted Event (%v)", err))
		}
		p, err := dyn.Resource(policiesGVR).Get(ctx, policy, metav1.GetOptions{})
		if err != nil {
			missing = append(missing, "policy "+policy+": "+err.Error())
		} else if w, _, _ := unstructured.NestedInt64(p.Object, "status", "workloads"); w == 0 {
			missing = append(missing, "policy status.workloads")
		}
		lease, err := clientset.CoordinationV1().Leases(ns).Get(ctx, "capwatch-rbac", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
			missing = append(missing, fmt.Sprintf("a held Lease %s/capwatch-rbac (%v)", ns, err))
		}
		return len(missing) == 0, strings.Join(missing, "; "), nil
	})

	// The controller reviews scrapes with its own ServiceAccount's rights (tokenreviews and
	// subjectaccessreviews), and the chart's metrics-reader ClusterRole lets a scraper in.
	reader := release + "-metrics-reader"
	if _, err := clientset.RbacV1().ClusterRoles().Get(ctx, reader, metav1.GetOptions{}); err != nil {
		t.Fatalf("the chart's ClusterRole %s: %v", reader, err)
	}
	scraperNs := newNamespace(t, "helm-rbac-monitoring", nil)
	denied, err := serviceAccountToken(scraperNs, "unbound", "")
	if err != nil {
		t.Fatal(err)
	}
	if code, body := metricsGet(ctx, ctrl.MetricsURL, denied); code != http.StatusForbidden {
		t.Errorf("a scraper not bound to %s: %d %q, want 403", reader, code, body)
	}
	if _, err := clientset.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: scraperNs + "-scraper"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: scraperNs, Name: "scraper"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = clientset.RbacV1().ClusterRoleBindings().Delete(context.Background(), scraperNs+"-scraper", metav1.DeleteOptions{})
	})
	scraper, err := serviceAccountToken(scraperNs, "scraper", "")
	if err != nil {
		t.Fatal(err)
	}
	code, body := metricsGet(ctx, ctrl.MetricsURL, scraper)
	if code != 200 {
		t.Fatalf("GET %s as a scraper bound to %s: %d %s", ctrl.MetricsURL, reader, code, body)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "capwatch_api_requests_total{") && (strings.Contains(line, `code="403"`) || strings.Contains(line, `code="401"`)) {
			t.Errorf("the controller was refused something it needs: %s", line)
		}
	}

	// Requests outside the role, as the same ServiceAccount, are refused.
	saClient, err := kubernetes.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	saDyn, err := dynamic.NewForConfig(saConfig)
	if err != nil {
		t.Fatal(err)
	}
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	refused := map[string]func(ctx context.Context) error{
		"list secrets in all namespaces": func(ctx context.Context) error {
			_, err := saClient.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
			return err
		},
		"list secrets in its own namespace": func(ctx context.Context) error {
			_, err := saClient.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
			return err
		},
		"list configmaps": func(ctx context.Context) error {
			_, err := saClient.CoreV1().ConfigMaps(apps).List(ctx, metav1.ListOptions{})
			return err
		},
		"create a pod": func(ctx context.Context) error {
			_, err := saClient.CoreV1().Pods(apps).Create(ctx, &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: "intruder"},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "c"}}},
			}, dryRun)
			return err
		},
		"delete a deployment": func(ctx context.Context) error {
			return saClient.AppsV1().Deployments(apps).Delete(ctx, "debugger", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		},
		"list deployments": func(ctx context.Context) error {
			_, err := saClient.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
			return err
		},
		"list leases in another namespace": func(ctx context.Context) error {
			_, err := saClient.CoordinationV1().Leases(apps).List(ctx, metav1.ListOptions{})
			return err
		},
		"delete its policy": func(ctx context.Context) error {
			return saDyn.Resource(policiesGVR).Delete(ctx, policy, metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		},
		"read its own ClusterRole": func(ctx context.Context) error {
			_, err := saClient.RbacV1().ClusterRoles().Get(ctx, release, metav1.GetOptions{})
			return err
		},
		"get one pod (it lists and watches)": func(ctx context.Context) error {
			_, err := saClient.CoreV1().Pods(apps).Get(ctx, "intruder", metav1.GetOptions{})
			return err
		},
		"patch an event": func(ctx context.Context) error {
			_, err := saClient.CoreV1().Events(apps).Patch(ctx, "some-event", types.MergePatchType,
				[]byte(`{"count":2}`), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		},
		"delete its own lease": func(ctx context.Context) error {
			return saClient.CoordinationV1().Leases(ns).Delete(ctx, "capwatch-rbac", metav1.DeleteOptions{DryRun: []string{metav1.DryRunAll}})
		},
	}
	for what, request := range refused {
		if err := request(ctx); !apierrors.IsForbidden(err) {
			t.Errorf("as %s/%s, %s: got %v, want 403 Forbidden", ns, sa, what, err)
		}
	}
}
