package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestPodSecurityAdmissionOracle uses the API server's Pod Security admission as the oracle for
// `capwatch audit --profile`: random Pods are dry-run created in namespaces that warn at the
// restricted and at the baseline level, the PodSecurity warnings name the checks each Pod
// fails, and capwatch must name the same checks (pssControl) for every Pod.
//
// CAPWATCH_E2E_PSA_SEED replays a run; CAPWATCH_E2E_PSA_PODS changes the number of Pods.
func TestPodSecurityAdmissionOracle(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	if s := os.Getenv("CAPWATCH_E2E_PSA_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CAPWATCH_E2E_PSA_SEED=%q: %v", s, err)
		}
	}
	count := 1000
	if s := os.Getenv("CAPWATCH_E2E_PSA_PODS"); s != "" {
		var err error
		if count, err = strconv.Atoi(s); err != nil || count < 1 {
			t.Fatalf("CAPWATCH_E2E_PSA_PODS=%q: want a positive number", s)
		}
	}
	fmt.Printf("PSA oracle: %d pods from seed %d (replay with CAPWATCH_E2E_PSA_SEED=%d)\n", count, seed, seed)

	gen := newPodGenerator(seed)
	pods := make([]*corev1.Pod, count)
	withEphemeral := 0
	for i := range pods {
		pods[i] = gen.pod(fmt.Sprintf("psa-%04d", i))
		if len(pods[i].Spec.EphemeralContainers) > 0 {
			withEphemeral++
		}
	}

	for _, profile := range []string{"restricted", "baseline"} {
		t.Run(profile, func(t *testing.T) {
			ns := newNamespace(t, "psa-"+profile, map[string]string{
				"pod-security.kubernetes.io/warn":         profile,
				"pod-security.kubernetes.io/warn-version": "latest",
			})
			started := time.Now()
			admitted := admitAll(t, ns, pods)
			fmt.Printf("PSA oracle %s: admitted %d pods (%d through the ephemeralcontainers subresource) in %s\n",
				profile, count, withEphemeral, time.Since(started).Round(time.Millisecond))
			compareWithPSA(t, profile, ns, pods, admitted)
		})
	}
}

// admission is what the API server said about one Pod.
type admission struct {
	pod      *corev1.Pod // as the server returned it
	warnings []string
	err      error
}

// admitAll dry-run creates every pod in ns, four requests at a time, keeping each response's
// warnings apart. Ephemeral containers cannot be set on create: such a pod is created for real
// without them, then they are added through the ephemeralcontainers subresource, dry-run,
// which PodSecurity evaluates on the whole pod.
func admitAll(t *testing.T, ns string, pods []*corev1.Pod) []admission {
	out := make([]admission, len(pods))
	next := make(chan int)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for i := range next {
				out[i] = admitPod(context.Background(), ns, pods[i])
			}
		})
	}
	for i := range pods {
		next <- i
	}
	close(next)
	wg.Wait()

	failed := 0
	for i, a := range out {
		if a.err != nil {
			failed++
			if failed <= 5 {
				y, _ := yaml.Marshal(pods[i])
				t.Errorf("the API server refused pod %s: %v\n%s", pods[i].Name, a.err, y)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d generated pods were refused; the generator must only make valid pods", failed, len(pods))
	}
	return out
}

func admitPod(ctx context.Context, ns string, pod *corev1.Pod) admission {
	var a admission
	wctx := withWarnings(ctx, &a.warnings)
	p := pod.DeepCopy()
	p.Namespace = ns
	pods := clientset.CoreV1().Pods(ns)
	if len(p.Spec.EphemeralContainers) == 0 {
		a.pod, a.err = pods.Create(wctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return a
	}
	ephemeral := p.Spec.EphemeralContainers
	p.Spec.EphemeralContainers = nil
	created, err := pods.Create(ctx, p, metav1.CreateOptions{})
	if err != nil {
		a.err = fmt.Errorf("creating the pod without its ephemeral containers: %w", err)
		return a
	}
	created.Spec.EphemeralContainers = ephemeral
	a.pod, a.err = pods.UpdateEphemeralContainers(wctx, created.Name, created,
		metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}})
	if a.err != nil {
		a.err = fmt.Errorf("adding ephemeral containers: %w", a.err)
	}
	return a
}

