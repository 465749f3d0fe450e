#include "policy/policy.h"

#include <algorithm>

namespace capwatch {

std::string_view ProfileName(Profile profile) {
  switch (profile) {
    case Profile::kNone:
      return "none";
    case Profile::kBaseline:
      return "baseline";
    case Profile::kRestricted:
      return "restricted";
  }
  return "none";
}

std::optional<Profile> ParseProfile(std::string_view name) {
  for (Profile p : {Profile::kNone, Profile::kBaseline, Profile::kRestricted}) {
    if (ProfileName(p) == name) return p;
  }
  return std::nullopt;
}

std::string_view EnforcementActionName(EnforcementAction action) {
  switch (action) {
    case EnforcementAction::kDeny:
      return "Deny";
    case EnforcementAction::kWarn:
      return "Warn";
    case EnforcementAction::kAudit:
      return "Audit";
  }
  return "Deny";
}

std::optional<EnforcementAction> ParseEnforcementAction(std::string_view name) {
  for (auto a : {EnforcementAction::kDeny, EnforcementAction::kWarn, EnforcementAction::kAudit}) {
    if (EnforcementActionName(a) == name) return a;
  }
  return std::nullopt;
}

bool LabelSelector::Matches(const std::vector<std::pair<std::string, std::string>>& labels) const {
  auto find = [&](const std::string& key) -> const std::string* {
    for (const auto& [k, v] : labels) {
      if (k == key) return &v;
    }
    return nullptr;
  };
  for (const auto& [key, value] : match_labels) {
    const std::string* v = find(key);
    if (v == nullptr || *v != value) return false;
  }
  for (const auto& req : match_expressions) {
    const std::string* v = find(req.key);
    const bool in_values =
        v != nullptr && std::find(req.values.begin(), req.values.end(), *v) != req.values.end();
    switch (req.op) {
      case Requirement::Operator::kIn:
        if (!in_values) return false;
        break;
      case Requirement::Operator::kNotIn:
        if (in_values) return false;
        break;
      case Requirement::Operator::kExists:
        if (v == nullptr) return false;
        break;
      case Requirement::Operator::kDoesNotExist:
        if (v != nullptr) return false;
        break;
    }
  }
  return true;
}

bool GlobMatch(std::string_view pattern, std::string_view text) {
  // Iterative matcher with single-star backtracking: linear in practice, never recursive.
  std::size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Severity Policy::SeverityOf(int capability) const {
  auto it = severities.find(capability);
  return it != severities.end() ? it->second : CapabilityByNumber(capability).severity;
}

Policy DefaultPolicy() {
  Policy p;
  p.name = "default";
  p.runtime_defaults = RuntimeDefaultSet(Runtime::kContainerd);
  p.require_drop_all = true;
  p.forbidden = {DangerousSet(), true, true};
  p.allowed = CapabilityList{Bit(*CapabilityNumber("NET_BIND_SERVICE")), false, false};
  p.disallow_privileged = true;
  p.require_no_privilege_escalation = true;
  p.require_run_as_non_root = true;
  return p;
}

Policy ProfileOnlyPolicy(Profile profile) {
  Policy p;
  p.name = std::string(ProfileName(profile));
  p.profile = profile;
  p.profile_only = true;
  p.runtime_defaults = RuntimeDefaultSet(Runtime::kContainerd);
  return p;
}

}  // namespace capwatch
