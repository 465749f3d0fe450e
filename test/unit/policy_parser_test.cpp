#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <yaml-cpp/yaml.h>

#include "policy/policy_parser.h"

namespace capwatch {
namespace {

using ::testing::HasSubstr;

TEST(PolicyParser, ParsesEveryField) {
  const char* yaml = R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: prod}
spec:
  profile: restricted
  match:
    namespaces: [prod-*]
    excludeNamespaces: [kube-system]
    namespaceSelector: {matchLabels: {env: prod}}
    podSelector: {matchExpressions: [{key: tier, operator: NotIn, values: [batch]}]}
  runtimeDefaults: cri-o
  requireDropAll: true
  allowedCapabilities: [NET_BIND_SERVICE, cap_chown]
  forbiddenCapabilities: [SYS_ADMIN, ALL, privileged]
  severities: {NET_RAW: high}
  disallowPrivileged: true
  requireNoPrivilegeEscalation: true
  requireRunAsNonRoot: true
  requireJustification: true
  exemptions:
  - name: netshoot-debug
    namespaces: [netops]
    podSelector: {matchLabels: {app: netshoot}}
    containers: [tools]
    capabilities: [NET_RAW, NET_ADMIN]
    reason: network diagnostics
    expires: "2027-01-31T00:00:00Z"
  enforcement: {action: Warn}
)";
  const auto parsed = ParsePolicy(YAML::Load(yaml));
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  const Policy& p = parsed.value();
  EXPECT_EQ(p.name, "prod");
  EXPECT_EQ(p.profile, Profile::kRestricted);
  EXPECT_EQ(p.match.namespaces, std::vector<std::string>{"prod-*"});
  ASSERT_TRUE(p.match.namespace_selector);
  ASSERT_TRUE(p.match.pod_selector);
  EXPECT_EQ(p.runtime_defaults, RuntimeDefaultSet(Runtime::kCrio));
  EXPECT_TRUE(p.require_drop_all && p.disallow_privileged && p.require_no_privilege_escalation &&
              p.require_run_as_non_root && p.require_justification);
  ASSERT_TRUE(p.allowed);
  EXPECT_EQ(CountOf(p.allowed->set), 2);
  EXPECT_TRUE(p.forbidden.all && p.forbidden.privileged);
  EXPECT_EQ(CountOf(p.forbidden.set), 1);
  EXPECT_EQ(p.SeverityOf(*CapabilityNumber("NET_RAW")), Severity::kHigh);
  ASSERT_EQ(p.exemptions.size(), 1u);
  ASSERT_TRUE(p.exemptions[0].expires);
  EXPECT_EQ(Clock::to_time_t(*p.exemptions[0].expires), 1801353600);
  EXPECT_EQ(p.enforcement, EnforcementAction::kWarn);
}

// What RFC 3339 allows besides the canonical form: lower-case t and z, fractions, offsets.
TEST(PolicyParser, ExpiresAcceptsEveryRfc3339Spelling) {
  const std::pair<const char*, std::time_t> cases[] = {
      {"2027-01-31T00:00:00Z", 1801353600},      {"2027-01-31t00:00:00z", 1801353600},
      {"2027-01-31T00:00:00.250Z", 1801353600},  {"2027-01-31T01:30:00+01:30", 1801353600},
      {"2027-01-30T19:00:00-05:00", 1801353600}, {"2028-02-29T00:00:00Z", 1835395200},
  };
  for (const auto& [text, want] : cases) {
    const auto parsed = ParsePolicy(
        YAML::Load(std::string("{apiVersion: capwatch.io/v1alpha1, kind: CapabilityPolicy, "
                               "metadata: {name: a}, spec: {exemptions: [{name: x, reason: y, "
                               "expires: \"") +
                   text + "\"}]}}"));
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.error().ToString();
    const Policy& p = parsed.value();
    ASSERT_TRUE(p.exemptions[0].expires) << text;
    EXPECT_EQ(Clock::to_time_t(*p.exemptions[0].expires), want) << text;
    EXPECT_EQ(p.exemptions[0].expires_text, text) << "kept as written, for reports";
  }
}

TEST(PolicyParser, DefaultsToTheDangerousSetAndContainerd) {
  const auto parsed = ParsePolicy(YAML::Load(
      "{apiVersion: capwatch.io/v1alpha1, kind: CapabilityPolicy, metadata: {name: a}}"));
  ASSERT_TRUE(parsed.ok());
  const Policy& p = parsed.value();
  EXPECT_EQ(p.forbidden.set, DangerousSet());
  EXPECT_EQ(p.runtime_defaults, RuntimeDefaultSet(Runtime::kContainerd));
  EXPECT_FALSE(p.allowed);
  EXPECT_FALSE(p.enforcement) << "audit only unless asked";
}

struct BadPolicy {
  std::string name;
  std::string spec;
  std::string path;
  std::string message;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const BadPolicy& c, std::ostream* os) { *os << c.name; }

class PolicyValidation : public ::testing::TestWithParam<BadPolicy> {};