// compareWithPSA runs capwatch over the admitted pods and compares, pod by pod and control by
// control, the checks capwatch fails with the checks PodSecurity warned about.
func compareWithPSA(t *testing.T, profile, ns string, pods []*corev1.Pod, admitted []admission) {
	controls := profileControls[profile]

	// The oracle: which checks PodSecurity says each pod fails.
	psa := make([]map[string]string, len(pods))
	warningOf := make([]string, len(pods))
	otherWarnings := map[string]int{}
	for i, a := range admitted {
		psa[i] = map[string]string{}
		for _, w := range a.warnings {
			v, ok, err := parsePSAWarning(w)
			if !ok {
				otherWarnings[w]++
				continue
			}
			if err != nil {
				y, _ := yaml.Marshal(pods[i])
				t.Fatalf("pod %s: %v\n(the generator should trigger only capwatch's controls)\n%s", pods[i].Name, err, y)
			}
			if v.Policy != profile+":latest" {
				t.Fatalf("pod %s: warning for policy %q in a namespace warning at %s:latest", pods[i].Name, v.Policy, profile)
			}
			if len(w) >= 4000 {
				t.Fatalf("pod %s: a %d-character warning nears the API server's 4096-character limit "+
					"beyond which warnings are truncated; make the generator's pods smaller", pods[i].Name, len(w))
			}
			psa[i] = v.Controls
			warningOf[i] = w
		}
	}
	for w, n := range otherWarnings {
		t.Logf("%d responses carried a warning that is not PodSecurity's: %s", n, w)
	}

	// capwatch's verdicts on the same pods, as the server returned them.
	list := map[string]any{"apiVersion": "v1", "kind": "List"}
	items := make([]*corev1.Pod, len(admitted))
	for i, a := range admitted {
		p := a.pod.DeepCopy()
		p.APIVersion, p.Kind = "v1", "Pod"
		items[i] = p
	}
	list["items"] = items
	input, err := json.Marshal(list)
	if err != nil {
		t.Fatal(err)
	}
	reports, code := auditJSON(t, input, "--profile", profile)
	anyViolation := slices.ContainsFunc(psa, func(m map[string]string) bool { return len(m) > 0 })
	if want := map[bool]int{true: 1, false: 0}[anyViolation]; code != want {
		t.Errorf("capwatch audit --profile %s exited %d, want %d (PodSecurity finds violations: %v)",
			profile, code, want, anyViolation)
	}
	byName := map[string]*capabilityReport{}
	for i := range reports.Items {
		r := &reports.Items[i]
		if r.Metadata.Namespace == ns {
			byName[r.Metadata.Name] = r
		}
	}

	agreedPods, agreedVerdicts := 0, 0
	violating := map[string]int{}
	var disagreements []string
	kinds := map[string]int{} // kind of problem -> pods showing it
	shownKinds := map[string]bool{}
	for i, pod := range pods {
		for id := range psa[i] {
			violating[id]++
		}
		r := byName["pod-"+pod.Name]
		var problems []string
		podKinds := map[string]bool{}
		problem := func(kind, text string) {
			problems = append(problems, text)
			podKinds[kind] = true
		}
		capwatch := map[string]bool{}
		if r == nil {
			problem("no report", "capwatch wrote no report pod-"+pod.Name)
		} else {
			for _, f := range r.failures() {
				switch {
				case f.PSSControl == "":
					problem("finding "+f.Rule+" without pssControl",
						fmt.Sprintf("finding %s on container %q (capability %q) has no pssControl", f.Rule, f.Container, f.Capability))
				case !slices.Contains(controls, f.PSSControl):
					problem("pssControl "+f.PSSControl+" outside the profile",
						fmt.Sprintf("finding %s on container %q names pssControl %q, which the %s profile does not check",
							f.Rule, f.Container, f.PSSControl, profile))
				default:
					capwatch[f.PSSControl] = true
				}
			}
			if r.Summary.Compliant != (len(psa[i]) == 0) {
				problem("summary.compliant", fmt.Sprintf("summary.compliant is %v, PodSecurity %s the pod",
					r.Summary.Compliant, map[bool]string{true: "admits", false: "warns about"}[len(psa[i]) == 0]))
			}
		}
		for _, c := range controls {
			_, psaFails := psa[i][c]
			if r != nil && psaFails == capwatch[c] {
				agreedVerdicts++
				continue
			}
			if r != nil {
				problem(fmt.Sprintf("%s: PodSecurity %s, capwatch %s", c, verdict(psaFails), verdict(capwatch[c])),
					fmt.Sprintf("%s: PodSecurity says %s, capwatch says %s", c, verdict(psaFails), verdict(capwatch[c])))
			}
		}
		if len(problems) == 0 {
			agreedPods++
			continue
		}
		// Show the first pod of each kind of problem, and the first ten pods in all.
		show := len(disagreements) < 10
		for k := range podKinds {
			kinds[k]++
			if !shownKinds[k] {
				shownKinds[k] = true
				show = true
			}
		}
		if show {
			y, _ := yaml.Marshal(pod)
			findings := "(no report)"
			if r != nil {
				fb, _ := json.MarshalIndent(r.Findings, "", "  ")
				findings = string(fb)
			}
			warning := warningOf[i]
			if warning == "" {
				warning = "(none: PodSecurity admits the pod at " + profile + ")"
			}
			disagreements = append(disagreements, fmt.Sprintf(
				"pod %s:\n  %s\nPodSecurity warning: %s\ncapwatch findings: %s\npod:\n%s",
				pod.Name, strings.Join(problems, "\n  "), warning, findings, y))
		} else {
			disagreements = append(disagreements, "")
		}
	}

	total := len(pods) * len(controls)
	fmt.Printf("PSA agreement %s: %d/%d pods, %d/%d control verdicts\n",
		profile, agreedPods, len(pods), agreedVerdicts, total)
	var coverage []string
	for _, c := range controls {
		coverage = append(coverage, fmt.Sprintf("%s %d", c, violating[c]))
	}
	fmt.Printf("PSA oracle %s: pods PodSecurity finds in violation, by check: %s\n", profile, strings.Join(coverage, ", "))

	if len(disagreements) > 0 {
		shown := 0
		for _, d := range disagreements {
			if d != "" {
				t.Errorf("disagreement with Pod Security admission at %s:\n%s", profile, d)
				shown++
			}
		}
		var summary []string
		for _, k := range keys(kinds) {
			summary = append(summary, fmt.Sprintf("  %4d pods: %s", kinds[k], k))
		}
		t.Errorf("capwatch --profile %s disagrees with Pod Security admission on %d of %d pods (%d shown above):\n%s",
			profile, len(disagreements), len(pods), shown, strings.Join(summary, "\n"))
	}

	// A generator that never (or always) trips a check would make agreement meaningless.
	if len(pods) >= 200 {
		for _, c := range controls {
			if n := violating[c]; n < len(pods)/100 || n > len(pods)-len(pods)/100 {
				t.Errorf("check %s fails for %d of %d pods: the generator should give both outcomes often", c, n, len(pods))
			}
		}
	}
}

func verdict(fails bool) string {
	if fails {
		return "fail"
	}
	return "pass"
}
