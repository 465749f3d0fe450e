#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "capabilities/catalog.h"
#include "capabilities/severity.h"

namespace capwatch {

using Clock = std::chrono::system_clock;

// The Pod Security Standards profile a policy enforces (DESIGN §1).
enum class Profile { kNone, kBaseline, kRestricted };
std::string_view ProfileName(Profile profile);
std::optional<Profile> ParseProfile(std::string_view name);

// spec.enforcement.action: what the API server does with a Pod or workload that breaks the
// policy (admissionregistration.k8s.io/v1 validationActions), spelt as the API server spells it.
enum class EnforcementAction { kDeny, kWarn, kAudit };
std::string_view EnforcementActionName(EnforcementAction action);
std::optional<EnforcementAction> ParseEnforcementAction(std::string_view name);

// A Kubernetes label selector (matchLabels + matchExpressions).
struct LabelSelector {
  struct Requirement {
    enum class Operator { kIn, kNotIn, kExists, kDoesNotExist };
    std::string key;
    Operator op = Operator::kIn;
    std::vector<std::string> values;
  };
  std::map<std::string, std::string> match_labels;
  std::vector<Requirement> match_expressions;

  bool Matches(const std::vector<std::pair<std::string, std::string>>& labels) const;
};

// Glob with `*` and `?`, as used for namespace names.
bool GlobMatch(std::string_view pattern, std::string_view text);

// Capabilities named in a policy: real capabilities plus the keywords ALL and privileged.
struct CapabilityList {
  CapabilitySet set = 0;
  bool all = false;         // the keyword ALL (add: [ALL])
  bool privileged = false;  // the keyword privileged (privileged: true)
  bool empty() const { return set == 0 && !all && !privileged; }
};

struct Exemption {
  std::string name;
  std::vector<std::string> namespaces;  // globs; empty = every namespace the policy matches
  std::optional<LabelSelector> pod_selector;
  std::vector<std::string> containers;  // empty = every container
  CapabilityList capabilities;          // empty = every finding of the matched containers
  std::string reason;
  std::optional<Clock::time_point> expires;
  std::string expires_text;  // as written, for reports
};

struct PolicyMatch {
  std::vector<std::string> namespaces;  // globs; empty = all
  std::vector<std::string> exclude_namespaces;
  std::optional<LabelSelector> namespace_selector;
  std::optional<LabelSelector> pod_selector;
};

struct Policy {
  std::string name;
  Profile profile = Profile::kNone;
  PolicyMatch match;
  CapabilitySet runtime_defaults = 0;
  std::string runtime_name = "containerd";
  bool require_drop_all = false;
  std::optional<CapabilityList> allowed;  // unset: adding anything is not itself a finding
  CapabilityList forbidden;
  std::map<int, Severity> severities;  // capability number → severity override
  bool disallow_privileged = false;
  bool require_no_privilege_escalation = false;
  bool require_run_as_non_root = false;
  bool require_justification = false;
  std::vector<Exemption> exemptions;
  // spec.enforcement: the controller keeps a ValidatingAdmissionPolicy for the policy (unset:
  // audit only, nothing generated).
  std::optional<EnforcementAction> enforcement;
  // Built by ProfileOnlyPolicy: exactly the Pod Security profile, no rule of capwatch's own.
  bool profile_only = false;

  Severity SeverityOf(int capability) const;
};

// The built-in policies.
Policy DefaultPolicy();                     // DESIGN §2: the guide's advice as a policy
Policy ProfileOnlyPolicy(Profile profile);  // exactly one Pod Security profile, nothing more

}  // namespace capwatch