TEST_P(PolicyValidation, NamesTheFieldPath) {
  const std::string yaml =
      "apiVersion: capwatch.io/v1alpha1\nkind: CapabilityPolicy\nmetadata: {name: p}\nspec: " +
      GetParam().spec + "\n";
  const auto parsed = ParsePolicy(YAML::Load(yaml));
  ASSERT_FALSE(parsed.ok()) << GetParam().name;
  const auto& errors = parsed.error().fields();
  ASSERT_FALSE(errors.empty()) << GetParam().name;
  EXPECT_EQ(errors[0].field, GetParam().path);
  EXPECT_THAT(errors[0].message, HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PolicyValidation,
    ::testing::Values(
        BadPolicy{"profile", "{profile: strict}", ".spec.profile", "none, baseline, restricted"},
        BadPolicy{"unknown_capability", "{allowedCapabilities: [NET_BIND]}",
                  ".spec.allowedCapabilities[0]", "did you mean NET_BIND_SERVICE"},
        BadPolicy{"forbidden_typo", "{forbiddenCapabilities: [SYS_ADMIN, SYS_ADMN]}",
                  ".spec.forbiddenCapabilities[1]", "not a Linux capability"},
        BadPolicy{"bad_glob", "{match: {namespaces: [\"prod/[a\"]}}", ".spec.match.namespaces[0]",
                  "not a namespace glob"},
        BadPolicy{"bool_type", "{requireDropAll: sometimes}", ".spec.requireDropAll",
                  "true or false"},
        BadPolicy{"unknown_field", "{requireDropALL: true}", ".spec.requireDropALL",
                  "unknown field"},
        BadPolicy{"runtime", "{runtimeDefaults: podman}", ".spec.runtimeDefaults",
                  "containerd, cri-o, docker"},
        BadPolicy{"severity", "{severities: {NET_RAW: urgent}}", ".spec.severities.NET_RAW",
                  "low, medium"},
        BadPolicy{"selector_operator",
                  "{match: {podSelector: {matchExpressions: [{key: a, operator: Equals}]}}}",
                  ".spec.match.podSelector.matchExpressions[0].operator", "In, NotIn"},
        BadPolicy{"exemption_reason", "{exemptions: [{name: x, capabilities: [NET_RAW]}]}",
                  ".spec.exemptions[0].reason", "must say why"},
        BadPolicy{"exemption_expires", "{exemptions: [{name: x, reason: y, expires: tomorrow}]}",
                  ".spec.exemptions[0].expires", "RFC 3339"},
        // The field and the value as written, and why: February 30 and 24:00 do not exist.
        BadPolicy{"exemption_expires_feb30",
                  "{exemptions: [{name: x, reason: y, expires: \"2026-02-30T00:00:00Z\"}]}",
                  ".spec.exemptions[0].expires", "\"2026-02-30T00:00:00Z\" is not an RFC 3339"},
        BadPolicy{"exemption_expires_feb29_common_year",
                  "{exemptions: [{name: x, reason: y, expires: \"2027-02-29T00:00:00Z\"}]}",
                  ".spec.exemptions[0].expires", "February 2027 has 28 days"},
        BadPolicy{"exemption_expires_hour24",
                  "{exemptions: [{name: x, reason: y, expires: \"2027-01-31T24:00:00Z\"}]}",
                  ".spec.exemptions[0].expires", "\"2027-01-31T24:00:00Z\""},
        BadPolicy{"exemption_expires_junk",
                  "{exemptions: [{name: x, reason: y, expires: \"2027-01-31T00:00:00Z junk\"}]}",
                  ".spec.exemptions[0].expires", "\"2027-01-31T00:00:00Z junk\""},
        BadPolicy{"enforcement_action", "{enforcement: {action: deny}}", ".spec.enforcement.action",
                  "Deny, Warn, Audit; got \"deny\""},
        BadPolicy{"enforcement_missing_action", "{enforcement: {}}", ".spec.enforcement.action",
                  "missing"},
        BadPolicy{"enforcement_field", "{enforcement: {action: Deny, mode: strict}}",
                  ".spec.enforcement.mode", "unknown field"},
        BadPolicy{"enforcement_type", "{enforcement: Deny}", ".spec.enforcement",
                  "must be an object"},
        BadPolicy{"exemption_duplicate",
                  "{exemptions: [{name: x, reason: y}, {name: x, reason: z}]}",
                  ".spec.exemptions[1].name", "duplicate"}),
    [](const auto& p) { return p.param.name; });

TEST(PolicyParser, ParsePoliciesSeparatesValidFromInvalid) {
  const auto result = ParsePolicies(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: good}
spec: {profile: baseline}
---
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: bad}
spec: {profile: nope}
)");
  ASSERT_EQ(result.policies.size(), 1u);
  EXPECT_EQ(result.policies[0].name, "good");
  ASSERT_EQ(result.invalid.size(), 1u);
  EXPECT_EQ(result.invalid[0].first, "bad");
}

TEST(PolicyParser, RejectsTheWrongKind) {
  const auto parsed = ParsePolicy(YAML::Load("{apiVersion: v1, kind: Pod, metadata: {name: a}}"));
  ASSERT_FALSE(parsed.ok());
  const auto& errors = parsed.error().fields();
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].field, ".kind");
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

TEST(PolicyParser, CustomRuntimeDefaults) {
  const auto parsed = ParsePolicy(YAML::Load(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: custom}
spec: {runtimeDefaults: custom, runtimeDefaultCapabilities: [CHOWN, cap_kill]}
)"));
  ASSERT_TRUE(parsed.ok()) << parsed.error().ToString();
  const Policy& p = parsed.value();
  EXPECT_EQ(p.runtime_defaults, Bit(*CapabilityNumber("CHOWN")) | Bit(*CapabilityNumber("KILL")));
  EXPECT_EQ(p.runtime_name, "custom");

  const auto invalid = ParsePolicy(YAML::Load(R"(
apiVersion: capwatch.io/v1alpha1
kind: CapabilityPolicy
metadata: {name: custom}
spec: {runtimeDefaults: custom}
)"));
  ASSERT_FALSE(invalid.ok());
  const auto& errors = invalid.error().fields();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].field, ".spec.runtimeDefaultCapabilities");
}

}  // namespace
}  // namespace capwatch
