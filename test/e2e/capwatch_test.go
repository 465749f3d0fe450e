package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The parts of capwatch's CapabilityReport (DESIGN §2) the tests look at.
type reportList struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Items      []capabilityReport `json:"items"`
}

type capabilityReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Workload struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Name       string `json:"name"`
		Pods       int    `json:"pods"`
	} `json:"workload"`
	Summary struct {
		Violations int  `json:"violations"`
		Compliant  bool `json:"compliant"`
	} `json:"summary"`
	Containers []reportContainer `json:"containers"`
	Findings   []finding         `json:"findings"`
}

type reportContainer struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Granted []string `json:"granted"`
	Added   []string `json:"added"`
	Dropped []string `json:"dropped"`
}

type finding struct {
	Policy      string `json:"policy"`
	Rule        string `json:"rule"`
	Container   string `json:"container"`
	Capability  string `json:"capability"`
	Severity    string `json:"severity"`
	Result      string `json:"result"`
	Message     string `json:"message"`
	Remediation string `json:"remediation"`
	PSSControl  string `json:"pssControl"`
}

func (r *capabilityReport) container(name string) *reportContainer {
	for i := range r.Containers {
		if r.Containers[i].Name == name {
			return &r.Containers[i]
		}
	}
	return nil
}

// failures returns the report's findings with result "fail".
func (r *capabilityReport) failures() []finding {
	var out []finding
	for _, f := range r.Findings {
		if f.Result == "fail" {
			out = append(out, f)
		}
	}
	return out
}

func (r *capabilityReport) String() string {
	b, _ := json.MarshalIndent(r, "", "  ")
	return string(b)
}

// runCapwatch runs the capwatch binary with stdin and returns stdout and the exit code. Exit
// codes 0 (compliant) and 1 (findings) are results; anything else fails the test with stderr.
func runCapwatch(t *testing.T, stdin []byte, args ...string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, capwatchBin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	started := time.Now()
	err := cmd.Run()
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("running %s %s: %v", capwatchBin, strings.Join(args, " "), err)
	}
	t.Logf("capwatch %s: exit %d in %s, %d bytes in, %d bytes out",
		strings.Join(args, " "), code, time.Since(started).Round(time.Millisecond), len(stdin), stdout.Len())
	if code != 0 && code != 1 {
		t.Fatalf("capwatch %s exited %d (0 or 1 expected)\nstderr:\n%s\nstdout (first 2000 bytes):\n%s",
			strings.Join(args, " "), code, stderr.String(), head(stdout.String(), 2000))
	}
	if stderr.Len() > 0 {
		t.Logf("capwatch stderr:\n%s", head(stderr.String(), 4000))
	}
	return stdout.Bytes(), code
}

// auditJSON runs `capwatch audit -f - -o json ARGS...` over input and decodes the report list.
func auditJSON(t *testing.T, input []byte, args ...string) (*reportList, int) {
	t.Helper()
	out, code := runCapwatch(t, input, append([]string{"audit", "-f", "-", "-o", "json"}, args...)...)
	var list reportList
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("capwatch audit -o json printed no JSON list: %v\nstdout (first 2000 bytes):\n%s",
			err, head(string(out), 2000))
	}
	if list.Kind != "List" || list.APIVersion != "v1" {
		t.Errorf("capwatch audit -o json printed apiVersion %q kind %q, want v1 List", list.APIVersion, list.Kind)
	}
	for i, r := range list.Items {
		if r.APIVersion != "capwatch.io/v1alpha1" || r.Kind != "CapabilityReport" {
			t.Errorf("item %d (%s/%s) is %s %s, want capwatch.io/v1alpha1 CapabilityReport",
				i, r.Metadata.Namespace, r.Metadata.Name, r.APIVersion, r.Kind)
		}
	}
	return &list, code
}

func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d more bytes)", len(s)-n)
}
