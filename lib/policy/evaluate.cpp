#include "policy/evaluate.h"

#include <algorithm>
#include <set>
#include <tuple>

namespace capwatch {
namespace {

// Everything a rule reads. Rules are pure functions of this and append findings.
struct RuleContext {
  const PodView& pod;
  const Policy& policy;
  const std::vector<ContainerFacts>& containers;
  std::vector<Finding>& out;

  Finding& Add(Rule rule, int index, Severity severity, std::string message,
               std::string remediation, PssControl control = PssControl::kNone) {
    Finding& f = out.emplace_back();
    f.policy = policy.name;
    f.rule = rule;
    f.container_index = index;
    if (index >= 0) f.container = pod.containers[static_cast<std::size_t>(index)].name;
    f.severity = severity;
    f.message = std::move(message);
    f.remediation = std::move(remediation);
    f.pss_control = control;
    return f;
  }
};

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Every container finding's message starts here. The room for the rest of it (most messages
// are 100 to 250 bytes) is taken at once, so the appends that follow do not reallocate.
std::string Describe(const ContainerFacts& c) {
  std::string out;
  out.reserve(256);
  out += ContainerTypeName(c.view->type);
  out += " \"";
  out += c.view->name;
  out += '"';
  return out;
}

std::string NameList(CapabilitySet set) {
  // Most calls list the same set (the runtime's defaults a container keeps): remember the last.
  thread_local CapabilitySet last_set = 0;
  thread_local std::string last_text;
  if (set == last_set && !last_text.empty()) return last_text;
  std::string out;
  for (int n = 0; n < kCapabilityCount; ++n) {
    if (!Contains(set, n)) continue;
    if (!out.empty()) out += ", ";
    out += CapabilityByNumber(n).name;
  }
  last_set = set;
  last_text = out;
  return out;
}

Severity CapabilitySeverity(const Policy& policy, const CapabilityName& name) {
  if (name.is_all()) return Severity::kCritical;
  if (name.is_capability()) return policy.SeverityOf(name.number);
  return Severity::kMedium;
}

// The capability, keyword or unknown name an entry stands for, as findings carry it.
std::string CanonicalName(const CapabilityName& name) {
  if (name.is_capability()) return std::string(CapabilityByNumber(name.number).name);
  if (name.is_all()) return "ALL";
  return std::string(name.written);
}

bool SameMeaning(const CapabilityName& a, const CapabilityName& b) {
  if (a.kind != b.kind) return false;
  if (a.is_capability()) return a.number == b.number;
  return a.is_all() || a.written == b.written;
}

// How messages and remediations name an entry of a capability list: the way the user wrote it
// (DESIGN §1), every spelling of the list that means the same, so a remediation names each entry
// to remove. A rule finds its capability once however often the list names it.
class Spelling {
 public:
  Spelling(const std::vector<CapabilityName>& list, const CapabilityName& name)
      : canonical_(CanonicalName(name)), unknown_(name.is_unknown()) {
    for (const auto& n : list) {
      if (SameMeaning(n, name) &&
          std::find(written_.begin(), written_.end(), n.written) == written_.end()) {
        written_.push_back(n.written);
      }
    }
    if (written_.empty()) written_.push_back(name.written);
  }

  // The entries, quoted: "cap_sys_ptrace", or "NET_RAW", "net_raw" and "CAP_NET_RAW".
  std::string Entries() const {
    std::string out;
    for (std::size_t i = 0; i < written_.size(); ++i) {
      if (i > 0) out += i + 1 == written_.size() ? " and " : ", ";
      out += Quoted(written_[i]);
    }
    return out;
  }
  // The entries with the canonical name after them when they spell it otherwise:
  // "cap_sys_ptrace" (SYS_PTRACE).
  std::string Described() const {
    return IsCanonical() || unknown_ ? Entries() : Entries() + " (" + canonical_ + ")";
  }
  // For messages that name the capability plainly when the user wrote it the Kubernetes way.
  std::string Plain() const { return IsCanonical() ? canonical_ : Described(); }
  std::string PlainEntries() const { return IsCanonical() ? canonical_ : Entries(); }

