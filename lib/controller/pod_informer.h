#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "controller/pod_store.h"
#include "kube/informer.h"
#include "workload/pod_decoder.h"
#include "workload/pod_proto_decoder.h"
#include "workload/pod_view.h"

namespace capwatch::controller {

// Pods into PodViews with the simdjson decoder (lib/workload), or the protobuf one for a body
// that starts with "k8s\0": list pages and watch objects.
// The cache keeps each Pod packed (PackedPod, strings that repeat interned in a StringPool):
// a PodView costs ~2.4 KB of heap, a PackedPod ~0.2 KB (test/bench/watch_bench.cpp). Views are
// unpacked when asked for.
class PodCodec {
 public:
  using Stored = PackedPod;
  Stored Pack(const PodView& pod) { return PackedPod::Pack(pod, pool_); }
  std::shared_ptr<const PodView> Unpack(const Stored& s) const {
    return std::make_shared<const PodView>(s.Unpack(pool_));
  }
  std::string_view ResourceVersion(const Stored& s) const { return s.resource_version(); }
  void Release(Stored& s) { s.Release(pool_); }
  // Distinct strings held for the cache.
  std::size_t pooled_strings() const { return pool_.size(); }

  Status DecodeList(std::string_view body, const std::function<void(PodView&&)>& on_pod,
                    kube::ListPageMeta& meta);
  Result<PodView> Decode(std::string_view object);

 private:
  PodDecoder decoder_;
  PodProtoDecoder proto_decoder_;
  StringPool pool_;
};

// The Pod cache the controller reads: PodViews keyed by namespace/name.
using PodInformer = kube::Informer<PodView, PodCodec>;

// Options for watching Pods in `namespace_name` (empty: all namespaces), listed as protobuf
// when `protobuf` is true.
kube::ReflectorOptions PodReflectorOptions(std::string namespace_name = {}, bool protobuf = false);

}  // namespace capwatch::controller
