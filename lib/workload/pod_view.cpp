#include "workload/pod_view.h"

#include <algorithm>

namespace capwatch {

std::string_view ContainerTypeName(ContainerType type) {
  switch (type) {
    case ContainerType::kContainer:
      return "container";
    case ContainerType::kInitContainer:
      return "initContainer";
    case ContainerType::kEphemeralContainer:
      return "ephemeralContainer";
  }
  return "container";
}

const OwnerReference* PodView::controller_owner() const {
  for (const auto& owner : owners) {
    if (owner.controller) return &owner;
  }
  return nullptr;
}

void PodView::AddContainersOnlyIn(const PodView& other) {
  for (const auto& c : other.containers) {
    const bool known =
        std::any_of(containers.begin(), containers.end(),
                    [&](const ContainerView& m) { return m.type == c.type && m.name == c.name; });
    if (!known) containers.push_back(c);
  }
  std::stable_sort(containers.begin(), containers.end(),
                   [](const ContainerView& a, const ContainerView& b) { return a.type < b.type; });
}

}  // namespace capwatch
