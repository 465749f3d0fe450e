#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <yaml-cpp/yaml.h>

#include "policy/policy_parser.h"
#include "test_support.h"

namespace capwatch {
namespace {

using ::testing::ElementsAre;
using testing::EvaluateYaml;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using testing::Summarise;
using ::testing::UnorderedElementsAreArray;

// A pod with one container "c" whose securityContext is `sc` (YAML flow mapping) and whose pod
// securityContext is `pod_sc`.
std::string Pod(const std::string& sc, const std::string& pod_sc = "{}") {
  return "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ns}\nspec:\n"
         "  securityContext: " +
         pod_sc +
         "\n"
         "  containers:\n  - name: c\n    image: img\n    securityContext: " +
         sc + "\n";
}

const std::string kCompliantSc =
    "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}";

// ---- Pod Security Standards, table-driven --------------------------------------------------

struct PssCase {
  std::string name;
  Profile profile;
  std::string container_sc;
  std::string pod_sc;
  std::vector<std::string> expected;  // Summarise() lines
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const PssCase& c, std::ostream* os) { *os << c.name; }

class PssProfileTest : public ::testing::TestWithParam<PssCase> {};

TEST_P(PssProfileTest, MatchesPodSecurityAdmission) {
  const PssCase& c = GetParam();
  const PodEvaluation eval =
      EvaluateYaml(Pod(c.container_sc, c.pod_sc), ProfileOnlyPolicy(c.profile));
  EXPECT_THAT(Summarise(eval), UnorderedElementsAreArray(c.expected)) << c.name;
}

const Profile B = Profile::kBaseline;
const Profile R = Profile::kRestricted;

INSTANTIATE_TEST_SUITE_P(
    Cases, PssProfileTest,
    ::testing::Values(
        // baseline: only the baseline list may be added, compared case-sensitively
        PssCase{"baseline_empty", B, "{}", "{}", {}},
        PssCase{"baseline_allowed_add",
                B,
                "{capabilities: {add: [CHOWN, NET_BIND_SERVICE, KILL]}}",
                "{}",
                {}},
        PssCase{"baseline_net_raw",
                B,
                "{capabilities: {add: [NET_RAW]}}",
                "{}",
                {"capability-not-allowed c NET_RAW [capabilities_baseline]"}},
        PssCase{"baseline_sys_admin",
                B,
                "{capabilities: {add: [SYS_ADMIN]}}",
                "{}",
                {"capability-not-allowed c SYS_ADMIN [capabilities_baseline]"}},
        PssCase{"baseline_lower_case_is_not_allowed",
                B,
                "{capabilities: {add: [chown]}}",
                "{}",
                {"capability-not-allowed c CHOWN [capabilities_baseline]"}},
        PssCase{"baseline_prefix_is_not_allowed",
                B,
                "{capabilities: {add: [CAP_KILL]}}",
                "{}",
                {"capability-not-allowed c KILL [capabilities_baseline]"}},
        PssCase{"baseline_all_keyword",
                B,
                "{capabilities: {add: [ALL]}}",
                "{}",
                {"capability-not-allowed c ALL [capabilities_baseline]"}},
        PssCase{"baseline_unknown_name",
                B,
                "{capabilities: {add: [NET_BIND]}}",
                "{}",
                {"capability-not-allowed c NET_BIND [capabilities_baseline]"}},
        PssCase{"baseline_privileged",
                B,
                "{privileged: true}",
                "{}",
                {"privileged c privileged [privileged]"}},
        PssCase{"baseline_privileged_false", B, "{privileged: false}", "{}", {}},
        PssCase{"baseline_ignores_restricted_controls",
                B,
                "{runAsUser: 0, allowPrivilegeEscalation: true}",
                "{runAsNonRoot: false}",
                {}},
        // restricted
        PssCase{"restricted_compliant", R, kCompliantSc, "{}", {}},
        PssCase{"restricted_compliant_pod_level_non_root",
                R,
                "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: "
                "[NET_BIND_SERVICE]}}",
                "{runAsNonRoot: true}",
                {}},
        PssCase{"restricted_nothing_set",
                R,
                "{}",
                "{}",
                {"drop-all-missing c ALL [capabilities_restricted]",
                 "privilege-escalation c - [allowPrivilegeEscalation]",
                 "runs-as-root c - [runAsNonRoot]"}},
        PssCase{
            "restricted_lower_case_all_fails",
            R,
            "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [all]}}",
            "{}",
            {"drop-all-missing c ALL [capabilities_restricted]"}},
        PssCase{"restricted_drop_individual_caps_fails",
                R,
                "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                "[NET_RAW, CHOWN]}}",
                "{}",
                {"drop-all-missing c ALL [capabilities_restricted]"}},
        PssCase{"restricted_add_other_than_nbs",
                R,
                "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], "
                "add: [CHOWN, NET_BIND_SERVICE]}}",
                "{}",
                {"capability-not-allowed c CHOWN [capabilities_restricted]"}},
        PssCase{"restricted_lower_case_nbs_fails",
                R,
                "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL], "
                "add: [net_bind_service]}}",
                "{}",
                {"capability-not-allowed c NET_BIND_SERVICE [capabilities_restricted]"}},
        PssCase{"restricted_privileged_still_checked",
                R,
                "{privileged: true, runAsNonRoot: true, allowPrivilegeEscalation: false, "
                "capabilities: {drop: [ALL]}}",
                "{}",
                {"privileged c privileged [privileged]"}},
        PssCase{"restricted_ape_true",
                R,
                "{runAsNonRoot: true, allowPrivilegeEscalation: true, capabilities: {drop: [ALL]}}",
                "{}",
                {"privilege-escalation c - [allowPrivilegeEscalation]"}},
        PssCase{
            "restricted_container_run_as_non_root_false",
            R,
            "{runAsNonRoot: false, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
            "{runAsNonRoot: true}",
            {"runs-as-root c - [runAsNonRoot]"}},
        PssCase{"restricted_pod_false_container_true_still_fails",
                R,
                kCompliantSc,
                "{runAsNonRoot: false}",
                {"runs-as-root - - [runAsNonRoot]"}},
        PssCase{"restricted_run_as_user_zero_container",
                R,
                "{runAsNonRoot: true, runAsUser: 0, allowPrivilegeEscalation: false, capabilities: "
                "{drop: [ALL]}}",
                "{}",
                {"runs-as-root c - [runAsUser]"}},
        PssCase{"restricted_run_as_user_zero_pod",
                R,
                kCompliantSc,
                "{runAsUser: 0}",
                {"runs-as-root - - [runAsUser]"}},
        PssCase{"restricted_non_zero_user_without_run_as_non_root_fails",
                R,
                "{runAsUser: 1000, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
                "{}",
                {"runs-as-root c - [runAsNonRoot]"}}),
    [](const auto& p) { return p.param.name; });

