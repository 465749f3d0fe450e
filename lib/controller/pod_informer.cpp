#include "controller/pod_informer.h"

#include <spdlog/spdlog.h>

namespace capwatch::controller {

bool PodCodec::DecodeList(std::string_view body, const std::function<void(PodView&&)>& on_pod,
                          kube::ListPageMeta& meta, std::string& error) {
  PodDecoder::ListMeta list_meta;
  DecodeError decode_error;
  auto skip = [&meta](const DecodeError& e) {
    spdlog::warn("skipping a Pod that cannot be read: {}", e.ToString());
    ++meta.skipped_items;
  };
  if (!decoder_.DecodePodList(body, on_pod, list_meta, decode_error, skip)) {
    error = "pod list: " + decode_error.ToString();
    return false;
  }
  meta.resource_version = std::move(list_meta.resource_version);
  meta.continue_token = std::move(list_meta.continue_token);
  return true;
}

bool PodCodec::Decode(std::string_view object, PodView& out, std::string& error) {
  DecodeError decode_error;
  if (!decoder_.DecodePod(object, out, decode_error)) {
    error = "pod: " + decode_error.ToString();
    return false;
  }
  if (out.name.empty()) {
    error = "pod without metadata.name";
    return false;
  }
  return true;
}

kube::ReflectorOptions PodReflectorOptions(std::string namespace_name) {
  kube::ReflectorOptions o;
  o.resource = kube::ResourceRef::Pods(std::move(namespace_name));
  return o;
}

}  // namespace capwatch::controller