 private:
  bool IsCanonical() const { return written_.size() == 1 && written_[0] == canonical_; }

  std::string canonical_;
  bool unknown_;
  std::vector<std::string_view> written_;
};

void SetCapability(Finding& f, const CapabilityName& name) {
  f.capability_number = name.is_capability() ? name.number : -1;
  if (name.is_capability()) {
    f.capability = std::string(CapabilityByNumber(name.number).name);
  } else if (name.is_all()) {
    f.capability = "ALL";
  } else {
    f.capability = std::string(name.written);
  }
}

// ---- Pod Security Standards, with the API server's exact string semantics ----------------

void PssPrivileged(RuleContext& ctx) {
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (c.view->privileged != std::optional<bool>(true)) continue;
    Finding& f =
        ctx.Add(Rule::kPrivileged, static_cast<int>(i), Severity::kCritical,
                Describe(c) + " sets privileged: true, which the " +
                    std::string(ProfileName(ctx.policy.profile)) +
                    " Pod Security profile forbids: it grants every capability and the node's "
                    "devices",
                "set securityContext.privileged: false (or remove it)", PssControl::kPrivileged);
    f.capability = "privileged";
  }
}

// An add entry the profile does not allow; explains the case-sensitivity trap.
void PssAddNotAllowed(RuleContext& ctx, std::size_t i, const CapabilityName& name,
                      bool allowed_by_runtime_spelling, std::string_view profile_allows,
                      PssControl control) {
  const auto& c = ctx.containers[i];
  // A spelling the runtime would accept is about this one entry; otherwise every entry naming
  // the capability is refused, and the remediation names them all.
  const Spelling spelling(c.add_names, name);
  std::string message =
      Describe(c) + " adds " +
      (allowed_by_runtime_spelling ? Quoted(name.written) : spelling.Described()) + ", which the " +
      std::string(ProfileName(ctx.policy.profile)) +
      " Pod Security profile does not allow (it allows " + std::string(profile_allows) + ")";
  std::string remediation =
      "remove " + spelling.Entries() + " from securityContext.capabilities.add";
  if (allowed_by_runtime_spelling) {
    message += "; the API server compares capability names case-sensitively, so " +
               Quoted(name.written) + " is not " +
               std::string(CapabilityByNumber(name.number).name) +
               " to Pod Security admission, although the container runtime would accept it";
    remediation = "write it as " + std::string(CapabilityByNumber(name.number).name) +
                  " in securityContext.capabilities.add";
  } else if (name.is_unknown()) {
    message += "; it is not a Linux capability at all";
  }
  Finding& f = ctx.Add(Rule::kCapabilityNotAllowed, static_cast<int>(i),
                       CapabilitySeverity(ctx.policy, name), std::move(message),
                       std::move(remediation), control);
  SetCapability(f, name);
}

void PssCapabilitiesBaseline(RuleContext& ctx) {
  const CapabilitySet allowed = BaselineAllowedAdds();
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    for (const auto& name : ctx.containers[i].add_names) {
      const bool known_allowed = name.is_capability() && Contains(allowed, name.number);
      if (known_allowed && name.is_canonical_spelling()) continue;
      PssAddNotAllowed(
          ctx, i, name, known_allowed,
          "only the container runtime's defaults without NET_RAW: " + NameList(allowed),
          PssControl::kCapabilitiesBaseline);
    }
  }
}