TEST(PssProfile, LowerCaseAllMessageExplainsCaseSensitivity) {
  const PodEvaluation eval = EvaluateYaml(
      Pod("{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [all]}}"),
      ProfileOnlyPolicy(Profile::kRestricted));
  ASSERT_EQ(eval.findings.size(), 1u);
  EXPECT_THAT(eval.findings[0].message, ::testing::HasSubstr("case-sensitively"));
  EXPECT_THAT(eval.findings[0].message, ::testing::HasSubstr("\"all\""));
  EXPECT_THAT(eval.findings[0].remediation, ::testing::HasSubstr("upper case"));
}

TEST(PssProfile, EvaluatesInitAndEphemeralContainersAlike) {
  const std::string yaml = R"(
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {runAsNonRoot: true}
  initContainers:
  - {name: init, image: i, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL], add: [CHOWN]}}}
  containers:
  - {name: app, image: a, securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
  ephemeralContainers:
  - {name: debug, image: d, securityContext: {privileged: true}}
)";
  const PodEvaluation eval = EvaluateYaml(yaml, ProfileOnlyPolicy(Profile::kRestricted));
  EXPECT_THAT(Summarise(eval), UnorderedElementsAreArray(std::vector<std::string>{
                                   "capability-not-allowed init CHOWN [capabilities_restricted]",
                                   "privileged debug privileged [privileged]",
                                   "drop-all-missing debug ALL [capabilities_restricted]",
                                   "privilege-escalation debug - [allowPrivilegeEscalation]"}));
}

// ---- The default policy and each rule ------------------------------------------------------

struct RuleCase {
  std::string name;
  std::string container_sc;
  std::string pod_sc;
  std::vector<std::string> expected;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const RuleCase& c, std::ostream* os) { *os << c.name; }

class DefaultPolicyTest : public ::testing::TestWithParam<RuleCase> {};

TEST_P(DefaultPolicyTest, Findings) {
  const RuleCase& c = GetParam();
  const PodEvaluation eval = EvaluateYaml(Pod(c.container_sc, c.pod_sc), DefaultPolicy());
  EXPECT_THAT(Summarise(eval), UnorderedElementsAreArray(c.expected)) << c.name;
}

