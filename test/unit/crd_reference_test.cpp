// docs/crd-reference.md lists every field of the CRDs in crds/, and nothing else (STYLE 8).
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "policy/finding.h"

namespace capwatch {
namespace {

void Walk(const YAML::Node& schema, const std::string& prefix, std::set<std::string>& out) {
  const YAML::Node props = schema["properties"];
  if (!props) return;
  for (const auto& kv : props) {
    const std::string key = kv.first.Scalar();
    if (prefix.empty() && (key == "apiVersion" || key == "kind" || key == "metadata")) continue;
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    out.insert(path);
    const YAML::Node type = kv.second["type"];
    if (type && type.Scalar() == "array") {
      Walk(kv.second["items"], path + "[]", out);
    } else if (type && type.Scalar() == "object") {
      Walk(kv.second, path, out);
    }
  }
}

std::set<std::string> CrdFields(const std::string& file) {
  const YAML::Node crd = YAML::LoadFile(std::string(CAPWATCH_SOURCE_DIR) + "/crds/" + file);
  std::set<std::string> out;
  Walk(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"], "", out);
  return out;
}

std::set<std::string> DocumentedFields(const std::string& section) {
  std::ifstream in(std::string(CAPWATCH_SOURCE_DIR) + "/docs/crd-reference.md");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  const auto begin = doc.find("## " + section);
  EXPECT_NE(begin, std::string::npos) << "no section " << section;
  const auto end = doc.find("\n## ", begin + 1);
  const std::string part =
      doc.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  std::set<std::string> out;
  const std::regex row(R"(\n\| `([A-Za-z.\[\]]+)` \|)");
  for (std::sregex_iterator it(part.begin(), part.end(), row), e; it != e; ++it) {
    out.insert((*it)[1].str());
  }
  return out;
}

TEST(CrdReference, ListsEveryFieldOfTheCrds) {
  EXPECT_EQ(DocumentedFields("CapabilityPolicy"), CrdFields("capwatch.io_capabilitypolicies.yaml"));
  EXPECT_EQ(DocumentedFields("CapabilityReport"), CrdFields("capwatch.io_capabilityreports.yaml"));
}

}  // namespace
}  // namespace capwatch

namespace capwatch {
namespace {

// The CapabilityReport schema accepts exactly the rule ids the engine reports, so no finding is
// ever refused by the API server for its rule.
TEST(CrdReference, TheReportSchemaListsEveryRuleId) {
  const YAML::Node crd =
      YAML::LoadFile(std::string(CAPWATCH_SOURCE_DIR) + "/crds/capwatch.io_capabilityreports.yaml");
  const YAML::Node rule = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
                             ["findings"]["items"]["properties"]["rule"];
  std::set<std::string> schema;
  for (const auto& id : rule["enum"]) schema.insert(id.Scalar());
  std::set<std::string> code;
  for (int i = 0; i < kRuleCount; ++i) code.insert(std::string(RuleId(static_cast<Rule>(i))));
  EXPECT_EQ(schema, code);
  EXPECT_EQ(code.count("unreadable-field"), 1u);
}

}  // namespace
}  // namespace capwatch
