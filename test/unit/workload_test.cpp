#include <gtest/gtest.h>

#include <gmock/gmock.h>
#include <map>
#include <set>

#include "workload/manifest_reader.h"
#include "workload/owner_resolution.h"
#include "workload/pod_decoder.h"

namespace capwatch {
namespace {

using ::testing::HasSubstr;

// The one FieldError a failed decode carries (an empty one when it carries none).
FieldError FieldOf(const Status& status) {
  return status.error().fields().empty() ? FieldError{} : status.error().fields().front();
}

const char* kPodJson = R"({
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {
    "name": "web-5d4f8c-abcde", "namespace": "prod", "uid": "u-1", "resourceVersion": "42",
    "creationTimestamp": "2026-11-29T14:00:05Z",
    "labels": {"app": "web", "pod-template-hash": "5d4f8c"},
    "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"x\":1}",
                    "capwatch.io/justification.NET_BIND_SERVICE": "binds :80"},
    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f8c",
                         "uid": "rs-1", "controller": true, "blockOwnerDeletion": true}],
    "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:containers": {}}}}]
  },
  "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled"}]},
  "spec": {
    "initContainers": [{"name": "init", "image": "busybox",
                        "securityContext": {"capabilities": {"add": ["CHOWN"]}, "runAsUser": 0}}],
    "containers": [{"name": "nginx", "image": "nginx:alpine", "env": [{"name": "A", "value": "b"}],
                    "securityContext": {"runAsNonRoot": true, "allowPrivilegeEscalation": false,
                                        "privileged": false,
                                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
    "securityContext": {"runAsNonRoot": true, "runAsUser": 1000},
    "os": {"name": "linux"}
  }
})";

// creationTimestamp through the one RFC 3339 parser: offsets and fractions count, a time that
// does not exist is no time (0, as when absent).
TEST(PodDecoder, CreationTimestamp) {
  const std::pair<const char*, std::int64_t> cases[] = {
      {"2026-11-29T14:00:05Z", 1795960805},
      {"2026-11-29T14:00:05.999Z", 1795960805},
      {"2026-11-29T15:00:05+01:00", 1795960805},
      {"2026-11-29t14:00:05z", 1795960805},
      {"2026-02-30T14:00:05Z", 0},
      {"2026-11-29T14:00:05Zjunk", 0},
      {"2026-11-29T14:00:05", 0},
  };
  PodDecoder decoder;
  for (const auto& [text, want] : cases) {
    PodView pod;
    const std::string json =
        std::string(R"({"metadata": {"name": "a", "namespace": "b", "creationTimestamp": ")") +
        text + R"("}, "spec": {"containers": []}})";
    const Status decoded = decoder.DecodePod(json, pod);
    ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
    EXPECT_EQ(pod.created, want) << text;
  }
}

TEST(PodDecoder, ProjectsTheSecurityRelevantFields) {
  PodDecoder decoder;
  PodView pod;
  const Status decoded = decoder.DecodePod(kPodJson, pod);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(pod.name, "web-5d4f8c-abcde");
  EXPECT_EQ(pod.namespace_name, "prod");
  EXPECT_EQ(pod.uid, "u-1");
  EXPECT_EQ(pod.resource_version, "42");
  EXPECT_EQ(pod.created, 1795960805);
  EXPECT_EQ(pod.labels.size(), 2u);
  ASSERT_EQ(pod.justifications.size(), 1u) << "only capwatch annotations are kept";
  EXPECT_EQ(pod.justifications[0].first, "NET_BIND_SERVICE");
  EXPECT_EQ(pod.justifications[0].second, "binds :80");
  ASSERT_NE(pod.controller_owner(), nullptr);
  EXPECT_EQ(pod.controller_owner()->kind, "ReplicaSet");
  EXPECT_EQ(pod.os, "linux");
  EXPECT_EQ(pod.run_as_non_root, true);
  EXPECT_EQ(pod.run_as_user, 1000);
  ASSERT_EQ(pod.containers.size(), 2u);
  // Containers come first whatever the JSON order.
  EXPECT_EQ(pod.containers[0].name, "nginx");
  EXPECT_EQ(pod.containers[0].type, ContainerType::kContainer);
  EXPECT_EQ(pod.containers[0].drop, std::vector<std::string>{"ALL"});
  EXPECT_EQ(pod.containers[0].add, std::vector<std::string>{"NET_BIND_SERVICE"});
  EXPECT_EQ(pod.containers[0].allow_privilege_escalation, false);
  EXPECT_EQ(pod.containers[0].privileged, false);
  EXPECT_EQ(pod.containers[1].name, "init");
  EXPECT_EQ(pod.containers[1].type, ContainerType::kInitContainer);
  EXPECT_EQ(pod.containers[1].run_as_user, 0);
  EXPECT_FALSE(pod.containers[1].run_as_non_root.has_value());
}

struct BadPod {
  std::string json;
  std::string path;
  std::string message;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const BadPod& c, std::ostream* os) { *os << c.path; }

