#pragma once

#include <string>
#include <string_view>

#include "capabilities/catalog.h"

namespace capwatch {

// What one entry of capabilities.add or .drop names, after the normalisation the container
// runtime applies (case, a CAP_ prefix, surrounding space). `written` keeps the user's spelling
// for messages.
struct CapabilityName {
  enum class Kind { kCapability, kAll, kUnknown };
  Kind kind = Kind::kUnknown;
  int number = -1;  // valid when kind == kCapability
  std::string_view written;

  bool is_capability() const { return kind == Kind::kCapability; }
  bool is_all() const { return kind == Kind::kAll; }
  bool is_unknown() const { return kind == Kind::kUnknown; }
  // True when the spelling is exactly the Kubernetes one (what the API server compares).
  bool is_canonical_spelling() const;
};

CapabilityName ParseCapabilityName(std::string_view written);

// The closest capability name to an unknown one, for "did you mean" hints; empty if none is
// close enough to be a plausible typo.
std::string_view SuggestCapability(std::string_view unknown);

}  // namespace capwatch