void PssCapabilitiesRestricted(RuleContext& ctx) {
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    const bool exact_all = std::any_of(c.view->drop.begin(), c.view->drop.end(),
                                       [](const std::string& s) { return s == "ALL"; });
    if (!exact_all) {
      std::string message = Describe(c) +
                            " does not drop \"ALL\", which the restricted Pod "
                            "Security profile requires";
      std::string remediation = "set securityContext.capabilities.drop: [\"ALL\"]";
      if (c.drops_all) {
        message += "; it drops " +
                   Quoted(std::find_if(c.drop_names.begin(), c.drop_names.end(),
                                       [](const CapabilityName& n) { return n.is_all(); })
                              ->written) +
                   ", which the container runtime accepts, but the API server compares "
                   "case-sensitively and only \"ALL\" passes";
        remediation = "write \"ALL\" in upper case in securityContext.capabilities.drop";
      }
      Finding& f =
          ctx.Add(Rule::kDropAllMissing, static_cast<int>(i), Severity::kMedium, std::move(message),
                  std::move(remediation), PssControl::kCapabilitiesRestricted);
      f.capability = "ALL";
    }
    for (const auto& name : c.add_names) {
      const bool is_nbs =
          name.is_capability() && CapabilityByNumber(name.number).name == "NET_BIND_SERVICE";
      if (is_nbs && name.is_canonical_spelling()) continue;
      PssAddNotAllowed(ctx, i, name, is_nbs, "only NET_BIND_SERVICE",
                       PssControl::kCapabilitiesRestricted);
    }
  }
}

void PssAllowPrivilegeEscalation(RuleContext& ctx) {
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (c.view->allow_privilege_escalation == std::optional<bool>(false)) continue;
    ctx.Add(Rule::kPrivilegeEscalation, static_cast<int>(i), Severity::kMedium,
            Describe(c) +
                (c.view->allow_privilege_escalation ? " sets allowPrivilegeEscalation: true"
                                                    : " does not set allowPrivilegeEscalation: "
                                                      "false (unset means true)") +
                ", which the restricted Pod Security profile forbids",
            "set securityContext.allowPrivilegeEscalation: false",
            PssControl::kAllowPrivilegeEscalation);
  }
}

// Pod Security admission (1.35+) does not apply runAsNonRoot and runAsUser to a Pod in a
// user namespace: its root is an unprivileged user on the node.
bool InUserNamespace(const PodView& pod) { return pod.host_users == std::optional<bool>(false); }

void PssRunAsNonRoot(RuleContext& ctx) {
  if (InUserNamespace(ctx.pod)) return;
  const auto& pod_value = ctx.pod.run_as_non_root;
  if (pod_value == std::optional<bool>(false)) {
    ctx.Add(Rule::kRunsAsRoot, -1, Severity::kMedium,
            "the pod sets securityContext.runAsNonRoot: false, which the restricted Pod "
            "Security profile forbids",
            "set spec.securityContext.runAsNonRoot: true", PssControl::kRunAsNonRoot);
  }
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    const auto& value = c.view->run_as_non_root;
    if (value == std::optional<bool>(true)) continue;
    if (!value && pod_value == std::optional<bool>(true)) continue;
    ctx.Add(Rule::kRunsAsRoot, static_cast<int>(i), Severity::kMedium,
            Describe(c) +
                (value ? " sets runAsNonRoot: false"
                       : " does not set runAsNonRoot: true, nor does the pod") +
                ", which the restricted Pod Security profile requires",
            "set securityContext.runAsNonRoot: true on the container or the pod",
            PssControl::kRunAsNonRoot);
  }
}

void PssRunAsUser(RuleContext& ctx) {
  if (InUserNamespace(ctx.pod)) return;
  if (ctx.pod.run_as_user == std::optional<std::int64_t>(0)) {
    ctx.Add(Rule::kRunsAsRoot, -1, Severity::kMedium,
            "the pod sets securityContext.runAsUser: 0 (root), which the restricted Pod "
            "Security profile forbids",
            "set spec.securityContext.runAsUser to a non-zero user ID", PssControl::kRunAsUser);
  }
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (c.view->run_as_user != std::optional<std::int64_t>(0)) continue;
    ctx.Add(Rule::kRunsAsRoot, static_cast<int>(i), Severity::kMedium,
            Describe(c) +
                " sets runAsUser: 0 (root), which the restricted Pod Security "
                "profile forbids",
            "set securityContext.runAsUser to a non-zero user ID", PssControl::kRunAsUser);
  }
}

// ---- The policy's own rules, on what the container really holds ---------------------------

