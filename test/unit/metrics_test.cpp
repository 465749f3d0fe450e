#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "metrics/metrics.h"
#include "report/report_builder.h"
#include "test_support.h"

namespace capwatch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A manifest's workload and its evaluation under the default policy, kept alive for the test
// (the evaluation points into the workload's Pod).
struct Evaluated {
  ManifestWorkload workload;
  PodEvaluation evaluation;
};
const Evaluated& EvaluatedFor(const std::string& yaml) {
  static std::vector<std::unique_ptr<Evaluated>> keep;
  keep.push_back(std::make_unique<Evaluated>(Evaluated{testing::OneWorkload(yaml), {}}));
  const Policy policy = DefaultPolicy();
  const Policy* policies[] = {&policy};
  keep.back()->evaluation = Evaluate(keep.back()->workload.pod, policies, Clock::now());
  return *keep.back();
}
const PodEvaluation& EvaluationFor(const std::string& yaml) {
  return EvaluatedFor(yaml).evaluation;
}

const char* kTwoContainers = R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: tools, namespace: netops}
spec:
  template:
    spec:
      containers:
      - {name: a, image: i, securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_ADMIN, NET_RAW]}}}
      - {name: b, image: i, securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_ADMIN]}}}
)";

TEST(Metrics, DomainGaugesFollowReportsAndDropEmptySeries) {
  Metrics m;
  const PodEvaluation& report = EvaluationFor(kTwoContainers);
  m.SetWorkload("netops/tools", "netops", &report);
  std::string text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_violations{namespace="netops",policy="default",rule="dangerous-capability",severity="high"} 2)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_ADMIN",dangerous="true",namespace="netops"} 2)"));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="netops"} 1)"));

  m.SetWorkload("netops/tools", "netops", &report);  // the same report again changes nothing
  EXPECT_EQ(m.Render(), text);

  m.SetWorkload("netops/tools", "netops", nullptr);
  text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr("capwatch_violations{")));
  EXPECT_THAT(text, Not(HasSubstr("capwatch_capability_grants{")));
  EXPECT_THAT(text, Not(HasSubstr("capwatch_workloads{")));
}

const char* kOneContainer = R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: probe, namespace: netops}
spec:
  template:
    spec:
      containers:
      - {name: a, image: i, securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [NET_RAW]}}}
)";

TEST(Metrics, SeriesSharedByWorkloadsAreTheSumOfTheirReports) {
  Metrics m;
  const PodEvaluation& tools = EvaluationFor(kTwoContainers);  // NET_ADMIN ×2, NET_RAW ×1
  const PodEvaluation& probe = EvaluationFor(kOneContainer);   // NET_RAW ×1
  m.SetWorkload("netops/tools", "netops", &tools);
  m.SetWorkload("netops/probe", "netops", &probe);
  std::string text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="netops"} 2)"));

  // tools now holds what probe holds: NET_ADMIN's series goes, NET_RAW's stays at 2.
  m.SetWorkload("netops/tools", "netops", &probe);
  text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr(R"(capability="NET_ADMIN")")));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 2)"));

  m.SetWorkload("netops/probe", "netops", nullptr);
  text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="netops"} 1)"));

  m.SetWorkload("netops/tools", "netops", nullptr);
  m.SetWorkload("netops/tools", "netops", nullptr);  // gone twice is gone
  text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr("capwatch_capability_grants{")));
  EXPECT_THAT(text, Not(HasSubstr("capwatch_workloads{")));
}

// A report of a hundred containers adding everything is cut to stay under the API server's
// limit, its lowest-severity findings left out. The gauges count from the evaluation, so they
// still see every violating container.
TEST(Metrics, ViolationsCountEveryContainerEvenWhenTheReportLeavesFindingsOut) {
  std::string yaml = R"(
apiVersion: v1
kind: Pod
metadata: {name: everything, namespace: wide}
spec:
  containers:
)";
  const std::string caps =
      "CHOWN, DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER, FSETID, KILL, SETGID, SETUID, SETPCAP, "
      "LINUX_IMMUTABLE, NET_BIND_SERVICE, NET_BROADCAST, NET_ADMIN, NET_RAW, IPC_LOCK, "
      "IPC_OWNER, SYS_MODULE, SYS_RAWIO, SYS_CHROOT, SYS_PTRACE, SYS_PACCT, SYS_ADMIN, SYS_BOOT, "
      "SYS_NICE, SYS_RESOURCE, SYS_TIME, SYS_TTY_CONFIG, MKNOD, LEASE, AUDIT_WRITE, "
      "AUDIT_CONTROL, SETFCAP, MAC_OVERRIDE, MAC_ADMIN, SYSLOG, WAKE_ALARM, BLOCK_SUSPEND, "
      "AUDIT_READ, PERFMON, BPF, CHECKPOINT_RESTORE";
  for (int i = 0; i < 100; ++i) {
    yaml += "  - {name: c" + std::to_string(i) +
            ", image: i, securityContext: {capabilities: {add: [" + caps + "]}}}\n";
  }
  const Evaluated& e = EvaluatedFor(yaml);
  const ManifestWorkload& w = e.workload;
  const PodEvaluation& evaluation = e.evaluation;
  const nlohmann::json report = BuildReport({w.ref, w.namespace_name, 1, &w.pod, &evaluation});
  ASSERT_GT(report["summary"]["truncated"].value("findingsOmitted", 0), 0)
      << "the report must be one that leaves findings out";

  Metrics m;
  m.SetWorkload("wide/everything", "wide", &evaluation);
  const std::string text = m.Render();
  const std::regex line(
      R"re(capwatch_violations\{namespace="wide",[^}]*severity="(\w+)"\} (\S+))re");
  std::set<std::string> severities;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator();
       ++it) {
    severities.insert((*it)[1]);
    EXPECT_EQ((*it)[2], "100") << "every container violates every rule here: " << (*it)[0];
  }
  EXPECT_EQ(severities.count("low"), 1u) << "the findings the report left out are counted";
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="SYS_ADMIN",dangerous="true",namespace="wide"} 100)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="wide"} 1)"));
}

