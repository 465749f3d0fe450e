// Inputs the libFuzzer targets (test/fuzz) found to crash a parser, minimised by hand, each
// with the error the parser gives now. The parsers promise to report bad input, never to throw:
// a throw on an informer thread ends the controller, and one in `capwatch audit` its run.

#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <optional>
#include <string>

#include "controller/cluster_views.h"
#include "kube/kubeconfig.h"
#include "kube_fake_server.h"
#include "policy/policy_parser.h"
#include "workload/manifest_reader.h"

namespace capwatch {
namespace {

using ::testing::HasSubstr;

// The first error of the only policy in `text`, as "path: message".
std::string OnlyPolicyError(const std::string& text) {
  PolicyParseResult result;
  EXPECT_NO_THROW(result = ParsePolicies(text));
  EXPECT_TRUE(result.policies.empty());
  if (result.invalid.size() != 1 || result.invalid[0].second.empty()) return "no error";
  const FieldError& e = result.invalid[0].second.front();
  return e.field + ": " + e.message;
}

constexpr const char* kPolicyHead = "apiVersion: capwatch.io/v1alpha1\nkind: CapabilityPolicy\n";

// policy_parser: YAML::InvalidNode from metadata["name"] when metadata is absent.
TEST(FuzzRegression, PolicyWithoutMetadataIsInvalidNotThrown) {
  EXPECT_EQ(OnlyPolicyError(kPolicyHead), ".metadata.name: missing: a policy needs a name");
  EXPECT_EQ(OnlyPolicyError(std::string(kPolicyHead) + "metadata: web\n"),
            ".metadata: must be an object");
}

// policy_parser: YAML::InvalidNode iterating a List's items that are a mapping.
TEST(FuzzRegression, ListWhoseItemsAreNoListIsAnError) {
  PolicyParseResult result;
  EXPECT_NO_THROW(result = ParsePolicies(R"({"kind":"List","items":{"a":1}})"));
  EXPECT_TRUE(result.policies.empty());
  EXPECT_THAT(result.errors, ::testing::Contains("a List's items must be a list"));
  // And one without items at all (YAML::InvalidNode asking the absent field's type).
  EXPECT_NO_THROW(result = ParsePolicies(R"({"kind":"List"})"));
  EXPECT_THAT(result.errors, ::testing::ElementsAre("no CapabilityPolicy in the file"));
}

// policy_parser: YAML::BadSubscript from a matchExpressions entry that is a string.
TEST(FuzzRegression, MatchExpressionThatIsNoObjectIsAnError) {
  EXPECT_EQ(OnlyPolicyError(std::string(kPolicyHead) +
                            "metadata: {name: p}\n"
                            "spec: {match: {podSelector: {matchExpressions: [x]}}}\n"),
            ".spec.match.podSelector.matchExpressions[0]: must be an object");
}

// policy_parser and the policy informer's codec: a signed overflow (UBSan) turning an expiry
// after 2262 into nanoseconds since 1970. Fixed on main meanwhile by lib/base/rfc3339, which
// saturates: such an expiry reads as "never". The fuzz target found it first; kept as a check
// that runs under the sanitizers.
TEST(FuzzRegression, ExpiryTooFarAwaySaturatesInsteadOfOverflowing) {
  const PolicyParseResult result = ParsePolicies(
      std::string(kPolicyHead) +
      "metadata: {name: p}\n"
      "spec: {exemptions: [{name: x, reason: y, expires: \"9999-12-31T23:59:59Z\"}]}\n");
  ASSERT_EQ(result.policies.size(), 1u);
  ASSERT_EQ(result.policies[0].exemptions.size(), 1u);
  EXPECT_EQ(result.policies[0].exemptions[0].expires, Clock::time_point::max());

  controller::PolicyCodec codec;
  auto decoded = codec.Decode(
      R"({"apiVersion":"capwatch.io/v1alpha1","kind":"CapabilityPolicy","metadata":{"name":"p"},
          "spec":{"exemptions":[{"name":"x","reason":"y","expires":"8144-01-01T00:00:00Z"}]}})");
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  const controller::PolicyView& view = decoded.value();
  ASSERT_NE(view.policy, nullptr);
  EXPECT_TRUE(view.errors.empty());
}

// manifest_reader: nlohmann's type_error 316 dumping a YAML string that is no UTF-8: raw
// bytes, a NUL that yaml-cpp reads as the start of an escape, and yaml-cpp's \N escape
// (written as the single byte 0x85).
TEST(FuzzRegression, ManifestThatIsNoUtf8IsAnError) {
  for (const std::string& name :
       {std::string("\"a\xff\""), std::string("run \0Nonroot", 12), std::string("\"a\\N\"")}) {
    ManifestResult result;
    EXPECT_NO_THROW(ReadManifest("m.yaml",
                                 "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name +
                                     "}\nspec: {containers: [{name: c}]}\n",
                                 {}, result));
    EXPECT_TRUE(result.workloads.empty());
    ASSERT_FALSE(result.errors.empty()) << name;
    EXPECT_EQ(result.errors[0].source.line, 3);
    EXPECT_EQ(result.errors[0].error.message,
              "not UTF-8 (line 3): the value of /metadata/name is not UTF-8 text; YAML and JSON "
              "are Unicode text");
  }
}

// manifest_reader and policy_parser: yaml-cpp 0.7's LoadAll reads `"a",2` as endless empty
// documents, allocating until the process runs out of memory (then std::bad_alloc).
TEST(FuzzRegression, YamlThatLoadAllReadsForeverIsAnError) {
  for (const std::string text : {"\"a\",2", "\"a\",\"kind\":\"List\",\"i\"n:0\na\",2"}) {
    ManifestResult result;
    EXPECT_NO_THROW(ReadManifest("m.yaml", text, {}, result));
    EXPECT_TRUE(result.workloads.empty());
    ASSERT_EQ(result.errors.size(), 1u) << text;
    EXPECT_THAT(result.errors[0].error.message, HasSubstr("not valid YAML")) << text;

    PolicyParseResult policies;
    EXPECT_NO_THROW(policies = ParsePolicies(text));
    ASSERT_EQ(policies.errors.size(), 1u) << text;
    EXPECT_THAT(policies.errors[0], HasSubstr("not valid YAML")) << text;
  }
}

// manifest reader: a JSON number too large for a double (1e400) made nlohmann's exceptions-on
// parser throw out_of_range.406, which ParseJson did not catch (found by the long run of the
// manifest_reader target): capwatch audit -f ended in std::terminate.
TEST(FuzzRegression, AJsonNumberTooLargeIsAnError) {
  for (const std::string text :
       {"[33333333e333333333333333333333]",
        "{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}, "
        "\"spec\": {\"securityContext\": {\"runAsUser\": 1e400}, \"containers\": [{\"name\": \"c\"}]}}"}) {
    ManifestResult result;
    EXPECT_NO_THROW(ReadManifest("m.json", text, {}, result)) << text;
    EXPECT_TRUE(result.workloads.empty()) << text;
    ASSERT_EQ(result.errors.size(), 1u) << text;
    EXPECT_THAT(result.errors[0].error.message, HasSubstr("not valid JSON")) << text;
    EXPECT_THAT(result.errors[0].error.message, HasSubstr("number")) << text;
  }
}

// policy informer: metadata.generation 4.4e91 (a float) read with value("generation", int64)
// converted a double out of int64's range, undefined behaviour (UBSan, found by the long run of
// the policy_codec target). A generation that is no integer refuses the object, naming it.
TEST(FuzzRegression, APolicyGenerationThatIsNoIntegerIsRefused) {
  for (const std::string generation : {"4.4e91", "1.5", "-1e300"}) {
    controller::PolicyCodec codec;
    const std::string object =
        R"({"apiVersion": "capwatch.io/v1alpha1", "kind": "CapabilityPolicy", "spec": {},)"
        R"( "metadata": {"name": "prod", "resourceVersion": "4", "generation": )" +
        generation + "}}";
    auto decoded = codec.Decode(object);
    EXPECT_FALSE(decoded.ok()) << generation;
    EXPECT_THAT(decoded.error().ToString(), HasSubstr("metadata.generation")) << generation;
  }
  controller::PolicyCodec codec;
  auto decoded = codec.Decode(R"({"apiVersion": "capwatch.io/v1alpha1", "kind": "CapabilityPolicy",)"
                              R"( "spec": {}, "metadata": {"name": "prod", "generation": 7}})");
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(decoded->generation, 7);
}

// kubeconfig: YAML::BadSubscript reading a field of an entry that is a string, and
// YAML::TypedBadConversion reading an exec argument that is a list.
TEST(FuzzRegression, KubeconfigEntriesOfAnotherShapeAreErrors) {
  const std::string head = "current-context: c\n";
  const std::string context = "contexts:\n- {name: c, context: {cluster: k, user: u}}\n";
  const std::string cluster = "clusters:\n- {name: k, cluster: {server: \"https://k\"}}\n";
  struct Case {
    std::string config;
    std::string error;
  };
  for (const Case& c : {
           Case{head + "contexts:\n- c\n", "contexts[0].name is missing"},
           Case{head + "contexts:\n- {name: c, context: x}\n", ".context.cluster is missing"},
           Case{head + context + cluster + "users:\n- {name: u, user: x}\n",
                "users[u].user must be a mapping"},
           Case{head + context + cluster +
                    "users:\n- {name: u, user: {exec: {command: c, apiVersion: "
                    "client.authentication.k8s.io/v1, args: [[a]]}}}\n",
                "users[u].user.exec.args[0] must be a string"},
       }) {
    kube::testing::TempDir dir;
    dir.Write("config", c.config);
    std::optional<Result<kube::RestConfig>> result;
    EXPECT_NO_THROW(result.emplace(kube::LoadKubeconfig({dir.File("config")}))) << c.config;
    ASSERT_TRUE(result.has_value()) << c.config;
    EXPECT_FALSE(result->ok()) << c.config;
    EXPECT_THAT(result->error().ToString(), HasSubstr(c.error)) << c.config;
  }
}

}  // namespace
}  // namespace capwatch
