#include "kube/metadata_informer.h"

#include <nlohmann/json.hpp>

namespace capwatch::kube {
namespace {

using nlohmann::json;

bool FromMetadata(const json& object, ObjectMetaView& out, std::string& error) {
  auto md = object.find("metadata");
  if (md == object.end() || !md->is_object()) {
    error = "object without metadata";
    return false;
  }
  auto str = [&](const char* key) {
    auto it = md->find(key);
    return it != md->end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  out.namespace_name = str("namespace");
  out.name = str("name");
  out.uid = str("uid");
  out.resource_version = str("resourceVersion");
  if (out.name.empty()) {
    error = "object without metadata.name";
    return false;
  }
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
  return true;
}

}  // namespace

bool MetadataCodec::DecodeList(std::string_view body,
                               const std::function<void(ObjectMetaView&&)>& on_item,
                               ListPageMeta& meta, std::string& error) {
  auto doc = json::parse(body, nullptr, false);
  if (!doc.is_object()) {
    error = "list response is not a JSON object";
    return false;
  }
  if (auto md = doc.find("metadata"); md != doc.end() && md->is_object()) {
    meta.resource_version = md->value("resourceVersion", "");
    meta.continue_token = md->value("continue", "");
  }
  auto items = doc.find("items");
  if (items == doc.end() || items->is_null()) return true;
  if (!items->is_array()) {
    error = ".items is not a list";
    return false;
  }
  for (std::size_t i = 0; i < items->size(); ++i) {
    ObjectMetaView view;
    if (!FromMetadata((*items)[i], view, error)) {
      error = ".items[" + std::to_string(i) + "]: " + error;
      return false;
    }
    on_item(std::move(view));
  }
  return true;
}

bool MetadataCodec::Decode(std::string_view object, ObjectMetaView& out, std::string& error) {
  auto doc = json::parse(object, nullptr, false);
  if (!doc.is_object()) {
    error = "object is not JSON";
    return false;
  }
  return FromMetadata(doc, out, error);
}

ReflectorOptions MetadataReflectorOptions(ResourceRef resource) {
  ReflectorOptions o;
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

}  // namespace capwatch::kube
