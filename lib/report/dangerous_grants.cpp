#include "report/dangerous_grants.h"

namespace capwatch {

std::set<DangerousGrant> DangerousGrantsOf(const nlohmann::json& report) {
  std::set<DangerousGrant> grants;
  auto it = report.find("findings");
  if (it == report.end() || !it->is_array()) return grants;
  // What each container adds explicitly: a grant someone wrote, not the runtime's default set
  // (which the report still shows as findings, but which is not news worth an alert).
  std::set<std::pair<std::string, std::string>> added;
  if (auto cs = report.find("containers"); cs != report.end() && cs->is_array()) {
    for (std::size_t i = 0; i < cs->size(); ++i) {
      const nlohmann::json& c = (*cs)[i];
      if (!c.is_object()) continue;
      auto list = c.find("added");
      if (list == c.end() || !list->is_array()) continue;
      const std::string name = c.value("name", "");
      for (std::size_t j = 0; j < list->size(); ++j) {
        const nlohmann::json& a = (*list)[j];
        if (a.is_string()) added.emplace(name, a.get<std::string>());
      }
    }
  }
  const nlohmann::json& findings = *it;
  for (std::size_t i = 0; i < findings.size(); ++i) {
    const nlohmann::json& f = findings[i];
    if (!f.is_object() || f.value("result", "") != "fail") continue;
    const std::string rule = f.value("rule", "");
    const std::string container = f.value("container", "");
    if (rule == "privileged") {
      grants.insert({container, "privileged"});
    } else if (rule == "dangerous-capability") {
      const std::string cap = f.value("capability", "");
      if (cap == "ALL" || cap == "privileged" || added.count({container, cap}) != 0) {
        grants.insert({container, cap});
      }
    }
  }
  return grants;
}

std::vector<DangerousGrant> NewDangerousGrants(const std::set<DangerousGrant>& previous,
                                               const nlohmann::json& current) {
  std::vector<DangerousGrant> added;
  for (const auto& g : DangerousGrantsOf(current)) {
    if (previous.count(g) == 0) added.push_back(g);
  }
  return added;
}

std::vector<DangerousGrant> NewDangerousGrants(const nlohmann::json* previous,
                                               const nlohmann::json& current) {
  return NewDangerousGrants(
      previous != nullptr ? DangerousGrantsOf(*previous) : std::set<DangerousGrant>{}, current);
}

}  // namespace capwatch
