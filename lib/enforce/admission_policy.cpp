#include "enforce/admission_policy.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "base/rfc3339.h"
#include "capabilities/catalog.h"
#include "policy/finding.h"
#include "workload/pod_view.h"

namespace capwatch {
namespace {

using nlohmann::json;

constexpr std::string_view kNamePrefix = "capwatch-";
constexpr std::size_t kMaxObjectName = 253;  // a DNS subdomain

// The pod spec and metadata of whatever kind is admitted: a Pod (the ephemeralcontainers
// subresource admits the whole Pod too), a CronJob's job template, or a workload's template.
// request.kind is always set; the object's own kind field may not be.
constexpr std::string_view kPodSpec =
    "(request.kind.kind == 'Pod' ? dyn(object).spec : request.kind.kind == 'CronJob' ? "
    "dyn(object).spec.jobTemplate.spec.template.spec : dyn(object).spec.template.spec)";
constexpr std::string_view kPodMeta =
    "(request.kind.kind == 'Pod' ? dyn(object).metadata : request.kind.kind == 'CronJob' ? "
    "dyn(object).spec.jobTemplate.spec.template.?metadata.orValue({}) : "
    "dyn(object).spec.template.?metadata.orValue({}))";

// What an update must change for the policy to look at it: the pod template. A workload
// admitted before the policy keeps scaling and rolling its status; a new template is checked.
std::string TemplateOf(std::string_view o) {
  const std::string d = "dyn(" + std::string(o) + ")";
  return "(request.kind.kind == 'CronJob' ? " + d + ".spec.jobTemplate.spec.template : " + d +
         ".spec.template)";
}

// Capability names as capwatch reads them (capabilities/capability_names.cpp): surrounding
// ASCII blanks trimmed, ASCII upper-cased, a CAP_ prefix removed when something follows it.
// Not trim() nor (?i): those fold Unicode, which capwatch does not.
std::string Normalised(std::string_view list) {
  return std::string(list) +
         ".map(n, n.find('[^ \\t\\r\\n](?s:.*[^ \\t\\r\\n])?').upperAscii())"
         ".map(u, u.size() > 4 && u.startsWith('CAP_') ? u.substring(4) : u)";
}

// The same for one name `n`, an expression of a string.
std::string NormalisedName(std::string_view n) {
  return Normalised("[" + std::string(n) + "]") + "[0]";
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator,
                 std::string_view when_empty) {
  if (parts.empty()) return std::string(when_empty);
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return parts.size() == 1 ? out : "(" + out + ")";
}

// {'NAME': true, ...}: membership in a map costs the same whatever its size.
std::string NameMap(CapabilitySet set, bool with_all = false) {
  std::string out = "{";
  bool first = true;
  auto add = [&](std::string_view name) {
    if (!first) out += ", ";
    first = false;
    out += CelString(name);
    out += ": true";
  };
  for (int n = 0; n < kCapabilityCount; ++n) {
    if (Contains(set, n)) add(CapabilityByNumber(n).name);
  }
  if (with_all) add("ALL");
  return out + "}";
}

std::string StringList(const std::vector<std::string>& values) {
  std::string out = "[";
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += CelString(values[i]);
  }
  return out + "]";
}

// A namespace glob (`*`, `?`) as an anchored RE2 pattern; every other ASCII punctuation mark
// is escaped.
std::string GlobsRegex(const std::vector<std::string>& globs) {
  std::string re = "^(?:";
  for (std::size_t i = 0; i < globs.size(); ++i) {
    if (i > 0) re += '|';
    for (char c : globs[i]) {
      if (c == '*') {
        re += ".*";
      } else if (c == '?') {
        re += '.';
      } else if (static_cast<unsigned char>(c) < 0x80 &&
                 !std::isalnum(static_cast<unsigned char>(c))) {
        re += '\\';
        re += c;
      } else {
        re += c;
      }
    }
  }
  return re + ")$";
}

std::string SelectorCel(const LabelSelector& selector, std::string_view labels) {
  const std::string l(labels);
  std::vector<std::string> parts;
  for (const auto& [key, value] : selector.match_labels) {
    parts.push_back(l + "[?" + CelString(key) + "] == optional.of(" + CelString(value) + ")");
  }
  for (const auto& r : selector.match_expressions) {
    const std::string k = CelString(r.key);
    switch (r.op) {
      case LabelSelector::Requirement::Operator::kIn:
        parts.push_back("(" + k + " in " + l + " && " + l + "[" + k + "] in " +
                        StringList(r.values) + ")");
        break;
      case LabelSelector::Requirement::Operator::kNotIn:
        parts.push_back("(!(" + k + " in " + l + ") || !(" + l + "[" + k + "] in " +
                        StringList(r.values) + "))");
        break;
      case LabelSelector::Requirement::Operator::kExists:
        parts.push_back("(" + k + " in " + l + ")");
        break;
      case LabelSelector::Requirement::Operator::kDoesNotExist:
        parts.push_back("!(" + k + " in " + l + ")");
        break;
    }
  }
  return Join(parts, " && ", "true");
}

json SelectorJson(const LabelSelector& selector) {
  json out = json::object();
  if (!selector.match_labels.empty()) out["matchLabels"] = selector.match_labels;
  for (const auto& r : selector.match_expressions) {
    static constexpr std::string_view kOps[] = {"In", "NotIn", "Exists", "DoesNotExist"};
    json e = {{"key", r.key}, {"operator", kOps[static_cast<int>(r.op)]}};
    if (!r.values.empty()) e["values"] = r.values;
    out["matchExpressions"].push_back(std::move(e));
  }
  return out;
}

// What a finding is about, for deciding which exemptions cover it (evaluate.cpp
// ExemptionCovers): a capability, ALL, privileged, nothing, or a name known only at admission.
struct Subject {
  enum class Kind { kNone, kCapability, kAll, kPrivileged, kDynamic } kind = Kind::kNone;
  int number = -1;
  std::string cel;  // kDynamic: a CEL expression of the canonical name or 'ALL'
};

class Generator {
 public:
  Generator(const Policy& policy, Clock::time_point now) : policy_(policy) {
    for (const auto& ex : policy.exemptions) {
      if (ex.expires && *ex.expires <= now) continue;  // expired: what it covered fails again
      if (ex.expires && (!next_change_ || *ex.expires < *next_change_)) next_change_ = ex.expires;
      live_.push_back(&ex);
    }
  }

