// Every nlohmann-decoded informer codec (ReplicaSet/Job metadata, Namespaces, CapabilityPolicies,
// CapabilityReports) fed objects with each field of each wrong type: nothing throws (a throw on
// an informer thread ends the process), an object that cannot be read is refused with its name
// and the field, and a list page leaves out only that object.

#include <gtest/gtest.h>

#include <gmock/gmock.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "controller/cluster_views.h"
#include "controller/metadata_informer.h"
#include "kube/informer.h"
#include "kube/json_codec.h"

namespace capwatch::kube {
namespace {

// The Pod and owner-metadata informers live in lib/controller (capwatch_cluster_views).
using controller::MetadataCodec;
using controller::ObjectMetaView;

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// MistypedField's error as text: empty when every field fits.
std::string Mistyped(const json& o, std::initializer_list<JsonField> fields) {
  return MistypedField(o, fields).error().ToString();
}

TEST(MistypedField, NamesTheFirstFieldOfAnotherTypeByItsPath) {
  const json o = json::parse(R"({"metadata":{"name":"a","labels":{"app":"web","tier":3},
      "ownerReferences":[{"name":"x"},{"name":5}]},"items":null,"list":"no"})");
  EXPECT_EQ(Mistyped(o, {{"metadata.name", JsonType::kString}}), "");
  EXPECT_EQ(Mistyped(o, {{"metadata.labels.*", JsonType::kString}}),
            ".metadata.labels.tier: must be a string, not a number");
  EXPECT_EQ(Mistyped(o, {{"metadata.ownerReferences[].name", JsonType::kString}}),
            ".metadata.ownerReferences[1].name: must be a string, not a number");
  EXPECT_EQ(Mistyped(o, {{"metadata.name", JsonType::kNumber}}),
            ".metadata.name: must be a number, not a string");
  EXPECT_EQ(Mistyped(o, {{"absent.deeper", JsonType::kString}}), "") << "absent fits";
  EXPECT_EQ(Mistyped(o, {{"items", JsonType::kArray}}), "") << "null fits a list";
  EXPECT_EQ(Mistyped(o, {{"list[].x", JsonType::kString}}), "")
      << "a parent of another type is its own entry's business";
  EXPECT_EQ(Mistyped(o, {{"list", JsonType::kArray}}), ".list: must be a list, not a string");
  EXPECT_EQ(Mistyped(o, {{"metadata.ownerReferences[]", JsonType::kString}}),
            ".metadata.ownerReferences[0]: must be a string, not an object");
}

// The four codecs behind one interface for the table.
enum class Kind { kMetadata, kNamespace, kPolicy, kReport };

std::string_view KindName(Kind k) {
  switch (k) {
    case Kind::kMetadata:
      return "Metadata";
    case Kind::kNamespace:
      return "Namespace";
    case Kind::kPolicy:
      return "Policy";
    case Kind::kReport:
      return "Report";
  }
  return "?";
}

