#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace capwatch {

// A dangerous capability held by one container: what `capwatch_dangerous_grants_total` and the
// DangerousCapabilityGranted event count.
struct DangerousGrant {
  std::string container;
  std::string capability;  // a capability name, ALL or privileged
  auto operator<=>(const DangerousGrant&) const = default;
};

// The dangerous grants a report records: its failing dangerous-capability and privileged
// findings (an exempted grant is an accepted one, not news).
std::set<DangerousGrant> DangerousGrantsOf(const nlohmann::json& report);

// What `current` grants that `previous` (the report already stored, or null for a new
// workload) did not. The stored report is capwatch's memory, so a restart or a relist over an
// unchanged cluster yields nothing.
std::vector<DangerousGrant> NewDangerousGrants(const nlohmann::json* previous,
                                               const nlohmann::json& current);

}  // namespace capwatch