class PodDecoderUnreadable : public ::testing::TestWithParam<BadPod> {};

// A wrong type does not lose the Pod: the field is recorded, with its path, and the rest is read.
TEST_P(PodDecoderUnreadable, RecordsTheFieldAndReadsTheRest) {
  PodDecoder decoder;
  PodView pod;
  const Status decoded = decoder.DecodePod(GetParam().json, pod);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  ASSERT_EQ(pod.unreadable.size(), 1u);
  EXPECT_EQ(pod.unreadable[0].path, GetParam().path);
  EXPECT_THAT(pod.unreadable[0].reason, HasSubstr(GetParam().message));
  EXPECT_EQ(pod.name, "p") << "fields after the bad one are read";
}

INSTANTIATE_TEST_SUITE_P(
    Cases, PodDecoderUnreadable,
    ::testing::Values(
        BadPod{
            R"({"spec": {"containers": [{"name": "a", "securityContext": {"capabilities": {"add": [1]}}}]}, "metadata": {"name": "p"}})",
            ".spec.containers[0].securityContext.capabilities.add[0]",
            "expected a string, got a number"},
        BadPod{
            R"({"spec": {"containers": [{"name": "a"}, {"name": "b", "securityContext": {"privileged": "yes"}}]}, "metadata": {"name": "p"}})",
            ".spec.containers[1].securityContext.privileged", "expected a boolean, got a string"},
        BadPod{R"({"spec": {"securityContext": {"runAsUser": 1.5}}, "metadata": {"name": "p"}})",
               ".spec.securityContext.runAsUser", "integer"},
        BadPod{R"({"spec": {"containers": {"name": "a"}}, "metadata": {"name": "p"}})",
               ".spec.containers", "expected an array, got an object"},
        BadPod{R"({"metadata": {"labels": ["a"], "name": "p"}})", ".metadata.labels",
               "expected an object"},
        BadPod{R"({"metadata": {"labels": {"tier": 1}, "name": "p"}})", ".metadata.labels.tier",
               "expected a string, got a number"},
        BadPod{R"({"spec": {"containers": ["c"]}, "metadata": {"name": "p"}})",
               ".spec.containers[0]", "expected an object, got a string"},
        BadPod{
            R"({"metadata": {"name": "p", "ownerReferences": [{"kind": "ReplicaSet", "name": 5}]}})",
            ".metadata.ownerReferences[0].name", "expected a string"},
        BadPod{R"({"spec": {"os": {"name": false}}, "metadata": {"name": "p"}})", ".spec.os.name",
               "expected a string, got a boolean"}),
    [](const auto& p) {
      std::string name;
      for (char c : p.param.path) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name;
    });

TEST(PodDecoder, KeepsWhatItCanReadAroundAWrongType) {
  const std::string json = R"({
    "metadata": {"name": "web", "namespace": "prod", "uid": "u-1"},
    "spec": {"containers": [{
      "securityContext": {"privileged": "yes", "runAsNonRoot": true,
                          "capabilities": {"add": ["SYS_ADMIN", 7, "NET_RAW", null], "drop": ["ALL"]}},
      "name": "app", "image": "img"}]}})";
  PodDecoder decoder;
  PodView pod;
  const Status decoded = decoder.DecodePod(json, pod);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(pod.name, "web");
  EXPECT_EQ(pod.namespace_name, "prod");
  ASSERT_EQ(pod.containers.size(), 1u);
  const ContainerView& c = pod.containers[0];
  EXPECT_EQ(c.name, "app");
  EXPECT_EQ(c.image, "img");
  EXPECT_EQ(c.add, (std::vector<std::string>{"SYS_ADMIN", "NET_RAW", ""}))
      << "the number is no entry; null is the empty name, as the API server reads it";
  EXPECT_EQ(c.drop, std::vector<std::string>{"ALL"});
  EXPECT_FALSE(c.privileged.has_value());
  EXPECT_EQ(c.run_as_non_root, true);
  ASSERT_EQ(pod.unreadable.size(), 2u);
  EXPECT_EQ(pod.unreadable[0].path, ".spec.containers[0].securityContext.privileged");
  EXPECT_EQ(pod.unreadable[0].reason, "expected a boolean, got a string");
  EXPECT_EQ(pod.unreadable[0].container, "app") << "named even though the name came later";
  EXPECT_EQ(pod.unreadable[1].path, ".spec.containers[0].securityContext.capabilities.add[1]");
  EXPECT_EQ(pod.unreadable[1].reason, "expected a string, got a number");
  EXPECT_EQ(pod.unreadable[1].container, "app");
}

TEST(PodDecoder, FailsOnlyOnWhatIsNoPodAtAll) {
  PodDecoder decoder;
  PodView pod;
  Status decoded = decoder.DecodePod(R"({"spec": {"containers": [{"name": "a")", pod);
  EXPECT_FALSE(decoded.ok());
  EXPECT_EQ(FieldOf(decoded).field, ".spec.containers[0]");
  EXPECT_THAT(FieldOf(decoded).message, HasSubstr("invalid JSON"));
  PodView array;
  decoded = decoder.DecodePod("[1]", array);
  EXPECT_FALSE(decoded.ok());
  EXPECT_EQ(FieldOf(decoded).message, "expected an object, got an array");
  PodView scalar;
  EXPECT_FALSE(decoder.DecodePod("7", scalar).ok());
}