void UnknownCapability(RuleContext& ctx) {
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    for (const bool adding : {true, false}) {
      for (const auto& name : adding ? c.add_names : c.drop_names) {
        if (!name.is_unknown()) continue;
        std::string message = Describe(c) + (adding ? " adds " : " drops ") + Quoted(name.written) +
                              ", which is not a Linux capability";
        std::string remediation = "correct or remove " + Quoted(name.written) +
                                  " in securityContext.capabilities." + (adding ? "add" : "drop");
        if (auto hint = SuggestCapability(name.written); !hint.empty()) {
          message += "; did you mean " + std::string(hint) + "?";
          remediation = "write " + std::string(hint) + " instead of " + Quoted(name.written) +
                        " in securityContext.capabilities." + (adding ? "add" : "drop");
        }
        if (!adding) message += " (so nothing is dropped by it)";
        Finding& f = ctx.Add(Rule::kUnknownCapability, static_cast<int>(i),
                             adding ? Severity::kMedium : Severity::kLow, std::move(message),
                             std::move(remediation));
        f.capability = std::string(name.written);
      }
    }
  }
}

void Privileged(RuleContext& ctx) {
  if (!ctx.policy.disallow_privileged) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (!c.privileged) continue;
    Finding& f = ctx.Add(Rule::kPrivileged, static_cast<int>(i), Severity::kCritical,
                         Describe(c) +
                             " is privileged: it holds every capability and the "
                             "node's devices",
                         "remove securityContext.privileged (or set it to false) and add only "
                         "the capabilities the container needs");
    f.capability = "privileged";
  }
}

void DangerousCapability(RuleContext& ctx) {
  const CapabilityList& forbidden = ctx.policy.forbidden;
  if (forbidden.empty()) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    const int index = static_cast<int>(i);
    if (c.privileged) {
      if (ctx.policy.disallow_privileged) continue;  // the privileged rule says it all
      Finding& f = ctx.Add(Rule::kDangerousCapability, index, Severity::kCritical,
                           Describe(c) +
                               " is privileged, which grants every capability, "
                               "the forbidden ones included",
                           "remove securityContext.privileged and add only what is needed");
      f.capability = "privileged";
      continue;
    }
    if (c.adds_all && !c.drops_all) {
      const Spelling all(c.add_names,
                         *std::find_if(c.add_names.begin(), c.add_names.end(),
                                       [](const CapabilityName& n) { return n.is_all(); }));
      Finding& f = ctx.Add(Rule::kDangerousCapability, index, Severity::kCritical,
                           Describe(c) + " adds " + all.Plain() +
                               ", which grants every capability not dropped, "
                               "SYS_ADMIN and the other forbidden ones included",
                           "replace " + all.PlainEntries() +
                               " in securityContext.capabilities.add with the "
                               "capabilities the container needs");
      f.capability = "ALL";
      continue;
    }
    const CapabilitySet hit = c.granted & forbidden.set;
    for (int n = 0; n < kCapabilityCount; ++n) {
      if (!Contains(hit, n)) continue;
      const std::string_view cap = CapabilityByNumber(n).name;
      const bool explicit_add = Contains(c.added, n);
      std::string message, remediation;
      if (explicit_add) {
        const Spelling added(c.add_names, *std::find_if(c.add_names.begin(), c.add_names.end(),
                                                        [&](const CapabilityName& a) {
                                                          return a.is_capability() && a.number == n;
                                                        }));
        message = Describe(c) + " adds " + added.Plain() + ": " +
                  std::string(CapabilityByNumber(n).reason);
        remediation = "remove " + added.PlainEntries() + " from securityContext.capabilities.add";
      } else {
        message = Describe(c) + " holds " + std::string(cap) + " from the " +
                  ctx.policy.runtime_name + " default set because it does not drop it: " +
                  std::string(CapabilityByNumber(n).reason);
        remediation = "add ALL (or " + std::string(cap) + ") to securityContext.capabilities.drop";
      }
      Finding& f = ctx.Add(Rule::kDangerousCapability, index, ctx.policy.SeverityOf(n),
                           std::move(message), std::move(remediation));
      f.capability = std::string(cap);
      f.capability_number = n;
    }
  }
}

