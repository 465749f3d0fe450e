#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "capabilities/severity.h"

namespace capwatch {

inline constexpr int kCapabilityCount = 41;  // CAP_CHOWN = 0 ... CAP_CHECKPOINT_RESTORE = 40

// A set of capabilities, bit N = capability number N.
using CapabilitySet = std::uint64_t;
inline constexpr CapabilitySet kAllCapabilities = (CapabilitySet{1} << kCapabilityCount) - 1;
constexpr CapabilitySet Bit(int number) { return CapabilitySet{1} << number; }
constexpr bool Contains(CapabilitySet set, int number) { return (set & Bit(number)) != 0; }
int CountOf(CapabilitySet set);

struct CapabilityInfo {
  int number;
  std::string_view name;  // Kubernetes spelling: no CAP_ prefix, upper case
  Severity severity;      // how bad it is to grant it to an application container
  bool dangerous;         // in capwatch's default forbidden set
  std::string_view reason;
};

// All 41 capabilities, indexed by number.
const std::array<CapabilityInfo, kCapabilityCount>& Catalog();
const CapabilityInfo& CapabilityByNumber(int number);
// Exact match on the canonical (Kubernetes) name.
std::optional<int> CapabilityNumber(std::string_view canonical_name);

// The set of capabilities a container runtime grants when the manifest drops nothing.
enum class Runtime { kContainerd, kDocker, kCrio };
std::string_view RuntimeName(Runtime runtime);
std::optional<Runtime> ParseRuntime(std::string_view name);
CapabilitySet RuntimeDefaultSet(Runtime runtime);

// The dangerous set of the default policy, as capabilities (the keywords ALL and privileged
// are handled by the policy).
CapabilitySet DangerousSet();

// Pod Security Standards: what baseline allows in capabilities.add (the API server compares
// these names case-sensitively).
CapabilitySet BaselineAllowedAdds();

}  // namespace capwatch
