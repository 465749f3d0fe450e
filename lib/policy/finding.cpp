#include "policy/finding.h"

#include <array>

namespace capwatch {
namespace {

constexpr std::array<RuleInfo, kRuleCount> kRules = {{
    {Rule::kDangerousCapability, "dangerous-capability", "Dangerous capability granted",
     "The container holds a capability the policy forbids, such as SYS_ADMIN or SYS_PTRACE: "
     "one that lets a compromised process escape the container or take over the node."},
    {Rule::kCapabilityNotAllowed, "capability-not-allowed", "Capability not allowed",
     "The container adds a capability that is not on the policy's (or the Pod Security "
     "profile's) list of capabilities that may be added."},
    {Rule::kDropAllMissing, "drop-all-missing", "Capabilities not dropped",
     "The container does not drop ALL, so it keeps the container runtime's default set "
     "(14 capabilities under containerd, NET_RAW and DAC_OVERRIDE among them)."},
    {Rule::kPrivileged, "privileged", "Privileged container",
     "privileged: true grants every capability and access to the node's devices."},
    {Rule::kPrivilegeEscalation, "privilege-escalation", "Privilege escalation allowed",
     "allowPrivilegeEscalation is not false, so setuid and file-capability binaries can raise "
     "the process's privileges (no_new_privs is off)."},
    {Rule::kRunsAsRoot, "runs-as-root", "May run as root",
     "Neither runAsNonRoot: true nor a non-zero runAsUser keeps the container from running as "
     "root, in which case it holds its capabilities in its effective set."},
    {Rule::kUnknownCapability, "unknown-capability", "Unknown capability name",
     "A capability entry names no Linux capability (a typo such as NET_BIND): it does not do "
     "what its author meant."},
    {Rule::kMissingJustification, "missing-justification", "Added capability not justified",
     "The policy requires each added capability to be explained in the annotation "
     "capwatch.io/justification.<CAPABILITY>."},
    {Rule::kExemptionExpired, "exemption-expired", "Exemption expired",
     "An exemption that covered this container has expired, so what it covered is a finding "
     "again."},
    {Rule::kUnreadableField, "unreadable-field", "Field cannot be read",
     "A field of the Pod or pod template has a value capwatch cannot read (a number where a "
     "capability name belongs, a string where a boolean does): what it would grant is unknown, "
     "so it is reported instead of being taken for compliant."},
}};

}  // namespace

const RuleInfo& InfoOf(Rule rule) { return kRules.at(static_cast<std::size_t>(rule)); }
std::string_view RuleId(Rule rule) { return InfoOf(rule).id; }

std::string_view PssControlId(PssControl control) {
  switch (control) {
    case PssControl::kNone:
      return "";
    case PssControl::kPrivileged:
      return "privileged";
    case PssControl::kCapabilitiesBaseline:
      return "capabilities_baseline";
    case PssControl::kCapabilitiesRestricted:
      return "capabilities_restricted";
    case PssControl::kAllowPrivilegeEscalation:
      return "allowPrivilegeEscalation";
    case PssControl::kRunAsNonRoot:
      return "runAsNonRoot";
    case PssControl::kRunAsUser:
      return "runAsUser";
  }
  return "";
}

}  // namespace capwatch
