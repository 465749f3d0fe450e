#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "workload/pod_view.h"

namespace capwatch {

// The workload a Pod is attributed to: its top owner (Pod → ReplicaSet → Deployment,
// Pod → Job → CronJob), or the Pod itself when nothing controls it.
struct WorkloadRef {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string uid;
};

// What is known of an intermediate owner (a ReplicaSet or Job): whether it was seen at all,
// and its own controller if it has one.
struct OwnerInfo {
  bool known = false;
  std::optional<OwnerReference> controller;
};
using OwnerLookup = std::function<OwnerInfo(std::string_view kind, std::string_view namespace_name,
                                            std::string_view name)>;

WorkloadRef ResolveWorkload(const PodView& pod, const OwnerLookup& lookup);

// `<lower-case kind>-<name>`, kept within the 253 characters an object name may have: a longer
// one is cut and ends in `-<16 hex digits>`, a hash of the whole name, so it stays unique. For
// every legal workload name the result is a valid DNS-1123 subdomain.
std::string ReportName(const WorkloadRef& workload);

}  // namespace capwatch