TEST(PodDecoder, ReadsTheFirstHundredThousandCapabilityEntriesAndRecordsTheRest) {
  std::string json = R"({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c",
    "securityContext": {"capabilities": {"add": [)";
  const std::size_t entries = kMaxCapabilityListEntries + 5;
  for (std::size_t i = 0; i < entries; ++i) {
    json += i + 1 == entries ? "\"SYS_ADMIN\"" : "\"JUNK\",";
  }
  json += "]}}}]}}";
  PodDecoder decoder;
  PodView pod;
  const Status decoded = decoder.DecodePod(json, pod);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(pod.containers.at(0).add.size(), kMaxCapabilityListEntries);
  ASSERT_EQ(pod.unreadable.size(), 1u);
  EXPECT_EQ(pod.unreadable[0].path, ".spec.containers[0].securityContext.capabilities.add");
  EXPECT_THAT(pod.unreadable[0].reason, HasSubstr(std::to_string(entries) + " entries"));
  EXPECT_EQ(pod.unreadable[0].container, "c");
}

TEST(PodDecoder, DecodesAListBody) {
  const std::string list =
      std::string(
          R"({"kind": "PodList", "metadata": {"resourceVersion": "77", "continue": "tok"}, "items": [)") +
      kPodJson + "," + kPodJson + "]}";
  PodDecoder decoder;
  std::vector<PodView> pods;
  PodDecoder::ListMeta meta;
  const Status decoded =
      decoder.DecodePodList(list, [&](PodView&& p) { pods.push_back(std::move(p)); }, meta);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(pods.size(), 2u);
  EXPECT_EQ(meta.resource_version, "77");
  EXPECT_EQ(meta.continue_token, "tok");
}

TEST(PodDecoder, DoesNotHoldTheMemoryOfAHugeListAfterDecodingIt) {
  std::string list = R"({"metadata": {"resourceVersion": "1"}, "items": [)";
  const std::size_t want = 20u << 20;  // a list page of large Pods
  std::size_t n = 0;
  while (list.size() < want) list += (n++ ? "," : "") + std::string(kPodJson);
  list += "]}";
  PodDecoder decoder;
  std::size_t pods = 0;
  PodDecoder::ListMeta meta;
  const Status listed = decoder.DecodePodList(list, [&](PodView&&) { ++pods; }, meta);
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  EXPECT_EQ(pods, n);
  EXPECT_LT(decoder.retained_bytes(), 16u << 20) << "20 MiB of input, let go";

  // A small one keeps its buffers for the next: watch events do not allocate each time.
  PodView pod;
  const Status decoded = decoder.DecodePod(kPodJson, pod);
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_GE(decoder.retained_bytes(), std::string(kPodJson).size());
  EXPECT_FALSE(pod.name.empty());
}

TEST(PodDecoder, ListKeepsAStrangePodWithWhatCouldBeRead) {
  const std::string bad =
      R"({"metadata": {"name": "bad", "namespace": "prod", "uid": "u-bad", "resourceVersion": "9"}, "spec": {"containers": [{"name": "c", "securityContext": {"privileged": "yes"}}]}})";
  const std::string list =
      std::string(R"({"items": [)") + kPodJson + "," + bad + "," + kPodJson + "]}";
  PodDecoder decoder;
  std::vector<PodView> pods;
  std::vector<FieldError> skipped;
  PodDecoder::ListMeta meta;
  const Status decoded = decoder.DecodePodList(
      list, [&](PodView&& p) { pods.push_back(std::move(p)); }, meta,
      [&](const FieldError& e) { skipped.push_back(e); });
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_TRUE(skipped.empty());
  ASSERT_EQ(pods.size(), 3u);
  EXPECT_TRUE(pods[0].unreadable.empty());
  EXPECT_TRUE(pods[2].unreadable.empty()) << "the next item starts clean";
  const PodView& strange = pods[1];
  EXPECT_EQ(strange.name, "bad");
  EXPECT_EQ(strange.uid, "u-bad");
  EXPECT_EQ(strange.resource_version, "9");
  ASSERT_EQ(strange.containers.size(), 1u);
  ASSERT_EQ(strange.unreadable.size(), 1u);
  EXPECT_EQ(strange.unreadable[0].path, ".spec.containers[0].securityContext.privileged")
      << "a path in the Pod, not in the list";
  // Without the callback too: the Pod is data, not an error.
  pods.clear();
  ASSERT_TRUE(
      decoder.DecodePodList(list, [&](PodView&& p) { pods.push_back(std::move(p)); }, meta).ok());
  EXPECT_EQ(pods.size(), 3u);
}

TEST(PodDecoder, ListSkipsOnlyAPodWithoutAReadableNameOrNamespace) {
  const std::string list = std::string(R"({"items": [)") + kPodJson + "," +
                           R"({"metadata": {"name": 5, "namespace": "prod"}, "spec": {}},)" +
                           R"({"metadata": {"name": "x", "namespace": ["prod"]}},)" +
                           R"({"metadata": "web"}, 42,)" + kPodJson + "]}";
  PodDecoder decoder;
  std::vector<std::string> names;
  std::vector<FieldError> skipped;
  PodDecoder::ListMeta meta;
  const Status decoded = decoder.DecodePodList(
      list, [&](PodView&& p) { names.push_back(p.name); }, meta,
      [&](const FieldError& e) { skipped.push_back(e); });
  ASSERT_TRUE(decoded.ok()) << decoded.error().ToString();
  EXPECT_EQ(names.size(), 2u);
  ASSERT_EQ(skipped.size(), 4u);
  EXPECT_EQ(skipped[0].field, ".items[1].metadata.name");
  EXPECT_EQ(skipped[0].message, "expected a string, got a number");
  EXPECT_EQ(skipped[1].field, ".items[2].metadata.namespace");
  EXPECT_EQ(skipped[2].field, ".items[3].metadata");
  EXPECT_EQ(skipped[3].field, ".items[4]");
  // Without the callback the list fails, naming the field.
  const Status failed = decoder.DecodePodList(list, [&](PodView&&) {}, meta);
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(FieldOf(failed).field, ".items[1].metadata.name");
}

TEST(PodDecoder, IsReusableAcrossCalls) {
  PodDecoder decoder;
  for (int i = 0; i < 3; ++i) {
    PodView pod;
    ASSERT_TRUE(decoder.DecodePod(kPodJson, pod).ok());
    EXPECT_EQ(pod.containers.size(), 2u);
  }
}

// ---- Owner resolution ------------------------------------------------------------------------

TEST(OwnerResolution, ClimbsReplicaSetToDeploymentAndJobToCronJob) {
  PodView pod;
  pod.name = "web-abc";
  pod.namespace_name = "prod";
  pod.owners = {{"apps/v1", "ReplicaSet", "web-5d4f8c", "rs-1", true}};
  auto lookup = [](std::string_view kind, std::string_view, std::string_view name) -> OwnerInfo {
    if (kind == "ReplicaSet" && name == "web-5d4f8c") {
      return {true, OwnerReference{"apps/v1", "Deployment", "web", "d-1", true}};
    }
    if (kind == "Job" && name == "backup-123") {
      return {true, OwnerReference{"batch/v1", "CronJob", "backup", "cj-1", true}};
    }
    if (kind == "ReplicaSet" && name == "bare-rs") return {true, std::nullopt};
    return {};
  };
  WorkloadRef w = ResolveWorkload(pod, lookup);
  EXPECT_EQ(w.kind, "Deployment");
  EXPECT_EQ(w.name, "web");
  EXPECT_EQ(ReportName(w), "deployment-web");

  pod.owners = {{"batch/v1", "Job", "backup-123", "j-1", true}};
  w = ResolveWorkload(pod, lookup);
  EXPECT_EQ(ReportName(w), "cronjob-backup");

  pod.owners = {{"apps/v1", "ReplicaSet", "bare-rs", "rs-2", true}};
  EXPECT_EQ(ReportName(ResolveWorkload(pod, lookup)), "replicaset-bare-rs");

  pod.owners = {{"apps/v1", "StatefulSet", "db", "ss-1", true}};
  EXPECT_EQ(ReportName(ResolveWorkload(pod, lookup)), "statefulset-db");

  pod.owners = {{"apps/v1", "ReplicaSet", "x", "x", false}};  // not a controller reference
  EXPECT_EQ(ReportName(ResolveWorkload(pod, lookup)), "pod-web-abc");
}

TEST(OwnerResolution, UnknownReplicaSetFallsBackToPodTemplateHash) {
  PodView pod;
  pod.name = "web-5d4f8c-abcde";
  pod.labels = {{"pod-template-hash", "5d4f8c"}};
  pod.owners = {{"apps/v1", "ReplicaSet", "web-5d4f8c", "rs-1", true}};
  EXPECT_EQ(ReportName(ResolveWorkload(pod, nullptr)), "deployment-web");
}

TEST(OwnerResolution, ReportNamesStayWithinTheObjectNameLimit) {
  const std::string name = ReportName({"v1", "Pod", std::string(253, 'a'), ""});
  EXPECT_LE(name.size(), 253u);
  EXPECT_NE(name, ReportName({"v1", "Pod", std::string(252, 'a') + "b", ""}));
}

// What the API server accepts as an object name (IsDNS1123Subdomain): at most 253 characters,
// dot-separated labels of lower-case letters, digits and '-', each starting and ending with a
// letter or digit.
bool IsDns1123Subdomain(const std::string& s) {
  if (s.empty() || s.size() > 253) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = s.find('.', start);
    const std::string_view label = std::string_view(s).substr(
        start, dot == std::string::npos ? std::string::npos : dot - start);
    if (label.empty() || !alnum(label.front()) || !alnum(label.back())) return false;
    for (char c : label) {
      if (!alnum(c) && c != '-') return false;
    }
    if (dot == std::string::npos) return true;
    start = dot + 1;
  }
}

TEST(OwnerResolution, TheSubdomainCheckOfTheseTestsIsStrict) {
  for (const char* good : {"a", "0", "a-b", "a--b", "a.b", "pod-a.b-c.d"}) {
    EXPECT_TRUE(IsDns1123Subdomain(good)) << good;
  }
  for (const char* bad : {"", "-a", "a-", ".a", "a.", "a..b", "a.-b", "a-.b", "A", "a_b"}) {
    EXPECT_FALSE(IsDns1123Subdomain(bad)) << bad;
  }
  EXPECT_TRUE(IsDns1123Subdomain(std::string(253, 'a')));
  EXPECT_FALSE(IsDns1123Subdomain(std::string(254, 'a')));
}

// A legal workload name of `length` characters, letters and digits varied by `seed`.
std::string LegalName(std::size_t length, std::size_t seed) {
  static constexpr std::string_view kChars = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string name(length, 'a');
  for (std::size_t i = 0; i < length; ++i) name[i] = kChars[(i * 7 + seed) % kChars.size()];
  return name;
}

TEST(OwnerResolution, ReportNamesAreValidAndDistinctForEveryLegalName) {
  const std::vector<std::string> kinds = {
      "Deployment", "StatefulSet", "CronJob",
      "ReplicaSet", "Pod",         "ClusterWideObservabilityPipelineCollectorDeploymentSet"};
  // Separators a legal name may hold: a dot between labels, hyphens, one-character labels.
  const std::vector<std::string> kSeparators = {".", "-", "--", "---", ".z.", ".z-", "-z."};
  std::set<std::pair<std::string, std::string>> inputs;
  std::set<std::string> outputs;
  std::size_t cases = 0;
  auto check = [&](const std::string& kind, const std::string& name) {
    ASSERT_TRUE(IsDns1123Subdomain(name)) << "the test generated an illegal name: " << name;
    const std::string report = ReportName({"v1", kind, name, ""});
    ASSERT_TRUE(IsDns1123Subdomain(report))
        << kind << " " << name << " (" << name.size() << " characters) gives " << report;
    if (inputs.emplace(kind, name).second) {
      ++cases;
      EXPECT_TRUE(outputs.insert(report).second)
          << kind << " " << name << " gives " << report << ", the name of another workload too";
    }
  };
  for (const auto& kind : kinds) {
    const std::size_t prefix = kind.size() + 1;  // "<kind>-"
    for (std::size_t length = 1; length <= 253; ++length) {
      check(kind, LegalName(length, length));
      // Dots and hyphens all along the name: every label one character long.
      if (length % 2 == 1) {
        std::string dotted = LegalName(length, 3), hyphened = dotted;
        for (std::size_t i = 1; i < length; i += 2) {
          dotted[i] = '.';
          hyphened[i] = '-';
        }
        check(kind, dotted);
        check(kind, hyphened);
      }
      if (prefix + length <= 253) continue;
      // Long enough to be cut: a separator at every position around every place the cut may
      // fall (the cut keeps a prefix of the report name and appends a 17-character hash).
      for (const auto& sep : kSeparators) {
        for (std::size_t at = 1; at + sep.size() < length; ++at) {
          const std::size_t cut_in_name = 253 - 17 - prefix;
          if (at + sep.size() + 2 < cut_in_name || at > cut_in_name + 2) continue;
          std::string name = LegalName(length, at);
          name.replace(at, sep.size(), sep);
          check(kind, name);
        }
      }
    }
  }
  EXPECT_GT(cases, 5000u);
}

// ---- Manifests -------------------------------------------------------------------------------

ManifestResult Read(const std::string& content, const ManifestOptions& options = {}) {
  ManifestResult result;
  ReadManifest("m.yaml", content, options, result);
  return result;
}

std::string Template(const std::string& indent) {
  return indent + "template:\n" + indent + "  metadata: {labels: {app: x}}\n" + indent +
         "  spec:\n" + indent + "    containers:\n" + indent +
         "    - {name: c, image: i, securityContext: {capabilities: {add: [SYS_ADMIN]}}}\n";
}

struct KindCase {
  std::string kind;
  std::string manifest;
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const KindCase& c, std::ostream* os) { *os << c.kind; }

class ManifestKinds : public ::testing::TestWithParam<KindCase> {};

TEST_P(ManifestKinds, YieldThePodTemplate) {
  const ManifestResult result = Read(GetParam().manifest);
  ASSERT_TRUE(result.errors.empty()) << result.errors[0].ToString();
  ASSERT_EQ(result.workloads.size(), 1u);
  const ManifestWorkload& w = result.workloads[0];
  EXPECT_EQ(w.ref.kind, GetParam().kind);
  EXPECT_EQ(w.ref.name, "x");
  EXPECT_EQ(w.namespace_name, "ns");
  ASSERT_EQ(w.pod.containers.size(), 1u);
  EXPECT_EQ(w.pod.containers[0].add, std::vector<std::string>{"SYS_ADMIN"});
  EXPECT_EQ(w.pod.namespace_name, "ns");
}

std::string Workload(const std::string& api, const std::string& kind) {
  return "apiVersion: " + api + "\nkind: " + kind +
         "\nmetadata: {name: x, namespace: ns}\nspec:\n" + Template("  ");
}

INSTANTIATE_TEST_SUITE_P(
    Kinds, ManifestKinds,
    ::testing::Values(
        KindCase{"Deployment", Workload("apps/v1", "Deployment")},
        KindCase{"StatefulSet", Workload("apps/v1", "StatefulSet")},
        KindCase{"DaemonSet", Workload("apps/v1", "DaemonSet")},
        KindCase{"ReplicaSet", Workload("apps/v1", "ReplicaSet")},
        KindCase{"ReplicationController", Workload("v1", "ReplicationController")},
        KindCase{"Job", Workload("batch/v1", "Job")},
        KindCase{"CronJob",
                 "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x, namespace: ns}\n"
                 "spec:\n  schedule: '* * * * *'\n  jobTemplate:\n    spec:\n" +
                     Template("      ")},
        KindCase{"PodTemplate",
                 "apiVersion: v1\nkind: PodTemplate\nmetadata: {name: x, namespace: ns}\n" +
                     Template("")},
        KindCase{
            "Pod",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: x, namespace: ns}\nspec:\n  containers:\n"
            "  - {name: c, image: i, securityContext: {capabilities: {add: [SYS_ADMIN]}}}\n"},
        KindCase{"Rollout", Workload("argoproj.io/v1alpha1", "Rollout")}),
    [](const auto& p) { return p.param.kind; });