  std::optional<Clock::time_point> next_change() const { return next_change_; }

  json Variables() const {
    json vars = json::array();
    auto add = [&](std::string_view name, std::string expression) {
      vars.push_back({{"name", name}, {"expression", std::move(expression)}});
    };
    add("podSpec", std::string(kPodSpec));
    add("podMeta", std::string(kPodMeta));
    add("labels", "variables.podMeta.?labels.orValue({})");
    add("annotations", "variables.podMeta.?annotations.orValue({})");
    add("containers",
        "variables.podSpec.?containers.orValue([]) + "
        "variables.podSpec.?initContainers.orValue([]) + "
        "variables.podSpec.?ephemeralContainers.orValue([])");
    const std::string sc = "c.?securityContext";
    const std::string pod_sc = "variables.podSpec.?securityContext";
    add("facts", "variables.containers.map(c, {'name': dyn(c.name), 'rawAdd': dyn(" + sc +
                     ".?capabilities.?add.orValue([])), 'rawDrop': dyn(" + sc +
                     ".?capabilities.?drop.orValue([])), 'ownNonRoot': dyn(" + sc +
                     ".?runAsNonRoot.orValue(null)), 'ownUser': dyn(" + sc +
                     ".?runAsUser.orValue(-1)), 'add': dyn(" +
                     Normalised(sc + ".?capabilities.?add.orValue([])") + "), 'drop': dyn(" +
                     Normalised(sc + ".?capabilities.?drop.orValue([])") + "), 'privileged': dyn(" +
                     sc + ".?privileged.orValue(false)), 'escalation': dyn(" + sc +
                     ".?allowPrivilegeEscalation.orValue(true)), 'hasUser': dyn(" + sc +
                     ".?runAsUser.or(" + pod_sc + ".?runAsUser).hasValue()), 'user': dyn(" + sc +
                     ".?runAsUser.or(" + pod_sc + ".?runAsUser).orValue(0)), 'nonRoot': dyn(" + sc +
                     ".?runAsNonRoot.or(" + pod_sc + ".?runAsNonRoot).orValue(false))})");
    add("known", NameMap(kAllCapabilities));
    // When the object was created, for a CREATE (the API server stamps it before admission):
    // an exemption whose expiry has passed while nobody regenerated the policy (the controller
    // down) still ends for new objects. CEL has no clock; this is the request's own time.
    bool expiring = false;
    for (const Exemption* ex : live_) expiring = expiring || ex->expires.has_value();
    if (expiring) {
      add("created",
          "request.operation == 'CREATE' && has(object.metadata.creationTimestamp) ? "
          "dyn(timestamp(string(object.metadata.creationTimestamp))) : dyn(null)");
    }
    for (std::size_t i = 0; i < live_.size(); ++i) {
      const Exemption& ex = *live_[i];
      std::vector<std::string> parts;
      if (ex.expires) {
        parts.push_back("(variables.created == null || variables.created < timestamp(" +
                        CelString(FormatRfc3339(*ex.expires)) + "))");
      }
      if (!ex.namespaces.empty()) {
        parts.push_back("request.namespace.matches(" + CelString(GlobsRegex(ex.namespaces)) + ")");
      }
      if (ex.pod_selector) parts.push_back(SelectorCel(*ex.pod_selector, "variables.labels"));
      add("exemption" + std::to_string(i), Join(parts, " && ", "true"));
    }
    return vars;
  }