TEST(Metrics, CountersAndOperationalMetricsRender) {
  Metrics m;
  m.CountNewDangerousGrant("prod", "SYS_ADMIN");
  m.CountNewDangerousGrant("prod", "SYS_ADMIN");
  m.ApiRequest("GET", 200);
  m.ReportWrite("created");
  m.WatchEvent("pods", "ADDED");
  m.WatchRestart("pods", "gone");
  m.ObserveEvaluation(std::chrono::microseconds(7));
  m.SetCacheObjects("pods", 3);
  m.SetLeader(true);
  const std::string text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(R"(capwatch_dangerous_grants_total{capability="SYS_ADMIN",namespace="prod"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_api_requests_total{code="200",verb="GET"} 1)"));
  EXPECT_THAT(text, HasSubstr("capwatch_evaluation_duration_seconds_count 1"));
  EXPECT_THAT(text, HasSubstr("capwatch_leader 1"));
  EXPECT_THAT(text, HasSubstr("capwatch_build_info{version="));
}

TEST(Metrics, ForgettingANamespaceDropsItsCountersOnly) {
  Metrics m;
  m.CountNewDangerousGrant("prod", "SYS_ADMIN");
  m.CountNewDangerousGrant("dev", "SYS_ADMIN");
  m.ForgetNamespace("prod");
  m.ForgetNamespace("never-seen");
  const std::string text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr(R"(namespace="prod")")));
  EXPECT_THAT(
      text,
      HasSubstr(R"(capwatch_dangerous_grants_total{capability="SYS_ADMIN",namespace="dev"} 1)"));
}

// The domain families are rendered by capwatch itself: the text must be what a Prometheus
// parser takes, whatever a report's strings hold.
TEST(Metrics, TheRenderedTextIsWellFormedAndEscapesLabelValues) {
  Metrics m;
  const PodEvaluation& tools = EvaluationFor(kTwoContainers);
  m.SetWorkload("netops/tools", "netops", &tools);
  PodEvaluation strange;
  Finding odd;
  odd.policy = "a\"b\\c\nd";  // no such name gets past the API server; rendered safely anyway
  odd.rule = Rule::kPrivileged;
  odd.severity = Severity::kHigh;
  odd.container = "c";
  strange.findings.push_back(odd);
  m.SetWorkload("ns/strange", "ns", &strange);
  m.CountNewDangerousGrant("netops", "NET_ADMIN");
  m.ApiRequest("GET", 200);
  const std::string text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_violations{namespace="ns",policy="a\"b\\c\nd",rule="privileged",severity="high"} 1)"));

  const std::regex sample(
      R"(^([a-z_]+)(\{([a-z_]+="([^"\\]|\\["\\n])*")(,[a-z_]+="([^"\\]|\\["\\n])*")*\})? -?[0-9.e+-]+$)");
  const std::regex comment(R"(^# (HELP|TYPE) ([a-z_]+) .+$)");
  std::map<std::string, int> types;
  std::set<std::string> sampled;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::smatch m1;
    if (std::regex_match(line, m1, comment)) {
      if (m1[1] == "TYPE") ++types[m1[2]];
      continue;
    }
    ASSERT_TRUE(std::regex_match(line, m1, sample)) << "not a sample line: " << line;
    sampled.insert(m1[1]);
  }
  for (const char* family :
       {"capwatch_violations", "capwatch_capability_grants", "capwatch_workloads",
        "capwatch_dangerous_grants_total", "capwatch_api_requests_total"}) {
    EXPECT_EQ(types[family], 1) << family << ": one TYPE line";
    EXPECT_EQ(sampled.count(family), 1u) << family;
  }
}

TEST(MetricsDoc, ListsExactlyTheMetricsInCode) {
  std::ifstream in(CAPWATCH_SOURCE_DIR "/docs/metrics.md");
  ASSERT_TRUE(in) << "docs/metrics.md is missing";
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  std::set<std::string> documented;
  const std::regex row(R"(\n\| `(capwatch_[a-z_]+)` \| (\w+) \|)");
  for (std::sregex_iterator it(doc.begin(), doc.end(), row), end; it != end; ++it) {
    documented.insert((*it)[1].str() + " " + (*it)[2].str());
  }
  std::set<std::string> in_code;
  for (const auto& m : MetricCatalog())
    in_code.insert(std::string(m.name) + " " + std::string(m.type));
  EXPECT_EQ(documented, in_code);
}

}  // namespace
}  // namespace capwatch
