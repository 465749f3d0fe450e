#include "report/dangerous_grants.h"

namespace capwatch {

std::set<DangerousGrant> DangerousGrantsOf(const nlohmann::json& report) {
  std::set<DangerousGrant> grants;
  auto it = report.find("findings");
  if (it == report.end() || !it->is_array()) return grants;
  for (const auto& f : *it) {
    if (!f.is_object() || f.value("result", "") != "fail") continue;
    const std::string rule = f.value("rule", "");
    if (rule != "dangerous-capability" && rule != "privileged") continue;
    grants.insert({f.value("container", ""),
                   rule == "privileged" ? "privileged" : f.value("capability", "")});
  }
  return grants;
}

std::vector<DangerousGrant> NewDangerousGrants(const nlohmann::json* previous,
                                               const nlohmann::json& current) {
  const std::set<DangerousGrant> before =
      previous != nullptr ? DangerousGrantsOf(*previous) : std::set<DangerousGrant>{};
  std::vector<DangerousGrant> added;
  for (const auto& g : DangerousGrantsOf(current)) {
    if (before.count(g) == 0) added.push_back(g);
  }
  return added;
}

}  // namespace capwatch