// A well-formed object of each kind, named `name`, with every field the codecs read.
json Object(Kind kind, const std::string& name) {
  json metadata = {
      {"name", name},    {"uid", "uid-" + name},       {"resourceVersion", "40"},
      {"generation", 3}, {"labels", {{"app", "web"}}}, {"annotations", {{"note", "hello"}}}};
  switch (kind) {
    case Kind::kMetadata:
      metadata["namespace"] = "prod";
      metadata["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                      {"kind", "Deployment"},
                                      {"name", "web"},
                                      {"uid", "dep-1"},
                                      {"controller", true}}};
      return {{"apiVersion", "meta.k8s.io/v1"},
              {"kind", "PartialObjectMetadata"},
              {"metadata", metadata}};
    case Kind::kNamespace:
      return {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", metadata}};
    case Kind::kPolicy: {
      json policy = json::parse(R"({"apiVersion":"capwatch.io/v1alpha1","kind":"CapabilityPolicy",
        "spec":{"profile":"restricted",
          "match":{"namespaces":["prod-*"],"excludeNamespaces":["kube-system"],
            "namespaceSelector":{"matchLabels":{"env":"prod"}},
            "podSelector":{"matchExpressions":[{"key":"tier","operator":"NotIn",
                                                "values":["batch"]}]}},
          "runtimeDefaults":"cri-o","requireDropAll":true,
          "allowedCapabilities":["NET_BIND_SERVICE"],"forbiddenCapabilities":["SYS_ADMIN"],
          "severities":{"NET_RAW":"high"},"disallowPrivileged":true,
          "requireNoPrivilegeEscalation":true,"requireRunAsNonRoot":true,
          "requireJustification":true,
          "exemptions":[{"name":"debug","namespaces":["netops"],"containers":["tools"],
            "capabilities":["NET_RAW"],"reason":"diagnostics",
            "expires":"2027-01-31T00:00:00Z"}]},
        "status":{"observedGeneration":3}})");
      policy["metadata"] = metadata;
      return policy;
    }
    case Kind::kReport: {
      metadata["namespace"] = "prod";
      metadata["labels"]["app.kubernetes.io/managed-by"] = "capwatch";
      metadata["annotations"]["capwatch.io/content-hash"] = "abc";
      metadata["ownerReferences"] = {{{"apiVersion", "apps/v1"},
                                      {"kind", "Deployment"},
                                      {"name", "web"},
                                      {"uid", "dep-1"},
                                      {"controller", false}}};
      json report = json::parse(R"({"apiVersion":"capwatch.io/v1alpha1","kind":"CapabilityReport",
        "workload":{"apiVersion":"apps/v1","kind":"Deployment","name":"web","uid":"dep-1",
                    "pods":3},
        "containers":[{"name":"app","added":["NET_ADMIN"]}],
        "findings":[{"rule":"dangerous-capability","result":"fail","container":"app",
                     "capability":"NET_ADMIN"}]})");
      report["metadata"] = metadata;
      return report;
    }
  }
  return {};
}

std::string KeyOf(Kind kind, const std::string& name) {
  return kind == Kind::kMetadata || kind == Kind::kReport ? "prod/" + name : name;
}

struct Decoded {
  bool ok = false;
  std::string error;
  std::string key;
  // Policies only: null when the policy is invalid, and why.
  bool policy_valid = false;
  std::vector<std::string> policy_errors;
};

template <typename View>
void Note(const View& view, Decoded& d) {
  d.key = ObjectKey(view.namespace_name, view.name);
  if constexpr (std::is_same_v<View, controller::PolicyView>) {
    d.policy_valid = view.policy != nullptr;
    for (const auto& e : view.errors) d.policy_errors.push_back(e.ToString());
  }
}

template <typename Codec, typename View>
Decoded DecodeWith(const std::string& object) {
  Codec codec;
  Decoded d;
  auto view = codec.Decode(object);
  d.ok = view.ok();
  d.error = view.error().ToString();
  if (d.ok) Note(view.value(), d);
  return d;
}

Decoded Decode(Kind kind, const std::string& object) {
  switch (kind) {
    case Kind::kMetadata:
      return DecodeWith<MetadataCodec, ObjectMetaView>(object);
    case Kind::kNamespace:
      return DecodeWith<controller::NamespaceCodec, controller::NamespaceView>(object);
    case Kind::kPolicy:
      return DecodeWith<controller::PolicyCodec, controller::PolicyView>(object);
    case Kind::kReport:
      return DecodeWith<controller::ReportCodec, controller::ReportView>(object);
  }
  return {};
}

struct Listed {
  bool ok = false;
  std::string error;
  std::vector<std::string> keys;
  std::uint64_t skipped = 0;
  std::string resource_version;
};

template <typename Codec, typename View>
Listed DecodeListWith(const std::string& body) {
  Codec codec;
  Listed l;
  ListPageMeta meta;
  const Status listed = codec.DecodeList(
      body, [&](View&& v) { l.keys.push_back(ObjectKey(v.namespace_name, v.name)); }, meta);
  l.ok = listed.ok();
  l.error = listed.error().ToString();
  l.skipped = meta.skipped_items;
  l.resource_version = meta.resource_version;
  return l;
}

Listed DecodeList(Kind kind, const std::string& body) {
  switch (kind) {
    case Kind::kMetadata:
      return DecodeListWith<MetadataCodec, ObjectMetaView>(body);
    case Kind::kNamespace:
      return DecodeListWith<controller::NamespaceCodec, controller::NamespaceView>(body);
    case Kind::kPolicy:
      return DecodeListWith<controller::PolicyCodec, controller::PolicyView>(body);
    case Kind::kReport:
      return DecodeListWith<controller::ReportCodec, controller::ReportView>(body);
  }
  return {};
}

