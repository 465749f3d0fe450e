#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"

namespace capwatch {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::testing::HasSubstr;

struct AuditRun {
  int code;
  std::string out;
  std::string err;
};

AuditRun Audit(std::vector<std::string> args, const std::string& stdin_text = "") {
  std::istringstream in(stdin_text);
  std::ostringstream out, err;
  CommandIo io{in, out, err, false};
  const int code = RunAudit(args, io);
  return {code, out.str(), err.str()};
}

class AuditCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("capwatch-cli-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& content) {
    const fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << content;
    return p.string();
  }

  fs::path dir_;
};

const char* kCompliant = R"(apiVersion: v1
kind: Pod
metadata: {name: secure-app}
spec:
  securityContext: {runAsNonRoot: true}
  containers:
  - name: app
    image: app:v1.0
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
)";

const char* kSysAdmin = R"(apiVersion: apps/v1
kind: Deployment
metadata: {name: admin, namespace: ops}
spec:
  template:
    spec:
      containers:
      - name: tool
        image: tool
        securityContext:
          runAsNonRoot: true
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL], add: [SYS_ADMIN, NET_RAW]}
)";

TEST_F(AuditCommand, ExitsZeroWhenCompliant) {
  const AuditRun r = Audit({"-f", Write("ok.yaml", kCompliant)});
  EXPECT_EQ(r.code, kExitCompliant) << r.err;
  EXPECT_THAT(r.out, HasSubstr("1 workload(s): 1 compliant"));
}

TEST_F(AuditCommand, ExitsOneOnFindingsAndPrintsATable) {
  const AuditRun r = Audit({"-f", Write("admin.yaml", kSysAdmin)});
  EXPECT_EQ(r.code, kExitFindings);
  EXPECT_THAT(r.out, HasSubstr("WORKLOAD"));
  EXPECT_THAT(r.out, HasSubstr("ops/Deployment/admin"));
  EXPECT_THAT(r.out, HasSubstr("dangerous-capability"));
  EXPECT_THAT(r.out, HasSubstr("SYS_ADMIN"));
  EXPECT_EQ(r.out.find("\033["), std::string::npos) << "no colour when not on a terminal";
}

TEST_F(AuditCommand, FailOnThresholdDecidesTheExitCode) {
  const std::string file = Write("admin.yaml", kSysAdmin);
  EXPECT_EQ(Audit({"-f", file, "--fail-on", "critical"}).code, kExitFindings);  // SYS_ADMIN
  const std::string raw =
      Write("raw.yaml",
            std::string(kSysAdmin).replace(std::string(kSysAdmin).find("SYS_ADMIN, "), 11, ""));
  EXPECT_EQ(Audit({"-f", raw, "--fail-on", "critical"}).code, kExitCompliant);
  EXPECT_EQ(Audit({"-f", raw, "--fail-on=medium"}).code, kExitFindings);  // NET_RAW is medium
}

TEST_F(AuditCommand, JsonIsAListOfCapabilityReports) {
  const AuditRun r = Audit({"-f", Write("admin.yaml", kSysAdmin), "-o", "json"});
  ASSERT_EQ(r.code, kExitFindings);
  const json list = json::parse(r.out);
  EXPECT_EQ(list["apiVersion"], "v1");
  EXPECT_EQ(list["kind"], "List");
  ASSERT_EQ(list["items"].size(), 1u);
  const json& report = list["items"][0];
  EXPECT_EQ(report["kind"], "CapabilityReport");
  EXPECT_EQ(report["metadata"]["name"], "deployment-admin");
  EXPECT_EQ(report["summary"]["violations"], 2);
}

TEST_F(AuditCommand, SarifHasRulesResultsAndLines) {
  const std::string file = Write("admin.yaml", kSysAdmin);
  const AuditRun r = Audit({"-f", file, "-o", "sarif"});
  ASSERT_EQ(r.code, kExitFindings);
  const json sarif = json::parse(r.out);
  EXPECT_EQ(sarif["version"], "2.1.0");
  const json& run = sarif["runs"][0];
  EXPECT_EQ(run["tool"]["driver"]["name"], "capwatch");
  EXPECT_EQ(run["tool"]["driver"]["rules"].size(), 10u);
  ASSERT_EQ(run["results"].size(), 2u);
  for (const auto& result : run["results"]) {
    const json& loc = result["locations"][0]["physicalLocation"];
    EXPECT_EQ(loc["artifactLocation"]["uri"], file);
    EXPECT_EQ(loc["region"]["startLine"], 8) << "the line of the container";
    const int index = result["ruleIndex"];
    EXPECT_EQ(run["tool"]["driver"]["rules"][index]["id"], result["ruleId"]);
  }
  EXPECT_EQ(run["results"][0]["level"], "error");
}

TEST_F(AuditCommand, ProfileAloneEvaluatesExactlyThatProfile) {
  const AuditRun r =
      Audit({"-f", Write("admin.yaml", kSysAdmin), "--profile", "baseline", "-o", "json"});
  const json list = json::parse(r.out);
  const json& findings = list["items"][0]["findings"];
  ASSERT_EQ(findings.size(), 2u);
  for (const auto& f : findings) {
    EXPECT_EQ(f["policy"], "baseline");
    EXPECT_EQ(f["pssControl"], "capabilities_baseline");
  }
}