INSTANTIATE_TEST_SUITE_P(
    Rules, DefaultPolicyTest,
    ::testing::Values(
        RuleCase{"compliant", kCompliantSc, "{}", {}},
        RuleCase{"nbs_allowed",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [NET_BIND_SERVICE]}}",
                 "{}",
                 {}},
        // A container that drops nothing holds DAC_OVERRIDE (dangerous) and NET_RAW by default.
        RuleCase{"drops_nothing",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false}",
                 "{}",
                 {"dangerous-capability c DAC_OVERRIDE", "drop-all-missing c ALL"}},
        RuleCase{"drops_dac_override_only",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[DAC_OVERRIDE]}}",
                 "{}",
                 {"drop-all-missing c ALL"}},
        RuleCase{"sys_admin_added",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [SYS_ADMIN]}}",
                 "{}",
                 {"dangerous-capability c SYS_ADMIN"}},
        RuleCase{"prefixed_lower_case_is_normalised",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[all], add: [cap_sys_ptrace]}}",
                 "{}",
                 {"dangerous-capability c SYS_PTRACE"}},
        RuleCase{"not_allowed",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [NET_RAW, CHOWN]}}",
                 "{}",
                 {"capability-not-allowed c NET_RAW", "capability-not-allowed c CHOWN"}},
        RuleCase{"duplicate_entries_reported_once",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [NET_RAW, net_raw, CAP_NET_RAW]}}",
                 "{}",
                 {"capability-not-allowed c NET_RAW"}},
        RuleCase{
            "add_all",
            "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {add: [ALL]}}",
            "{}",
            {"dangerous-capability c ALL", "drop-all-missing c ALL"}},
        // containerd applies drop ALL after add ALL: nothing is granted.
        RuleCase{"add_all_drop_all",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [ALL]}}",
                 "{}",
                 {}},
        RuleCase{"privileged",
                 "{privileged: true, runAsNonRoot: true, allowPrivilegeEscalation: false, "
                 "capabilities: {drop: [ALL]}}",
                 "{}",
                 {"privileged c privileged"}},
        RuleCase{"unknown_add",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                 "[ALL], add: [NET_BIND]}}",
                 "{}",
                 {"unknown-capability c NET_BIND"}},
        RuleCase{"unknown_drop",
                 "{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL, "
                 "NET_RAWW]}}",
                 "{}",
                 {"unknown-capability c NET_RAWW"}},
        RuleCase{"escalation_unset",
                 "{runAsNonRoot: true, capabilities: {drop: [ALL]}}",
                 "{}",
                 {"privilege-escalation c -"}},
        RuleCase{"root_by_default",
                 "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
                 "{}",
                 {"runs-as-root c -"}},
        RuleCase{"non_root_inherited_from_pod",
                 "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
                 "{runAsNonRoot: true}",
                 {}},
        RuleCase{"non_zero_user_from_pod",
                 "{allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
                 "{runAsUser: 1000}",
                 {}},
        RuleCase{"container_overrides_pod_user_to_root",
                 "{runAsUser: 0, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
                 "{runAsNonRoot: true}",
                 {"runs-as-root c -"}},
        RuleCase{
            "container_overrides_pod_non_root",
            "{runAsNonRoot: false, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}",
            "{runAsNonRoot: true}",
            {"runs-as-root c -"}}),
    [](const auto& p) { return p.param.name; });

TEST(Evaluate, GrantedSetFollowsRuntimeDefaultsDropAndAdd) {
  const PodEvaluation eval = EvaluateYaml(
      Pod("{capabilities: {drop: [NET_RAW, cap_mknod], add: [SYS_TIME]}}"), DefaultPolicy());
  ASSERT_EQ(eval.containers.size(), 1u);
  const CapabilitySet expected =
      (RuntimeDefaultSet(Runtime::kContainerd) & ~Bit(*CapabilityNumber("NET_RAW")) &
       ~Bit(*CapabilityNumber("MKNOD"))) |
      Bit(*CapabilityNumber("SYS_TIME"));
  EXPECT_EQ(eval.containers[0].granted, expected);
}

TEST(Evaluate, CrioRuntimeDefaultsGrantNoDacOverrideWhenDropped) {
  Policy policy = DefaultPolicy();
  policy.runtime_defaults = RuntimeDefaultSet(Runtime::kCrio);
  policy.runtime_name = "cri-o";
  const PodEvaluation eval = EvaluateYaml(Pod("{runAsNonRoot: true, allowPrivilegeEscalation: "
                                              "false, capabilities: {drop: [DAC_OVERRIDE]}}"),
                                          policy);
  EXPECT_THAT(Summarise(eval), ElementsAre("drop-all-missing c ALL"));
  EXPECT_FALSE(Contains(eval.containers[0].granted, *CapabilityNumber("NET_RAW")));
}

TEST(Evaluate, WindowsPodsAreSkippedWithANote) {
  const std::string yaml =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: w}\nspec:\n  os: {name: windows}\n"
      "  containers: [{name: c, image: i, securityContext: {privileged: true}}]\n";
  const PodEvaluation eval = EvaluateYaml(yaml, DefaultPolicy());
  EXPECT_TRUE(eval.skipped);
  EXPECT_THAT(eval.note, ::testing::HasSubstr("Windows"));
  EXPECT_THAT(eval.findings, IsEmpty());
}

