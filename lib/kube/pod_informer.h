#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "kube/informer.h"
#include "workload/pod_decoder.h"
#include "workload/pod_view.h"

namespace capwatch::kube {

// Pods into PodViews with the simdjson decoder (lib/workload): list pages and watch objects.
class PodCodec {
 public:
  bool DecodeList(std::string_view body, const std::function<void(PodView&&)>& on_pod,
                  ListPageMeta& meta, std::string& error);
  bool Decode(std::string_view object, PodView& out, std::string& error);

 private:
  PodDecoder decoder_;
};

// The Pod cache the controller reads: PodViews keyed by namespace/name.
using PodInformer = Informer<PodView, PodCodec>;

// Options for watching Pods in `namespace_name` (empty: all namespaces).
ReflectorOptions PodReflectorOptions(std::string namespace_name = {});

}  // namespace capwatch::kube
