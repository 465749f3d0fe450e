#pragma once

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "policy/evaluate.h"

namespace capwatch {

// A dangerous capability held by one container: what `capwatch_dangerous_grants_total` and the
// DangerousCapabilityGranted event count.
struct DangerousGrant {
  std::string container;
  std::string capability;  // a capability name, ALL or privileged
  auto operator<=>(const DangerousGrant&) const = default;
};

// The dangerous grants a report records: its failing privileged findings and the failing
// dangerous-capability findings of capabilities a container adds explicitly (or ALL). An
// exempted grant is an accepted one, and the runtime's default set is nobody's new decision:
// neither is news.
std::set<DangerousGrant> DangerousGrantsOf(const nlohmann::json& report);
// The same, from the evaluation itself: complete even when the report had to leave containers
// out to stay under the size limit.
std::set<DangerousGrant> DangerousGrantsOf(const PodEvaluation& evaluation);

// The report annotation that records the dangerous grants capwatch already knows of for the
// workload (announced, or recorded silently at the first start): the grant memory. Compact
// (one capability mask per container), so it stays small for the largest workloads.
inline constexpr std::string_view kGrantsAnnotation = "capwatch.io/dangerous-grants";
std::string EncodeGrants(const std::set<DangerousGrant>& grants);
// The inverse of EncodeGrants; entries it cannot read are ignored.
std::set<DangerousGrant> DecodeGrants(std::string_view text);

// What `current` grants that `previous` (the report already stored, or null for a new
// workload) did not. The stored report is capwatch's memory, so a restart or a relist over an
// unchanged cluster yields nothing.
std::vector<DangerousGrant> NewDangerousGrants(const nlohmann::json* previous,
                                               const nlohmann::json& current);
// The same, against the grants already known (what the stored report's cache keeps).
std::vector<DangerousGrant> NewDangerousGrants(const std::set<DangerousGrant>& previous,
                                               const nlohmann::json& current);

}  // namespace capwatch