// What a wrongly typed value in a field leads to.
enum class Judge {
  kCodec,   // the codec refuses the object, naming the field
  kParser,  // the policy parser: the policy is decoded, and invalid with a reason
  kIgnored  // nobody reads it as that type: decoded as if absent
};

struct Field {
  std::string pointer;  // "/metadata/labels/app"
  JsonType type;
  Judge judge;
};

const std::vector<Field>& MetadataFields() {
  static const std::vector<Field> fields = {
      {"/apiVersion", JsonType::kString, Judge::kCodec},
      {"/kind", JsonType::kString, Judge::kCodec},
      {"/metadata", JsonType::kObject, Judge::kCodec},
      {"/metadata/name", JsonType::kString, Judge::kCodec},
      {"/metadata/namespace", JsonType::kString, Judge::kCodec},
      {"/metadata/uid", JsonType::kString, Judge::kCodec},
      {"/metadata/resourceVersion", JsonType::kString, Judge::kCodec},
      {"/metadata/generation", JsonType::kNumber, Judge::kCodec},
      {"/metadata/labels", JsonType::kObject, Judge::kCodec},
      {"/metadata/labels/app", JsonType::kString, Judge::kCodec},
      {"/metadata/annotations", JsonType::kObject, Judge::kCodec},
      {"/metadata/annotations/note", JsonType::kString, Judge::kCodec},
      {"/metadata/ownerReferences", JsonType::kArray, Judge::kCodec},
      {"/metadata/ownerReferences/0", JsonType::kObject, Judge::kCodec},
      {"/metadata/ownerReferences/0/apiVersion", JsonType::kString, Judge::kCodec},
      {"/metadata/ownerReferences/0/kind", JsonType::kString, Judge::kCodec},
      {"/metadata/ownerReferences/0/name", JsonType::kString, Judge::kCodec},
      {"/metadata/ownerReferences/0/uid", JsonType::kString, Judge::kCodec},
      {"/metadata/ownerReferences/0/controller", JsonType::kBool, Judge::kCodec},
  };
  return fields;
}

