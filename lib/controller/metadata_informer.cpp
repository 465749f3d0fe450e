#include "controller/metadata_informer.h"

#include "kube/json_codec.h"

#include <nlohmann/json.hpp>

namespace capwatch::controller {
namespace {

using nlohmann::json;

Status FromMetadata(const json& object, ObjectMetaView& out) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) return Error("object without metadata");
  auto str = [&](const char* key) {
    auto it = md->find(key);
    return it != md->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  out.namespace_name = str("namespace");
  out.name = str("name");
  out.uid = str("uid");
  out.resource_version = str("resourceVersion");
  if (out.name.empty()) return Error("object without metadata.name");
  if (auto owners = md->find("ownerReferences"); owners != md->end() && owners->is_array()) {
    for (const auto& o : *owners) {
      if (!o.is_object() || !o.value("controller", false)) continue;
      OwnerReference ref;
      ref.api_version = o.value("apiVersion", "");
      ref.kind = o.value("kind", "");
      ref.name = o.value("name", "");
      ref.uid = o.value("uid", "");
      ref.controller = true;
      out.controller = std::move(ref);
      break;
    }
  }
  return {};
}

}  // namespace

Status MetadataCodec::DecodeList(std::string_view body,
                                 const std::function<void(ObjectMetaView&&)>& on_item,
                                 kube::ListPageMeta& meta) {
  return kube::DecodeJsonList(body, on_item, meta, FromMetadata);
}

Result<ObjectMetaView> MetadataCodec::Decode(std::string_view object) {
  return kube::DecodeJsonObject<ObjectMetaView>(object, FromMetadata);
}

kube::ReflectorOptions MetadataReflectorOptions(kube::ResourceRef resource) {
  kube::ReflectorOptions o;
  o.resource = std::move(resource);
  o.metadata_only = true;
  return o;
}

OwnerLookup MakeOwnerLookup(const MetadataInformer& replica_sets, const MetadataInformer& jobs) {
  return [&replica_sets, &jobs](std::string_view kind, std::string_view namespace_name,
                                std::string_view name) -> OwnerInfo {
    const MetadataInformer* cache = nullptr;
    if (kind == "ReplicaSet") cache = &replica_sets;
    if (kind == "Job") cache = &jobs;
    if (cache == nullptr) return {};
    auto obj = cache->Get(namespace_name, name);
    if (!obj) return {};
    return OwnerInfo{true, obj->controller};
  };
}

}  // namespace capwatch::controller