void CapabilityNotAllowed(RuleContext& ctx) {
  if (!ctx.policy.allowed) return;
  const CapabilityList& allowed = *ctx.policy.allowed;
  const CapabilityList& forbidden = ctx.policy.forbidden;
  const std::string allowed_text = allowed.all ? "ALL" : NameList(allowed.set);
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    for (const auto& name : c.add_names) {
      if (name.is_unknown()) continue;  // unknown-capability covers it
      if (name.is_all()) {
        if (allowed.all || !forbidden.empty()) continue;  // allowed, or already dangerous
      } else if (allowed.all || Contains(allowed.set, name.number) ||
                 Contains(forbidden.set, name.number)) {
        continue;
      }
      const Spelling spelling(c.add_names, name);
      Finding& f = ctx.Add(
          Rule::kCapabilityNotAllowed, static_cast<int>(i), CapabilitySeverity(ctx.policy, name),
          Describe(c) + " adds " + spelling.Described() + ", which policy " + ctx.policy.name +
              " does not allow (allowed: " + (allowed_text.empty() ? "none" : allowed_text) + ")",
          "remove " + spelling.Entries() +
              " from securityContext.capabilities.add, or add an exemption that says why it is "
              "needed");
      SetCapability(f, name);
    }
  }
}

void DropAllMissing(RuleContext& ctx) {
  if (!ctx.policy.require_drop_all) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (c.drops_all) continue;
    const CapabilitySet kept = ctx.policy.runtime_defaults & ~c.dropped;
    Finding& f =
        ctx.Add(Rule::kDropAllMissing, static_cast<int>(i), Severity::kMedium,
                Describe(c) + " does not drop ALL, so it keeps " + std::to_string(CountOf(kept)) +
                    " capabilities of the " + ctx.policy.runtime_name + " default set" +
                    (kept != 0 ? " (" + NameList(kept) + ")" : std::string()),
                "set securityContext.capabilities.drop: [\"ALL\"] and add back only "
                "what the container needs");
    f.capability = "ALL";
  }
}

void PrivilegeEscalation(RuleContext& ctx) {
  if (!ctx.policy.require_no_privilege_escalation) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    if (c.allow_privilege_escalation == std::optional<bool>(false)) continue;
    ctx.Add(Rule::kPrivilegeEscalation, static_cast<int>(i), Severity::kMedium,
            Describe(c) +
                (c.allow_privilege_escalation ? " sets allowPrivilegeEscalation: true"
                                              : " does not set allowPrivilegeEscalation: false "
                                                "(unset means true)") +
                ": setuid and file-capability binaries can gain privileges",
            "set securityContext.allowPrivilegeEscalation: false");
  }
}

void RunsAsRoot(RuleContext& ctx) {
  if (!ctx.policy.require_run_as_non_root) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    std::string why;
    if (c.run_as_user == std::optional<std::int64_t>(0)) {
      why = " runs as user 0 (root)";
    } else if (!c.run_as_user && c.run_as_non_root != std::optional<bool>(true)) {
      why = c.run_as_non_root ? " sets runAsNonRoot: false and no runAsUser"
                              : " sets neither runAsNonRoot: true nor a non-zero runAsUser, so "
                                "it runs as the image's user, often root";
    } else {
      continue;
    }
    ctx.Add(Rule::kRunsAsRoot, static_cast<int>(i), Severity::kMedium,
            Describe(c) + why + "; as root it holds its capabilities in its effective set",
            "set securityContext.runAsNonRoot: true and a non-zero runAsUser");
  }
}

std::string_view Justification(const PodView& pod, std::string_view capability) {
  for (const auto& [cap, text] : pod.justifications) {
    if (cap == capability) return text;
  }
  return {};
}

void MissingJustification(RuleContext& ctx) {
  if (!ctx.policy.require_justification) return;
  for (std::size_t i = 0; i < ctx.containers.size(); ++i) {
    const auto& c = ctx.containers[i];
    for (const auto& name : c.add_names) {
      if (name.is_unknown()) continue;
      const std::string cap =
          name.is_all() ? "ALL" : std::string(CapabilityByNumber(name.number).name);
      if (!Justification(ctx.pod, cap).empty()) continue;
      Finding& f = ctx.Add(
          Rule::kMissingJustification, static_cast<int>(i), Severity::kLow,
          Describe(c) + " adds " + Spelling(c.add_names, name).Plain() + " without saying why",
          "annotate the pod with " + std::string(kJustificationPrefix) + cap +
              ": \"<why the container needs it>\"");
      SetCapability(f, name);
    }
  }
}

