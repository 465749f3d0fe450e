package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The suite runs every `capwatch controller` it starts (startController) as the chart's own
// ServiceAccount, with the chart's own ClusterRole and Role installed from `helm template`, so
// a right the chart lacks fails the test that needs it. kube-apiserver's audit log records
// every request of that ServiceAccount; after a run of the whole suite, checkChartRBAC compares
// what was asked for with what the chart grants, in both directions.
const (
	controllerNamespace = "capwatch-system"
	// Holds the chart name, so the chart's full name (ServiceAccount, ClusterRole) is the release
	// name; not "capwatch", which the chart's own install tests use.
	controllerRelease = "capwatch-suite"
)

var (
	controllerUser       = "system:serviceaccount:" + controllerNamespace + ":" + controllerRelease
	controllerKubeconfig string
	// chartRBAC is the ClusterRole and leader-election Role as `helm template` rendered them.
	chartRBAC []byte
)

// auditPolicy records the controller's identity only, at Metadata level: who asked for what,
// and the answer's code.
func auditPolicy() []byte {
	return []byte(`apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  users: ["` + controllerUser + `"]
- level: None
`)
}

// installControllerIdentity renders the chart's ServiceAccount and RBAC, applies them in
// controllerNamespace as the admin, and writes a kubeconfig with a TokenRequest token of the
// ServiceAccount to dir.
func installControllerIdentity(ctx context.Context, dir string) error {
	chart, err := filepath.Abs(filepath.Join("..", "..", "helm", "capwatch"))
	if err != nil {
		return err
	}
	rendered, err := runTool(ctx, cluster.HelmPath(), nil, "template", controllerRelease, chart,
		"--namespace", controllerNamespace,
		// TestControllerPolicyReports writes both shared report formats.
		"--set", "policyReports=auto",
		"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml")
	if err != nil {
		return fmt.Errorf("helm template of the chart's ServiceAccount and RBAC: %w", err)
	}
	chartRBAC = rendered
	if _, err := clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: controllerNamespace},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	if _, err := runTool(ctx, cluster.KubectlPath(), rendered,
		"--kubeconfig", cluster.AdminKubeconfig(), "apply", "-f", "-"); err != nil {
		return fmt.Errorf("applying the chart's ServiceAccount and RBAC: %w", err)
	}
	tr, err := clientset.CoreV1().ServiceAccounts(controllerNamespace).CreateToken(ctx, controllerRelease,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(4 * 3600))}},
		metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for the chart's ServiceAccount: %w", err)
	}
	controllerKubeconfig = filepath.Join(dir, "capwatch-controller.kubeconfig")
	_, err = writeTokenKubeconfig(controllerKubeconfig, controllerRelease, tr.Status.Token)
	return err
}

// writeTokenKubeconfig writes a kubeconfig for the control plane that authenticates with a
// bearer token as user, and returns the control plane's CA bundle.
func writeTokenKubeconfig(path, user, token string) ([]byte, error) {
	ca := cluster.Config.CAData
	if len(ca) == 0 && cluster.Config.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(cluster.Config.CAFile); err != nil {
			return nil, err
		}
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: cluster.Config.Host, CertificateAuthorityData: ca}
	kc.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts[user] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user}
	kc.CurrentContext = user
	return ca, clientcmd.WriteToFile(*kc, path)
}

func runTool(ctx context.Context, path string, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	home, err := os.MkdirTemp("", "capwatch-e2e-tool-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, errOut.String())
	}
	return out.Bytes(), nil
}

// access is one kind of request: an RBAC verb on a resource (with its subresource) of an API
// group, either in one namespace or cluster-wide (a cluster-scoped object, or a list or
// watch across all namespaces).
type access struct {
	Verb, Group, Resource string
	Namespace             string // "" for cluster-wide
}

