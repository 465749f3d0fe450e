#pragma once

#include <string>
#include <vector>

#include "policy/policy.h"

namespace YAML {
class Node;
}

namespace capwatch {

struct PolicyParseResult {
  std::vector<Policy> policies;                                           // the valid ones
  std::vector<std::pair<std::string, std::vector<PolicyError>>> invalid;  // name → errors
  std::vector<std::string> errors;  // problems with the document itself
};

// Parses a CapabilityPolicy object (YAML or JSON: JSON is YAML). Returns the errors found;
// `policy` is usable only when the list is empty.
std::vector<PolicyError> ParsePolicy(const YAML::Node& object, Policy& policy);

// Parses every CapabilityPolicy in a multi-document YAML/JSON text (Lists included).
PolicyParseResult ParsePolicies(const std::string& text);

}  // namespace capwatch