// Fail closed: a field that could not be read is reported under every policy, a profile alone
// included (the API server would not admit such a Pod either). Never deduplicated, never
// exempted: an exemption was written for what its author could see.
void UnreadableFields(RuleContext& ctx) {
  for (const auto& u : ctx.pod.unreadable) {
    int index = -1;
    if (!u.container.empty()) {
      const auto& cs = ctx.pod.containers;
      const auto it = std::find_if(cs.begin(), cs.end(),
                                   [&](const ContainerView& c) { return c.name == u.container; });
      if (it != cs.end()) index = static_cast<int>(it - cs.begin());
    }
    ctx.Add(Rule::kUnreadableField, index, Severity::kCritical,
            "field " + u.path + " cannot be read: " + u.reason +
                "; what it sets is unknown, so it is reported rather than taken for compliant",
            "fix " + u.path + " in the manifest so that it reads as Kubernetes expects (" +
                u.reason + ")");
  }
}

// The rule table: read top to bottom, one rule a line. Profile rules first.
struct RuleEntry {
  bool (*applies)(const Policy&);
  void (*check)(RuleContext&);
};

bool IsBaseline(const Policy& p) { return p.profile == Profile::kBaseline; }
bool IsRestricted(const Policy& p) { return p.profile == Profile::kRestricted; }
bool HasProfile(const Policy& p) { return p.profile != Profile::kNone; }
bool Always(const Policy&) { return true; }
bool OwnRules(const Policy& p) { return !p.profile_only; }

constexpr RuleEntry kRuleTable[] = {
    {HasProfile, PssPrivileged},                  // PSS baseline: privileged
    {IsBaseline, PssCapabilitiesBaseline},        // PSS baseline: adds only the baseline set
    {IsRestricted, PssCapabilitiesRestricted},    // PSS restricted: drop ALL, add NET_BIND_SERVICE
    {IsRestricted, PssAllowPrivilegeEscalation},  // PSS restricted: allowPrivilegeEscalation
    {IsRestricted, PssRunAsNonRoot},              // PSS restricted: runAsNonRoot
    {IsRestricted, PssRunAsUser},                 // PSS restricted: runAsUser != 0
    {OwnRules, UnknownCapability},                // names that are no capability
    {Always, Privileged},                         // disallowPrivileged
    {Always, DangerousCapability},                // forbiddenCapabilities, defaults included
    {Always, CapabilityNotAllowed},               // allowedCapabilities
    {Always, DropAllMissing},                     // requireDropAll
    {Always, PrivilegeEscalation},                // requireNoPrivilegeEscalation
    {Always, RunsAsRoot},                         // requireRunAsNonRoot
    {Always, MissingJustification},               // requireJustification
    {Always, UnreadableFields},                   // fields that could not be read
};

bool ExemptionCovers(const Exemption& ex, const PodView& pod, const Finding& f) {
  if (!ex.namespaces.empty() &&
      std::none_of(ex.namespaces.begin(), ex.namespaces.end(),
                   [&](const std::string& g) { return GlobMatch(g, pod.namespace_name); })) {
    return false;
  }
  if (ex.pod_selector && !ex.pod_selector->Matches(pod.labels)) return false;
  if (!ex.containers.empty() &&
      std::find(ex.containers.begin(), ex.containers.end(), f.container) == ex.containers.end()) {
    return false;
  }
  const CapabilityList& caps = ex.capabilities;
  if (caps.empty()) return true;
  if (f.capability_number >= 0) return Contains(caps.set, f.capability_number);
  if (f.capability == "ALL") return caps.all;
  if (f.capability == "privileged") return caps.privileged;
  return false;
}

