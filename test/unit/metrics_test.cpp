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

nlohmann::json ReportFor(const std::string& yaml) {
  static std::vector<std::unique_ptr<ManifestWorkload>> keep;
  static std::vector<std::unique_ptr<PodEvaluation>> evals;
  keep.push_back(std::make_unique<ManifestWorkload>(testing::OneWorkload(yaml)));
  const Policy policy = DefaultPolicy();
  const Policy* policies[] = {&policy};
  evals.push_back(
      std::make_unique<PodEvaluation>(Evaluate(keep.back()->pod, policies, Clock::now())));
  const auto& w = *keep.back();
  return BuildReport({w.ref, w.namespace_name, 1, &w.pod, evals.back().get()});
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
  const auto report = ReportFor(kTwoContainers);
  m.SetReport("netops/tools", &report);
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

  m.SetReport("netops/tools", &report);  // the same report again changes nothing
  EXPECT_EQ(m.Render(), text);

  m.SetReport("netops/tools", nullptr);
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
  const auto tools = ReportFor(kTwoContainers);  // NET_ADMIN ×2, NET_RAW ×1
  const auto probe = ReportFor(kOneContainer);   // NET_RAW ×1
  m.SetReport("netops/tools", &tools);
  m.SetReport("netops/probe", &probe);
  std::string text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 2)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="netops"} 2)"));

  // tools now holds what probe holds: NET_ADMIN's series goes, NET_RAW's stays at 2.
  m.SetReport("netops/tools", &probe);
  text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr(R"(capability="NET_ADMIN")")));
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 2)"));

  m.SetReport("netops/probe", nullptr);
  text = m.Render();
  EXPECT_THAT(
      text,
      HasSubstr(
          R"(capwatch_capability_grants{capability="NET_RAW",dangerous="false",namespace="netops"} 1)"));
  EXPECT_THAT(text, HasSubstr(R"(capwatch_workloads{compliant="false",namespace="netops"} 1)"));

  m.SetReport("netops/tools", nullptr);
  m.SetReport("netops/tools", nullptr);  // gone twice is gone
  text = m.Render();
  EXPECT_THAT(text, Not(HasSubstr("capwatch_capability_grants{")));
  EXPECT_THAT(text, Not(HasSubstr("capwatch_workloads{")));
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
  const auto tools = ReportFor(kTwoContainers);
  m.SetReport("netops/tools", &tools);
  const auto strange = nlohmann::json::parse(R"({
    "metadata": {"namespace": "ns"},
    "findings": [{"result": "fail", "policy": "a\"b\\c\nd", "rule": "privileged",
                  "severity": "high", "container": "c"}],
    "containers": [],
    "summary": {"compliant": false}})");
  m.SetReport("ns/strange", &strange);
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
  for (const char* family : {"capwatch_violations", "capwatch_capability_grants",
                             "capwatch_workloads", "capwatch_dangerous_grants_total",
                             "capwatch_api_requests_total"}) {
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
