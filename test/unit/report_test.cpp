#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <set>

#include "report/report_builder.h"
#include "test_support.h"

namespace capwatch {
namespace {

using nlohmann::json;

struct Built {
  ManifestWorkload workload;
  PodEvaluation evaluation;
  json report;
};

Built Build(const std::string& yaml, const Policy& policy = DefaultPolicy(),
            ReportOptions options = {}) {
  Built b;
  b.workload = testing::OneWorkload(yaml);
  const Policy* policies[] = {&policy};
  b.evaluation = Evaluate(b.workload.pod, policies, Clock::now());
  b.report = BuildReport(
      {b.workload.ref, b.workload.namespace_name, 3, &b.workload.pod, &b.evaluation}, options);
  return b;
}

const char* kDeployment = R"(
apiVersion: apps/v1
kind: Deployment
metadata: {name: webserver, namespace: web, uid: d-1}
spec:
  template:
    metadata:
      annotations: {capwatch.io/justification.NET_BIND_SERVICE: "binds :80"}
    spec:
      containers:
      - name: nginx
        image: nginx:alpine
        securityContext:
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, SYS_ADMIN]}
      - name: sidecar
        image: envoy
)";

TEST(Report, HasTheShapeOfDesignSection2) {
  const Built b = Build(kDeployment);
  const json& r = b.report;
  EXPECT_EQ(r["apiVersion"], "capwatch.io/v1alpha1");
  EXPECT_EQ(r["kind"], "CapabilityReport");
  EXPECT_EQ(r["metadata"]["name"], "deployment-webserver");
  EXPECT_EQ(r["metadata"]["namespace"], "web");
  EXPECT_EQ(r["metadata"]["ownerReferences"][0]["uid"], "d-1");
  EXPECT_EQ(r["workload"]["kind"], "Deployment");
  EXPECT_EQ(r["workload"]["pods"], 3);
  EXPECT_EQ(r["summary"]["containers"], 2);
  EXPECT_EQ(r["summary"]["compliant"], false);
  EXPECT_EQ(r["summary"]["highestSeverity"], "critical");
  EXPECT_EQ(r["summary"]["critical"], 1);  // SYS_ADMIN
  const json& nginx = r["containers"][0];
  EXPECT_EQ(nginx["name"], "nginx");
  EXPECT_EQ(nginx["type"], "container");
  EXPECT_EQ(nginx["granted"], json::array({"NET_BIND_SERVICE", "SYS_ADMIN"}));
  EXPECT_EQ(nginx["dropped"], json::array({"ALL"}));
  EXPECT_EQ(nginx["justifications"]["NET_BIND_SERVICE"], "binds :80");
  EXPECT_EQ(nginx["allowPrivilegeEscalation"], false);
  const json& sidecar = r["containers"][1];
  EXPECT_EQ(sidecar["granted"].size(), 14u) << "the containerd default set is reported";
  int violations = 0;
  for (const auto& f : r["findings"]) {
    EXPECT_TRUE(f.contains("rule") && f.contains("severity") && f.contains("message") &&
                f.contains("remediation") && f.contains("result"));
    violations += f["result"] == "fail";
  }
  EXPECT_EQ(r["summary"]["violations"], violations);
}

TEST(Report, IsDeterministicAndHashesItsContent) {
  const Built a = Build(kDeployment);
  const Built b = Build(kDeployment);
  EXPECT_EQ(a.report.dump(), b.report.dump());
  const std::string hash = a.report["metadata"]["annotations"][std::string(kContentHashAnnotation)];
  EXPECT_EQ(hash, ContentHash(a.report));
  std::string changed = kDeployment;
  changed.replace(changed.find("SYS_ADMIN"), 9, "SYS_PTRACE");
  EXPECT_NE(hash, ContentHash(Build(changed).report));
}