  // Whether a live exemption covers finding `subject` of container `f`, in CEL.
  // `pod_level`: a finding of the pod itself, which names no container.
  std::string Exempt(const Subject& subject, bool pod_level = false) const {
    std::vector<std::string> covers;
    for (std::size_t i = 0; i < live_.size(); ++i) {
      const Exemption& ex = *live_[i];
      const CapabilityList& caps = ex.capabilities;
      std::vector<std::string> parts{"variables.exemption" + std::to_string(i)};
      if (!ex.containers.empty()) {
        if (pod_level) continue;
        parts.push_back("f.name in " + StringList(ex.containers));
      }
      if (!caps.empty()) {
        switch (subject.kind) {
          case Subject::Kind::kNone:
            continue;
          case Subject::Kind::kCapability:
            if (!Contains(caps.set, subject.number)) continue;
            break;
          case Subject::Kind::kAll:
            if (!caps.all) continue;
            break;
          case Subject::Kind::kPrivileged:
            if (!caps.privileged) continue;
            break;
          case Subject::Kind::kDynamic:
            parts.push_back(subject.cel + " in " + NameMap(caps.set, caps.all));
            break;
        }
      }
      covers.push_back(Join(parts, " && ", "true"));
    }
    return Join(covers, " || ", "false");
  }

  // One check per rule of the rule table that the policy enables, in its order
  // (evaluate.cpp): the API server's denial names the first one that fails.
  struct Check {
    Rule rule;
    std::string per_container;  // CEL over container `f`: it breaks the rule
    std::string pod_level;      // CEL: the pod itself breaks it; empty when the rule has none
  };

