package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// promtool is Debian's (package prometheus, in test/install-deps.sh).
func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (Debian package prometheus; bash test/install-deps.sh installs it): %v", err)
	}
	return path
}

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtoolPath(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// exportedMetrics reads the metric names in docs/metrics.md's table (checked against the code
// by a unit test), with the series names a histogram adds.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(capwatch_[a-z_]+)` \\| ([a-z]+) \\|")
	names := map[string]bool{}
	for _, m := range row.FindAllStringSubmatch(string(data), -1) {
		names[m[1]] = true
		if m[2] == "histogram" {
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				names[m[1]+suffix] = true
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %d metrics in docs/metrics.md's table: %v", len(names), names)
	}
	return names
}

var (
	promqlStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promqlMatchers  = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]`)
	promqlGrouping  = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlNonMetric = map[string]bool{"and": true, "or": true, "unless": true, "offset": true,
		"bool": true, "by": true, "without": true, "on": true, "ignoring": true,
		"group_left": true, "group_right": true, "inf": true, "nan": true, "atan2": true}
)

// metricNames returns the metric names a PromQL expression selects: identifiers that are not
// keywords, functions or aggregations, outside strings, label matchers, ranges and grouping
// lists. (The expressions are checked to parse by promtool; this only reads their names.)
func metricNames(expr string) []string {
	e := promqlStrings.ReplaceAllString(expr, `""`)
	e = promqlMatchers.ReplaceAllString(e, " ")
	e = promqlGrouping.ReplaceAllString(e, " ")
	seen := map[string]bool{}
	var names []string
	for _, loc := range promqlIdent.FindAllStringIndex(e, -1) {
		if loc[0] > 0 && strings.ContainsAny(e[loc[0]-1:loc[0]], "0123456789.") {
			continue // a number's exponent or a duration's unit: 1e3, 10m
		}
		name := e[loc[0]:loc[1]]
		call := strings.HasPrefix(strings.TrimLeft(e[loc[1]:], " \t\n"), "(")
		if call || promqlNonMetric[strings.ToLower(name)] || seen[name] {
			continue
		}
		seen[name] = true
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func TestAlertMetricNamesOfPromQL(t *testing.T) {
	for expr, want := range map[string]string{
		`sum by (namespace) (max by (namespace, rule) (capwatch_violations{severity="critical"})) > 0`: "capwatch_violations",
		`up{job="capwatch"} == 0 or absent(up{job="capwatch"})`:                                        "up",
		`(a unless a offset 10m) or increase(a{x=~"y|z"}[10m])`:                                        "a",
		`histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))`:                                   "h_bucket",
		`time() - max(capwatch_last_full_sync_timestamp_seconds) > 1e3`:                                "capwatch_last_full_sync_timestamp_seconds",
		`capwatch_build_info unless on (job, instance) capwatch_leader`:                                "capwatch_build_info capwatch_leader",
		`topk(10, sum by (namespace) (b{n="a b(c)"}))`:                                                 "b",
	} {
		if got := strings.Join(metricNames(expr), " "); got != want {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
}

// checkQueriesParse writes the expressions as recording rules and lets promtool parse them.
func checkQueriesParse(t *testing.T, exprs map[string]string) {
	t.Helper()
	type rule struct {
		Record string `json:"record"`
		Expr   string `json:"expr"`
	}
	var rules []rule
	var keys []string
	for k := range exprs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		rules = append(rules, rule{Record: fmt.Sprintf("capwatch_dashboard:query_%d", i), Expr: exprs[k]})
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "dashboard-queries.yaml")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, promtoolPath(t), "check", "rules", file).CombinedOutput()
	if err != nil {
		var listing strings.Builder
		for i, k := range keys {
			fmt.Fprintf(&listing, "  query_%d (%s): %s\n", i, k, exprs[k])
		}
		t.Fatalf("promtool check rules of the dashboard's queries: %v\n%s\n%s", err, out, listing.String())
	}
}

type alertRule struct {
	Alert       string            `json:"alert"`
	Record      string            `json:"record"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func readAlertRules(t *testing.T, chart string) []alertRule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chart, "files", "prometheus-rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string      `json:"name"`
			Rules []alertRule `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.UnmarshalStrict(data, &file); err != nil {
		t.Fatal(err)
	}
	var rules []alertRule
	for _, g := range file.Groups {
		rules = append(rules, g.Rules...)
	}
	return rules
}

// TestAlertRules: the chart's rules file passes `promtool check rules`, every alert has a
// unit test in testdata/prometheus-rules-test.yaml and they pass (`promtool test rules`),
// every alert has a summary, a description and a runbook_url whose section exists in
// docs/alerts.md, and the expressions name only metrics capwatch exports (and `up`).
func TestAlertRules(t *testing.T) {
	chart := chartPath(t)
	rulesFile := filepath.Join(chart, "files", "prometheus-rules.yaml")
	t.Log(promtool(t, "check", "rules", rulesFile))
	t.Log(promtool(t, "test", "rules", filepath.Join("testdata", "prometheus-rules-test.yaml")))

	tests, err := os.ReadFile(filepath.Join("testdata", "prometheus-rules-test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	runbook, err := os.ReadFile(filepath.Join("..", "..", "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#{2,3} (\S+)\s*$`).FindAllStringSubmatch(string(runbook), -1) {
		headings[m[1]] = true
	}
	metrics := exportedMetrics(t)
	metrics["up"] = true
	rules := readAlertRules(t, chart)
	if len(rules) == 0 {
		t.Fatal("no rules")
	}
	for _, r := range rules {
		if r.Alert == "" {
			continue
		}
		for _, key := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[key]) == "" {
				t.Errorf("alert %s has no %s", r.Alert, key)
			}
		}
		if want := "https://capwatch.io/docs/alerts#" + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
			t.Errorf("alert %s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		if !headings[r.Alert] {
			t.Errorf("alert %s has no runbook section (a heading \"## %s\") in docs/alerts.md", r.Alert, r.Alert)
		}
		if s := r.Labels["severity"]; s != "warning" && s != "critical" {
			t.Errorf("alert %s: severity label %q, want warning or critical", r.Alert, s)
		}
		if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
			t.Errorf("alert %s has no unit test in testdata/prometheus-rules-test.yaml", r.Alert)
		}
		for _, name := range metricNames(r.Expr) {
			if !metrics[name] {
				t.Errorf("alert %s uses %s, which capwatch does not export (docs/metrics.md)", r.Alert, name)
			}
		}
	}
}

