#include "policy/policy_parser.h"

#include <yaml-cpp/yaml.h>
#include <set>

#include "base/rfc3339.h"
#include "capabilities/capability_names.h"
#include "workload/yaml_stream.h"

namespace capwatch {
namespace {

bool ValidGlob(const std::string& glob) {
  if (glob.empty() || glob.size() > 63) return false;
  for (char c : glob) {
    const bool ok =
        (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '*' || c == '?';
    if (!ok) return false;
  }
  return true;
}

class Parser {
 public:
  explicit Parser(Policy& policy) : policy_(policy) {}

  std::vector<FieldError> Parse(const YAML::Node& object) {
    if (!object.IsMap()) {
      Error("", "expected a CapabilityPolicy object");
      return errors_;
    }
    const std::string api_version = Scalar(object["apiVersion"], ".apiVersion");
    const std::string kind = Scalar(object["kind"], ".kind");
    if (kind != "CapabilityPolicy")
      Error(".kind", "must be CapabilityPolicy, got \"" + kind + "\"");
    if (api_version != "capwatch.io/v1alpha1") {
      Error(".apiVersion", "must be capwatch.io/v1alpha1, got \"" + api_version + "\"");
    }
    const YAML::Node metadata = object["metadata"];
    if (metadata && !metadata.IsNull() && !metadata.IsMap()) {
      Error(".metadata", "must be an object");
    } else if (metadata && metadata.IsMap()) {
      policy_.name = Scalar(metadata["name"], ".metadata.name");
    }
    if (policy_.name.empty()) Error(".metadata.name", "missing: a policy needs a name");
    policy_.runtime_defaults = RuntimeDefaultSet(Runtime::kContainerd);
    policy_.forbidden = {DangerousSet(), true, true};

    const YAML::Node spec = object["spec"];
    if (!spec || spec.IsNull()) return errors_;  // an empty spec: the dangerous set only
    if (!spec.IsMap()) {
      Error(".spec", "must be an object");
      return errors_;
    }
    static const std::set<std::string> kKnown = {"profile",
                                                 "match",
                                                 "runtimeDefaults",
                                                 "runtimeDefaultCapabilities",
                                                 "requireDropAll",
                                                 "allowedCapabilities",
                                                 "forbiddenCapabilities",
                                                 "severities",
                                                 "disallowPrivileged",
                                                 "requireNoPrivilegeEscalation",
                                                 "requireRunAsNonRoot",
                                                 "requireJustification",
                                                 "exemptions",
                                                 "enforcement"};
    for (const auto& kv : spec) {
      const std::string key = kv.first.Scalar();
      if (kKnown.count(key) == 0) Error(".spec." + key, "unknown field");
    }
    if (spec["profile"]) {
      const std::string p = Scalar(spec["profile"], ".spec.profile");
      if (auto profile = ParseProfile(p)) {
        policy_.profile = *profile;
      } else {
        Error(".spec.profile", "must be one of none, baseline, restricted; got \"" + p + "\"");
      }
    }
    Match(spec["match"]);
    RuntimeDefaults(spec["runtimeDefaults"], spec["runtimeDefaultCapabilities"]);
    policy_.require_drop_all = Bool(spec["requireDropAll"], ".spec.requireDropAll");
    policy_.disallow_privileged = Bool(spec["disallowPrivileged"], ".spec.disallowPrivileged");
    policy_.require_no_privilege_escalation =
        Bool(spec["requireNoPrivilegeEscalation"], ".spec.requireNoPrivilegeEscalation");
    policy_.require_run_as_non_root =
        Bool(spec["requireRunAsNonRoot"], ".spec.requireRunAsNonRoot");
    policy_.require_justification =
        Bool(spec["requireJustification"], ".spec.requireJustification");
    if (spec["allowedCapabilities"]) {
      policy_.allowed = Capabilities(spec["allowedCapabilities"], ".spec.allowedCapabilities");
    }
    if (spec["forbiddenCapabilities"]) {
      policy_.forbidden =
          Capabilities(spec["forbiddenCapabilities"], ".spec.forbiddenCapabilities");
    }
    Severities(spec["severities"]);
    Exemptions(spec["exemptions"]);
    Enforcement(spec["enforcement"]);
    return errors_;
  }

 private:
  void Error(std::string path, std::string message) {
    errors_.push_back({std::move(path), std::move(message)});
  }

  std::string Scalar(const YAML::Node& node, const std::string& path) {
    if (!node || node.IsNull()) return "";
    if (!node.IsScalar()) {
      Error(path, "must be a string");
      return "";
    }
    return node.Scalar();
  }

  bool Bool(const YAML::Node& node, const std::string& path) {
    if (!node || node.IsNull()) return false;
    if (node.IsScalar()) {
      const std::string& s = node.Scalar();
      if (s == "true") return true;
      if (s == "false") return false;
    }
    Error(path, "must be true or false");
    return false;
  }

  std::vector<std::string> Strings(const YAML::Node& node, const std::string& path) {
    std::vector<std::string> out;
    if (!node || node.IsNull()) return out;
    if (!node.IsSequence()) {
      Error(path, "must be a list of strings");
      return out;
    }
    for (std::size_t i = 0; i < node.size(); ++i) {
      out.push_back(Scalar(node[i], path + "[" + std::to_string(i) + "]"));
    }
    return out;
  }

  std::vector<std::string> Globs(const YAML::Node& node, const std::string& path) {
    std::vector<std::string> globs = Strings(node, path);
    for (std::size_t i = 0; i < globs.size(); ++i) {
      if (!ValidGlob(globs[i])) {
        Error(path + "[" + std::to_string(i) + "]",
              "\"" + globs[i] +
                  "\" is not a namespace glob: use lower-case letters, digits, '-', and the "
                  "wildcards '*' and '?'");
      }
    }
    return globs;
  }

  CapabilityList Capabilities(const YAML::Node& node, const std::string& path) {
    CapabilityList list;
    const auto names = Strings(node, path);
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::string& name = names[i];
      const CapabilityName parsed = ParseCapabilityName(name);
      if (parsed.is_capability()) {
        list.set |= Bit(parsed.number);
      } else if (parsed.is_all()) {
        list.all = true;
      } else if (name == "privileged") {
        list.privileged = true;
      } else {
        std::string message = "\"" + name + "\" is not a Linux capability";
        if (auto hint = SuggestCapability(name); !hint.empty()) {
          message += "; did you mean " + std::string(hint) + "?";
        }
        Error(path + "[" + std::to_string(i) + "]", message);
      }
    }
    return list;
  }

  std::optional<LabelSelector> Selector(const YAML::Node& node, const std::string& path) {
    if (!node || node.IsNull()) return std::nullopt;
    if (!node.IsMap()) {
      Error(path, "must be a label selector (matchLabels, matchExpressions)");
      return std::nullopt;
    }
    LabelSelector sel;
    if (const YAML::Node labels = node["matchLabels"]; labels && !labels.IsNull()) {
      if (!labels.IsMap()) {
        Error(path + ".matchLabels", "must be a map of label keys to values");
      } else {
        for (const auto& kv : labels) {
          sel.match_labels[kv.first.Scalar()] =
              Scalar(kv.second, path + ".matchLabels." + kv.first.Scalar());
        }
      }
    }
    if (const YAML::Node exprs = node["matchExpressions"]; exprs && !exprs.IsNull()) {
      if (!exprs.IsSequence()) {
        Error(path + ".matchExpressions", "must be a list");
        return sel;
      }
      for (std::size_t i = 0; i < exprs.size(); ++i) {
        const std::string p = path + ".matchExpressions[" + std::to_string(i) + "]";
        if (!exprs[i].IsMap()) {
          Error(p, "must be an object");
          continue;
        }
        LabelSelector::Requirement req;
        req.key = Scalar(exprs[i]["key"], p + ".key");
        if (req.key.empty()) Error(p + ".key", "missing");
        const std::string op = Scalar(exprs[i]["operator"], p + ".operator");
        using Op = LabelSelector::Requirement::Operator;
        if (op == "In") {
          req.op = Op::kIn;
        } else if (op == "NotIn") {
          req.op = Op::kNotIn;
        } else if (op == "Exists") {
          req.op = Op::kExists;
        } else if (op == "DoesNotExist") {
          req.op = Op::kDoesNotExist;
        } else {
          Error(p + ".operator", "must be In, NotIn, Exists or DoesNotExist; got \"" + op + "\"");
        }
        req.values = Strings(exprs[i]["values"], p + ".values");
        const bool needs_values = req.op == Op::kIn || req.op == Op::kNotIn;
        if (needs_values && req.values.empty()) {
          Error(p + ".values", "must not be empty for operator " + op);
        } else if (!needs_values && !req.values.empty()) {
          Error(p + ".values", "must be empty for operator " + op);
        }
        sel.match_expressions.push_back(std::move(req));
      }
    }
    return sel;
  }

  void Match(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Error(".spec.match", "must be an object");
      return;
    }
    policy_.match.namespaces = Globs(node["namespaces"], ".spec.match.namespaces");
    policy_.match.exclude_namespaces =
        Globs(node["excludeNamespaces"], ".spec.match.excludeNamespaces");
    policy_.match.namespace_selector =
        Selector(node["namespaceSelector"], ".spec.match.namespaceSelector");
    policy_.match.pod_selector = Selector(node["podSelector"], ".spec.match.podSelector");
  }

