#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "workload/pod_decoder.h"
#include "workload/pod_view.h"

namespace capwatch {

// Decodes Pods encoded as the API server's protobuf (application/vnd.kubernetes.protobuf)
// into the same PodView as PodDecoder does from JSON: the field numbers of k8s.io/api
// core/v1 generated.proto, read straight from the wire; everything else (managedFields, status,
// volumes) is skipped by its length, never decoded. Paths in errors and unreadable fields are
// the JSON paths (".spec.containers[1].securityContext"), so a finding reads the same whatever
// encoding the Pod came in.
//
// A projected field of the wrong wire type (a varint where a name belongs) is recorded as
// unreadable and the rest is read, as with JSON. A Pod whose bytes are malformed (a length
// past its end) cannot be read at all: DecodePod fails, and a list reports the item to
// `on_item_error` and goes on with the next one, whose bytes the list's framing delimits.
// Strings that are not UTF-8 have each bad byte replaced with U+FFFD, as the API server's JSON
// encoder does. Stateless: any number of threads may share one.
class PodProtoDecoder {
 public:
  // A Pod body: "k8s\0" + Unknown{typeMeta: Pod, raw: Pod}.
  Status DecodePod(std::string_view bytes, PodView& out) const;
  // The Pod message itself (an item of a list, without the envelope).
  Status DecodePodMessage(std::string_view message, PodView& out) const;
  // A PodList body, calling `on_pod` for each item; as PodDecoder::DecodePodList.
  Status DecodePodList(std::string_view bytes, const std::function<void(PodView&&)>& on_pod,
                       PodDecoder::ListMeta& meta,
                       const std::function<void(const FieldError&)>& on_item_error = {}) const;
};

}  // namespace capwatch