TEST(Manifests, MultiDocumentYamlListsAndNonWorkloads) {
  const std::string yaml =
      "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n---\n" +
      Workload("apps/v1", "Deployment") +
      "---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n"
      "  metadata: {name: p1}\n  spec: {containers: [{name: a, image: b}]}\n";
  const ManifestResult result = Read(yaml);
  ASSERT_TRUE(result.errors.empty()) << result.errors[0].ToString();
  ASSERT_EQ(result.workloads.size(), 2u);
  EXPECT_EQ(result.workloads[0].source.document, 3);
  EXPECT_EQ(result.workloads[0].source.line, 6);
  EXPECT_EQ(result.workloads[1].ref.name, "p1");
  EXPECT_EQ(result.workloads[1].namespace_name, "default");
}

TEST(Manifests, KubectlJsonOutputGroupsPodsUnderTheirDeployment) {
  auto pod = [](const std::string& name) {
    return R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":")" + name +
           R"(","namespace":"prod","labels":{"pod-template-hash":"5d4f8c"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d4f8c","uid":"rs","controller":true}]},"spec":{"containers":[{"name":"c","image":"i"}]}})";
  };
  const std::string json =
      R"({"apiVersion":"v1","kind":"List","items":[)" + pod("web-5d4f8c-a") + "," +
      pod("web-5d4f8c-b") + "," +
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"debug","namespace":"prod"},"spec":{"containers":[{"name":"c","image":"i"}]}}]})";
  ManifestResult result;
  ReadManifest("pods.json", json, {}, result);
  AttributePods(result);
  ASSERT_TRUE(result.errors.empty()) << result.errors[0].ToString();
  ASSERT_EQ(result.workloads.size(), 2u);
  EXPECT_EQ(ReportName(result.workloads[0].ref), "deployment-web");
  EXPECT_EQ(result.workloads[0].pods, 2);
  EXPECT_EQ(ReportName(result.workloads[1].ref), "pod-debug");
  EXPECT_EQ(result.workloads[1].pods, 1);
}