TEST_F(AuditCommand, ReadsDirectoriesAndStandardInput) {
  Write("dir/a.yaml", kCompliant);
  Write("dir/b.yml", kSysAdmin);
  Write("dir/notes.txt", "not a manifest");
  Write("dir/sub/c.yaml", kSysAdmin);
  AuditRun r = Audit({"-f", (dir_ / "dir").string()});
  EXPECT_EQ(r.code, kExitFindings) << r.err;
  EXPECT_THAT(r.out, HasSubstr("2 workload(s)"));
  r = Audit({"-f", (dir_ / "dir").string(), "-R"});
  EXPECT_THAT(r.out, HasSubstr("3 workload(s)")) << "the same Deployment in two files: both count";
  EXPECT_THAT(r.err, HasSubstr("is defined in"));
  r = Audit({"-f", "-"}, kCompliant);
  EXPECT_EQ(r.code, kExitCompliant) << r.err;
}

TEST_F(AuditCommand, UsesPolicyFilesAndReportsTheirErrors) {
  const std::string policy = Write("policy.yaml", R"(apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: lenient}
spec: {forbiddenCapabilities: [SYS_MODULE]}
)");
  const AuditRun ok = Audit({"-f", Write("admin.yaml", kSysAdmin), "--policy", policy});
  EXPECT_EQ(ok.code, kExitCompliant) << ok.out << ok.err;

  const std::string bad = Write("bad-policy.yaml", R"(apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: broken}
spec: {forbiddenCapabilities: [SYS_ADMN]}
)");
  const AuditRun r = Audit({"-f", Write("a.yaml", kSysAdmin), "--policy", bad});
  EXPECT_EQ(r.code, kExitBadInput);
  EXPECT_THAT(r.err, HasSubstr("bad-policy.yaml"));
  EXPECT_THAT(r.err, HasSubstr(".spec.forbiddenCapabilities[0]"));
  EXPECT_THAT(r.err, HasSubstr("did you mean SYS_ADMIN"));
}

TEST_F(AuditCommand, BadInputExitsTwoNamingFileDocumentAndField) {
  const std::string file =
      Write("bad.yaml", std::string(kCompliant) + "---\n" +
                            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
                            "spec: {containers: [{name: c, securityContext: {privileged: [}]}\n");
  AuditRun r = Audit({"-f", file});
  EXPECT_EQ(r.code, kExitBadInput) << "not YAML";
  EXPECT_THAT(r.err, HasSubstr("bad.yaml"));
  EXPECT_THAT(r.err, HasSubstr("not valid YAML"));

  const std::string unknown =
      Write("unknown.yaml", std::string(kCompliant) + "---\n" +
                                "apiVersion: v1\nkind: Deploymnet\nmetadata: {name: x}\n");
  r = Audit({"-f", unknown});
  EXPECT_EQ(r.code, kExitBadInput) << "an unknown kind";
  EXPECT_THAT(r.err, HasSubstr("unknown.yaml, document 2, line 13, field .kind"));
  EXPECT_THAT(r.out, HasSubstr("1 workload(s)")) << "what could be read is still evaluated";
}

// Fail closed: a field of the wrong type does not take the object out of the audit.
TEST_F(AuditCommand, AWrongTypeIsACriticalFindingOfTheObjectNotAnInputError) {
  const std::string file =
      Write("typed.yaml", std::string(kCompliant) + "---\n" +
                              "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"
                              "spec:\n  containers:\n  - name: c\n    securityContext:\n"
                              "      privileged: 3\n      capabilities: {add: [SYS_ADMIN, 7]}\n");
  AuditRun r = Audit({"-f", file, "--fail-on", "critical"});
  EXPECT_EQ(r.code, kExitFindings) << r.err;
  EXPECT_THAT(r.err, HasSubstr("typed.yaml, document 2, line 20, field "
                               ".spec.containers[0].securityContext.privileged: expected a "
                               "boolean, got a number"));
  EXPECT_THAT(r.out, HasSubstr("2 workload(s)"));
  EXPECT_THAT(r.out, HasSubstr("unreadable-field"));

  r = Audit({"-f", file, "-o", "json"});
  EXPECT_EQ(r.code, kExitFindings);
  const json list = json::parse(r.out);
  ASSERT_EQ(list["items"].size(), 2u);
  const json& report = list["items"][1];
  EXPECT_EQ(report["metadata"]["name"], "pod-x");
  std::vector<std::string> critical;
  for (const auto& f : report["findings"]) {
    if (f["severity"] == "critical")
      critical.push_back(f["rule"].get<std::string>() + " " + f.value("capability", "-"));
  }
  EXPECT_THAT(critical,
              ::testing::UnorderedElementsAre("dangerous-capability SYS_ADMIN",
                                              "unreadable-field -", "unreadable-field -"));

  r = Audit({"-f", file, "-o", "sarif"});
  EXPECT_EQ(r.code, kExitFindings);
  const json sarif = json::parse(r.out);
  int unreadable = 0;
  for (const auto& result : sarif["runs"][0]["results"]) {
    if (result["ruleId"] != "unreadable-field") continue;
    ++unreadable;
    EXPECT_EQ(result["level"], "error");
    EXPECT_THAT(result["message"]["text"].get<std::string>(),
                HasSubstr(".spec.containers[0].securityContext."));
  }
  EXPECT_EQ(unreadable, 2);
}

