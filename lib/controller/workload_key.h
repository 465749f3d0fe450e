#pragma once

#include <compare>
#include <optional>
#include <string>
#include <string_view>

namespace capwatch::controller {

// A workload as the controller queues it: the namespace and the name of its CapabilityReport
// (`deployment-web`). The work queue holds keys as text ("prod/deployment-web"); a namespace
// cannot contain '/', so the text parses back without ambiguity.
struct WorkloadKey {
  std::string namespace_name;
  std::string report_name;

  std::string ToString() const { return namespace_name + "/" + report_name; }
  // The inverse of ToString; nullopt for text that no WorkloadKey produces.
  static std::optional<WorkloadKey> Parse(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == text.size()) {
      return std::nullopt;
    }
    return WorkloadKey{std::string(text.substr(0, slash)), std::string(text.substr(slash + 1))};
  }
  auto operator<=>(const WorkloadKey&) const = default;
};

}  // namespace capwatch::controller
