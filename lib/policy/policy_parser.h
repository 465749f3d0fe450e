#pragma once

#include <string>
#include <vector>

#include "base/result.h"
#include "policy/policy.h"

namespace YAML {
class Node;
}

namespace capwatch {

// A batch, not a Result: every policy of a file is parsed, each valid or not. The invalid ones
// keep their FieldErrors (the path of each field, e.g. ".spec.exemptions[0].reason").
struct PolicyParseResult {
  std::vector<Policy> policies;                                          // the valid ones
  std::vector<std::pair<std::string, std::vector<FieldError>>> invalid;  // name → errors
  std::vector<std::string> errors;  // problems with the document itself
};

// Parses a CapabilityPolicy object (YAML or JSON: JSON is YAML). An invalid policy is an Error
// ("CapabilityPolicy web is invalid") with a FieldError for every problem found.
Result<Policy> ParsePolicy(const YAML::Node& object);

// Parses every CapabilityPolicy in a multi-document YAML/JSON text (Lists included).
PolicyParseResult ParsePolicies(const std::string& text);

}  // namespace capwatch