const std::vector<Field>& KindFields(Kind kind) {
  static const std::vector<Field> none;
  static const std::vector<Field> policy = {
      {"/spec", JsonType::kObject, Judge::kParser},
      {"/spec/profile", JsonType::kString, Judge::kParser},
      {"/spec/match", JsonType::kObject, Judge::kParser},
      {"/spec/match/namespaces", JsonType::kArray, Judge::kParser},
      {"/spec/match/namespaces/0", JsonType::kString, Judge::kParser},
      {"/spec/match/excludeNamespaces", JsonType::kArray, Judge::kParser},
      {"/spec/match/namespaceSelector", JsonType::kObject, Judge::kParser},
      {"/spec/match/namespaceSelector/matchLabels", JsonType::kObject, Judge::kParser},
      {"/spec/match/namespaceSelector/matchLabels/env", JsonType::kString, Judge::kParser},
      {"/spec/match/podSelector/matchExpressions", JsonType::kArray, Judge::kParser},
      {"/spec/match/podSelector/matchExpressions/0", JsonType::kObject, Judge::kParser},
      {"/spec/match/podSelector/matchExpressions/0/key", JsonType::kString, Judge::kParser},
      {"/spec/match/podSelector/matchExpressions/0/operator", JsonType::kString, Judge::kParser},
      {"/spec/match/podSelector/matchExpressions/0/values", JsonType::kArray, Judge::kParser},
      {"/spec/runtimeDefaults", JsonType::kString, Judge::kParser},
      {"/spec/requireDropAll", JsonType::kBool, Judge::kParser},
      {"/spec/allowedCapabilities", JsonType::kArray, Judge::kParser},
      {"/spec/allowedCapabilities/0", JsonType::kString, Judge::kParser},
      {"/spec/forbiddenCapabilities", JsonType::kArray, Judge::kParser},
      {"/spec/severities", JsonType::kObject, Judge::kParser},
      {"/spec/severities/NET_RAW", JsonType::kString, Judge::kParser},
      {"/spec/disallowPrivileged", JsonType::kBool, Judge::kParser},
      {"/spec/requireNoPrivilegeEscalation", JsonType::kBool, Judge::kParser},
      {"/spec/requireRunAsNonRoot", JsonType::kBool, Judge::kParser},
      {"/spec/requireJustification", JsonType::kBool, Judge::kParser},
      {"/spec/exemptions", JsonType::kArray, Judge::kParser},
      {"/spec/exemptions/0", JsonType::kObject, Judge::kParser},
      {"/spec/exemptions/0/name", JsonType::kString, Judge::kParser},
      {"/spec/exemptions/0/namespaces", JsonType::kArray, Judge::kParser},
      {"/spec/exemptions/0/containers", JsonType::kArray, Judge::kParser},
      {"/spec/exemptions/0/capabilities", JsonType::kArray, Judge::kParser},
      {"/spec/exemptions/0/reason", JsonType::kString, Judge::kParser},
      {"/spec/exemptions/0/expires", JsonType::kString, Judge::kParser},
      {"/status", JsonType::kObject, Judge::kIgnored},
  };
  static const std::vector<Field> report = {
      {"/metadata/labels/app.kubernetes.io~1managed-by", JsonType::kString, Judge::kCodec},
      {"/metadata/annotations/capwatch.io~1content-hash", JsonType::kString, Judge::kCodec},
      {"/workload", JsonType::kObject, Judge::kCodec},
      {"/workload/pods", JsonType::kNumber, Judge::kCodec},
      {"/workload/uid", JsonType::kString, Judge::kCodec},
      {"/containers", JsonType::kArray, Judge::kIgnored},
      {"/containers/0", JsonType::kObject, Judge::kIgnored},
      {"/containers/0/name", JsonType::kString, Judge::kCodec},
      {"/containers/0/added", JsonType::kArray, Judge::kIgnored},
      {"/findings", JsonType::kArray, Judge::kIgnored},
      {"/findings/0", JsonType::kObject, Judge::kIgnored},
      {"/findings/0/rule", JsonType::kString, Judge::kCodec},
      {"/findings/0/result", JsonType::kString, Judge::kCodec},
      {"/findings/0/container", JsonType::kString, Judge::kCodec},
      {"/findings/0/capability", JsonType::kString, Judge::kCodec},
  };
  switch (kind) {
    case Kind::kPolicy:
      return policy;
    case Kind::kReport:
      return report;
    default:
      return none;
  }
}

struct Value {
  std::string name;
  json value;
};

const std::vector<Value>& Values() {
  static const std::vector<Value> values = {{"String", "x"},
                                            {"Number", 7},
                                            {"Bool", true},
                                            {"Object", {{"k", "v"}}},
                                            {"List", json::array({"x"})},
                                            {"Null", nullptr}};
  return values;
}

bool SameType(const json& v, JsonType t) {
  switch (t) {
    case JsonType::kString:
      return v.is_string();
    case JsonType::kNumber:
      return v.is_number();
    case JsonType::kBool:
      return v.is_boolean();
    case JsonType::kObject:
      return v.is_object();
    case JsonType::kArray:
      return v.is_array();
  }
  return false;
}

struct WrongType {
  Kind kind;
  Field field;
  Value value;
  std::string name;
};

std::vector<WrongType> AllWrongTypes() {
  std::vector<WrongType> out;
  for (Kind kind : {Kind::kMetadata, Kind::kNamespace, Kind::kPolicy, Kind::kReport}) {
    std::vector<Field> fields = MetadataFields();
    for (const auto& f : KindFields(kind)) fields.push_back(f);
    for (const auto& f : fields) {
      for (const auto& v : Values()) {
        if (SameType(v.value, f.type)) continue;
        std::string name = std::string(KindName(kind)) + f.pointer + "_" + v.name;
        for (char& c : name) {
          if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
        }
        out.push_back({kind, f, v, name});
      }
    }
  }
  return out;
}