  // runtimeDefaults names a runtime, or `custom` with the set in runtimeDefaultCapabilities
  // (the CRD's form); a list given directly in runtimeDefaults is accepted too.
  void RuntimeDefaults(const YAML::Node& node, const YAML::Node& custom) {
    const bool is_custom = node && node.IsScalar() && node.Scalar() == "custom";
    if (custom && !custom.IsNull() && !is_custom) {
      Error(".spec.runtimeDefaultCapabilities", "is used only with runtimeDefaults: custom");
    }
    if (is_custom) {
      if (!custom || custom.IsNull()) {
        Error(".spec.runtimeDefaultCapabilities", "missing: runtimeDefaults: custom needs the set");
        return;
      }
      CustomSet(custom, ".spec.runtimeDefaultCapabilities");
      return;
    }
    if (!node || node.IsNull()) return;
    if (node.IsScalar()) {
      if (auto runtime = ParseRuntime(node.Scalar())) {
        policy_.runtime_defaults = RuntimeDefaultSet(*runtime);
        policy_.runtime_name = std::string(RuntimeName(*runtime));
      } else {
        Error(".spec.runtimeDefaults",
              "must be containerd, cri-o, docker or custom; got \"" + node.Scalar() + "\"");
      }
      return;
    }
    CustomSet(node, ".spec.runtimeDefaults");
  }

