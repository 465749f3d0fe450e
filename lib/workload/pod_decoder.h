#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "workload/pod_view.h"

namespace capwatch {

// A decode failure, with the JSON path of the offending field (".spec.containers[1].name").
struct DecodeError {
  std::string path;
  std::string message;
  std::string ToString() const;
};

// Decodes Pod JSON into PodView with simdjson's on-demand API: one pass, keeping only the
// projected fields (managedFields, status and the rest are skipped, never materialised).
// One decoder per thread; it reuses its buffers between calls.
class PodDecoder {
 public:
  PodDecoder();
  ~PodDecoder();
  PodDecoder(const PodDecoder&) = delete;
  PodDecoder& operator=(const PodDecoder&) = delete;

  // A Pod or anything shaped like one (a pod template: metadata + spec).
  [[nodiscard]] bool DecodePod(std::string_view json, PodView& out, DecodeError& error);

  // A list body ({"items": [...]}, as a list request or kubectl get -o json returns), calling
  // `on_pod` for each item. Also reports metadata.resourceVersion and metadata.continue.
  struct ListMeta {
    std::string resource_version;
    std::string continue_token;
  };
  // With `on_item_error`, an item with a wrong type (a strange Pod) is reported there and
  // skipped, so one bad object does not lose the others; without it, it fails the list.
  [[nodiscard]] bool DecodePodList(
      std::string_view json, const std::function<void(PodView&&)>& on_pod, ListMeta& meta,
      DecodeError& error, const std::function<void(const DecodeError&)>& on_item_error = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace capwatch