TEST(Report, StaysUnderOneMebibyteForAThousandContainersAddingEverything) {
  std::string yaml =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: huge, namespace: x}\nspec:\n  containers:\n";
  std::string all_caps;
  for (const auto& c : Catalog())
    all_caps += std::string(all_caps.empty() ? "" : ", ") + std::string(c.name);
  for (int i = 0; i < 1000; ++i) {
    yaml += "  - {name: c" + std::to_string(i) +
            ", image: i, securityContext: {capabilities: {add: [" + all_caps + "]}}}\n";
  }
  const Built b = Build(yaml);
  const std::string text = b.report.dump();
  EXPECT_LT(text.size(), 1u << 20);
  const json& summary = b.report["summary"];
  ASSERT_TRUE(summary.contains("truncated"));
  EXPECT_GT(summary["truncated"]["findingsOmitted"].get<int>(), 0);
  EXPECT_EQ(summary["containers"], 1000);
  // The counts cover everything, kept or left out.
  EXPECT_EQ(summary["violations"].get<std::size_t>(), b.evaluation.findings.size());
  EXPECT_EQ(
      b.report["findings"].size() + summary["truncated"]["findingsOmitted"].get<std::size_t>(),
      b.evaluation.findings.size());
  // The worst findings are the ones kept.
  EXPECT_EQ(b.report["findings"][0]["severity"], "critical");
}

TEST(Report, ACappedReportKeepsTheCriticalFindingsAmongThousandsOfJunkNames) {
  // SYS_ADMIN hidden among 5,000 names that are no capability, and a field of the wrong type.
  std::string yaml =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: junk, namespace: x}\nspec:\n  containers:\n"
      "  - name: c\n    image: i\n    securityContext:\n      privileged: \"no\"\n"
      "      capabilities:\n        drop: [ALL]\n        add:\n";
  for (int i = 0; i < 5000; ++i) {
    yaml += "        - JUNK_" + std::to_string(i) + "\n";
    if (i == 2500) yaml += "        - SYS_ADMIN\n";
  }
  const Built b = Build(yaml, DefaultPolicy(), ReportOptions{256 * 1024});
  EXPECT_LT(b.report.dump().size(), 256u * 1024);
  const json& summary = b.report["summary"];
  ASSERT_TRUE(summary.contains("truncated")) << "5,000 unknown-capability findings do not fit";
  EXPECT_GT(summary["truncated"]["findingsOmitted"].get<int>(), 0);
  EXPECT_EQ(summary["critical"], 2);
  std::set<std::string> critical;
  for (const auto& f : b.report["findings"]) {
    if (f["severity"] == "critical") critical.insert(f["rule"].get<std::string>());
  }
  EXPECT_EQ(critical, (std::set<std::string>{"dangerous-capability", "unreadable-field"}))
      << "the size cap leaves out the low-severity findings, never the critical ones";
}

TEST(Report, WindowsPodsCarryTheNote) {
  const Built b = Build(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  os: {name: windows}\n"
      "  containers: [{name: c, image: i}]\n");
  EXPECT_THAT(b.report["note"].get<std::string>(), ::testing::HasSubstr("Windows"));
  EXPECT_EQ(b.report["summary"]["compliant"], true);
}

}  // namespace
}  // namespace capwatch

#include "report/dangerous_grants.h"

namespace capwatch {
namespace {

TEST(DangerousGrants, OnlyWhatTheStoredReportDidNotAlreadyHaveIsNew) {
  // nginx adds SYS_ADMIN; the sidecar holds DAC_OVERRIDE from the runtime's default set, which
  // the report shows as a finding but which is no grant anybody made.
  const Built before = Build(kDeployment);
  EXPECT_EQ(DangerousGrantsOf(before.report), (std::set<DangerousGrant>{{"nginx", "SYS_ADMIN"}}));
  EXPECT_EQ(NewDangerousGrants(nullptr, before.report).size(), 1u) << "a new workload";

  std::string privileged = kDeployment;
  privileged.replace(privileged.find("image: envoy"), 12,
                     "image: envoy\n        securityContext: {privileged: true}");
  EXPECT_EQ(DangerousGrantsOf(Build(privileged).report),
            (std::set<DangerousGrant>{{"nginx", "SYS_ADMIN"}, {"sidecar", "privileged"}}));
  EXPECT_TRUE(NewDangerousGrants(&before.report, before.report).empty())
      << "a restart or relist over an unchanged workload";

  std::string changed = kDeployment;
  changed.replace(changed.find("SYS_ADMIN"), 9, "SYS_ADMIN, SYS_PTRACE");
  const Built after = Build(changed);
  const auto added = NewDangerousGrants(&before.report, after.report);
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].container, "nginx");
  EXPECT_EQ(added[0].capability, "SYS_PTRACE");
}

}  // namespace
}  // namespace capwatch