TEST(Evaluate, FindingsHaveMessagesAndRemediationsAndSeverities) {
  const PodEvaluation eval = EvaluateYaml(
      Pod("{privileged: true, capabilities: {add: [SYS_ADMIN, NET_BIND, FOO]}}"), DefaultPolicy());
  ASSERT_FALSE(eval.findings.empty());
  for (const auto& f : eval.findings) {
    EXPECT_FALSE(f.message.empty()) << RuleId(f.rule);
    EXPECT_FALSE(f.remediation.empty()) << RuleId(f.rule);
    EXPECT_NE(f.severity, Severity::kNone);
    EXPECT_EQ(f.policy, "default");
  }
  const auto privileged =
      std::find_if(eval.findings.begin(), eval.findings.end(),
                   [](const Finding& f) { return f.rule == Rule::kPrivileged; });
  ASSERT_NE(privileged, eval.findings.end());
  EXPECT_EQ(privileged->severity, Severity::kCritical);
  EXPECT_TRUE(std::none_of(eval.findings.begin(), eval.findings.end(), [](const Finding& f) {
    return f.rule == Rule::kDangerousCapability;
  })) << "a privileged container gets one privileged finding, not one per capability";
}

TEST(Evaluate, SeverityOverridesFromThePolicy) {
  Policy policy = DefaultPolicy();
  policy.severities[*CapabilityNumber("NET_RAW")] = Severity::kHigh;
  const PodEvaluation eval =
      EvaluateYaml(Pod("{runAsNonRoot: true, allowPrivilegeEscalation: false, capabilities: {drop: "
                       "[ALL], add: [NET_RAW]}}"),
                   policy);
  ASSERT_EQ(eval.findings.size(), 1u);
  EXPECT_EQ(eval.findings[0].severity, Severity::kHigh);
}

TEST(Evaluate, FindingsAreStablyOrdered) {
  const std::string sc = "{capabilities: {add: [SYS_ADMIN, BPF, NET_RAW, SYS_PTRACE]}}";
  const auto a = Summarise(EvaluateYaml(Pod(sc), DefaultPolicy()));
  const auto b = Summarise(EvaluateYaml(
      Pod("{capabilities: {add: [SYS_PTRACE, NET_RAW, BPF, SYS_ADMIN]}}"), DefaultPolicy()));
  EXPECT_EQ(a, b);
}

// ---- Exemptions and justifications ----------------------------------------------------------

Policy ParseOne(const std::string& yaml) {
  auto parsed = ParsePolicy(YAML::Load(yaml));
  for (const auto& e : parsed.error().fields()) ADD_FAILURE() << e.ToString();
  return parsed.ok() ? std::move(parsed).value() : Policy();
}

const char* kNetshootPolicy = R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: netops}
spec:
  requireDropAll: true
  allowedCapabilities: [NET_BIND_SERVICE]
  exemptions:
  - name: netshoot-debug
    namespaces: [netops]
    containers: [tools]
    capabilities: [NET_RAW, NET_ADMIN]
    reason: network diagnostics
    expires: "2027-01-31T00:00:00Z"
)";

const char* kNetworkTools = R"(
apiVersion: v1
kind: Pod
metadata: {name: network-tools, namespace: netops}
spec:
  containers:
  - name: tools
    image: nicolaka/netshoot
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      capabilities:
        drop: [ALL]
        add: [NET_RAW, NET_ADMIN]
)";

Clock::time_point At(int year, int month, int day) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  return Clock::from_time_t(timegm(&tm));
}

TEST(Exemptions, CoverMatchingFindingsUntilTheyExpire) {
  const Policy policy = ParseOne(kNetshootPolicy);
  const PodEvaluation before = EvaluateYaml(kNetworkTools, policy, At(2027, 1, 1));
  EXPECT_THAT(Summarise(before), IsEmpty());
  EXPECT_THAT(Summarise(before, true), UnorderedElementsAreArray(std::vector<std::string>{
                                           "dangerous-capability tools NET_ADMIN (exempt)",
                                           "capability-not-allowed tools NET_RAW (exempt)"}));
  for (const auto& f : before.findings) {
    ASSERT_TRUE(f.exemption);
    EXPECT_EQ(f.exemption->name, "netshoot-debug");
    EXPECT_EQ(f.exemption->reason, "network diagnostics");
  }

  const PodEvaluation after = EvaluateYaml(kNetworkTools, policy, At(2027, 2, 1));
  EXPECT_THAT(Summarise(after),
              UnorderedElementsAreArray(std::vector<std::string>{
                  "dangerous-capability tools NET_ADMIN", "capability-not-allowed tools NET_RAW",
                  "exemption-expired tools netshoot-debug"}));
}

TEST(Exemptions, DoNotCoverOtherNamespacesOrContainers) {
  const Policy policy = ParseOne(kNetshootPolicy);
  std::string other_ns = kNetworkTools;
  other_ns.replace(other_ns.find("namespace: netops"), 17, "namespace: prod");
  EXPECT_EQ(Summarise(EvaluateYaml(other_ns, policy, At(2027, 1, 1))).size(), 2u);
  std::string other_container = kNetworkTools;
  other_container.replace(other_container.find("name: tools"), 11, "name: shell");
  EXPECT_EQ(Summarise(EvaluateYaml(other_container, policy, At(2027, 1, 1))).size(), 2u);
}

