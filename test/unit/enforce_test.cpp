// lib/enforce: the ValidatingAdmissionPolicy generated from a CapabilityPolicy. What the CEL
// decides is proven against the real API server (test/e2e); these tests pin the shape: which
// rules and conditions exist for which policy fields, names, escaping, expiring exemptions.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <map>
#include <nlohmann/json.hpp>

#include "base/rfc3339.h"
#include "enforce/admission_policy.h"
#include "policy/policy_parser.h"

namespace capwatch {
namespace {

using nlohmann::json;

Policy Parse(const std::string& spec) {
  auto parsed = ParsePolicy(YAML::Load(
      "{apiVersion: capwatch.io/v1alpha1, kind: CapabilityPolicy, metadata: {name: web}, "
      "spec: " +
      spec + "}"));
  EXPECT_TRUE(parsed.ok()) << (parsed.ok() ? "" : parsed.error().ToString());
  return parsed.ok() ? parsed.value() : Policy{};
}

Clock::time_point At(const char* text) { return *ParseRfc3339(text); }

std::vector<std::string> RuleIds(const json& policy) {
  std::vector<std::string> ids;
  for (const auto& v : policy["spec"]["validations"]) {
    const std::string m = v["message"];
    const auto open = m.find('('), close = m.find(')');
    ids.push_back(m.substr(open + 1, close - open - 1));
  }
  return ids;
}

const json* Condition(const json& policy, std::string_view name) {
  for (const auto& c : policy["spec"]["matchConditions"]) {
    if (c["name"] == name) return &c;
  }
  return nullptr;
}

TEST(Enforce, OneValidationPerEnabledRuleInTheRuleTablesOrder) {
  const Policy p = Parse(
      "{forbiddenCapabilities: [SYS_ADMIN], allowedCapabilities: [NET_BIND_SERVICE], "
      "requireDropAll: true, disallowPrivileged: true, requireNoPrivilegeEscalation: true, "
      "requireRunAsNonRoot: true, requireJustification: true}");
  const auto g = GenerateAdmission(p, EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(
      RuleIds(g.policy),
      (std::vector<std::string>{"unknown-capability", "privileged", "dangerous-capability",
                                "capability-not-allowed", "drop-all-missing",
                                "privilege-escalation", "runs-as-root", "missing-justification"}));
  for (const auto& v : g.policy["spec"]["validations"]) {
    EXPECT_EQ(v["reason"], "Forbidden");
    EXPECT_EQ(std::string(v["message"]).find('\n'), std::string::npos);
    EXPECT_TRUE(std::string(v["expression"]).starts_with("!variables.facts.exists(f, "));
    // Every messageExpression runs on every request: it builds its message only on a denial.
    EXPECT_TRUE(std::string(v["messageExpression"])
                    .starts_with("(" + std::string(v["expression"]) + ") ? '' : "));
  }
}

TEST(Enforce, AProfilesControlsComeFirstWithExactStrings) {
  const auto g = GenerateAdmission(Parse("{profile: restricted}"), EnforcementAction::kDeny,
                                   At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(RuleIds(g.policy),
            (std::vector<std::string>{"privileged", "drop-all-missing", "capability-not-allowed",
                                      "privilege-escalation", "runs-as-root", "runs-as-root",
                                      "unknown-capability", "dangerous-capability"}));
  const auto& v = g.policy["spec"]["validations"];
  // The API server compares case-sensitively: "all" is not "ALL" to Pod Security admission.
  EXPECT_NE(std::string(v[1]["expression"]).find("!('ALL' in f.rawDrop)"), std::string::npos);
  EXPECT_NE(std::string(v[2]["expression"]).find("r != 'NET_BIND_SERVICE'"), std::string::npos);
  // runAsNonRoot and runAsUser are checked on the pod too, and not in a user namespace.
  for (int i : {4, 5}) {
    const std::string e = v[i]["expression"];
    EXPECT_TRUE(e.starts_with("!(variables.podSpec.?hostUsers.orValue(true) != false && ")) << e;
  }
}

TEST(Enforce, ARuleThePolicyDoesNotAskForIsNotGenerated) {
  const auto g = GenerateAdmission(Parse("{forbiddenCapabilities: [SYS_ADMIN]}"),
                                   EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(RuleIds(g.policy),
            (std::vector<std::string>{"unknown-capability", "dangerous-capability"}));
}

TEST(Enforce, AForbiddenDefaultCapabilityIsHeldUnlessDropped) {
  // DAC_OVERRIDE is in containerd's default set: held through the defaults unless ALL or it is
  // dropped. SYS_ADMIN is not: held only when added.
  const auto g = GenerateAdmission(Parse("{forbiddenCapabilities: [DAC_OVERRIDE, SYS_ADMIN]}"),
                                   EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  const std::string e = g.policy["spec"]["validations"][1]["expression"];
  EXPECT_NE(e.find("(!('ALL' in f.drop) || 'DAC_OVERRIDE' in f.add) && !('DAC_OVERRIDE' in "
                   "f.drop)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("('SYS_ADMIN' in f.add && !('SYS_ADMIN' in f.drop)"), std::string::npos) << e;
}

TEST(Enforce, TheBindingCarriesTheAction) {
  const Policy p = Parse("{}");
  for (auto [action, name] :
       {std::pair{EnforcementAction::kDeny, "Deny"}, std::pair{EnforcementAction::kWarn, "Warn"},
        std::pair{EnforcementAction::kAudit, "Audit"}}) {
    const auto g = GenerateAdmission(p, action, At("2026-01-01T00:00:00Z"));
    EXPECT_EQ(g.binding["spec"]["validationActions"], json::array({name}));
    EXPECT_EQ(g.binding["spec"]["policyName"], g.policy["metadata"]["name"]);
    EXPECT_EQ(g.policy["metadata"]["name"], "capwatch-web");
  }
  EXPECT_EQ(ParseEnforcementAction("Warn"), EnforcementAction::kWarn);
  EXPECT_FALSE(ParseEnforcementAction("deny"));  // the API server's spelling, exactly
}

TEST(Enforce, EphemeralContainersAndEveryWorkloadKindAreMatched) {
  const auto g =
      GenerateAdmission(Parse("{}"), EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  std::vector<std::string> resources;
  for (const auto& r : g.policy["spec"]["matchConstraints"]["resourceRules"]) {
    for (const auto& name : r["resources"]) resources.push_back(name);
  }
  EXPECT_EQ(resources,
            (std::vector<std::string>{"pods", "pods/ephemeralcontainers", "replicationcontrollers",
                                      "deployments", "statefulsets", "daemonsets", "replicasets",
                                      "jobs", "cronjobs"}));
  ASSERT_NE(Condition(g.policy, "not-windows"), nullptr);
  ASSERT_NE(Condition(g.policy, "template-changed"), nullptr);
  EXPECT_EQ(Condition(g.policy, "namespaces"), nullptr);
  EXPECT_EQ(Condition(g.policy, "pod-selector"), nullptr);
}

TEST(Enforce, NamespaceGlobsBecomeAnchoredPatterns) {
  const auto g = GenerateAdmission(
      Parse("{match: {namespaces: ['prod-*', 'team-?'], excludeNamespaces: [prod-sandbox], "
            "podSelector: {matchLabels: {tier: web}, matchExpressions: [{key: team, operator: "
            "NotIn, values: [x]}]}, namespaceSelector: {matchLabels: {env: prod}}}}"),
      EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  ASSERT_NE(Condition(g.policy, "namespaces"), nullptr);
  EXPECT_EQ((*Condition(g.policy, "namespaces"))["expression"],
            "request.namespace.matches('^(?:prod\\\\-.*|team\\\\-.)$')");
  EXPECT_EQ((*Condition(g.policy, "exclude-namespaces"))["expression"],
            "!request.namespace.matches('^(?:prod\\\\-sandbox)$')");
  const std::string selector = (*Condition(g.policy, "pod-selector"))["expression"];
  EXPECT_NE(selector.find("[?'tier'] == optional.of('web')"), std::string::npos) << selector;
  EXPECT_NE(selector.find("!('team' in "), std::string::npos) << selector;
  EXPECT_EQ(g.policy["spec"]["matchConstraints"]["namespaceSelector"],
            json({{"matchLabels", {{"env", "prod"}}}}));
}

TEST(Enforce, AnExpiredExemptionIsLeftOutAndTheNextExpiryIsReported) {
  const Policy p = Parse(
      "{forbiddenCapabilities: [NET_RAW], exemptions: ["
      "{name: old, reason: r, capabilities: [NET_RAW], expires: '2026-01-01T00:00:00Z'},"
      "{name: soon, reason: r, capabilities: [NET_RAW], expires: '2026-03-01T00:00:00Z'},"
      "{name: later, reason: r, containers: [tools], expires: '2026-06-01T00:00:00Z'}]}");
  auto count_exemptions = [](const json& policy) {
    int n = 0;
    for (const auto& v : policy["spec"]["variables"]) {
      n += std::string(v["name"]).starts_with("exemption") ? 1 : 0;
    }
    return n;
  };
  const auto before = GenerateAdmission(p, EnforcementAction::kDeny, At("2025-12-01T00:00:00Z"));
  EXPECT_EQ(count_exemptions(before.policy), 3);
  EXPECT_EQ(before.next_change, At("2026-01-01T00:00:00Z"));
  const auto after = GenerateAdmission(p, EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  EXPECT_EQ(count_exemptions(after.policy), 2);
  EXPECT_EQ(after.next_change, At("2026-03-01T00:00:00Z"));
  const auto none = GenerateAdmission(p, EnforcementAction::kDeny, At("2027-01-01T00:00:00Z"));
  EXPECT_EQ(count_exemptions(none.policy), 0);
  EXPECT_FALSE(none.next_change);
  // Only the exemptions that cover the capability appear in its check: "later" covers every
  // finding of container tools.
  const std::string e = after.policy["spec"]["validations"][1]["expression"];
  EXPECT_NE(e.find("variables.exemption0"), std::string::npos) << e;
  EXPECT_NE(e.find("variables.exemption1 && f.name in ['tools']"), std::string::npos) << e;
  // Each still ends for an object created after its expiry, should nobody regenerate the
  // policy in time (the controller down): the API server stamps creationTimestamp first.
  std::map<std::string, std::string> vars;
  for (const auto& v : after.policy["spec"]["variables"]) vars[v["name"]] = v["expression"];
  EXPECT_TRUE(vars["created"].starts_with("request.operation == 'CREATE' && ")) << vars["created"];
  EXPECT_NE(vars["exemption0"].find("variables.created < timestamp('2026-03-01T00:00:00Z')"),
            std::string::npos)
      << vars["exemption0"];
  const auto timeless =
      GenerateAdmission(Parse("{exemptions: [{name: x, reason: r, capabilities: [NET_RAW]}]}"),
                        EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  for (const auto& v : timeless.policy["spec"]["variables"]) {
    EXPECT_NE(v["name"], "created") << "no exemption expires";
  }
}

TEST(Enforce, TheSamePolicyGivesTheSameObjects) {
  const Policy p = Parse("{forbiddenCapabilities: [SYS_ADMIN, NET_RAW], requireDropAll: true}");
  const auto a = GenerateAdmission(p, EnforcementAction::kDeny, At("2026-01-01T00:00:00Z"));
  const auto b = GenerateAdmission(p, EnforcementAction::kDeny, At("2026-02-01T00:00:00Z"));
  EXPECT_EQ(a.policy.dump(), b.policy.dump());
  EXPECT_EQ(a.binding.dump(), b.binding.dump());
}

TEST(Enforce, CelStringsEscapeWhatWouldEndThem) {
  EXPECT_EQ(CelString("it's"), "'it\\'s'");
  EXPECT_EQ(CelString("a\\b"), "'a\\\\b'");
  EXPECT_EQ(CelString("line\nbreak\x01"), "'line\\nbreak\\x01'");
}

TEST(Enforce, ALongPolicyNameIsShortenedWithAHash) {
  const std::string a(250, 'a');
  const std::string b = std::string(249, 'a') + "b";
  EXPECT_EQ(AdmissionObjectName("web"), "capwatch-web");
  EXPECT_LE(AdmissionObjectName(a).size(), 253u);
  EXPECT_NE(AdmissionObjectName(a), AdmissionObjectName(b));
  EXPECT_TRUE(AdmissionObjectName(a).starts_with("capwatch-aaa"));
}

}  // namespace
}  // namespace capwatch
