#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "kube/informer.h"
#include "workload/owner_resolution.h"
#include "workload/pod_view.h"

namespace capwatch::controller {

// What the controller keeps of a ReplicaSet or Job: identity and its controlling owner. Read
// from metadata-only (PartialObjectMetadata) lists and watches, so specs never cross the wire.
struct ObjectMetaView {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string resource_version;
  std::optional<OwnerReference> controller;
};

class MetadataCodec : public kube::SharedStorage<ObjectMetaView> {
 public:
  Status DecodeList(std::string_view body, const std::function<void(ObjectMetaView&&)>& on_item,
                    kube::ListPageMeta& meta);
  Result<ObjectMetaView> Decode(std::string_view object);
};

using MetadataInformer = kube::Informer<ObjectMetaView, MetadataCodec>;

// Metadata-only list/watch options for ReplicaSets or Jobs (or any resource).
kube::ReflectorOptions MetadataReflectorOptions(kube::ResourceRef resource);

// An OwnerLookup (lib/workload) over the ReplicaSet and Job caches, for ResolveWorkload.
OwnerLookup MakeOwnerLookup(const MetadataInformer& replica_sets, const MetadataInformer& jobs);

}  // namespace capwatch::controller
