#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "capabilities/severity.h"

namespace capwatch {

// Rule ids are stable: they appear in reports, metrics, SARIF and docs.
enum class Rule {
  kDangerousCapability,
  kCapabilityNotAllowed,
  kDropAllMissing,
  kPrivileged,
  kPrivilegeEscalation,
  kRunsAsRoot,
  kUnknownCapability,
  kMissingJustification,
  kExemptionExpired,
  kUnreadableField,
};
inline constexpr int kRuleCount = 10;

struct RuleInfo {
  Rule rule;
  std::string_view id;
  std::string_view title;        // one line, for tables and SARIF
  std::string_view description;  // why it matters
};
const RuleInfo& InfoOf(Rule rule);
std::string_view RuleId(Rule rule);

// The Pod Security admission check a profile finding corresponds to (its check ID).
enum class PssControl {
  kNone,
  kPrivileged,
  kCapabilitiesBaseline,
  kCapabilitiesRestricted,
  kAllowPrivilegeEscalation,
  kRunAsNonRoot,
  kRunAsUser,
};
std::string_view PssControlId(PssControl control);

struct FindingExemption {
  std::string name;
  std::string reason;
  std::string expires;  // RFC 3339 as written, empty when it never expires
  bool expired = false;
};

struct Finding {
  std::string policy;
  Rule rule = Rule::kDangerousCapability;
  std::string container;     // empty for a pod-level finding
  int container_index = -1;  // position in PodView::containers, -1 for the pod
  std::string capability;    // canonical name, a keyword (ALL, privileged) or the unknown spelling
  int capability_number = -1;
  Severity severity = Severity::kLow;
  bool exempt = false;
  std::string message;
  std::string remediation;
  PssControl pss_control = PssControl::kNone;
  std::optional<FindingExemption> exemption;
};

}  // namespace capwatch
