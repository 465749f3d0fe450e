// opa-bench: OPA evaluating the capabilities guide's admission policy on the Pods of a
// `kubectl get pods -o json` file, for comparison with capwatch_engine_bench --pods_json on the
// same file (test/bench/README.md). A program that prints figures, never a test.
//
//	go run . -pods pods.json [-policy guide.rego] [-min-time 2s]
//
// Each Pod is wrapped in an AdmissionReview request, as an admission webhook receives it. Two
// figures per Pod: "parse + eval" starts from the request's JSON bytes (what OPA does for every
// admission request), "eval" from input parsed beforehand.
package main

import (
	"context"
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
	"github.com/open-policy-agent/opa/v1/version"
)

//go:embed guide.rego
var guidePolicy string

type podList struct {
	Items []json.RawMessage `json:"items"`
}

type podName struct {
	Metadata struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"metadata"`
}

func main() {
	podsPath := flag.String("pods", "", "a `kubectl get pods -o json` file (a List of Pods)")
	policyPath := flag.String("policy", "", "a Rego v0 file with data.kubernetes.admission.deny; the guide's policy when empty")
	minTime := flag.Duration("min-time", 2*time.Second, "run each measurement at least this long")
	decisionsPath := flag.String("decisions", "", "write namespace/name, deny messages and the first message of each Pod here (tab-separated)")
	flag.Parse()
	if *podsPath == "" {
		fmt.Fprintln(os.Stderr, "opa-bench: -pods FILE is required")
		os.Exit(2)
	}
	if err := run(*podsPath, *policyPath, *decisionsPath, *minTime); err != nil {
		fmt.Fprintf(os.Stderr, "opa-bench: %v\n", err)
		os.Exit(1)
	}
}

func run(podsPath, policyPath, decisionsPath string, minTime time.Duration) error {
	body, err := os.ReadFile(podsPath)
	if err != nil {
		return err
	}
	var list podList
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("%s: %w", podsPath, err)
	}
	if len(list.Items) == 0 {
		return fmt.Errorf("%s: no items", podsPath)
	}
	policy, policyName := guidePolicy, "the guide's policy"
	if policyPath != "" {
		b, err := os.ReadFile(policyPath)
		if err != nil {
			return err
		}
		policy, policyName = string(b), policyPath
	}

	ctx := context.Background()
	query, err := rego.New(
		rego.Query("data.kubernetes.admission.deny"),
		rego.Module("policy.rego", policy),
		rego.SetRegoVersion(ast.RegoV0),
	).PrepareForEval(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", policyName, err)
	}

	// The admission requests, as bytes and parsed.
	requests := make([][]byte, len(list.Items))
	parsed := make([]ast.Value, len(list.Items))
	var bytes int
	for i, pod := range list.Items {
		requests[i] = admissionRequest(pod)
		bytes += len(pod)
		var x any
		if err := util.UnmarshalJSON(requests[i], &x); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
		if parsed[i], err = ast.InterfaceToValue(x); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}

	// The decisions once, to print what the policy says about the file.
	var decisions *os.File
	if decisionsPath != "" {
		if decisions, err = os.Create(decisionsPath); err != nil {
			return err
		}
		defer decisions.Close()
	}
	denied, messages := 0, 0
	for i, input := range parsed {
		msgs, err := denials(ctx, query, rego.EvalParsedInput(input))
		if err != nil {
			return err
		}
		if len(msgs) > 0 {
			denied++
		}
		messages += len(msgs)
		if decisions != nil {
			var name podName
			if err := json.Unmarshal(list.Items[i], &name); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			first := ""
			if len(msgs) > 0 {
				first = fmt.Sprint(msgs[0])
			}
			fmt.Fprintf(decisions, "%s/%s\t%d\t%s\n", name.Metadata.Namespace, name.Metadata.Name, len(msgs), first)
		}
	}

	parseEval, err := measure(len(requests), minTime, func(i int) error {
		var x any
		if err := util.UnmarshalJSON(requests[i], &x); err != nil {
			return err
		}
		_, err := denials(ctx, query, rego.EvalInput(x))
		return err
	})
	if err != nil {
		return err
	}
	evalOnly, err := measure(len(parsed), minTime, func(i int) error {
		_, err := denials(ctx, query, rego.EvalParsedInput(parsed[i]))
		return err
	})
	if err != nil {
		return err
	}

	fmt.Printf("opa v%s: %d pods from %s, average Pod JSON %d bytes, %s\n",
		version.Version, len(list.Items), podsPath, bytes/len(list.Items), policyName)
	fmt.Printf("  denied: %d pods (%d messages)\n", denied, messages)
	fmt.Printf("  parse + eval  %10.2f us/pod %10.0f pods/s\n", parseEval, 1e6/parseEval)
	fmt.Printf("  eval          %10.2f us/pod %10.0f pods/s\n", evalOnly, 1e6/evalOnly)
	return nil
}

// The Pod as the object of an AdmissionReview request, the input an admission policy sees.
func admissionRequest(pod json.RawMessage) []byte {
	review := map[string]any{
		"apiVersion": "admission.k8s.io/v1",
		"kind":       "AdmissionReview",
		"request": map[string]any{
			"uid":       "3f2d8a5e-0000-4000-8000-000000000000",
			"kind":      map[string]string{"group": "", "version": "v1", "kind": "Pod"},
			"resource":  map[string]string{"group": "", "version": "v1", "resource": "pods"},
			"operation": "CREATE",
			"object":    pod,
		},
	}
	out, err := json.Marshal(review)
	if err != nil {
		panic(err) // a RawMessage that decoded once marshals again
	}
	return out
}

// The deny messages the policy gives for one input.
func denials(ctx context.Context, query rego.PreparedEvalQuery, input rego.EvalOption) ([]any, error) {
	rs, err := query.Eval(ctx, input)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("unexpected result set %v", rs)
	}
	msgs, ok := rs[0].Expressions[0].Value.([]any)
	if !ok {
		return nil, fmt.Errorf("deny is %T, not a set", rs[0].Expressions[0].Value)
	}
	return msgs, nil
}

// Runs f over the items in order, round after round, for at least minTime; µs per item.
func measure(items int, minTime time.Duration, f func(int) error) (float64, error) {
	start := time.Now()
	done := 0
	for time.Since(start) < minTime || done < items {
		if err := f(done % items); err != nil {
			return 0, err
		}
		done++
	}
	return float64(time.Since(start).Microseconds()) / float64(done), nil
}