  std::vector<Check> Checks() const {
    std::vector<Check> out;
    const Subject none{};
    const Subject all{Subject::Kind::kAll, -1, ""};
    const Subject privileged{Subject::Kind::kPrivileged, -1, ""};
    const Subject dynamic{Subject::Kind::kDynamic, -1, "x"};
    const Subject raw{Subject::Kind::kDynamic, -1, NormalisedName("r")};
    auto not_exempt = [&](const Subject& s, bool pod_level = false) {
      return "!(" + Exempt(s, pod_level) + ")";
    };
    auto add = [&](Rule rule, std::string per_container, std::string pod_level = {}) {
      out.push_back({rule, std::move(per_container), std::move(pod_level)});
    };

    // The Pod Security controls, with the API server's exact, case-sensitive strings.
    if (policy_.profile != Profile::kNone) {
      add(Rule::kPrivileged, "f.privileged && " + not_exempt(privileged));
    }
    if (policy_.profile == Profile::kBaseline) {
      add(Rule::kCapabilityNotAllowed, "f.rawAdd.exists(r, !(r in " +
                                           NameMap(BaselineAllowedAdds()) + ") && " +
                                           not_exempt(raw) + ")");
    }
    if (policy_.profile == Profile::kRestricted) {
      add(Rule::kDropAllMissing, "!('ALL' in f.rawDrop) && " + not_exempt(all));
      add(Rule::kCapabilityNotAllowed,
          "f.rawAdd.exists(r, r != 'NET_BIND_SERVICE' && " + not_exempt(raw) + ")");
      add(Rule::kPrivilegeEscalation, "f.escalation && " + not_exempt(none));
      // Not in a user namespace (hostUsers: false), where root is no one on the node.
      const std::string host_users = "variables.podSpec.?hostUsers.orValue(true) != false";
      const std::string pod_sc = "variables.podSpec.?securityContext";
      const std::string pod_exempt = not_exempt(none, /*pod_level=*/true);
      add(Rule::kRunsAsRoot,
          host_users + " && f.ownNonRoot != true && !(f.ownNonRoot == null && " + pod_sc +
              ".?runAsNonRoot.orValue(false) == true) && " + not_exempt(none),
          host_users + " && " + pod_sc + ".?runAsNonRoot.orValue(true) == false && " + pod_exempt);
      add(Rule::kRunsAsRoot, host_users + " && f.ownUser == 0 && " + not_exempt(none),
          host_users + " && " + pod_sc + ".?runAsUser.orValue(-1) == 0 && " + pod_exempt);
    }
    if (policy_.profile_only) return out;

    add(Rule::kUnknownCapability,
        "(f.add + f.drop).exists(x, !(x in variables.known) && x != 'ALL') && " + not_exempt(none));
    if (policy_.disallow_privileged) {
      add(Rule::kPrivileged, "f.privileged && " + not_exempt(privileged));
    }
    const CapabilityList& forbidden = policy_.forbidden;
    if (!forbidden.empty()) {
      std::vector<std::string> held;
      for (int n = 0; n < kCapabilityCount; ++n) {
        if (!Contains(forbidden.set, n)) continue;
        const std::string name = CelString(CapabilityByNumber(n).name);
        // Granted as containerd computes it (evaluate.cpp AnalyzeContainer): the runtime's
        // defaults unless ALL is dropped, plus the adds, minus the drops.
        const std::string from = Contains(policy_.runtime_defaults, n)
                                     ? "(!('ALL' in f.drop) || " + name + " in f.add)"
                                     : name + " in f.add";
        held.push_back("(" + from + " && !(" + name + " in f.drop) && " +
                       not_exempt({Subject::Kind::kCapability, n, ""}) + ")");
      }
      add(Rule::kDangerousCapability,
          "(f.privileged ? " +
              (policy_.disallow_privileged ? std::string("false") : not_exempt(privileged)) +
              " : ('ALL' in f.add && !('ALL' in f.drop)) ? " + not_exempt(all) + " : " +
              Join(held, " || ", "false") + ")");
    }
    if (policy_.allowed && !policy_.allowed->all) {
      std::string expr = "f.add.exists(x, x in variables.known && !(x in " +
                         NameMap(policy_.allowed->set | forbidden.set) + ") && " +
                         not_exempt(dynamic) + ")";
      if (forbidden.empty()) expr += " || ('ALL' in f.add && " + not_exempt(all) + ")";
      add(Rule::kCapabilityNotAllowed, "(" + expr + ")");
    }
    if (policy_.require_drop_all) {
      add(Rule::kDropAllMissing, "!('ALL' in f.drop) && " + not_exempt(all));
    }
    if (policy_.require_no_privilege_escalation) {
      add(Rule::kPrivilegeEscalation, "f.escalation && " + not_exempt(none));
    }
    if (policy_.require_run_as_non_root) {
      add(Rule::kRunsAsRoot, "(f.hasUser ? f.user == 0 : !f.nonRoot) && " + not_exempt(none));
    }
    if (policy_.require_justification) {
      add(Rule::kMissingJustification,
          "f.add.exists(x, (x in variables.known || x == 'ALL') && "
          "variables.annotations[?('" +
              std::string(kJustificationPrefix) + "' + x)].orValue('') == '' && " +
              not_exempt(dynamic) + ")");
    }
    return out;
  }

