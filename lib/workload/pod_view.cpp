#include "workload/pod_view.h"

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

}  // namespace capwatch