#include <yaml-cpp/yaml.h>

#include "policy/policy_parser.h"
#include "report/policy_report.h"

namespace capwatch {
namespace {

// The projection into the shared formats (openreports.io Report, wgpolicyk8s.io PolicyReport).
class PolicyReportProjection : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = ParsePolicy(YAML::Load(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: web-rules}
spec:
  forbiddenCapabilities: [SYS_ADMIN, NET_BIND_SERVICE]
  exemptions:
  - {name: binds-80, containers: [nginx], capabilities: [NET_BIND_SERVICE], reason: "port 80",
     expires: "2099-01-01T00:00:00Z"}
)"));
    ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
    policy_ = parsed.value();
    built_ = Build(kDeployment, policy_);
  }

  json Project(PolicyReportFormat format, std::vector<std::string> policies = {"web-rules"},
               Clock::time_point now = Clock::from_time_t(1'800'000'000)) {
    return ProjectPolicyReport(built_.report, policies, format, "report-uid-1", now);
  }

  Policy policy_;
  Built built_;
};

TEST_F(PolicyReportProjection, OneResultPerFindingWithItsContainerAndCapability) {
  const json r = Project(PolicyReportFormat::kOpenReports);
  EXPECT_EQ(r["apiVersion"], "openreports.io/v1alpha1");
  EXPECT_EQ(r["kind"], "Report");
  EXPECT_EQ(r["source"], "capwatch");
  EXPECT_EQ(r["metadata"]["name"], "capwatch-deployment-webserver");
  EXPECT_EQ(r["metadata"]["namespace"], "web");
  EXPECT_EQ(r["metadata"]["ownerReferences"][0]["kind"], "CapabilityReport");
  EXPECT_EQ(r["metadata"]["ownerReferences"][0]["uid"], "report-uid-1");
  EXPECT_EQ(r["scope"], json({{"apiVersion", "apps/v1"},
                              {"kind", "Deployment"},
                              {"name", "webserver"},
                              {"namespace", "web"},
                              {"uid", "d-1"}}));
  ASSERT_EQ(r["results"].size(), built_.report["findings"].size());
  bool sys_admin = false, exempt = false;
  for (const auto& res : r["results"]) {
    EXPECT_EQ(res["source"], "capwatch");
    EXPECT_EQ(res["policy"], "web-rules");
    EXPECT_TRUE(res["timestamp"].contains("seconds"));
    const json& p = res["properties"];
    if (p.value("capability", "") == "SYS_ADMIN" && p.value("container", "") == "nginx") {
      sys_admin = true;
      EXPECT_EQ(res["result"], "fail");
      EXPECT_EQ(res["rule"], "dangerous-capability");
      EXPECT_EQ(res["severity"], "critical");
      EXPECT_FALSE(p.value("remediation", "").empty());
    }
    if (p.value("capability", "") == "NET_BIND_SERVICE" && p.value("container", "") == "nginx") {
      exempt = true;
      EXPECT_EQ(res["result"], "skip") << "an exempted finding";
      EXPECT_EQ(p["exemption"], "binds-80");
      EXPECT_EQ(p["exemptionReason"], "port 80");
      EXPECT_EQ(p["exemptionExpires"], "2099-01-01T00:00:00Z");
    }
  }
  EXPECT_TRUE(sys_admin && exempt) << r.dump(2);
  const int violations = built_.report["summary"]["violations"];
  EXPECT_EQ(r["summary"]["fail"], violations);
  EXPECT_EQ(r["summary"]["skip"], built_.report["summary"]["exempted"]);
  EXPECT_EQ(r["summary"]["pass"], 0) << "web-rules fails";
}

TEST_F(PolicyReportProjection, AMatchingPolicyWithoutAFailureIsOnePass) {
  const json r = Project(PolicyReportFormat::kOpenReports, {"web-rules", "quiet"});
  EXPECT_EQ(r["summary"]["pass"], 1);
  const json& last = r["results"].back();
  EXPECT_EQ(last["policy"], "quiet");
  EXPECT_EQ(last["result"], "pass");
}

TEST_F(PolicyReportProjection, TheOlderFormatCarriesTheSourceInEachResult) {
  const json r = Project(PolicyReportFormat::kWgPolicy);
  EXPECT_EQ(r["apiVersion"], "wgpolicyk8s.io/v1alpha2");
  EXPECT_EQ(r["kind"], "PolicyReport");
  EXPECT_FALSE(r.contains("source"));
  for (const auto& res : r["results"]) EXPECT_EQ(res["source"], "capwatch");
}

TEST_F(PolicyReportProjection, TheHashIgnoresTheTimeAndFollowsTheContent) {
  const json a = Project(PolicyReportFormat::kOpenReports);
  const json b =
      Project(PolicyReportFormat::kOpenReports, {"web-rules"}, Clock::from_time_t(1'900'000'000));
  const auto hash = [](const json& r) {
    return r["metadata"]["annotations"][std::string(kContentHashAnnotation)];
  };
  EXPECT_NE(a["results"][0]["timestamp"], b["results"][0]["timestamp"]);
  EXPECT_EQ(hash(a), hash(b)) << "written only on change, not on every evaluation";
  EXPECT_NE(hash(a), hash(Project(PolicyReportFormat::kOpenReports, {"web-rules", "quiet"})));
  EXPECT_NE(hash(a),
            hash(ProjectPolicyReport(built_.report, {"web-rules"}, PolicyReportFormat::kOpenReports,
                                     "report-uid-2", Clock::from_time_t(1'800'000'000))))
      << "a recreated report is a new owner";
}

TEST(PolicyReportSummary, ASizeCappedReportCountsEveryFindingNotOnlyThoseKept) {
  std::string yaml =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: junk, namespace: x}\nspec:\n  containers:\n"
      "  - name: c\n    image: i\n    securityContext:\n      capabilities:\n        drop: [ALL]\n"
      "        add:\n";
  for (int i = 0; i < 3000; ++i) yaml += "        - JUNK_" + std::to_string(i) + "\n";
  const Built b = Build(yaml, DefaultPolicy(), ReportOptions{128 * 1024});
  ASSERT_TRUE(b.report["summary"].contains("truncated"));
  const json r = ProjectPolicyReport(b.report, {"default"}, PolicyReportFormat::kOpenReports, "uid",
                                     Clock::from_time_t(1'800'000'000));
  EXPECT_LT(r["results"].size(), 3000u);
  EXPECT_EQ(r["summary"]["fail"], b.report["summary"]["violations"]);
  EXPECT_GE(r["summary"]["fail"].get<int>(), 3000);
}

TEST(PolicyReportName, ALongNameIsShortenedToAValidName) {
  EXPECT_EQ(PolicyReportName("deployment-web"), "capwatch-deployment-web");
  const std::string long_name = "deployment-" + std::string(242, 'a');
  const std::string a = PolicyReportName(long_name);
  EXPECT_LE(a.size(), 253u);
  EXPECT_NE(a, PolicyReportName(long_name + "b")) << "two long names stay apart";
  EXPECT_TRUE(a.starts_with("capwatch-deployment-aaa"));
}

}  // namespace
}  // namespace capwatch