TEST(Manifests, PodsOfOneWorkloadContributeContainersOnlySomeOfThemHave) {
  const std::string base =
      R"("apiVersion":"v1","kind":"Pod","metadata":{"name":"NAME","namespace":"prod","labels":{"pod-template-hash":"h1"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-h1","uid":"rs","controller":true}]},"spec":{"containers":[{"name":"c","image":"i"}])";
  auto pod = [&](const std::string& name, const std::string& extra) {
    std::string p = base;
    p.replace(p.find("NAME"), 4, name);
    return "{" + p + extra + "}}";
  };
  const std::string json =
      R"({"kind":"List","items":[)" + pod("web-h1-a", "") + "," +
      pod("web-h1-b",
          R"(,"ephemeralContainers":[{"name":"debug","image":"busybox","securityContext":{"capabilities":{"add":["SYS_PTRACE"]}}}])") +
      "]}";
  ManifestResult result;
  ReadManifest("pods.json", json, {}, result);
  AttributePods(result);
  ASSERT_EQ(result.workloads.size(), 1u);
  ASSERT_EQ(result.workloads[0].pod.containers.size(), 2u);
  EXPECT_EQ(result.workloads[0].pod.containers[1].name, "debug");
  EXPECT_EQ(result.workloads[0].pods, 2);
}