  void CustomSet(const YAML::Node& node, const std::string& path) {
    const CapabilityList list = Capabilities(node, path);
    if (list.privileged) Error(path, "privileged is not a capability");
    policy_.runtime_defaults = list.all ? kAllCapabilities : list.set;
    policy_.runtime_name = "custom";
  }

  void Severities(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Error(".spec.severities", "must be a map of capability to severity");
      return;
    }
    for (const auto& kv : node) {
      const std::string name = kv.first.Scalar();
      const std::string path = ".spec.severities." + name;
      const CapabilityName parsed = ParseCapabilityName(name);
      const std::string value = Scalar(kv.second, path);
      auto severity = ParseSeverity(value);
      if (!parsed.is_capability()) {
        Error(path, "\"" + name + "\" is not a Linux capability");
      } else if (!severity || *severity == Severity::kNone) {
        Error(path, "must be low, medium, high or critical; got \"" + value + "\"");
      } else {
        policy_.severities[parsed.number] = *severity;
      }
    }
  }

  void Exemptions(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsSequence()) {
      Error(".spec.exemptions", "must be a list");
      return;
    }
    std::set<std::string> names;
    for (std::size_t i = 0; i < node.size(); ++i) {
      const std::string p = ".spec.exemptions[" + std::to_string(i) + "]";
      const YAML::Node e = node[i];
      if (!e.IsMap()) {
        Error(p, "must be an object");
        continue;
      }
      Exemption ex;
      ex.name = Scalar(e["name"], p + ".name");
      if (ex.name.empty()) Error(p + ".name", "missing: every exemption needs a name");
      if (!ex.name.empty() && !names.insert(ex.name).second) {
        Error(p + ".name", "duplicate exemption name \"" + ex.name + "\"");
      }
      ex.reason = Scalar(e["reason"], p + ".reason");
      if (ex.reason.empty()) Error(p + ".reason", "missing: an exemption must say why");
      ex.namespaces = Globs(e["namespaces"], p + ".namespaces");
      ex.pod_selector = Selector(e["podSelector"], p + ".podSelector");
      ex.containers = Strings(e["containers"], p + ".containers");
      ex.capabilities = Capabilities(e["capabilities"], p + ".capabilities");
      if (e["expires"] && !e["expires"].IsNull()) {
        ex.expires_text = Scalar(e["expires"], p + ".expires");
        std::string why;
        ex.expires = ParseRfc3339(ex.expires_text, &why);
        if (!ex.expires) {
          Error(p + ".expires",
                "\"" + ex.expires_text +
                    "\" is not an RFC 3339 time such as 2027-01-31T00:00:00Z: " + why);
        }
      }
      policy_.exemptions.push_back(std::move(ex));
    }
  }

  // enforcement: {action: Deny|Warn|Audit}; absent or null: audit only.
  void Enforcement(const YAML::Node& node) {
    if (!node || node.IsNull()) return;
    if (!node.IsMap()) {
      Error(".spec.enforcement", "must be an object such as {action: Warn}");
      return;
    }
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      if (key != "action") Error(".spec.enforcement." + key, "unknown field");
    }
    const std::string action = Scalar(node["action"], ".spec.enforcement.action");
    if (action.empty()) {
      Error(".spec.enforcement.action", "missing: one of Deny, Warn, Audit");
    } else if (auto parsed = ParseEnforcementAction(action)) {
      policy_.enforcement = *parsed;
    } else {
      Error(".spec.enforcement.action", "must be one of Deny, Warn, Audit; got \"" + action + "\"");
    }
  }

  Policy& policy_;
  std::vector<FieldError> errors_;
};

}  // namespace