// "/metadata/ownerReferences/0/name" as the messages write it: ".metadata.ownerReferences[0].name".
std::string Dotted(const std::string& pointer) {
  std::string out;
  std::size_t start = 1;
  while (start <= pointer.size()) {
    const std::size_t end = std::min(pointer.find('/', start), pointer.size());
    std::string token = pointer.substr(start, end - start);
    for (std::size_t at; (at = token.find("~1")) != std::string::npos;) token.replace(at, 2, "/");
    const bool index = !token.empty() && std::all_of(token.begin(), token.end(), [](char ch) {
      return std::isdigit(static_cast<unsigned char>(ch)) != 0;
    });
    out += index ? "[" + token + "]" : "." + token;
    start = end + 1;
  }
  return out;
}

json Spoiled(const WrongType& c, const std::string& name) {
  json object = Object(c.kind, name);
  object[json::json_pointer(c.field.pointer)] = c.value.value;
  return object;
}

// Whether the name survives the spoiling, for the message to show it.
bool NameReadable(const WrongType& c) {
  return c.field.pointer != "/metadata" && c.field.pointer != "/metadata/name" &&
         c.field.pointer != "/metadata/namespace";
}

bool Refused(const WrongType& c) {
  if (c.field.pointer == "/metadata") return true;  // no metadata, no name
  if (c.field.judge != Judge::kCodec) return false;
  // Null is an absent object or list; an absent name is refused as such.
  if (c.value.value.is_null()) {
    return c.field.type != JsonType::kObject && c.field.type != JsonType::kArray;
  }
  return true;
}

// One case of the table: every field of every codec with each wrong JSON type. The cases run
// in one test each (a loop with a trace naming the case) rather than one test process per case:
// ctest starts each discovered test as its own process, and 1,250 of them (625 cases, two tests
// each) took minutes under the sanitizers.
void DecodeRefusesTheObjectByNameAndFieldOrReadsItWithoutThrowing(const WrongType& c) {
  const std::string object = Spoiled(c, "bad").dump();
  Decoded d;
  ASSERT_NO_THROW(d = Decode(c.kind, object));
  if (Refused(c)) {
    EXPECT_FALSE(d.ok);
    if (c.field.pointer == "/metadata" || c.field.pointer == "/metadata/name") {
      EXPECT_THAT(d.error, HasSubstr("metadata")) << d.error;
    } else {
      EXPECT_THAT(d.error, HasSubstr(Dotted(c.field.pointer) + ": must be ")) << d.error;
    }
    if (NameReadable(c)) {
      EXPECT_THAT(d.error, HasSubstr(KeyOf(c.kind, "bad"))) << d.error;
    }
    return;
  }
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_EQ(d.key, KeyOf(c.kind, "bad"));
  if (c.field.judge != Judge::kParser) return;
  // A null is an absent field, which the parser may well accept. A scalar where a string
  // belongs reads as that string (YAML has no other scalars). Everything else is invalid, and
  // the policy's errors say where.
  const bool scalar_for_string = c.field.type == JsonType::kString &&
                                 (c.value.value.is_number() || c.value.value.is_boolean());
  if (c.value.value.is_null() || scalar_for_string) {
    if (!d.policy_valid) {
      EXPECT_FALSE(d.policy_errors.empty());
    }
    return;
  }
  EXPECT_FALSE(d.policy_valid);
  ASSERT_FALSE(d.policy_errors.empty());
  // The errors name the part of the spec the field spoils, or (where the parser's YAML library
  // gave up on it: a scalar for a matchExpressions entry) say that the spec cannot be read.
  const std::string path = Dotted(c.field.pointer);
  const std::string top = path.substr(0, path.find_first_of(".[", 6));
  EXPECT_THAT(::testing::PrintToString(d.policy_errors),
              ::testing::AnyOf(HasSubstr(top), HasSubstr(".spec: cannot be read")));
}

void AListPageLeavesOutOnlyTheBadObject(const WrongType& c) {
  json page = {{"kind", "List"},
               {"metadata", {{"resourceVersion", "99"}}},
               {"items", {Object(c.kind, "a"), Spoiled(c, "bad"), Object(c.kind, "b")}}};
  Listed l;
  ASSERT_NO_THROW(l = DecodeList(c.kind, page.dump()));
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_EQ(l.resource_version, "99");
  if (Refused(c)) {
    EXPECT_THAT(l.keys, ElementsAre(KeyOf(c.kind, "a"), KeyOf(c.kind, "b")));
    EXPECT_EQ(l.skipped, 1u);
  } else {
    EXPECT_THAT(l.keys, ElementsAre(KeyOf(c.kind, "a"), KeyOf(c.kind, "bad"), KeyOf(c.kind, "b")));
    EXPECT_EQ(l.skipped, 0u);
  }
}

