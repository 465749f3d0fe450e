#include "controller/pod_informer.h"

#include <spdlog/spdlog.h>

#include "base/protobuf_wire.h"

namespace capwatch::controller {

Status PodCodec::DecodeList(std::string_view body, const std::function<void(PodView&&)>& on_pod,
                            kube::ListPageMeta& meta) {
  PodDecoder::ListMeta list_meta;
  auto skip = [&meta](const FieldError& e) {
    spdlog::warn("skipping a Pod that cannot be read: {}", e.ToString());
    ++meta.skipped_items;
  };
  const Status decoded = proto::HasKubernetesMagic(body)
                             ? proto_decoder_.DecodePodList(body, on_pod, list_meta, skip)
                             : decoder_.DecodePodList(body, on_pod, list_meta, skip);
  if (!decoded.ok()) {
    Error error = decoded.error();
    return error.WithContext("pod list");
  }
  meta.resource_version = std::move(list_meta.resource_version);
  meta.continue_token = std::move(list_meta.continue_token);
  return {};
}

Result<PodView> PodCodec::Decode(std::string_view object) {
  PodView pod;
  const Status decoded = proto::HasKubernetesMagic(object) ? proto_decoder_.DecodePod(object, pod)
                                                           : decoder_.DecodePod(object, pod);
  if (!decoded.ok()) {
    Error error = decoded.error();
    return error.WithContext("pod");
  }
  if (pod.name.empty()) return Error("pod without metadata.name");
  return pod;
}

kube::ReflectorOptions PodReflectorOptions(std::string namespace_name, bool protobuf) {
  kube::ReflectorOptions o;
  o.resource = kube::ResourceRef::Pods(std::move(namespace_name));
  o.protobuf = protobuf;
  return o;
}

}  // namespace capwatch::controller