TEST(Justifications, RequiredForAddedCapabilitiesWhenThePolicySaysSo) {
  Policy policy = ParseOne(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: justify}
spec: {requireJustification: true, forbiddenCapabilities: [], allowedCapabilities: [NET_BIND_SERVICE, CHOWN]}
)");
  const std::string pod = R"(
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations: {capwatch.io/justification.NET_BIND_SERVICE: "binds :80"}
spec:
  containers:
  - {name: web, image: nginx, securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, chown]}}}
)";
  const PodEvaluation eval = EvaluateYaml(pod, policy);
  EXPECT_THAT(Summarise(eval), ElementsAre("missing-justification web CHOWN"));
}

TEST(PolicyMatch, NamespacesGlobsExclusionsAndSelectors) {
  Policy policy = ParseOne(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: prod}
spec:
  match:
    namespaces: [prod-*]
    excludeNamespaces: [prod-sandbox]
    podSelector: {matchExpressions: [{key: tier, operator: In, values: [web, api]}]}
    namespaceSelector: {matchLabels: {env: prod}}
)");
  PodView pod;
  pod.labels = {{"tier", "web"}};
  const std::vector<std::pair<std::string, std::string>> prod_labels = {{"env", "prod"}};
  pod.namespace_name = "prod-eu";
  EXPECT_TRUE(PolicyMatches(policy, pod, &prod_labels));
  EXPECT_FALSE(PolicyMatches(policy, pod, nullptr)) << "namespace labels unknown";
  pod.namespace_name = "prod-sandbox";
  EXPECT_FALSE(PolicyMatches(policy, pod, &prod_labels));
  pod.namespace_name = "staging";
  EXPECT_FALSE(PolicyMatches(policy, pod, &prod_labels));
  pod.namespace_name = "prod-us";
  pod.labels = {{"tier", "db"}};
  EXPECT_FALSE(PolicyMatches(policy, pod, &prod_labels));
}

TEST(Glob, MatchesStarsAndQuestionMarks) {
  EXPECT_TRUE(GlobMatch("prod-*", "prod-eu"));
  EXPECT_TRUE(GlobMatch("*", ""));
  EXPECT_TRUE(GlobMatch("a?c", "abc"));
  EXPECT_TRUE(GlobMatch("*-system", "kube-system"));
  EXPECT_FALSE(GlobMatch("prod-*", "production"));
  EXPECT_FALSE(GlobMatch("a*b*c", std::string(10000, 'a')));
}

// ---- The guide's examples (../shared/reference/capabilities-guide.md) ----------------------

struct GuideCase {
  std::string name;
  std::string yaml;
  std::vector<std::string> default_policy;
  std::vector<std::string> restricted;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const GuideCase& c, std::ostream* os) { *os << c.name; }

class GuideExamples : public ::testing::TestWithParam<GuideCase> {};

TEST_P(GuideExamples, DefaultPolicyAndRestrictedProfile) {
  const GuideCase& c = GetParam();
  EXPECT_THAT(Summarise(EvaluateYaml(c.yaml, DefaultPolicy())),
              UnorderedElementsAreArray(c.default_policy))
      << c.name << " under the default policy";
  EXPECT_THAT(Summarise(EvaluateYaml(c.yaml, ProfileOnlyPolicy(Profile::kRestricted))),
              UnorderedElementsAreArray(c.restricted))
      << c.name << " under the restricted profile";
}

