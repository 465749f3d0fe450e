package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// Pod Security admission check IDs (k8s.io/pod-security-admission/policy) for the controls
// capwatch owns, keyed by the reason text PSA puts in its warnings.
var psaReasons = map[string]string{
	"privileged":                        "privileged",
	"non-default capabilities":          "capabilities_baseline",
	"unrestricted capabilities":         "capabilities_restricted",
	"allowPrivilegeEscalation != false": "allowPrivilegeEscalation",
	"runAsNonRoot != true":              "runAsNonRoot",
	"runAsUser=0":                       "runAsUser",
}

// profileControls are the checks each profile runs on what capwatch owns. Under restricted the
// restricted capabilities check replaces the baseline one, as in PSA.
var profileControls = map[string][]string{
	"baseline":   {"privileged", "capabilities_baseline"},
	"restricted": {"privileged", "capabilities_restricted", "allowPrivilegeEscalation", "runAsNonRoot", "runAsUser"},
}

const psaWarningPrefix = "would violate PodSecurity "

// psaViolation is one parsed PodSecurity warning.
type psaViolation struct {
	Policy   string            // e.g. restricted:latest
	Controls map[string]string // check ID -> the reason and detail PSA gave
}

// parsePSAWarning parses `would violate PodSecurity "restricted:latest": reason (detail), ...`.
// ok is false for warnings that are not PodSecurity's.
func parsePSAWarning(w string) (v psaViolation, ok bool, err error) {
	rest, found := strings.CutPrefix(w, psaWarningPrefix)
	if !found {
		return v, false, nil
	}
	if !strings.HasPrefix(rest, `"`) {
		return v, true, fmt.Errorf("no quoted policy in %q", w)
	}
	end := strings.Index(rest[1:], `"`)
	if end < 0 {
		return v, true, fmt.Errorf("unterminated policy in %q", w)
	}
	v.Policy = rest[1 : end+1]
	rest, found = strings.CutPrefix(rest[end+2:], ": ")
	if !found {
		return v, true, fmt.Errorf("no ': ' after the policy in %q", w)
	}
	v.Controls = map[string]string{}
	for _, item := range splitTopLevel(rest) {
		reason := item
		if i := strings.Index(item, " ("); i >= 0 {
			if !strings.HasSuffix(item, ")") {
				return v, true, fmt.Errorf("unbalanced detail in %q (a truncated warning?)", item)
			}
			reason = item[:i]
		}
		id, known := psaReasons[reason]
		if !known {
			return v, true, fmt.Errorf("PodSecurity reason %q is not one of the controls capwatch owns: %q", reason, item)
		}
		v.Controls[id] = item
	}
	if len(v.Controls) == 0 {
		return v, true, fmt.Errorf("no reasons in %q", w)
	}
	return v, true, nil
}

// splitTopLevel splits at ", " outside parentheses and double quotes (details quote container
// and capability names with %q and use commas and semicolons inside).
func splitTopLevel(s string) []string {
	var out []string
	depth, quoted, start := 0, false, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0 && i+1 < len(s) && s[i+1] == ' ':
			out = append(out, s[start:i])
			start = i + 2
			i++
		}
	}
	return append(out, s[start:])
}

func TestParsePSAWarning(t *testing.T) {
	tests := []struct {
		warning string
		policy  string
		ids     []string
		wantErr bool
	}{
		{
			warning: `would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false (container "a" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "a" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "a" must set securityContext.runAsNonRoot=true)`,
			policy:  "restricted:latest",
			ids:     []string{"allowPrivilegeEscalation", "capabilities_restricted", "runAsNonRoot"},
		},
		{
			warning: `would violate PodSecurity "restricted:latest": privileged (containers "c0", "i1" must not set securityContext.privileged=true), unrestricted capabilities (containers "c0", "e0" must set securityContext.capabilities.drop=["ALL"]; container "c0" must not include "cap_sys_admin", "x, (y" in securityContext.capabilities.add), runAsUser=0 (pod and container "c0" must not set runAsUser=0)`,
			policy:  "restricted:latest",
			ids:     []string{"capabilities_restricted", "privileged", "runAsUser"},
		},
		{
			warning: `would violate PodSecurity "baseline:latest": non-default capabilities (container "a" must not include "SYS_ADMIN" in securityContext.capabilities.add)`,
			policy:  "baseline:latest",
			ids:     []string{"capabilities_baseline"},
		},
		{
			warning: `would violate PodSecurity "restricted:latest": seccompProfile (pod or container "a" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`,
			wantErr: true,
		},
		{
			warning: `would violate PodSecurity "restricted:latest": privileged (container "a" must not set securit`,
			wantErr: true,
		},
	}
	for _, tc := range tests {
		v, ok, err := parsePSAWarning(tc.warning)
		if !ok {
			t.Errorf("%q not recognised as a PodSecurity warning", tc.warning)
			continue
		}
		if (err != nil) != tc.wantErr {
			t.Errorf("parsePSAWarning(%q) error = %v, want error %v", tc.warning, err, tc.wantErr)
			continue
		}
		if tc.wantErr {
			continue
		}
		ids := keys(v.Controls)
		if v.Policy != tc.policy || !slices.Equal(ids, tc.ids) {
			t.Errorf("parsePSAWarning(%q) = %s %v, want %s %v", tc.warning, v.Policy, ids, tc.policy, tc.ids)
		}
	}
	if _, ok, _ := parsePSAWarning(`metadata.finalizers: "x": prefer a domain-qualified finalizer name`); ok {
		t.Errorf("a non-PodSecurity warning was taken for one")
	}
}