TEST(Manifests, TheSameWorkloadInTwoFilesIsEvaluatedTwice) {
  ManifestResult result;
  ReadManifest("base.yaml", Workload("apps/v1", "Deployment"), {}, result);
  ReadManifest("overlay.yaml", Workload("apps/v1", "Deployment"), {}, result);
  AttributePods(result);
  EXPECT_EQ(result.workloads.size(), 2u);
  ASSERT_EQ(result.notes.size(), 1u);
  EXPECT_THAT(result.notes[0], HasSubstr("overlay.yaml"));
}

TEST(Manifests, YamlScalarsResolveLikeKubernetes) {
  const ManifestResult result = Read(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n"
      "  - {name: c, image: i, securityContext: {privileged: yes, runAsUser: 1000, runAsNonRoot: "
      "\"true\"}}\n");
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.workloads.size(), 1u);
  const PodView& pod = result.workloads[0].pod;
  EXPECT_EQ(pod.containers[0].privileged, true) << "YAML 1.1: yes is true";
  EXPECT_EQ(pod.containers[0].run_as_user, 1000);
  // A quoted "true" is a string where a boolean belongs: unreadable, and named.
  EXPECT_FALSE(pod.containers[0].run_as_non_root.has_value());
  ASSERT_EQ(pod.unreadable.size(), 1u);
  EXPECT_EQ(pod.unreadable[0].path, ".spec.containers[0].securityContext.runAsNonRoot");
}