func (a access) String() string {
	group := a.Group
	if group == "" {
		group = "core"
	}
	where := "cluster-wide"
	if a.Namespace != "" {
		where = "in namespace " + a.Namespace
	}
	return fmt.Sprintf("%s %s/%s %s", a.Verb, group, a.Resource, where)
}

// grant is one (verb, group, resource) of the chart's rules: from the ClusterRole everywhere,
// from a Role only in its namespace.
type grant struct {
	Verb, Group, Resource string
	Namespace             string // "" for the ClusterRole
	From                  string // "ClusterRole capwatch", "Role capwatch-system/capwatch-leader-election"
}

func (g grant) String() string {
	group := g.Group
	if group == "" {
		group = "core"
	}
	return fmt.Sprintf("%s %s/%s (%s)", g.Verb, group, g.Resource, g.From)
}

func (g grant) covers(a access) bool {
	return g.Verb == a.Verb && g.Group == a.Group && g.Resource == a.Resource &&
		(g.Namespace == "" || g.Namespace == a.Namespace)
}

// chartGrants reads the ClusterRoles and Roles bound to subject out of rendered manifests.
// Only roles some binding in the same manifests binds to the subject count; a wildcard or a
// resourceNames restriction is an error (the comparison would not be exact).
func chartGrants(rendered []byte, saNamespace, saName string) ([]grant, error) {
	type roleKey struct{ kind, namespace, name string }
	rules := map[roleKey][]rbacv1.PolicyRule{}
	bound := map[roleKey]bool{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		var obj struct {
			Kind     string            `json:"kind"`
			Metadata metav1.ObjectMeta `json:"metadata"`
			Rules    []rbacv1.PolicyRule
			RoleRef  rbacv1.RoleRef   `json:"roleRef"`
			Subjects []rbacv1.Subject `json:"subjects"`
		}
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("reading the rendered chart: %w", err)
		}
		switch obj.Kind {
		case "ClusterRole":
			rules[roleKey{"ClusterRole", "", obj.Metadata.Name}] = obj.Rules
		case "Role":
			rules[roleKey{"Role", obj.Metadata.Namespace, obj.Metadata.Name}] = obj.Rules
		case "ClusterRoleBinding", "RoleBinding":
			for _, s := range obj.Subjects {
				if s.Kind != "ServiceAccount" || s.Namespace != saNamespace || s.Name != saName {
					continue
				}
				ns := ""
				if obj.Kind == "RoleBinding" && obj.RoleRef.Kind == "Role" {
					ns = obj.Metadata.Namespace
				}
				bound[roleKey{obj.RoleRef.Kind, ns, obj.RoleRef.Name}] = true
				if obj.Kind == "RoleBinding" && obj.RoleRef.Kind == "ClusterRole" {
					return nil, fmt.Errorf("RoleBinding %s binds ClusterRole %s in one namespace: not compared", obj.Metadata.Name, obj.RoleRef.Name)
				}
			}
		}
	}
	var grants []grant
	for key := range bound {
		rs, ok := rules[key]
		if !ok {
			return nil, fmt.Errorf("%s %s is bound to %s/%s but not in the chart", key.kind, key.name, saNamespace, saName)
		}
		from := "ClusterRole " + key.name
		if key.kind == "Role" {
			from = "Role " + key.namespace + "/" + key.name
		}
		for _, r := range rs {
			if len(r.NonResourceURLs) > 0 {
				return nil, fmt.Errorf("%s grants nonResourceURLs %v to the controller: not compared", from, r.NonResourceURLs)
			}
			if len(r.ResourceNames) > 0 {
				return nil, fmt.Errorf("%s restricts resourceNames %v: not compared", from, r.ResourceNames)
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						if g == "*" || res == "*" || v == "*" {
							return nil, fmt.Errorf("%s holds a wildcard rule %v", from, r)
						}
						grants = append(grants, grant{Verb: v, Group: g, Resource: res, Namespace: key.namespace, From: from})
					}
				}
			}
		}
	}
	sort.Slice(grants, func(i, j int) bool { return grants[i].String() < grants[j].String() })
	return grants, nil
}