INSTANTIATE_TEST_SUITE_P(
    Guide, GuideExamples,
    ::testing::Values(
        GuideCase{"webserver",
                  R"(
apiVersion: v1
kind: Pod
metadata: {name: webserver}
spec:
  containers:
  - name: nginx
    image: nginx:alpine
    ports: [{containerPort: 80}]
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
)",
                  // The guide's example leaves allowPrivilegeEscalation unset.
                  {"privilege-escalation nginx -"},
                  {"privilege-escalation nginx - [allowPrivilegeEscalation]"}},
        GuideCase{"network_tools",
                  R"(
apiVersion: v1
kind: Pod
metadata: {name: network-tools}
spec:
  containers:
  - name: tools
    image: nicolaka/netshoot
    command: ["/bin/bash"]
    args: ["-c", "sleep infinity"]
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      capabilities:
        drop: [ALL]
        add: [NET_RAW, NET_ADMIN]
)",
                  {"dangerous-capability tools NET_ADMIN", "capability-not-allowed tools NET_RAW",
                   "privilege-escalation tools -"},
                  {"capability-not-allowed tools NET_RAW [capabilities_restricted]",
                   "capability-not-allowed tools NET_ADMIN [capabilities_restricted]",
                   "privilege-escalation tools - [allowPrivilegeEscalation]"}},
        GuideCase{"postgres",
                  R"(
apiVersion: v1
kind: Pod
metadata: {name: postgres}
spec:
  containers:
  - name: postgres
    image: postgres:15-alpine
    securityContext:
      runAsNonRoot: true
      runAsUser: 999
      capabilities: {drop: [ALL]}
)",
                  {"privilege-escalation postgres -"},
                  {"privilege-escalation postgres - [allowPrivilegeEscalation]"}},
        GuideCase{
            "app_with_setup",
            R"(
apiVersion: v1
kind: Pod
metadata: {name: app-with-setup}
spec:
  initContainers:
  - name: setup
    image: busybox
    securityContext:
      runAsUser: 0
      capabilities: {drop: [ALL], add: [CHOWN, FOWNER]}
  containers:
  - name: app
    image: app:v1.0
    securityContext:
      runAsNonRoot: true
      runAsUser: 1000
      capabilities: {drop: [ALL]}
)",
            {"capability-not-allowed setup CHOWN", "capability-not-allowed setup FOWNER",
             "runs-as-root setup -", "privilege-escalation setup -", "privilege-escalation app -"},
            {"capability-not-allowed setup CHOWN [capabilities_restricted]",
             "capability-not-allowed setup FOWNER [capabilities_restricted]",
             "runs-as-root setup - [runAsNonRoot]", "runs-as-root setup - [runAsUser]",
             "privilege-escalation setup - [allowPrivilegeEscalation]",
             "privilege-escalation app - [allowPrivilegeEscalation]"}},
        GuideCase{"secure_app_passes_restricted",
                  R"(
apiVersion: v1
kind: Pod
metadata: {name: secure-app, namespace: restricted}
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile: {type: RuntimeDefault}
  containers:
  - name: app
    image: app:v1.0
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      readOnlyRootFilesystem: true
)",
                  {},
                  {}}),
    [](const auto& p) { return p.param.name; });

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

TEST(Evaluate, GrantedFollowsContainerdOrderOfAddAllDropAllAddDrop) {
  auto granted = [](const std::string& sc) {
    return EvaluateYaml(Pod(sc), DefaultPolicy()).containers.at(0).granted;
  };
  EXPECT_EQ(granted("{capabilities: {add: [ALL], drop: [ALL]}}"), 0u);
  EXPECT_EQ(granted("{capabilities: {add: [ALL], drop: [SYS_ADMIN]}}"),
            kAllCapabilities & ~Bit(*CapabilityNumber("SYS_ADMIN")));
  EXPECT_EQ(granted("{capabilities: {drop: [ALL], add: [NET_RAW, CHOWN], }}"),
            Bit(*CapabilityNumber("NET_RAW")) | Bit(*CapabilityNumber("CHOWN")));
  EXPECT_EQ(granted("{capabilities: {drop: [ALL, CHOWN], add: [CHOWN]}}"), 0u)
      << "a capability both added and dropped is dropped";
  EXPECT_EQ(granted("{privileged: true, capabilities: {drop: [ALL]}}"), kAllCapabilities);
}

TEST(Exemptions, AValidExemptionWinsOverAnExpiredOne) {
  std::string yaml = kNetshootPolicy;
  yaml += R"(  - name: renewed
    namespaces: [netops]
    capabilities: [NET_RAW, NET_ADMIN]
    reason: renewed for the migration
)";
  const Policy policy = ParseOne(yaml);
  const PodEvaluation eval = EvaluateYaml(kNetworkTools, policy, At(2027, 6, 1));
  EXPECT_THAT(Summarise(eval), IsEmpty());
  for (const auto& f : eval.findings) EXPECT_EQ(f.exemption->name, "renewed");
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

TEST(PssProfile, AUserNamespaceRelaxesRunAsNonRootAndRunAsUser) {
  const std::string yaml = R"(
apiVersion: v1
kind: Pod
metadata: {name: userns}
spec:
  hostUsers: false
  securityContext: {runAsNonRoot: false, runAsUser: 0}
  containers:
  - {name: c, image: i, securityContext: {runAsUser: 0, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}}
)";
  EXPECT_THAT(Summarise(EvaluateYaml(yaml, ProfileOnlyPolicy(Profile::kRestricted))), IsEmpty());
  std::string host = yaml;
  host.replace(host.find("hostUsers: false"), 16, "hostUsers: true");
  EXPECT_THAT(Summarise(EvaluateYaml(host, ProfileOnlyPolicy(Profile::kRestricted))),
              UnorderedElementsAreArray(std::vector<std::string>{
                  "runs-as-root - - [runAsNonRoot]", "runs-as-root - - [runAsUser]",
                  "runs-as-root c - [runAsNonRoot]", "runs-as-root c - [runAsUser]"}));
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

// ---- Messages quote the user's spelling; the finding's capability stays canonical ----------

