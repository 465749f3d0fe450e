#include "report/dangerous_grants.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>

#include "capabilities/catalog.h"

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

namespace capwatch {
namespace {

// Bits of a container's mask beyond the 41 capabilities.
constexpr int kAllBit = kCapabilityCount;
constexpr int kPrivilegedBit = kCapabilityCount + 1;

int BitOf(std::string_view capability) {
  if (capability == "ALL") return kAllBit;
  if (capability == "privileged") return kPrivilegedBit;
  const CapabilityName name = ParseCapabilityName(capability);
  return name.is_capability() ? name.number : -1;
}

std::string NameOfBit(int bit) {
  if (bit == kAllBit) return "ALL";
  if (bit == kPrivilegedBit) return "privileged";
  return std::string(CapabilityByNumber(bit).name);
}

}  // namespace

std::set<DangerousGrant> DangerousGrantsOf(const PodEvaluation& evaluation) {
  std::set<DangerousGrant> grants;
  for (const auto& f : evaluation.findings) {
    if (f.exempt) continue;
    if (f.rule == Rule::kPrivileged) {
      grants.insert({f.container, "privileged"});
    } else if (f.rule == Rule::kDangerousCapability) {
      bool added = f.capability == "ALL" || f.capability == "privileged";
      if (!added && f.container_index >= 0 &&
          static_cast<std::size_t>(f.container_index) < evaluation.containers.size() &&
          f.capability_number >= 0) {
        added = Contains(evaluation.containers[f.container_index].added, f.capability_number);
      }
      if (added) grants.insert({f.container, f.capability});
    }
  }
  return grants;
}

std::string EncodeGrants(const std::set<DangerousGrant>& grants) {
  std::map<std::string, std::uint64_t> masks;
  for (const auto& g : grants) {
    const int bit = BitOf(g.capability);
    if (bit >= 0) masks[g.container] |= std::uint64_t{1} << bit;
  }
  std::string out;
  for (const auto& [container, mask] : masks) {
    if (!out.empty()) out += ';';
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%llx", static_cast<unsigned long long>(mask));
    out += container + "=" + hex;
  }
  return out;
}

std::set<DangerousGrant> DecodeGrants(std::string_view text) {
  std::set<DangerousGrant> grants;
  while (!text.empty()) {
    const auto end = std::min(text.find(';'), text.size());
    const std::string_view entry = text.substr(0, end);
    text.remove_prefix(std::min(end + 1, text.size()));
    const auto eq = entry.rfind('=');
    if (eq == std::string_view::npos || eq + 1 >= entry.size() || entry.size() - eq - 1 > 16) {
      continue;
    }
    std::uint64_t mask = 0;
    bool ok = true;
    for (char c : entry.substr(eq + 1)) {
      const int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (v < 0) {
        ok = false;
        break;
      }
      mask = mask << 4 | static_cast<std::uint64_t>(v);
    }
    if (!ok) continue;
    const std::string container(entry.substr(0, eq));
    for (int bit = 0; bit <= kPrivilegedBit; ++bit) {
      if (mask & (std::uint64_t{1} << bit)) grants.insert({container, NameOfBit(bit)});
    }
  }
  return grants;
}

}  // namespace capwatch
