#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "policy/policy.h"

namespace capwatch {

// The ValidatingAdmissionPolicy and its Binding that make the API server refuse (or warn
// about, or audit) what `capwatch audit --policy` would report for this policy, in CEL.
struct GeneratedAdmission {
  nlohmann::json policy;   // admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy
  nlohmann::json binding;  // its ValidatingAdmissionPolicyBinding
  // When the objects change on their own: the next expiry of an exemption, after which the
  // exemption is left out (CEL has no clock). Unset when no exemption expires after `now`.
  std::optional<Clock::time_point> next_change;
};

// A pure function of the policy and the time: the same input gives byte-identical objects,
// so the controller writes only when the policy (or the set of live exemptions) changed.
// The objects carry no ownerReferences; the controller adds them.
GeneratedAdmission GenerateAdmission(const Policy& policy, EnforcementAction action,
                                     Clock::time_point now);

// The name both objects get: "capwatch-<policy name>", shortened with a hash when the policy's
// name is too long for one.
std::string AdmissionObjectName(std::string_view policy_name);

// A CEL string literal: 'text', with quotes, backslashes and control characters escaped.
std::string CelString(std::string_view text);

}  // namespace capwatch