 private:
  const Policy& policy_;
  std::vector<const Exemption*> live_;
  std::optional<Clock::time_point> next_change_;
};

std::string_view Remedy(Rule rule) {
  switch (rule) {
    case Rule::kUnknownCapability:
      return "names something that is not a Linux capability; correct or remove it in "
             "securityContext.capabilities";
    case Rule::kPrivileged:
      return "is privileged; remove securityContext.privileged and add only the capabilities "
             "it needs";
    case Rule::kDangerousCapability:
      return "holds a capability the policy forbids; remove it from "
             "securityContext.capabilities.add and drop it (drop: [\"ALL\"])";
    case Rule::kCapabilityNotAllowed:
      return "adds a capability the policy does not allow; remove it from "
             "securityContext.capabilities.add, or add an exemption that says why";
    case Rule::kDropAllMissing:
      return "does not drop ALL; set securityContext.capabilities.drop: [\"ALL\"] and add back "
             "only what it needs";
    case Rule::kPrivilegeEscalation:
      return "may gain privileges; set securityContext.allowPrivilegeEscalation: false";
    case Rule::kRunsAsRoot:
      return "may run as root; set securityContext.runAsNonRoot: true and a non-zero runAsUser";
    case Rule::kMissingJustification:
      return "adds a capability without saying why; annotate the pod with "
             "capwatch.io/justification.<CAPABILITY>";
    default:
      return "breaks the policy";
  }
}

std::uint32_t Fnv1a(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

}  // namespace

std::string CelString(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '\'':
        out += "\\'";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "'";
}

std::string AdmissionObjectName(std::string_view policy_name) {
  std::string name = std::string(kNamePrefix) + std::string(policy_name);
  if (name.size() <= kMaxObjectName) return name;
  char hash[16];
  std::snprintf(hash, sizeof hash, "-%08x", Fnv1a(policy_name));
  name.resize(kMaxObjectName - 9);
  while (!name.empty() && (name.back() == '.' || name.back() == '-')) name.pop_back();
  return name + hash;
}

GeneratedAdmission GenerateAdmission(const Policy& policy, EnforcementAction action,
                                     Clock::time_point now) {
  const Generator gen(policy, now);
  const std::string name = AdmissionObjectName(policy.name);
  const json labels = {{"app.kubernetes.io/managed-by", "capwatch"},
                       {"capwatch.io/policy", policy.name.size() <= 63 ? policy.name : ""}};

  auto rule = [](std::vector<std::string> groups, std::vector<std::string> resources,
                 std::vector<std::string> operations) {
    return json{{"apiGroups", std::move(groups)},
                {"apiVersions", {"v1"}},
                {"resources", std::move(resources)},
                {"operations", std::move(operations)},
                {"scope", "Namespaced"}};
  };
  json constraints = {
      {"matchPolicy", "Equivalent"},
      {"objectSelector", json::object()},
      {"namespaceSelector", policy.match.namespace_selector
                                ? SelectorJson(*policy.match.namespace_selector)
                                : json::object()},
      {"resourceRules",
       {rule({""}, {"pods"}, {"CREATE"}), rule({""}, {"pods/ephemeralcontainers"}, {"UPDATE"}),
        rule({""}, {"replicationcontrollers"}, {"CREATE", "UPDATE"}),
        rule({"apps"}, {"deployments", "statefulsets", "daemonsets", "replicasets"},
             {"CREATE", "UPDATE"}),
        rule({"batch"}, {"jobs", "cronjobs"}, {"CREATE", "UPDATE"})}}};

  json conditions = json::array();
  auto condition = [&](std::string_view id, std::string expression) {
    conditions.push_back({{"name", id}, {"expression", std::move(expression)}});
  };
  if (!policy.match.namespaces.empty()) {
    condition("namespaces",
              "request.namespace.matches(" + CelString(GlobsRegex(policy.match.namespaces)) + ")");
  }
  if (!policy.match.exclude_namespaces.empty()) {
    condition("exclude-namespaces", "!request.namespace.matches(" +
                                        CelString(GlobsRegex(policy.match.exclude_namespaces)) +
                                        ")");
  }
  condition("not-windows", std::string(kPodSpec) + ".?os.?name.orValue('') != 'windows'");
  if (policy.match.pod_selector) {
    condition("pod-selector", SelectorCel(*policy.match.pod_selector,
                                          std::string(kPodMeta) + ".?labels.orValue({})"));
  }
  condition("template-changed",
            "request.operation != 'UPDATE' || request.subResource == 'ephemeralcontainers' || " +
                TemplateOf("object") + " != " + TemplateOf("oldObject"));

  json validations = json::array();
  for (const auto& check : gen.Checks()) {
    const std::string id(RuleId(check.rule));
    const std::string head = "capwatch policy " + policy.name + " (" + id + "): ";
    const std::string any = "variables.facts.exists(f, " + check.per_container + ")";
    std::string offenders = "'container ' + variables.facts.filter(f, " + check.per_container +
                            ").map(f, f.name).join(', ')";
    std::string expression = "!" + any;
    if (!check.pod_level.empty()) {
      expression = "!(" + check.pod_level + ") && " + expression;
      offenders = "(" + check.pod_level + " ? 'the pod' : " + offenders + ")";
    }
    // The API server evaluates every messageExpression on every request, allowed or not: the
    // guard keeps the filter and the join off the requests that pass.
    std::string message_expression = "(" + expression + ") ? '' : " + CelString(head) + " + " +
                                     offenders + " + ' ' + " + CelString(Remedy(check.rule));
    validations.push_back({{"expression", std::move(expression)},
                           {"message", head + "a container " + std::string(Remedy(check.rule))},
                           {"messageExpression", std::move(message_expression)},
                           {"reason", "Forbidden"}});
  }

  GeneratedAdmission out;
  out.next_change = gen.next_change();
  out.policy = {{"apiVersion", "admissionregistration.k8s.io/v1"},
                {"kind", "ValidatingAdmissionPolicy"},
                {"metadata", {{"name", name}, {"labels", labels}}},
                {"spec",
                 {{"failurePolicy", "Fail"},
                  {"matchConstraints", std::move(constraints)},
                  {"matchConditions", std::move(conditions)},
                  {"variables", gen.Variables()},
                  {"validations", std::move(validations)}}}};
  out.binding = {{"apiVersion", "admissionregistration.k8s.io/v1"},
                 {"kind", "ValidatingAdmissionPolicyBinding"},
                 {"metadata", {{"name", name}, {"labels", labels}}},
                 {"spec",
                  {{"policyName", name},
                   {"validationActions", {std::string(EnforcementActionName(action))}}}}};
  return out;
}

}  // namespace capwatch