const Finding& Only(const PodEvaluation& eval, Rule rule) {
  const auto it = std::find_if(eval.findings.begin(), eval.findings.end(),
                               [&](const Finding& f) { return f.rule == rule; });
  if (it == eval.findings.end()) {
    ADD_FAILURE() << "no " << RuleId(rule) << " finding";
    static const Finding kNone;
    return kNone;
  }
  EXPECT_EQ(std::count_if(eval.findings.begin(), eval.findings.end(),
                          [&](const Finding& f) { return f.rule == rule; }),
            1)
      << RuleId(rule);
  return *it;
}

const std::string kLockedDown = "runAsNonRoot: true, allowPrivilegeEscalation: false";

TEST(Messages, DangerousCapabilityQuotesTheEntryAsWritten) {
  const PodEvaluation eval =
      EvaluateYaml(Pod("{" + kLockedDown + ", capabilities: {drop: [ALL], add: [cap_sys_ptrace]}}"),
                   DefaultPolicy());
  const Finding& f = Only(eval, Rule::kDangerousCapability);
  EXPECT_EQ(f.capability, "SYS_PTRACE") << "metrics, grant memory and exemptions use this";
  EXPECT_THAT(f.message,
              ::testing::HasSubstr("container \"c\" adds \"cap_sys_ptrace\" (SYS_PTRACE): "));
  EXPECT_EQ(f.remediation, "remove \"cap_sys_ptrace\" from securityContext.capabilities.add");
}

TEST(Messages, TheKubernetesSpellingReadsAsBefore) {
  const PodEvaluation eval = EvaluateYaml(
      Pod("{" + kLockedDown + ", capabilities: {drop: [ALL], add: [SYS_ADMIN]}}"), DefaultPolicy());
  const Finding& f = Only(eval, Rule::kDangerousCapability);
  EXPECT_THAT(f.message, ::testing::StartsWith("container \"c\" adds SYS_ADMIN: "));
  EXPECT_EQ(f.remediation, "remove SYS_ADMIN from securityContext.capabilities.add");
}

TEST(Messages, EveryEntryThatAddsTheCapabilityIsNamedForRemoval) {
  const PodEvaluation eval = EvaluateYaml(
      Pod("{" + kLockedDown +
          ", capabilities: {drop: [ALL], add: [NET_RAW, net_raw, ' CAP_NET_RAW', sys_admin, "
          "SYS_ADMIN]}}"),
      DefaultPolicy());
  const Finding& raw = Only(eval, Rule::kCapabilityNotAllowed);
  EXPECT_EQ(raw.capability, "NET_RAW");
  EXPECT_THAT(raw.message, ::testing::HasSubstr(
                               "adds \"NET_RAW\", \"net_raw\" and \" CAP_NET_RAW\" (NET_RAW), "));
  EXPECT_THAT(raw.remediation, ::testing::StartsWith("remove \"NET_RAW\", \"net_raw\" and "
                                                     "\" CAP_NET_RAW\" from "
                                                     "securityContext.capabilities.add"));
  const Finding& admin = Only(eval, Rule::kDangerousCapability);
  EXPECT_EQ(admin.capability, "SYS_ADMIN");
  EXPECT_THAT(admin.message,
              ::testing::HasSubstr("adds \"sys_admin\" and \"SYS_ADMIN\" (SYS_ADMIN): "));
  EXPECT_EQ(admin.remediation,
            "remove \"sys_admin\" and \"SYS_ADMIN\" from securityContext.capabilities.add");
}

TEST(Messages, AddAllQuotesTheKeywordAsWritten) {
  const PodEvaluation eval =
      EvaluateYaml(Pod("{" + kLockedDown + ", capabilities: {add: [cap_all]}}"), DefaultPolicy());
  const Finding& f = Only(eval, Rule::kDangerousCapability);
  EXPECT_EQ(f.capability, "ALL");
  EXPECT_THAT(f.message, ::testing::StartsWith("container \"c\" adds \"cap_all\" (ALL), "));
  EXPECT_THAT(f.remediation, ::testing::StartsWith("replace \"cap_all\" in "
                                                   "securityContext.capabilities.add"));
}

TEST(Messages, MissingJustificationQuotesTheEntryAndNamesTheCanonicalAnnotation) {
  Policy policy = ParseOne(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: justify}
spec: {requireJustification: true, forbiddenCapabilities: [], allowedCapabilities: [CHOWN]}
)");
  const PodEvaluation eval =
      EvaluateYaml(Pod("{capabilities: {drop: [ALL], add: [chown]}}"), policy);
  const Finding& f = Only(eval, Rule::kMissingJustification);
  EXPECT_EQ(f.capability, "CHOWN");
  EXPECT_EQ(f.message, "container \"c\" adds \"chown\" (CHOWN) without saying why");
  EXPECT_THAT(f.remediation, ::testing::HasSubstr("capwatch.io/justification.CHOWN"));
}