Result<Policy> ParsePolicy(const YAML::Node& object) {
  Policy policy;
  std::vector<FieldError> errors = Parser(policy).Parse(object);
  if (errors.empty()) return policy;
  const std::string name = policy.name.empty() ? "" : " " + policy.name;
  return capwatch::Error("CapabilityPolicy" + name + " is invalid", std::move(errors));
}

PolicyParseResult ParsePolicies(const std::string& text) {
  PolicyParseResult result;
  std::vector<YAML::Node> docs;
  try {
    docs = LoadYamlDocuments(text);
  } catch (const YAML::Exception& e) {
    result.errors.push_back("not valid YAML or JSON (line " + std::to_string(e.mark.line + 1) +
                            "): " + e.msg);
    return result;
  }
  std::vector<YAML::Node> objects;
  for (const auto& doc : docs) {
    if (!doc || doc.IsNull()) continue;
    if (doc.IsMap() && doc["kind"] && doc["kind"].IsScalar() && doc["kind"].Scalar() == "List") {
      // `!items` first: an absent field of a const node is invalid, and asking its type throws.
      const YAML::Node items = doc["items"];
      if (!items || items.IsNull()) {
        // an empty List
      } else if (items.IsSequence()) {
        for (const auto& item : items) objects.push_back(item);
      } else {
        result.errors.push_back("a List's items must be a list");
      }
    } else {
      objects.push_back(doc);
    }
  }
  if (objects.empty()) result.errors.push_back("no CapabilityPolicy in the file");
  for (std::size_t i = 0; i < objects.size(); ++i) {
    // The parser itself, not ParsePolicy: an invalid policy is listed under the name it gave.
    Policy policy;
    std::vector<FieldError> errors = Parser(policy).Parse(objects[i]);
    if (errors.empty()) {
      result.policies.push_back(std::move(policy));
    } else {
      const std::string name =
          policy.name.empty() ? "document " + std::to_string(i + 1) : policy.name;
      result.invalid.emplace_back(name, std::move(errors));
    }
  }
  return result;
}

}  // namespace capwatch
