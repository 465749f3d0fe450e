package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"
)

// The policies of the differential test, each enforced in the namespaces it matches: the two
// Pod Security profiles, and capwatch's own rules with exemptions.
var differentialPolicies = []struct{ name, spec string }{
	{"restricted", `{profile: restricted, forbiddenCapabilities: [SYS_ADMIN]}`},
	{"baseline", `{profile: baseline, forbiddenCapabilities: [NET_RAW, SYS_PTRACE]}`},
	{"own", `{forbiddenCapabilities: [SYS_ADMIN, NET_RAW, DAC_OVERRIDE], allowedCapabilities: [NET_BIND_SERVICE, CHOWN, KILL],
    requireDropAll: true, requireNoPrivilegeEscalation: true, disallowPrivileged: true,
    exemptions: [{name: c1-net-raw, containers: [c1], capabilities: [NET_RAW], reason: r, expires: "2099-01-01T00:00:00Z"},
                 {name: i0-all, containers: [i0], reason: r}]}`},
	{"root", `{forbiddenCapabilities: [], requireRunAsNonRoot: true, requireJustification: true}`},
}

var deniedRule = regexp.MustCompile(`capwatch policy [^ ]+ \(([a-z-]+)\)`)

// TestEnforceDifferential: generated Pods (and Deployments of the same pod specs) are
// dry-run created under each generated policy with Deny; the API server's allow/deny must
// agree with `capwatch audit --policy` on every object, and a denial must name a rule the
// audit reports as failing.
func TestEnforceDifferential(t *testing.T) {
	count := 300
	if s := os.Getenv("CAPWATCH_E2E_ENFORCE_PODS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		count = n
	}
	seed := rand.Uint64()
	if s := os.Getenv("CAPWATCH_E2E_ENFORCE_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d pods a policy from seed %d (replay with CAPWATCH_E2E_ENFORCE_SEED=%d)", count, seed, seed)
	dyn, err := dynamic.NewForConfig(cluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	total, agreed := 0, 0
	for pi, p := range differentialPolicies {
		t.Run(p.name, func(t *testing.T) {
			prefix := "enf-" + p.name
			policyYAML := fmt.Sprintf("apiVersion: capwatch.io/v1alpha1\nkind: CapabilityPolicy\nmetadata: {name: diff-%s}\nspec: %s\n", p.name,
				"{match: {namespaces: ["+strconv.Quote(prefix+"-*")+"]}, "+p.spec[1:])
			file := filepath.Join(t.TempDir(), "policy.yaml")
			if err := os.WriteFile(file, []byte(policyYAML), 0o600); err != nil {
				t.Fatal(err)
			}
			applyEnforcement(t, dyn, file)
			ns := newNamespace(t, prefix, nil)
			gen := newPodGenerator(seed + uint64(pi))
			r := rand.New(rand.NewPCG(seed, uint64(pi)))
			var objects []any
			for i := range count {
				pod := gen.pod(fmt.Sprintf("p%d", i))
				pod.Namespace = ns
				if r.IntN(2) == 0 {
					pod.Annotations = map[string]string{"capwatch.io/justification.NET_BIND_SERVICE": "serves port 80"}
				}
				objects = append(objects, pod)
				if i%3 == 0 && len(pod.Spec.EphemeralContainers) == 0 {
					objects = append(objects, &appsv1.Deployment{
						TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
						ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: ns},
						Spec: appsv1.DeploymentSpec{
							Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": pod.Name}},
							Template: corev1.PodTemplateSpec{
								ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": pod.Name}, Annotations: pod.Annotations},
								Spec:       pod.Spec}}})
				}
			}
			// Wait until the binding is in effect: a privileged Pod is refused by every policy
			// here but "root", where a root one is.
			probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}, Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "a", Image: "registry.example/a:1", SecurityContext: &corev1.SecurityContext{Privileged: ptr(true), RunAsUser: ptr(int64(0))}}}}}
			eventually(t, time.Minute, "the generated policy to take effect", func(ctx context.Context) (bool, string, error) {
				_, err := clientset.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
				return err != nil, "the probe Pod is still admitted", nil
			})

			verdicts := admitObjects(objects)
			input, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objects})
			if err != nil {
				t.Fatal(err)
			}
			reports, _ := auditJSON(t, input, "--policy", file)
			byWorkload := map[string]*capabilityReport{}
			for i := range reports.Items {
				rep := &reports.Items[i]
				byWorkload[rep.Workload.Kind+"/"+rep.Workload.Name] = rep
			}
			bad, deniedCount := 0, 0
			rules := map[string]int{}
			for i, obj := range objects {
				kind, name := "Pod", ""
				switch o := obj.(type) {
				case *corev1.Pod:
					name = o.Name
				case *appsv1.Deployment:
					kind, name = "Deployment", o.Name
				}
				total++
				rep := byWorkload[kind+"/"+name]
				if rep == nil {
					t.Errorf("capwatch audit wrote no report for %s %s", kind, name)
					bad++
					continue
				}
				failing := map[string]bool{}
				for _, f := range rep.failures() {
					failing[f.Rule] = true
				}
				err := verdicts[i]
				denied := err != nil
				ok := denied == (len(failing) > 0)
				if denied {
					deniedCount++
				}
				if denied && ok {
					m := deniedRule.FindStringSubmatch(err.Error())
					ok = m != nil && failing[m[1]]
					if m != nil {
						rules[m[1]]++
					}
				}
				if ok {
					agreed++
					continue
				}
				bad++
				if bad <= 5 {
					y, _ := yaml.Marshal(obj)
					t.Errorf("%s %s: the API server says %v; capwatch audit's failing rules: %v\n%s", kind, name, err, failing, y)
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d objects disagree", bad, len(objects))
			}
			t.Logf("%d objects: %d denied, %d admitted; denials by rule: %v", len(objects), deniedCount, len(objects)-deniedCount, rules)
			// A differential that admits or denies everything proves nothing.
			if deniedCount == 0 || deniedCount == len(objects) {
				t.Errorf("policy %s denied %d of %d objects: the generator must make both kinds", p.name, deniedCount, len(objects))
			}
		})
	}
	t.Logf("FIGURE: the generated ValidatingAdmissionPolicies agree with capwatch audit on %d of %d objects", agreed, total)
}