// dashboardQueries returns every PromQL expression of the dashboard (panels, rows' panels and
// query variables), keyed by where it is, with Grafana's variables replaced by values of their
// kind so that promtool can parse them.
func dashboardQueries(t *testing.T, dash map[string]any) (exprs map[string]string, variableMetrics []string) {
	t.Helper()
	vars := strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
		"${namespace}", ".*", "$namespace", ".*")
	exprs = map[string]string{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			panel, _ := p.(map[string]any)
			title, _ := panel["title"].(string)
			targets, _ := panel["targets"].([]any)
			for _, tg := range targets {
				target, _ := tg.(map[string]any)
				expr, _ := target["expr"].(string)
				ref, _ := target["refId"].(string)
				if expr == "" {
					t.Errorf("panel %q target %s has no expr", title, ref)
					continue
				}
				exprs[fmt.Sprintf("%s/%s", title, ref)] = vars.Replace(expr)
			}
			if panel["type"] == "row" {
				nested, _ := panel["panels"].([]any)
				walk(nested)
			} else if len(targets) == 0 {
				t.Errorf("panel %q has no query", title)
			}
		}
	}
	panels, _ := dash["panels"].([]any)
	walk(panels)
	templating, _ := dash["templating"].(map[string]any)
	list, _ := templating["list"].([]any)
	labelValues := regexp.MustCompile(`^label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)`)
	for _, v := range list {
		variable, _ := v.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		q := variable["query"]
		if m, ok := q.(map[string]any); ok {
			q = m["query"]
		}
		query, _ := q.(string)
		if m := labelValues.FindStringSubmatch(query); m != nil {
			variableMetrics = append(variableMetrics, m[1])
		} else {
			exprs["variable "+fmt.Sprint(variable["name"])] = vars.Replace(query)
		}
	}
	return exprs, variableMetrics
}

// TestHelmDashboard: the Grafana dashboard is valid JSON, every query parses (promtool) and
// names only metrics capwatch exports (docs/metrics.md), and it has the panels issue 6 asks for.
func TestHelmDashboard(t *testing.T) {
	chart := chartPath(t)
	data, err := os.ReadFile(filepath.Join(chart, "files", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	exprs, variableMetrics := dashboardQueries(t, dash)
	if len(exprs) < 10 {
		t.Fatalf("found only %d queries in the dashboard", len(exprs))
	}
	checkQueriesParse(t, exprs)

	metrics := exportedMetrics(t)
	used := map[string]bool{}
	for where, expr := range exprs {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s names no metric: %s", where, expr)
		}
		for _, name := range names {
			used[name] = true
			if !metrics[name] {
				t.Errorf("%s uses %s, which capwatch does not export (docs/metrics.md): %s", where, name, expr)
			}
		}
	}
	for _, name := range variableMetrics {
		if !metrics[name] {
			t.Errorf("a dashboard variable reads %s, which capwatch does not export", name)
		}
	}
	for _, want := range []string{"capwatch_violations", "capwatch_workloads", "capwatch_dangerous_grants_total",
		"capwatch_capability_grants", "capwatch_watch_restarts_total", "capwatch_api_requests_total",
		"capwatch_report_writes_total", "capwatch_last_full_sync_timestamp_seconds"} {
		if !used[want] {
			t.Errorf("the dashboard shows nothing of %s", want)
		}
	}
}