TEST(EveryCodecEveryField, DecodeRefusesTheObjectByNameAndFieldOrReadsItWithoutThrowing) {
  const auto cases = AllWrongTypes();
  ASSERT_GT(cases.size(), 500u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    DecodeRefusesTheObjectByNameAndFieldOrReadsItWithoutThrowing(c);
  }
}

TEST(EveryCodecEveryField, AListPageLeavesOutOnlyTheBadObject) {
  for (const auto& c : AllWrongTypes()) {
    SCOPED_TRACE(c.name);
    AListPageLeavesOutOnlyTheBadObject(c);
  }
}

class PageTest : public ::testing::TestWithParam<Kind> {};

TEST_P(PageTest, APageThatIsNotAListFailsAsAWhole) {
  const Kind kind = GetParam();
  for (const char* body :
       {"not json", "[]", R"({"items":"x"})", R"({"items":{"a":1}})",
        R"({"metadata":{"resourceVersion":5},"items":[]})",
        R"({"metadata":{"continue":["x"]},"items":[]})", R"({"metadata":"x","items":[]})"}) {
    Listed l;
    ASSERT_NO_THROW(l = DecodeList(kind, body)) << body;
    EXPECT_FALSE(l.ok) << body;
    EXPECT_FALSE(l.error.empty()) << body;
  }
  Listed l = DecodeList(kind, R"({"metadata":{"resourceVersion":"5"},"items":null})");
  EXPECT_TRUE(l.ok) << "null items is an empty page";
}

TEST_P(PageTest, ItemsThatAreNotObjectsAreSkippedAndCounted) {
  const Kind kind = GetParam();
  json page = {{"metadata", {{"resourceVersion", "5"}}},
               {"items", {Object(kind, "a"), 7, nullptr, "x", json::array(), Object(kind, "b")}}};
  Listed l;
  ASSERT_NO_THROW(l = DecodeList(kind, page.dump()));
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_THAT(l.keys, ElementsAre(KeyOf(kind, "a"), KeyOf(kind, "b")));
  EXPECT_EQ(l.skipped, 4u);
}

// Items are decoded one at a time as the page is parsed: only the root's "items" are items,
// wherever the list's metadata stands, and objects nested in an item stay in it.
TEST_P(PageTest, OnlyTheRootsItemsAreItemsWhereverTheMetadataIs) {
  const Kind kind = GetParam();
  json nested = Object(kind, "b");
  nested["extra"] = {{"deeper", {Object(kind, "not-an-item")}}};
  const std::string body = R"({"items":[)" + Object(kind, "a").dump() + "," + nested.dump() +
                           R"(],"other":[)" + Object(kind, "c").dump() +
                           R"(],"metadata":{"resourceVersion":"8","continue":"more"},"kind":"L"})";
  Listed l;
  ASSERT_NO_THROW(l = DecodeList(kind, body));
  ASSERT_TRUE(l.ok) << l.error;
  EXPECT_THAT(l.keys, ElementsAre(KeyOf(kind, "a"), KeyOf(kind, "b")));
  EXPECT_EQ(l.skipped, 0u);
  EXPECT_EQ(l.resource_version, "8");
}

TEST_P(PageTest, AnObjectThatIsNotJsonIsRefused) {
  const Kind kind = GetParam();
  for (const char* object : {"", "7", "[1]", "{\"metadata\":", "null"}) {
    Decoded d;
    ASSERT_NO_THROW(d = Decode(kind, object)) << object;
    EXPECT_FALSE(d.ok) << object;
    EXPECT_FALSE(d.error.empty()) << object;
  }
}

INSTANTIATE_TEST_SUITE_P(EveryCodec, PageTest,
                         ::testing::Values(Kind::kMetadata, Kind::kNamespace, Kind::kPolicy,
                                           Kind::kReport),
                         [](const auto& param_info) {
                           return std::string(KindName(param_info.param));
                         });