// auditEvent is the part of an audit.k8s.io/v1 Event the comparison reads.
type auditEvent struct {
	AuditID        string    `json:"auditID"`
	Stage          string    `json:"stage"`
	StageTimestamp time.Time `json:"stageTimestamp"`
	RequestURI     string    `json:"requestURI"`
	Verb           string    `json:"verb"`
	User           struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// rbacComparison is what the audit log showed against what the chart grants.
type rbacComparison struct {
	Used        map[access]int // requests of each access (each audit ID once)
	NonResource map[string]int // "GET /version"-style requests outside any resource
	Refused     map[string]int // requests answered 403, by access or URL
	// Requests the chart's rules grant but a just-restarted kube-apiserver refused because its
	// authorizer had not yet loaded the RBAC objects: no gap in the rules.
	RefusedWhileStarting map[string]int
	Ungranted            []access      // used, but no rule of the chart covers them
	Unused               []grant       // granted, never used
	Grants               []grant       // the chart's rules, one (verb, group, resource) each
	byGrant              map[grant]int // requests each grant covered
}

// authorizerWarmUp is how long after a restart kube-apiserver may refuse what RBAC grants: its
// authorizer serves once its informers have listed the roles and bindings, and /readyz does
// not wait for that.
const authorizerWarmUp = 10 * time.Second

// compareRBAC reads audit events (JSON lines) and compares the requests user made with grants.
// restarts are the times kube-apiserver was started again during the run: a 403 within
// authorizerWarmUp of one, on a request the grants cover, is counted apart, not as refused.
func compareRBAC(log io.Reader, user string, grants []grant, restarts []time.Time) (*rbacComparison, error) {
	c := &rbacComparison{Used: map[access]int{}, NonResource: map[string]int{}, Refused: map[string]int{},
		RefusedWhileStarting: map[string]int{}, Grants: grants, byGrant: map[grant]int{}}
	warmingUp := func(at time.Time) bool {
		for _, r := range restarts {
			if !at.Before(r) && at.Sub(r) <= authorizerWarmUp {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(log)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	line := 0
	for sc.Scan() {
		line++
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return nil, fmt.Errorf("audit log line %d: %w", line, err)
		}
		if ev.User.Username != user || seen[ev.AuditID] {
			continue
		}
		// A watch logs ResponseStarted, and ResponseComplete once it ends: count it once.
		seen[ev.AuditID] = true
		key, granted := "", false
		if ev.ObjectRef == nil || ev.ObjectRef.Resource == "" {
			key = strings.ToUpper(ev.Verb) + " " + strings.SplitN(ev.RequestURI, "?", 2)[0]
			c.NonResource[key]++
		} else {
			res := ev.ObjectRef.Resource
			if ev.ObjectRef.Subresource != "" {
				res += "/" + ev.ObjectRef.Subresource
			}
			a := access{Verb: ev.Verb, Group: ev.ObjectRef.APIGroup, Resource: res, Namespace: ev.ObjectRef.Namespace}
			c.Used[a]++
			key = a.String()
			for _, g := range grants {
				granted = granted || g.covers(a)
			}
		}
		if ev.ResponseStatus != nil && ev.ResponseStatus.Code == 403 {
			if granted && warmingUp(ev.StageTimestamp) {
				c.RefusedWhileStarting[key]++
			} else {
				c.Refused[key]++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the audit log: %w", err)
	}
	for a, n := range c.Used {
		covered := false
		for _, g := range grants {
			if g.covers(a) {
				covered = true
				c.byGrant[g] += n
			}
		}
		if !covered {
			c.Ungranted = append(c.Ungranted, a)
		}
	}
	for _, g := range grants {
		if c.byGrant[g] == 0 {
			c.Unused = append(c.Unused, g)
		}
	}
	sort.Slice(c.Ungranted, func(i, j int) bool { return c.Ungranted[i].String() < c.Ungranted[j].String() })
	return c, nil
}

// exact says whether the chart grants exactly what was used, and nothing was refused.
func (c *rbacComparison) exact() bool {
	return len(c.Ungranted) == 0 && len(c.Unused) == 0 && len(c.Refused) == 0
}

// report prints the requests by grant, then the differences.
func (c *rbacComparison) report(w io.Writer) {
	fmt.Fprintf(w, "e2e: RBAC audit: requests of %s by the chart's rules:\n", controllerUser)
	for _, g := range c.Grants {
		fmt.Fprintf(w, "  %7d  %s\n", c.byGrant[g], g)
	}
	var urls []string
	for u := range c.NonResource {
		urls = append(urls, u)
	}
	sort.Strings(urls)
	for _, u := range urls {
		fmt.Fprintf(w, "  %7d  %s (a non-resource URL: the cluster's own discovery roles)\n", c.NonResource[u], u)
	}
	for _, a := range c.Ungranted {
		fmt.Fprintf(w, "e2e: RBAC audit: USED BUT NOT GRANTED: %s (%d requests)\n", a, c.Used[a])
	}
	for _, g := range c.Unused {
		fmt.Fprintf(w, "e2e: RBAC audit: GRANTED BUT UNUSED: %s\n", g)
	}
	var refused []string
	for k := range c.Refused {
		refused = append(refused, k)
	}
	sort.Strings(refused)
	for _, k := range refused {
		fmt.Fprintf(w, "e2e: RBAC audit: REFUSED (403): %s (%d requests)\n", k, c.Refused[k])
	}
	refused = refused[:0]
	for k := range c.RefusedWhileStarting {
		refused = append(refused, k)
	}
	sort.Strings(refused)
	for _, k := range refused {
		fmt.Fprintf(w, "e2e: RBAC audit: refused within %s of a kube-apiserver restart although granted "+
			"(its authorizer was still loading RBAC): %s (%d requests)\n", authorizerWarmUp, k, c.RefusedWhileStarting[k])
	}
}

// checkChartRBAC compares the audit log of a whole-suite run with the chart's rules; it
// returns false (and says why) when they differ.
func checkChartRBAC(w io.Writer) bool {
	grants, err := chartGrants(chartRBAC, controllerNamespace, controllerRelease)
	if err != nil {
		fmt.Fprintf(w, "e2e: RBAC audit: %v\n", err)
		return false
	}
	f, err := os.Open(cluster.AuditLogPath)
	if err != nil {
		fmt.Fprintf(w, "e2e: RBAC audit: %v\n", err)
		return false
	}
	defer f.Close()
	c, err := compareRBAC(f, controllerUser, grants, cluster.APIServerRestarts())
	if err != nil {
		fmt.Fprintf(w, "e2e: RBAC audit: %v\n", err)
		return false
	}
	c.report(w)
	if !c.exact() {
		fmt.Fprintf(w, "e2e: RBAC audit: FAIL: the chart's rules (helm/capwatch/templates/rbac.yaml) and what "+
			"the controller asked for during the suite differ (audit log %s)\n", cluster.AuditLogPath)
		return false
	}
	fmt.Fprintf(w, "e2e: RBAC audit: ok: every rule of the chart was used, nothing else was asked for, nothing refused\n")
	return true
}

// TestRBACComparison checks the comparison itself on a made-up audit log and chart: each kind
// of difference is found, a watch's two stages count once, other users are ignored.
func TestRBACComparison(t *testing.T) {
	rendered := []byte(`apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: c}
rules:
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
---
kind: ClusterRoleBinding
metadata: {name: c}
roleRef: {kind: ClusterRole, name: c}
subjects: [{kind: ServiceAccount, namespace: sys, name: sa}]
---
kind: Role
metadata: {name: r, namespace: sys}
rules:
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get]
---
kind: RoleBinding
metadata: {name: r, namespace: sys}
roleRef: {kind: Role, name: r}
subjects: [{kind: ServiceAccount, namespace: sys, name: sa}]
---
kind: ClusterRole
metadata: {name: unbound}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
`)
	grants, err := chartGrants(rendered, "sys", "sa")
	if err != nil {
		t.Fatal(err)
	}
	if len(grants) != 5 {
		t.Fatalf("grants %v, want 5 (the unbound ClusterRole left out)", grants)
	}
	const sa = "system:serviceaccount:sys:sa"
	restart := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	at := restart.Add(-time.Minute)
	ev := func(id, stage, user, verb, group, res, ns string, code int) string {
		return fmt.Sprintf(`{"auditID":%q,"stage":%q,"stageTimestamp":%q,"verb":%q,"requestURI":"/x","user":{"username":%q},`+
			`"objectRef":{"resource":%q,"namespace":%q,"apiGroup":%q},"responseStatus":{"code":%d}}`,
			id, stage, at.Format(time.RFC3339Nano), verb, user, res, ns, group, code)
	}
	log := strings.Join([]string{
		ev("1", "ResponseStarted", sa, "watch", "", "pods", "", 200),
		ev("1", "ResponseComplete", sa, "watch", "", "pods", "", 200),
		ev("2", "ResponseComplete", sa, "list", "", "pods", "", 200),
		ev("3", "ResponseComplete", sa, "create", "", "events", "apps", 201),
		ev("4", "ResponseComplete", sa, "get", "coordination.k8s.io", "leases", "other", 403),
		ev("5", "ResponseComplete", "admin", "get", "", "secrets", "", 200),
		`{"auditID":"6","stage":"ResponseComplete","verb":"get","requestURI":"/version?timeout=32s","user":{"username":"` + sa + `"},"responseStatus":{"code":200}}`,
	}, "\n")
	// A granted watch refused 2 s after a restart is the authorizer warming up, not a gap;
	// the same refusal a minute later is refused.
	at = restart.Add(2 * time.Second)
	log += "\n" + ev("7", "ResponseComplete", sa, "watch", "", "pods", "", 403)
	at = restart.Add(time.Minute)
	log += "\n" + ev("8", "ResponseComplete", sa, "list", "", "pods", "", 403)
	c, err := compareRBAC(strings.NewReader(log), sa, grants, []time.Time{restart})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Used[access{Verb: "watch", Resource: "pods"}]; got != 2 {
		t.Errorf("watches counted %d times, want 2 (audit ID 1 in two stages, and 7)", got)
	}
	if len(c.Ungranted) != 1 || c.Ungranted[0] != (access{Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Namespace: "other"}) {
		t.Errorf("ungranted %v, want the Lease outside the Role's namespace", c.Ungranted)
	}
	var unused []string
	for _, g := range c.Unused {
		unused = append(unused, g.String())
	}
	want := []string{"get coordination.k8s.io/leases (Role sys/r)", "patch core/events (ClusterRole c)"}
	if strings.Join(unused, "; ") != strings.Join(want, "; ") {
		t.Errorf("unused %q, want %q", unused, want)
	}
	wantRefused := map[string]int{"get coordination.k8s.io/leases in namespace other": 1, "list core/pods cluster-wide": 1}
	if !reflect.DeepEqual(c.Refused, wantRefused) || c.NonResource["GET /version"] != 1 {
		t.Errorf("refused %v (want %v), non-resource %v", c.Refused, wantRefused, c.NonResource)
	}
	if want := map[string]int{"watch core/pods cluster-wide": 1}; !reflect.DeepEqual(c.RefusedWhileStarting, want) {
		t.Errorf("refused while starting %v, want %v", c.RefusedWhileStarting, want)
	}
	if c.exact() {
		t.Error("exact() with differences")
	}
}
