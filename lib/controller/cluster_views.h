#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "kube/informer.h"
#include "kube/reflector.h"
#include "policy/policy.h"
#include "report/dangerous_grants.h"

namespace capwatch::controller {

// Compact projections of the objects the controller watches besides Pods, with the codecs
// the informers decode them with. Namespaces, policies and reports are few next to Pods, so
// nlohmann/json decodes them.

struct NamespaceView {
  std::string namespace_name;  // empty: cluster-scoped
  std::string name;
  std::string resource_version;
  std::vector<std::pair<std::string, std::string>> labels;
};

struct PolicyView {
  std::string namespace_name;
  std::string name;
  std::string resource_version;
  std::string uid;
  std::int64_t generation = 0;
  std::shared_ptr<const Policy> policy;  // null when the policy is invalid
  std::vector<FieldError> errors;        // why it is invalid
  std::string status_fingerprint;        // what status the API server holds, to skip no-op writes
};

// capwatch's memory: what each stored report already says.
struct ReportView {
  std::string namespace_name;
  std::string name;
  std::string resource_version;
  std::string uid;
  std::string content_hash;  // the capwatch.io/content-hash annotation
  int pods = 0;
  bool managed = false;      // written by capwatch (label app.kubernetes.io/managed-by)
  bool has_owner = false;    // metadata.ownerReferences is not empty
  std::string workload_uid;  // workload.uid
  // The grant memory: the capwatch.io/dangerous-grants annotation (or, for a report written
  // before it existed, the grants its findings show), kept in the annotation's compact form
  // (EncodeGrants: one capability mask per container; DecodeGrants reads it). A workload of a
  // hundred containers adding everything has 1,200 grants: ~2 KiB so, ~130 KiB as a set.
  std::string dangerous_grants;
};

class NamespaceCodec : public kube::SharedStorage<NamespaceView> {
 public:
  Status DecodeList(std::string_view body, const std::function<void(NamespaceView&&)>& on_item,
                    kube::ListPageMeta& meta);
  Result<NamespaceView> Decode(std::string_view object);
};

class PolicyCodec : public kube::SharedStorage<PolicyView> {
 public:
  Status DecodeList(std::string_view body, const std::function<void(PolicyView&&)>& on_item,
                    kube::ListPageMeta& meta);
  Result<PolicyView> Decode(std::string_view object);
};

class ReportCodec : public kube::SharedStorage<ReportView> {
 public:
  Status DecodeList(std::string_view body, const std::function<void(ReportView&&)>& on_item,
                    kube::ListPageMeta& meta);
  Result<ReportView> Decode(std::string_view object);
};

using NamespaceInformer = kube::Informer<NamespaceView, NamespaceCodec>;
using PolicyInformer = kube::Informer<PolicyView, PolicyCodec>;
using ReportInformer = kube::Informer<ReportView, ReportCodec>;

inline kube::ResourceRef Namespaces() { return {"", "v1", "namespaces", ""}; }
inline kube::ResourceRef CapabilityPolicies() {
  return {"capwatch.io", "v1alpha1", "capabilitypolicies", ""};
}
inline kube::ResourceRef CapabilityReports(std::string ns = {}) {
  return {"capwatch.io", "v1alpha1", "capabilityreports", std::move(ns)};
}

}  // namespace capwatch::controller