void ApplyExemptions(const Policy& policy, const PodView& pod, Clock::time_point now,
                     std::vector<Finding>& findings, std::size_t first) {
  std::vector<Finding> expired;
  for (std::size_t i = first; i < findings.size(); ++i) {
    Finding& f = findings[i];
    if (f.rule == Rule::kUnreadableField) continue;
    // A valid exemption wins; an expired one matters only when no valid one covers the finding.
    const Exemption* valid = nullptr;
    const Exemption* lapsed = nullptr;
    for (const auto& ex : policy.exemptions) {
      if (!ExemptionCovers(ex, pod, f)) continue;
      const bool is_expired = ex.expires && *ex.expires <= now;
      if (!is_expired) {
        valid = &ex;
        break;
      }
      if (lapsed == nullptr) lapsed = &ex;
    }
    if (valid != nullptr) {
      f.exempt = true;
      f.exemption = FindingExemption{valid->name, valid->reason, valid->expires_text, false};
      continue;
    }
    if (lapsed == nullptr) continue;
    const Exemption& ex = *lapsed;
    f.exemption = FindingExemption{ex.name, ex.reason, ex.expires_text, true};
    f.message += " (exemption " + ex.name + " expired " + ex.expires_text + ")";
    const bool already = std::any_of(expired.begin(), expired.end(), [&](const Finding& e) {
      return e.container_index == f.container_index && e.capability == ex.name;
    });
    if (already) continue;
    Finding e;
    e.policy = policy.name;
    e.rule = Rule::kExemptionExpired;
    e.container = f.container;
    e.container_index = f.container_index;
    e.capability = ex.name;  // the exemption's name identifies this finding
    e.severity = Severity::kMedium;
    e.message = "exemption " + ex.name + " (" + ex.reason + ") expired " + ex.expires_text +
                "; what it covered is a finding again";
    e.remediation = "fix the container, or renew the exemption with a later expires";
    e.exemption = f.exemption;
    expired.push_back(std::move(e));
  }
  for (auto& e : expired) findings.push_back(std::move(e));
}

}  // namespace

ContainerFacts AnalyzeContainer(const ContainerView& view, const PodView& pod,
                                CapabilitySet runtime_defaults) {
  ContainerFacts c;
  c.view = &view;
  c.add_names.reserve(view.add.size());
  for (const auto& s : view.add) {
    const CapabilityName& name = c.add_names.emplace_back(ParseCapabilityName(s));
    if (name.is_capability()) c.added |= Bit(name.number);
    if (name.is_all()) c.adds_all = true;
  }
  c.drop_names.reserve(view.drop.size());
  for (const auto& s : view.drop) {
    const CapabilityName& name = c.drop_names.emplace_back(ParseCapabilityName(s));
    if (name.is_capability()) c.dropped |= Bit(name.number);
    if (name.is_all()) c.drops_all = true;
  }
  c.privileged = view.privileged.value_or(false);
  // As containerd applies them: add ALL, then drop ALL, then the single adds, then the single
  // drops (a capability both added and dropped is dropped). privileged ignores all of it.
  CapabilitySet base = runtime_defaults;
  if (c.adds_all) base = kAllCapabilities;
  if (c.drops_all) base = 0;
  c.granted = c.privileged ? kAllCapabilities : ((base | c.added) & ~c.dropped);
  c.run_as_non_root = view.run_as_non_root ? view.run_as_non_root : pod.run_as_non_root;
  c.run_as_user = view.run_as_user ? view.run_as_user : pod.run_as_user;
  c.allow_privilege_escalation = view.allow_privilege_escalation;
  return c;
}

bool PolicyMatches(const Policy& policy, const PodView& pod,
                   const std::vector<std::pair<std::string, std::string>>* namespace_labels) {
  const auto& m = policy.match;
  const auto matches_ns = [&](const std::string& glob) {
    return GlobMatch(glob, pod.namespace_name);
  };
  if (!m.namespaces.empty() && std::none_of(m.namespaces.begin(), m.namespaces.end(), matches_ns)) {
    return false;
  }
  if (std::any_of(m.exclude_namespaces.begin(), m.exclude_namespaces.end(), matches_ns)) {
    return false;
  }
  if (m.namespace_selector) {
    static const std::vector<std::pair<std::string, std::string>> kNone;
    if (!m.namespace_selector->Matches(namespace_labels ? *namespace_labels : kNone)) return false;
  }
  return !m.pod_selector || m.pod_selector->Matches(pod.labels);
}