TEST(ReportCodec, AWellFormedReportIsReadInFull) {
  Decoded d = Decode(Kind::kReport, Object(Kind::kReport, "deployment-web").dump());
  ASSERT_TRUE(d.ok) << d.error;
  controller::ReportCodec codec;
  auto decoded = codec.Decode(Object(Kind::kReport, "deployment-web").dump());
  ASSERT_TRUE(decoded.ok());
  const controller::ReportView& view = decoded.value();
  EXPECT_EQ(view.pods, 3);
  EXPECT_TRUE(view.managed);
  EXPECT_EQ(view.content_hash, "abc");
  EXPECT_EQ(DecodeGrants(view.dangerous_grants).size(), 1u);
}

// The cache keeps each report's grant memory in the annotation's form (a capability mask per
// container), not as a set of (container, capability) strings: a hundred containers holding
// twelve dangerous capabilities each are 1,200 grants, which as a std::set took ~130 KiB per
// report, held twice, so 1,000 such workloads alone went past the chart's 256 MiB (the
// hostile-load run).
TEST(ReportCodec, TheGrantMemoryOfAHundredContainersIsKeptCompact) {
  std::set<DangerousGrant> grants;
  for (int c = 0; c < 100; ++c) {
    for (const char* cap :
         {"BPF", "DAC_OVERRIDE", "DAC_READ_SEARCH", "MAC_ADMIN", "MAC_OVERRIDE", "NET_ADMIN",
          "PERFMON", "SYS_ADMIN", "SYS_BOOT", "SYS_MODULE", "SYS_PTRACE", "SYS_RAWIO"}) {
      grants.insert({"container-" + std::to_string(c), cap});
    }
  }
  json report = Object(Kind::kReport, "pod-everything");
  report["metadata"]["annotations"][std::string(kGrantsAnnotation)] = EncodeGrants(grants);
  controller::ReportCodec codec;
  auto view = codec.Decode(report.dump());
  ASSERT_TRUE(view.ok()) << view.error().ToString();
  EXPECT_EQ(DecodeGrants(view->dangerous_grants), grants);
  EXPECT_LE(view->dangerous_grants.size(), 100u * 32) << "a few bytes a container";
  // Entries it cannot read are left out, so the memory holds only what decodes.
  report["metadata"]["annotations"][std::string(kGrantsAnnotation)] = "app=zz;web=200000";
  auto again = codec.Decode(report.dump());
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(DecodeGrants(again->dangerous_grants),
            (std::set<DangerousGrant>{{"web", "SYS_ADMIN"}}));
  EXPECT_EQ(again->dangerous_grants, "web=200000");
}

TEST(PolicyCodec, AWellFormedPolicyIsValid) {
  Decoded d = Decode(Kind::kPolicy, Object(Kind::kPolicy, "strict").dump());
  ASSERT_TRUE(d.ok) << d.error;
  EXPECT_TRUE(d.policy_valid) << ::testing::PrintToString(d.policy_errors);
}

}  // namespace
}  // namespace capwatch::kube

namespace capwatch::kube {
namespace {

// Answers read without trusting their shape: a create answered with {} (a proxy, a double),
// null, a list or a string where an object belongs, gives "" rather than undefined behaviour.
TEST(JsonAt, AMissingOrMistypedStepGivesNullAndAnEmptyString) {
  const nlohmann::json object = nlohmann::json::parse(
      R"({"metadata": {"uid": "u-1", "labels": ["not", "a", "map"], "generation": 3}})");
  EXPECT_EQ(JsonStringAt(object, {"metadata", "uid"}), "u-1");
  EXPECT_EQ(JsonStringAt(object, {"metadata", "generation"}), "") << "not a string";
  EXPECT_TRUE(JsonAt(object, {"metadata", "labels", "app"}).is_null()) << "a list on the way";
  EXPECT_TRUE(JsonAt(object, {"status", "phase"}).is_null());
  for (const char* text : {"{}", "null", "[]", "\"text\"", "7"}) {
    EXPECT_EQ(JsonStringAt(nlohmann::json::parse(text), {"metadata", "uid"}), "") << text;
  }
  const nlohmann::json discarded = nlohmann::json::parse("not json", nullptr, false);
  EXPECT_EQ(JsonStringAt(discarded, {"metadata", "uid"}), "");
}

}  // namespace
}  // namespace capwatch::kube