// admitObjects dry-run creates each Pod or Deployment, four at a time, and returns each error
// (nil: admitted). A Pod with ephemeral containers is created for real without them, then they
// are added through the ephemeralcontainers subresource, dry-run; a refusal of the Pod without
// them is the refusal of the whole.
func admitObjects(objects []any) []error {
	out := make([]error, len(objects))
	next := make(chan int)
	var wg sync.WaitGroup
	dryRun := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
	for range 4 {
		wg.Go(func() {
			ctx := context.Background()
			for i := range next {
				switch o := objects[i].(type) {
				case *appsv1.Deployment:
					_, out[i] = clientset.AppsV1().Deployments(o.Namespace).Create(ctx, o, dryRun)
				case *corev1.Pod:
					if len(o.Spec.EphemeralContainers) == 0 {
						_, out[i] = clientset.CoreV1().Pods(o.Namespace).Create(ctx, o, dryRun)
						continue
					}
					p := o.DeepCopy()
					p.Spec.EphemeralContainers = nil
					created, err := clientset.CoreV1().Pods(o.Namespace).Create(ctx, p, metav1.CreateOptions{})
					if err != nil {
						out[i] = err
						continue
					}
					created.Spec.EphemeralContainers = o.Spec.EphemeralContainers
					_, out[i] = clientset.CoreV1().Pods(o.Namespace).UpdateEphemeralContainers(ctx, created.Name, created,
						metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
				}
			}
		})
	}
	for i := range objects {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}
