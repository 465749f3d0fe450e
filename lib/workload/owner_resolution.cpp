#include "workload/owner_resolution.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>

namespace capwatch {
namespace {

WorkloadRef FromOwner(const OwnerReference& owner) {
  return {owner.api_version, owner.kind, owner.name, owner.uid};
}

std::string_view LabelValue(const PodView& pod, std::string_view key) {
  for (const auto& [k, v] : pod.labels) {
    if (k == key) return v;
  }
  return {};
}

}  // namespace

WorkloadRef ResolveWorkload(const PodView& pod, const OwnerLookup& lookup) {
  const OwnerReference* owner = pod.controller_owner();
  if (owner == nullptr) return {"v1", "Pod", pod.name, pod.uid};

  const bool climbs = owner->kind == "ReplicaSet" || owner->kind == "Job";
  if (!climbs) return FromOwner(*owner);

  OwnerInfo info = lookup ? lookup(owner->kind, pod.namespace_name, owner->name) : OwnerInfo{};
  if (info.known) return info.controller ? FromOwner(*info.controller) : FromOwner(*owner);

  // The ReplicaSet was not seen (an audit of `kubectl get pods` output): a Deployment names
  // its ReplicaSets `<deployment>-<pod-template-hash>`, and the Pod carries that hash.
  if (owner->kind == "ReplicaSet" && owner->api_version == "apps/v1") {
    const std::string_view hash = LabelValue(pod, "pod-template-hash");
    const std::string suffix = "-" + std::string(hash);
    if (!hash.empty() && owner->name.size() > suffix.size() &&
        owner->name.compare(owner->name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      return {"apps/v1", "Deployment", owner->name.substr(0, owner->name.size() - suffix.size()),
              ""};
    }
  }
  return FromOwner(*owner);
}

std::string ReportName(const WorkloadRef& workload) {
  std::string kind = workload.kind;
  std::transform(kind.begin(), kind.end(), kind.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string name = kind + "-" + workload.name;
  constexpr std::size_t kMaxName = 253;
  if (name.size() <= kMaxName) return name;
  // Too long: keep a prefix and make it unique with a hash of the whole name.
  std::uint64_t fnv = 14695981039346656037ULL;  // FNV-1a: stable across builds and platforms
  for (unsigned char c : name) fnv = (fnv ^ c) * 1099511628211ULL;
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(fnv));
  // The cut may end the prefix in '.' or '-': "….-<hash>" is no DNS-1123 subdomain (a label
  // must start and end with a letter or digit), so those go. The prefix starts with the kind,
  // so something is left, and it now ends in a letter or digit.
  std::string prefix = name.substr(0, kMaxName - 17);
  while (prefix.back() == '.' || prefix.back() == '-') prefix.pop_back();
  return prefix + "-" + hash;
}

}  // namespace capwatch