TEST(Manifests, AWrongTypeInATemplateIsRecordedAndTheObjectStillRead) {
  const std::string yaml =
      "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\n"
      "apiVersion: v1\nkind: List\nitems:\n"
      "- apiVersion: apps/v1\n"
      "  kind: Deployment\n"
      "  metadata: {name: web, namespace: prod}\n"
      "  spec:\n"
      "    template:\n"
      "      spec:\n"
      "        containers:\n"
      "        - name: app\n"
      "          image: img\n"
      "          securityContext:\n"
      "            privileged: \"yes\"\n"
      "            capabilities: {add: [SYS_ADMIN, 7]}\n";
  const ManifestResult result = Read(yaml);
  EXPECT_TRUE(result.errors.empty()) << result.errors[0].ToString();
  ASSERT_EQ(result.workloads.size(), 1u);
  const ManifestWorkload& w = result.workloads[0];
  EXPECT_EQ(w.ref.name, "web");
  EXPECT_EQ(w.pod.containers.at(0).add, std::vector<std::string>{"SYS_ADMIN"});
  // Paths in the document, as every other message of audit names them.
  std::map<std::string, const UnreadableField*> by_path;
  for (const auto& u : w.pod.unreadable) by_path[u.path] = &u;
  const std::string sc = ".items[0].spec.template.spec.containers[0].securityContext";
  ASSERT_EQ(by_path.size(), 2u);
  ASSERT_TRUE(by_path.count(sc + ".privileged"));
  EXPECT_EQ(by_path[sc + ".privileged"]->reason, "expected a boolean, got a string");
  EXPECT_EQ(by_path[sc + ".privileged"]->container, "app");
  ASSERT_TRUE(by_path.count(sc + ".capabilities.add[1]"));
  EXPECT_EQ(by_path[sc + ".capabilities.add[1]"]->reason, "expected a string, got a number");
  // And each is a warning naming file, document, line and field.
  ASSERT_EQ(result.warnings.size(), 2u);
  std::vector<std::string> warnings;
  for (const auto& e : result.warnings) warnings.push_back(e.ToString());
  EXPECT_THAT(warnings, ::testing::UnorderedElementsAre(
                            "m.yaml, document 2, line 18, field " + sc +
                                ".privileged: expected a boolean, got a string",
                            "m.yaml, document 2, line 19, field " + sc +
                                ".capabilities.add[1]: expected a string, got a number"));
}

TEST(Manifests, AWrongTypeInAWorkloadsOwnMetadataIsRecordedToo) {
  const ManifestResult result = Read(
      "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x, namespace: ns, labels: {v: 2}}\n"
      "spec:\n" +
      Template("  "));
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.workloads.size(), 1u);
  ASSERT_EQ(result.workloads[0].pod.unreadable.size(), 1u);
  EXPECT_EQ(result.workloads[0].pod.unreadable[0].path, ".metadata.labels.v");
  EXPECT_EQ(result.workloads[0].pod.unreadable[0].container, "");
}

TEST(Manifests, AnUnreadableNameOrNamespaceIsAnInputError) {
  for (const std::string meta : {"{name: 5}", "{name: p, namespace: [a]}", "[p]"}) {
    const ManifestResult result = Read("apiVersion: v1\nkind: Pod\nmetadata: " + meta +
                                       "\nspec: {containers: [{name: c, image: i}]}\n");
    ASSERT_EQ(result.errors.size(), 1u) << meta;
    EXPECT_THAT(result.errors[0].error.field, ::testing::StartsWith(".metadata")) << meta;
    EXPECT_THAT(result.errors[0].error.message, HasSubstr("expected a")) << meta;
    EXPECT_TRUE(result.workloads.empty()) << meta;
  }
}