TEST(Messages, ProfileFindingsNameEveryEntryOfTheCapability) {
  const PodEvaluation eval = EvaluateYaml(Pod("{capabilities: {add: [SYS_ADMIN, Sys_Admin]}}"),
                                          ProfileOnlyPolicy(Profile::kBaseline));
  const Finding& f = Only(eval, Rule::kCapabilityNotAllowed);
  EXPECT_EQ(f.capability, "SYS_ADMIN");
  EXPECT_THAT(f.message,
              ::testing::HasSubstr("adds \"SYS_ADMIN\" and \"Sys_Admin\" (SYS_ADMIN), "));
  EXPECT_EQ(f.remediation,
            "remove \"SYS_ADMIN\" and \"Sys_Admin\" from securityContext.capabilities.add");
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

// ---- unreadable-field: what cannot be read is still audited ----------------------------------

PodView CompliantPodWith(std::vector<UnreadableField> unreadable) {
  PodView pod;
  pod.namespace_name = "ns";
  pod.name = "p";
  pod.run_as_non_root = true;
  ContainerView& c = pod.containers.emplace_back();
  c.name = "c";
  c.drop = {"ALL"};
  c.allow_privilege_escalation = false;
  pod.unreadable = std::move(unreadable);
  return pod;
}

TEST(UnreadableField, EachEntryIsACriticalFindingNamingTheFieldAndWhy) {
  const PodView pod =
      CompliantPodWith({{".spec.containers[0].securityContext.capabilities.add[3]",
                         "expected a string, got a number", "c"},
                        {".metadata.labels.tier", "expected a string, got a number", ""}});
  const Policy policy = DefaultPolicy();
  const Policy* policies[] = {&policy};
  const PodEvaluation eval = Evaluate(pod, policies, Clock::now());
  EXPECT_THAT(Summarise(eval), ElementsAre("unreadable-field - -", "unreadable-field c -"));
  for (const auto& f : eval.findings) {
    EXPECT_EQ(f.severity, Severity::kCritical);
    EXPECT_EQ(f.policy, "default");
    EXPECT_FALSE(f.exempt);
  }
  const Finding& pod_level = eval.findings[0];
  EXPECT_EQ(pod_level.container_index, -1);
  EXPECT_THAT(pod_level.message, HasSubstr(".metadata.labels.tier"));
  EXPECT_THAT(pod_level.message, HasSubstr("expected a string, got a number"));
  EXPECT_THAT(pod_level.remediation, HasSubstr(".metadata.labels.tier"));
  const Finding& in_container = eval.findings[1];
  EXPECT_EQ(in_container.container_index, 0);
  EXPECT_THAT(in_container.message,
              HasSubstr(".spec.containers[0].securityContext.capabilities.add[3]"));
  EXPECT_EQ(RuleId(in_container.rule), "unreadable-field");
  EXPECT_EQ(InfoOf(Rule::kUnreadableField).id, "unreadable-field");
}

TEST(UnreadableField, IsReportedUnderEveryPolicyTheProfilesIncluded) {
  const PodView pod = CompliantPodWith({{".spec.containers[0].securityContext.privileged",
                                         "expected a boolean, got a string", "c"}});
  const Policy def = DefaultPolicy();
  const Policy baseline = ProfileOnlyPolicy(Profile::kBaseline);
  const Policy restricted = ProfileOnlyPolicy(Profile::kRestricted);
  const Policy* policies[] = {&def, &baseline, &restricted};
  const PodEvaluation eval = Evaluate(pod, policies, Clock::now());
  std::vector<std::string> got;
  for (const auto& f : eval.findings) {
    if (f.rule == Rule::kUnreadableField) got.push_back(f.policy);
  }
  EXPECT_THAT(got, UnorderedElementsAreArray({"default", "baseline", "restricted"}));
}

TEST(UnreadableField, NoExemptionCoversIt) {
  const Policy policy = ParseOne(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: lenient}
spec:
  exemptions:
  - {name: everything, reason: "trust the team"}
)");
  const PodView pod = CompliantPodWith({{".spec.containers[0].securityContext.capabilities.add[0]",
                                         "expected a string, got a number", "c"}});
  const Policy* policies[] = {&policy};
  const PodEvaluation eval = Evaluate(pod, policies, Clock::now());
  ASSERT_EQ(eval.findings.size(), 1u);
  EXPECT_EQ(eval.findings[0].rule, Rule::kUnreadableField);
  EXPECT_FALSE(eval.findings[0].exempt) << "an exemption was written for what its author saw";
}

TEST(UnreadableField, AFieldOfAContainerWithoutReadableNameIsPodLevel) {
  const PodView pod =
      CompliantPodWith({{".spec.containers[1]", "expected an object, got a string", ""},
                        {".spec.containers[2].securityContext.runAsUser",
                         "expected an integer, got a string", "gone"}});
  const Policy policy = DefaultPolicy();
  const Policy* policies[] = {&policy};
  EXPECT_THAT(Summarise(Evaluate(pod, policies, Clock::now())),
              ElementsAre("unreadable-field - -", "unreadable-field - -"));
}

}  // namespace
}  // namespace capwatch