// 300 names that are no capability do not hide the SYS_ADMIN among them.
TEST_F(AuditCommand, AHugeCapabilityListIsEvaluatedEntryByEntry) {
  std::string yaml = kSysAdmin;
  std::string junk;
  for (int i = 0; i < 300; ++i)
    junk += "JUNK_" + std::to_string(i) + (i == 150 ? ", SYS_ADMIN, " : ", ");
  yaml.replace(yaml.find("SYS_ADMIN, NET_RAW"), 18, junk + "NET_RAW");
  const std::string file = Write("huge.yaml", yaml);
  AuditRun r = Audit({"-f", file, "--fail-on", "critical"});
  EXPECT_EQ(r.code, kExitFindings) << r.err;
  EXPECT_THAT(r.out, HasSubstr("dangerous-capability"));
  for (const std::string format : {"json", "sarif"}) {
    r = Audit({"-f", file, "-o", format});
    EXPECT_EQ(r.code, kExitFindings) << format << r.err;
    const json out = json::parse(r.out);
    bool found = false;
    if (format == "json") {
      ASSERT_EQ(out["items"].size(), 1u);
      for (const auto& f : out["items"][0]["findings"]) {
        found |= f["rule"] == "dangerous-capability" && f["capability"] == "SYS_ADMIN" &&
                 f["severity"] == "critical";
      }
    } else {
      for (const auto& result : out["runs"][0]["results"]) {
        found |= result["ruleId"] == "dangerous-capability" &&
                 result["properties"]["capability"] == "SYS_ADMIN";
      }
    }
    EXPECT_TRUE(found) << format;
  }
}

TEST_F(AuditCommand, UsageErrorsExitTwo) {
  EXPECT_EQ(Audit({}).code, kExitBadInput);
  EXPECT_EQ(Audit({"-f"}).code, kExitBadInput);
  EXPECT_EQ(Audit({"-f", "x.yaml", "-o", "xml"}).code, kExitBadInput);
  EXPECT_EQ(Audit({"-f", "x.yaml", "--fail-on", "urgent"}).code, kExitBadInput);
  EXPECT_EQ(Audit({"-f", "x.yaml", "--profile", "strict"}).code, kExitBadInput);
  const AuditRun missing = Audit({"-f", (dir_ / "missing.yaml").string()});
  EXPECT_EQ(missing.code, kExitBadInput);
  EXPECT_THAT(missing.err, HasSubstr("no such file"));
  EXPECT_EQ(Audit({"-f", Write("empty.yaml", "")}).code, kExitBadInput);
}

TEST(CatalogCommand, PrintsAll41InTableAndJson) {
  std::istringstream in;
  std::ostringstream out, err;
  CommandIo io{in, out, err, false};
  ASSERT_EQ(RunCatalog({}, io), 0);
  EXPECT_THAT(out.str(), HasSubstr("CHECKPOINT_RESTORE"));
  std::ostringstream jout;
  CommandIo jio{in, jout, err, false};
  ASSERT_EQ(RunCatalog({"-o", "json"}, jio), 0);
  const json catalog = json::parse(jout.str());
  ASSERT_EQ(catalog.size(), 41u);
  EXPECT_EQ(catalog[21]["name"], "SYS_ADMIN");
  EXPECT_EQ(catalog[21]["severity"], "critical");
  EXPECT_EQ(catalog[13]["containerdDefault"], true);
  EXPECT_EQ(catalog[13]["crioDefault"], false);
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

// capwatch enforce: the binding's action is --action, else the policy's spec.enforcement.
TEST(EnforceCommand, TheActionComesFromTheFlagElseThePolicy) {
  const std::string policy =
      "apiVersion: capwatch.io/v1alpha1\nkind: CapabilityPolicy\nmetadata: {name: p}\n"
      "spec: {enforcement: {action: Audit}}\n";
  auto action = [&](std::vector<std::string> args) {
    std::istringstream in(policy);
    std::ostringstream out, err;
    CommandIo io{in, out, err, false};
    args.insert(args.begin(), {"-f", "-"});
    EXPECT_EQ(RunEnforce(args, io), 0) << err.str();
    const json list = json::parse(out.str());
    return list["items"][1]["spec"]["validationActions"][0].get<std::string>();
  };
  EXPECT_EQ(action({}), "Audit");
  EXPECT_EQ(action({"--action", "Deny"}), "Deny");
}

}  // namespace
}  // namespace capwatch
