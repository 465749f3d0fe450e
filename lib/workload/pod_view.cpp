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
  // What one Pod of the workload hides is not known of the others: it stays reported.
  for (const auto& u : other.unreadable) {
    const bool known =
        std::any_of(unreadable.begin(), unreadable.end(), [&](const UnreadableField& m) {
          return m.path == u.path && m.reason == u.reason && m.container == u.container;
        });
    if (!known) unreadable.push_back(u);
  }
}

const UnreadableField* PodView::unfiled_because() const {
  for (const auto& u : unreadable) {
    if (u.path == ".metadata" || u.path == ".metadata.name" || u.path == ".metadata.namespace") {
      return &u;
    }
  }
  return nullptr;
}

}  // namespace capwatch