struct BadInput {
  std::string name;
  std::string content;
  std::string path;     // expected field path ("" = any)
  std::string message;  // expected substring
};

// Test names and failure messages show the case, not its bytes.
void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class ManifestErrors : public ::testing::TestWithParam<BadInput> {};

TEST_P(ManifestErrors, AreClearAndNameTheField) {
  const ManifestResult result = Read(GetParam().content);
  ASSERT_FALSE(result.errors.empty()) << GetParam().name;
  const ManifestError& e = result.errors[0];
  if (!GetParam().path.empty()) {
    EXPECT_EQ(e.error.field, GetParam().path);
  }
  EXPECT_THAT(e.ToString(), HasSubstr(GetParam().message));
  EXPECT_THAT(e.ToString(), HasSubstr("m.yaml"));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ManifestErrors,
    ::testing::Values(
        BadInput{"empty", "", "", "empty"},
        BadInput{"only_separators", "---\n---\n", "", "only empty documents"},
        BadInput{"not_yaml", "kind: Pod\n  bad: [unclosed\n", "", "not valid YAML"},
        BadInput{"not_json", "{\"kind\": \"Pod\",", "", "not valid JSON"},
        BadInput{"scalar_document", "hello\n", "", "expected a Kubernetes object"},
        BadInput{"missing_kind", "apiVersion: v1\nmetadata: {name: x}\n", ".kind", "missing"},
        BadInput{"unknown_kind", "apiVersion: v1\nkind: Deploymnet\nmetadata: {name: x}\n", ".kind",
                 "unknown kind \"Deploymnet\""},
        BadInput{"no_containers", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {}\n",
                 ".spec.containers", "at least one container"},
        BadInput{"missing_template",
                 "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {}\n",
                 ".spec.template", "needs a pod template"},
        BadInput{"missing_name", "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: a}]}\n",
                 ".metadata.name", "no name"},
        BadInput{"deep_nesting", std::string(5000, '[') + std::string(5000, ']'), "", "not"}),
    [](const auto& p) { return p.param.name; });

TEST(Manifests, ACapabilityListOfTenThousandEntriesIsReadEntryByEntry) {
  std::string yaml =
      "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec:\n  containers:\n"
      "  - name: c\n    securityContext:\n      capabilities:\n        add:\n";
  for (int i = 0; i < 10000; ++i)
    yaml += i == 7777 ? "        - SYS_ADMIN\n" : "        - NET_RAW\n";
  const ManifestResult result = Read(yaml);
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.workloads.size(), 1u);
  const auto& add = result.workloads[0].pod.containers.at(0).add;
  EXPECT_EQ(add.size(), 10000u);
  EXPECT_EQ(add[7777], "SYS_ADMIN");
  EXPECT_TRUE(result.workloads[0].pod.unreadable.empty());
}

TEST(Manifests, WrongTypesForWholeListsAreUnreadableFieldsToo) {
  const ManifestResult result =
      Read("apiVersion: v1\nkind: Pod\nmetadata: {name: x}\nspec: {containers: 3}\n");
  EXPECT_TRUE(result.errors.empty());
  ASSERT_EQ(result.workloads.size(), 1u);
  EXPECT_TRUE(result.workloads[0].pod.containers.empty());
  ASSERT_EQ(result.workloads[0].pod.unreadable.size(), 1u);
  EXPECT_EQ(result.workloads[0].pod.unreadable[0].path, ".spec.containers");
  EXPECT_EQ(result.workloads[0].pod.unreadable[0].reason, "expected an array, got a number");
}

TEST(Manifests, LargeYamlIsRefusedWithAdviceAndLargeJsonIsRead) {
  std::string big_yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  blob: \"";
  big_yaml.append(50u << 20, 'a');
  big_yaml += "\"\n";
  const ManifestResult yaml_result = Read(big_yaml);
  ASSERT_EQ(yaml_result.errors.size(), 1u);
  EXPECT_THAT(yaml_result.errors[0].error.message, HasSubstr("as JSON"));

  std::string big_json = R"({"apiVersion":"v1","kind":"List","items":[)";
  const std::string pod =
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"a":")" +
      std::string(5000, 'x') + R"("}},"spec":{"containers":[{"name":"c","image":"i"}]}})";
  int count = 0;
  while (big_json.size() < (50u << 20)) {
    if (count++ > 0) big_json += ",";
    big_json += pod;
  }
  big_json += "]}";
  const ManifestResult json_result = Read(big_json);
  EXPECT_TRUE(json_result.errors.empty());
  EXPECT_EQ(json_result.workloads.size(), static_cast<std::size_t>(count));
}

}  // namespace
}  // namespace capwatch