PodEvaluation Evaluate(const PodView& pod, std::span<const Policy* const> policies,
                       Clock::time_point now) {
  PodEvaluation result;
  if (pod.is_windows()) {
    result.skipped = true;
    result.note = "Windows pod (spec.os.name: windows): it holds no Linux capabilities";
    return result;
  }
  const CapabilitySet report_defaults = policies.empty() ? RuntimeDefaultSet(Runtime::kContainerd)
                                                         : policies.front()->runtime_defaults;
  result.containers.reserve(pod.containers.size());
  // Room for the findings of a typical pod, so they are not moved as the vector grows; capped,
  // so a pod of thousands of containers does not reserve megabytes it may never fill.
  result.findings.reserve(std::min<std::size_t>(
      64, 4 * pod.containers.size() * std::max<std::size_t>(policies.size(), 1)));
  for (const auto& c : pod.containers) {
    result.containers.push_back(AnalyzeContainer(c, pod, report_defaults));
  }

  std::vector<ContainerFacts> other_runtime;  // reused when a policy names another runtime
  for (const Policy* policy : policies) {
    const std::vector<ContainerFacts>* facts = &result.containers;
    if (policy->runtime_defaults != report_defaults) {
      other_runtime.clear();
      for (const auto& c : pod.containers) {
        other_runtime.push_back(AnalyzeContainer(c, pod, policy->runtime_defaults));
      }
      facts = &other_runtime;
    }
    const std::size_t first = result.findings.size();
    RuleContext ctx{pod, *policy, *facts, result.findings};
    for (const auto& entry : kRuleTable) {
      if (entry.applies(*policy)) entry.check(ctx);
    }
    // A profile and the policy's own rules may say the same thing, and a list may name a
    // capability twice: keep the first finding of each (rule, container, capability). Profile
    // findings of different Pod Security controls (runAsNonRoot, runAsUser) stay apart.
    // Findings are few per pod, so a scan of the kept ones beats building a set; a huge pod
    // (hundreds of containers) gets the set.
    const bool few = result.findings.size() - first <= 64;
    std::set<std::tuple<Rule, int, std::string>> seen;
    std::set<std::tuple<Rule, int, std::string, PssControl>> seen_control;
    std::size_t kept = first;
    for (std::size_t i = first; i < result.findings.size(); ++i) {
      auto& f = result.findings[i];
      bool duplicate = false;
      if (f.rule == Rule::kUnreadableField) {
        // One finding per unreadable field, however alike two of them read.
      } else if (few) {
        duplicate = std::any_of(
            result.findings.begin() + static_cast<std::ptrdiff_t>(first),
            result.findings.begin() + static_cast<std::ptrdiff_t>(kept), [&](const Finding& k) {
              return k.rule == f.rule && k.container_index == f.container_index &&
                     k.capability == f.capability &&
                     (f.pss_control == PssControl::kNone || k.pss_control == f.pss_control);
            });
      } else {
        duplicate =
            f.pss_control == PssControl::kNone
                ? !seen.emplace(f.rule, f.container_index, f.capability).second
                : !seen_control.emplace(f.rule, f.container_index, f.capability, f.pss_control)
                       .second;
        seen.emplace(f.rule, f.container_index, f.capability);
      }
      if (duplicate) continue;
      if (kept != i) result.findings[kept] = std::move(f);
      ++kept;
    }
    result.findings.resize(kept);
    ApplyExemptions(*policy, pod, now, result.findings, first);
  }

  const auto before = [](const Finding& a, const Finding& b) {
    return std::tie(a.container_index, a.rule, a.capability_number, a.capability) <
           std::tie(b.container_index, b.rule, b.capability_number, b.capability);
  };
  // stable_sort takes a buffer and moves every finding even when they are in order already.
  if (!std::is_sorted(result.findings.begin(), result.findings.end(), before)) {
    std::stable_sort(result.findings.begin(), result.findings.end(), before);
  }
  return result;
}

}  // namespace capwatch
